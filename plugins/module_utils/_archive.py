# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The WAL archive: the server settings that turn it on, and the archive, restore and cleanup commands themselves.

This file is also the program the node role installs as /usr/local/bin/pgrepl-archive-wal (its template puts a
shebang before this text and nothing else), so it imports only the standard library (psycopg only inside the
cleanup, which asks the primary what its slots and standbys still need): the server runs it for every WAL segment,
on hosts where this collection is not installed. Which is why it has its own fsync and WAL-name helpers instead of
importing _files.py and _lsn.py; tests/unit/plugins/module_utils/test_archive_standalone.py holds them to the same
rules as those two, and this file to the standard library.

- archive DIR %p %f: copies the segment to a temporary name in DIR, fsyncs it, links it under its own name (never
  over an existing file), fsyncs DIR. An identical file already there is success (a retry after a crash between
  the copy and the server's bookkeeping; flushed again first, file and directory, as that run may have been cut
  off before its own fsyncs); a different one is a loud failure (exit 1, a message on stderr, which
  the server logs), never overwritten.
- restore DIR %f %p: copies an archived file to where the server asks; a missing one is a quiet exit 1 (the
  server asks for files that are not there yet as a matter of course).
- cleanup DIR --keep ... : removes archived WAL by age and/or count, never a segment at or after the oldest one a
  replication slot, a connected standby or the last checkpoint still needs (asked of the primary; on a standby it
  does nothing).
