# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module pgrepl.streaming.replication_user."""

from __future__ import annotations

DOCUMENTATION = r'''
---
module: replication_user
short_description: Manage the PostgreSQL role that standbys use to stream (LOGIN REPLICATION, never SUPERUSER)
version_added: 0.1.0
author: pgrepl maintainers (@pgrepl)
description:
  - Creates, updates or drops a role with C(LOGIN) and C(REPLICATION) that is never a superuser.
  - With O(replication=false) it manages an ordinary login role instead (C(LOGIN NOREPLICATION), never a
    superuser), with the same password handling. That is what pg_rewind wants as the role it connects to its source
    as (for example C(pgrepl_rewind)); give that role its EXECUTE grants with M(pgrepl.streaming.rewind_grants).
  - The SCRAM-SHA-256 password verifier is computed on the managed host (RFC 5802/RFC 7677, 4096 iterations,
    random 16-byte salt), so the cleartext password never reaches the server, its statement log or its error
    messages. The server receives C(ALTER ROLE ... PASSWORD 'SCRAM-SHA-256$...') and stores that verifier as it is.
  - Idempotent without sending the password; the stored verifier is read from C(pg_authid) and recomputed with
    its own salt and iteration count. A stored md5 hash, or no password at all, counts as a different password
    and is replaced by a SCRAM-SHA-256 verifier.
  - Non-ASCII passwords are prepared with SASLprep exactly as PostgreSQL prepares them (and, where PostgreSQL
    falls back to the raw UTF-8 bytes, so does this module), so clients using libpq can log in with them.
  - Refuses to touch an existing role of that name that is a SUPERUSER (it never grants SUPERUSER and never
    silently takes it away), and refuses to run on a standby.
  - An existing role whose C(REPLICATION) attribute differs from O(replication) is brought in line with
    C(ALTER ROLE ... REPLICATION) or C(ALTER ROLE ... NOREPLICATION).
  - Needs a superuser O(login_user), because the stored verifier lives in C(pg_authid), which only superusers
    can read.
options:
  name:
    description:
      - Name of the role. Any name PostgreSQL accepts, up to 63 bytes in UTF-8; it is always quoted as an identifier,
        so C(Repl) and C(repl) are different roles.
      - Names starting with C(pg_), and C(public) and C(none), are reserved by PostgreSQL and refused.
    type: str
    required: true
  password:
    description:
      - The role's password. Only its SCRAM-SHA-256 verifier is sent to the server.
      - A value that already is a SCRAM-SHA-256 verifier in PostgreSQL's format is stored as it is (as PostgreSQL
        itself would), and compared as a string. An md5 hash is refused.
      - Omit it to leave the stored password alone (a new role then has no password and can only log in with
        another authentication method).
    type: str
  state:
    description:
      - V(present) creates the role or brings its attributes in line; V(absent) drops it.
      - Dropping is refused, in check mode too, while the role owns objects or holds privileges in any database.
    type: str
    default: present
    choices: [present, absent]
  update_password:
    description:
      - V(always) sets O(password) whenever it differs from the stored one.
      - V(on_create) sets O(password) only when the role is created, and never changes the password of an
        existing role.
    type: str
    default: always
    choices: [always, on_create]
  conn_limit:
    description:
      - Maximum number of concurrent connections of the role (C(CONNECTION LIMIT)); V(-1) means no limit.
      - Must be V(-1) or more.
    type: int
    default: -1
  replication:
    description:
      - V(true) manages a replication role (C(LOGIN REPLICATION)), the role standbys stream with.
      - V(false) manages an ordinary login role (C(LOGIN NOREPLICATION)), which is what pg_rewind wants as the role it
        connects to its source as; an existing role that has C(REPLICATION) loses it.
      - Either way the role can log in and is never a superuser. Ignored with O(state=absent).
    type: bool
    default: true
  promote:
    description:
      - Also grant the role C(EXECUTE) on C(pg_catalog.pg_promote) (boolean, integer) in the database of the
        connection (O(login_db)), when it may not execute it yet (a grant to PUBLIC or to a role it inherits from
        counts). pgrepl.streaming.handover promotes a standby over SQL as the replication user with it; a standby
        gets the grant with the WAL.
      - V(false) leaves the role's function privileges as they are (nothing is revoked). Ignored with
        O(state=absent).
    type: bool
    default: false
extends_documentation_fragment:
  - pgrepl.streaming.connection
attributes:
  check_mode:
    support: full
    description: Decides from C(pg_authid) what would change and sends no DDL at all.
  diff_mode:
    support: full
    description: Shows the role's attributes before and after, and C(password) as C(changed) or C(unchanged)
      (never the password or its verifier).
notes:
  - With C(log_statement) set to C(ddl) or C(all), the server log records the SCRAM verifier (as it does for
    psql's C(\password)), never the cleartext password.
  - The task result never contains the statements sent, because they carry the verifier.
seealso:
  - name: PostgreSQL password authentication
    description: How SCRAM-SHA-256 verifiers are stored and checked.
    link: https://www.postgresql.org/docs/current/auth-password.html
'''

