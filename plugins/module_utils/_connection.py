# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Connection options shared by every module, and the one way to open a psycopg 3 connection.

Encodings. Every connection asks for client_encoding UTF8: psycopg then reads and writes str as UTF-8 and the server
converts from the database's encoding (LATIN1, KOI8R, WIN1251...), or refuses a character it cannot convert with an
SQLSTATE. An SQL_ASCII database stores bytes with no encoding, and the server refuses to send a UTF8 client bytes that
are not valid UTF-8 (legacy KOI8-R or CP1251 names and values): there the session goes back to SQL_ASCII (no
conversion) and this module's loaders and dumper read and write UTF-8 with surrogateescape, so such bytes survive a
round trip, never equal a UTF-8 name, and printable() shows them as \\xNN escapes.

Failures. Server messages follow the server's lc_messages and libpq's follow the managed host's locale, so nothing
here reads their words. After connecting, errors carry an SQLSTATE. A failed connection carries none in psycopg 3, so
diagnose_connect_error() asks libpq itself: one more attempt through libpq's C API with verbose errors (the SQLSTATE
of the refusal, whether a password was asked for and sent, whether anything answered), and the server's words are
quoted whole.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import re
import select
import time
import traceback
from dataclasses import dataclass
from typing import Any, Callable

from ansible_collections.pgrepl.streaming.plugins.module_utils._errors import PgreplConnectionError, PgreplError
from ansible_collections.pgrepl.streaming.plugins.module_utils._osuser import as_os_user

# `sql` is imported here once and re-exported to the other module_utils files.
PSYCOPG_IMPORT_ERROR: str | None
try:
    import psycopg
    from psycopg import sql
    from psycopg.adapt import Dumper, Loader
    from psycopg.conninfo import make_conninfo
    from psycopg.rows import dict_row
    PSYCOPG_IMPORT_ERROR = None
except ImportError:  # pragma: no cover - depends on the managed host
    psycopg = None
    sql = None
    make_conninfo = None
    dict_row = None
    PSYCOPG_IMPORT_ERROR = traceback.format_exc()

SSL_MODES = ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]
# sslmode values under which a failed TLS negotiation fails the connection (prefer/allow fall back to plain TCP).
TLS_REQUIRED_MODES = ("require", "verify-ca", "verify-full")
APPLICATION_NAME = "pgrepl.streaming"

# TCP keepalives for every TCP connection (libpq's keywords; connect_params may set others): a peer that vanished
# (a network cut, a host powered off) fails the connection within about 25 s, where the kernel's default would wait
# two hours. tcp_user_timeout (libpq 12+) bounds data the peer never acknowledges the same way. A frozen server
# process whose kernel still answers TCP is not detected by either: lock_timeout/statement_timeout and the
# modules' own deadlines cover what waits on the server.
TCP_KEEPALIVES = {"keepalives": "1", "keepalives_idle": "10", "keepalives_interval": "5", "keepalives_count": "3",
                  "tcp_user_timeout": "30000"}
# Server settings of every session, from the options of the same name (seconds; 0: no limit).
SESSION_TIMEOUTS = ("lock_timeout", "statement_timeout")
# SQLSTATE of a statement that reached one of those limits -> the option that set it.
TIMEOUT_SQLSTATES = {"55P03": "lock_timeout", "57014": "statement_timeout"}
CLIENT_ENCODING = "UTF8"

# libpq keywords that have an option of their own (connect_params must not set them behind its back), or that this
# module sets itself: the value is what to use instead.
DEDICATED_KEYWORDS = {
    "host": "login_host or login_unix_socket",
    "port": "login_port",
    "user": "login_user",
    "dbname": "login_db",
    "sslmode": "ssl_mode",
    "sslrootcert": "ssl_rootcert (ca_cert)",
    "sslcert": "ssl_cert",
    "sslkey": "ssl_key",
    "connect_timeout": "connect_timeout",
    "client_encoding": "nothing: the module sets UTF8 itself (see the connection notes)",
    "replication": "nothing: a replication connection cannot run the modules' SQL",
}


