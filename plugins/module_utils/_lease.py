# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One ansible-playbook run at a time on a node: a lease file per host, taken by node_prepare before anything changes.

The lease names its run (controller host, ansible-playbook PID and that process's start) and lasts from node_prepare
to the release play at the end of each playbook. A run that dies never releases it: on the same controller a holder
whose process is gone is stale at once (the action plugin checks, on the controller, where that process lives); from
another controller only its expiry frees it, or `-e pgrepl_break_lease=<run id>`.

The file is read and changed under an flock held only for that moment (never for the run: the module ends long
before the run does); an empty file is a free lease. Unlike _lock.py (one module on one data directory, held while
that module runs), this one spans many modules of one run.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ansible_collections.pgrepl.streaming.plugins.module_utils._errors import PgreplError

LEASE_PATH = "/var/lib/pgrepl/run.lease"


def cluster_lease_path(cluster: str, default_cluster: str = "default") -> str:
    """The lease file of a node of ``cluster`` (a checked pgrepl_cluster_id): LEASE_PATH for the default cluster, its
    own file for any other, so that a run on one cluster never holds a host another cluster also runs on."""
    return LEASE_PATH if cluster == default_cluster else f"/var/lib/pgrepl/run.{cluster}.lease"


# The fields of a run, filled on the controller by the action plugin (plugins/action/node_prepare.py).
RUN_FIELDS = ("run_id", "controller", "user", "pid", "pid_start", "playbook")

FREE = "free"          # no lease, or a released one: take it
SAME = "same"          # this run holds it already: renew its expiry
BROKEN = "broken"      # another run's, named by lease_break: take it over
EXPIRED = "expired"    # another run's, past its expiry: take it over
HELD = "held"          # another run's, live: refuse


class LeaseHeld(PgreplError):
    """Another run holds the node's lease; ``holder`` is its record."""

    def __init__(self, message: str, holder: dict[str, Any]) -> None:
        super().__init__(message)
        self.holder = holder


def decide(current: dict[str, Any] | None, run_id: str, now: float, break_run: str | None = None) -> str:
    """What a run does with the lease it found (current: the record in the file, None when free)."""
    if not current or not current.get("run_id"):
        return FREE
    if current["run_id"] == run_id:
        return SAME
    if break_run and break_run == current["run_id"]:
        return BROKEN
    try:
        expires = float(current.get("expires", 0))
    except (TypeError, ValueError):
        expires = 0.0
    return EXPIRED if expires <= now else HELD


def describe(holder: dict[str, Any]) -> str:
    """Who holds the lease, for people: controller, user, PID, playbook, since and until."""
    def stamp(key: str) -> str:
        try:
            return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(float(holder[key])))
        except (KeyError, TypeError, ValueError):
            return "?"
    return (f"run {holder.get('run_id', '?')!r}: ansible-playbook {holder.get('playbook') or '?'} of "
            f"{holder.get('user') or '?'}@{holder.get('controller') or '?'}, pid {holder.get('pid', '?')}, since "
            f"{stamp('since')}, lease until {stamp('expires')}")


def stale_here(holder: dict[str, Any], controller: str, pid_start: Callable[[int], str | None]) -> bool:
    """Whether the holder is a run of this controller whose ansible-playbook is gone: no such PID, or the PID now
    belongs to a process started at another time (pid_start gives the start of a live PID, '' when unknown, None
    for no such process). A holder of another controller is never stale from here."""
    if holder.get("controller") != controller:
        return False
    try:
        pid = int(holder.get("pid"))
    except (TypeError, ValueError):
        return True
    start = pid_start(pid)
    if start is None:
        return True
    recorded = holder.get("pid_start") or ""
    return bool(start and recorded and start != recorded)


