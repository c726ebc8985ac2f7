# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The OS users PostgreSQL's files and processes belong to, and running a program as one of them.

PostgreSQL's programs (pg_basebackup, pg_rewind, pg_ctl) must run as the server's OS user, never as root: a module
running as root runs them through runuser, setpriv or su, in their own process group with a deadline, with an
environment that holds no PG* variable. A libpq connection that uses peer authentication takes that user's
identity only around connect() (as_os_user).
"""

from __future__ import annotations

import contextlib
import ctypes
import grp
import os
import pwd
import re
import select
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Callable

from ansible_collections.pgrepl.streaming.plugins.module_utils._errors import PgreplError

# How long a helper command (test -r) may take.
HELPER_TIMEOUT = 30
# A user name as useradd accepts it (a trailing $ for machine accounts).
_OS_USER_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*\$?")
_SYSTEM_TOOL_DIRS = ("/usr/sbin", "/sbin", "/usr/bin", "/bin")


# ---------------------------------------------------------------------------------------------------------------
# users and groups
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OsUser:
    name: str
    uid: int
    gid: int
    home: str


def validate_os_user_name(value: Any, option: str = "os_user") -> str:
    """The name of the OS user that owns a data directory (never root), checked before anything is looked up."""
    if not isinstance(value, str) or _OS_USER_RE.fullmatch(value) is None:
        raise PgreplError(f"{option}: {value!r} is not a user name")
    if value == "root":
        raise PgreplError(f"{option}: 'root' cannot own a data directory (PostgreSQL refuses to run as root); "
                          "use the postgres user")
    return value


def lookup_os_user(name: str, getpwnam: Callable[[str], Any] = pwd.getpwnam, option: str = "os_user") -> OsUser:
    """The server's OS user (refused when it does not exist or has uid 0)."""
    try:
        entry = getpwnam(name)
    except KeyError:
        raise PgreplError(f"{option}: {name!r} is not a user on this host (create the PostgreSQL OS user first, "
                          "usually by installing the server package)") from None
    if entry.pw_uid == 0:
        raise PgreplError(f"{option}: {name!r} has uid 0; PostgreSQL refuses to run as root")
    return OsUser(name=name, uid=entry.pw_uid, gid=entry.pw_gid, home=entry.pw_dir or "/")


def become_os_user(name: str) -> tuple[OsUser, int]:
    """(the server's OS user, this process's euid), refused early when this process cannot run programs as it."""
    user = lookup_os_user(name)
    euid = os.geteuid()
    as_user_command(["true"], user, euid)
    return user, euid


def find_user(option: str, value: str) -> Any:
    """The passwd entry of a user given by name or uid; PgreplError naming the option."""
    try:
        return pwd.getpwuid(int(value)) if value.isdigit() else pwd.getpwnam(value)
    except (KeyError, ValueError):
        raise PgreplError(f"{option}: {value!r} is not a user on this host") from None


def find_group(option: str, value: str) -> Any:
    """The group entry of a group given by name or gid; PgreplError naming the option."""
    try:
        return grp.getgrgid(int(value)) if value.isdigit() else grp.getgrnam(value)
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


@contextlib.contextmanager
def as_os_user(name: str | None, option: str = "login_os_user") -> Iterator[None]:
    """Run the block with the effective uid/gid of OS user ``name`` (then switch back).

    Peer authentication reads the credentials of the process at connect() time, so a module that runs as root
    can open a unix-socket connection as the server's OS user without an extra become (su/sudo) round trip;
    everything after the connect runs as root again. Without ``name``, or when already that user, a no-op.
    HOME is that user's inside the block: libpq looks for ~/.postgresql/postgresql.crt (a TLS client certificate)
    and ~/.pgpass under HOME, and root's home is unreadable to the user (a connection with TLS then fails).
    """
    if not name:
        yield
        return
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise PgreplError(f"{option}: there is no OS user {name!r} on this host") from None
    uid, gid = entry.pw_uid, entry.pw_gid
    current = os.geteuid()
    if current == uid:
        yield
        return
    if current != 0:
        raise PgreplError(f"{option}: connecting as OS user {name!r} needs the module to run as root "
                          f"(it runs as uid {current}): use become: true, or leave {option} unset")
    home = os.environ.get("HOME")
    os.environ["HOME"] = entry.pw_dir
    os.setegid(gid)
    os.seteuid(uid)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)
        if home is None:
            os.environ.pop("HOME", None)
        else:
            os.environ["HOME"] = home


# ---------------------------------------------------------------------------------------------------------------
# running programs as the user
# ---------------------------------------------------------------------------------------------------------------


def find_tool(name: str, which: Callable[[str], str | None] = shutil.which) -> str | None:
    """A system program on PATH or in the system directories (a module's PATH may lack /usr/sbin)."""
    found = which(name)
    if found:
        return found
    for directory in _SYSTEM_TOOL_DIRS:
        path = os.path.join(directory, name)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def as_user_command(cmd: list[str], user: OsUser, euid: int,
                    which: Callable[[str], str | None] = shutil.which) -> list[str]:
    """cmd run as user: directly when we are that user, else through runuser, setpriv or su (as root)."""
    if euid == user.uid:
        return list(cmd)
    if euid != 0:
        raise PgreplError(f"os_user: the module runs as uid {euid} and cannot run {cmd[0]} as {user.name!r}: "
                          "run the task as root (become: true) or as that user")
    runuser = find_tool("runuser", which)
    if runuser:
        return [runuser, "-u", user.name, "--", *cmd]
    setpriv = find_tool("setpriv", which)
    if setpriv:
        return [setpriv, f"--reuid={user.uid}", f"--regid={user.gid}", "--init-groups", "--", *cmd]
    su_tool = find_tool("su", which)
    if su_tool:
        return [su_tool, "-s", "/bin/sh", user.name, "-c", "exec " + " ".join(shlex.quote(part) for part in cmd)]
    raise PgreplError(f"os_user: none of runuser, setpriv or su is installed: cannot run {cmd[0]} as {user.name!r}")


