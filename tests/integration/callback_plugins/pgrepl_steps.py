# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The test bench's session callback: the results of each play's tasks, written to one file when the play ends."""

from __future__ import annotations

import json
import os

from ansible.parsing.ajson import AnsibleJSONEncoder
from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: pgrepl_steps
type: stdout
short_description: Write the results of each step of the test bench's session to a file
description:
  - For tests/integration/ansible_runner.py only. Play N of a session serves step N; when it ends (the next play
    starts, or the playbook ends) the results of its tasks, in order, go to C($PGREPL_SESSION_DIR/result-<N>.json),
    each shaped as the ansible.posix.json callback shapes a host's result (the result, C(failed) or C(skipped) when
    so, the task's C(action)). The session's own include task is left out (its failure is reported as an error).
  - At each play's start the host's registered variables and facts are dropped, so a step starts as clean as a
    fresh ansible-playbook run.
"""

SESSION_TASK = "pgrepl session step"  # the name of the include task of every session play


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "stdout"
    CALLBACK_NAME = "pgrepl_steps"

    def __init__(self, display=None) -> None:
        super().__init__(display)
        self._step = -1
        self._results: list[dict] = []
        self._errors: list[dict] = []

    def _flush(self) -> None:
        if self._step < 0:
            return
        path = os.path.join(os.environ["PGREPL_SESSION_DIR"], f"result-{self._step}.json")
        with open(path + ".tmp", "w", encoding="utf-8") as handle:
            json.dump({"results": self._results, "errors": self._errors}, handle, cls=AnsibleJSONEncoder,
                      sort_keys=True)
        os.rename(path + ".tmp", path)  # the runner never reads a half-written file
        self._results, self._errors = [], []

    def v2_playbook_on_play_start(self, play) -> None:
        self._flush()
        self._step += 1
        # Registered variables, set_fact and include_vars of the step before must not leak into this one.
        manager = play._variable_manager
        manager._nonpersistent_fact_cache.clear()
        manager._vars_cache.clear()
        manager.clear_facts("localhost")
        self._display.display(f"== step {self._step}")

    def v2_playbook_on_stats(self, stats) -> None:
        self._flush()

    def _record(self, result, outcome: dict) -> None:
        entry = result._result.copy()
        entry.update(outcome)
        entry["action"] = result._task.action
        if result._task.get_name() == SESSION_TASK:
            if outcome.get("failed"):
                self._errors.append(entry)
        else:
            self._results.append(entry)
        status = "failed" if outcome.get("failed") else "skipped" if outcome.get("skipped") else (
            "changed" if entry.get("changed") else "ok")
        self._display.display(f"{status}: {result._task.get_name()}"
                              + (f": {entry.get('msg')}" if outcome.get("failed") else ""))

    def v2_runner_on_ok(self, result) -> None:
        self._record(result, {})

    def v2_runner_on_failed(self, result, ignore_errors: bool = False) -> None:
        self._record(result, {"failed": True})

    def v2_runner_on_skipped(self, result) -> None:
        self._record(result, {"skipped": True})

    def v2_runner_on_unreachable(self, result) -> None:
        self._record(result, {})
