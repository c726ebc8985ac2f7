# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The standby_config module: what makes a data directory a standby of a given primary (standby.signal,
primary_conninfo, primary_slot_name, the hot standby parity settings) or not, decided from the data directory alone
(the server may be down), written into postgresql.auto.conf line by line (its format: _conffile.py), and a running
server reloaded when asked.
"""

from __future__ import annotations

import os
import pwd
import time
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.pgrepl.streaming.plugins.module_utils._conffile import (
    AUTO_CONF,
    AUTO_CONF_HEADER,
    SETTING_NAME_PATTERN,
    ConfFile,
    decode,
    encode,
    is_valid_setting_name,
)
from ansible_collections.pgrepl.streaming.plugins.module_utils._connection import (
    SSL_MODES,
    connect,
    describe_target,
    psycopg,
    query_one,
)
from ansible_collections.pgrepl.streaming.plugins.module_utils._conninfo import (
    SECRET_KEYWORDS,
    ConninfoError,
    build,
    check_sslrootcert,
    differences,
    has_password,
    is_valid_keyword,
    mask,
    parse,
    tls_pairs,
)
from ansible_collections.pgrepl.streaming.plugins.module_utils._datadir import (
    read_pg_version,
    read_postmaster,
    validate_data_dir,
)
from ansible_collections.pgrepl.streaming.plugins.module_utils._errors import PgreplError
from ansible_collections.pgrepl.streaming.plugins.module_utils._files import (
    atomic_write,
    create_signal,
    read_bytes,
    remove_signal,
)
from ansible_collections.pgrepl.streaming.plugins.module_utils._module import ModuleSpec
from ansible_collections.pgrepl.streaming.plugins.module_utils._names import validate_slot_name
from ansible_collections.pgrepl.streaming.plugins.module_utils._osuser import find_user
from ansible_collections.pgrepl.streaming.plugins.module_utils._pgpass import passfile_problem, stat_passfile
from ansible_collections.pgrepl.streaming.plugins.module_utils._settings import InvalidValue, parse_number

STANDBY_SIGNAL = "standby.signal"
RECOVERY_SIGNAL = "recovery.signal"

# ------------------------------------------------------------------------------------------ the standby request

# Keywords pg_basebackup -R (and other tools that print PQconninfo) write with libpq's default value. When the
# request does not name them and the existing primary_conninfo holds exactly one of these values, they do not
# make it differ: libpq would use that value anyway. gssencmode defaults to "disable" in a libpq built without
# GSSAPI.
LIBPQ_DEFAULTS: dict[str, frozenset[str]] = {
    "channel_binding": frozenset({"prefer"}),
    "sslcompression": frozenset({"0"}),
    "sslsni": frozenset({"1"}),
    "ssl_min_protocol_version": frozenset({"TLSv1.2"}),
    "gssencmode": frozenset({"prefer", "disable"}),
    "krbsrvname": frozenset({"postgres"}),
    "target_session_attrs": frozenset({"any"}),
    "sslcertmode": frozenset({"allow"}),
    "load_balance_hosts": frozenset({"disable"}),
    "gssdelegation": frozenset({"0"}),
    "sslnegotiation": frozenset({"postgres"}),
}
# Keywords with options of their own (conninfo_options may not set them).
DEDICATED_KEYWORDS = {
    "host": "primary_host",
    "port": "primary_port",
    "user": "replication_user",
    "passfile": "passfile",
    "application_name": "application_name",
    "sslmode": "sslmode",
    "sslrootcert": "sslrootcert",
}
# The WAL receiver sets these itself.
RECEIVER_KEYWORDS = frozenset({"replication", "fallback_application_name"})
# Settings the module itself manages (remove_settings may not name them).
MANAGED_SETTINGS = ("primary_conninfo", "primary_slot_name")
APPLICATION_NAME_MAX_BYTES = 63  # NAMEDATALEN - 1: the server cuts a longer application_name
MIN_MAJOR = 12  # standby.signal and primary_conninfo in postgresql.conf files exist since 12
SIGHUP_CONNINFO_MAJOR = 13  # primary_conninfo and primary_slot_name are reloadable since 13
RELOAD_WAIT_SECONDS = 10.0


@dataclass(frozen=True)
class StandbyRequest:
    """The module's options, checked; the connection string is built but not written yet."""

    data_dir: str
    state: str
    conninfo_pairs: tuple[tuple[str, str], ...]
    slot: str | None
    remove_settings: tuple[str, ...]
    owner: str | None
    reload: bool
    passfile: str | None = None
    min_settings: tuple[tuple[str, int], ...] = ()
    # recovery_min_apply_delay as given and in milliseconds; None: not managed (left as it is).
    apply_delay: tuple[str, int] | None = None

    @property
    def conninfo(self) -> str:
        return build(list(self.conninfo_pairs))


