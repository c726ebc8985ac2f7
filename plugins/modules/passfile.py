#!/usr/bin/python
# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module pgrepl.streaming.passfile."""

from __future__ import annotations

DOCUMENTATION = r'''
---
module: passfile
short_description: Manage entries of a libpq password file (.pgpass), always mode 0600
version_added: 0.1.0
author: pgrepl maintainers (@pgrepl)
description:
  - Makes sure lines C(host:port:database:user:password) exist with the given passwords (O(state=present)), or do
    not exist (O(state=absent)), in a libpq password file such as C(~postgres/.pgpass), so that a standby's WAL
    receiver, C(pg_basebackup) or C(pg_rewind) can authenticate without a password in any command line or
    configuration file.
  - An entry is identified by its host, port, database and user. An existing line with that identity gets its
    password updated in place; a new entry is appended. Every other line, comment and blank line stays exactly
    as it was, in order.
  - Fields are written with the escapes libpq reads, a backslash before C(:) and C(\). A field that is exactly
    C(*) is libpq's wildcard, it matches anything.
  - libpq uses the first line that matches a connection. When an earlier line (for example a C(*) wildcard line)
    already matches every connection of an entry, the module warns, since the entry is then never used.
  - The file is always mode C(0600), since libpq ignores a password file that group or others may access. A wrong
    mode is fixed (and reported as a change). The file is replaced atomically (temporary file in the same directory,
    then a rename).
  - Needs no database connection and no psycopg.
options:
  path:
    description:
      - Absolute path of the password file, for example C(/var/lib/postgresql/.pgpass) (libpq's default for the
        C(postgres) user on Debian) or a dedicated file given to libpq with C(passfile=).
      - Its directory must exist. The file is created when an entry must be added.
    type: path
    required: true
  owner:
    description:
      - User (name or uid) owning the file. Omitted keeps the owner of an existing file; a new file gets the owner
        of its directory.
      - The file must belong to the OS user that reads it (for a standby's WAL receiver, the server's user).
    type: str
  group:
    description:
      - Group (name or gid) of the file. Omitted keeps the group of an existing file; a new file gets the group of
        its directory.
    type: str
  entries:
    description:
      - The entries to manage. Each is a dict of O(entries[].host), O(entries[].port), O(entries[].database),
        O(entries[].user) and O(entries[].password). Two entries with the same host, port, database and user are
        refused.
      - Every field is a string (a number is taken as its text; a list, dict or boolean is refused). No field may
        be empty or contain a line break or a NUL character.
    type: list
    elements: dict
    default: []
    suboptions:
      host:
        description:
          - Required. Host name or address as the client gives it (libpq compares the text, it resolves nothing),
            or C(*).
          - C(localhost) also matches unix-socket connections to the default socket directory.
          - An IPv6 address is given as the client's C(host) has it, without brackets (V(2001:db8::5)); its colons
            are escaped in the file (C(2001\:db8\:\:5)), as libpq reads them.
        type: raw
      port:
        description:
          - Port number (1-65535) or C(*).
        type: raw
        default: '5432'
      database:
        description:
          - Database name, or C(*). Physical replication connections (WAL receiver, pg_basebackup) look up the
            database name C(replication).
        type: raw
        default: '*'
      user:
        description:
          - Required. Role name, or C(*).
        type: raw
      password:
        description:
          - The password. Required when O(state=present), ignored when O(state=absent).
          - Never logged nor returned; masked as C(********) in the diff.
        type: raw
  state:
    description:
      - V(present) adds the entries or updates their passwords; V(absent) removes every line with the host, port,
        database and user of an entry.
    type: str
    choices: [present, absent]
    default: present
attributes:
  check_mode:
    support: full
    description: Reports exactly what would be added, updated, removed and whether the mode or owner would be
      fixed; writes nothing.
  diff_mode:
    support: full
    description: Before and after of the file with every password replaced by C(********), and of its mode,
      owner and group.
notes:
  - Run it as root or as the file's owner.
  - A line that libpq would skip (fewer than five fields) is kept as it is and never matched.
  - C(*) in a field is always the wildcard; this module cannot write a field that is a literal C(*).
seealso:
  - name: The password file
    description: libpq's documentation of .pgpass.
    link: https://www.postgresql.org/docs/current/libpq-pgpass.html
'''

