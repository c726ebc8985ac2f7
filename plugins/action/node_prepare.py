# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action pgrepl.streaming.node_prepare: the module, with the run's identity filled in on the controller.

A run is one ansible-playbook process: Ansible forks its workers from it (ansible-core's own ansible_playbook_pid is
os.getppid() of a worker too), so every task of one run names the same PID, and its start time (from /proc) tells a
PID reused later from it. When a lease is refused by a run of this same controller whose ansible-playbook is gone
(killed, or failed before its release play), the module is called once more to take that lease over, with a
warning: only here can that process be looked for.
"""

from __future__ import annotations

import os
import pwd
import socket
from typing import Any

from ansible import context
from ansible.plugins.action import ActionBase

from ansible_collections.pgrepl.streaming.plugins.module_utils._lease import process_start, stale_here

# -e pgrepl_break_lease=<run id>: take over the lease of that run (a run of another controller that is gone).
BREAK_VAR = "pgrepl_break_lease"


def this_run() -> dict[str, Any]:
    """The identity of the ansible-playbook run this worker belongs to."""
    pid = os.getppid()
    controller = socket.gethostname()
    start = process_start(pid) or ""
    try:
        user = pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        user = str(os.getuid())
    playbooks = context.CLIARGS.get("args") or ()
    return {"run_id": f"{controller}:{pid}:{start.rpartition('/')[2]}", "controller": controller, "user": user,
            "pid": pid, "pid_start": start, "playbook": " ".join(os.path.basename(str(name)) for name in playbooks)}


class ActionModule(ActionBase):
    """node_prepare with lease_run (and lease_break from pgrepl_break_lease) filled in."""

    _supports_check_mode = True

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        del tmp
        task_vars = task_vars or {}
        args = dict(self._task.args)
        if args.get("lease", "none") != "none":
            run = this_run()
            args["lease_run"] = run
            if task_vars.get(BREAK_VAR) and not args.get("lease_break"):
                args["lease_break"] = str(task_vars[BREAK_VAR])
        else:
            run = None
        out = self._execute_module(module_args=args, task_vars=task_vars)
        holder = out.get("lease_holder")
        if run is not None and out.get("failed") and isinstance(holder, dict):
            if stale_here(holder, run["controller"], process_start):
                # A run of this controller that ended without its release play: its lease is ours to take.
                out = self._execute_module(module_args={
                    **args, "lease_break": holder.get("run_id"),
                    "lease_run": {**run, "break_reason": "that ansible-playbook has ended (killed, or failed before "
                                                         "it released its lease)"}}, task_vars=task_vars)
            else:
                out["msg"] = (f"{out.get('msg')}; once that run has ended, run again (a run of another controller "
                              "keeps the lease until it expires), or take it over now with "
                              f"-e {BREAK_VAR}={holder.get('run_id')}")
        result.update(out)
        return result