def _check_text(option: str, value: Any, allow_empty: bool = False) -> str:
    """A string option without line breaks or NUL (a configuration line or a path cannot hold them)."""
    if not isinstance(value, str):
        raise PgreplError(f"{option}: {value!r} is a {type(value).__name__}, a string is expected")
    if not allow_empty and value == "":
        raise PgreplError(f"{option}: is empty")
    if "\n" in value or "\r" in value:
        raise PgreplError(f"{option}: {value!r} contains a line break, which a configuration line cannot hold")
    if "\x00" in value:
        raise PgreplError(f"{option}: {value!r} contains a NUL character")
    return value


def _option_value(key: str, value: Any) -> str:
    where = f"conninfo_options.{key}"
    if isinstance(value, bool):
        raise PgreplError(f"{where}: {value!r} is a boolean; give libpq's own spelling as a string or a number "
                          "(for example keepalives: 1)")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return _check_text(where, value, allow_empty=True)
    raise PgreplError(f"{where}: {value!r} is a {type(value).__name__}; a libpq value is a string or a number")


def conninfo_option_pairs(options: Any) -> list[tuple[str, str]]:
    """conninfo_options as sorted keyword/value pairs, every keyword checked."""
    if options is None:
        return []
    if not isinstance(options, dict):
        raise PgreplError(f"conninfo_options: {options!r} is not a dict of libpq keywords and values")
    pairs: list[tuple[str, str]] = []
    for key in sorted(options, key=str):
        if not isinstance(key, str) or not is_valid_keyword(key):
            raise PgreplError(f"conninfo_options: {key!r} is not a libpq keyword (lower-case letters, digits and "
                              "underscores, such as keepalives_idle)")
        if key in SECRET_KEYWORDS:
            raise PgreplError(f"conninfo_options: {key!r} is refused: no secret is ever written into "
                              "primary_conninfo (postgresql.auto.conf is copied by pg_basebackup and shown to "
                              "superusers); put the password in a password file and give its path as passfile")
        if key in DEDICATED_KEYWORDS:
            raise PgreplError(f"conninfo_options: {key!r} has its own option, use {DEDICATED_KEYWORDS[key]}")
        if key in RECEIVER_KEYWORDS:
            raise PgreplError(f"conninfo_options: {key!r} is set by the WAL receiver itself and cannot be given")
        pairs.append((key, _option_value(key, options[key])))
    return pairs


def check_application_name(value: Any) -> str:
    name = _check_text("application_name", value)
    size = len(name.encode("utf-8"))
    if size > APPLICATION_NAME_MAX_BYTES:
        raise PgreplError(f"application_name: {name!r} is {size} bytes long, at most {APPLICATION_NAME_MAX_BYTES} "
                          "are allowed (the server would cut it, and synchronous_standby_names would not match)")
    return name


