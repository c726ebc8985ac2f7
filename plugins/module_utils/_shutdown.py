# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Stopping the server of a data directory: how (its systemd unit, checked against the postmaster's cgroup, or
pg_ctl of the data directory's major as its owner), the stop itself, the proof that the postmaster is gone, and
pg_control read again. server_stop and handover (which stops the old primary of a switchover) use it.

Everything before :func:`stop_and_confirm` only reads; the plans refuse (naming the option) before anything runs.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from typing import Any, Callable

from ansible_collections.pgrepl.streaming.plugins.module_utils._datadir import (
    CLEAN_STATES,
    IN_ARCHIVE_RECOVERY,
    SHUT_DOWN,
    SHUT_DOWN_IN_RECOVERY,
    read_data_dir,
    read_postmaster,
)
from ansible_collections.pgrepl.streaming.plugins.module_utils._errors import PgreplError
from ansible_collections.pgrepl.streaming.plugins.module_utils._options import (
    require_bool,
    require_choice,
    require_int,
    validate_abs_path,
    validate_data_dir_path,
)
from ansible_collections.pgrepl.streaming.plugins.module_utils._osuser import become_os_user
from ansible_collections.pgrepl.streaming.plugins.module_utils._pgctl import find_pg_ctl, run_pg_ctl
from ansible_collections.pgrepl.streaming.plugins.module_utils._systemd import (
    cgroup_units,
    find_systemctl,
    read_cgroup,
    show_unit,
    systemctl,
    unit_file_name,
    validate_unit_name,
)

STOP_MODES = ("fast", "smart", "immediate")
# What a systemd unit's own stop command does: Debian's postgresql@.service runs pg_ctlcluster -m fast, the PGDG
# (RHEL) unit's KillSignal=SIGINT is a fast shutdown. Anything else needs pg_ctl (no service).
UNIT_MODES = ("fast",)
TIMEOUT_MAX = 7 * 24 * 3600

# What to do instead when a unit is given on a host without systemctl.
NO_SYSTEMCTL = "leave service unset to stop the server with pg_ctl. Nothing was stopped"


# ---------------------------------------------------------------------------------------------------------------
# options
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StopRequest:
    """The options, validated (nothing was read or run to build them)."""

    data_dir: str
    service: str | None = None
    mode: str = "fast"
    os_user: str = "postgres"
    timeout: int = 300
    require_clean: bool = True
    bin_dir: str | None = None


def stop_request(params: dict[str, Any]) -> StopRequest:
    """Validate every option before anything is read or run."""
    data_dir = validate_data_dir_path(params.get("data_dir"))
    bin_dir = params.get("bin_dir")
    if bin_dir is not None:
        bin_dir = validate_abs_path("bin_dir", bin_dir)
    service = validate_unit_name(params.get("service"), "service")
    mode = require_choice(params, "mode", STOP_MODES, "fast")
    if service and mode not in UNIT_MODES:
        raise PgreplError(f"mode: {mode!r} cannot be used with service {service!r}: the unit's own stop command "
                          "decides how the server stops, and the usual ones (Debian's postgresql@.service with "
                          "pg_ctlcluster -m fast, the PGDG unit with SIGINT) make a fast shutdown. Leave mode at "
                          f"fast, or leave service unset to stop the server with pg_ctl -m {mode}")
    require_clean = require_bool(params, "require_clean", True)
    if mode == "immediate" and require_clean:
        raise PgreplError("mode: 'immediate' stops the server without a shutdown checkpoint, so its cluster state "
                          "is never a clean 'shut down' and require_clean would fail after the stop: set "
                          "require_clean: false to stop it that way (the next start runs crash recovery)")
    os_user = params.get("os_user") or "postgres"
    if not isinstance(os_user, str):
        raise PgreplError(f"os_user: {os_user!r} is not a user name")
    return StopRequest(
        data_dir=data_dir,
        service=service,
        mode=mode,
        os_user=os_user,
        timeout=require_int(params, "timeout", 300, 1, TIMEOUT_MAX, "a number of seconds"),
        require_clean=require_clean,
        bin_dir=bin_dir,
    )


