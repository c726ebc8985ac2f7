# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Safe file replacement for configuration files: same-dir tempfile, fsync, os.replace, optional backup; and the
empty signal files of a data directory (standby.signal), created and removed durably.

A reader (PostgreSQL, another task) sees either the old file or the new one, never a half-written one, and
the new file keeps the mode, owner, group (and SELinux label, where there is one) of the file it replaces.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import stat
import tempfile
import time
from collections.abc import Iterator
from typing import Callable

from ansible_collections.pgrepl.streaming.plugins.module_utils._errors import PgreplError

SELINUX_XATTR = "security.selinux"


def read_bytes(path: str, option: str = "path") -> bytes | None:
    """The file's bytes, None when it does not exist; a clear PgreplError for anything else."""
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise PgreplError(f"{option}: {path!r} is a directory, not a file") from None
    except OSError as exc:
        raise PgreplError(f"{option}: cannot read {path!r}: {exc.strerror or exc}") from None


def backup_name(path: str, now: float | None = None) -> str:
    """Where a backup of path goes: next to it, with the pid and a timestamp (the pattern Ansible users know)."""
    stamp = time.strftime("%Y-%m-%d@%H:%M:%S", time.localtime(now if now is not None else time.time()))
    return f"{path}.{os.getpid()}.{stamp}~"


def backup_file(path: str) -> str:
    """Copy path (contents, mode, times, owner) to a timestamped file beside it and return that file's name."""
    target = os.path.realpath(path)
    dest = backup_name(path)
    try:
        shutil.copy2(target, dest)
        st = os.stat(target)
        _chown_if_needed(dest, st)
    except OSError as exc:
        raise PgreplError(f"backup: cannot copy {path!r} to {dest!r}: {exc.strerror or exc}") from None
    return dest


def _chown_if_needed(path: str, st: os.stat_result) -> None:
    current = os.stat(path)
    if (current.st_uid, current.st_gid) != (st.st_uid, st.st_gid):
        os.chown(path, st.st_uid, st.st_gid)


def _copy_selinux_label(src: str, fd: int) -> None:
    """Best effort: keep the SELinux label of the replaced file (no-op where xattrs or SELinux are absent)."""
    if not hasattr(os, "getxattr"):
        return
    try:
        label = os.getxattr(src, SELINUX_XATTR)
    except OSError:
        return
    try:
        os.setxattr(fd, SELINUX_XATTR, label)
    except OSError:
        pass


def fsync_dir(directory: str, quiet: bool = False) -> None:
    """Flush a directory's entries (a rename, a new or removed file) to disk; a directory we cannot open is skipped.

    A filesystem that refuses fsync on a directory (EINVAL, EBADF) is tolerated; any other error is raised,
    unless ``quiet`` (best effort: every error is ignored).
    """
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:  # some filesystems refuse fsync on a directory
        if not quiet and exc.errno not in (errno.EINVAL, errno.EBADF):
            raise
    finally:
        os.close(fd)


# atomic_write's temporary files: beside the target, named after it and the writing process, so a later write
# removes those a killed run left (a root-owned leftover in a data directory would break pg_basebackup there).
TEMP_PREFIX = ".pgrepl-"


def temp_pattern(basename: str) -> re.Pattern[str]:
    """Names of atomic_write's temporary files for basename; group 1 is the writer's PID."""
    return re.compile(re.escape(f"{TEMP_PREFIX}{basename}.") + r"(\d+)\.[A-Za-z0-9_]+\.tmp")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temps(directory: str, basename: str, alive: Callable[[int], bool] | None = None) -> list[str]:
    """Remove the temporary files of basename whose writer is gone (alive: pid_alive); return their names."""
    alive = alive or pid_alive
    pattern = temp_pattern(basename)
    removed = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    for name in names:
        match = pattern.fullmatch(name)
        if match and int(match.group(1)) != os.getpid() and not alive(int(match.group(1))):
            _unlink_quietly(os.path.join(directory, name))
            removed.append(name)
    return removed


