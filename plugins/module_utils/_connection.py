# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Connection options shared by every module, and the one way to open a psycopg 3 connection."""

from __future__ import annotations

import contextlib
import os
import traceback
from collections.abc import Iterator
from typing import Any

# `sql` is imported here once and re-exported to the other module_utils files.
PSYCOPG_IMPORT_ERROR: str | None
try:
    import psycopg
    from psycopg import sql  # noqa: F401  # pylint: disable=unused-import
    from psycopg.rows import dict_row
    PSYCOPG_IMPORT_ERROR = None
except ImportError:  # pragma: no cover - depends on the managed host
    psycopg = None
    sql = None
    dict_row = None
    PSYCOPG_IMPORT_ERROR = traceback.format_exc()

SSL_MODES = ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]


def connection_argument_spec() -> dict[str, dict[str, Any]]:
    """The argument spec fragment every module merges into its own (see doc_fragments/connection.py)."""
    return {
        "login_user": {"type": "str", "default": "postgres", "aliases": ["login"]},
        "login_password": {"type": "str", "no_log": True},
        "login_host": {"type": "str", "default": ""},
        "login_unix_socket": {"type": "path", "default": ""},
        "login_port": {"type": "int", "default": 5432},
        "login_db": {"type": "str", "default": "postgres"},
        "ssl_mode": {"type": "str", "default": "prefer", "choices": SSL_MODES},
        "ssl_rootcert": {"type": "path"},
        "connect_timeout": {"type": "int", "default": 10},
        "login_os_user": {"type": "str"},
    }


class PgreplError(Exception):
    """An error whose message is fit to show a user as it is (it names the option and the value)."""


class PgreplConnectionError(PgreplError):
    """The connection failed; ``unreachable`` tells a down or not-yet-accepting server from a configuration error."""

    def __init__(self, message: str, unreachable: bool) -> None:
        super().__init__(message)
        self.unreachable = unreachable


# libpq messages that mean the server is down or not accepting connections right now, as opposed to a wrong
# password, a missing pg_hba entry or a missing role (configuration errors, which callers must not hide).
UNREACHABLE_MARKERS = (
    "connection refused",
    "no such file or directory",
    "timeout expired",
    "could not translate host name",
    "is the server running",
    "the database system is starting up",
    "the database system is shutting down",
    "the database system is in recovery mode",
    "the database system is not yet accepting connections",
    "the database system is not accepting connections",
    "server closed the connection unexpectedly",
    "too many clients already",
    "remaining connection slots are reserved",
)


def is_unreachable(libpq_message: str) -> bool:
    """Whether a libpq connection error means the server is down or not accepting (not a configuration error)."""
    lowered = libpq_message.lower()
    return any(marker in lowered for marker in UNREACHABLE_MARKERS)


def validate_connection_params(params: dict[str, Any]) -> None:
    """Refuse connection options that cannot be right, before any network traffic."""
    port = params.get("login_port")
    if port is not None and not 1 <= int(port) <= 65535:
        raise PgreplError(f"login_port: {port} is not a TCP port (1-65535)")
    timeout = params.get("connect_timeout")
    if timeout is not None and int(timeout) < 1:
        raise PgreplError(f"connect_timeout: {timeout} must be at least 1 second")
    for key in ("login_user", "login_db", "login_host"):
        value = params.get(key) or ""
        if "\x00" in value:
            raise PgreplError(f"{key}: the value contains a NUL character")


def conninfo_kwargs(params: dict[str, Any]) -> dict[str, Any]:
    """libpq keywords from module params; psycopg quotes them, so no value can inject another keyword."""
    host = params.get("login_host") or params.get("login_unix_socket") or ""
    kwargs: dict[str, Any] = {
        "user": params.get("login_user") or "postgres",
        "dbname": params.get("login_db") or "postgres",
        "port": params.get("login_port") or 5432,
        "connect_timeout": params.get("connect_timeout") or 10,
        "application_name": "pgrepl.streaming",
    }
    if host:
        kwargs["host"] = host
    if params.get("login_password"):
        kwargs["password"] = params["login_password"]
    if params.get("login_host"):
        # sslmode only means something over TCP.
        kwargs["sslmode"] = params.get("ssl_mode") or "prefer"
        if params.get("ssl_rootcert"):
            kwargs["sslrootcert"] = params["ssl_rootcert"]
    return kwargs


