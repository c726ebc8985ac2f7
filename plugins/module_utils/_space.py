# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Whether the filesystem that receives a copy of the primary has room for it, decided before anything stops.

A copy is written beside the data directory and the old directory is moved aside, never deleted: it keeps its
space, so the free space now must hold the whole new copy (a re-seed needs about twice the data size in all).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Callable

# pg_basebackup copies a little more than the databases' files (pg_xact, pg_multixact, configuration files).
SPACE_FACTOR = 1.1
# -X stream also brings the WAL written while the copy runs, which depends on the primary's load: 16 segments of
# the default 16 MiB (a busy primary may need more: the check can be turned off).
WAL_MARGIN = 256 * 1024 * 1024


def space_needed(data_size: int, wal: bool = True) -> int:
    """Bytes the copy of a primary with data_size bytes of data needs on the target filesystem (wal: the data
    directory is there, which receives the WAL streamed during the copy; a tablespace's filesystem does not)."""
    return math.ceil(data_size * SPACE_FACTOR) + (WAL_MARGIN if wal else 0)


def free_bytes(path: str) -> int:
    """Bytes an unprivileged user may still write on path's filesystem (root's reserve is not counted: the copy is
    written by the server's OS user)."""
    stats = os.statvfs(path)
    return stats.f_bavail * stats.f_frsize


def tree_size(path: str) -> int:
    """Bytes allocated below path on path's own filesystem (symlinks not followed, other mounts not entered)."""
    try:
        device = os.lstat(path).st_dev
    except OSError:
        return 0
    total = 0
    for root, dirs, files in os.walk(path):
        for name in files + dirs:
            try:
                info = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            if info.st_dev == device:
                total += info.st_blocks * 512
        dirs[:] = [name for name in dirs if _same_device(os.path.join(root, name), device)]
    return total


def _same_device(path: str, device: int) -> bool:
    try:
        return os.lstat(path).st_dev == device
    except OSError:
        return False


def same_filesystem(first: str, second: str) -> bool:
    try:
        return os.stat(first).st_dev == os.stat(second).st_dev
    except OSError:
        return False


def human(size: float) -> str:
    """1536 -> '1.5 KiB'."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"  # not reached


@dataclass(frozen=True)
class SpaceFacts:
    """What the decision needs: the primary's data size, where the copy goes, what is free there, and what a
    real run frees first (temporary copies of interrupted runs, removed before the copy)."""

    data_size: int
    path: str
    free: int
    reclaimable: int = 0
    # Directories earlier runs moved aside on that filesystem, with their sizes: what the user may remove.
    moved_aside: tuple[tuple[str, int], ...] = ()
    # What is copied there: the data directory (with the WAL margin), and/or tablespaces named in the message.
    wal: bool = True
    tablespaces: tuple[str, ...] = ()


def space_problem(facts: SpaceFacts) -> str | None:
    """Why the copy does not fit (a sentence with the sizes, the path and what to do), or None when it does."""
    needed = space_needed(facts.data_size, facts.wal)
    available = facts.free + facts.reclaimable
    if available >= needed:
        return None
    freed = f" (with {human(facts.reclaimable)} of stale temporary copies counted as freed)" if facts.reclaimable \
        else ""
    old = ""
    if facts.moved_aside:
        listed = ", ".join(f"{path} ({human(size)})" for path, size in facts.moved_aside)
        old = f" Directories earlier copies moved aside there, never removed by pgrepl: {listed}."
    if facts.tablespaces:
        spaces = ", ".join(facts.tablespaces)
        what = (f"the data directory and the tablespace(s) {spaces}" if facts.wal else f"the tablespace(s) {spaces}")
        option = "data_dir and tablespace_map" if facts.wal else "tablespace_map"
    else:
        what, option = "the data directory", "data_dir"
    wal = f" + {human(WAL_MARGIN)} for the WAL streamed during the copy" if facts.wal else ""
    there = " there" if facts.tablespaces else ""
    return (f"{option}: not enough free space for the copy of the primary on the filesystem of {facts.path!r}: "
            f"{what}: it needs about {human(needed)} (the primary's {human(facts.data_size)} of data{there} x "
            f"{SPACE_FACTOR}{wal}) and has {human(available)} free{freed}. "
            "The old directories are moved aside, not deleted, so it frees nothing. Nothing was stopped or "
            f"changed.{old} Free space there (or grow the filesystem) and run again, or set space_check: false (the "
            "roles' pgrepl_clone_space_check) if you know the copy fits.")


def gather_space_facts(data_size: int, target: str, stale: list[str], moved_aside: list[str],
                       free: Callable[[str], int] = free_bytes, wal: bool = True,
                       tablespaces: tuple[str, ...] = ()) -> SpaceFacts:
    """The facts of the filesystem that receives the copy: target is the directory the copy is written into (the
    data directory's parent, or the data directory itself for a copy in place); stale are the temporary copies a
    real run removes first (counted as freed when on that filesystem); moved_aside the old directories beside the
    data directory (measured only when the copy does not fit: walking them costs time)."""
    reclaimable = sum(tree_size(path) for path in stale if same_filesystem(path, target))
    facts = SpaceFacts(data_size=data_size, path=target, free=free(target), reclaimable=reclaimable, wal=wal,
                       tablespaces=tablespaces)
    if space_problem(facts) is None:
        return facts
    old = tuple((path, tree_size(path)) for path in moved_aside if same_filesystem(path, target))
    return SpaceFacts(data_size=data_size, path=target, free=facts.free, reclaimable=reclaimable, moved_aside=old,
                      wal=wal, tablespaces=tablespaces)


@dataclass
class SpaceNeed:
    """One filesystem that receives part of the copy: a path on it, the bytes, what goes there."""

    path: str
    data_size: int = 0
    wal: bool = False
    tablespaces: list[str] | None = None
    stale: list[str] | None = None
    moved_aside: list[str] | None = None


def filesystem_key(path: str) -> int | str:
    try:
        return os.stat(path).st_dev
    except OSError:
        return path


def group_by_filesystem(needs: list[SpaceNeed]) -> list[SpaceNeed]:
    """Needs on one filesystem added up (the data directory and its tablespaces often share one)."""
    groups: dict[int | str, SpaceNeed] = {}
    for need in needs:
        key = filesystem_key(need.path)
        group = groups.get(key)
        if group is None:
            groups[key] = SpaceNeed(need.path, need.data_size, need.wal, list(need.tablespaces or []),
                                    list(need.stale or []), list(need.moved_aside or []))
            continue
        group.data_size += need.data_size
        group.wal = group.wal or need.wal
        if group.tablespaces is not None:
            group.tablespaces += need.tablespaces or []
        if group.stale is not None:
            group.stale += need.stale or []
        if group.moved_aside is not None:
            group.moved_aside += need.moved_aside or []
        if need.wal:
            group.path = need.path
    return list(groups.values())