def build_standby_request(params: dict[str, Any]) -> StandbyRequest:
    """Check every option (no file or server is looked at) and build primary_conninfo."""
    data_dir = _check_text("data_dir", params.get("data_dir"))
    state = params.get("state") or "standby"
    reload = bool(params.get("reload", True))
    owner = params.get("owner")
    if owner is not None:
        owner = _check_text("owner", owner)
    if state == "primary":
        return StandbyRequest(os.path.normpath(data_dir), state, (), None, (), owner, reload)

    host = _check_text("primary_host", params.get("primary_host"))
    if host.strip() == "":
        raise PgreplError(f"primary_host: {host!r} is blank")
    port = params.get("primary_port")
    port = 5432 if port is None else port
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise PgreplError(f"primary_port: {port!r} is not a TCP port (1-65535)")
    pairs: list[tuple[str, str]] = [("host", host), ("port", str(port))]
    if params.get("replication_user") is not None:
        pairs.append(("user", _check_text("replication_user", params["replication_user"])))
    passfile = params.get("passfile")
    if passfile is not None:
        passfile = _check_text("passfile", passfile)
        if not os.path.isabs(passfile):
            raise PgreplError(f"passfile: {passfile!r} must be an absolute path (the WAL receiver runs in the data "
                              "directory, where a relative path would point)")
        pairs.append(("passfile", passfile))
    if params.get("application_name") is not None:
        pairs.append(("application_name", check_application_name(params["application_name"])))
    pairs.extend(tls_pairs(params.get("sslmode") or "prefer", check_sslrootcert(params.get("sslrootcert"))))
    pairs.extend(conninfo_option_pairs(params.get("conninfo_options")))

    slot = params.get("primary_slot_name")
    if slot is not None:
        slot = validate_slot_name(slot, "primary_slot_name")
    removals: list[str] = []
    for name in params.get("remove_settings") or []:
        if not is_valid_setting_name(name):
            raise PgreplError(f"remove_settings: {name!r} is not a setting name ({SETTING_NAME_PATTERN})")
        if name in MANAGED_SETTINGS and (name == "primary_conninfo" or slot is not None):
            raise PgreplError(f"remove_settings: {name!r} is managed by this module's own options and cannot "
                              "be removed with state=standby")
        if name not in removals:
            removals.append(name)
    return StandbyRequest(os.path.normpath(data_dir), state, tuple(pairs), slot, tuple(removals), owner, reload,
                          passfile, check_min_settings(params.get("min_settings"), removals),
                          check_apply_delay(params.get("apply_delay"), removals))


APPLY_DELAY = "recovery_min_apply_delay"