"""

from __future__ import annotations

import argparse
import errno
import os
import re
import shlex
import socket
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Callable

# Where the node role installs this program, the interpreter it runs with (the system's, for which the node role
# installs psycopg), and the systemd units that run its cleanup.
SCRIPT_PATH = "/usr/local/bin/pgrepl-archive-wal"
INTERPRETER = "/usr/bin/python3"
CLEANUP_UNIT = "pgrepl-archive-cleanup"

# A WAL segment file: timeline, log and segment, 8 hexadecimal digits each (upper case, as the server names them).
_SEGMENT_RE = re.compile(r"[0-9A-F]{24}")
# What the server hands to archive_command / asks of restore_command: segments, their .partial tail after a
# promotion, backup history files and timeline history files.
_ARCHIVE_NAME_RE = re.compile(r"[0-9A-F]{24}(\.partial|\.[0-9A-F]{8}\.backup)?|[0-9A-F]{8}\.history")
# Temporary copies this program makes in the archive (removed by the cleanup once a day old: a crash left them).
TEMP_PREFIX = ".pgrepl-tmp."
STALE_TEMP_SECONDS = 86400
_CHUNK = 1 << 20

# pgrepl_archive_keep: an age (a number and a unit) and/or a count of segments, separated by a comma or blanks.
_AGE_UNITS = {"min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_AGE_RE = re.compile(r"([0-9]+)\s*(min|h|d|w)")
_COUNT_RE = re.compile(r"[0-9]+")


class ArchiveError(Exception):
    """A refused setting or a failed archive step, its message naming the option or file."""


# ---------------------------------------------------------------------------------------------- the settings

@dataclass(frozen=True)
class Keep:
    """What the cleanup keeps: segments younger than age_seconds, and the newest count segments (a file either
    rule keeps is kept). Neither set: the cleanup removes nothing."""

    age_seconds: int | None = None
    count: int | None = None

    @property
    def removes(self) -> bool:
        return self.age_seconds is not None or self.count is not None

    def text(self) -> str:
        """The canonical spelling (the cleanup's --keep argument)."""
        parts = []
        if self.age_seconds is not None:
            parts.append(_age_text(self.age_seconds))
        if self.count is not None:
            parts.append(str(self.count))
        return ",".join(parts)


def _age_text(seconds: int) -> str:
    for unit in ("w", "d", "h", "min"):
        if seconds % _AGE_UNITS[unit] == 0:
            return f"{seconds // _AGE_UNITS[unit]}{unit}"
    raise ArchiveError(f"{seconds} s is not a whole number of minutes")  # parse_keep never makes one


def parse_keep(value: Any, option: str = "pgrepl_archive_keep") -> Keep:
    """'7d', '500', '7d,500', '36h 1000' (or an int) -> Keep; '' or None keeps everything. Anything else is refused,
    naming the option and the value."""
    if value is None or value == "":
        return Keep()
    if isinstance(value, bool):
        raise ArchiveError(f"{option}: {value!r} is a boolean; give an age such as 7d and/or a count such as 500")
    if isinstance(value, int):
        value = str(value)
    if not isinstance(value, str):
        raise ArchiveError(f"{option}: {value!r} is a {type(value).__name__}; give an age such as 7d and/or a count "
                           "such as 500")
    age: int | None = None
    count: int | None = None
    for part in [p for p in re.split(r"[,\s]+", value.strip()) if p]:
        age_match = _AGE_RE.fullmatch(part)
        if age_match and age is None:
            age = int(age_match.group(1)) * _AGE_UNITS[age_match.group(2)]
            if age == 0:
                raise ArchiveError(f"{option}: {value!r}: an age of 0 keeps nothing (leave the age out, or give a "
                                   "count)")
        elif _COUNT_RE.fullmatch(part) and count is None:
            count = int(part)
            if count == 0:
                raise ArchiveError(f"{option}: {value!r}: a count of 0 keeps nothing (give at least 1)")
        else:
            raise ArchiveError(f"{option}: {value!r} is not an age (a number with min, h, d or w, such as 7d) "
                               "and/or a count of segments (such as 500), each at most once")
    return Keep(age, count)


def command_word(word: str) -> str:
    """A word of archive_command/restore_command: shell-quoted, and % doubled (the server replaces %p, %f, %r
    and %% in the whole command, a directory name included)."""
    return shlex.quote(word).replace("%", "%%")


def _check_dir(directory: Any) -> str:
    if not isinstance(directory, str) or not directory.startswith("/"):
        raise ArchiveError(f"pgrepl_archive_dir: {directory!r} is not an absolute path (a directory every node "
                           "reaches: shared storage)")
    if any(ch in directory for ch in "\n\r\x00"):
        raise ArchiveError(f"pgrepl_archive_dir: {directory!r} contains a line break or NUL")
    return os.path.normpath(directory)


def _check_command(option: str, value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ArchiveError(f"{option}: {value!r} is a {type(value).__name__}, a shell command is expected")
    if any(ch in value for ch in "\n\r\x00"):
        raise ArchiveError(f"{option}: {value!r} contains a line break or NUL, which a setting cannot hold")
    return value.strip()


def systemd_word(word: str) -> str:
    """One word of a unit's ExecStart: % and $ doubled (specifiers, variables), quoted when it holds blanks,
    quotes or backslashes."""
    text = word.replace("%", "%%").replace("$", "$$")
    if text and not re.search(r"[\s\"'\\;]", text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True)
class ArchivePlan:
    """What the roles do for pgrepl_archive: the server settings (every node the same), and whether the node
    gets this program and its cleanup timer."""

    settings: dict[str, str]
    install_script: bool
    directory: str
    keep: Keep

    @property
    def cleanup_timer(self) -> bool:
        return self.install_script and self.keep.removes

    def cleanup_exec(self, socket_dir: str, port: int, script: str = SCRIPT_PATH) -> str:
        """The cleanup service's ExecStart (empty without a timer)."""
        if not self.cleanup_timer:
            return ""
        words = [script, "cleanup", self.directory, "--keep", self.keep.text(), "--host", socket_dir, "--port",
                 str(port)]
        return " ".join(systemd_word(word) for word in words)

    def as_dict(self, socket_dir: str = "/var/run/postgresql", port: int = 5432) -> dict[str, Any]:
        return {"enabled": bool(self.settings), "settings": dict(self.settings),
                "install_script": self.install_script, "cleanup_exec": self.cleanup_exec(socket_dir, port),
                "directory": self.directory, "keep": self.keep.text(), "cleanup_timer": self.cleanup_timer,
                "script": SCRIPT_PATH, "unit": CLEANUP_UNIT, "shebang": f"#!{INTERPRETER}"}


def shared_archive_problems(nodes: dict[str, dict[str, Any]], clusters: dict[str, str]) -> list[str]:
    """An archive directory two clusters (pgrepl_cluster_id) would share. ``nodes``: inventory name -> {enabled
    (pgrepl_archive, a bool), dir (pgrepl_archive_dir), command (pgrepl_archive_command)}; ``clusters``: inventory
    name -> its cluster id. A node with its own archive_command is left out (its tool keeps its own archive), and so
    is a directory archive_plan refuses anyway."""
    users: dict[str, list[str]] = {}
    for host, node in nodes.items():
        directory = node.get("dir")
        if node.get("enabled") is not True or node.get("command") or not isinstance(directory, str) \
                or not directory.startswith("/"):
            continue
        cluster = str(clusters.get(host) or "default")
        owners = users.setdefault(os.path.normpath(directory), [])
        if cluster not in owners:
            owners.append(cluster)
    return [f"pgrepl_archive_dir: {directory!r} is set for the clusters {', '.join(owners)} (pgrepl_cluster_id): "
            "each cluster needs an archive directory of its own - two clusters' WAL files have the same names, so "
            "the archive program would refuse one cluster's segments and one cluster's cleanup would remove the "
            "other's; set it in each cluster's group vars" for directory, owners in users.items() if len(owners) > 1]


def archive_plan(enabled: bool, directory: Any = "", keep: Any = "", archive_command: Any = "",
                 restore_command: Any = "", overrides: Any = None, script: str = SCRIPT_PATH) -> ArchivePlan:
    """The plan for pgrepl_archive and its options (every refusal names the option and the value).

    overrides: pgrepl_settings, which the primary merges over these: a value it gives for one of the archive's
    settings (archive_mode: always, say) is every node's value, so the standbys get what the primary gets.

    archive_mode is 'on' on every node: inert on a standby (it archives nothing in recovery) until a promotion, so
    the node that becomes primary archives to the same place. restore_command is set on every node too (ignored
    outside recovery): a standby that fell behind its slot, or lost it, fetches what the primary removed."""
    if not enabled:
        return ArchivePlan({}, False, "", Keep())
    own_archive = _check_command("pgrepl_archive_command", archive_command)
    own_restore = _check_command("pgrepl_restore_command", restore_command)
    folder = "" if directory in (None, "") else _check_dir(directory)
    if not own_archive and not folder:
        raise ArchiveError("pgrepl_archive: true needs pgrepl_archive_dir (a directory every node reaches) or "
                           "pgrepl_archive_command (your own tool, such as pgBackRest or WAL-G); both are empty")
    if own_archive and "%p" not in own_archive:
        raise ArchiveError(f"pgrepl_archive_command: {own_archive!r} does not contain %p (the path of the segment "
                           "to archive)")
    if own_restore and "%p" not in own_restore:
        raise ArchiveError(f"pgrepl_restore_command: {own_restore!r} does not contain %p (the path the server "
                           "wants the file at)")
    keep_rule = parse_keep(keep)
    quoted_dir = command_word(folder) if folder else ""
    settings = {
        "archive_mode": "on",
        "archive_command": own_archive or f"{command_word(script)} archive {quoted_dir} %p %f",
    }
    restore = own_restore or (f"{command_word(script)} restore {quoted_dir} %f %p" if folder else "")
    if restore:
        settings["restore_command"] = restore
    if isinstance(overrides, dict):
        settings = {name: str(overrides[name]) if name in overrides else value for name, value in settings.items()}
    # The script goes where it is used; its cleanup only for a directory this collection archives to.
    uses_script = not own_archive or (not own_restore and bool(folder))
    return ArchivePlan(settings, uses_script and bool(folder), folder if not own_archive else "",
                       keep_rule if not own_archive else Keep())


# ---------------------------------------------------------------------------------------------- archive / restore

def _fsync_path(path: str, directory: bool = False) -> None:
    """Flush a file, or a directory's entries. A filesystem that refuses fsync on a directory (EINVAL, EBADF) is
    tolerated, as PostgreSQL's own fsync_fname and _files.fsync_dir do: nothing more can be done there, and failing
    would fail every segment once after it was archived."""
    fd = os.open(path, os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0))
    try:
        os.fsync(fd)
    except OSError as exc:
        if not directory or exc.errno not in (errno.EINVAL, errno.EBADF):
            raise
    finally:
        os.close(fd)


def _synced_identical(target: str, directory: str) -> str:
    """An identical file already archived: flushed (file, then directory) before the server is told it is safe,
    since a run cut off before its own fsyncs may have left it in the page cache only."""
    _fsync_path(target)
    _fsync_path(directory, directory=True)
    return "identical"


def same_content(first: str, second: str) -> bool:
    """Byte for byte (sizes first)."""
    if os.path.getsize(first) != os.path.getsize(second):
        return False
    with open(first, "rb") as one, open(second, "rb") as two:
        while True:
            left, right = one.read(_CHUNK), two.read(_CHUNK)
            if left != right:
                return False
            if not left:
                return True


def _copy_synced(source: str, target: str) -> None:
    """source to a new file target (never an existing one), its data on disk before this returns."""
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
    try:
        with open(source, "rb") as src:
            while True:
                chunk = src.read(_CHUNK)
                if not chunk:
                    break
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)