def describe_target(params: dict[str, Any]) -> str:
    """Where we tried to connect, for error messages (never includes the password)."""
    host = params.get("login_host") or params.get("login_unix_socket") or "the default unix socket"
    user = params.get("login_user") or "postgres"
    return f"{user}@{host}:{params.get('login_port') or 5432}/{params.get('login_db') or 'postgres'}"


def explain_connect_error(params: dict[str, Any], exc: Exception) -> str:
    """Turn a libpq error into a sentence that says which of the usual causes it is."""
    text = str(exc).strip()
    lowered = text.lower()
    target = describe_target(params)
    if "password authentication failed" in lowered or "authentication failed" in lowered:
        return f"authentication failed for {target}: check login_user and login_password ({text})"
    if "no password supplied" in lowered:
        return f"the server at {target} asks for a password and login_password is not set ({text})"
    if "pg_hba.conf" in lowered:
        return f"the server at {target} has no pg_hba.conf entry that admits this connection ({text})"
    if "does not exist" in lowered and "database" in lowered:
        return f"login_db: the database does not exist on {target} ({text})"
    if "does not exist" in lowered and "role" in lowered:
        return f"login_user: the role does not exist on {target} ({text})"
    if is_unreachable(text):
        where = f"login_host={params.get('login_host') or params.get('login_unix_socket') or '(default socket)'}, " \
            f"login_port={params.get('login_port') or 5432}"
        return f"cannot reach PostgreSQL at {target} ({where}): {text}"
    return f"cannot connect to {target}: {text}"


def _os_user_ids(name: str) -> tuple[int, int]:
    import pwd  # pylint: disable=import-outside-toplevel  # POSIX only, like everything that uses it

    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise PgreplError(f"login_os_user: there is no OS user {name!r} on this host") from None
    return entry.pw_uid, entry.pw_gid


@contextlib.contextmanager
def as_os_user(name: str | None) -> Iterator[None]:
    """Run the block with the effective uid/gid of OS user ``name`` (then switch back).

    Peer authentication reads the credentials of the process at connect() time, so a module that runs as root
    can open a unix-socket connection as the server's OS user without an extra become (su/sudo) round trip;
    everything after the connect runs as root again. Without ``name``, or when already that user, a no-op.
    """
    if not name:
        yield
        return
    uid, gid = _os_user_ids(name)
    current = os.geteuid()
    if current == uid:
        yield
        return
    if current != 0:
        raise PgreplError(f"login_os_user: connecting as OS user {name!r} needs the module to run as root "
                          f"(it runs as uid {current}): use become: true, or leave login_os_user unset")
    os.setegid(gid)
    os.seteuid(uid)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


def connect(params: dict[str, Any], autocommit: bool = True) -> Any:
    """Open a connection or raise PgreplError with a message that names the cause."""
    if psycopg is None:
        raise PgreplError("the Python library psycopg (version 3) is required on the managed host: "
                          "install python3-psycopg (Debian/Ubuntu, RHEL 9+) or `pip install psycopg`")
    validate_connection_params(params)
    try:
        with as_os_user(params.get("login_os_user")):
            return psycopg.connect(autocommit=autocommit, **conninfo_kwargs(params))
    except psycopg.Error as exc:
        raise PgreplConnectionError(explain_connect_error(params, exc), is_unreachable(str(exc))) from None


def query_one(conn: Any, query: Any, args: Any = None) -> tuple | None:
    """First row of a query (tuple) or None."""
    with conn.cursor() as cur:
        cur.execute(query, args)
        return cur.fetchone()


def query_all(conn: Any, query: Any, args: Any = None) -> list[dict[str, Any]]:
    """Every row of a query, as dicts keyed by column name."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(query, args)
        return list(cur.fetchall())


def query_dict(conn: Any, query: Any, args: Any = None) -> dict[str, Any] | None:
    """First row of a query as a dict, or None."""
    rows = query_all(conn, query, args)
    return rows[0] if rows else None