def check_apply_delay(value: Any, removals: list[str]) -> tuple[str, int] | None:
    """apply_delay: a PostgreSQL time (milliseconds without a unit), as text and in milliseconds; None or empty:
    not managed."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if APPLY_DELAY in removals:
        raise PgreplError(f"remove_settings: {APPLY_DELAY!r} is managed by apply_delay; leave one of them out")
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise PgreplError(f"apply_delay: {value!r} is not a time such as '5min', '30s' or 0")
    text = _check_text("apply_delay", str(value)).strip()
    try:
        millis = int(parse_number(text, "ms", integer=True))
    except InvalidValue as exc:
        raise PgreplError(f"apply_delay: {value!r} is not a time such as '5min', '30s' or 0 ({exc})") from None
    if millis < 0:
        raise PgreplError(f"apply_delay: {value!r} is negative (0 for no delay)")
    return text, millis


def _delay_millis(text: str | None) -> int | None:
    """A recovery_min_apply_delay value of postgresql.auto.conf in milliseconds (None: absent or unreadable)."""
    if text is None:
        return None
    try:
        return int(parse_number(text.strip(), "ms", integer=True))
    except InvalidValue:
        return None


def check_min_settings(value: Any, removals: list[str]) -> tuple[tuple[str, int], ...]:
    """min_settings: integer settings the standby must have at least (hot standby parity with the primary)."""
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise PgreplError(f"min_settings: {value!r} is not a dict of setting names and whole numbers")
    checked: list[tuple[str, int]] = []
    for name in sorted(value, key=str):
        number = value[name]
        where = f"min_settings.{name}"
        if not isinstance(name, str) or not is_valid_setting_name(name):
            raise PgreplError(f"min_settings: {name!r} is not a setting name ({SETTING_NAME_PATTERN})")
        if name in MANAGED_SETTINGS or name in removals:
            raise PgreplError(f"{where}: {name!r} is managed by another option of this module")
        if isinstance(number, str) and number.strip().isdigit():
            number = int(number)
        if isinstance(number, bool) or not isinstance(number, int) or number < 0:
            raise PgreplError(f"{where}: {number!r} is not a whole number >= 0")
        checked.append((name, number))
    return tuple(checked)


def _whole_number(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


# --------------------------------------------------------------------------------------- the data directory

@dataclass
class DirFacts:
    """What the data directory tells without a server."""

    data_dir: str
    major: int
    auto_text: str | None  # None: postgresql.auto.conf does not exist
    standby_signal: bool
    recovery_signal: bool
    running: bool
    port: int | None
    socket_dir: str | None
    uid: int
    gid: int
    server_user: str | None  # the data directory's owner: the OS user the server runs as
    server_home: str | None

    @property
    def auto_path(self) -> str:
        return os.path.join(self.data_dir, AUTO_CONF)

    def signal_path(self, name: str) -> str:
        return os.path.join(self.data_dir, name)


def _socket_dir(data_dir: str) -> str | None:
    """The first unix socket directory postmaster.pid names (its fifth line), None when there is none."""
    try:
        with open(os.path.join(data_dir, "postmaster.pid"), encoding="utf-8", errors="replace") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return None
    return (lines[4].strip() or None) if len(lines) > 4 else None


def read_dir_facts(data_dir: str) -> DirFacts:
    """Refuse what is not a data directory this module can manage, else read its facts."""
    validate_data_dir(data_dir)
    version = read_pg_version(data_dir)
    major = int(version.split(".")[0]) if version.split(".")[0].isdigit() else 0
    if major < MIN_MAJOR or "." in version:
        raise PgreplError(f"data_dir: {data_dir!r} holds PostgreSQL {version}, which configures a standby in "
                          f"recovery.conf; this module needs PostgreSQL {MIN_MAJOR} or later (standby.signal)")
    if os.path.exists(os.path.join(data_dir, "recovery.conf")):
        raise PgreplError(f"data_dir: {data_dir!r} has a recovery.conf, which PostgreSQL {major} refuses to start "
                          "with: remove it (its settings belong in postgresql.auto.conf)")
    raw = read_bytes(os.path.join(data_dir, AUTO_CONF), option="data_dir")
    postmaster = read_postmaster(data_dir)
    st = os.stat(data_dir)
    try:
        entry = pwd.getpwuid(st.st_uid)
        user, home = entry.pw_name, entry.pw_dir
    except KeyError:
        user, home = None, None
    return DirFacts(
        data_dir=data_dir,
        major=major,
        auto_text=None if raw is None else decode(raw),
        standby_signal=os.path.exists(os.path.join(data_dir, STANDBY_SIGNAL)),
        recovery_signal=os.path.exists(os.path.join(data_dir, RECOVERY_SIGNAL)),
        running=bool(postmaster["postmaster_running"]),
        port=postmaster["postmaster_port"],
        socket_dir=_socket_dir(data_dir) if postmaster["postmaster_running"] else None,
        uid=st.st_uid,
        gid=st.st_gid,
        server_user=user,
        server_home=home,
    )


def ignorable_defaults(facts: DirFacts) -> dict[str, frozenset[str]]:
    """LIBPQ_DEFAULTS plus the defaults that depend on the server's OS user (its name, its ~/.pgpass)."""
    ignorable = dict(LIBPQ_DEFAULTS)
    if facts.server_user:
        ignorable["user"] = frozenset({facts.server_user})
    if facts.server_home:
        ignorable["passfile"] = frozenset({os.path.join(facts.server_home, ".pgpass")})
    return ignorable


# ---------------------------------------------------------------------------------------------------- the plan

@dataclass
class Plan:
    """What the data directory must become; computed without writing anything."""

    before_text: str | None
    after_text: str | None
    settings_changed: list[str] = field(default_factory=list)
    standby_signal: bool = False
    recovery_signal: bool = False
    conninfo: str | None = None  # primary_conninfo in effect afterwards (unmasked: never return it as is)
    slot: str | None = None
    conninfo_differences: list[str] = field(default_factory=list)
    password_dropped: bool = False
    warnings: list[str] = field(default_factory=list)
    raised: list[str] = field(default_factory=list)  # min_settings written (they take effect at a restart)

    @property
    def auto_changed(self) -> bool:
        return self.after_text != self.before_text