# ---------------------------------------------------------------------------------------------------------------
# decisions (pure)
# ---------------------------------------------------------------------------------------------------------------


def predicted_state(cluster_state: str | None, mode: str) -> str | None:
    """The cluster state pg_control will show after stopping a running server this way."""
    if mode == "immediate":
        return cluster_state  # no shutdown checkpoint: pg_control keeps what it says now
    return SHUT_DOWN_IN_RECOVERY if cluster_state == IN_ARCHIVE_RECOVERY else SHUT_DOWN


def unclean_problem(data_dir: str, cluster_state: str | None, stopped_now: bool) -> str | None:
    """Why require_clean refuses this state (None when it is a clean shutdown)."""
    if cluster_state in CLEAN_STATES:
        return None
    how = ("was stopped, but pg_control" if stopped_now
           else "has no running server, and pg_control")
    return (f"require_clean: data_dir {data_dir!r} {how} says 'Database cluster state: {cluster_state}', not "
            f"'{SHUT_DOWN}' or '{SHUT_DOWN_IN_RECOVERY}': it was not shut down cleanly, so its latest checkpoint is "
            "not the end of its WAL. The data directory is left as it is; start the server once so that it "
            "finishes crash recovery and stop it again, or set require_clean: false to accept it")


def unit_problem(unit: str, data_dir: str, pid: int | None, cgroup_text: str | None) -> str | None:
    """Why stopping the unit would not stop the postmaster pid, from its cgroup; None when it would or when the
    cgroup does not tell (no systemd unit on its path: the check after the stop still catches a wrong unit)."""
    if pid is None or cgroup_text is None:
        return None
    name = unit_file_name(unit)
    units = cgroup_units(cgroup_text)
    if not units or name in units:
        return None
    return (f"service: the server on data_dir {data_dir!r} (postmaster pid {pid}) runs in {units[-1]}, not in "
            f"{name}: stopping {unit!r} might leave it running, or stop other servers with it. Give the unit that "
            "runs this data directory, or leave service unset to stop it with pg_ctl. Nothing was stopped")


def load_state_problem(unit: str, props: dict[str, str]) -> str | None:
    """A refusal when systemd does not know the unit."""
    load_state = props.get("LoadState", "")
    if load_state in ("not-found", "bad-setting", "error"):
        return (f"service: systemd has no usable unit {unit!r} (LoadState={load_state}): give the unit that runs "
                "data_dir (for example postgresql@15-main or postgresql-16). Nothing was stopped")
    return None


def pg_ctl_command(binary: str, request: StopRequest) -> list[str]:
    """pg_ctl stop that waits (-w) at most timeout seconds (-t) for the server to go."""
    return [binary, "stop", "-D", request.data_dir, "-m", request.mode, "-w", "-t", str(request.timeout)]


# ---------------------------------------------------------------------------------------------------------------
# reading the data directory and the unit
# ---------------------------------------------------------------------------------------------------------------


def read_control(request: StopRequest) -> tuple[dict[str, Any], list[str]]:
    """(data directory facts with pg_control read, warnings); refuses when pg_controldata cannot be found."""
    facts, warnings = read_data_dir(request.data_dir, request.bin_dir)
    if facts.get("pg_controldata") is None:
        raise PgreplError(f"bin_dir: no pg_controldata of PostgreSQL {facts.get('pg_version')} was found, so the "
                          "shutdown checkpoint of data_dir cannot be read: set bin_dir to that version's binaries. "
                          "Nothing was stopped")
    return facts, warnings


# ---------------------------------------------------------------------------------------------------------------
# the stop
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StopPlan:
    """How the server is stopped: the command as reported, and the callable that runs it (output lines)."""

    shown: str
    execute: Callable[[], list[str]]


