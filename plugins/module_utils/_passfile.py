# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""libpq password files (.pgpass): read them as libpq does, edit single entries, write them 0600.

A line is ``host:port:database:user:password``. A backslash takes the next character literally, so ``\\:`` and
``\\\\`` stand for a colon and a backslash; a field that is exactly ``*`` matches anything. After the fourth
field separator the rest of the line is the password (a colon there needs no escape, but is escaped when this
module writes one). Lines starting with ``#`` are comments; libpq skips blank lines and lines with fewer than
five fields, and uses the FIRST line that matches a connection.
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.pgrepl.streaming.plugins.module_utils._errors import PgreplError
from ansible_collections.pgrepl.streaming.plugins.module_utils._files import atomic_write, read_bytes
from ansible_collections.pgrepl.streaming.plugins.module_utils._module import ModuleSpec

MASK = "********"
WILDCARD = "*"
MODE = 0o600  # libpq ignores a password file that group or others may access
KEY_FIELDS = ("host", "port", "database", "user")
DEFAULT_PORT = "5432"
DEFAULT_DATABASE = "*"

# One field of a key: its value and whether it is the wildcard (an unescaped, lone '*').
Field = tuple[str, bool]
Key = tuple[Field, Field, Field, Field]


def escape_field(value: str) -> str:
    """A value as a password-file field (backslash and colon escaped)."""
    return value.replace("\\", "\\\\").replace(":", "\\:")


