#!/usr/bin/python
# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module pgrepl.streaming.rewind_grants."""

from __future__ import annotations

DOCUMENTATION = r'''
---
module: rewind_grants
short_description: Grant an ordinary role the EXECUTE privileges pg_rewind needs on its source
version_added: 0.1.0
author: pgrepl maintainers (@pgrepl)
description:
  - Grants O(role) EXECUTE on the four functions PostgreSQL's pg_rewind documentation lists for a role that is not a
    superuser, C(pg_catalog.pg_ls_dir) with arguments C(text, boolean, boolean), C(pg_catalog.pg_stat_file) with
    C(text, boolean), and C(pg_catalog.pg_read_binary_file) with C(text) and with C(text, bigint, bigint, boolean),
    so that pgrepl.streaming.rewind can run pg_rewind as that role.
  - Grants only what the role may not execute yet (C(has_function_privilege), which also counts grants to PUBLIC
    and to roles it inherits from), in one transaction; C(changed=false) when nothing is missing.
  - Function privileges are per database. The grants are made in O(login_db), which must be the database pg_rewind
    connects to (the rewind module's C(source_dbname), C(postgres) by default). Run it on the primary; the grants
    reach the standbys by replication, so every node that may become the source has them.
  - Refuses, changing nothing, a O(role) that does not exist or is a superuser, a O(login_user) that is not a
    superuser, and a standby.
options:
  role:
    description: The existing, ordinary (not superuser) login role pg_rewind connects as. At most 63 bytes.
    type: str
    required: true
  state:
    description:
      - V(present) grants whichever of the functions the role may not execute yet.
      - V(absent) revokes the grants of these functions that the role holds itself (what V(present) gave it; grants
        to PUBLIC or to roles it inherits from are not its own and stay), so that a role kept only for a rejoin no
        longer reads files on the server. A role that does not exist holds nothing (C(changed=false)).
    type: str
    default: present
    choices: [present, absent]
extends_documentation_fragment:
  - pgrepl.streaming.connection
attributes:
  check_mode:
    description: Reads the privileges (C(has_function_privilege)) and reports the grants it would make; sends no
      GRANT.
    support: full
  diff_mode:
    description: Before and after of the list of pg_rewind's functions the role may execute.
    support: full
notes:
  - Supports PostgreSQL 13 to 18.
  - The module only grants; revoke with SQL when a role no longer needs them.
seealso:
  - name: pg_rewind (Notes)
    description: The grants a non-superuser pg_rewind role needs.
    link: https://www.postgresql.org/docs/current/app-pgrewind.html
  - module: pgrepl.streaming.rewind
    description: Runs pg_rewind as this role.
'''

EXAMPLES = r'''
- name: Let pgrepl_rewind run pg_rewind against the primary
  pgrepl.streaming.rewind_grants:
    role: pgrepl_rewind
    login_unix_socket: /var/run/postgresql
  become: true
  become_user: postgres

- name: Grants in the database pg_rewind connects to, over TCP
  pgrepl.streaming.rewind_grants:
    role: pgrepl_rewind
    login_db: postgres
    login_host: db1.example.com
    login_user: postgres
    login_password: "{{ vault_postgres_password }}"
'''

RETURN = r'''
role:
  description: The role (O(role)).
  returned: success
  type: str
  sample: pgrepl_rewind
database:
  description: The database the grants are in (the connection's database).
  returned: success
  type: str
  sample: postgres
granted:
  description: The functions granted by this run (in check mode, the ones that would be); empty when none was missing.
  returned: success
  type: list
  elements: str
  sample: ["pg_catalog.pg_ls_dir(text, boolean, boolean)", "pg_catalog.pg_stat_file(text, boolean)"]
revoked:
  description: With O(state=absent), the functions whose grant to the role this run revoked (in check mode, would
    revoke).
  returned: success
  type: list
  elements: str
  sample: ["pg_catalog.pg_read_binary_file(text)"]
already_granted:
  description: The functions the role could already execute before the run.
  returned: success
  type: list
  elements: str
  sample: ["pg_catalog.pg_read_binary_file(text)"]
statements:
  description: The GRANT statements sent (in check mode, that would be sent).
  returned: success
  type: list
  elements: str
  sample: ['GRANT EXECUTE ON FUNCTION pg_catalog.pg_ls_dir(text, boolean, boolean) TO "pgrepl_rewind"']
msg:
  description: One sentence saying what was (or would be) granted.
  returned: success
  type: str
  sample: "granted 4 of pg_rewind's functions to 'pgrepl_rewind' in database 'postgres'"
diff:
  description: Before and after of the functions the role may execute (in diff mode).
  returned: when diff mode is on
  type: dict
  sample: {"before": {"executable_functions": []},
           "after": {"executable_functions": ["pg_catalog.pg_ls_dir(text, boolean, boolean)"]}}
'''

from ansible_collections.pgrepl.streaming.plugins.module_utils._module import module_from_spec, run
from ansible_collections.pgrepl.streaming.plugins.module_utils._rewind_grants import (
    REWIND_GRANTS_SPEC,
    run_rewind_grants,
)


def main() -> None:
    module = module_from_spec(REWIND_GRANTS_SPEC)
    run(module, run_rewind_grants)


if __name__ == '__main__':
    main()