def plan_standby(facts: DirFacts, request: StandbyRequest) -> Plan:
    """Edit a copy of postgresql.auto.conf and decide the signal files; pure (unit-tested without a server)."""
    doc = ConfFile.parse(facts.auto_text or "")
    plan = Plan(facts.auto_text, facts.auto_text)
    if request.state == "standby":
        existing = doc.get("primary_conninfo")
        same = False
        if existing is not None:
            try:
                plan.conninfo_differences = differences(dict(request.conninfo_pairs), parse(existing),
                                                        ignorable_defaults(facts))
                same = not plan.conninfo_differences
            except ConninfoError as exc:
                plan.warnings.append(f"the primary_conninfo in {facts.auto_path} could not be read ({exc}): it is "
                                     "replaced")
        if not same:
            doc.set("primary_conninfo", request.conninfo)
            plan.settings_changed.append("primary_conninfo")
            plan.password_dropped = existing is not None and has_password(existing)
        if request.slot is not None and doc.set("primary_slot_name", request.slot):
            plan.settings_changed.append("primary_slot_name")
        for name in request.remove_settings:
            if doc.remove(name):
                plan.settings_changed.append(name)
        # Raised, never lowered: a value already there that is as high stays as it is.
        for name, least in request.min_settings:
            current = _whole_number(doc.get(name))
            if current is None or current < least:
                doc.set(name, str(least))
                plan.settings_changed.append(name)
                plan.raised.append(name)
        if request.apply_delay is not None:
            _plan_apply_delay(doc, request.apply_delay, plan)
        plan.standby_signal = True
        plan.recovery_signal = facts.recovery_signal
    else:
        for name in MANAGED_SETTINGS:
            if doc.remove(name):
                plan.settings_changed.append(name)
    if plan.settings_changed:
        text = doc.render()
        plan.after_text = text if facts.auto_text is not None else AUTO_CONF_HEADER + text
    plan.conninfo = doc.get("primary_conninfo")
    plan.slot = doc.get("primary_slot_name")
    if plan.password_dropped:
        plan.warnings.append(f"the primary_conninfo in {facts.auto_path} held a password: it is replaced by one "
                             "without (the WAL receiver reads the password from the passfile)")
    return plan


def _plan_apply_delay(doc: ConfFile, delay: tuple[str, int], plan: Plan) -> None:
    """recovery_min_apply_delay as asked: written when its value differs (compared in milliseconds, so '5min' and
    '300s' are the same), removed for no delay (0)."""
    text, millis = delay
    present = doc.get(APPLY_DELAY)
    if millis == 0:
        if present is not None and doc.remove(APPLY_DELAY):
            plan.settings_changed.append(APPLY_DELAY)
    elif _delay_millis(present) != millis and doc.set(APPLY_DELAY, text):
        plan.settings_changed.append(APPLY_DELAY)


def masked_text(text: str | None) -> str:
    return "" if text is None else ConfFile.parse(text).masked()


def signal_text(standby: bool, recovery: bool) -> str:
    def word(present: bool) -> str:
        return "present" if present else "absent"
    return f"{STANDBY_SIGNAL}: {word(standby)}\n{RECOVERY_SIGNAL}: {word(recovery)}\n"


def restart_needed(facts: DirFacts, plan: Plan) -> bool:
    """Whether the running server must restart for the change to take effect."""
    if not facts.running:
        return False
    if (plan.standby_signal, plan.recovery_signal) != (facts.standby_signal, facts.recovery_signal):
        return True  # entering or leaving recovery happens only at start
    if plan.raised:
        return True  # the parity settings (max_connections & co) are read at server start only
    return facts.major < SIGHUP_CONNINFO_MAJOR and any(name in MANAGED_SETTINGS for name in plan.settings_changed)


# ----------------------------------------------------------------------------------------------- file writes

def resolve_owner(owner: str | None, facts: DirFacts) -> tuple[int, int]:
    """uid and gid for the files the module creates: the owner option (its primary group), else the data dir's."""
    if owner is None:
        return facts.uid, facts.gid
    entry = find_user("owner", owner)
    return entry.pw_uid, entry.pw_gid