def check_name(name: str) -> str:
    if not _ARCHIVE_NAME_RE.fullmatch(name or ""):
        raise ArchiveError(f"{name!r} is not the name of a WAL segment, backup or timeline history file")
    return name


def _link_no_replace(temp: str, target: str) -> None:
    """temp under the name target, failing with FileExistsError when target exists. A hard link never replaces;
    a filesystem without hard links gets a rename after one more look (narrow race, same content expected)."""
    try:
        os.link(temp, target)
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK, errno.EXDEV):
            raise
        if os.path.lexists(target):
            raise FileExistsError(errno.EEXIST, "exists", target) from None
        os.rename(temp, target)


def archive_file(source: str, directory: str, name: str) -> str:
    """Archive one file the server hands over; returns what happened ('archived' or 'identical').
    Raises ArchiveError for a different file already archived under that name (never overwritten)."""
    check_name(name)
    target = os.path.join(directory, name)
    if os.path.lexists(target):
        if same_content(source, target):
            return _synced_identical(target, directory)
        raise ArchiveError(f"{target} is already archived with a different content than {source} "
                           f"({os.path.getsize(target)} bytes archived, {os.path.getsize(source)} here): not "
                           "overwritten. Another cluster archives to the same directory, or an old archive was "
                           "left there: give each cluster its own pgrepl_archive_dir")
    temp = os.path.join(directory, f"{TEMP_PREFIX}{name}.{socket.gethostname()}.{os.getpid()}")
    try:
        _copy_synced(source, temp)
        try:
            _link_no_replace(temp, target)
        except FileExistsError:
            # Archived meanwhile (another node of this cluster, or a concurrent retry): the same rule.
            if same_content(source, target):
                return _synced_identical(target, directory)
            raise ArchiveError(f"{target} appeared with a different content than {source} while it was being "
                               "archived: not overwritten") from None
    finally:
        if os.path.lexists(temp):
            os.unlink(temp)
    _fsync_path(directory, directory=True)
    return "archived"


