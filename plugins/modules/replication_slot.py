# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module: a physical replication slot, present or absent."""

from __future__ import annotations

DOCUMENTATION = r'''
---
module: replication_slot
short_description: Create or drop a physical replication slot
version_added: 0.1.0
author: pgrepl maintainers (@pgrepl)
description:
  - Makes sure a physical replication slot exists (O(state=present)) or does not (O(state=absent)) on one
    PostgreSQL server, and returns the slot's state as C(pg_replication_slots) shows it, with the bytes of WAL
    it retains.
  - The connecting role needs the C(SUPERUSER) or the C(REPLICATION) attribute, as PostgreSQL's
    C(pg_create_physical_replication_slot) and C(pg_drop_replication_slot) do; the module refuses otherwise.
  - An existing slot is never dropped and recreated to change its reservation; an existing slot that reserves
    nothing although O(immediately_reserve=true) is only reported (RV(reserve_mismatch) and a warning).
  - A logical slot of the same name is refused, whatever O(state) is.
options:
  name:
    description:
      - Name of the slot. Lower-case letters, digits and underscores, 1 to 63 characters (C(^[a-z0-9_]{1,63}$)).
    type: str
    required: true
  state:
    description:
      - V(present) creates the slot when it is missing; V(absent) drops it when it exists.
    type: str
    choices: [present, absent]
    default: present
  immediately_reserve:
    description:
      - When creating the slot, reserve WAL at once (the slot gets a C(restart_lsn) before any consumer
        connects), so a standby cloned afterwards finds every segment it needs.
      - On an existing slot it changes nothing; with V(true), a slot that reserves nothing is reported in
        RV(reserve_mismatch) and a warning. A slot that reserves WAL although this is V(false) is normal (it
        reserves from the moment a consumer streams through it) and is not reported.
    type: bool
    default: false
  force:
    description:
      - With O(state=absent), drop the slot even while a walsender uses it. The walsender is terminated with
        C(pg_terminate_backend), the module waits up to 10 seconds for the slot to be released, then drops it.
      - Without it, dropping an active slot is refused.
    type: bool
    default: false
  allow_on_standby:
    description:
      - Allow creating the slot on a standby (a server in recovery), which a cascading standby needs.
      - Without it, creating a slot on a standby is refused. Dropping one there is always allowed.
    type: bool
    default: false
  wait_inactive:
    description:
      - With O(state=absent) and without O(force), seconds to wait for an active slot to be released (its consumer
        moving to another node, as a standby that now streams from a cascade upstream) before the drop is refused
        (0 to 3600). The slot is dropped as soon as no process uses it.
      - In check mode an active slot is not waited for; the drop is predicted, with a warning.
      - V(0) refuses an active slot at once.
    type: int
    default: 0
extends_documentation_fragment:
  - pgrepl.streaming.connection
attributes:
  check_mode:
    description: Decides from the catalog what would change and reports it; sends no statement that mutates.
    support: full
  diff_mode:
    description: Shows before and after of the slot's presence and WAL reservation.
    support: full
notes:
  - Supports PostgreSQL 13 to 18 (C(wal_status) and C(safe_wal_size) exist in C(pg_replication_slots) there).
seealso:
  - name: Replication slots
    description: PostgreSQL's documentation of replication slots.
    link: https://www.postgresql.org/docs/current/warm-standby.html#STREAMING-REPLICATION-SLOTS
'''

EXAMPLES = r'''
- name: Slot for the standby db2, reserving WAL before it is cloned
  pgrepl.streaming.replication_slot:
    name: db2
    immediately_reserve: true
    login_host: db1.example.com
    login_user: postgres
    login_password: "{{ vault_postgres_password }}"

- name: Slot named after an inventory host, on the primary's unix socket
  pgrepl.streaming.replication_slot:
    name: "{{ item | lower | regex_replace('[^a-z0-9_]', '_') }}"
  loop: "{{ groups['standbys'] }}"
  become: true
  become_user: postgres

- name: Slot on a standby for a cascading standby behind it
  pgrepl.streaming.replication_slot:
    name: db3
    allow_on_standby: true
    login_host: db2.example.com

- name: Drop the slot of a decommissioned standby, even if it is still streaming
  pgrepl.streaming.replication_slot:
    name: db4
    state: absent
    force: true
'''

RETURN = r'''
slot:
  description:
    - The slot as C(pg_replication_slots) shows it after the run; null when there is no such slot
      (after O(state=absent), or in check mode before the slot would be created).
  returned: always
  type: dict
  contains:
    name:
      description: Name of the slot.
      type: str
      sample: db2
    slot_type:
      description: Always V(physical) for slots this module manages.
      type: str
      sample: physical
    active:
      description: Whether a process (a walsender) uses the slot now.
      type: bool
      sample: true
    active_pid:
      description: Process ID of the process using the slot, null when inactive.
      type: int
      sample: 41321
    restart_lsn:
      description: Oldest WAL location the slot keeps for its consumer; null when it reserves nothing.
      type: str
      sample: 0/3000148
    wal_status:
      description: C(reserved), C(extended), C(unreserved) or C(lost); null when the slot reserves nothing.
      type: str
      sample: reserved
    safe_wal_size:
      description: Bytes of WAL that can still be written before the slot risks losing WAL
        (C(max_slot_wal_keep_size)); null when that setting is -1 or the slot reserves nothing.
      type: int
      sample: null
    retained_bytes:
      description: Bytes of WAL the slot retains, C(pg_current_wal_lsn) (on a standby
        C(pg_last_wal_receive_lsn)) minus C(restart_lsn); null when C(restart_lsn) is null or the standby
        has received no WAL yet.
      type: int
      sample: 16384
    reserved:
      description: Whether the slot reserves WAL (its C(restart_lsn) is not null).
      type: bool
      sample: true
in_recovery:
  description: Whether the server is a standby (C(pg_is_in_recovery)).
  returned: success
  type: bool
  sample: false
reserve_mismatch:
  description: True when O(immediately_reserve=true) but the existing slot reserves no WAL; the slot is left
    as it is and a warning says so.
  returned: success
  type: bool
  sample: false
terminated_pids:
  description: Walsender processes terminated by O(force) so the slot could be dropped (in check mode, the
    ones that would be terminated).
  returned: success
  type: list
  elements: int
  sample: [41321]
diff:
  description: Before and after of the slot's presence and reservation (in diff mode).
  returned: when diff mode is on
  type: dict
  sample: {"before": {"present": false, "reserved": false}, "after": {"present": true, "reserved": true}}
'''

from ansible_collections.pgrepl.streaming.plugins.module_utils._module import module_from_spec, run
from ansible_collections.pgrepl.streaming.plugins.module_utils._slots import REPLICATION_SLOT_SPEC, run_replication_slot


def main() -> None:
    module = module_from_spec(REPLICATION_SLOT_SPEC)
    run(module, run_replication_slot)


if __name__ == '__main__':
    main()