def write_auto_conf(facts: DirFacts, text: str, uid: int, gid: int) -> None:
    """Replace postgresql.auto.conf atomically (keeping its owner and mode); a new one is 0600 uid:gid."""
    path = facts.auto_path
    atomic_write(path, encode(text), mode=0o600, option="data_dir")
    if facts.auto_text is None:
        st = os.stat(path)
        if (st.st_uid, st.st_gid) != (uid, gid):
            try:
                os.chown(path, uid, gid)
            except OSError as exc:
                raise PgreplError(f"data_dir: cannot give {path!r} the owner {uid}:{gid}: "
                                  f"{exc.strerror or exc}") from None


def apply_plan(facts: DirFacts, plan: Plan, uid: int, gid: int) -> None:
    """Write the plan. Leaving recovery: signal files go first; entering it: the settings are written first."""
    standby_path = facts.signal_path(STANDBY_SIGNAL)
    recovery_path = facts.signal_path(RECOVERY_SIGNAL)
    if not plan.standby_signal and facts.standby_signal:
        remove_signal(standby_path)
    if not plan.recovery_signal and facts.recovery_signal:
        remove_signal(recovery_path)
    if plan.auto_changed and plan.after_text is not None:
        write_auto_conf(facts, plan.after_text, uid, gid)
    if plan.standby_signal and not facts.standby_signal:
        create_signal(standby_path, uid, gid)


# ------------------------------------------------------------------------------------------------ the reload

def db_errors() -> tuple[type[Exception], ...]:
    """What a query may raise: our own errors, and psycopg's when it is installed."""
    return (PgreplError,) if psycopg is None else (PgreplError, psycopg.Error)


def connection_params(params: dict[str, Any], facts: DirFacts) -> dict[str, Any]:
    """The connection options; without login_host and login_unix_socket, the socket and port of postmaster.pid."""
    conn_params = dict(params)
    if not params.get("login_host") and not params.get("login_unix_socket") and facts.socket_dir:
        conn_params["login_unix_socket"] = facts.socket_dir
        if facts.port:
            conn_params["login_port"] = facts.port
    return conn_params


def open_server(conn_params: dict[str, Any], facts: DirFacts) -> Any:
    """A connection to the server of this data directory (refusing one that serves another directory)."""
    conn = connect(conn_params)
    try:
        row = query_one(conn, "SELECT current_setting('data_directory')")
    except db_errors() as exc:
        conn.close()
        raise PgreplError(f"login_user: cannot read data_directory on {describe_target(conn_params)} to check it "
                          f"is the server of data_dir (a superuser or pg_read_all_settings is needed): "
                          f"{str(exc).strip()}") from None
    served = str(row[0]) if row else ""
    if os.path.realpath(served) != os.path.realpath(facts.data_dir):
        conn.close()
        raise PgreplError(f"the connection options reach {describe_target(conn_params)}, whose data_directory is "
                          f"{served!r}, not data_dir {facts.data_dir!r}: point login_host/login_unix_socket and "
                          "login_port at this data directory's server, or set reload: false")
    return conn


def reload_server(conn: Any, conn_params: dict[str, Any], plan: Plan, warnings: list[str]) -> None:
    """pg_reload_conf(), then wait (bounded) until new sessions see the new primary_conninfo / primary_slot_name."""
    try:
        query_one(conn, "SELECT pg_reload_conf()")
    except db_errors() as exc:
        raise PgreplError(f"postgresql.auto.conf was written but the reload failed on "
                          f"{describe_target(conn_params)}: {str(exc).strip()}") from None
    if "primary_conninfo" in plan.settings_changed:
        name, expected = "primary_conninfo", plan.conninfo or ""
    elif "primary_slot_name" in plan.settings_changed:
        name, expected = "primary_slot_name", plan.slot or ""
    else:
        return
    deadline = time.monotonic() + RELOAD_WAIT_SECONDS
    while time.monotonic() < deadline:
        try:
            with connect(conn_params) as probe:
                row = query_one(probe, "SELECT current_setting(%s)", (name,))
        except db_errors():  # a probe that fails only ends the wait
            return
        if row and row[0] == expected:
            return
        time.sleep(0.1)
    warnings.append(f"the server was reloaded but still showed the previous {name} after "
                    f"{RELOAD_WAIT_SECONDS:.0f}s: check its log")


