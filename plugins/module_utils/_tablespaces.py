# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where a standby keeps each tablespace of its primary, and whether that place can take a copy.

pg_basebackup writes a tablespace to the primary's path unless --tablespace-mapping names another one; it runs
as the server's OS user, so it cannot create a directory under a root-owned parent, and it refuses a non-empty
one. Every tablespace therefore gets a target decided here before anything stops: created (0700, the OS user) by
the module, copied in place when missing or empty, or copied beside it and swapped in when it holds the tablespace
of the data directory being replaced (the old one moved aside, never deleted). Replay of a later CREATE
TABLESPACE does not apply the map: it writes to the primary's path on every standby.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable

from ansible_collections.pgrepl.streaming.plugins.module_utils._errors import PgreplError
from ansible_collections.pgrepl.streaming.plugins.module_utils._options import SYSTEM_DIRS, validate_abs_path

# How a target is written: into the directory itself (missing, or empty), or into a sibling then swapped in.
IN_PLACE = "in_place"
SWAP = "swap"


@dataclass(frozen=True)
class Tablespace:
    """A tablespace of the primary: its location there and its size in bytes (None: unknown)."""

    location: str
    size: int | None = None
    name: str | None = None


@dataclass(frozen=True)
class Target:
    """Where this standby keeps one tablespace, and how the copy reaches it."""

    source: str
    path: str
    how: str
    # The directory is missing (created by the module) or exists but is not 0700 of the OS user.
    create: bool = False
    size: int | None = None


def validate_tablespace_map(value: Any, option: str = "tablespace_map") -> dict[str, str]:
    """{primary's path: this host's path}, both absolute and normalised, no two tablespaces to one place."""
    if value is None or value == "":
        return {}
    if not isinstance(value, dict):
        raise PgreplError(f"{option}: {value!r} is not a mapping of the primary's tablespace paths to this host's "
                          "(for example {'/srv/ts1': '/data/ts1'})")
    mapping: dict[str, str] = {}
    for old, new in value.items():
        source = validate_abs_path(f"{option} key", old)
        target = validate_target_path(f"{option}[{old!r}]", new)
        if source in mapping:
            raise PgreplError(f"{option}: {old!r} is given twice (as {source!r} once normalised)")
        mapping[source] = target
    taken: dict[str, str] = {}
    for source, target in mapping.items():
        if target in taken:
            raise PgreplError(f"{option}: {taken[target]!r} and {source!r} both map to {target!r}: each tablespace "
                              "needs its own directory")
        taken[target] = source
    return mapping


def validate_target_path(option: str, value: Any) -> str:
    path = validate_abs_path(option, value)
    if path == "/" or path in SYSTEM_DIRS:
        raise PgreplError(f"{option}: {value!r} is a system directory, never a tablespace directory")
    return path


def validate_tablespaces(value: Any, option: str = "tablespaces") -> tuple[Tablespace, ...] | None:
    """The primary's tablespaces as node_prepare reports them (location, size, name), or plain paths. Locations
    that are not absolute (in-place tablespaces, pg_tblspc/<oid>) live in the data directory and are left out."""
    if value is None:
        return None
    if not isinstance(value, list):
        raise PgreplError(f"{option}: {value!r} is not a list of the primary's tablespaces")
    found: list[Tablespace] = []
    for item in value:
        entry = item if isinstance(item, dict) else {"location": item}
        location = entry.get("location")
        if not isinstance(location, str):
            raise PgreplError(f"{option}: {item!r} has no location (a path)")
        if not location or not os.path.isabs(location):
            continue
        size = entry.get("size")
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
            raise PgreplError(f"{option}: the size of {location!r} is {size!r}, not a number of bytes")
        name = entry.get("name")
        found.append(Tablespace(validate_abs_path(option, location), size, name if isinstance(name, str) else None))
    return tuple(found)


def inside(path: str, directory: str) -> bool:
    """path is directory or below it (both normalised)."""
    return path == directory or path.startswith(directory.rstrip("/") + "/")


def mapped(tablespaces: tuple[Tablespace, ...], mapping: dict[str, str]) -> list[tuple[Tablespace, str]]:
    """Each tablespace with this host's path for it (the map's, or the primary's path)."""
    return [(space, mapping.get(space.location, space.location)) for space in tablespaces]


def unused_keys(tablespaces: tuple[Tablespace, ...], mapping: dict[str, str]) -> list[str]:
    known = {space.location for space in tablespaces}
    return [key for key in mapping if key not in known]


def path_problems(pairs: list[tuple[Tablespace, str]], data_dir: str) -> list[str]:
    """What makes the targets unusable whatever the disk holds: inside the data directory, holding it, nested."""
    problems = []
    for space, path in pairs:
        label = f"tablespace {space.location!r}" + (f" ({space.name})" if space.name else "")
        if inside(path, data_dir):
            problems.append(f"{label} would go to {path!r}, inside data_dir {data_dir!r} (moved aside with it on a "
                            "re-seed): map it elsewhere")
        elif inside(data_dir, path):
            problems.append(f"{label} would go to {path!r}, which holds data_dir {data_dir!r}: map it elsewhere")
        for other, other_path in pairs:
            if other is not space and inside(path, other_path) and (path != other_path or
                                                                    space.location < other.location):
                problems.append(f"{label} would go to {path!r}, inside (or the same as) the directory of tablespace "
                                f"{other.location!r} ({other_path!r}): each tablespace needs its own directory")
    return problems


