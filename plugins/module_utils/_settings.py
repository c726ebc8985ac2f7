# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Server settings through ALTER SYSTEM: parse and compare values the way PostgreSQL does, then write them.

The pure half (names, value rendering, unit parsing, comparison, the per-setting decision) needs no server
and is unit-tested; the other half reads pg_settings and pg_file_settings, validates every value before
anything is written, and writes postgresql.auto.conf with ALTER SYSTEM.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from ansible_collections.pgrepl.streaming.plugins.module_utils._changes import ChangeTracker
from ansible_collections.pgrepl.streaming.plugins.module_utils._connection import (
    connect,
    identifier,
    psycopg,
    query_all,
    query_one,
    server_words,
    sql,
)
from ansible_collections.pgrepl.streaming.plugins.module_utils._conninfo import secret_values
from ansible_collections.pgrepl.streaming.plugins.module_utils._errors import PgreplError
from ansible_collections.pgrepl.streaming.plugins.module_utils._module import ModuleSpec
from ansible_collections.pgrepl.streaming.plugins.module_utils._names import ascii_lower
from ansible_collections.pgrepl.streaming.plugins.module_utils._server import ServerFacts, supported_server_facts

NAME_PATTERN = r"^[a-z_][a-z0-9_.]*$"
# ASCII: under IGNORECASE alone, [a-z] would also match the Kelvin sign and the Turkish dotted and dotless i.
NAME_RE = re.compile(NAME_PATTERN, re.IGNORECASE | re.ASCII)
MAX_NAME_LENGTH = 200

# Core settings whose list elements the server quotes as identifiers (GUC_LIST_QUOTE): a string value is
# split on commas here, otherwise ALTER SYSTEM would store 'a,b' as the single element "a,b".
LIST_QUOTE_SETTINGS = frozenset({
    "search_path", "temp_tablespaces", "shared_preload_libraries", "session_preload_libraries",
    "local_preload_libraries", "unix_socket_directories", "oauth_validator_libraries",
})
# Core settings that take a comma-separated list (GUC_LIST_INPUT); only these (and extension settings,
# whose flags the server does not show) accept a YAML list as their value.
LIST_INPUT_SETTINGS = LIST_QUOTE_SETTINGS | frozenset({
    "listen_addresses", "synchronous_standby_names", "datestyle", "log_destination",
    "restrict_nonsystem_relation_kind", "wal_consistency_checking", "debug_io_direct",
})
# List settings made of key words the server reads in any case (it prints DateStyle as 'ISO, MDY').
KEYWORD_LIST_SETTINGS = frozenset({
    "datestyle", "log_destination", "restrict_nonsystem_relation_kind", "wal_consistency_checking",
    "debug_io_direct",
})
# Settings this module refuses before asking the server, and why.
REFUSED_SETTINGS = {
    "data_directory": "the server never takes it from ALTER SYSTEM (it is given at start, e.g. pg_ctl -D)",
    "config_file": "the server never takes it from ALTER SYSTEM (it is given at start, e.g. -c config_file)",
    "hba_file": "this module does not move the server's configuration files "
                "(set it in postgresql.conf or on the server's command line)",
    "ident_file": "this module does not move the server's configuration files "
                  "(set it in postgresql.conf or on the server's command line)",
    "transaction_isolation": "it is a per-transaction setting that ALTER SYSTEM refuses "
                             "(use default_transaction_isolation)",
    "transaction_read_only": "it is a per-transaction setting that ALTER SYSTEM refuses "
                             "(use default_transaction_read_only)",
    "transaction_deferrable": "it is a per-transaction setting that ALTER SYSTEM refuses "
                              "(use default_transaction_deferrable)",
}
# Settings holding a libpq connection string, whose password must never reach output or logs.
CONNINFO_SETTINGS = frozenset({"primary_conninfo"})
# Contexts in which set_config() can try a value in a rolled-back transaction (the server's own check).
SESSION_CONTEXTS = frozenset({"user", "superuser"})
# pg_settings sources whose value our session sees but the server-wide configuration does not give.
NOT_SERVER_WIDE_SOURCES = frozenset({"configuration file", "database", "user", "database user", "client",
                                     "session"})

MEMORY_UNITS: tuple[tuple[str, int], ...] = (
    ("TB", 1024 ** 4), ("GB", 1024 ** 3), ("MB", 1024 ** 2), ("kB", 1024), ("B", 1))
