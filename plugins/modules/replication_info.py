#!/usr/bin/python
# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module pgrepl.streaming.replication_info."""

from __future__ import annotations

DOCUMENTATION = r'''
---
module: replication_info
short_description: Everything a play needs to decide about one PostgreSQL node's streaming replication
version_added: 0.1.0
author: pgrepl maintainers (@pgrepl)
description:
  - Reads, in one query, the role of a server (primary or standby), its version, system identifier and timeline,
    its WAL positions, the standbys it serves (C(pg_stat_replication) with byte and time lags), its WAL receiver
    (C(pg_stat_wal_receiver)), all its replication slots, the replication settings and the settings waiting for a
    restart.
  - Never changes anything. It only reads C(pg_catalog) views and functions, and the data directory when
    O(data_dir) is given. C(changed) is always false.
  - A server that is down is a fact, not a failure. When it cannot be reached (connection refused, no socket,
    timeout, starting up or shutting down) the module returns RV(reachable=false), the connection message in
    RV(error) and RV(role=unknown); with O(data_dir) it says RV(role=down) and what the data directory tells
    (system identifier, timeline, cluster state and checkpoint from pg_control, signal files, postmaster.pid).
  - Authentication and configuration errors (wrong password, no pg_hba.conf entry, unknown role or database,
    bad options) fail the task, because they are mistakes to fix, not the state of the node.
  - Needs a login that may read the statistics views (a superuser or a member of C(pg_monitor)); with less,
    the details other sessions own come back null and the module says so in a warning.
options:
  data_dir:
    description:
      - Data directory of the server on the managed host. When given, RV(data_dir_facts) reports what can be read
        from it without a running server (C(pg_controldata), C(PG_VERSION), C(standby.signal),
        C(recovery.signal), C(recovery.conf), C(postmaster.pid)), whether the server is up or not.
      - Must be an absolute path to an existing PostgreSQL data directory readable by the module's user
        (become the postgres user, or root).
    type: path
  bin_dir:
    description:
      - Directory holding C(pg_controldata) of the data directory's major version. Only used with O(data_dir).
      - When not given, the module looks in C(/usr/lib/postgresql/*/bin), C(/usr/pgsql-*/bin), C(/opt/pgpro/*/bin)
        and PATH, and uses the first C(pg_controldata) whose version matches C(PG_VERSION). If none matches,
        the pg_control facts are null and a warning says so.
      - When given, it must contain a C(pg_controldata) of the same major as the data directory, or the task fails.
    type: path
extends_documentation_fragment:
  - pgrepl.streaming.connection
attributes:
  check_mode:
    support: full
    description: Runs exactly the same in check mode (it only reads).
  diff_mode:
    support: none
    description: Nothing is ever changed, so there is nothing to diff.
notes:
  - PostgreSQL 13 to 18 are supported. The columns read from C(pg_replication_slots) and C(pg_stat_wal_receiver)
    follow the server's major version, so keys that a version does not have are absent from its rows.
  - RV(replay_delay_seconds) is the time since C(pg_last_xact_replay_timestamp) only while received WAL waits to be
    replayed (RV(receive_lsn) > RV(replay_lsn)); otherwise it is 0, so a standby of an idle primary does not
    look late.
seealso:
  - name: pg_stat_replication
    description: The view behind RV(replication).
    link: https://www.postgresql.org/docs/current/monitoring-stats.html#MONITORING-PG-STAT-REPLICATION-VIEW
'''

EXAMPLES = r'''
- name: Gather replication facts of every node (down nodes included)
  pgrepl.streaming.replication_info:
    login_host: 127.0.0.1
    login_password: "{{ pgrepl_superuser_password }}"
    data_dir: /var/lib/postgresql/15/main
  register: pgrepl_node

- name: Refuse an inventory whose nodes are not clones of one cluster
  ansible.builtin.assert:
    that:
      - pgrepl_node.system_identifier == hostvars[groups['primary'][0]].pgrepl_node.system_identifier
    fail_msg: "{{ inventory_hostname }} is not a copy of the primary (system identifier differs)"

- name: Wait until the standby has replayed what it received
  pgrepl.streaming.replication_info:
    login_unix_socket: /var/run/postgresql
  become: true
  become_user: postgres
  register: pgrepl_standby
  until: pgrepl_standby.replay_delay_seconds == 0
  retries: 30
  delay: 2

- name: Monitoring role (member of pg_monitor) on a RHEL host, pg_controldata in a custom place
  pgrepl.streaming.replication_info:
    login_user: monitor
    login_password: "{{ pgrepl_monitor_password }}"
    login_host: db1.example.com
    data_dir: /data/pgsql/16
    bin_dir: /usr/pgsql-16/bin
'''