EXAMPLES = r'''
- name: Let the standby's WAL receiver (and pg_basebackup) log in to the primary as the replication role
  pgrepl.streaming.passfile:
    path: /var/lib/postgresql/.pgpass
    owner: postgres
    group: postgres
    entries:
      - host: "{{ pgrepl_primary_address }}"
        port: 5432
        database: replication
        user: replicator
        password: "{{ pgrepl_replication_password }}"

- name: A dedicated file for pg_rewind (an ordinary connection, any database), on RHEL
  pgrepl.streaming.passfile:
    path: /var/lib/pgsql/.pgpass_rewind
    owner: postgres
    group: postgres
    entries:
      - host: db1.example.com
        user: rewinder
        password: "{{ vault_rewind_password }}"
      - host: db2.example.com
        user: rewinder
        password: "{{ vault_rewind_password }}"

- name: Forget the entry of a decommissioned primary
  pgrepl.streaming.passfile:
    path: /var/lib/postgresql/.pgpass
    state: absent
    entries:
      - host: 10.20.0.7
        database: replication
        user: replicator
'''

RETURN = r'''
path:
  description: The password file.
  returned: always
  type: str
  sample: /var/lib/postgresql/.pgpass
mode:
  description:
    - The file's mode, C(0600) after a real run. As for every Ansible module that returns a C(path), C(mode),
      C(owner), C(group), C(uid), C(gid), C(size) and C(state) describe the file as it is on disk when the module
      returns (in check mode, before any fix); when there is no file, C(mode), C(owner) and C(group) are the
      values a new file would get, or null when none would be created.
  returned: always
  type: str
  sample: '0600'
owner:
  description: The file's owner (name, or uid when it has no name).
  returned: always
  type: str
  sample: postgres
group:
  description: The file's group.
  returned: always
  type: str
  sample: postgres
uid:
  description: The file's owner as a uid.
  returned: when the file exists
  type: int
  sample: 101
gid:
  description: The file's group as a gid.
  returned: when the file exists
  type: int
  sample: 104
size:
  description: The file's size in bytes.
  returned: when the file exists
  type: int
  sample: 57
state:
  description: C(file) (or C(link), C(hard)) for the path on disk, as Ansible reports it.
  returned: when the file exists
  type: str
  sample: file
entries_added:
  description: How many entries were (or, in check mode, would be) appended.
  returned: always
  type: int
  sample: 1
entries_updated:
  description: How many existing entries got a new password.
  returned: always
  type: int
  sample: 0
entries_removed:
  description: How many entries were removed (each removes every line with its host, port, database and user).
  returned: always
  type: int
  sample: 0
keys_added:
  description: C(host:port:database:user) of the added entries, as written in the file (no password).
  returned: always
  type: list
  elements: str
  sample: ["10.20.0.5:5432:replication:replicator"]
keys_updated:
  description: C(host:port:database:user) of the entries whose password changed.
  returned: always
  type: list
  elements: str
  sample: []
keys_removed:
  description: C(host:port:database:user) of the removed entries.
  returned: always
  type: list
  elements: str
  sample: []
diff:
  description: Before and after of the file (passwords masked) and of its mode, owner and group.
  returned: when diff mode is on
  type: list
  elements: dict
'''

from ansible_collections.pgrepl.streaming.plugins.module_utils._module import module_from_spec, run
from ansible_collections.pgrepl.streaming.plugins.module_utils._passfile import PASSFILE_SPEC, run_passfile


def main() -> None:
    module = module_from_spec(PASSFILE_SPEC)
    run(module, run_passfile, needs_psycopg=False)


if __name__ == '__main__':
    main()
