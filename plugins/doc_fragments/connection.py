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
    aliases: [host]
  login_unix_socket:
    description:
      - Directory of the server's unix socket, used when O(login_host) is empty. Empty means libpq's default.
    type: path
    default: ''
    aliases: [unix_socket]
  login_port:
    description:
      - Port of the server (TCP, or the number in the unix socket's name).
    type: int
    default: 5432
    aliases: [port]
  login_db:
    description:
      - Database to connect to.
    type: str
    default: postgres
    aliases: [db, database]
  ssl_mode:
    description:
      - libpq C(sslmode) for TCP connections.
    type: str
    default: prefer
    choices: [disable, allow, prefer, require, verify-ca, verify-full]
  ssl_rootcert:
    description:
      - CA certificate file to verify the server with (libpq C(sslrootcert)), over TCP.
    type: path
    aliases: [ca_cert]
  ssl_cert:
    description:
      - Client certificate file (libpq C(sslcert)), over TCP, for C(cert) authentication or C(clientcert) in
        pg_hba.conf.
    type: path
  ssl_key:
    description:
      - Secret key file of O(ssl_cert) (libpq C(sslkey)), over TCP. A key protected by a passphrase cannot be used
        (its C(sslpassword) would have to travel in O(connect_params), which refuses secrets).
    type: path
  connect_params:
    description:
      - Further libpq connection keywords, such as C(keepalives_idle), C(target_session_attrs), C(options),
        C(gssencmode) or C(passfile). Values are strings or integers.
      - Checked before connecting against the keywords of the managed host's libpq. Refused, naming the key, are
        keywords that have an option of their own here (C(host), C(port), C(user), C(dbname), C(sslmode),
        C(sslrootcert), C(sslcert), C(sslkey), C(connect_timeout)), C(client_encoding) (the modules set it,
        see the notes), C(replication), and every keyword whose value libpq treats as a secret (C(password),
        C(sslpassword)), because this option is shown with the task's arguments and O(login_password) never is.
      - Unlike community.postgresql, where they take precedence, these never override another option.
    type: dict
    default: {}
  session_role:
    description:
      - A role to switch to after connecting (C(SET ROLE)); the module then acts with that role's privileges.
        O(login_user) must be a member of it. Its name is quoted, whatever characters it holds.
    type: str
  trust_input:
    description:
      - Accepted so that options written for community.postgresql work unchanged. It changes nothing here, as every
        name reaches SQL quoted as an identifier and every value as a bound parameter, so there is no unquoted
        input to check.
    type: bool
    default: true
  connect_timeout:
    description:
      - Seconds to wait for the connection before failing.
      - Over TCP the connection also gets TCP keepalives (C(keepalives_idle=10), C(keepalives_interval=5),
        C(keepalives_count=3)) and C(tcp_user_timeout=30000) where libpq knows it, so a peer that vanished fails the
        task within about 25 seconds instead of the kernel's two hours; O(connect_params) may set other values.
    type: int
    default: 10
  lock_timeout:
    description:
      - Seconds a statement may wait for a lock another session holds (the server's C(lock_timeout), set for this
        session only). A statement that waits longer fails with SQLSTATE 55P03 and a message naming this option,
        and the module changes nothing more, instead of hanging the play behind, for example, an open transaction
        that altered the same role.
      - V(0) waits forever (PostgreSQL's default).
    type: int
    default: 30
  statement_timeout:
    description:
      - Seconds any one statement may run (the server's C(statement_timeout), set for this session only); a
        statement that runs longer fails with SQLSTATE 57014 and a message naming this option.
      - V(0) (the default) sets no limit, as PostgreSQL does. The modules' statements are short, except a
        C(CHECKPOINT) on a busy server and C(pg_promote) waiting for a promotion, which have their own limits.
    type: int
    default: 0
  login_os_user:
    description:
      - OS user whose identity opens a unix-socket connection (peer authentication), usually the server's own
        user C(postgres).
      - Lets a module that runs as root (C(become=true)) connect as that user for the connect call only,
        without a second C(become_user) hop, which costs a round trip per task. When the module already runs as
        that user it changes nothing; when it runs as another non-root user it fails and says so.
    type: str
requirements:
  - psycopg >= 3.1 on the managed host (Debian/Ubuntu package C(python3-psycopg), RHEL 9+ C(python3-psycopg3)
    from EPEL)
notes:
  - SQL is only ever sent through psycopg's C(sql) composition with bound parameters.
  - The option names and aliases are those of community.postgresql, so a C(module_defaults) block written for
    C(group/community.postgresql.all) works unchanged under C(group/pgrepl.streaming.connection).
  - Any server encoding works. The modules ask for C(client_encoding=UTF8) and the server converts; on an
    C(SQL_ASCII) database they read names and values as UTF-8 and keep other bytes (legacy KOI8-R, CP1251...)
    exactly, comparing them byte for byte and showing them as C(\xNN) escapes in results.
  - Any language of messages. A failed connection is classified from what libpq knows (the SQLSTATE of the server's
    refusal, whether a password was asked for and sent, whether anything answered), never from the words of a
    message, which follow the server's C(lc_messages) and the managed host's locale; those words are quoted whole.
    To learn the SQLSTATE the module asks the server once more after a failure, so a refused login is logged twice.
"""