@dataclass(frozen=True)
class TargetFacts:
    """What one target path is on disk (read by read_target_facts)."""

    path: str
    exists: bool = False
    is_symlink: bool = False
    is_dir: bool = False
    empty: bool = False
    is_mount: bool = False
    owned: bool = False
    # The nearest directory on the way that exists, and whether the module may create entries in it.
    anchor: str = "/"
    anchor_writable: bool = True


def read_target_facts(path: str, uid: int, writable: Callable[[str], bool] | None = None) -> TargetFacts:
    """The facts of a target, read without changing anything; uid: the OS user who must own it."""
    can_write = writable or (lambda where: os.access(where, os.W_OK | os.X_OK))
    anchor = os.path.dirname(path)
    while anchor != "/" and not os.path.isdir(anchor):
        anchor = os.path.dirname(anchor)
    base = {"path": path, "anchor": anchor, "anchor_writable": can_write(anchor)}
    if os.path.islink(path):
        return TargetFacts(exists=True, is_symlink=True, **base)
    if not os.path.lexists(path):
        return TargetFacts(**base)
    if not os.path.isdir(path):
        return TargetFacts(exists=True, **base)
    info = os.stat(path)
    try:
        empty = not os.listdir(path)
    except OSError:
        empty = False
    try:
        mount = info.st_dev != os.stat(os.path.dirname(path)).st_dev
    except OSError:
        mount = False
    owned = info.st_uid == uid and (info.st_mode & 0o777) == 0o700
    return TargetFacts(exists=True, is_dir=True, empty=empty, is_mount=mount, owned=owned, **base)


def decide_target(space: Tablespace, facts: TargetFacts, ours: bool, replacing: bool) -> Target:
    """How this target takes the copy, or a PgreplError saying why it cannot (nothing was changed yet).

    ``ours``: the data directory being replaced keeps this tablespace there (its pg_tblspc link points to it);
    ``replacing``: the data directory is moved aside for the copy.
    """
    path = facts.path
    label = f"tablespace {space.location!r}" + (f" ({space.name})" if space.name else "")
    advice = "Nothing was stopped or changed; map it elsewhere with tablespace_map (pgrepl_tablespace_map)"
    if facts.is_symlink:
        raise PgreplError(f"{label}: its target {path!r} is a symlink: give the real path. {advice}")
    if facts.exists and not facts.is_dir:
        raise PgreplError(f"{label}: its target {path!r} exists and is not a directory. {advice}")
    if not facts.exists or facts.empty:
        if not facts.anchor_writable:
            raise PgreplError(f"{label}: its target {path!r} cannot be created: {facts.anchor!r} is not writable "
                              f"(read-only, or not this module's to write). {advice}")
        return Target(space.location, path, IN_PLACE, create=not facts.owned, size=space.size)
    if ours and replacing:
        if facts.is_mount:
            raise PgreplError(f"{label}: its target {path!r} is a mount point holding the tablespace of the data "
                              "directory being replaced: a mount point cannot be moved aside. Map the tablespace to "
                              f"an empty directory (for example below {path!r}). Nothing was stopped or changed")
        if not os.access(os.path.dirname(path), os.W_OK | os.X_OK):
            raise PgreplError(f"{label}: the new copy goes beside {path!r}, but {os.path.dirname(path)!r} is not "
                              "writable. Nothing was stopped or changed")
        return Target(space.location, path, SWAP, size=space.size)
    raise PgreplError(f"{label}: its target {path!r} is not empty and holds no tablespace of this standby's data "
                      f"directory (another cluster's, or other files): it is never overwritten. {advice}, or empty "
                      "it yourself")


def tablespace_links(data_dir: str) -> dict[str, str]:
    """{oid: link target} of data_dir's pg_tblspc (symlinks only; in-place tablespaces are directories)."""
    links: dict[str, str] = {}
    folder = os.path.join(data_dir, "pg_tblspc")
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return links
    for name in names:
        entry = os.path.join(folder, name)
        if os.path.islink(entry):
            links[name] = os.readlink(entry)
    return links


def relink(data_dir: str, renamed: dict[str, str]) -> list[str]:
    """Point data_dir's pg_tblspc links that name a key of renamed at its value instead (a new symlink renamed
    over the old one); returns the oids changed."""
    changed = []
    for oid, target in tablespace_links(data_dir).items():
        new = renamed.get(os.path.normpath(target))
        if new is None:
            continue
        link = os.path.join(data_dir, "pg_tblspc", oid)
        temporary = f"{link}.pgrepl-link"
        if os.path.lexists(temporary):
            os.unlink(temporary)
        os.symlink(new, temporary)
        os.rename(temporary, link)
        changed.append(oid)
    return changed


def mapping_argument(source: str, target: str) -> str:
    """pg_basebackup's --tablespace-mapping=OLD=NEW value ('=' in a path escaped with a backslash)."""
    return "--tablespace-mapping=" + source.replace("=", "\\=") + "=" + target.replace("=", "\\=")