def clean_env(user: OsUser) -> dict[str, str]:
    """The environment of commands run as os_user: no PG* variable (no PGPASSWORD), C locale, their home."""
    return {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C", "LANG": "C", "HOME": user.home}


def scrub_libpq_env(environ: Any) -> list[str]:
    """Remove PG* variables from this process, so a connection test uses exactly the given options."""
    removed = sorted(key for key in list(environ) if key.startswith("PG"))
    for key in removed:
        del environ[key]
    return removed


def user_can(user: OsUser, test_flag: str, path: str, euid: int) -> bool:
    """Whether `test <flag> path` succeeds as the user (ACLs and every parent's x bit included)."""
    test_bin = find_tool("test") or "/usr/bin/test"
    cmd = as_user_command([test_bin, test_flag, path], user, euid)
    try:
        proc = subprocess.run(cmd, capture_output=True, env=clean_env(user), timeout=HELPER_TIMEOUT, check=False,
                              cwd="/", stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return False
    return proc.returncode == 0


@dataclass(frozen=True)
class CommandOutcome:
    returncode: int
    lines: list[str]
    timed_out: bool


# prctl(2) option: the signal a process gets when the thread that started it ends (Linux).
PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> Callable[[], None] | None:
    """A preexec_fn that makes the child get SIGKILL when this process ends, however it ends (a module killed
    with its play keeps no pg_basebackup or pg_rewind writing behind it), or None where prctl does not exist.
    Runs in the child after its uid changed (Popen's user=), so the setting survives until exec and past it."""
    if not sys.platform.startswith("linux"):
        return None

    def setup() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # this process ended before the setting took: end with it
            os._exit(127)

    return setup


def run_with_timeout(cmd: list[str], timeout: int, env: dict[str, str],
                     credentials: OsUser | None = None,
                     on_line: Callable[[str], None] | None = None) -> CommandOutcome:
    """Run cmd in its own process group, stdout and stderr merged; kill the whole group at the deadline. The child
    dies with this process (die_with_parent); with credentials (as root), it runs as that user without a wrapper
    process between the two. on_line gets each output line (ended by a newline or a carriage return) as it comes."""
    ids: dict[str, Any] = {}
    if credentials is not None:
        ids = {"user": credentials.uid, "group": credentials.gid,
               "extra_groups": os.getgrouplist(credentials.name, credentials.gid)}
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                env=env, cwd="/", start_new_session=True, preexec_fn=die_with_parent(os.getpid()),
                                **ids)
    except OSError as exc:
        raise PgreplError(f"cannot run {cmd[0]}: {exc.strerror or exc}") from None
    timed_out = False
    if on_line is None:
        try:
            output, _err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_group(proc)
            output, _err = proc.communicate()
    else:
        output, timed_out = _read_lines(proc, timeout, on_line)
    text = (output or b"").decode("utf-8", "replace").replace("\r", "\n")
    lines = [line.rstrip() for line in text.split("\n") if line.strip()]
    return CommandOutcome(proc.returncode if proc.returncode is not None else -1, lines, timed_out)


def _read_lines(proc: subprocess.Popen, timeout: int, on_line: Callable[[str], None]) -> tuple[bytes, bool]:
    """All of proc's output, each line handed to on_line as it arrives; (output, timed out)."""
    deadline = time.monotonic() + timeout
    stream = proc.stdout
    if stream is None:  # Popen was given stdout=PIPE: not reached
        raise PgreplError(f"cannot read the output of {proc.args!r}")
    chunks: list[bytes] = []
    pending = b""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            _kill_group(proc)
            chunks.append(stream.read() or b"")
            proc.wait()
            return b"".join(chunks), True
        ready, _w, _x = select.select([stream], [], [], min(left, 1.0))
        if not ready:
            continue
        chunk = os.read(stream.fileno(), 65536)
        if not chunk:
            break
        chunks.append(chunk)
        pending += chunk
        *complete, pending = re.split(rb"[\r\n]", pending)
        for raw in complete:
            if raw.strip():
                on_line(raw.decode("utf-8", "replace").rstrip())
    if pending.strip():
        on_line(pending.decode("utf-8", "replace").rstrip())
    stream.close()
    try:
        proc.wait(timeout=max(deadline - time.monotonic(), 1))
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        return b"".join(chunks), True
    return b"".join(chunks), False


def run_as(user: OsUser, cmd: list[str], timeout: int, euid: int | None = None,
           on_line: Callable[[str], None] | None = None) -> CommandOutcome:
    """cmd as the user, with clean_env and the deadline of run_with_timeout. As root on Python 3.9+ the child takes
    the user's identity itself (so it is this process's own child and dies with it); elsewhere through
    as_user_command's wrapper (runuser forks, and its child would outlive a killed module)."""
    euid = os.geteuid() if euid is None else euid
    if euid == 0 and user.uid != 0 and sys.version_info >= (3, 9):
        return run_with_timeout(list(cmd), timeout, clean_env(user), credentials=user, on_line=on_line)
    return run_with_timeout(as_user_command(cmd, user, euid), timeout, clean_env(user), on_line=on_line)


def _kill_group(proc: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except OSError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue
