# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One module at a time on a data directory: an exclusive flock on a file beside it.

The kernel releases the lock when its process ends, however it ends, so a killed run leaves no stale lock. The
file says who holds it and is removed by its holder before it lets go; a taker checks that the file it locked is
still the one in place, so removing it cannot let two holders in. Beside the data
directory, not in it: pg_basebackup would copy it, and a moved-aside directory would take it along.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator

from ansible_collections.pgrepl.streaming.plugins.module_utils._errors import PgreplError

LOCK_SUFFIX = ".pgrepl-lock"


def lock_path(data_dir: str) -> str:
    """<parent>/.<name>.pgrepl-lock for data_dir <parent>/<name>."""
    path = os.path.normpath(data_dir)
    return os.path.join(os.path.dirname(path), f".{os.path.basename(path)}{LOCK_SUFFIX}")


def describe_holder(text: str) -> str:
    """Who holds the lock, from what the holder wrote into the file."""
    try:
        holder = json.loads(text)
        since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(float(holder["since"])))
        return f"pid {int(holder['pid'])}, {holder['what']}, since {since}"
    except (ValueError, KeyError, TypeError):
        return "a process that left no name"


def _take(path: str, data_dir: str, option: str) -> int:
    """An open descriptor of the lock file at path, locked; the file it locks is the one at path now (a holder
    removes the file before it lets go, so a lock taken on a removed file is let go and taken again)."""
    for _attempt in range(10):
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise PgreplError(f"{option}: cannot open the lock file {path!r}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = describe_holder(os.pread(fd, 4096, 0).decode("utf-8", "replace"))
            os.close(fd)
            raise PgreplError(f"{option}: another pgrepl.streaming run works on {data_dir!r} now ({holder}; lock "
                              f"{path!r}): nothing was changed; run again once it ended") from None
        held = os.fstat(fd)
        try:
            current = os.stat(path)
        except FileNotFoundError:
            current = None
        if current is not None and (current.st_dev, current.st_ino) == (held.st_dev, held.st_ino):
            return fd
        os.close(fd)
    raise PgreplError(f"{option}: could not take the lock {path!r}: it kept being replaced")


@contextlib.contextmanager
def data_dir_lock(data_dir: str, what: str, option: str = "data_dir") -> Iterator[None]:
    """Hold the data directory's lock for the block, or fail at once naming who holds it (nothing changed). The
    file is removed when the block ends (while still locked), so nothing is left beside the data directory; a
    killed holder leaves it, unlocked, for the next run to take."""
    path = lock_path(data_dir)
    fd = _take(path, data_dir, option)
    try:
        record = json.dumps({"pid": os.getpid(), "what": what, "since": time.time()}).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, record, 0)
        yield
    finally:
        try:
            os.unlink(path)
        except OSError:
            pass
        os.close(fd)