# ------------------------------------------------------------------------------------------------ the module

def passfile_warnings(request: StandbyRequest) -> list[str]:
    """Why libpq would not read the passfile (only a warning: it may be written after this module runs)."""
    if request.passfile is None:
        return []
    try:
        problem = passfile_problem(request.passfile, stat_passfile(request.passfile))
    except PgreplError:  # cannot be looked at from here: the WAL receiver tells
        return []
    return [f"{problem}: the WAL receiver cannot authenticate with a password until it can read it"] if problem else []


def hide_secret_options(module: Any) -> None:
    """A password given in conninfo_options is refused, and must not come back in the result either (Ansible
    echoes the options in ``invocation``): its value joins the values Ansible masks."""
    options = module.params.get("conninfo_options")
    if isinstance(options, dict):
        for key, value in options.items():
            if isinstance(key, str) and key.lower() in SECRET_KEYWORDS and value not in (None, ""):
                module.no_log_values.add(str(value))


STANDBY_CONFIG_SPEC = ModuleSpec(
    {
        "data_dir": {"type": "path", "required": True},
        "state": {"type": "str", "default": "standby", "choices": ["standby", "primary"]},
        "primary_host": {"type": "str"},
        "primary_port": {"type": "int", "default": 5432},
        "replication_user": {"type": "str"},
        "passfile": {"type": "path"},
        "application_name": {"type": "str"},
        "sslmode": {"type": "str", "default": "prefer", "choices": SSL_MODES},
        "sslrootcert": {"type": "path"},
        "conninfo_options": {"type": "dict"},
        "primary_slot_name": {"type": "str"},
        "remove_settings": {"type": "list", "elements": "str", "default": ["synchronous_standby_names"]},
        "min_settings": {"type": "dict"},
        "apply_delay": {"type": "raw"},
        "owner": {"type": "str"},
        "reload": {"type": "bool", "default": True},
    },
    required_if=[("state", "standby", ["primary_host"])],
)


def run_standby_config(module: Any) -> dict[str, Any]:
    """The module body: check, read the data directory, plan, (check mode stops here) write, reload."""
    params = module.params
    hide_secret_options(module)
    request = build_standby_request(params)
    facts = read_dir_facts(request.data_dir)
    uid, gid = resolve_owner(request.owner, facts)
    plan = plan_standby(facts, request)
    warnings = list(plan.warnings) + passfile_warnings(request)

    signals_changed = (plan.standby_signal, plan.recovery_signal) != (facts.standby_signal, facts.recovery_signal)
    changed = plan.auto_changed or signals_changed
    reload_required = facts.running and bool(plan.settings_changed)
    restart_required = restart_needed(facts, plan)

    conn = None
    conn_params = connection_params(params, facts)
    if reload_required and request.reload:
        # Before anything is written, so that wrong connection options change nothing.
        conn = open_server(conn_params, facts)
    reloaded = False
    try:
        if changed and not module.check_mode:
            apply_plan(facts, plan, uid, gid)
        if conn is not None and not module.check_mode:
            reload_server(conn, conn_params, plan, warnings)
            reloaded = True
    finally:
        if conn is not None:
            conn.close()

    result: dict[str, Any] = {
        "changed": changed,
        "data_dir": facts.data_dir,
        "state": request.state,
        "server_running": facts.running,
        "settings_changed": plan.settings_changed,
        "standby_signal": plan.standby_signal,
        "primary_conninfo": None if plan.conninfo is None else mask(plan.conninfo),
        "primary_slot_name": plan.slot,
        "reload_required": reload_required,
        "reloaded": reloaded,
        "restart_required": restart_required,
    }
    for warning in warnings:
        module.warn(warning)
    if module._diff:
        result["diff"] = [
            {"before_header": facts.auto_path, "after_header": facts.auto_path,
             "before": masked_text(plan.before_text), "after": masked_text(plan.after_text)},
            {"before_header": f"{facts.data_dir} (signal files)", "after_header": f"{facts.data_dir} (signal files)",
             "before": signal_text(facts.standby_signal, facts.recovery_signal),
             "after": signal_text(plan.standby_signal, plan.recovery_signal)},
        ]
    return result
