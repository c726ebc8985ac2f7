#!/usr/bin/python
# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module pgrepl.streaming.standby_config."""

from __future__ import annotations

DOCUMENTATION = r'''
---
module: standby_config
short_description: Make a PostgreSQL data directory a standby of a primary (or not), by its files
version_added: 0.1.0
author: pgrepl maintainers (@pgrepl)
description:
  - With O(state=standby), makes sure the data directory has a C(standby.signal) file, a C(primary_conninfo)
    built from the options and, when given, C(primary_slot_name) in C(postgresql.auto.conf), and that the settings
    listed in O(remove_settings) are not there.
  - With O(state=primary), makes sure C(standby.signal) and C(recovery.signal) are absent and that
    C(postgresql.auto.conf) sets neither C(primary_conninfo) nor C(primary_slot_name).
  - Works on the files, so it works while the server is down (right after a clone, before the first start).
    C(postgresql.auto.conf) is edited line by line; its header comment and every line the module does not manage
    stay exactly as they were. It is replaced atomically, keeping its owner and mode.
  - C(primary_conninfo) never holds a password. The password goes in a password file
    (see M(pgrepl.streaming.passfile)) whose path is given as O(passfile). A password already in an existing
    C(primary_conninfo) is dropped (with a warning) when the value is rewritten.
  - C(primary_conninfo) is built as C(host), C(port), C(user), C(passfile), C(application_name), C(sslmode),
    C(sslrootcert), then the O(conninfo_options) sorted by keyword. It is compared to the existing value by its
    keywords and values, not by its text, so a value written by C(pg_basebackup -R) with other quoting, another order or
    extra libpq defaults is unchanged when it means the same connection. Keywords absent from the request are
    ignored when the existing value holds libpq's default for them, namely C(channel_binding=prefer),
    C(sslcompression=0), C(sslsni=1), C(ssl_min_protocol_version=TLSv1.2), C(gssencmode=prefer) or
    C(gssencmode=disable), C(krbsrvname=postgres), C(target_session_attrs=any), C(sslcertmode=allow),
    C(load_balance_hosts=disable), C(gssdelegation=0), C(sslnegotiation=postgres), C(user) equal to the name of
    the data directory's owner and C(passfile) equal to that user's C(~/.pgpass). Any other difference rewrites
    the value.
  - When the server of the data directory is running (C(postmaster.pid) names a live process) and a setting
    changed, the module reloads it (O(reload)) through the connection options, after checking that they reach
    this data directory's server. Entering or leaving recovery (creating or removing C(standby.signal)) needs a
    restart, which the module reports in RV(restart_required) and leaves to the caller.
options:
  data_dir:
    description:
      - The PostgreSQL data directory (it must hold C(PG_VERSION) and C(global/pg_control)), PostgreSQL 12 or
        later.
    type: path
    required: true
  state:
    description:
      - V(standby) configures the directory as a standby of O(primary_host); V(primary) removes the standby
        configuration.
    type: str
    choices: [standby, primary]
    default: standby
  primary_host:
    description:
      - Host name, address or unix socket directory of the primary (libpq C(host)). Required with
        O(state=standby).
      - An IPv6 address is given without brackets (V(2001:db8::5); libpq takes brackets only in URIs) and is
        written quoted into C(primary_conninfo). The passfile line must hold the same text as host.
    type: str
  primary_port:
    description:
      - Port of the primary (libpq C(port)).
    type: int
    default: 5432
  replication_user:
    description:
      - Role the WAL receiver logs in as (libpq C(user)). Omitted means libpq's default, the name of the OS user
        the server runs as.
    type: str
  passfile:
    description:
      - Absolute path of the password file the WAL receiver reads (libpq C(passfile)). It must be readable by the
        server's OS user and mode 0600; the module warns when it does not exist or has a wider mode.
      - Omitted means libpq's default, C(~/.pgpass) of the server's OS user.
    type: path
  application_name:
    description:
      - The standby's name on the primary (libpq C(application_name)), as C(pg_stat_replication) shows it and
        C(synchronous_standby_names) matches it. At most 63 bytes; a longer name is refused, since the server
        would cut it.
    type: str
  sslmode:
    description:
      - libpq C(sslmode) of the replication connection.
    type: str
    choices: [disable, allow, prefer, require, verify-ca, verify-full]
    default: prefer
  sslrootcert:
    description:
      - CA certificate file on this host that verifies the primary's certificate (libpq C(sslrootcert)), for
        O(sslmode=verify-ca) or O(sslmode=verify-full). Omitted, libpq reads the OS user's
        C(~/.postgresql/root.crt).
    type: path
  conninfo_options:
    description:
      - Other libpq keywords and values for C(primary_conninfo), for example C(keepalives_idle), C(sslcrl),
        C(target_session_attrs) or C(connect_timeout). Values are strings or numbers.
      - C(password) and C(sslpassword) are refused (use O(passfile)); keywords that have their own option
        (C(host), C(port), C(user), C(passfile), C(application_name), C(sslmode), C(sslrootcert)) are refused,
        and so are C(replication) and C(fallback_application_name), which the WAL receiver sets itself.
    type: dict
  primary_slot_name:
    description:
      - Replication slot on the primary the standby streams from (C(^[a-z0-9_]{1,63}$)).
      - Omitted leaves an existing C(primary_slot_name) as it is; to remove it, list it in O(remove_settings).
    type: str
  min_settings:
    description:
      - Whole-number settings this standby must have at least, written into C(postgresql.auto.conf) (raised,
        never lowered; a value there that is already as high is left alone). For hot standby parity, a
        standby needs C(max_connections), C(max_worker_processes), C(max_wal_senders),
        C(max_prepared_transactions) and C(max_locks_per_transaction) at least as high as its primary's, or it
        stops replaying. These are read at server start, so a raised value sets RV(restart_required).
      - Works while the server is stopped (after a clone, before the first start).
    type: dict
  apply_delay:
    description:
      - A delayed standby, C(recovery_min_apply_delay) in C(postgresql.auto.conf) - a PostgreSQL time such as
        C(5min), C(30s) or C(1h) (a plain number is milliseconds) - the standby applies each commit only that long
        after the primary made it, which leaves time to stop it before a mistake (a dropped table) reaches it.
      - The value is compared in milliseconds (C(5min) and C(300s) are the same) and written when it differs; the
        server reloads it (no restart). V(0) removes the setting (no delay). Omitted or empty leaves whatever is
        there alone. Used only with O(state=standby).
      - A promotion ends the delay at once (the server applies the rest of the WAL it has).
    type: raw
  remove_settings:
    description:
      - Settings that must not be in C(postgresql.auto.conf) of a standby. Used only with O(state=standby).
      - The default removes C(synchronous_standby_names), which C(pg_basebackup) and C(pg_rewind) copy over from
        the primary and which does not belong on a standby (it would make the standby wait for its own
        standbys once promoted).
      - C(primary_conninfo) cannot be listed, nor C(primary_slot_name) together with O(primary_slot_name).
    type: list
    elements: str
    default: [synchronous_standby_names]
  owner:
    description:
      - OS user (name or uid) that gets the files the module creates (C(standby.signal), and
        C(postgresql.auto.conf) when it does not exist), with that user's primary group. Existing files keep their
        owner. Omitted means the owner and group of the data directory.
    type: str
  reload:
    description:
      - When the server is running and a setting changed, reload it (C(pg_reload_conf)) and wait until
        new sessions see the new C(primary_conninfo) (bounded, 10 s). C(primary_conninfo) and
        C(primary_slot_name) are reloadable from PostgreSQL 13; the WAL receiver then reconnects with the new
        values.
      - The connection options are used only for this. Without O(login_host) and O(login_unix_socket) the module
        connects through the socket directory and port that C(postmaster.pid) names.
    type: bool
    default: true
extends_documentation_fragment:
  - pgrepl.streaming.connection
attributes:
  check_mode:
    support: full
    description: Predicts exactly what would change, including RV(reload_required) and RV(restart_required); writes
      nothing and reloads nothing. When a reload would be needed it still connects, read-only, to check the
      connection options.
  diff_mode:
    support: full
    description: Before and after of C(postgresql.auto.conf) (passwords masked) and of the signal files.
notes:
  - Run it as the data directory's owner (C(become_user=postgres)) or as root.
  - psycopg is needed only for the reload of a running server.
  - Settings removed through O(remove_settings) take effect at the reload when they are reloadable, else at the
    next restart.
  - With O(state=standby) an existing C(recovery.signal) is left alone (C(standby.signal) takes precedence).
  - To promote a running standby use C(pg_promote); this module only edits files, and a standby whose
    C(standby.signal) is removed keeps running in recovery until it restarts (RV(restart_required)).
seealso:
  - module: pgrepl.streaming.passfile
  - name: Standby server settings
    description: primary_conninfo, primary_slot_name and the signal files.
    link: https://www.postgresql.org/docs/current/runtime-config-replication.html#RUNTIME-CONFIG-REPLICATION-STANDBY
'''

