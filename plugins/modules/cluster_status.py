#!/usr/bin/python
# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pgrepl.streaming.cluster_status: an action (plugins/action/cluster_status.py) that runs on the controller only;
this file documents it and holds the argument spec it validates."""

from __future__ import annotations

DOCUMENTATION = r'''
---
module: cluster_status
short_description: Print the replication status of the cluster as a table (or one JSON document)
version_added: 0.1.0
author: pgrepl maintainers (@pgrepl)
description:
  - Prints one row per node of the inventory's cluster (group C(primary) first, then group C(standby)) with its role,
    the replication state, sync state, timeline, WAL position, lag in bytes and in human units, replay delay, its
    slot on the primary with C(wal_status), and what looks wrong.
  - An action that runs on the controller only, from the node facts each host already registered (the node role's
    C(facts.yml) - the result of M(pgrepl.streaming.node_prepare) in C(__pgrepl_node), the slot name in
    C(__pgrepl_slot)). It connects to no host and changes nothing. Use it with
    C(run_once), as the C(pgrepl.streaming.status) playbook does.
  - The text goes to Ansible's display, not into a C(debug) message, so the default callback shows it as a table,
    without quotes, escapes or commas; it is shown also when C(display_ok_hosts) is off.
  - The replication state of a standby is PostgreSQL's own word. While the primary has a WAL sender for it
    (matched by C(application_name), the inventory name cut to 63 characters), that sender's
    C(pg_stat_replication.state) (C(startup), C(catchup), C(streaming), C(backup), C(stopping)), since only the sending
    side knows C(catchup) from C(streaming). Otherwise what the standby itself says - C(stopped) when its server
    is not running, C(no receiver) when it is in recovery without a WAL receiver, C(disconnected) when its WAL
    receiver (C(pg_stat_wal_receiver.status)) is not streaming or streams from a server that is not the primary -
    or C(no cluster) (no data directory), C(unknown) (neither end could tell). When the primary's facts are
    missing, a receiver that says C(streaming) is taken at its word.
  - Lag is the bytes the standby has still to replay (pg_current_wal_lsn() of the primary minus its
    replay_lsn), in bytes and as C(pg_size_pretty) prints them (binary multiples labelled C(kB), C(MB), C(GB),
    C(TB), C(PB), so C(16 MB) is 16777216 bytes). The replay delay is now() - pg_last_xact_replay_timestamp() only
    while received WAL waits to be replayed, else 0, so a standby of an idle primary does not look late.
options:
  format:
    description:
      - C(table) prints the table; C(json) prints the same facts as one JSON document (keys sorted, indented; it
        starts with a line C({) and ends with a line C(})), for programs.
    type: str
    choices: [table, json]
    default: table
  strict:
    description:
      - Fail when something looks wrong (any problem of any node), after printing. For monitoring and CI.
    type: bool
    default: false
  primary:
    description: Hosts of the primary group; only the first is the primary. Default C(groups['primary']).
    type: list
    elements: str
  standbys:
    description: Hosts of the standby group. Default C(groups['standby']).
    type: list
    elements: str
  cluster:
    description:
      - The cluster (C(pgrepl_cluster_id)) of O(primary) and O(standbys), when the inventory holds several - printed
        above the table, and RV(status.cluster) of the document. Empty - no such line, no such key.
    type: str
    default: ""
attributes:
  check_mode:
    support: full
    description: Runs the same in check mode (it only prints).
  diff_mode:
    support: none
    description: Nothing is ever changed.
notes:
  - What counts as a problem - a node without facts (unreachable, not in this run, psycopg missing), a server not
    running or refusing the connection, a node whose role is not its group's, a standby that does not stream
    from the primary (with its WAL receiver's words), replay paused, another system identifier than the
    primary's, a timeline that differs while not streaming, a standby slot missing on the primary, a slot
    C(lost), C(unreserved) or inactive (an inactive slot no inventory standby uses is the primary's problem).
    C(catchup) is not a problem, the state column shows it.
  - The rows of the table and the JSON document come from the same data (RV(status)).
  - With a stdout callback that writes one JSON document itself (C(ansible.posix.json), C(ansible.posix.jsonl)),
    nothing is printed, so that document stays valid; the task's result carries RV(status).
seealso:
  - name: pg_stat_replication
    description: The WAL senders' states.
    link: https://www.postgresql.org/docs/current/monitoring-stats.html#MONITORING-PG-STAT-REPLICATION-VIEW
  - name: pg_stat_wal_receiver
    description: The WAL receiver's status.
    link: https://www.postgresql.org/docs/current/monitoring-stats.html#MONITORING-PG-STAT-WAL-RECEIVER-VIEW
'''

EXAMPLES = r'''
- name: Facts of every node (one call per host)
  ansible.builtin.import_role:
    name: pgrepl.streaming.node
    tasks_from: facts.yml

- name: The status table, failing when something looks wrong
  pgrepl.streaming.cluster_status:
    strict: true
  run_once: true

- name: The same facts as JSON, kept for a later task
  pgrepl.streaming.cluster_status:
    format: json
  run_once: true
  register: pgrepl_status
'''

RETURN = r'''
ok:
  description: Whether nothing looks wrong (RV(status.problems) is empty).
  returned: always
  type: bool
status:
  description: The document printed with O(format=json).
  returned: unless O(strict) failed (the document was printed already)
  type: dict
  contains:
    format_version:
      description: Version of this document's layout (1).
      type: int
    cluster:
      description: The cluster the document is of (O(cluster)); only when O(cluster) is given.
      type: str
      returned: when O(cluster) is given
    primary:
      description: The host taken as the primary (first of O(primary)); null when there is none.
      type: str
    timeline:
      description: The primary's timeline.
      type: int
    current_lsn:
      description: The primary's pg_current_wal_lsn().
      type: str
    ok:
      description: Whether RV(status.problems) is empty.
      type: bool
    problems:
      description: Every problem, as the host name, a colon and the text.
      type: list
      elements: str
    cluster_problems:
      description: Problems of no one host (no host in group primary).
      type: list
      elements: str
    nodes:
      description:
        - One entry per host, primary first. Keys host, group, role (C(primary), C(standby), C(unknown); from the
          data directory when the server does not run), server_status (C(up), C(stopped), C(no cluster), C(no live
          facts), C(not reachable), C(unreachable), C(failed), C(no facts)), state, state_source (C(upstream),
          C(receiver), C(server)), upstream_state (pg_stat_replication.state), receiver_status
          (pg_stat_wal_receiver.status), sync_state, timeline, lsn (current on the primary, replay on a standby),
          lsn_kind, receive_lsn, lag_bytes, lag (pg_size_pretty form), replay_delay_seconds, replay_delay,
          upstream_replay_lag_seconds (pg_stat_replication.replay_lag), replay_pause_state, system_identifier,
          cluster_state (pg_control), slot and problems (list of text).
        - slot is null on the primary; on a standby C(name), C(present), C(active), C(wal_status),
          C(safe_wal_size) (bytes before it would be lost, null without max_slot_wal_keep_size),
          C(safe_wal_size_pretty), C(retained_bytes), C(retained_pretty).
        - archive is null unless the server's archive_mode is C(on) or C(always); then C(mode), C(archives)
          (whether its archiver runs - on a standby only with C(always)) and pg_stat_archiver's C(archived_count),
          C(last_archived_wal), C(last_archived_time), C(failed_count), C(last_failed_wal), C(last_failed_time).
          Archiving that fails now (its last failure later than its last success) is a problem of that host; the
          table prints one line per archiving node below its rows.
      type: list
      elements: dict
msg:
  description: With O(strict), why it failed (every problem).
  returned: failure
  type: str
'''

from ansible_collections.pgrepl.streaming.plugins.module_utils._module import ModuleSpec, module_from_spec
from ansible_collections.pgrepl.streaming.plugins.module_utils._status import ARGUMENT_SPEC


def main() -> None:
    """Reached only when the action plugin is bypassed: the status is made on the controller, never on a host."""
    module = module_from_spec(ModuleSpec(ARGUMENT_SPEC, with_connection=False))
    module.fail_json(msg="pgrepl.streaming.cluster_status runs on the controller (its action plugin); "
                         "it cannot run as a module on a managed host")


if __name__ == "__main__":
    main()
