# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The server of a data directory stopped, and its shutdown checkpoint read from pg_control, in one call.

In order; everything before step 4 only reads:

1. the options (a bad unit name, a mode the chosen way of stopping cannot honour, a bad timeout are refused);
2. the data directory: PG_VERSION, postmaster.pid (is a live postmaster running) and pg_control through
   ``pg_controldata`` of the directory's own major;
3. how it will be stopped. With a systemd unit: systemctl is there, the unit is known, and (when the server runs)
   its postmaster is in that unit's cgroup, so that the stop cannot hit another server. Without one: pg_ctl of the
   data directory's major, and an os_user that owns the data directory and can be switched to;
4. outside check mode and only when a postmaster runs: ``systemctl stop <unit>`` or
   ``pg_ctl stop -D <data_dir> -m <mode> -w -t <timeout>`` as os_user; then pg_control is read again. A server
   still running then is a failure, and so (with require_clean) is a cluster state other than a clean shutdown.

A data directory found stopped is not touched: its pg_control facts are returned with changed=false, so a re-run
of a switchover play reads the same shutdown checkpoint again.
"""

from __future__ import annotations

import time
from typing import Any

from ansible_collections.pgrepl.streaming.plugins.module_utils._changes import ChangeTracker, finish
from ansible_collections.pgrepl.streaming.plugins.module_utils._datadir import CLEAN_STATES
from ansible_collections.pgrepl.streaming.plugins.module_utils._errors import PgreplError
from ansible_collections.pgrepl.streaming.plugins.module_utils._module import ModuleSpec
from ansible_collections.pgrepl.streaming.plugins.module_utils._shutdown import (
    STOP_MODES,
    StopRequest,
    load_state_problem,
    pg_ctl_command,
    predicted_state,
    read_control,
    still_running_message,
    stop_and_confirm,
    stop_plan,
    stop_request,
    unclean_problem,
    unit_problem,
)
from ansible_collections.pgrepl.streaming.plugins.module_utils._systemd import read_cgroup, service_of

# The stop itself lives in _shutdown.py (handover stops a server the same way); its names are also this module's.
__all__ = [
    "OUTCOME_ALREADY_STOPPED", "OUTCOME_STOPPED", "OUTCOME_WOULD_STOP", "SERVER_STOP_SPEC", "StopRequest",
    "load_state_problem", "pg_ctl_command", "plan_outcome", "predicted_state", "run_server_stop",
    "still_running_message", "stop_request", "unclean_problem", "unit_problem",
]

OUTCOME_STOPPED = "stopped"
OUTCOME_ALREADY_STOPPED = "already_stopped"
OUTCOME_WOULD_STOP = "would_stop"

SERVER_STOP_SPEC = ModuleSpec({
    "data_dir": {"type": "path", "required": True},
    "bin_dir": {"type": "path"},
    "service": {"type": "str"},
    "mode": {"type": "str", "default": "fast", "choices": list(STOP_MODES)},
    "os_user": {"type": "str", "default": "postgres"},
    "timeout": {"type": "int", "default": 300},
    "require_clean": {"type": "bool", "default": True},
}, with_connection=False)


def plan_outcome(running: bool, check_mode: bool) -> tuple[str, bool]:
    """(outcome, changed): only a running server is stopped, and check mode only says it would be."""
    if not running:
        return OUTCOME_ALREADY_STOPPED, False
    if check_mode:
        return OUTCOME_WOULD_STOP, True
    return OUTCOME_STOPPED, True


def _facts_into(result: dict[str, Any], facts: dict[str, Any]) -> None:
    for key in ("cluster_state", "checkpoint_lsn", "redo_lsn", "timeline", "system_identifier"):
        result[key] = facts.get(key)


def run_server_stop(module: Any) -> dict[str, Any]:
    """The module body: validate, read, check the way of stopping, then stop (not in check mode) and read again."""
    started = time.monotonic()
    request = stop_request(module.params)
    before, warnings = read_control(request)
    running = bool(before.get("postmaster_running"))
    plan = stop_plan(request, before)
    outcome, changed = plan_outcome(running, module.check_mode)
    if running and not request.service:
        unit = service_of(read_cgroup(before.get("postmaster_pid")))
        if unit:
            warnings.append(f"the server on data_dir runs under the systemd unit {unit}: pg_ctl stops it behind "
                            f"systemd's back and leaves that unit failed; set service: {unit} to stop it through "
                            "systemd")

    result: dict[str, Any] = {
        "changed": changed,
        "outcome": outcome,
        "msg": "",
        "data_dir": request.data_dir,
        "was_running": running,
        "stopped": not running,
        "command": plan.shown,
        "log": [],
        "duration_seconds": 0.0,
    }
    _facts_into(result, before)
    tracker = ChangeTracker(module.check_mode)
    tracker.record("running", running, False)
    state = before.get("cluster_state")
    after_state = predicted_state(state, request.mode) if running else state
    tracker.record("cluster_state", state, after_state)

    if not running:
        problem = unclean_problem(request.data_dir, state, stopped_now=False) if request.require_clean else None
        if problem:
            raise PgreplError(problem)
        result["msg"] = (f"no server runs on data_dir {request.data_dir!r} ({state}, latest checkpoint at "
                         f"{before.get('checkpoint_lsn')} on timeline {before.get('timeline')}): nothing to stop")
        return finish(module, result, tracker, warnings, started)
    if outcome == OUTCOME_WOULD_STOP:
        result["msg"] = (f"a server runs on data_dir {request.data_dir!r} (postmaster pid "
                         f"{before.get('postmaster_pid')}): it would be stopped with {plan.shown}")
        return finish(module, result, tracker, warnings, started)

    result["log"], after = stop_and_confirm(request, plan, warnings)
    _facts_into(result, after)
    result["stopped"] = True
    tracker.record("cluster_state", state, after.get("cluster_state"))
    if request.require_clean:
        problem = unclean_problem(request.data_dir, after.get("cluster_state"), stopped_now=True)
        if problem:
            raise PgreplError(problem)
    clean = after.get("cluster_state") in CLEAN_STATES
    which = "shutdown checkpoint" if clean else "latest checkpoint (no shutdown one)"
    result["msg"] = (f"stopped the server on data_dir {request.data_dir!r} with {plan.shown}: "
                     f"{after.get('cluster_state')}, {which} at {after.get('checkpoint_lsn')} on timeline "
                     f"{after.get('timeline')}")
    return finish(module, result, tracker, warnings, started)
