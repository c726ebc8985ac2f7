# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The server of a data directory started (or restarted) and waited for, in one call.

In order; everything before step 4 only reads:

1. the options (a bad unit name, a relative path, a timeout out of range, pg_ctl without a log file are refused);
2. the data directory: PG_VERSION and postmaster.pid (does a live postmaster run);
3. what to do: start a stopped server; restart a running one only with state=restarted (node_apply asks for that
   when an earlier item of the same call wrote a setting that waits for a restart); leave a running one alone;
4. outside check mode: ``systemctl start|restart <unit>`` (and ``systemctl enable`` with enabled=true), or
   ``pg_ctl start|restart -D <data_dir> -w -l <log_file>`` as os_user without a unit;
5. the wait: until the server accepts connections (wait_for=accepting) or its WAL receiver streams
   (wait_for=streaming), at most timeout seconds; a timeout fails with the last thing the server said.
"""

from __future__ import annotations

import os
import shlex
import time
from dataclasses import dataclass
from typing import Any, Callable

from ansible_collections.pgrepl.streaming.plugins.module_utils._connection import (
    connect,
    connection_argument_spec,
    query_one,
)
from ansible_collections.pgrepl.streaming.plugins.module_utils._datadir import read_pg_version, read_postmaster
from ansible_collections.pgrepl.streaming.plugins.module_utils._errors import PgreplConnectionError, PgreplError
from ansible_collections.pgrepl.streaming.plugins.module_utils._module import ModuleSpec
from ansible_collections.pgrepl.streaming.plugins.module_utils._options import (
    require_bool,
    require_choice,
    require_int,
    validate_abs_path,
    validate_data_dir_path,
)
from ansible_collections.pgrepl.streaming.plugins.module_utils._osuser import lookup_os_user
from ansible_collections.pgrepl.streaming.plugins.module_utils._pgctl import find_pg_ctl, run_pg_ctl, start_command
from ansible_collections.pgrepl.streaming.plugins.module_utils._systemd import (
    systemctl,
    unit_enabled,
    validate_unit_name,
)

STATES = ("started", "restarted")
WAITS = ("accepting", "streaming", "none")
TIMEOUT_MAX = 24 * 3600
# Seconds between two looks at the server while waiting.
POLL_INTERVAL = 0.25

OUTCOME_STARTED = "started"
OUTCOME_RESTARTED = "restarted"
OUTCOME_RUNNING = "already_running"
# What to do instead when a unit is given on a host without systemctl.
NO_SYSTEMCTL = "leave service out and give log_file to start the server with pg_ctl"

SERVER_START_SPEC = ModuleSpec({
    "data_dir": {"type": "path", "required": True},
    "service": {"type": "str"},
    "bin_dir": {"type": "path"},
    "os_user": {"type": "str", "default": "postgres"},
    "log_file": {"type": "path"},
    "state": {"type": "str", "default": "started", "choices": list(STATES)},
    "enabled": {"type": "bool"},
    "wait_for": {"type": "str", "default": "accepting", "choices": list(WAITS)},
    "timeout": {"type": "int", "default": 120},
})


@dataclass(frozen=True)
class StartRequest:
    data_dir: str
    service: str | None
    bin_dir: str | None
    os_user: str
    log_file: str | None
    state: str
    enabled: bool | None
    wait_for: str
    timeout: int


def start_request(params: dict[str, Any]) -> StartRequest:
    """The validated options; every refusal names the option and the value."""
    data_dir = validate_data_dir_path(params.get("data_dir"))
    service = validate_unit_name(params.get("service"), "service")
    state = require_choice(params, "state", STATES, "started")
    wait_for = require_choice(params, "wait_for", WAITS, "accepting")
    log_file = params.get("log_file")
    if log_file:
        log_file = validate_abs_path("log_file", log_file)
    if not service and not log_file:
        raise PgreplError("log_file: required without service (pg_ctl sends the server's output there); give "
                          "service to start the server through its systemd unit")
    enabled = params.get("enabled")
    if enabled is not None:
        enabled = require_bool(params, "enabled")
        if not service:
            raise PgreplError("enabled: needs service (only a systemd unit can be enabled at boot)")
    bin_dir = params.get("bin_dir")
    return StartRequest(data_dir=data_dir, service=service,
                        bin_dir=validate_abs_path("bin_dir", bin_dir) if bin_dir else None,
                        os_user=params.get("os_user") or "postgres", log_file=log_file, state=state,
                        enabled=enabled, wait_for=wait_for,
                        timeout=require_int(params, "timeout", 120, 1, TIMEOUT_MAX, "a number of seconds"))


def plan_action(running: bool, state: str) -> str | None:
    """'start', 'restart' or None (a running server is left alone unless state=restarted)."""
    if not running:
        return "start"
    return "restart" if state == "restarted" else None


def outcome_of(action: str | None, check_mode: bool) -> str:
    """What the result reports: started, restarted, already_running, or would_<action> in check mode."""
    if action is None:
        return OUTCOME_RUNNING
    done = OUTCOME_STARTED if action == "start" else OUTCOME_RESTARTED
    return f"would_{action}" if check_mode else done


def pg_ctl_command(binary: str, action: str, request: StartRequest) -> list[str]:
    """pg_ctl start|restart that waits (-w, -t) and sends the server's output to log_file (-l)."""
    return start_command(binary, action, request.data_dir, request.timeout, str(request.log_file))