@contextlib.contextmanager
def _creating_as(owner: tuple[int, int] | None) -> Iterator[None]:
    """Create files with owner's uid/gid when running as root for another owner, so no file of root's ever
    exists, even for an instant a SIGKILL could freeze; a no-op otherwise."""
    if owner is None or os.geteuid() != 0 or owner == (0, 0):
        yield
        return
    os.setegid(owner[1])
    os.seteuid(owner[0])
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


def _make_temp(directory: str, basename: str, owner: tuple[int, int] | None) -> tuple[int, str]:
    prefix = f"{TEMP_PREFIX}{basename}.{os.getpid()}."
    try:
        with _creating_as(owner):
            return tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=directory)
    except PermissionError:
        if owner is None or os.geteuid() != 0:
            raise
    # The owner may not write the directory (a root-owned one): created as root, given the owner at once.
    return tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=directory)


def atomic_write(path: str, data: bytes, backup: bool = False, mode: int = 0o600, option: str = "path") -> str | None:
    """Replace path with data atomically; return the backup's name when backup is true and a file existed.

    A symlink at path is kept and its target is replaced. An existing file's mode, owner and group are copied
    to the new one (failing, rather than silently changing the owner, when we may not chown). A new file gets
    ``mode``.
    """
    target = os.path.realpath(path)
    directory = os.path.dirname(target) or "."
    try:
        st: os.stat_result | None = os.stat(target)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise PgreplError(f"{option}: cannot stat {path!r}: {exc.strerror or exc}") from None
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise PgreplError(f"{option}: {path!r} is not a regular file")

    backup_path = backup_file(path) if backup and st is not None else None
    remove_stale_temps(directory, os.path.basename(target))
    try:
        fd, tmp = _make_temp(directory, os.path.basename(target), (st.st_uid, st.st_gid) if st is not None else None)
    except OSError as exc:
        raise PgreplError(f"{option}: cannot create a temporary file in {directory!r}: {exc.strerror or exc}") from None
    try:
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            if st is not None:
                os.fchmod(fd, stat.S_IMODE(st.st_mode))
                created = os.fstat(fd)
                if (st.st_uid, st.st_gid) != (created.st_uid, created.st_gid):
                    try:
                        os.fchown(fd, st.st_uid, st.st_gid)
                    except PermissionError:
                        raise PgreplError(
                            f"{option}: cannot keep the owner {st.st_uid}:{st.st_gid} of {path!r} when running as "
                            f"uid {os.geteuid()}: run the task as that owner or with become") from None
                _copy_selinux_label(target, fd)
            else:
                os.fchmod(fd, mode)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except PgreplError:
        _unlink_quietly(tmp)
        raise
    except OSError as exc:
        _unlink_quietly(tmp)
        raise PgreplError(f"{option}: cannot write {path!r}: {exc.strerror or exc}") from None
    fsync_dir(directory)
    return backup_path


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def remove_quietly(path: str | None) -> None:
    """Remove a file we created (a backup made redundant by a restore); missing is fine."""
    if path:
        _unlink_quietly(path)


def create_signal(path: str, uid: int, gid: int) -> None:
    """An empty signal file (standby.signal, recovery.signal) in a data directory, mode 0600, owned by uid:gid;
    one already there is left as it is."""
    try:
        try:
            with _creating_as((uid, gid)):
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except PermissionError:
            # A data directory its owner may not write: created as root, given the owner below.
            if os.geteuid() != 0:
                raise
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    except OSError as exc:
        raise PgreplError(f"data_dir: cannot create {path!r}: {exc.strerror or exc}") from None
    try:
        os.fchmod(fd, 0o600)
        created = os.fstat(fd)
        if (uid, gid) != (created.st_uid, created.st_gid):
            os.fchown(fd, uid, gid)
        os.fsync(fd)
    except OSError as exc:
        os.close(fd)
        os.unlink(path)
        raise PgreplError(f"data_dir: cannot give {path!r} the owner {uid}:{gid}: {exc.strerror or exc}") from None
    os.close(fd)
    fsync_dir(os.path.dirname(path), quiet=True)


def remove_signal(path: str) -> None:
    """The signal file gone (nothing to do when it is not there)."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise PgreplError(f"data_dir: cannot remove {path!r}: {exc.strerror or exc}") from None
    fsync_dir(os.path.dirname(path), quiet=True)
