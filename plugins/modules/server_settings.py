# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module pgrepl.streaming.server_settings."""

from __future__ import annotations

DOCUMENTATION = r'''
---
module: server_settings
short_description: Set PostgreSQL server settings with ALTER SYSTEM, and tell which ones wait for a restart
version_added: 0.1.0
author: pgrepl maintainers (@pgrepl)
description:
  - Writes a dictionary of settings into C(postgresql.auto.conf) with C(ALTER SYSTEM), then reloads the server
    configuration (C(pg_reload_conf)) when something changed.
  - Values are compared the way the server reads them, so C(1GB) and C(1024MB) are the same value, C(128MB) equals
    a C(shared_buffers) of C(16384) blocks of C(8kB), C(on), C(true), C(yes) and C(1) are the same boolean, enum
    values compare case-insensitively, and strings compare exactly.
  - A value is compared with what the configuration gives now, that is the entry in C(postgresql.auto.conf)
    (read through C(pg_file_settings)), else the entry in C(postgresql.conf), else the running value. A value
    already written but waiting for a restart is therefore not written again; it is reported with
    C(changed=false) and C(restart_required=true).
  - Whether a restart is needed is decided from the setting's context (C(postmaster)) and the value the
    configuration files give against the running value, not from C(pending_restart) (which the server only sets
    after a reload). The module never restarts the server.
  - Every name and value is checked before anything is written (unknown names, types, units, ranges, enum values,
    and, for settings a session may set, the server's own check through C(set_config) in a transaction that is
    rolled back). The few values only C(ALTER SYSTEM) itself can judge are written first, and if the server
    refuses one, the settings already written are put back, so a dictionary is never half applied.
  - Works on a standby too (C(ALTER SYSTEM) and C(pg_reload_conf) are allowed during recovery).
  - Needs a superuser O(login_user), or on PostgreSQL 15 and later a role granted C(ALTER SYSTEM ON PARAMETER)
    for each setting it changes, C(SELECT) on C(pg_file_settings) with C(EXECUTE) on
    C(pg_show_all_file_settings), and C(EXECUTE) on C(pg_reload_conf) when O(reload=true).
  - A C(primary_conninfo) with a password is refused (the server would keep it in C(postgresql.auto.conf) and
    print it in its log on reload); use C(passfile=...). A password already configured there is masked in
    the module's output.
options:
  settings:
    description:
      - Setting names mapped to values. Names match C(^[a-z_][a-z0-9_.]*$) (any case) and must be known to the
        server (listed in C(pg_settings)); a setting of an extension (C(name.with.dot)) is known only once its
        library is loaded.
      - A value is a string, a number or a boolean (written as C(on)/C(off)). Numbers may carry the server's units
        (C(B), C(kB), C(MB), C(GB), C(TB); C(us), C(ms), C(s), C(min), C(h), C(d)).
      - A list is accepted for list settings (for example C(shared_preload_libraries), C(search_path),
        C(listen_addresses)); for C(shared_preload_libraries), C(session_preload_libraries),
        C(local_preload_libraries), C(search_path), C(temp_tablespaces) and C(unix_socket_directories) a string
        is split on commas too.
      - V(null) removes the setting from C(postgresql.auto.conf) (C(ALTER SYSTEM RESET)), so the value from
        C(postgresql.conf) or the built-in default applies again. The string C(DEFAULT) is an ordinary value.
      - Refused are C(data_directory), C(config_file), C(hba_file), C(ident_file), the per-transaction
        C(transaction_*) settings, and read-only (C(internal)) settings.
    type: dict
    required: true
  reload:
    description:
      - Run C(pg_reload_conf) after a change, so settings that need no restart take effect.
    type: bool
    default: true
extends_documentation_fragment:
  - pgrepl.streaming.connection
attributes:
  check_mode:
    support: full
    description: Reads the server and reports exactly what a real run would change; sends no C(ALTER SYSTEM)
      and does not reload (values are still tried with C(set_config) in a rolled-back transaction). A string
      value that only C(ALTER SYSTEM) can judge (such as C(log_destination)) is not judged in check mode.
  diff_mode:
    support: full
    description: Before and after of every setting given, as the configuration gives it.
notes:
  - C(ALTER SYSTEM) cannot run inside a transaction block; the module's connection is in autocommit mode.
  - Settings of context C(backend) or C(superuser-backend) apply to sessions that start after the reload.
  - A setting given on the server's command line takes precedence over C(postgresql.auto.conf); the module warns.
seealso:
  - name: ALTER SYSTEM
    description: The statement this module runs.
    link: https://www.postgresql.org/docs/current/sql-altersystem.html
'''

EXAMPLES = r'''
- name: Keep WAL for slow standbys and log slow statements (applied by a reload)
  pgrepl.streaming.server_settings:
    settings:
      wal_keep_size: 1GB
      log_min_duration_statement: 250ms
      hot_standby_feedback: true

- name: More WAL senders; the server must be restarted afterwards
  pgrepl.streaming.server_settings:
    settings:
      max_wal_senders: 12
      shared_preload_libraries: [pg_stat_statements]
  register: pg_settings_result

- name: Restart when a setting waits for it
  ansible.builtin.service:
    name: postgresql
    state: restarted
  when: pg_settings_result.restart_required

- name: Back to the value of postgresql.conf (or the default)
  pgrepl.streaming.server_settings:
    settings:
      wal_keep_size: null
    login_host: db1.example.com
    login_password: "{{ vault_postgres_password }}"
'''

RETURN = r'''
changed:
  description: Whether any setting was (or in check mode would be) written to C(postgresql.auto.conf).
  returned: always
  type: bool
  sample: true
restart_required:
  description: Whether any setting given waits for a restart of the server to take effect.
  returned: always
  type: bool
  sample: true
reloaded:
  description: Whether C(pg_reload_conf) ran (in check mode, whether a real run would run it).
  returned: always
  type: bool
  sample: true
settings:
  description: One entry per setting given, keyed by the name as given.
  returned: always
  type: dict
  contains:
    old:
      description: The running value before this run, with its unit as C(SHOW) prints it.
      type: str
      sample: 256MB
    new:
      description: The requested value (list elements joined with C(, )); null for a reset.
      type: str
      sample: 1GB
    pending:
      description: A value in the configuration files that the server does not run yet (it waits for a
        reload or a restart), as written in the file; null when there is none.
      type: str
      sample: '12'
    changed:
      description: Whether this setting was (or would be) written or reset.
      type: bool
    restart_required:
      description: Whether this setting's configured value differs from the running one and only a restart
        applies it (context C(postmaster)).
      type: bool
    context:
      description: The setting's context in C(pg_settings) (C(postmaster), C(sighup), C(superuser), C(user), ...).
      type: str
      sample: sighup
  sample:
    max_wal_senders: {old: '10', new: '12', pending: null, changed: true, restart_required: true,
                      context: postmaster}
diff:
  description:
    - For each setting given, the value the configuration gives before and after the run (a file entry as
      written, else the running value); a reset shows the removed entry before and null after.
  returned: when diff mode is on
  type: dict
  sample:
    before: {wal_keep_size: '256MB'}
    after: {wal_keep_size: '1GB'}
'''

from ansible_collections.pgrepl.streaming.plugins.module_utils._module import module_from_spec, run
from ansible_collections.pgrepl.streaming.plugins.module_utils._settings import (
    SERVER_SETTINGS_SPEC,
    run_server_settings,
)


def main() -> None:
    module = module_from_spec(SERVER_SETTINGS_SPEC)
    run(module, run_server_settings)


if __name__ == '__main__':
    main()
