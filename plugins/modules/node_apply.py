#!/usr/bin/python
# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module pgrepl.streaming.node_apply."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: node_apply
short_description: Several of this collection's modules on one node, in order, in one call
version_added: 0.1.0
author: pgrepl maintainers (@pgrepl)
description:
  - Runs the bodies of other modules of this collection (C(server_settings), C(replication_user),
    C(replication_slot), C(pg_hba), C(passfile), C(standby_config), C(rewind_grants), C(standby_clone),
    C(server_start)), one item after another, with their own option validation, check mode and diff, and returns
    what each changed. Each behaves exactly as its own module; only the round trips are saved (one call instead
    of one per module and item).
  - In check mode it is the read-only answer to what would change on this node. Each module body predicts its
    own change (no DDL is sent, no file written), and RV(changed_checks) names the checks a real run would change.
  - The first refusal stops the run and fails the task, naming the check and item (for example C(hba[1]), a
    C(pg_hba) item); the items before it stay done, as separate tasks would.
  - A C(server_start) item restarts the server when an item before it in the same call left a restart pending (a
    C(server_settings) or C(standby_config) item wrote a setting of context C(postmaster) that the running server
    does not have, now or in an earlier run); items after it then see the restarted server. So settings, the
    restart they need and what needs the restarted server (the slots of a primary whose C(wal_level) or
    C(max_replication_slots) could not hold them) go in one call, and nothing restarts when nothing waits for it.
  - In check mode on a host where psycopg cannot be imported yet (a real run of the roles installs it first with
    M(pgrepl.streaming.node_prepare)), the items that must ask the server are reported as changes without asking
    it (RV(predicted)), a C(server_settings) item so reported counts as leaving a restart pending, and the file
    items and C(server_start) make their own prediction.
  - The primary and standby roles call it directly with every piece they manage. Each module body changes only
    what differs, so a converged node costs this one call and reports nothing changed.
options:
  checks:
    description:
      - Named checks. Each value is a dict with C(module) (one of C(server_settings), C(replication_user),
        C(replication_slot), C(pg_hba), C(passfile), C(standby_config), C(rewind_grants), C(standby_clone),
        C(server_start)) and C(params), the module's options as a dict or a list of dicts (one per item, as a loop
        would pass them); run in the order given.
      - Modules that connect to the server get this module's connection options unless their params set them.
      - Do not put passwords here (this option is not hidden); use O(replication_password).
    type: dict
    required: true
  replication_password:
    description:
      - Filled in as the C(password) of C(replication_user) checks and of C(passfile) entries that have none.
        Never shown.
    type: str
  upstream_pending:
    description:
      - Check mode only. True when the node a C(standby_clone) item copies from would itself change first in this
        run (its replication role, pg_hba entries or slot not there yet; the standby role sets it from the
        upstream's own check-mode result). Such items are then reported as changes (RV(predicted)) instead of
        connecting to an upstream that cannot accept them yet. Ignored outside check mode.
    type: bool
    default: false
  release_lease:
    description:
      - The lease of this ansible-playbook run on the node (see O(pgrepl.streaming.node_prepare#module:lease)) to let
        go of once every item succeeded, for a playbook whose last module call on the node is this one (site's
        roles pass it when nothing later in the run changes the node; its release play then skips the node).
      - Nothing is released when an item fails, or in check mode (where the lease was only read). A lease of
        another run is left as it is, with a warning. Releasing is never reported as a change. A relative
        O(release_lease.path) or an empty O(release_lease.run_id) is refused before any item runs.
    type: dict
    suboptions:
      path:
        description: The lease file (RV(pgrepl.streaming.node_prepare#module:lease.path)).
        type: path
        required: true
      run_id:
        description: This run's id (RV(pgrepl.streaming.node_prepare#module:lease.holder.run_id)).
        type: str
        required: true
extends_documentation_fragment:
  - pgrepl.streaming.connection
attributes:
  check_mode:
    description: Each module body predicts its change and changes nothing (the same prediction its own module
      makes in check mode).
    support: full
  diff_mode:
    description: The diffs of every module body, in order.
    support: full
"""

EXAMPLES = r"""
- name: Replication role, pg_hba entries and slots of the primary, in one call
  pgrepl.streaming.node_apply:
    login_os_user: postgres
    checks:
      role:
        module: replication_user
        params: {name: replicator}
      hba:
        module: pg_hba
        params:
          - {contype: host, databases: [replication], users: [replicator], address: 10.0.0.11/32,
             method: scram-sha-256}
          - {contype: host, databases: [replication], users: [replicator], address: 10.0.0.12/32,
             method: scram-sha-256}
      slots:
        module: replication_slot
        params: [{name: standby1, immediately_reserve: true}, {name: standby2, immediately_reserve: true}]
    replication_password: "{{ vault_replication_password }}"
  become: true
"""

RETURN = r"""
reason:
  description: On a failed task, the failing item's own C(reason) where its module returns one (such as
    C(server_start)'s V(not_streaming)); a fixed code to decide by, where the message is for people.
  returned: failure, when the failing item's module gives one
  type: str
  sample: not_streaming
changed_checks:
  description: For each check, whether any of its items changed something (or would, in check mode).
  returned: always
  type: dict
  sample: {role: false, hba: true, slots: true}
check_results:
  description: For each check, one result per item - C(changed), C(seconds) (how long the item took), and
    C(restart_required)/C(outcome)/C(waited_seconds) where the module returns them (C(outcome) is V(predicted)
    for an item reported as a change without asking the server, see RV(predicted)).
  returned: always
  type: dict
  sample: {settings: [{changed: true, restart_required: true, seconds: 0.05}],
           restart: [{changed: true, outcome: restarted, waited_seconds: 0.0, seconds: 2.41}]}
restart_required:
  description: Whether a setting written now or earlier still waits for a restart after the call (no
    C(server_start) item came after the item that left it pending).
  returned: always
  type: bool
lease:
  description: With O(release_lease), outside check mode and when every item succeeded, what became of the lease,
    its C(path), C(state) (C(released), C(free) when there was none, C(other) when another run holds it) and
    C(released).
  returned: when O(release_lease) is given and the call succeeded outside check mode
  type: dict
  sample: {path: /var/lib/pgrepl/run.lease, state: released, released: true}
predicted:
  description: The checks reported as changes without asking the server (check mode, psycopg not installed on the
    host yet, a password file or an upstream this run changes first); empty otherwise.
  returned: always
  type: list
  elements: str
"""

from ansible_collections.pgrepl.streaming.plugins.module_utils._module import module_from_spec, run
from ansible_collections.pgrepl.streaming.plugins.module_utils._node_apply import NODE_APPLY_SPEC, run_node_apply


def main() -> None:
    module = module_from_spec(NODE_APPLY_SPEC)
    run(module, run_node_apply, needs_psycopg=False)


if __name__ == "__main__":
    main()