def restore_file(directory: str, name: str, target: str) -> bool:
    """Copy an archived file to where the server wants it; False when it is not (yet) archived."""
    check_name(name)
    source = os.path.join(directory, name)
    if not os.path.isfile(source):
        return False
    with open(source, "rb") as src, open(target, "wb") as dst:
        while True:
            chunk = src.read(_CHUNK)
            if not chunk:
                break
            dst.write(chunk)
    return True


# ---------------------------------------------------------------------------------------------- retention

def segment_position(name: str) -> str | None:
    """The place in the WAL stream of an archived file (log and segment, 16 hex digits; the timeline left out:
    a segment of any timeline before the oldest needed one is not needed), None for history files and others."""
    if not _ARCHIVE_NAME_RE.fullmatch(name) or name.endswith(".history"):
        return None
    return name[8:24]


@dataclass(frozen=True)
class ArchivedFile:
    name: str
    mtime: float


def removable(files: Iterable[ArchivedFile], oldest_needed: str, keep: Keep, now: float) -> list[str]:
    """The archived files the cleanup may remove, sorted.

    oldest_needed: the name of the oldest WAL segment anything still needs. Never removed: that segment and every
    file at or after its position, timeline history files, anything not named like WAL. Of the rest, a file is kept
    when it is younger than keep.age_seconds or among the keep.count newest segments (by position, then timeline);
    with neither rule nothing is removed."""
    if not keep.removes:
        return []
    if not _SEGMENT_RE.fullmatch(oldest_needed or ""):
        raise ArchiveError(f"oldest needed segment {oldest_needed!r} is not a WAL segment name")
    cutoff = oldest_needed[8:24]
    candidates = [f for f in files if (segment_position(f.name) or "~") < cutoff]
    protected: set[str] = set()
    if keep.count is not None:
        segments = sorted((f for f in files if _SEGMENT_RE.fullmatch(f.name)),
                          key=lambda f: (f.name[8:24], f.name[:8]), reverse=True)
        newest = {f.name[8:24] for f in segments[:keep.count]}
        protected |= {f.name for f in candidates if segment_position(f.name) in newest}
    if keep.age_seconds is not None:
        protected |= {f.name for f in candidates if f.mtime > now - keep.age_seconds}
    return sorted(f.name for f in candidates if f.name not in protected)