EXAMPLES = r'''
- name: Point a freshly cloned standby at the primary, before its first start
  pgrepl.streaming.standby_config:
    data_dir: /var/lib/postgresql/15/main
    primary_host: 10.20.0.5
    replication_user: replicator
    passfile: /var/lib/postgresql/.pgpass
    application_name: "{{ inventory_hostname[:63] }}"
    primary_slot_name: db2
  become: true
  become_user: postgres

- name: Repoint a running standby at a new primary (reloaded; the WAL receiver reconnects)
  pgrepl.streaming.standby_config:
    data_dir: /var/lib/pgsql/16/data
    primary_host: db2.example.com
    replication_user: replicator
    passfile: /var/lib/pgsql/.pgpass
    sslmode: verify-full
    sslrootcert: /etc/pki/postgresql/root.crt
    conninfo_options:
      keepalives_idle: 30
    primary_slot_name: db3
  become: true
  become_user: postgres
  register: pgrepl_standby_config

- name: Turn a stopped copy into a primary's configuration (no standby.signal, no primary_conninfo)
  pgrepl.streaming.standby_config:
    data_dir: /var/lib/postgresql/15/main
    state: primary
'''

RETURN = r'''
data_dir:
  description: The data directory.
  returned: always
  type: str
  sample: /var/lib/postgresql/15/main
state:
  description: The requested state.
  returned: always
  type: str
  sample: standby
server_running:
  description: Whether C(postmaster.pid) names a live server process.
  returned: always
  type: bool
  sample: false
settings_changed:
  description: Settings of C(postgresql.auto.conf) that were (in check mode, would be) set or removed.
  returned: always
  type: list
  elements: str
  sample: [primary_conninfo, synchronous_standby_names]
standby_signal:
  description: Whether C(standby.signal) exists after the run.
  returned: always
  type: bool
  sample: true
primary_conninfo:
  description: C(primary_conninfo) in effect after the run, any password masked; null when none is set.
  returned: always
  type: str
  sample: host=10.20.0.5 port=5432 user=replicator passfile=/var/lib/postgresql/.pgpass sslmode=prefer
primary_slot_name:
  description: C(primary_slot_name) in effect after the run; null when none is set.
  returned: always
  type: str
  sample: db3
reload_required:
  description: Whether the running server must reload to see the changed settings (true even with
    O(reload=false), or in check mode).
  returned: always
  type: bool
  sample: true
reloaded:
  description: Whether the server was reloaded (never in check mode).
  returned: always
  type: bool
  sample: true
restart_required:
  description:
    - Whether the running server must restart for the change to take effect. True when C(standby.signal) or
      C(recovery.signal) was created or removed on a running server (entering or leaving recovery happens only at
      start), or when C(primary_conninfo) or C(primary_slot_name) changed on a running PostgreSQL 12.
  returned: always
  type: bool
  sample: false
diff:
  description: Before and after of C(postgresql.auto.conf) (passwords masked) and of the signal files.
  returned: when diff mode is on
  type: list
  elements: dict
'''

from ansible_collections.pgrepl.streaming.plugins.module_utils._module import module_from_spec, run
from ansible_collections.pgrepl.streaming.plugins.module_utils._standby_config import (
    STANDBY_CONFIG_SPEC,
    run_standby_config,
)


def main() -> None:
    module = module_from_spec(STANDBY_CONFIG_SPEC)
    run(module, run_standby_config, needs_psycopg=False)


if __name__ == '__main__':
    main()