def connection_argument_spec() -> dict[str, dict[str, Any]]:
    """The argument spec fragment every module merges into its own (see doc_fragments/connection.py).

    Names and aliases follow community.postgresql, so a module_defaults block written for it works here too."""
    return {
        "login_user": {"type": "str", "default": "postgres", "aliases": ["login"]},
        "login_password": {"type": "str", "no_log": True},
        "login_host": {"type": "str", "default": "", "aliases": ["host"]},
        "login_unix_socket": {"type": "path", "default": "", "aliases": ["unix_socket"]},
        "login_port": {"type": "int", "default": 5432, "aliases": ["port"]},
        "login_db": {"type": "str", "default": "postgres", "aliases": ["db", "database"]},
        "ssl_mode": {"type": "str", "default": "prefer", "choices": SSL_MODES},
        "ssl_rootcert": {"type": "path", "aliases": ["ca_cert"]},
        "ssl_cert": {"type": "path"},
        "ssl_key": {"type": "path", "no_log": False},
        "connect_params": {"type": "dict", "default": {}},
        "session_role": {"type": "str"},
        "trust_input": {"type": "bool", "default": True},
        "connect_timeout": {"type": "int", "default": 10},
        "lock_timeout": {"type": "int", "default": 30},
        "statement_timeout": {"type": "int", "default": 0},
        "login_os_user": {"type": "str"},
    }


# ------------------------------------------------------------------------------------------------ options

def libpq_keywords() -> dict[str, bool] | None:
    """Every connection keyword of the libpq psycopg uses -> whether libpq treats its value as a secret
    (PQconndefaults' display character '*', as for password and sslpassword). None without psycopg."""
    if psycopg is None:
        return None
    return {option.keyword.decode(): option.dispchar == b"*" for option in psycopg.pq.Conninfo.get_defaults()}


def validate_connect_params(value: Any, keywords: dict[str, bool] | None) -> dict[str, str]:
    """connect_params as libpq keyword -> text; PgreplError naming the key for anything libpq or we would not take."""
    if value in (None, {}):
        return {}
    if not isinstance(value, dict):
        raise PgreplError(f"connect_params: expected a dict of libpq keywords, got {type(value).__name__}")
    result: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(key, str) or (keywords is not None and key not in keywords):
            raise PgreplError(f"connect_params: {key!r} is not a connection keyword of this host's libpq (see "
                              "https://www.postgresql.org/docs/current/libpq-connect.html#LIBPQ-PARAMKEYWORDS)")
        if key in DEDICATED_KEYWORDS:
            raise PgreplError(f"connect_params: {key!r} is not accepted here; use {DEDICATED_KEYWORDS[key]}")
        if keywords is not None and keywords[key]:
            raise PgreplError(f"connect_params: {key!r} holds a secret, and connect_params is shown in the task's "
                              "arguments; give the password in login_password (never logged) or in a passfile")
        if isinstance(item, bool) or not isinstance(item, (str, int)):
            raise PgreplError(f"connect_params.{key}: expected a string or an integer (libpq takes text; write 1 or 0 "
                              f"for a switch), got {item!r}")
        text = str(item)
        if "\x00" in text:
            raise PgreplError(f"connect_params.{key}: the value contains a NUL character")
        result[key] = text
    return result


def validate_connection_params(params: dict[str, Any]) -> None:
    """Refuse connection options that cannot be right, before any network traffic."""
    port = params.get("login_port")
    if port is not None and not 1 <= int(port) <= 65535:
        raise PgreplError(f"login_port: {port} is not a TCP port (1-65535)")
    timeout = params.get("connect_timeout")
    if timeout is not None and int(timeout) < 1:
        raise PgreplError(f"connect_timeout: {timeout} must be at least 1 second")
    for key in SESSION_TIMEOUTS:
        value = params.get(key)
        if value is not None and not 0 <= int(value) <= 2147483:
            raise PgreplError(f"{key}: {value} is not a number of seconds from 0 (no limit) to 2147483")
    for key in ("login_user", "login_db", "login_host", "login_unix_socket", "ssl_rootcert", "ssl_cert", "ssl_key",
                "session_role"):
        value = params.get(key) or ""
        if "\x00" in value:
            raise PgreplError(f"{key}: the value contains a NUL character")
    if params.get("session_role") == "":
        raise PgreplError("session_role: the value is empty; leave the option out to keep login_user's role")
    validate_connect_params(params.get("connect_params"), libpq_keywords())


