#!/usr/bin/python
# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module pgrepl.streaming.promote."""

from __future__ import annotations

DOCUMENTATION = r'''
---
module: promote
short_description: Promote a streaming standby to a primary with pg_promote()
version_added: 0.1.0
author: pgrepl maintainers (@pgrepl)
description:
  - Promotes the standby that the connection options point at with C(pg_promote) (C(wait => false)), waits
    up to O(wait_seconds) for C(pg_is_in_recovery) to turn false, and returns the timeline the server left and
    the one it started, the LSN at which the new timeline began, and how far the standby had received and
    replayed WAL before.
  - It waits with short queries of its own rather than inside C(pg_promote) with C(wait => true), because that one
    statement holds a snapshot while replay catches up, and a lagging standby (for example one whose replay was
    paused) cancels it with a recovery conflict (SQLSTATE 40001) while the promotion goes on. Polls canceled that
    way are retried.
  - A server that is not in recovery is already a primary; the module then changes nothing (RV(outcome=already_primary),
    C(changed=false)), so a re-run of a switchover or failover play is harmless. The one exception, with
    O(checkpoint), is a primary whose pg_control still shows an older timeline than the one it writes (promoted
    without a checkpoint since, as pgrepl.streaming.handover promotes) then gets its C(CHECKPOINT) (C(changed=true)).
  - Refuses, and does nothing, when WAL replay is paused (C(pg_is_wal_replay_paused)) unless O(allow_paused=true),
    because a pause is set on purpose and promoting ends it. Refuses when O(login_user) may not execute C(pg_promote)
    (a superuser, or a role granted EXECUTE on it).
  - With O(replay_past_lsn) it first waits until the standby has replayed past that LSN, and refuses, without
    promoting, when it has not within O(wait_seconds). A switchover passes the old primary's shutdown checkpoint
    location (C(Latest checkpoint location) of C(pg_controldata) on the stopped old primary), so the standby is
    promoted only once it has replayed everything the old primary wrote.
  - After promotion it runs C(CHECKPOINT) (O(checkpoint)), so that C(pg_control) records the new timeline at once;
    until the first checkpoint on the new timeline, which PostgreSQL spreads over minutes, pg_rewind of PostgreSQL 15
    and older reads the old timeline from the new primary and wrongly finds that no rewind is needed.
  - It never stops the old primary; fencing it is the playbook's job, before this module runs (or use
    pgrepl.streaming.handover on the old primary's host, which fences it and promotes the standby in one call).
options:
  wait_seconds:
    description:
      - Seconds to wait for the promotion to finish (C(pg_is_in_recovery) false). When it does not finish in
        time, the task fails (the promotion was requested and may still complete, so check
        C(pg_is_in_recovery) before retrying).
      - With O(replay_past_lsn), also the seconds to wait, before promoting, for replay to pass that LSN. The two waits
        have a window of O(wait_seconds) each, so the task may take up to twice O(wait_seconds); the promotion never
        gets less time because the catch-up was slow.
      - 1 to 86400.
    type: int
    default: 60
  allow_paused:
    description:
      - Promote even when WAL replay is paused. Promotion ends the pause, and the new primary starts from whatever
        point replay then reaches.
    type: bool
    default: false
  checkpoint:
    description:
      - Run C(CHECKPOINT) right after the promotion, so C(pg_control) shows the new timeline at once (needed by
        pg_rewind of PostgreSQL 15 and older against this server); on a server already a primary, only when its
        C(pg_control) shows an older timeline than its current one. Needs a superuser or, on PostgreSQL 15 and later,
        a member of C(pg_checkpoint); when it is refused, the task still succeeds with a warning.
    type: bool
    default: true
  replay_past_lsn:
    description:
      - A WAL location such as V(0/3000060) (1 to 8 hexadecimal digits, C(/), 1 to 8 hexadecimal digits). Before
        promoting, the module waits, polling C(pg_last_wal_replay_lsn) with short queries every 0.1 seconds for up
        to O(wait_seconds), until the standby's replay position is strictly greater than it; replay then has
        replayed the WAL record that starts there.
      - When that does not happen in time the task fails without promoting, and the message names the LSN asked for
        and the standby's received and replayed LSNs.
      - Meant for the old primary's shutdown checkpoint location (C(Latest checkpoint location) of C(pg_controldata)
        after a clean stop) in a switchover.
      - Ignored on a server that is already a primary. Paused replay does not advance, so with O(allow_paused=true)
        and a replay position short of it the wait ends in that refusal.
      - Leave it out (for example with the C(default) filter and C(omit)) to promote without waiting; an empty
        string is refused like any other malformed value.
    type: str
extends_documentation_fragment:
  - pgrepl.streaming.connection
attributes:
  check_mode:
    description:
      - Reads the facts (read-only queries), applies every refusal, waits for O(replay_past_lsn) the same way (read-only
        queries) and refuses the same way, and predicts RV(outcome=would_promote) and C(changed=true) for a standby;
        sends neither C(pg_promote) nor C(CHECKPOINT).
    support: full
  diff_mode:
    description: Before and after of C(in_recovery).
    support: full
notes:
  - Supports PostgreSQL 13 to 18.
  - RV(promoted_at_lsn) comes from the new timeline's history file, read with C(pg_read_file) (a superuser or a
    member of C(pg_read_server_files)); without that privilege it is the replay position before promotion, with a
    warning.
seealso:
  - name: pg_promote
    description: The function this module calls.
    link: https://www.postgresql.org/docs/current/functions-admin.html#FUNCTIONS-RECOVERY-CONTROL
  - module: pgrepl.streaming.rewind
    description: Turn the old primary into something that can follow the new one.
'''