EXAMPLES = r'''
- name: Create the replication role used by the standbys
  pgrepl.streaming.replication_user:
    name: replicator
    password: "{{ pgrepl_replication_password }}"
    login_unix_socket: /var/run/postgresql
  become: true
  become_user: postgres

- name: Create it once, keep whatever password it has afterwards, at most 5 connections
  pgrepl.streaming.replication_user:
    name: replicator
    password: "{{ pgrepl_replication_password }}"
    update_password: on_create
    conn_limit: 5
    login_host: db1.example.com
    login_password: "{{ pgrepl_superuser_password }}"
    ssl_mode: verify-full
    ssl_rootcert: /etc/pki/pgrepl/ca.pem

- name: The ordinary login role pg_rewind connects to its source as (not a replication role)
  pgrepl.streaming.replication_user:
    name: pgrepl_rewind
    password: "{{ pgrepl_rewind_password }}"
    replication: false
    login_unix_socket: /var/run/postgresql
  become: true
  become_user: postgres

- name: Give it the four EXECUTE grants pg_rewind needs
  pgrepl.streaming.rewind_grants:
    role: pgrepl_rewind
    login_unix_socket: /var/run/postgresql
  become: true
  become_user: postgres

- name: Remove a replication role that is no longer used
  pgrepl.streaming.replication_user:
    name: old_replicator
    state: absent
    login_unix_socket: /var/run/postgresql
  become: true
  become_user: postgres
'''

RETURN = r'''
role:
  description:
    - The role after the task (predicted in check mode). Not returned when O(state=absent).
  returned: when O(state=present) and the task did not fail
  type: dict
  contains:
    name:
      description: Name of the role.
      type: str
      sample: replicator
    login:
      description: Whether the role can log in (always true).
      type: bool
      sample: true
    replication:
      description: Whether the role has the REPLICATION attribute (the value of O(replication)).
      type: bool
      sample: true
    superuser:
      description: Whether the role is a superuser (always false; superuser roles are refused).
      type: bool
      sample: false
    conn_limit:
      description: Connection limit of the role, -1 for no limit.
      type: int
      sample: -1
    password_set:
      description: Whether the role has a stored password.
      type: bool
      sample: true
    may_promote:
      description: Whether the role may execute C(pg_promote) (returned with O(promote=true)).
      type: bool
      sample: true
diff:
  description:
    - Before and after of C(state), C(login), C(replication), C(superuser), C(conn_limit), C(password_set),
      C(password) as C(changed) or C(unchanged), and (with O(promote=true)) C(may_promote). Only with C(--diff).
  returned: when diff mode is on
  type: dict
  sample:
    before: {state: present, login: true, replication: false, superuser: false, conn_limit: -1,
             password_set: true, password: unchanged}
    after: {state: present, login: true, replication: true, superuser: false, conn_limit: -1,
            password_set: true, password: changed}
'''

from ansible_collections.pgrepl.streaming.plugins.module_utils._module import module_from_spec, run
from ansible_collections.pgrepl.streaming.plugins.module_utils._replication_user import (
    REPLICATION_USER_SPEC,
    ensure_replication_user,
)


def main() -> None:
    module = module_from_spec(REPLICATION_USER_SPEC)
    run(module, ensure_replication_user)


if __name__ == '__main__':
    main()