def conninfo_kwargs(params: dict[str, Any]) -> dict[str, Any]:
    """libpq keywords from module params; psycopg quotes them, so no value can inject another keyword."""
    host = params.get("login_host") or params.get("login_unix_socket") or ""
    kwargs: dict[str, Any] = {
        "user": params.get("login_user") or "postgres",
        "dbname": params.get("login_db") or "postgres",
        "port": params.get("login_port") or 5432,
        "connect_timeout": params.get("connect_timeout") or 10,
        "application_name": APPLICATION_NAME,
    }
    if host:
        kwargs["host"] = host
    if params.get("login_password"):
        kwargs["password"] = params["login_password"]
    if params.get("login_host"):
        # Keepalives where libpq has the keyword (tcp_user_timeout: libpq 12+); connect_params may override them.
        keywords = libpq_keywords()
        kwargs.update({key: value for key, value in TCP_KEEPALIVES.items() if keywords is None or key in keywords})
        # TLS only means something over TCP.
        kwargs["sslmode"] = params.get("ssl_mode") or "prefer"
        for option, keyword in (("ssl_rootcert", "sslrootcert"), ("ssl_cert", "sslcert"), ("ssl_key", "sslkey")):
            if params.get(option):
                kwargs[keyword] = params[option]
    # Validated (validate_connection_params): none of these overrides a keyword set above.
    kwargs.update(validate_connect_params(params.get("connect_params"), None))
    return kwargs


def describe_target(params: dict[str, Any]) -> str:
    """Where we tried to connect, for error messages (never includes the password)."""
    host = params.get("login_host") or params.get("login_unix_socket") or "the default unix socket"
    user = params.get("login_user") or "postgres"
    return f"{user}@{host}:{params.get('login_port') or 5432}/{params.get('login_db') or 'postgres'}"


# ------------------------------------------------------------------------------------------------ encodings

