#!/usr/bin/python
# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module pgrepl.streaming.node_plan."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: node_plan
short_description: Which of this node's managed pieces differ from what is asked, in one read-only call
version_added: 0.1.0
author: pgrepl maintainers (@pgrepl)
description:
  - Runs the check-mode path of other modules of this collection (the same code and the same option validation
    those modules use) for a set of named checks, and reports for each whether the module would change
    something. Nothing is ever changed.
  - The roles call it once per host and then run only the modules whose check is pending, so a converged
    cluster costs one call per host instead of one per module and item.
  - A check that cannot be decided (an option the module would refuse, a server that is down, psycopg missing)
    counts as pending, so the module itself runs and reports its own error.
options:
  checks:
    description:
      - Named checks. Each value is a dict with C(module) (one of C(server_settings), C(replication_user),
        C(replication_slot), C(pg_hba), C(passfile), C(standby_config), C(rewind_grants), C(standby_clone)) and
        C(params), the module's options as a dict or a list of dicts (one per item, as a loop would pass them).
      - Modules that connect to the server get this module's connection options unless their params set them.
      - Do not put passwords here (this option is not hidden); use O(replication_password).
    type: dict
    required: true
  replication_password:
    description:
      - Filled in as the C(password) of C(replication_user) checks and of C(passfile) entries that have none.
        Never shown.
    type: str
extends_documentation_fragment:
  - pgrepl.streaming.connection
attributes:
  check_mode:
    description: Runs the same in check mode (it only reads).
    support: full
  diff_mode:
    description: Nothing to show; it never changes anything.
    support: none
"""

EXAMPLES = r"""
- name: Which pieces of the primary differ from the inventory
  pgrepl.streaming.node_plan:
    login_os_user: postgres
    checks:
      settings:
        module: server_settings
        params: {settings: {wal_level: replica, max_wal_senders: 10}}
      slots:
        module: replication_slot
        params: [{name: standby1, immediately_reserve: true}, {name: standby2, immediately_reserve: true}]
      role:
        module: replication_user
        params: {name: replicator}
    replication_password: "{{ vault_replication_password }}"
  become: true
  register: plan

- name: Settings only when they differ
  pgrepl.streaming.server_settings:
    login_os_user: postgres
    settings: {wal_level: replica, max_wal_senders: 10}
  become: true
  when: plan.pending.settings
"""

RETURN = r"""
pending:
  description: For each check, whether its module would change something (or could not tell).
  returned: always
  type: dict
  sample: {settings: false, slots: true, role: false}
details:
  description: For each check, one result per item; C(changed) (null when undecidable), C(error) when
    undecidable, and C(restart_required)/C(outcome) where the module returns them.
  returned: always
  type: dict
restart_required:
  description: Whether a server_settings check found settings written but waiting for a restart.
  returned: always
  type: bool
"""

from ansible_collections.pgrepl.streaming.plugins.module_utils._module import build_module, run  # noqa: E402
from ansible_collections.pgrepl.streaming.plugins.module_utils._plan import login_options, plan_node  # noqa: E402


def body(module) -> dict:
    return plan_node(module.params["checks"], login_options(module.params), module.no_log_values,
                     module.params["replication_password"])


def main() -> None:
    module = build_module({"checks": {"type": "dict", "required": True},
                           "replication_password": {"type": "str", "no_log": True}})
    run(module, body, needs_psycopg=False)


if __name__ == "__main__":
    main()
