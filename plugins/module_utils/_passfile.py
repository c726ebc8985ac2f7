# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The passfile module: single entries of a libpq password file (format in _pgpass.py) added, updated or removed,
every other line kept byte for byte, the file written 0600 with its owner and group."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.pgrepl.streaming.plugins.module_utils._errors import PgreplError
from ansible_collections.pgrepl.streaming.plugins.module_utils._files import atomic_write, read_bytes
from ansible_collections.pgrepl.streaming.plugins.module_utils._module import ModuleSpec
from ansible_collections.pgrepl.streaming.plugins.module_utils._osuser import (
    find_group,
    find_user,
    group_name,
    user_name,
)
from ansible_collections.pgrepl.streaming.plugins.module_utils._pgpass import (
    MODE,
    WILDCARD,
    Key,
    PassLine,
    covers,
    key_field_value,
    mask_text,
    parse_text,
    render_entry,
    render_key,
    render_lines,
)

KEY_FIELDS = ("host", "port", "database", "user")
DEFAULT_PORT = "5432"
DEFAULT_DATABASE = "*"


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
    want_uid = None if params.get("owner") is None else find_user("owner", params["owner"]).pw_uid
    want_gid = None if params.get("group") is None else find_group("group", params["group"]).gr_gid

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