def _unescape(raw: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(raw):
        if raw[i] == "\\" and i + 1 < len(raw):
            out.append(raw[i + 1])
            i += 2
        else:
            out.append(raw[i])
            i += 1
    return "".join(out)


def split_entry(text: str) -> tuple[list[str], str] | None:
    """(the four raw key fields, the raw password) of a line, None when libpq would skip it."""
    if text == "" or text.startswith("#"):
        return None
    fields: list[str] = []
    start = i = 0
    while i < len(text) and len(fields) < 4:
        char = text[i]
        if char == "\\":
            i += 2
            continue
        if char == ":":
            fields.append(text[start:i])
            start = i + 1
        i += 1
    if len(fields) < 4:
        return None
    return fields, text[start:]


def key_field(raw: str) -> Field:
    return (WILDCARD, True) if raw == WILDCARD else (_unescape(raw), False)


def render_key(key: Key) -> str:
    """host:port:database:user as it is written in the file (for results and messages; no password)."""
    return ":".join(WILDCARD if wildcard else escape_field(value) for value, wildcard in key)


def render_entry(key: Key, password: str) -> str:
    return f"{render_key(key)}:{escape_field(password)}"


@dataclass
class PassLine:
    """One line: its text without the line break, the break, and the entry it holds (if libpq reads one)."""

    text: str
    eol: str
    key: Key | None = None
    password: str | None = None

    @property
    def rendered(self) -> str:
        return self.text + self.eol

    @property
    def masked(self) -> str:
        if self.key is None:
            return self.rendered
        return f"{render_key(self.key)}:{MASK}{self.eol}"


def parse_line(text: str, eol: str = "\n") -> PassLine:
    body = text[:-1] if text.endswith("\r") else text
    parts = split_entry(body)
    if parts is None:
        return PassLine(text, eol)
    raw_fields, raw_password = parts
    key: Key = (key_field(raw_fields[0]), key_field(raw_fields[1]), key_field(raw_fields[2]),
                key_field(raw_fields[3]))
    return PassLine(text, eol, key, _unescape(raw_password))


def parse_text(text: str) -> list[PassLine]:
    lines: list[PassLine] = []
    parts = text.split("\n")
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        if last and part == "":
            break
        lines.append(parse_line(part, "" if last else "\n"))
    return lines


def render_lines(lines: list[PassLine]) -> str:
    return "".join(line.rendered for line in lines)


def mask_text(text: str) -> str:
    """The file with every password replaced by MASK; comments and unreadable lines as they are."""
    return "".join(line.masked for line in parse_text(text))


def covers(line_key: Key, key: Key) -> bool:
    """Whether a line with line_key matches every connection an entry with key matches."""
    for (line_value, line_wild), (value, wild) in zip(line_key, key):
        if line_wild:
            continue
        if wild or line_value != value:
            return False
    return True


# ---------------------------------------------------------------------------------------------- the request

@dataclass(frozen=True)
class Entry:
    index: int
    key: Key
    password: str | None

    @property
    def label(self) -> str:
        return render_key(self.key)


def _field_text(where: str, name: str, value: Any, secret: bool = False) -> str:
    label = f"{where}.{name}"
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        shown = "the value" if secret else repr(value)
        raise PgreplError(f"{label}: {shown} is a {type(value).__name__}, a string is expected")
    text = str(value)
    shown = "the value" if secret else repr(text)
    if "\n" in text or "\r" in text:
        raise PgreplError(f"{label}: {shown} contains a line break, which a password file line cannot hold")
    if "\x00" in text:
        raise PgreplError(f"{label}: {shown} contains a NUL character, which a password file cannot hold")
    if text == "":
        raise PgreplError(f"{label}: is empty" + ("" if secret else f" (use {WILDCARD!r} to match any {name})"))
    return text


def _port_text(where: str, value: Any) -> str:
    if value is None:
        return DEFAULT_PORT
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise PgreplError(f"{where}.port: {value!r} is not a port number (1-65535) or {WILDCARD!r}")
    text = _field_text(where, "port", value)
    if text == WILDCARD:
        return text
    if not text.isdigit() or not text.isascii() or not 1 <= int(text) <= 65535:
        raise PgreplError(f"{where}.port: {text!r} is not a port number (1-65535) or {WILDCARD!r}")
    return str(int(text))


def _required(where: str, name: str, item: dict[str, Any], hint: str) -> Any:
    value = item.get(name)
    if value is None:
        raise PgreplError(f"{where}.{name}: is required ({hint})")
    return value


def build_entries(entries: Any, state: str) -> list[Entry]:
    """The entries option, checked: host and user required, password required for state=present."""
    if entries is None:
        return []
    if not isinstance(entries, list):
        raise PgreplError(f"entries: {type(entries).__name__} given, a list of dicts is expected")
    built: list[Entry] = []
    seen: dict[Key, int] = {}
    for index, item in enumerate(entries):
        where = f"entries[{index}]"
        if not isinstance(item, dict):
            raise PgreplError(f"{where}: {type(item).__name__} given, a dict with host, port, database, user and "
                              "password is expected")
        host = _field_text(where, "host", _required(where, "host", item, f"a host name, an address or {WILDCARD}"))
        port = _port_text(where, item.get("port"))
        database = item.get("database")
        database = DEFAULT_DATABASE if database is None else _field_text(where, "database", database)
        user = _field_text(where, "user", _required(where, "user", item, f"a role name or {WILDCARD}"))
        password: str | None = None
        if state == "present":
            password = _field_text(where, "password",
                                   _required(where, "password", item, "with state=present"), secret=True)
        key: Key = (key_field_value(host), key_field_value(port), key_field_value(database), key_field_value(user))
        if key in seen:
            raise PgreplError(f"{where}: {render_key(key)!r} is the same host:port:database:user as "
                              f"entries[{seen[key]}]")
        seen[key] = index
        built.append(Entry(index, key, password))
    return built


def key_field_value(value: str) -> Field:
    """A requested field: '*' is the wildcard, anything else a literal value."""
    return (WILDCARD, True) if value == WILDCARD else (value, False)


# ---------------------------------------------------------------------------------------------------- the plan

@dataclass
class Plan:
    lines: list[PassLine]
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def plan_edit(lines: list[PassLine], entries: list[Entry], state: str) -> Plan:
    """Edit a copy of the lines; every line not holding a requested entry stays as it is."""
    plan = Plan(list(lines))
    for entry in entries:
        if state == "absent":
            kept = [line for line in plan.lines if line.key != entry.key]
            if len(kept) != len(plan.lines):
                plan.removed.append(entry.label)
                plan.lines = kept
            continue
        password = entry.password or ""
        indexes = [i for i, line in enumerate(plan.lines) if line.key == entry.key]
        if indexes:
            for i in indexes:
                if plan.lines[i].password != password:
                    old = plan.lines[i]
                    text = render_entry(entry.key, password) + ("\r" if old.text.endswith("\r") else "")
                    plan.lines[i] = PassLine(text, old.eol, entry.key, password)
                    if entry.label not in plan.updated:
                        plan.updated.append(entry.label)
        else:
            if plan.lines and plan.lines[-1].eol == "":
                plan.lines[-1].eol = "\n"
            plan.lines.append(PassLine(render_entry(entry.key, password), "\n", entry.key, password))
            plan.added.append(entry.label)
            indexes = [len(plan.lines) - 1]
        first = indexes[0]
        for number, line in enumerate(plan.lines[:first], start=1):
            if line.key is not None and covers(line.key, entry.key):
                plan.warnings.append(f"entries[{entry.index}] ({entry.label}) is shadowed by line {number} "
                                     f"({render_key(line.key)}): libpq uses the first line that matches")
                break
    return plan


# ------------------------------------------------------------------------------------------------ the module

def resolve_user(option: str, value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return pwd.getpwuid(int(value)).pw_uid if value.isdigit() else pwd.getpwnam(value).pw_uid
    except (KeyError, ValueError):
        raise PgreplError(f"{option}: {value!r} is not a user on this host") from None


def resolve_group(option: str, value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return grp.getgrgid(int(value)).gr_gid if value.isdigit() else grp.getgrnam(value).gr_gid
    except (KeyError, ValueError):
        raise PgreplError(f"{option}: {value!r} is not a group on this host") from None


def user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def _check_path(path: str) -> str:
    if not isinstance(path, str) or path == "" or "\x00" in path or "\n" in path:
        raise PgreplError(f"path: {path!r} is not a usable file name")
    if not os.path.isabs(path):
        raise PgreplError(f"path: {path!r} must be an absolute path")
    if os.path.isdir(path):
        raise PgreplError(f"path: {path!r} is a directory; give the password file's own path")
    parent = os.path.dirname(os.path.realpath(path))
    if not os.path.isdir(parent):
        raise PgreplError(f"path: the directory {parent!r} of {path!r} does not exist")
    return path


def _attributes(mode: int | None, uid: int | None, gid: int | None) -> str:
    if mode is None or uid is None or gid is None:
        return "(no file)\n"
    return f"mode: {mode:04o}\nowner: {user_name(uid)}\ngroup: {group_name(gid)}\n"


PASSFILE_SPEC = ModuleSpec(
    {
        "path": {"type": "path", "required": True},
        "owner": {"type": "str"},
        "group": {"type": "str"},
        "entries": {
            "type": "list",
            "elements": "dict",
            "default": [],
            "options": {
                # raw: the module checks the types itself, so that a list is refused instead of written as text
                "host": {"type": "raw"},
                "port": {"type": "raw", "default": DEFAULT_PORT},
                "database": {"type": "raw", "default": DEFAULT_DATABASE},
                "user": {"type": "raw"},
                "password": {"type": "raw", "no_log": True},
            },
        },
        "state": {"type": "str", "default": "present", "choices": ["present", "absent"]},
    },
    with_connection=False,
)


def run_passfile(module: Any) -> dict[str, Any]:
    """Check everything, read the file, plan; then (not in check mode) fix owner and mode, and write it."""
    params = module.params
    state = params.get("state") or "present"
    entries = build_entries(params.get("entries"), state)
    path = _check_path(params.get("path"))
    want_uid = resolve_user("owner", params.get("owner"))
    want_gid = resolve_group("group", params.get("group"))

    raw = read_bytes(path)
    old_text = None if raw is None else raw.decode("utf-8", errors="surrogateescape")
    plan = plan_edit(parse_text(old_text or ""), entries, state)
    new_text = render_lines(plan.lines)
    content_changed = new_text != (old_text or "")
    exists = raw is not None
    creates = not exists and content_changed

    if exists:
        st = os.stat(path)
        old_mode, old_uid, old_gid = stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid
        uid = old_uid if want_uid is None else want_uid
        gid = old_gid if want_gid is None else want_gid
    else:
        parent = os.stat(os.path.dirname(os.path.realpath(path)))
        old_mode = old_uid = old_gid = None
        uid = parent.st_uid if want_uid is None else want_uid
        gid = parent.st_gid if want_gid is None else want_gid
    attrs_changed = exists and (old_mode != MODE or (old_uid, old_gid) != (uid, gid))
    changed = content_changed or attrs_changed

    if changed and not module.check_mode:
        try:
            if exists and (old_uid, old_gid) != (uid, gid):
                os.chown(path, uid, gid)
            if exists and old_mode != MODE:
                os.chmod(path, MODE)
        except OSError as exc:
            raise PgreplError(f"path: cannot set owner {uid}:{gid} and mode 0600 on {path!r}: "
                              f"{exc.strerror or exc}") from None
        if content_changed:
            atomic_write(path, new_text.encode("utf-8", errors="surrogateescape"), mode=MODE)
        if creates:
            try:
                os.chown(path, uid, gid)
            except OSError as exc:
                raise PgreplError(f"path: cannot give {path!r} the owner {uid}:{gid}: {exc.strerror or exc}") from None

    final = exists or creates
    result: dict[str, Any] = {
        "changed": changed,
        "path": path,
        # Ansible replaces mode, owner and group by what is on disk when the file exists (add_path_info).
        "mode": f"{MODE:04o}" if final else None,
        "owner": user_name(uid) if final else None,
        "group": group_name(gid) if final else None,
        "entries_added": len(plan.added),
        "entries_updated": len(plan.updated),
        "entries_removed": len(plan.removed),
        "keys_added": plan.added,
        "keys_updated": plan.updated,
        "keys_removed": plan.removed,
    }
    for warning in plan.warnings:
        module.warn(warning)
    if module._diff:
        result["diff"] = [
            {"before_header": path, "after_header": path,
             "before": mask_text(old_text or ""), "after": mask_text(new_text) if final else ""},
            {"before_header": f"{path} (attributes)", "after_header": f"{path} (attributes)",
             "before": _attributes(old_mode, old_uid, old_gid),
             "after": _attributes(MODE, uid, gid) if final else "(no file)\n"},
        ]
    return result