RETURN = r'''
changed:
  description: Always false.
  returned: always
  type: bool
reachable:
  description: Whether the module could connect and read the facts.
  returned: always
  type: bool
role:
  description:
    - C(primary) or C(standby) when reachable (from pg_is_in_recovery()).
    - C(down) when unreachable, O(data_dir) is given and no live postmaster owns it.
    - C(unknown) when unreachable without O(data_dir), or when the data directory's postmaster is running but
      could not be reached with the given options (a warning says so).
  returned: always
  type: str
  sample: standby
error:
  description: Why the server could not be reached (the connection message); null when reachable.
  returned: always
  type: str
facts_source:
  description: C(server) when the live facts come from the server, C(data_dir) when RV(major),
    RV(system_identifier) and RV(timeline) come from pg_control because the server is unreachable, else null.
  returned: always
  type: str
server_version_num:
  description: server_version_num, e.g. 150018. Null when unreachable.
  returned: always
  type: int
major:
  description: Major version (15). From PG_VERSION when the server is unreachable and O(data_dir) is given.
  returned: always
  type: int
system_identifier:
  description: Database system identifier (as a string, it does not fit every JSON reader's integers).
    From pg_control when unreachable and O(data_dir) is given.
  returned: always
  type: str
timeline:
  description:
    - Current timeline. On a primary the timeline of the WAL being written; on a standby the timeline of the
      WAL it receives (pg_stat_wal_receiver.received_tli), or of its latest restartpoint when not streaming.
    - When unreachable with O(data_dir), the latest checkpoint's timeline.
  returned: always
  type: int
in_recovery:
  description: pg_is_in_recovery(). Null when unreachable.
  returned: always
  type: bool
current_lsn:
  description: pg_current_wal_lsn() on a primary; null on a standby.
  returned: always
  type: str
  sample: 0/3000148
receive_lsn:
  description: pg_last_wal_receive_lsn() (WAL received and flushed by streaming) on a standby; null on a primary.
  returned: always
  type: str
replay_lsn:
  description: pg_last_wal_replay_lsn() on a standby; null on a primary.
  returned: always
  type: str
replay_paused:
  description: Whether replay is paused or a pause is requested (standby only; null on a primary).
  returned: always
  type: bool
replay_pause_state:
  description: C(not paused), C(pause requested) or C(paused) (pg_get_wal_replay_pause_state() on 14+;
    before 14 C(paused) or C(not paused)). Null on a primary.
  returned: always
  type: str
replay_delay_seconds:
  description:
    - On a standby, now() - pg_last_xact_replay_timestamp() in seconds while received WAL waits to be replayed
      (RV(receive_lsn) > RV(replay_lsn)), else 0. Null on a primary, and null when replay is behind but no
      transaction has been replayed since the standby started (a warning says so).
  returned: always
  type: float
replay_lag_bytes:
  description: On a standby, bytes received but not yet replayed (RV(receive_lsn) - RV(replay_lsn)); else null.
  returned: always
  type: int
last_replay_timestamp:
  description: pg_last_xact_replay_timestamp() (ISO 8601), null on a primary or before the first replayed commit.
  returned: always
  type: str
replication:
  description:
    - One row per WAL sender (pg_stat_replication), ordered by application_name. Null when unreachable.
    - Keys pid, usename, application_name, client_addr, client_hostname, client_port, backend_start,
      backend_xmin, state, sent_lsn, write_lsn, flush_lsn, replay_lsn, sync_priority, sync_state, reply_time.
    - write_lag, flush_lag and replay_lag are seconds (float, null when idle for a while, as PostgreSQL reports).
    - sent_lag_bytes, write_lag_bytes, flush_lag_bytes and replay_lag_bytes are pg_wal_lsn_diff(current, X),
      where current is pg_current_wal_lsn() on a primary, the received/replayed end of WAL on a cascading standby.
  returned: always
  type: list
  elements: dict
wal_receiver:
  description:
    - The row of pg_stat_wal_receiver (null when there is no WAL receiver, e.g. on a primary).
    - Keys pid, status, receive_start_lsn, receive_start_tli, written_lsn, flushed_lsn, received_tli,
      last_msg_send_time, last_msg_receipt_time, latest_end_lsn, latest_end_time, slot_name, sender_host,
      sender_port, conninfo. conninfo has every password value replaced by C(********).
  returned: always
  type: dict
slots:
  description:
    - Every row of pg_replication_slots, ordered by slot_name, with retained_bytes (WAL between the slot's
      restart_lsn and the current end of WAL).
    - Keys slot_name, slot_type, plugin, database, temporary, active, active_pid, xmin, catalog_xmin,
      restart_lsn, confirmed_flush_lsn, wal_status, safe_wal_size, retained_bytes; two_phase on 14+,
      conflicting on 16+, invalidation_reason, inactive_since, failover and synced on 17+, two_phase_at on 18+.
  returned: always
  type: list
  elements: dict
synchronous_standby_names:
  description: The running value of synchronous_standby_names.
  returned: always
  type: str
synchronous_commit:
  description: The running value of synchronous_commit.
  returned: always
  type: str
settings:
  description:
    - Settings useful for replication decisions, typed by pg_settings.vartype (bool, int, float or str),
      integers in the setting's base unit (max_slot_wal_keep_size and wal_keep_size in MB).
    - wal_level, max_wal_senders, max_replication_slots, hot_standby, hot_standby_feedback, wal_log_hints,
      data_checksums, max_slot_wal_keep_size, wal_keep_size, listen_addresses, port, data_directory, config_file,
      hba_file, primary_conninfo (passwords masked), primary_slot_name, max_connections, max_worker_processes,
      max_prepared_transactions, max_locks_per_transaction, password_encryption, archive_mode, cluster_name.
    - A setting the login may not see (data_directory, config_file, hba_file, primary_conninfo without
      pg_read_all_settings) or that the version lacks is null.
  returned: always
  type: dict
pending_restart:
  description: Names of the settings changed in the configuration that take effect only after a restart.
  returned: always
  type: list
  elements: str
postmaster_start_time:
  description: pg_postmaster_start_time() (ISO 8601).
  returned: always
  type: str
walsenders_count:
  description: Number of WAL senders (rows of RV(replication)), that is standbys and base backups being served.
  returned: always
  type: int
active_slots_count:
  description: Number of replication slots in use.
  returned: always
  type: int
privileges:
  description: What the login may read, keys login_role, superuser, read_all_stats, read_all_settings.
  returned: always
  type: dict
archiver:
  description: pg_stat_archiver (counts since stats_reset) - archived_count, last_archived_wal, last_archived_time,
    failed_count, last_failed_wal, last_failed_time, stats_reset.
  returned: when the server could be asked (else null)
  type: dict
data_dir_facts:
  description:
    - Only with O(data_dir) (else null). What the data directory says, without the server.
    - data_dir, pg_version (PG_VERSION text), major, pg_controldata (the binary used, null if none matched).
    - standby_signal, recovery_signal, recovery_conf (whether the files exist).
    - postmaster_pid_file, postmaster_pid, postmaster_port, postmaster_status (from postmaster.pid) and
      postmaster_running (its pid is a live postgres process).
    - From pg_control (null when no matching pg_controldata was found) system_identifier (str), cluster_state
      (C(in production), C(shut down), C(shut down in recovery), C(in archive recovery), C(in crash recovery),
      C(shutting down), C(starting up)), checkpoint_lsn, redo_lsn, redo_wal_file, timeline, prev_timeline,
      checkpoint_time, min_recovery_end_lsn, min_recovery_end_timeline, wal_level, wal_log_hints,
      data_checksum_version, data_checksums, pg_control_version, pg_control_last_modified.
  returned: always
  type: dict
'''

from ansible_collections.pgrepl.streaming.plugins.module_utils._info import (
    REPLICATION_INFO_SPEC,
    run_replication_info,
)
from ansible_collections.pgrepl.streaming.plugins.module_utils._module import module_from_spec, run


def main() -> None:
    module = module_from_spec(REPLICATION_INFO_SPEC)
    run(module, run_replication_info)


if __name__ == '__main__':
    main()
