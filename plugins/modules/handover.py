#!/usr/bin/python
# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module pgrepl.streaming.handover."""

from __future__ import annotations

DOCUMENTATION = r'''
---
module: handover
short_description: Fence and stop the old primary, then promote a standby over SQL, in one call on the old primary
version_added: 0.1.0
author: pgrepl maintainers (@pgrepl)
description:
  - Runs on the old primary's host and moves the primary role to a streaming standby (the target, which the
    connection options point at, over TCP) in one process, so that no Ansible round trip sits inside the time
    writes are stopped, and a controller that dies half-way cannot leave two servers taking writes.
  - "In order (the states of docs/runbooks.md): the unit of the server on O(data_dir) is disabled at boot when
    C(systemctl is-enabled) says C(enabled); C(standby.signal) is written into O(data_dir) (a fence: any later start
    of this server is read-only); the server is stopped with a fast shutdown (C(systemctl stop) of O(service), or
    C(pg_ctl stop -m fast)) and proven gone; its checkpoint LSN is read from its own pg_control; with
    O(mode=switchover) the module waits, polling the target every 10 ms, until the target's replay is past that
    shutdown checkpoint; then it sends C(pg_promote) (without waiting) to the target and waits until it has left
    recovery."
  - A handover abandoned before C(pg_promote) was sent (the stop fails, the target does not catch up within
    O(wait_seconds), the target cannot be reached, SIGTERM or SIGINT) is rolled back once the target answers as still
    in recovery or does not answer. Then C(standby.signal) is removed, the unit enabled again, and the server started
    again, and the task fails with RV(rolled_back=true). Once C(pg_promote) was sent there is no rollback; at the
    deadline the task fails with RV(promotion_requested=true) and this server stays fenced, stopped.
  - With O(mode=failover) the target is promoted with the WAL it has (no checkpoint condition); a server still
    running on O(data_dir) is stopped first (forced failover); one that crashed is only fenced; a rollback only undoes
    what the module did.
  - Reads both sides first, changing nothing, and refuses when anything is wrong, with every option checked as
    pgrepl.streaming.server_stop checks its own; a target that is not in recovery while this server runs (two
    primaries), is a copy of another cluster (system identifier), has its replay paused, is on a later timeline
    (switchover), or whose login role may not execute C(pg_promote) is refused. A connection or privilege refusal
    says that pgrepl.streaming.site adds what is missing.
  - A re-run finds where an interrupted run stopped. This server stopped cleanly with the target still in recovery
    goes on from the stop; with the target a primary already, only the fence is completed (C(changed=false) when it
    is complete). What an unfinished run changed is kept in C(<data_dir>.pgrepl-handover), removed at the end.
  - The login role needs C(EXECUTE) on C(pg_promote) on the target and a pg_hba entry for
    O(login_db) from this host; pgrepl.streaming.site gives both to the replication user. C(CHECKPOINT) is not run
    (that role may not); pgrepl.streaming.promote on the new primary records the new timeline in its pg_control.
options:
  mode:
    description:
      - V(switchover) promotes the target only once its replay is past this server's shutdown checkpoint, so no
        acknowledged commit is lost; this server must run as a primary (or be found stopped cleanly by an earlier,
        interrupted run).
      - V(failover) promotes the target at once; this server may be down.
    type: str
    default: switchover
    choices: [switchover, failover]
  data_dir:
    description:
      - The data directory of this (the old primary's) server.
    type: path
    required: true
  bin_dir:
    description:
      - Directory holding C(pg_controldata) (and, without O(service), C(pg_ctl)) of O(data_dir)'s major version.
        When not given, the usual places and PATH are searched.
    type: path
  service:
    description:
      - The systemd unit that runs the server on O(data_dir) (checked against the postmaster's cgroup). It is
        stopped, disabled at boot when it is C(enabled) by its own links, and enabled and started again by a
        rollback. A unit enabled at runtime by a generator (Debian's C(postgresql@) units follow the cluster's
        C(start.conf)) is left as it is; C(standby.signal) keeps any start of it read-only.
      - Without it, the server is stopped and (by a rollback) started with C(pg_ctl) as O(os_user).
    type: str
  os_user:
    description:
      - OS user that owns O(data_dir) (C(standby.signal) is given to the data directory's owner).
    type: str
    default: postgres
  log_file:
    description:
      - Required without O(service); C(pg_ctl start) sends the server's output there when a rollback starts it.
    type: path
  stop_timeout:
    description:
      - Seconds the server may take to stop (C(systemctl stop) or C(pg_ctl stop -t)), and to start again in a
        rollback; 1 to 604800.
    type: int
    default: 300
  wait_seconds:
    description:
      - With O(mode=switchover), the seconds the target gets to replay past the shutdown checkpoint; then (in both
        modes) the seconds its promotion gets to finish. 1 to 86400.
    type: int
    default: 60
  allow_paused:
    description:
      - Promote a target whose WAL replay is paused (promotion ends the pause). A paused target is refused
        otherwise.
    type: bool
    default: false
extends_documentation_fragment:
  - pgrepl.streaming.connection
attributes:
  check_mode:
    description:
      - Reads this server's pg_control and C(postmaster.pid), checks the unit or pg_ctl, connects to the target and
        reads its recovery facts and privileges, applies every refusal, and predicts RV(outcome); stops, fences and
        promotes nothing.
    support: full
  diff_mode:
    description: Not supported; RV(steps) and the returned facts say what happened.
    support: none
notes:
  - The connection options point at the target, another host, over TCP (O(login_host) is required). The roles of
    this collection connect as the replication user with its password, to database C(postgres).
  - Supports PostgreSQL 13 to 18. Needs psycopg on this host and the server binaries of O(data_dir)'s major.
  - Runs as root (C(become=true)) for C(systemctl) and the data directory.
seealso:
  - module: pgrepl.streaming.server_stop
    description: Stop a server and read its shutdown checkpoint, without promoting anything.
  - module: pgrepl.streaming.promote
    description: Promote a standby from its own host (also records the new timeline with a CHECKPOINT).
  - name: pg_promote
    description: The function the target is promoted with.
    link: https://www.postgresql.org/docs/current/functions-admin.html#FUNCTIONS-RECOVERY-CONTROL
'''