def stale_temps(names: Iterable[ArchivedFile], now: float) -> list[str]:
    """Temporary copies a crashed archive run left behind (a day old)."""
    return sorted(f.name for f in names if f.name.startswith(TEMP_PREFIX) and f.mtime < now - STALE_TEMP_SECONDS)


# The oldest WAL anything on the primary still needs: every slot's restart_lsn (the standbys' slots, a running
# pg_basebackup's temporary slot), every connected standby's position (one without a slot), and the redo point of
# the last checkpoint. pg_walfile_name gives the segment before a position on a segment boundary: one more kept.
OLDEST_NEEDED_QUERY = """
SELECT pg_catalog.pg_is_in_recovery(),
       CASE WHEN NOT pg_catalog.pg_is_in_recovery() THEN pg_catalog.pg_walfile_name(least(
           (SELECT min(s.restart_lsn) FROM pg_catalog.pg_replication_slots AS s),
           (SELECT min(coalesce(r.replay_lsn, r.flush_lsn, r.write_lsn, r.sent_lsn))
              FROM pg_catalog.pg_stat_replication AS r),
           (SELECT c.redo_lsn FROM pg_catalog.pg_control_checkpoint() AS c))) END
"""


def ask_oldest_needed(host: str, port: int, dbname: str = "postgres") -> tuple[bool, str | None]:
    """(in recovery, the oldest needed segment's name) from the local server, over its unix socket."""
    # Only the cleanup needs psycopg (archive and restore run where it may be missing).
    import psycopg  # pylint: disable=import-outside-toplevel

    with psycopg.connect(host=host, port=port, dbname=dbname, connect_timeout=10,
                         application_name="pgrepl-archive-cleanup") as conn:
        row = conn.execute(OLDEST_NEEDED_QUERY).fetchone()
    if row is None:
        raise ArchiveError("the server returned no row for the oldest needed WAL")
    return bool(row[0]), row[1]