def wait_query(wait_for: str) -> str:
    """What is asked of the server each time: it answers at all, or its WAL receiver's state."""
    if wait_for == "streaming":
        return ("SELECT coalesce((SELECT status FROM pg_catalog.pg_stat_wal_receiver LIMIT 1), "
                "CASE WHEN pg_catalog.pg_is_in_recovery() THEN 'no WAL receiver' ELSE 'not in recovery' END)")
    return "SELECT 'accepting'"


def wait_done(wait_for: str, answer: str | None) -> bool:
    return answer == wait_for


# The failed task's reason when the wait ran out (the standby role's failed.yml reads the primary's log then).
REASON_NOT_STREAMING = "not_streaming"
REASON_NOT_ACCEPTING = "not_accepting"


def timeout_reason(request: StartRequest) -> str:
    return REASON_NOT_STREAMING if request.wait_for == "streaming" else REASON_NOT_ACCEPTING


def timeout_message(request: StartRequest, last: str) -> str:
    target = "its WAL receiver streaming" if request.wait_for == "streaming" else "accepting connections"
    return (f"timeout: the server of {request.data_dir} was not {target} within {request.timeout}s "
            f"(last seen: {last})")


def wait_for_server(request: StartRequest, login: dict[str, Any], clock: Callable[[], float] = time.monotonic,
                    sleep: Callable[[float], None] = time.sleep) -> tuple[str, float]:
    """Poll until the wait is over: (what the server said last, seconds waited); PgreplError at the timeout."""
    started = clock()
    deadline = started + request.timeout
    query = wait_query(request.wait_for)
    last = "nothing yet"
    params = dict(login, connect_timeout=max(2, min(int(login.get("connect_timeout") or 10), 5)))
    while True:
        try:
            conn = connect(params)
            try:
                row = query_one(conn, query)
            finally:
                conn.close()
            last = str(row[0]) if row else "no answer"
            if wait_done(request.wait_for, last):
                return last, round(clock() - started, 2)
        except PgreplConnectionError as exc:
            if not exc.unreachable:
                # A wrong password or pg_hba line will not mend itself: say so now, not at the timeout.
                raise PgreplError(f"wait_for: the server of {request.data_dir} refuses the connection: {exc}") from None
            last = str(exc)
        if clock() >= deadline:
            raise PgreplError(timeout_message(request, last), reason=timeout_reason(request))
        sleep(POLL_INTERVAL)


def start_with_pg_ctl(action: str, request: StartRequest) -> str:
    """pg_ctl start|restart as os_user; the command shown."""
    binary = find_pg_ctl(read_pg_version(request.data_dir), request.bin_dir)
    cmd = pg_ctl_command(binary, action, request)
    run_pg_ctl(cmd, lookup_os_user(request.os_user), request.timeout, f"pg_ctl {action}", f" (see {request.log_file})")
    return shlex.join(cmd)


def run_server_start(module: Any) -> dict[str, Any]:
    """The module body (also run by node_apply): decide, start or restart, enable, wait."""
    request = start_request(module.params)
    if not os.path.isfile(os.path.join(request.data_dir, "PG_VERSION")):
        raise PgreplError(f"data_dir: {request.data_dir!r} is not a PostgreSQL data directory (no PG_VERSION)")
    running = bool(read_postmaster(request.data_dir)["postmaster_running"])
    action = plan_action(running, request.state)
    enable = bool(request.enabled) and not unit_enabled(str(request.service))
    result: dict[str, Any] = {"changed": action is not None or enable, "outcome": outcome_of(action, module.check_mode),
                              "enabled_now": enable, "restart_required": False, "waited_seconds": 0.0,
                              "last_seen": None}
    if module.check_mode:
        return result
    if enable:
        systemctl("enable", str(request.service), "service", 60, NO_SYSTEMCTL)
    if action is not None:
        if request.service:
            systemctl(action, request.service, "service", request.timeout, NO_SYSTEMCTL)
        else:
            start_with_pg_ctl(action, request)
    if request.wait_for != "none":
        login = {key: module.params.get(key) for key in connection_argument_spec()}
        result["last_seen"], result["waited_seconds"] = wait_for_server(request, login)
    return result
