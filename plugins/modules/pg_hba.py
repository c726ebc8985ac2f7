# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module: one entry of pg_hba.conf, edited in place, validated by the server, then reloaded."""

from __future__ import annotations

DOCUMENTATION = r'''
---
module: pg_hba
short_description: Add, update or remove one entry of pg_hba.conf without disturbing the rest of the file
version_added: 0.1.0
author: pgrepl maintainers (@pgrepl)
description:
  - Makes sure one client authentication entry exists (O(state=present)) or does not (O(state=absent)) in
    C(pg_hba.conf), and leaves every other line, comment, blank line and include directive exactly as it was,
    byte for byte and in order (a file without a final line break included).
  - An entry is identified by O(contype), O(databases), O(users) and O(address). An existing line with that
    identity but another O(method) or O(options) is updated in place, keeping its position and its comment
    (unless O(comment) is given).
  - A new entry goes where it takes effect. With O(insert_before) or O(insert_after), before or after the first
    line that matches the regular expression. Otherwise before the first existing line that would match all of
    its connections first (for a replication entry, a line that names C(replication) and covers its users and
    address, such as C(host replication all 0.0.0.0/0 reject)), else at the end of the file.
  - When an earlier line still matches every connection of the entry (it shadows it, so the entry is never
    used), the module warns and lists that line in RV(shadowed_by).
  - Lines the module cannot read (legacy or broken ones) are kept as they are and ignored for placement, with
    a warning. Legacy forms the server accepts are read correctly and never rewritten, for example
    C(10.1.2.3/8) (host bits set), C(a,b) lists, quoted names with blanks, an address plus netmask, host names,
    C(samehost), C(samenet), C(@file) and C(+group) names, and backslash-continued lines.
  - The file is replaced atomically (a temporary file in the same directory, then a rename), keeping its mode,
    owner and group; O(backup) keeps a timestamped copy.
  - When the file is the live C(hba_file) of the server reached with the connection options, the server
    validates it after the write (C(pg_hba_file_rules)); if the change adds errors there, the previous file is
    put back, nothing is reloaded and the module fails with the server's message. The server is reloaded
    (O(reload)) only after a change it validated, in a file without errors. For any other file the module
    checks the syntax itself. RV(validation) says which check ran.
options:
  contype:
    description:
      - Connection type of the entry.
    type: str
    required: true
    choices: [local, host, hostssl, hostnossl, hostgssenc, hostnogssenc]
  databases:
    description:
      - Database names the entry applies to, as a list or a comma-separated string. Keywords (C(all),
        C(replication), C(sameuser), C(samerole)) and C(@file) references are written as given; put a name that
        contains blanks, commas or C(#) in double quotes (V('"my db"')).
      - C(all) does not match physical replication connections; only C(replication) does.
    type: raw
    default: [all]
  users:
    description:
      - Role names the entry applies to, as a list or a comma-separated string. C(all), C(+group) and C(@file)
        are written as given; quote names as for O(databases).
    type: raw
    default: [all]
  address:
    description:
      - Client address for every O(contype) but C(local) (required there, refused for C(local)). An IPv4 or IPv6
        network in CIDR form (V(10.0.0.0/8), V(::1/128)), an address and a netmask separated by a blank
        (V(192.168.1.0 255.255.255.0)), a host name or C(.domain) suffix, V(samehost), V(samenet) or V(all).
      - Written as given. A new entry whose network has host bits set (V(10.1.2.3/8)) is refused, with the
        network it would really mean (V(10.0.0.0/8)); an existing line of that form is still found and kept.
    type: str
  method:
    description:
      - Authentication method. Required when O(state=present).
      - V(peer) only goes with C(local), V(cert) only with C(hostssl); V(oauth) needs PostgreSQL 18.
    type: str
    choices: [trust, reject, scram-sha-256, md5, password, gss, sspi, ident, peer, ldap, radius, cert, pam, bsd,
              oauth]
  options:
    description:
      - Authentication options, as a dict of option names and values, or a string of C(name=value) pairs
        (V(ldapserver=ldap.example.com ldapport=389)). A value with blanks, commas or quotes is quoted for the
        file.
      - The values of V(ldapbindpasswd), V(radiussecrets) and V(radiussecret) are masked in the diff and in
        every returned value; give them in O(secret_options) so that they never reach the managed host's log.
      - Omitted means no options, so an existing entry's options are replaced by exactly these.
    type: raw
  secret_options:
    description:
      - Authentication options that are secrets, such as C(ldapbindpasswd), as a dict of names and values.
        Merged with O(options); never logged nor returned.
    type: dict
  state:
    description:
      - V(present) adds or updates the entry; V(absent) removes every line with its identity.
    type: str
    choices: [present, absent]
    default: present
  comment:
    description:
      - A trailing C(# comment) for the entry's line. Omitted keeps an existing line's comment; an empty string
        removes it.
    type: str
  path:
    description:
      - The file to edit. Omitted means the server's own C(hba_file) (C(SHOW hba_file)), which needs the
        connection options and a server reachable from the managed host.
      - When given, the module still tries the connection options to find out whether it is the live file of
        a server; if it is not, or no server answers, only the syntax is checked and nothing is reloaded.
    type: path
  insert_before:
    description:
      - Regular expression (Python C(re.search)) matched against the file's lines, comments included; a new
        entry goes before the first line that matches. The module fails, changing nothing, when no line matches.
      - Used only when the entry is added; an existing entry keeps its position.
    type: str
  insert_after:
    description:
      - Like O(insert_before), but the entry goes after the first line that matches.
    type: str
  backup:
    description:
      - Keep a copy of the previous file next to it, named C(<file>.<pid>.<date>@<time>~), when the file changes.
    type: bool
    default: false
  reload:
    description:
      - Reload the server (C(pg_reload_conf)) after a change to its live file that it validated, and wait
        until new connections use the new rules.
    type: bool
    default: true
extends_documentation_fragment:
  - pgrepl.streaming.connection
attributes:
  check_mode:
    description: Computes the new file and reports exactly the change (with the diff); writes nothing and
      reloads nothing. Only the module's own syntax check runs, since the server can only read the file on disk.
    support: full
  diff_mode:
    description: Before and after of the whole file, with secret option values masked.
    support: full
notes:
  - The module runs on the database host (it edits a local file). The connection options are used only when
    O(path) is omitted or is the live C(hba_file) of a reachable server.
  - Validation and reload need a superuser (C(pg_hba_file_rules) and C(pg_reload_conf) are restricted).
  - Lines in files pulled in by C(include), C(include_if_exists) and C(include_dir) (PostgreSQL 16+) are not
    considered for placement or shadowing; a warning says when such a directive comes before the entry.
  - When a new entry is appended after a last line that has no line break, the line break needed to separate
    them is added to that line and the entry ends the file without one, as the file did; nothing else of any
    other line changes. Removing the entry gives back the original bytes.
seealso:
  - name: The pg_hba.conf file
    description: PostgreSQL's documentation of client authentication.
    link: https://www.postgresql.org/docs/current/auth-pg-hba-conf.html
'''

