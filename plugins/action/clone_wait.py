# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action pgrepl.streaming.clone_wait: wait for a copy running in the background (async, poll 0), printing its
progress on the controller as it goes, then return that task's result as its own.

Each round is one look on the host (the clone_wait module: it waits up to `interval` seconds and returns at once
when the task ended, with its result read from the job file); the sentence comes from module_utils/_progress.py.
"""

from __future__ import annotations

from typing import Any

from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.pgrepl.streaming.plugins.action.cluster_status import machine_readable_callback
from ansible_collections.pgrepl.streaming.plugins.module_utils._progress import (
    CLONE_WAIT_SPEC,
    WAIT_MAX_INTERVAL,
    WAIT_MIN_INTERVAL,
    describe_progress,
)

display = Display()

# Failed looks in a row (a lost connection) before the wait gives up; the copy itself goes on.
MAX_LOOK_FAILURES = 3


class ActionModule(ActionBase):
    """Loop: a look at the progress file and the job file, a line on the display; the task's result at the end."""

    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(CLONE_WAIT_SPEC)

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        del tmp
        task_vars = task_vars or {}
        _validation, args = self.validate_argument_spec(argument_spec=CLONE_WAIT_SPEC)
        interval = args["interval"]
        if not WAIT_MIN_INTERVAL <= interval <= WAIT_MAX_INTERVAL:
            result.update(failed=True, msg=f"interval: {interval!r} is not a number of seconds from "
                                           f"{WAIT_MIN_INTERVAL} to {WAIT_MAX_INTERVAL}")
            return result
        if self._task.check_mode:
            result.update(skipped=True, msg="check mode: no task runs in the background")
            return result
        # Where async_wrapper keeps the job's result (what async_status reads), for the become user.
        async_dir = self._remote_expand_user(self.get_shell_option("async_dir", default="~/.ansible_async"))
        results_file = self._connection._shell.join_path(async_dir, args["jid"])
        host = task_vars.get("inventory_hostname", "")
        quiet = machine_readable_callback()
        shown: list[str] = []
        failures = 0
        # The first look returns at once (a line as soon as the copy runs), the others wait up to interval.
        wait = WAIT_MIN_INTERVAL
        while True:
            look = self._execute_module(module_name="pgrepl.streaming.clone_wait", task_vars=task_vars,
                                        module_args={"jid": args["jid"], "data_dir": args["data_dir"],
                                                     "interval": wait, "results_file": results_file})
            if look.get("failed"):
                failures += 1
                if failures >= MAX_LOOK_FAILURES:
                    result.update(failed=True, progress=shown, msg=f"cannot follow the copy's job {args['jid']}: "
                                  f"{look.get('msg', 'the look on the host failed')}")
                    return result
                continue
            failures = 0
            report = look.get("report")
            if isinstance(report, dict):
                line = f"{host} - {describe_progress(report, ended=bool(look.get('ended')))}"
                shown.append(line)
                if not quiet:
                    display.display(line)
                wait = interval
            job = look.get("job")
            if isinstance(job, dict):
                result.update(job)
                result["progress"] = shown
                return result