def _say(text: str) -> None:
    """What the cleanup did, on stdout (the journal of its service)."""
    sys.stdout.write(text + "\n")


def list_archive(directory: str) -> list[ArchivedFile]:
    files = []
    with os.scandir(directory) as entries:
        for entry in entries:
            if entry.is_file(follow_symlinks=False):
                files.append(ArchivedFile(entry.name, entry.stat(follow_symlinks=False).st_mtime))
    return files


def cleanup(directory: str, keep: Keep, ask: Callable[[], tuple[bool, str | None]], dry_run: bool = False,
            now: float | None = None, say: Callable[[str], None] | None = None) -> list[str]:
    """Remove what removable() allows (and stale temporary copies); returns the names removed (or, dry_run, that
    would be). A standby removes nothing: the primary's own run decides, from what its slots need."""
    say = say or _say
    in_recovery, oldest = ask()
    if in_recovery:
        say("this node is a standby: the primary's cleanup keeps the archive")
        return []
    if not oldest:
        raise ArchiveError("the primary did not say which WAL it still needs: nothing removed")
    now = time.time() if now is None else now
    files = list_archive(directory)
    names = removable(files, oldest, keep, now) + stale_temps(files, now)
    for name in names:
        if not dry_run:
            os.unlink(os.path.join(directory, name))
    if names and not dry_run:
        _fsync_path(directory, directory=True)
    say(f"{'would remove' if dry_run else 'removed'} {len(names)} file(s) of {directory} older than {oldest} "
        f"(keep {keep.text() or 'everything'})" + (f": {names[0]} .. {names[-1]}" if names else ""))
    return names


# ---------------------------------------------------------------------------------------------- the program

def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pgrepl-archive-wal", description="WAL archive of pgrepl.streaming")
    sub = parser.add_subparsers(dest="action", required=True)
    archive = sub.add_parser("archive", help="archive_command: DIR %%p %%f")
    archive.add_argument("directory")
    archive.add_argument("path")
    archive.add_argument("name")
    restore = sub.add_parser("restore", help="restore_command: DIR %%f %%p")
    restore.add_argument("directory")
    restore.add_argument("name")
    restore.add_argument("path")
    clean = sub.add_parser("cleanup", help="remove old archived WAL that nothing needs")
    clean.add_argument("directory")
    clean.add_argument("--keep", required=True, help="an age such as 7d and/or a count such as 500")
    clean.add_argument("--host", default="/var/run/postgresql", help="the server's unix socket directory")
    clean.add_argument("--port", type=int, default=5432)
    clean.add_argument("--dry-run", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.action == "archive":
            archive_file(args.path, args.directory, args.name)
            return 0
        if args.action == "restore":
            return 0 if restore_file(args.directory, args.name, args.path) else 1
        keep = parse_keep(args.keep, "--keep")
        if not keep.removes:
            raise ArchiveError("--keep: empty, nothing to decide (give an age such as 7d and/or a count)")
        cleanup(args.directory, keep, lambda: ask_oldest_needed(args.host, args.port), dry_run=args.dry_run)
        return 0
    except (ArchiveError, OSError) as exc:
        # The server writes stderr to its log; exit 1 (not above 125, which would stop the archiver).
        sys.stderr.write(f"pgrepl-archive-wal {args.action}: {exc}\n")
        return 1
    # psycopg's errors, without importing it here.
    except Exception as exc:  # pylint: disable=broad-exception-caught
        sys.stderr.write(f"pgrepl-archive-wal {args.action}: {type(exc).__name__}: {str(exc).strip()}\n")
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