EXAMPLES = r'''
- name: Let the replication role stream from the standbys' network, before any final reject
  pgrepl.streaming.pg_hba:
    contype: hostssl
    databases: replication
    users: replicator
    address: 10.20.0.0/24
    method: scram-sha-256
    comment: streaming standbys
  become: true
  become_user: postgres

- name: Same, in a file that is not (yet) a server's live file; syntax check only
  pgrepl.streaming.pg_hba:
    path: /etc/postgresql/15/main/pg_hba.conf
    contype: host
    databases: replication
    users: replicator
    address: 10.20.0.0/24
    method: scram-sha-256
    reload: false
    backup: true

- name: LDAP for the analysts, placed under a section comment, bind password kept out of logs
  pgrepl.streaming.pg_hba:
    contype: hostssl
    databases: [reports, "\"sales data\""]
    users: +analysts
    address: 192.168.10.0 255.255.255.0
    method: ldap
    options:
      ldapserver: ldap.example.com
      ldapbasedn: dc=example,dc=com
      ldapbinddn: cn=pg,dc=example,dc=com
    secret_options:
      ldapbindpasswd: "{{ vault_ldap_bind_password }}"
    insert_after: '^# Analysts'

- name: Remove the entry of a decommissioned standby
  pgrepl.streaming.pg_hba:
    contype: host
    databases: replication
    users: replicator
    address: 10.20.0.7/32
    state: absent
'''

RETURN = r'''
path:
  description: The file that was (or, in check mode, would be) edited.
  returned: always
  type: str
  sample: /var/lib/postgresql/15/main/pg_hba.conf
validation:
  description:
    - V(server) when the server validated the written file (its live C(hba_file)); V(syntax) when only the
      module's own check ran (another file, no reachable server, or check mode); V(none) when nothing changed.
  returned: always
  type: str
  sample: server
reloaded:
  description: Whether the server was reloaded (only after a change it validated, with O(reload)).
  returned: always
  type: bool
  sample: true
backup_file:
  description: The copy of the previous file (O(backup)).
  returned: when O(backup=true) and the file changed
  type: str
  sample: /etc/postgresql/15/main/pg_hba.conf.4242.2025-01-31@10:12:53~
entry:
  description:
    - The entry's line as it is in the file after the run (secret option values masked). With O(state=absent),
      the line that was removed; null when there was none.
  returned: always
  type: str
  sample: "host    replication     replicator      10.20.0.0/24            scram-sha-256"
line_number:
  description: Line number of the entry in the new file (with O(state=absent), where the removed line was).
  returned: always
  type: int
  sample: 97
outcome:
  description: What happened to the entry, V(added), V(updated), V(unchanged), V(removed) or V(absent) (in
    check mode, what would happen).
  returned: always
  type: str
  sample: added
shadowed_by:
  description: Earlier lines that match every connection the entry matches, so the entry is never used.
  returned: always
  type: list
  elements: dict
  contains:
    line_number:
      description: Line number of the shadowing line.
      type: int
    line:
      description: The shadowing line (secret option values masked).
      type: str
  sample: [{"line_number": 96, "line": "host    replication     all             0.0.0.0/0               reject"}]
diff:
  description: Before and after of the whole file (secret values masked), headers naming the file.
  returned: when diff mode is on
  type: dict
'''

from ansible_collections.pgrepl.streaming.plugins.module_utils._hba import PG_HBA_SPEC, run_pg_hba
from ansible_collections.pgrepl.streaming.plugins.module_utils._module import module_from_spec, run


def main() -> None:
    module = module_from_spec(PG_HBA_SPEC)
    run(module, run_pg_hba, needs_psycopg=False)


if __name__ == '__main__':
    main()