EXAMPLES = r'''
- name: Promote db2 (the old primary db1 is already stopped)
  pgrepl.streaming.promote:
    login_host: db2.example.com
    login_user: postgres
    login_password: "{{ vault_postgres_password }}"
  register: pgrepl_promoted

- name: Promote over the local socket, waiting up to five minutes for a long replay
  pgrepl.streaming.promote:
    wait_seconds: 300
    login_unix_socket: /var/run/postgresql
  become: true
  become_user: postgres

- name: Promote a standby whose replay was paused for a point-in-time investigation
  pgrepl.streaming.promote:
    allow_paused: true
    login_unix_socket: /var/run/postgresql
  become: true
  become_user: postgres

- name: Read the stopped old primary's pg_control (its shutdown checkpoint location)
  pgrepl.streaming.replication_info:
    data_dir: /var/lib/postgresql/15/main
    login_unix_socket: /var/run/postgresql
  delegate_to: db1
  become: true
  become_user: postgres
  register: pgrepl_old_primary

- name: Switchover - promote db2 only once it has replayed the old primary's shutdown checkpoint
  pgrepl.streaming.promote:
    replay_past_lsn: "{{ pgrepl_old_primary.data_dir_facts.checkpoint_lsn }}"
    wait_seconds: 30
    login_unix_socket: /var/run/postgresql
  become: true
  become_user: postgres

- name: Show where the new timeline began
  ansible.builtin.debug:
    msg: "timeline {{ pgrepl_promoted.timeline_before }} -> {{ pgrepl_promoted.timeline_after }}
      at {{ pgrepl_promoted.promoted_at_lsn }}"
'''

RETURN = r'''
outcome:
  description: V(promoted), V(would_promote) (check mode) or V(already_primary) (nothing to do).
  returned: success
  type: str
  sample: promoted
msg:
  description: One sentence saying what was (or would be) done.
  returned: success
  type: str
  sample: "promoted the standby at postgres@db2.example.com:5432/postgres: timeline 1 -> 2 at 0/3018080"
in_recovery:
  description: Whether the server is in recovery after the run (true in check mode for a standby).
  returned: success
  type: bool
  sample: false
timeline_before:
  description:
    - The timeline the standby was on before promotion (from the new timeline's history file when it could be
      read, else the largest timeline C(pg_stat_wal_receiver) and C(pg_control) knew).
    - For an already-primary server, its current timeline.
  returned: success
  type: int
  sample: 1
timeline_after:
  description:
    - The new primary's timeline, from the name of its current WAL file (right after promotion C(pg_control) may
      still show the old one). The current timeline of an already-primary server; null in check mode.
  returned: success
  type: int
  sample: 2
promoted_at_lsn:
  description: The LSN at which the new timeline began (the switch point in its history file); null when nothing
    was promoted.
  returned: success
  type: str
  sample: 0/3018080
received_lsn:
  description: C(pg_last_wal_receive_lsn) before promotion, after the wait for O(replay_past_lsn) when one was given
    (null on a primary, or when nothing was streamed).
  returned: success
  type: str
  sample: 0/3018080
replayed_lsn:
  description: C(pg_last_wal_replay_lsn) before promotion, after the wait for O(replay_past_lsn) when one was given
    (null on a primary).
  returned: success
  type: str
  sample: 0/3018080
replay_paused:
  description: Whether WAL replay was paused before the run.
  returned: success
  type: bool
  sample: false
wait_seconds:
  description: The O(wait_seconds) used.
  returned: success
  type: int
  sample: 60
replay_past_lsn:
  description: The O(replay_past_lsn) asked for, as PostgreSQL prints an LSN (upper case, no leading zeros); null when
    none was given.
  returned: success
  type: str
  sample: 0/3000060
caught_up_lsn:
  description: The standby's replay position seen when it was past O(replay_past_lsn); null when no O(replay_past_lsn)
    was given or the server was already a primary.
  returned: success
  type: str
  sample: 0/30000D8
checkpointed:
  description: Whether a C(CHECKPOINT) ran after the promotion.
  returned: success
  type: bool
  sample: true
duration_seconds:
  description: How long the module ran.
  returned: success
  type: float
  sample: 1.2
diff:
  description: Before and after of C(in_recovery) (in diff mode).
  returned: when diff mode is on
  type: dict
  sample: {"before": {"in_recovery": true}, "after": {"in_recovery": false}}
'''

from ansible_collections.pgrepl.streaming.plugins.module_utils._module import module_from_spec, run
from ansible_collections.pgrepl.streaming.plugins.module_utils._promote import PROMOTE_SPEC, run_promote


def main() -> None:
    module = module_from_spec(PROMOTE_SPEC)
    run(module, run_promote)


if __name__ == '__main__':
    main()