TIME_UNITS: tuple[tuple[str, int], ...] = (
    ("d", 86_400_000_000), ("h", 3_600_000_000), ("min", 60_000_000), ("s", 1_000_000), ("ms", 1_000), ("us", 1))
MEMORY_HINT = 'Valid units for this parameter are "B", "kB", "MB", "GB", and "TB".'
TIME_HINT = 'Valid units for this parameter are "us", "ms", "s", "min", "h", and "d".'
INT_MIN, INT_MAX = -(2 ** 31), 2 ** 31 - 1
LONG_MAX = 2 ** 63 - 1

_INT_RE = re.compile(r"\s*([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)")
_FLOAT_RE = re.compile(r"\s*[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|inf(?:inity)?|nan)",
                       re.IGNORECASE)


class InvalidValue(Exception):
    """A value the server would refuse; the message says why, without the setting's name."""


# --------------------------------------------------------------------------------------------- names, values

@dataclass(frozen=True)
class Request:
    """One entry of the settings option, checked and rendered before any connection is made."""

    key: str  # as the user wrote it (results are keyed by it)
    name: str  # lower case, for lookups
    value: Any  # as given, for messages
    elements: tuple[str, ...] | None  # what ALTER SYSTEM receives as literals; None means RESET

    @property
    def reset(self) -> bool:
        return self.elements is None

    @property
    def display(self) -> str | None:
        """The requested value as one string (lists joined with ', '), None for a reset."""
        return None if self.elements is None else ", ".join(self.elements)


def validate_name(key: Any) -> str:
    """The lower-case setting name, or PgreplError naming the bad key."""
    if not isinstance(key, str) or not NAME_RE.fullmatch(key) or len(key) > MAX_NAME_LENGTH:
        raise PgreplError(f"settings: {key!r} is not a valid setting name ({NAME_PATTERN}, case-insensitive, "
                          f"at most {MAX_NAME_LENGTH} characters)")
    return ascii_lower(key)


def _scalar_text(key: str, value: Any, in_list: bool = False) -> str:
    """One value as the text PostgreSQL receives (booleans as on/off)."""
    where = f"settings.{key}" + (" (list element)" if in_list else "")
    if isinstance(value, bool):
        if in_list:
            raise PgreplError(f"{where}: {value!r} is a boolean, which is not a list element")
        return "on" if value else "off"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise PgreplError(f"{where}: {value!r} is not a finite number")
        return repr(value)
    if isinstance(value, str):
        if "\x00" in value:
            raise PgreplError(f"{where}: the value contains a NUL character")
        return value
    raise PgreplError(f"{where}: {value!r} is a {type(value).__name__}; a setting's value must be a string, "
                      "a number, a boolean or null (null removes the setting from postgresql.auto.conf)")