def printable(value: Any) -> Any:
    """A result as Ansible can carry it: strings holding bytes that are not UTF-8 (surrogate escapes, from an
    SQL_ASCII database or a file) get those bytes as \\xNN text, which the controller would otherwise refuse."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            try:
                return value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
            except UnicodeEncodeError:
                return value.encode("utf-8", "backslashreplace").decode("utf-8")
        return value
    if isinstance(value, dict):
        return {printable(key): printable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [printable(item) for item in value]
    return value


def is_sql_ascii(conn: Any) -> bool:
    """Whether the session exchanges undecoded bytes (an SQL_ASCII database, see adapt_encoding)."""
    return conn.info.encoding == "ascii"


if psycopg is not None:
    class _Utf8Loader(Loader):
        """Text from an SQL_ASCII session: UTF-8, any other byte kept as a surrogate escape (never bytes)."""

        def load(self, data: Any) -> str:
            return bytes(data).decode("utf-8", "surrogateescape")

    class _Utf8Dumper(Dumper):
        """str to an SQL_ASCII session: UTF-8, surrogate escapes back to their bytes (oid 0, as psycopg's own)."""

        def dump(self, obj: str) -> bytes:
            if "\x00" in obj:
                raise psycopg.DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes")
            return obj.encode("utf-8", "surrogateescape")

    class _Identifier(sql.Identifier):
        """sql.Identifier that also renders on an SQL_ASCII session, where psycopg would encode it as ASCII and
        fail on any other character: there its bytes are UTF-8 (with surrogate escapes), as the loaders read."""

        def __init__(self, *strings: str) -> None:
            super().__init__(*strings)
            self._parts = strings

        def as_bytes(self, context: Any = None) -> bytes:
            conn = getattr(context, "connection", None)
            if conn is None or not is_sql_ascii(conn):
                return super().as_bytes(context)
            escaping = psycopg.pq.Escaping(conn.pgconn)
            return b".".join(escaping.escape_identifier(part.encode("utf-8", "surrogateescape"))
                             for part in self._parts)

        def as_string(self, context: Any = None) -> str:
            conn = getattr(context, "connection", None)
            if conn is None or not is_sql_ascii(conn):
                return super().as_string(context)
            return self.as_bytes(context).decode("utf-8", "surrogateescape")

# The text types psycopg loads as str, and oid 0: its fallback for every type it has no loader for (pg_lsn...).
TEXT_TYPES = ("text", "varchar", "bpchar", "name", '"char"', 0)


def identifier(*parts: str) -> Any:
    """A quoted SQL identifier (psycopg.sql.Identifier) that works on every server encoding: use it for every name."""
    return _Identifier(*parts)


def adapt_encoding(conn: Any) -> None:
    """Make an open session read and write str whatever the database's encoding (see the module docstring)."""
    if conn.info.parameter_status("server_encoding") != "SQL_ASCII":
        return
    conn.execute("SET client_encoding TO 'SQL_ASCII'")
    for name in TEXT_TYPES:
        conn.adapters.register_loader(name, _Utf8Loader)
    conn.adapters.register_dumper(str, _Utf8Dumper)


def server_words(exc: BaseException) -> str:
    """The server's message of a failed statement, whole: psycopg decodes it as ASCII on an SQL_ASCII session (any
    other character becomes U+FFFD), so the raw bytes are decoded here, as UTF-8."""
    result = getattr(exc, "pgresult", None)
    raw = getattr(result, "error_message", None) if result is not None else None
    if isinstance(raw, bytes) and raw.strip():
        return raw.decode("utf-8", "replace").strip()
    return str(exc).strip()


def refused_message(exc: BaseException) -> str:
    """A server error a module body did not expect, as a sentence: its SQLSTATE and the server's words (never the
    statement, which may hold a verifier or a setting value), and what to do when it was one of our timeouts."""
    sqlstate = getattr(exc, "sqlstate", None) or "no SQLSTATE"
    return f"the server refused the operation ({sqlstate}): {server_words(exc)}{timeout_advice(sqlstate)}"


def timeout_advice(sqlstate: str | None) -> str:
    """What to do about a statement that reached lock_timeout or statement_timeout (by its SQLSTATE), or ""."""
    option = TIMEOUT_SQLSTATES.get(sqlstate or "")
    if option == "lock_timeout":
        return ("; it waited lock_timeout seconds for a lock that another session holds (find it in pg_locks and "
                "pg_stat_activity, end it or let it finish, then run again; or raise lock_timeout, 0 waits forever)")
    if option == "statement_timeout":
        return ("; it ran longer than statement_timeout seconds, or was cancelled by another session (raise "
                "statement_timeout, 0 is no limit)")
    return ""


def with_timeout_advice(exc: BaseException) -> str:
    """The message of a PgreplError, with timeout_advice() when the server error it was raised from (its context,
    kept by `raise ... from None`, possibly through a wrapping PgreplError) was one of our timeouts: the modules
    reword server errors in their own terms, and this adds what to do without each of them knowing the timeouts."""
    message = str(exc)
    cause: BaseException | None = exc
    for _depth in range(5):
        cause = cause.__context__ if cause is not None else None
        advice = timeout_advice(getattr(cause, "sqlstate", None)) if cause is not None else ""
        if advice:
            return message if advice in message else message + advice
    return message


def session_settings(params: dict[str, Any]) -> dict[str, str]:
    """The server settings every session sets after connecting: lock_timeout and statement_timeout in
    milliseconds, "0" for no limit (lock_timeout defaults to 30 s: a statement waiting behind another session's lock
    fails with SQLSTATE 55P03 instead of hanging the play)."""
    defaults = connection_argument_spec()
    result = {}
    for key in SESSION_TIMEOUTS:
        value = params.get(key)
        seconds = int(defaults[key]["default"] if value is None else value)
        result[key] = str(seconds * 1000)
    return result


def apply_session_settings(conn: Any, settings: dict[str, str]) -> None:
    """Set them in one statement (a round trip; a startup option would be refused by connection poolers)."""
    if not settings:
        return
    call = "pg_catalog.set_config({}, {}, false)"
    calls = sql.SQL(", ").join(sql.SQL(call).format(sql.Literal(key), sql.Placeholder()) for key in settings)
    conn.execute(sql.SQL("SELECT {}").format(calls), list(settings.values()))


# ------------------------------------------------------------------------------------------------ failures

@dataclass(frozen=True)
class ConnectFacts:
    """What libpq knows about a failed connection, none of it message text."""

    sqlstate: str | None = None  # the SQLSTATE of the server's refusal, when it sent one
    needs_password: bool = False  # the server asked for a password and none was given
    used_password: bool = False  # the server asked for a password and one was sent
    answered: bool | None = None  # something accepted the TCP or unix-socket connection (None: not known)
    exact: bool = True  # the SQLSTATE was asked for (libpq's verbose errors); False: PQping stood in
    rejecting: bool = False  # PQping: the server runs but takes no connections now (startup, shutdown, recovery)
    invalid: bool = False  # PQping: libpq did not even try (options it cannot use)
    timed_out: bool = False
    connected: bool = False  # the second attempt got through: the first failure was transient
    tls_required: bool = False


@dataclass(frozen=True)
class ConnectFailure:
    cause: str  # one of CAUSES
    unreachable: bool
    sqlstate: str | None
    text: str  # what libpq and the server said, whole and in their own language


CAUSES = ("unreachable", "timeout", "not_accepting", "too_many", "closed", "transient", "password", "no_password",
          "hba", "login_refused", "database", "privilege", "refused", "tls", "auth_client", "invalid")
# The server is down, not up yet, going down or full: a caller may wait and try again.
TRANSIENT_CAUSES = frozenset({"unreachable", "timeout", "not_accepting", "too_many", "closed", "transient"})


def classify(facts: ConnectFacts) -> str:
    """Which of CAUSES a failed connection is, from libpq's facts alone."""
    state = facts.sqlstate
    if state:
        if state.startswith("57P"):  # cannot_connect_now (starting, shutting down, recovery), admin/crash shutdown
            return "not_accepting"
        if state == "53300":  # too_many_connections
            return "too_many"
        if state == "28P01":  # invalid_password (also a missing role or one without a password: the server hides it)
            return "password"
        if state == "28000":  # invalid_authorization_specification
            return "login_refused" if facts.used_password else "hba"
        if state == "3D000":  # invalid_catalog_name
            return "database"
        if state == "42501":  # insufficient_privilege
            return "privilege"
        return "refused"
    if facts.timed_out:
        return "timeout"
    if facts.invalid:
        return "invalid"
    if facts.needs_password:
        return "no_password"
    if facts.connected:
        return "transient"
    if facts.rejecting:
        return "not_accepting"
    if facts.answered is False:
        return "unreachable"
    if not facts.exact:
        # PQping says a server answers but no SQLSTATE is known: the password facts are all there is.
        return "password" if facts.used_password else "hba"
    if facts.tls_required:
        return "tls"
    if facts.used_password:
        return "auth_client"
    return "closed"


def failure_of(facts: ConnectFacts, text: str) -> ConnectFailure:
    cause = classify(facts)
    return ConnectFailure(cause, cause in TRANSIENT_CAUSES, facts.sqlstate, text)


# libpq's C API, for what psycopg does not wrap (PQsetErrorVerbosity). Values from libpq-fe.h.
_CONNECTION_BAD = 1
_NOT_ANSWERED = (1, 2, 8)  # CONNECTION_BAD, CONNECTION_STARTED (connect() in progress), CONNECTION_NEEDED
_POLLING_FAILED, _POLLING_READING, _POLLING_WRITING, _POLLING_OK = 0, 1, 2, 3
_PQERRORS_VERBOSE = 2
# Verbose errors read "<severity>:  <SQLSTATE>: <message>"; the severity is translated, the code is not.
_SQLSTATE_RE = re.compile(r":  ([0-9A-Z]{5}): ")


def _mapped_libpq() -> str | None:
    """The libpq this process has loaded (psycopg's own, bundled or not), from the Linux memory map."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="surrogateescape") as maps:
            for line in maps:
                fields = line.split(None, 5)
                path = fields[5].strip() if len(fields) == 6 else ""
                if os.path.basename(path).startswith("libpq") and ".so" in path and os.path.isfile(path):
                    return path
    except OSError:
        pass
    return None


def load_libpq() -> Any:
    """libpq through ctypes with the signatures used here, or None."""
    path = _mapped_libpq() or ctypes.util.find_library("pq")
    if not path:
        return None
    try:
        lib = ctypes.CDLL(path)
        lib.PQconnectStart.restype = ctypes.c_void_p
        lib.PQconnectStart.argtypes = [ctypes.c_char_p]
        for name in ("PQstatus", "PQconnectPoll", "PQsocket", "PQconnectionNeedsPassword",
                     "PQconnectionUsedPassword"):
            getattr(lib, name).restype = ctypes.c_int
            getattr(lib, name).argtypes = [ctypes.c_void_p]
        lib.PQsetErrorVerbosity.restype = ctypes.c_int
        lib.PQsetErrorVerbosity.argtypes = [ctypes.c_void_p, ctypes.c_int]
        lib.PQerrorMessage.restype = ctypes.c_char_p
        lib.PQerrorMessage.argtypes = [ctypes.c_void_p]
        lib.PQfinish.restype = None
        lib.PQfinish.argtypes = [ctypes.c_void_p]
    except (OSError, AttributeError):
        return None
    return lib


def probe_libpq(lib: Any, conninfo: str, timeout: float, tls_required: bool) -> ConnectFacts:
    """One more connection attempt through libpq's C API with verbose errors, to learn what psycopg cannot tell."""
    conn = lib.PQconnectStart(conninfo.encode("utf-8", "surrogateescape"))
    if not conn:
        return ConnectFacts(exact=False, tls_required=tls_required)
    try:
        lib.PQsetErrorVerbosity(conn, _PQERRORS_VERBOSE)
        polled = answered = timed_out = False
        status = _POLLING_WRITING  # what libpq's docs say to assume before the first PQconnectPoll
        deadline = time.monotonic() + timeout
        while lib.PQstatus(conn) != _CONNECTION_BAD and status not in (_POLLING_OK, _POLLING_FAILED):
            sock = lib.PQsocket(conn)
            remaining = deadline - time.monotonic()
            if sock < 0 or remaining <= 0:
                timed_out = sock >= 0
                break
            poller = select.poll()
            poller.register(sock, select.POLLIN if status == _POLLING_READING else select.POLLOUT)
            if not poller.poll(remaining * 1000):
                timed_out = True
                break
            status = lib.PQconnectPoll(conn)
            polled = True
            answered = answered or lib.PQstatus(conn) not in _NOT_ANSWERED
        message = (lib.PQerrorMessage(conn) or b"").decode("utf-8", "replace")
        states = _SQLSTATE_RE.findall(message)
        facts = ConnectFacts(sqlstate=states[-1] if states else None,
                             needs_password=bool(lib.PQconnectionNeedsPassword(conn)),
                             used_password=bool(lib.PQconnectionUsedPassword(conn)),
                             answered=answered, timed_out=timed_out, connected=status == _POLLING_OK,
                             tls_required=tls_required)
    finally:
        lib.PQfinish(conn)
    if not polled and not timed_out:
        # libpq gave up before talking to anyone: options it cannot use, or no socket file / no such host name.
        ping = psycopg.pq.PGconn.ping(conninfo.encode("utf-8", "surrogateescape"))
        facts = ConnectFacts(answered=False, invalid=ping == psycopg.pq.Ping.NO_ATTEMPT, tls_required=tls_required)
    return facts


def ping_facts(exc: BaseException, conninfo: str, tls_required: bool) -> ConnectFacts:
    """Without libpq's C API: PQping (through psycopg) and the password facts of the failed attempt."""
    pgconn = getattr(exc, "pgconn", None)
    needs = used = False
    with contextlib.suppress(Exception):
        needs = bool(pgconn.needs_password) if pgconn is not None else False
        used = bool(pgconn.used_password) if pgconn is not None else False
    ping = psycopg.pq.PGconn.ping(conninfo.encode("utf-8", "surrogateescape"))
    return ConnectFacts(needs_password=needs, used_password=used, exact=False,
                        answered=ping != psycopg.pq.Ping.NO_RESPONSE, rejecting=ping == psycopg.pq.Ping.REJECT,
                        invalid=ping == psycopg.pq.Ping.NO_ATTEMPT, tls_required=tls_required)


def diagnose_connect_error(kwargs: dict[str, Any], exc: BaseException, lib: Any = None) -> ConnectFailure:
    """Why psycopg.connect(**kwargs) failed with exc (see the module docstring); the server is asked once more."""
    text = str(exc).strip()
    tls_required = kwargs.get("sslmode") in TLS_REQUIRED_MODES
    if isinstance(exc, psycopg.errors.ConnectionTimeout):
        # Nothing answered within connect_timeout: asking again would only wait as long again.
        return failure_of(ConnectFacts(timed_out=True), text)
    conninfo = make_conninfo(**{key: value for key, value in kwargs.items() if value is not None})
    lib = lib if lib is not None else load_libpq()
    if lib is None:
        facts = ping_facts(exc, conninfo, tls_required)
    else:
        facts = probe_libpq(lib, conninfo, float(kwargs.get("connect_timeout") or 10), tls_required)
    return failure_of(facts, text)


# What each cause means, in words that fit any connection (callers add which of their options to check).
CAUSE_TEXT = {
    "unreachable": "nothing answers at that address (the server is not running, or the host, port or socket "
                   "directory is wrong, or a firewall drops the connection)",
    "timeout": "no answer within the connect timeout",
    "not_accepting": "the server does not accept connections now: it is starting up, shutting down, or in recovery "
                     "without hot standby",
    "too_many": "the server has no free connection slot",
    "closed": "the server closed the connection before authentication (it may be restarting)",
    "transient": "the first attempt failed and a second one got through: the server was starting or restarting",
    "password": "the password was refused: it is wrong, or the role has no password or does not exist (the server "
                "does not say which)",
    "no_password": "the server asks for a password and none was given",
    "hba": "the server refused the connection before asking for any password: no pg_hba.conf line admits this user "
           "and database from this host, or the line that matches refuses it (reject, or peer, ident or cert "
           "authentication that failed), or the role does not exist",
    "login_refused": "the password was accepted but the role may not log in (NOLOGIN, an expired password, or a "
                     "connection limit)",
    "database": "the database does not exist",
    "privilege": "the role lacks a privilege the connection needs (CONNECT on the database, or REPLICATION for a "
                 "replication connection)",
    "refused": "the server refused the connection",
    "tls": "the server answered but the TLS negotiation failed",
    "auth_client": "the authentication failed on this side after the password was sent (channel binding, or a "
                   "server signature libpq does not accept)",
    "invalid": "libpq cannot use these connection options",
}


def describe_failure(failure: ConnectFailure) -> str:
    """The cause of a failed connection in words, with the SQLSTATE when the server sent one."""
    state = f" (SQLSTATE {failure.sqlstate})" if failure.sqlstate else ""
    return CAUSE_TEXT[failure.cause] + state


def explain_connect_failure(params: dict[str, Any], failure: ConnectFailure) -> str:
    """A failed connection with the module's options: where, why, which options to check, then libpq's and the
    server's own words (in their language, whole)."""
    target = describe_target(params)
    why = describe_failure(failure)
    said = f"libpq said: {failure.text}"
    if failure.unreachable:
        where = (f"login_host={params.get('login_host') or params.get('login_unix_socket') or '(default socket)'}, "
                 f"login_port={params.get('login_port') or 5432}")
        timeout = f", connect_timeout={params.get('connect_timeout') or 10}" if failure.cause == "timeout" else ""
        return f"cannot reach PostgreSQL at {target} ({where}{timeout}): {why}. {said}"
    if failure.cause == "password":
        return f"authentication failed for {target}: check login_user and login_password; {why}. {said}"
    if failure.cause == "no_password":
        return (f"the server at {target} asks for a password and login_password is not set (nor a passfile line for "
                f"this connection). {said}")
    if failure.cause == "hba":
        return f"the server at {target} has no pg_hba.conf entry that admits this connection: {why}. {said}"
    if failure.cause == "database":
        return f"login_db: the database does not exist on {target} (SQLSTATE {failure.sqlstate}). {said}"
    remedies = {
        "login_refused": "check login_user",
        "privilege": "grant it, or check login_user and login_db",
        "tls": f"check ssl_mode ({params.get('ssl_mode') or 'prefer'}), ssl_rootcert, ssl_cert and ssl_key",
        "invalid": "check connect_params",
    }
    remedy = f"; {remedies[failure.cause]}" if failure.cause in remedies else ""
    return f"cannot connect to {target}: {why}{remedy}. {said}"


# ------------------------------------------------------------------------------------------------ connecting

def open_session(kwargs: dict[str, Any], explain: Callable[[ConnectFailure], str],
                 opener: Callable[..., Any] | None = None) -> Any:
    """psycopg.connect(**kwargs) (libpq keywords) in autocommit, with client_encoding UTF8 and adapted to the
    database's encoding; a failure raises PgreplConnectionError with explain(failure) as its message."""
    kwargs = {**kwargs, "client_encoding": CLIENT_ENCODING}
    try:
        conn = (opener or psycopg.connect)(autocommit=True, **kwargs)
    except psycopg.Error as exc:
        failure = diagnose_connect_error(kwargs, exc)
        raise PgreplConnectionError(explain(failure), failure.unreachable, failure.cause) from None
    try:
        adapt_encoding(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def set_session_role(conn: Any, role: str | None) -> None:
    """SET ROLE after connecting (community.postgresql's session_role): the modules then act with that role's rights."""
    if not role:
        return
    try:
        conn.execute(sql.SQL("SET ROLE {}").format(identifier(role)))
    except psycopg.Error as exc:
        why = {"22023": "there is no such role", "42501": "login_user is not a member of it"}.get(
            exc.sqlstate or "", "the server refused it")
        raise PgreplError(f"session_role: cannot SET ROLE {role!r}: {why} (SQLSTATE {exc.sqlstate}): "
                          f"{server_words(exc)}") from None


def connect(params: dict[str, Any], autocommit: bool = True) -> Any:
    """Open a connection or raise PgreplError with a message that names the cause."""
    if psycopg is None:
        raise PgreplError("the Python library psycopg (version 3) is required on the managed host: "
                          "install python3-psycopg (Debian/Ubuntu, RHEL 9+) or `pip install psycopg`")
    validate_connection_params(params)
    with as_os_user(params.get("login_os_user")):
        conn = open_session(conninfo_kwargs(params), lambda failure: explain_connect_failure(params, failure))
    try:
        apply_session_settings(conn, session_settings(params))
        set_session_role(conn, params.get("session_role"))
        conn.autocommit = autocommit
    except BaseException:
        conn.close()
        raise
    return conn


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