EXAMPLES = r'''
- name: Switchover from db1 to db2, on db1 (writes stop only between the stop and the promotion)
  pgrepl.streaming.handover:
    data_dir: /var/lib/postgresql/15/main
    service: postgresql@15-main
    login_host: 10.0.0.12
    login_user: replicator
    login_password: "{{ vault_replication_password }}"
    wait_seconds: 60
  become: true
  register: pgrepl_handover

- name: Failover to db3 (db1's server crashed, its host answers) - fence it, promote db3 with the WAL it has
  pgrepl.streaming.handover:
    mode: failover
    data_dir: /var/lib/pgsql/16/data
    service: postgresql-16
    login_host: db3.example.com
    login_user: replicator
    login_password: "{{ vault_replication_password }}"
  become: true

- name: Would the switchover be refused? (reads both sides, changes nothing)
  pgrepl.streaming.handover:
    data_dir: /srv/pgdata
    bin_dir: /usr/pgsql-16/bin
    log_file: /srv/pgdata.log
    login_host: 10.0.0.12
    login_user: replicator
    login_password: "{{ vault_replication_password }}"
  check_mode: true
  become: true
'''

RETURN = r'''
outcome:
  description: V(handed_over), V(would_hand_over) (check mode) or V(already_promoted) (the target was a primary
    already; the fence of this server was completed, C(changed) says whether anything was missing).
  returned: success
  type: str
  sample: handed_over
msg:
  description: One sentence saying what was (or would be) done, or on failure what state it left and what to do.
  returned: always
  type: str
  sample: "stopped and fenced this server, then promoted the target replicator@10.0.0.12:5432/postgres past its
    shutdown checkpoint 0/5000028: timeline 1 -> 2 at 0/50000A0"
mode:
  description: O(mode).
  returned: always
  type: str
  sample: switchover
target:
  description: The target as C(user@host:port/database).
  returned: always
  type: str
  sample: replicator@10.0.0.12:5432/postgres
data_dir:
  description: O(data_dir), normalised.
  returned: always
  type: str
  sample: /var/lib/postgresql/15/main
was_running:
  description: Whether a server ran on O(data_dir) when the module looked.
  returned: always
  type: bool
  sample: true
stopped:
  description: Whether this run found or left no server running on O(data_dir) before the promotion.
  returned: always
  type: bool
  sample: true
cluster_state:
  description: pg_control's cluster state after the stop (before it, when nothing was stopped).
  returned: always
  type: str
  sample: shut down
checkpoint_lsn:
  description: pg_control's latest checkpoint location after the stop (the shutdown checkpoint of a switchover).
  returned: always
  type: str
  sample: 0/5000028
timeline_before:
  description: This server's timeline (pg_control).
  returned: always
  type: int
  sample: 1
unit_enabled_before:
  description: What C(systemctl is-enabled) said of O(service) before (null without O(service)).
  returned: always
  type: str
  sample: enabled-runtime
unit_disabled:
  description: Whether this run disabled O(service) at boot.
  returned: always
  type: bool
  sample: false
fenced:
  description: Whether C(standby.signal) is in O(data_dir) at the end.
  returned: always
  type: bool
  sample: true
promotion_requested:
  description: Whether C(pg_promote) was sent to the target (then nothing is rolled back).
  returned: always
  type: bool
  sample: true
promoted:
  description: Whether the target left recovery within O(wait_seconds).
  returned: always
  type: bool
  sample: true
rolled_back:
  description: Whether an abandoned handover was undone (this server has its writes again in a switchover).
  returned: always
  type: bool
  sample: false
received_lsn:
  description: The target's C(pg_last_wal_receive_lsn) right before the promotion.
  returned: always
  type: str
  sample: 0/50000A0
replayed_lsn:
  description: The target's C(pg_last_wal_replay_lsn) right before the promotion.
  returned: always
  type: str
  sample: 0/50000A0
caught_up_lsn:
  description: The target's replay position seen past RV(checkpoint_lsn) (switchover).
  returned: always
  type: str
  sample: 0/50000A0
timeline_after:
  description: The target's timeline after the promotion (from its current WAL file's name).
  returned: always
  type: int
  sample: 2
promoted_at_lsn:
  description: Where the new timeline began (the target's last replayed LSN, which recovery leaves there).
  returned: always
  type: str
  sample: 0/50000A0
writes_stopped_seconds:
  description: Seconds from the start of the stop until the target had left recovery (null when nothing was
    stopped), the write gap as this module saw it.
  returned: always
  type: float
  sample: 0.41
steps:
  description: Each step done, with the seconds since the module started when it ended.
  returned: always
  type: list
  elements: dict
  sample: [{"step": "preflight", "at": 0.05}, {"step": "standby.signal written", "at": 0.05},
           {"step": "stopped", "at": 0.31}, {"step": "target caught up", "at": 0.32},
           {"step": "promotion requested", "at": 0.32}, {"step": "target promoted", "at": 0.41}]
duration_seconds:
  description: How long the module ran.
  returned: always
  type: float
  sample: 0.6
'''

from ansible_collections.pgrepl.streaming.plugins.module_utils._handover import HANDOVER_SPEC, handover_body
from ansible_collections.pgrepl.streaming.plugins.module_utils._module import module_from_spec, run


def main() -> None:
    module = module_from_spec(HANDOVER_SPEC)
    run(module, handover_body)


if __name__ == '__main__':
    main()