def render_elements(key: str, name: str, value: Any) -> tuple[str, ...] | None:
    """What ALTER SYSTEM SET gets for this value (several literals for a list setting), None for null."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        if name not in LIST_INPUT_SETTINGS and "." not in name:
            raise PgreplError(f"settings.{key}: {list(value)!r} is a list, but {key} is not a list setting "
                              "(give one value)")
        elements = tuple(_scalar_text(key, item, in_list=True) for item in value)
    else:
        text = _scalar_text(key, value)
        elements = split_list(text) if name in LIST_QUOTE_SETTINGS else (text,)
    if name in LIST_QUOTE_SETTINGS and (not elements or any(item == "" for item in elements)):
        raise PgreplError(f"settings.{key}: {value!r} has an empty list element, which the server would store "
                          'as the name "" (use null to remove the setting from postgresql.auto.conf)')
    if not elements:
        raise PgreplError(f"settings.{key}: an empty list is not a value (use null to remove the setting)")
    return elements


def parse_requests(settings: Any) -> list[Request]:
    """Check every name and value of the settings option; PgreplError lists every problem at once."""
    if not isinstance(settings, dict):
        raise PgreplError(f"settings: {settings!r} is not a dictionary of setting names to values")
    requests: list[Request] = []
    errors: list[str] = []
    seen: dict[str, str] = {}
    for key, value in settings.items():
        try:
            name = validate_name(key)
            if name in seen:
                raise PgreplError(f"settings: {seen[name]!r} and {key!r} name the same setting")
            seen[name] = key
            if name in REFUSED_SETTINGS:
                raise PgreplError(f"settings.{key}: cannot be set with this module: {REFUSED_SETTINGS[name]}")
            request = Request(key=key, name=name, value=value, elements=render_elements(key, name, value))
            if name in CONNINFO_SETTINGS and secret_values(request.display):
                raise PgreplError(
                    f"settings.{key}: the connection string contains a password, which the server would write to "
                    "postgresql.auto.conf and print in its log when it reloads (parameter ... changed to ...): "
                    "give passfile=... (a password file readable by the server's OS user) instead")
            requests.append(request)
        except PgreplError as exc:
            errors.append(str(exc))
    if errors:
        raise PgreplError("; ".join(errors))
    return requests


def split_list(text: str) -> tuple[str, ...]:
    """Elements of a list setting as the server splits them: by commas, "double quoted" elements kept whole."""
    items: list[str] = []
    i, n = 0, len(text)
    while True:
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            break
        if text[i] == '"':
            i += 1
            buf: list[str] = []
            while i < n:
                if text[i] == '"':
                    if i + 1 < n and text[i + 1] == '"':
                        buf.append('"')
                        i += 2
                        continue
                    i += 1
                    break
                buf.append(text[i])
                i += 1
            start = i
            while i < n and text[i] != ",":
                i += 1
            items.append("".join(buf) + text[start:i].strip())
        else:
            start = i
            while i < n and text[i] != ",":
                i += 1
            items.append(text[start:i].strip())
        if i < n:  # at a comma
            i += 1
    return tuple(items)


def quote_element(element: str) -> str:
    """An element of a quoted list setting as the server would read it back ("..." with "" inside)."""
    return '"' + element.replace('"', '""') + '"'


def flatten(name: str, elements: tuple[str, ...]) -> str:
    """The single string the server builds from the literals of ALTER SYSTEM SET name = a, b."""
    if name in LIST_QUOTE_SETTINGS:
        return ", ".join(quote_element(item) for item in elements)
    return ", ".join(elements)


# ------------------------------------------------------------------------------------------ units and numbers

def unit_table(unit: str | None) -> tuple[tuple[tuple[str, int], ...], int, str] | None:
    """For a pg_settings unit ('kB', '8kB', 'MB', 'B', 'ms', 's', 'min'): (unit table, base size, hint)."""
    if not unit:
        return None
    match = re.fullmatch(r"([0-9]*)\s*([A-Za-z]+)", unit.strip())
    if not match:
        return None
    count = int(match.group(1) or "1")
    for table, hint in ((MEMORY_UNITS, MEMORY_HINT), (TIME_UNITS, TIME_HINT)):
        for label, size in table:
            if label == match.group(2):
                return table, count * size, hint
    return None


def _leading_float(text: str) -> tuple[float, int] | None:
    match = _FLOAT_RE.match(text)
    if not match or not match.group(0).strip():
        return None
    return float(match.group(0)), match.end()


def _leading_number(text: str, integer: bool) -> tuple[float, int]:
    """The number at the start of text (strtol base 0 then strtod for integers, strtod for reals)."""
    if integer:
        match = _INT_RE.match(text)
        if match:
            digits = match.group(2)
            if digits[:2].lower() == "0x":
                number = int(digits[2:], 16)
            elif digits.startswith("0") and len(digits) > 1:
                number = int(digits, 8)
            else:
                number = int(digits)
            number = -number if match.group(1) == "-" else number
            end = match.end()
            if not (end < len(text) and text[end] in ".eE") and abs(number) <= LONG_MAX:
                return float(number), end
        elif not text.startswith("."):
            raise InvalidValue("it is not a number")
    found = _leading_float(text)
    if found is None:
        raise InvalidValue("it is not a number")
    if math.isnan(found[0]):
        raise InvalidValue("it is not a number")
    return found


def _to_base_unit(number: float, label: str, table: tuple[tuple[str, int], ...], base: int) -> float | None:
    """number label -> base units, rounded to the next smaller unit as the server does (None: no such unit)."""
    for index, (name, size) in enumerate(table):
        if name == label:
            value = number * (size / base)
            if index + 1 < len(table) and math.isfinite(value):
                step = table[index + 1][1] / base
                value = round(value / step) * step
            return value
    return None


def parse_number(text: str, unit: str | None, integer: bool) -> float:
    """A numeric setting value in the setting's base unit, following the server's parse_int/parse_real."""
    number, end = _leading_number(text, integer)
    rest = text[end:].strip()
    if rest:
        table = unit_table(unit)
        if table is None:
            raise InvalidValue("this setting takes a plain number, without a unit")
        units, base, hint = table
        converted = _to_base_unit(number, rest, units, base) if re.fullmatch(r"\S{1,3}", rest) else None
        if converted is None:
            raise InvalidValue(f"{rest!r} is not a unit of this setting. {hint}")
        number = converted
    if integer:
        if not math.isfinite(number) or not INT_MIN <= round(number) <= INT_MAX:
            raise InvalidValue("Value exceeds integer range.")
        return float(round(number))
    return number


def parse_bool(text: str) -> bool:
    """on/off, true/false, yes/no, 1/0 and their unique prefixes, any case (the server's parse_bool)."""
    lowered = ascii_lower(text)
    if not lowered:
        raise InvalidValue("it is not a boolean (on/off, true/false, yes/no, 1/0)")
    if lowered[0] in "tfyn":
        for word, result in (("true", True), ("false", False), ("yes", True), ("no", False)):
            if word.startswith(lowered):
                return result
    elif lowered[0] == "o" and len(lowered) >= 2:
        if "on".startswith(lowered):
            return True
        if "off".startswith(lowered):
            return False
    elif lowered in ("1", "0"):
        return lowered == "1"
    raise InvalidValue("it is not a boolean (on/off, true/false, yes/no, 1/0)")


def format_real(number: float) -> str:
    """A real as the server prints it in pg_settings (printf %g: six significant digits)."""
    return f"{number:g}"


def format_number(number: float, unit: str | None) -> str:
    """A numeric value in base units the way SHOW prints it: the largest unit that divides it exactly."""
    table = unit_table(unit)
    integral = float(number).is_integer() and abs(number) < 2 ** 53
    plain = str(int(number)) if integral else format_real(number)
    if table is None or number <= 0:
        return plain
    units, base, _hint = table
    if integral:
        total = int(number) * base
        for label, size in units:
            if size <= base or total % size == 0:
                return f"{total // size}{label}"
    for label, size in units:
        scaled = number * base / size
        if abs(round(scaled) / scaled - 1.0) <= 1e-8 or label == units[-1][0]:
            return f"{format_real(scaled)}{label}"
    return plain


# ------------------------------------------------------------------------------------------------ comparison

@dataclass(frozen=True)
class SettingInfo:
    """One row of pg_settings."""

    name: str
    setting: str | None
    unit: str | None
    vartype: str
    context: str
    source: str | None = None
    enumvals: tuple[str, ...] = ()
    min_val: str | None = None
    max_val: str | None = None
    boot_val: str | None = None

    @property
    def key(self) -> str:
        return ascii_lower(self.name)

    @property
    def shown(self) -> str | None:
        """The running value as SHOW prints it (with its unit)."""
        if self.setting is None:
            return None
        if self.vartype in ("integer", "real"):
            try:
                return format_number(float(self.setting), self.unit)
            except ValueError:
                return self.setting
        return self.setting


def _enum_value(info: SettingInfo, text: str) -> str:
    """The enum value in lower case (the server compares case-insensitively); on/off also as a boolean word."""
    allowed = [ascii_lower(value) for value in info.enumvals]
    if ascii_lower(text) in allowed:
        return ascii_lower(text)
    if "on" in allowed and "off" in allowed:
        try:
            return "on" if parse_bool(text) else "off"
        except InvalidValue:
            pass
    raise InvalidValue("valid values are: " + ", ".join(repr(value) for value in info.enumvals))


def canonical(info: SettingInfo, text: str, as_list: bool = False) -> Any:
    """A value of this setting in a form that compares equal exactly when the server sees the same value."""
    if info.vartype == "bool":
        return parse_bool(text)
    if info.vartype == "integer":
        return int(parse_number(text, info.unit, integer=True))
    if info.vartype == "real":
        return format_real(parse_number(text, info.unit, integer=False))
    if info.vartype == "enum":
        return _enum_value(info, text)
    if info.key in KEYWORD_LIST_SETTINGS:
        return tuple(ascii_lower(item) for item in split_list(text))
    if as_list or info.key in LIST_INPUT_SETTINGS:
        return split_list(text)
    return text


def canonical_or_raw(info: SettingInfo, text: str | None, as_list: bool = False) -> Any:
    """Like canonical() but a value the server would not accept (or none) stays distinct from every valid one."""
    if text is None:
        return ("<none>",)
    try:
        return canonical(info, text, as_list)
    except InvalidValue:
        return ("<invalid>", text)


def compares_as_list(info: SettingInfo, request: Request) -> bool:
    """A string setting compares element by element when it is a list setting or was given a YAML list."""
    return info.vartype == "string" and (info.key in LIST_INPUT_SETTINGS or isinstance(request.value, (list, tuple)))


def canonical_request(info: SettingInfo, request: Request) -> Any:
    """Canonical form of a requested value: the elements as sent when the server quotes them one by one."""
    elements = request.elements
    if elements is None:
        return ("<none>",)
    as_list = compares_as_list(info, request)
    if as_list and (info.key in LIST_QUOTE_SETTINGS or info.key not in LIST_INPUT_SETTINGS):
        return tuple(elements)
    return canonical_or_raw(info, ", ".join(elements), as_list)


def check_value(info: SettingInfo, request: Request) -> None:
    """Refuse a value the server would refuse (type, unit, range, enum), naming the setting and the value."""
    key, elements = request.key, request.elements
    if elements is None or info.vartype == "string":
        return
    if len(elements) != 1:
        raise PgreplError(f"settings.{key}: {request.value!r} is a list, but {info.name} takes one {info.vartype} "
                          "value")
    kind = f"{info.vartype}{', unit ' + info.unit if info.unit else ''}"
    try:
        if info.vartype == "bool":
            parse_bool(elements[0])
            return
        if info.vartype == "enum":
            _enum_value(info, elements[0])
            return
        number = parse_number(elements[0], info.unit, integer=info.vartype == "integer")
    except InvalidValue as exc:
        raise PgreplError(f"settings.{key}: {request.value!r} is not a valid value for {info.name} ({kind}): "
                          f"{exc}") from None
    low = float(info.min_val) if info.min_val not in (None, "") else -math.inf
    high = float(info.max_val) if info.max_val not in (None, "") else math.inf
    if not low <= number <= high:
        unit = info.unit or ""
        shown = format_real(number) if info.vartype == "real" else str(int(number))
        raise PgreplError(f"settings.{key}: {request.value!r} ({shown}{unit}) is outside the valid range for "
                          f"{info.name} ({info.min_val}{unit} .. {info.max_val}{unit})")


# -------------------------------------------------------------------------------------------------- decision

@dataclass(frozen=True)
class FileValues:
    """What the configuration files say about one setting (pg_file_settings)."""

    auto: str | None = None  # last entry in postgresql.auto.conf
    other: str | None = None  # last entry in postgresql.conf or its includes

    @property
    def winning(self) -> str | None:
        """postgresql.auto.conf is read last, so its entry wins."""
        return self.auto if self.auto is not None else self.other


@dataclass(frozen=True)
class Decision:
    """What this module does with one setting, and what it reports."""

    changed: bool
    restart_required: bool
    before: str | None  # the value the configuration gives now (diff)
    after: str | None  # the value it will give (diff); None once removed from postgresql.auto.conf
    pending: str | None  # a configured value the server does not run yet


def matches_running(info: SettingInfo, value: Any, as_list: bool = False) -> bool:
    """Whether the server runs this (canonical) value; the compiled-in default counts for a default source
    (wal_buffers = -1 runs as a computed size)."""
    if value == canonical_or_raw(info, info.setting, as_list):
        return True
    return info.source in ("default", "override") and value == canonical_or_raw(info, info.boot_val, as_list)


def baseline_text(info: SettingInfo, files: FileValues) -> str | None:
    """The value the server-wide configuration gives: a file entry, else what runs (else the default when what
    runs came from a file entry that is gone, or only from this session's role or database)."""
    if files.winning is not None:
        return files.winning
    if info.source in NOT_SERVER_WIDE_SOURCES:
        return info.boot_val
    return info.setting


def _display(info: SettingInfo, text: str | None, from_file: bool) -> str | None:
    """A file entry as written, a pg_settings number with its unit as SHOW prints it."""
    if text is None or from_file or info.vartype not in ("integer", "real"):
        return text
    try:
        return format_number(float(text), info.unit)
    except ValueError:
        return text


def decide(info: SettingInfo, request: Request, files: FileValues) -> Decision:
    """changed / restart_required for one setting from pg_settings and pg_file_settings (no server needed).

    changed: the value differs from what the configuration gives now (the postgresql.auto.conf entry, else
    postgresql.conf, else what runs), so a value already written and waiting for a restart is not written again.
    restart_required: a postmaster setting whose configured value (after this run) is not the running one.
    """
    as_list = compares_as_list(info, request)
    winning = files.winning
    pending = None
    if winning is not None and not matches_running(info, canonical_or_raw(info, winning, as_list), as_list):
        pending = winning
    before = _display(info, baseline_text(info, files), winning is not None)
    postmaster = info.context == "postmaster"
    if request.elements is None:
        changed = files.auto is not None
        remaining = FileValues(other=files.other)
        after_value = canonical_or_raw(info, baseline_text(info, remaining), as_list)
        restart = postmaster and not matches_running(info, after_value, as_list)
        if changed:
            return Decision(True, restart, files.auto, None, pending)
        return Decision(False, restart, before, before, pending)
    target = canonical_request(info, request)
    changed = canonical_or_raw(info, baseline_text(info, files), as_list) != target
    restart = postmaster and not matches_running(info, target, as_list)
    return Decision(changed, restart, before, request.display if changed else before, pending)


# ------------------------------------------------------------------------------------------- server side

def server_message(exc: Exception) -> str:
    """The server's error text on one line (message, detail, hint)."""
    return " ".join(line.strip() for line in server_words(exc).splitlines() if line.strip())


def fetch_infos(conn: Any, names: list[str]) -> dict[str, SettingInfo]:
    rows = query_all(
        conn,
        "SELECT name, setting, unit, vartype, context, source, enumvals, min_val, max_val, boot_val"
        # COLLATE "C": lower() folds A-Z only, as the server matches setting names; under the database's own
        # collation it follows LC_CTYPE (tr_TR: lower('IntervalStyle') starts with a dotless i).
        " FROM pg_catalog.pg_settings WHERE lower(name COLLATE \"C\") = ANY(%s)",
        (names,),
    )
    infos: dict[str, SettingInfo] = {}
    for row in rows:
        info = SettingInfo(name=row["name"], setting=row["setting"], unit=row["unit"], vartype=row["vartype"],
                           context=row["context"], source=row["source"], enumvals=tuple(row["enumvals"] or ()),
                           min_val=row["min_val"], max_val=row["max_val"], boot_val=row["boot_val"])
        infos[info.key] = info
    return infos


def fetch_file_values(conn: Any, names: list[str]) -> dict[str, FileValues]:
    rows = query_all(
        conn,
        "SELECT name, setting, sourcefile FROM pg_catalog.pg_file_settings"
        " WHERE lower(name COLLATE \"C\") = ANY(%s) ORDER BY seqno",
        (names,),
    )
    found: dict[str, dict[str, str | None]] = {}
    for row in rows:
        slot = "auto" if str(row["sourcefile"] or "").endswith("/postgresql.auto.conf") else "other"
        found.setdefault(ascii_lower(str(row["name"])), {})[slot] = row["setting"]
    return {name: FileValues(auto=values.get("auto"), other=values.get("other")) for name, values in found.items()}


def _role_may(conn: Any, query: str, args: Any = None) -> bool:
    row = query_one(conn, query, args)
    return bool(row and row[0])


def check_can_read_files(conn: Any, facts: ServerFacts, keys: list[str]) -> None:
    """pg_file_settings tells what waits in the files; a non-superuser needs it granted (PostgreSQL 15+)."""
    if facts.is_superuser:
        return
    what = ", ".join(f"settings.{key}" for key in keys) or "settings"
    if facts.major < 15:
        raise PgreplError(f"login_user: the role {facts.current_user!r} is not a superuser, and ALTER SYSTEM "
                          f"needs one before PostgreSQL 15 ({what}; connect as postgres or another superuser)")
    if not _role_may(conn, "SELECT has_table_privilege('pg_catalog.pg_file_settings', 'SELECT')"
                           " AND has_function_privilege('pg_catalog.pg_show_all_file_settings()', 'EXECUTE')"):
        raise PgreplError(
            f"login_user: the role {facts.current_user!r} is not a superuser and may not read pg_file_settings, "
            f"which is needed to manage {what} (connect as a superuser, or GRANT SELECT ON pg_file_settings and "
            "EXECUTE ON FUNCTION pg_show_all_file_settings() plus ALTER SYSTEM ON PARAMETER to it)")


def check_can_write(conn: Any, facts: ServerFacts, infos: dict[str, SettingInfo], keys: dict[str, str],
                    reload: bool) -> None:
    """Every setting to change needs ALTER SYSTEM on it (superuser or PostgreSQL 15+ GRANT)."""
    if facts.is_superuser or not keys:
        return
    missing = [f"settings.{key}" for name, key in keys.items()
               if not _role_may(conn, "SELECT has_parameter_privilege(%s, 'ALTER SYSTEM')", (infos[name].name,))]
    if missing:
        raise PgreplError(f"login_user: the role {facts.current_user!r} is not a superuser and may not ALTER "
                          f"SYSTEM {', '.join(missing)} (GRANT ALTER SYSTEM ON PARAMETER ... TO it, or connect "
                          "as a superuser)")
    if reload and not _role_may(conn, "SELECT has_function_privilege('pg_catalog.pg_reload_conf()', 'EXECUTE')"):
        raise PgreplError(f"login_user: the role {facts.current_user!r} may not run pg_reload_conf() "
                          "(GRANT EXECUTE ON FUNCTION pg_reload_conf() TO it, or set reload: false)")


def validated_by_server(info: SettingInfo, facts: ServerFacts) -> bool:
    """Whether set_config() can try this setting in a rolled-back transaction (user/superuser context)."""
    if info.context not in SESSION_CONTEXTS:
        return False
    return facts.is_superuser or info.context == "user"


def server_check(conn: Any, info: SettingInfo, request: Request) -> None:
    """Let the server's own checks judge the value: set_config() inside a transaction that is rolled back."""
    if request.elements is None:
        return
    try:
        with conn.transaction(force_rollback=True):
            query_one(conn, "SELECT pg_catalog.set_config(%s, %s, true)",
                      (info.name, flatten(info.key, request.elements)))
    except psycopg.Error as exc:
        raise PgreplError(f"settings.{request.key}: {request.value!r} was refused by the server: "
                          f"{server_message(exc)}") from None


def alter_statement(name: str, elements: tuple[str, ...] | None) -> Any:
    """ALTER SYSTEM SET name = 'a', 'b' or ALTER SYSTEM RESET name (utility statements take no parameters,
    so values are quoted by psycopg's sql.Literal and the name by sql.Identifier)."""
    if elements is None:
        return sql.SQL("ALTER SYSTEM RESET {}").format(identifier(name))
    return sql.SQL("ALTER SYSTEM SET {} = {}").format(
        identifier(name), sql.SQL(", ").join(sql.Literal(item) for item in elements))


def restore_elements(info: SettingInfo, previous: str | None) -> tuple[str, ...] | None:
    """Literals that write back what postgresql.auto.conf held before (None: it held nothing)."""
    if previous is None:
        return None
    if info.vartype == "string" and info.key in LIST_QUOTE_SETTINGS:
        return split_list(previous) or (previous,)
    return (previous,)


@dataclass
class Planned:
    request: Request
    info: SettingInfo
    files: FileValues
    decision: Decision
    checked_by_server: bool


def write_all(conn: Any, planned: list[Planned], facts: ServerFacts) -> None:
    """ALTER SYSTEM for each change; values only the server can judge go first, and if one is refused the
    ones already written are put back, so postgresql.auto.conf never keeps half of the settings."""
    order = sorted((item for item in planned if item.decision.changed),
                   key=lambda item: (item.checked_by_server or item.info.vartype != "string"))
    secret = any(secret_values(text) for item in order if item.info.key in CONNINFO_SETTINGS
                 for text in (item.request.display, item.files.auto))
    if secret and facts.is_superuser:
        # A statement that may carry a password already in postgresql.auto.conf (putting it back after a
        # refusal) stays out of the server log of this session.
        conn.execute("SET log_statement = 'none'")
        conn.execute("SET log_min_duration_statement = -1")
        conn.execute("SET log_min_error_statement = panic")
    written: list[Planned] = []
    for item in order:
        try:
            conn.execute(alter_statement(item.info.name, item.request.elements))
        except psycopg.Error as exc:
            undo_errors = []
            for done in reversed(written):
                try:
                    conn.execute(alter_statement(done.info.name, restore_elements(done.info, done.files.auto)))
                except psycopg.Error as undo_exc:
                    undo_errors.append(f"settings.{done.request.key}: {server_message(undo_exc)}")
            if isinstance(exc, psycopg.errors.InsufficientPrivilege):
                message = (f"login_user: the role {facts.current_user!r} may not ALTER SYSTEM "
                           f"settings.{item.request.key}: {server_message(exc)}")
            else:
                message = (f"settings.{item.request.key}: {item.request.value!r} was refused by the server: "
                           f"{server_message(exc)}")
            if undo_errors:
                message += "; putting back the settings already written failed too: " + "; ".join(undo_errors)
            elif written:
                message += " (the settings written before it were put back; nothing changed)"
            raise PgreplError(message) from None
        written.append(item)


def manage_settings(conn: Any, requests: list[Request], reload: bool, check_mode: bool) -> dict[str, Any]:
    """Decide every setting, refuse anything wrong before writing, then write and reload (not in check mode)."""
    warnings: list[str] = []
    facts = supported_server_facts(conn, warnings)
    keys = [request.key for request in requests]
    check_can_read_files(conn, facts, keys)
    names = [request.name for request in requests]
    infos = fetch_infos(conn, names)

    errors: list[str] = []
    for request in requests:
        info = infos.get(request.name)
        if info is None:
            hint = (" (an extension's setting is known only once its library is loaded, e.g. through "
                    "shared_preload_libraries and a restart)" if "." in request.name else "")
            errors.append(f"settings.{request.key}: the server has no setting named {request.key!r} "
                          f"(not in pg_settings){hint}")
        elif info.context == "internal":
            errors.append(f"settings.{request.key}: {info.name} is a read-only setting (context internal) "
                          "that no configuration can change")
        else:
            try:
                check_value(info, request)
            except PgreplError as exc:
                errors.append(str(exc))
    if errors:
        raise PgreplError("; ".join(errors))
    for request in requests:
        info = infos[request.name]
        if validated_by_server(info, facts):
            try:
                server_check(conn, info, request)
            except PgreplError as exc:
                errors.append(str(exc))
    if errors:
        raise PgreplError("; ".join(errors))

    file_values = fetch_file_values(conn, names)
    tracker = ChangeTracker(check_mode)
    planned: list[Planned] = []
    for request in requests:
        info = infos[request.name]
        files = file_values.get(request.name, FileValues())
        decision = decide(info, request, files)
        tracker.record(request.key, decision.before, decision.after)
        planned.append(Planned(request, info, files, decision, validated_by_server(info, facts)))
        if decision.changed and info.source == "command line":
            warnings.append(f"settings.{request.key}: the server's command line sets {info.name}, which takes "
                            "precedence over postgresql.auto.conf")
    to_write = {item.request.name: item.request.key for item in planned if item.decision.changed}
    check_can_write(conn, facts, infos, to_write, reload)

    changed = bool(to_write)
    reloaded = changed and reload
    if changed and tracker.apply:
        write_all(conn, planned, facts)
        if reload:
            query_one(conn, "SELECT pg_catalog.pg_reload_conf()")

    restart_keys = [item.request.key for item in planned if item.decision.restart_required]
    if restart_keys:
        warnings.append(restart_warning(restart_keys))
    return {
        "changed": changed,
        "restart_required": bool(restart_keys),
        "reloaded": reloaded,
        "settings": {
            item.request.key: {
                "old": item.info.shown,
                "new": item.request.display,
                "pending": item.decision.pending,
                "changed": item.decision.changed,
                "restart_required": item.decision.restart_required,
                "context": item.info.context,
            }
            for item in planned
        },
        "diff": tracker.diff(),
        "warnings": warnings,
        "secrets": [secret for item in planned if item.info.key in CONNINFO_SETTINGS
                    for text in (item.info.setting, item.files.auto, item.files.other, item.request.display)
                    for secret in secret_values(text)],
    }


def restart_warning(keys: list[str]) -> str:
    """The warning for settings that wait for a restart (node_apply leaves it out when a later item restarts)."""
    return f"{', '.join(keys)}: the server runs another value until it is restarted (this module never restarts it)"


SERVER_SETTINGS_SPEC = ModuleSpec({
    "settings": {"type": "dict", "required": True},
    "reload": {"type": "bool", "default": True},
})


def run_server_settings(module: Any) -> dict[str, Any]:
    """Module body: check the input, connect, manage, and hide any password a setting carries."""
    settings = module.params["settings"]
    for key, value in (settings.items() if isinstance(settings, dict) else ()):
        if isinstance(key, str) and ascii_lower(key) in CONNINFO_SETTINGS:
            for text in (value if isinstance(value, list) else [value]):
                for secret in secret_values(text if isinstance(text, str) else None):
                    module.no_log_values.add(secret)
    requests = parse_requests(settings)
    conn = connect(module.params)
    try:
        result = manage_settings(conn, requests, bool(module.params["reload"]), bool(module.check_mode))
    except psycopg.Error as exc:
        raise PgreplError(f"the server refused a query of this module: {server_message(exc)}") from None
    finally:
        conn.close()
    for secret in result.pop("secrets"):
        module.no_log_values.add(secret)
    for warning in result.pop("warnings"):
        module.warn(warning)
    if not module._diff:
        result.pop("diff")
    return result