def systemd_plan(request: StopRequest, facts: dict[str, Any]) -> StopPlan:
    """Refusals of the unit path (no systemctl, unknown unit, a unit that does not run this postmaster)."""
    unit = request.service or ""
    systemctl_path = find_systemctl("service", unit, NO_SYSTEMCTL)
    try:
        props = show_unit(systemctl_path, unit, "service")
    except PgreplError as exc:
        raise PgreplError(f"{exc}; nothing was stopped") from None
    problem = load_state_problem(unit, props)
    if problem is None and facts.get("postmaster_running"):
        pid = facts.get("postmaster_pid")
        problem = unit_problem(unit, request.data_dir, pid, read_cgroup(pid))
    if problem:
        raise PgreplError(problem)

    def execute() -> list[str]:
        systemctl("stop", unit, "service", request.timeout, NO_SYSTEMCTL)
        return []

    return StopPlan(shown=f"systemctl stop {unit}", execute=execute)


def pg_ctl_plan(request: StopRequest, facts: dict[str, Any]) -> StopPlan:
    """Refusals of the pg_ctl path (no such user, a user that does not own data_dir, no pg_ctl of the major)."""
    user, euid = become_os_user(request.os_user)
    owner = os.stat(request.data_dir).st_uid
    if owner != user.uid:
        raise PgreplError(f"os_user: data_dir {request.data_dir!r} belongs to uid {owner}, not to {user.name!r} "
                          f"(uid {user.uid}), and pg_ctl must run as the server's owner: set os_user to it. "
                          "Nothing was stopped")
    binary = find_pg_ctl(str(facts["pg_version"]), request.bin_dir)
    cmd = pg_ctl_command(binary, request)

    def execute() -> list[str]:
        return run_pg_ctl(cmd, user, request.timeout, f"pg_ctl stop -m {request.mode}", euid=euid)

    return StopPlan(shown=shlex.join(cmd), execute=execute)


def still_running_message(request: StopRequest, pid: int | None) -> str:
    if request.service:
        why = (f"{request.service!r} is stopped but a server still runs on data_dir {request.data_dir!r} "
               f"(postmaster pid {pid}): that unit does not run this data directory")
    else:
        why = f"a server still runs on data_dir {request.data_dir!r} (postmaster pid {pid})"
    if request.mode == "smart":
        why += ("; in smart shutdown it refuses new connections and stops when the last session ends (or stop it "
                "again with mode: fast)")
    else:
        why += "; its shutdown may still be in progress"
    return why


def stop_and_confirm(request: StopRequest, plan: StopPlan, warnings: list[str]) -> tuple[list[str], dict[str, Any]]:
    """Run the stop, then prove the postmaster is gone and read pg_control again: (the stop's output lines, the data
    directory facts after it). A stop that failed while no server runs any more counts as done (with a warning); a
    postmaster still running is a failure, whatever the stop command said."""
    log: list[str] = []
    try:
        log = plan.execute()
    except PgreplError as exc:
        postmaster = read_postmaster(request.data_dir)
        if postmaster["postmaster_running"]:
            raise PgreplError(f"{exc}; {still_running_message(request, postmaster['postmaster_pid'])}") from None
        warnings.append(f"{exc}; but no server runs on data_dir any more, so the stop is taken as done")
    after, after_warnings = read_control(request)
    warnings.extend(warning for warning in after_warnings if warning not in warnings)
    if after.get("postmaster_running"):
        raise PgreplError(still_running_message(request, after.get("postmaster_pid")) + "; nothing else was done")
    return log, after


def stop_plan(request: StopRequest, facts: dict[str, Any]) -> StopPlan:
    """The way this server is stopped (its unit when service is given, else pg_ctl), refused before anything runs."""
    return systemd_plan(request, facts) if request.service else pg_ctl_plan(request, facts)