def process_start(pid: int) -> str | None:
    """When the process pid started, as '<boot id>/<clock ticks after boot>' (a reboot changes it too); None when
    there is no such process, '' when it lives but its start cannot be read (no /proc)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as handle:
            fields = handle.read().rpartition(")")[2].split()
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as handle:
            boot = handle.read().strip()
        return f"{boot}/{fields[19]}"  # field 22 of stat(5), starttime; fields[0] is field 3
    except FileNotFoundError:
        pass
    except (OSError, IndexError):
        return ""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return ""
    return ""


def _read(fd: int) -> dict[str, Any] | None:
    text = os.pread(fd, 65536, 0).decode("utf-8", "replace").strip()
    if not text:
        return None
    try:
        record = json.loads(text)
    except ValueError:
        record = None
    # A file that is not a record of ours (cut short, edited) is held by nobody we can name: it expires at once.
    return record if isinstance(record, dict) else {"run_id": "unreadable", "expires": 0}


def _write(fd: int, record: dict[str, Any] | None) -> None:
    data = json.dumps(record, sort_keys=True).encode() if record else b""
    os.ftruncate(fd, 0)
    if data:
        os.pwrite(fd, data, 0)
    os.fsync(fd)


def _open(path: str, write: bool, create: bool) -> int | None:
    """The lease file, open and flocked (exclusive to write, shared to read); None when it is missing and not to
    be made."""
    try:
        if create:
            os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
        flags = (os.O_RDWR if write else os.O_RDONLY) | (os.O_CREAT if create else 0)
        fd = os.open(path, flags | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    except FileNotFoundError:
        if create:
            raise PgreplError(f"lease_path: cannot create the lease file {path!r}") from None
        return None
    except OSError as exc:
        raise PgreplError(f"lease_path: cannot open the lease file {path!r}: {exc.strerror or exc}") from None
    # Held for a read and a write only, never across a module call: waiting is short.
    fcntl.flock(fd, fcntl.LOCK_EX if write else fcntl.LOCK_SH)
    return fd


def take(path: str, run: dict[str, Any], seconds: int, break_run: str | None = None,
         check_mode: bool = False, now: float | None = None) -> tuple[dict[str, Any], list[str]]:
    """Take or renew the lease for run (RUN_FIELDS); raises LeaseHeld naming a live holder of another run, with
    nothing changed. Check mode reads only: a live holder is a warning there (a check changes nothing, but what it
    predicts may be stale by the time that run ends). Returns (what happened, warnings)."""
    now = time.time() if now is None else now
    missing = [field for field in ("run_id", "controller") if not run.get(field)]
    if missing:
        raise PgreplError(f"lease_run: {', '.join(missing)} missing (the action plugin fills it: call the module "
                          "as pgrepl.streaming.node_prepare, not through another action)")
    fd = _open(path, write=not check_mode, create=not check_mode)
    try:
        current = _read(fd) if fd is not None else None
        decision = decide(current, run["run_id"], now, break_run)
        warnings: list[str] = []
        if decision == HELD:
            if not check_mode:
                raise LeaseHeld(f"another run works on this node now ({describe(current or {})}; lease file "
                                f"{path!r}): nothing was changed", current or {})
            warnings.append(f"another run works on this node now ({describe(current or {})}); a real run would "
                            "be refused")
        elif decision in (BROKEN, EXPIRED):
            # The action plugin says why it breaks a lease (its run has ended); otherwise the user named it.
            why = (run.get("break_reason") or "as asked (lease_break)") if decision == BROKEN else "its lease expired"
            warnings.append(f"took over the lease of {describe(current or {})}: {why}; if that run still works on "
                            "this node, stop it and check the node")
        record = {**{field: run.get(field) for field in RUN_FIELDS},
                  "since": current.get("since", now) if decision == SAME and current else now,
                  "renewed": now, "expires": now + seconds}
        if check_mode:
            return {"path": path, "state": "checked", "decision": decision, "holder": current}, warnings
        _write(fd, record)
        return {"path": path, "state": "renewed" if decision == SAME else "taken", "decision": decision,
                "holder": record, "replaced": current if decision in (BROKEN, EXPIRED) else None}, warnings
    finally:
        if fd is not None:
            os.close(fd)


def release_with_last_call(lease: Mapping[str, Any] | None, later_calls: Iterable[str]) -> dict[str, str] | None:
    """What a node's last module call of a run is given to let go of the lease in the same round trip (node_apply's
    release_lease): the lease file and this run's id, when this run took or renewed it (not in check mode, where it
    is only read) and no later step of the playbook calls a module on the node (`later_calls` names those that will,
    from the facts gathered at the start); None when the release play has to do it."""
    if not isinstance(lease, Mapping) or lease.get("state") not in ("taken", "renewed"):
        return None
    if list(later_calls):
        return None
    holder = lease.get("holder") or {}
    if not lease.get("path") or not holder.get("run_id"):
        return None
    return {"path": str(lease["path"]), "run_id": str(holder["run_id"])}


def path_problem(path: str, option: str = "lease_path") -> str | None:
    """Why path cannot name a lease file (None when it can): a relative one would be resolved against the module's
    temporary working directory, a different file on every call, so two runs would never see each other."""
    if not os.path.isabs(path):
        return f"{option}: {path!r} is not an absolute path"
    return None


def release_option_problem(path: str, run_id: str, option: str = "release_lease") -> str | None:
    """Why a lease to release, given as an option, cannot be one (None when it can): the file must be named by an
    absolute path and the run by its id."""
    problem = path_problem(path, f"{option}.path")
    if problem:
        return f"{problem} (the lease file, node_prepare's lease.path)"
    if not run_id.strip():
        return f"{option}.run_id: is empty (this run's id, node_prepare's lease.holder.run_id)"
    return None


def release(path: str, run_id: str, check_mode: bool = False) -> tuple[dict[str, Any], list[str]]:
    """Let go of the lease this run holds (the file is emptied, not removed: a removed file could be flocked by two
    takers at once). A lease of another run is left alone, with a warning."""
    fd = _open(path, write=not check_mode, create=False)
    if fd is None:
        return {"path": path, "state": "free", "released": False}, []
    try:
        current = _read(fd)
        if not current:
            return {"path": path, "state": "free", "released": False}, []
        if current.get("run_id") != run_id:
            return ({"path": path, "state": "other", "released": False, "holder": current},
                    [f"the lease of this node is not this run's, left as it is ({describe(current)})"])
        if not check_mode:
            _write(fd, None)
        return {"path": path, "state": "released", "released": True}, []
    finally:
        os.close(fd)
