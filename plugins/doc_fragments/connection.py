# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Documentation of the connection options shared by every module."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  login_user:
    description:
      - The role to connect as. Most operations need a superuser.
    type: str
    default: postgres
    aliases: [login]
  login_password:
    description:
      - The password of O(login_user). Not needed for peer or trust authentication over the unix socket.
      - Never logged and never written anywhere.
    type: str
  login_host:
    description:
      - Host name or IP address of the server. Empty means the unix socket (see O(login_unix_socket)).
    type: str
    default: ''
  login_unix_socket:
    description:
      - Directory of the server's unix socket, used when O(login_host) is empty. Empty means libpq's default.
    type: path
    default: ''
  login_port:
    description:
      - Port of the server (TCP, or the number in the unix socket's name).
    type: int
    default: 5432
  login_db:
    description:
      - Database to connect to.
    type: str
    default: postgres
  ssl_mode:
    description:
      - libpq C(sslmode) for TCP connections.
    type: str
    default: prefer
    choices: [disable, allow, prefer, require, verify-ca, verify-full]
  ssl_rootcert:
    description:
      - CA certificate file to verify the server with (libpq C(sslrootcert)).
    type: path
  connect_timeout:
    description:
      - Seconds to wait for the connection before failing.
    type: int
    default: 10
  login_os_user:
    description:
      - OS user whose identity opens a unix-socket connection (peer authentication), usually the server's own
        user C(postgres).
      - Lets a module that runs as root (C(become=true)) connect as that user for the connect call only,
        without a second C(become_user) hop, which costs a round trip per task. When the module already runs as
        that user it changes nothing; when it runs as another non-root user it fails and says so.
    type: str
requirements:
  - psycopg >= 3.1 on the managed host (Debian/Ubuntu and RHEL 9+ package C(python3-psycopg))
notes:
  - SQL is only ever sent through psycopg's C(sql) composition with bound parameters.
"""
