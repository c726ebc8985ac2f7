# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The test bench's session (ansible_runner): a call gives what its own ansible-playbook run gives, check mode and
diff included, no call sees another's variables, and a closed session leaves no process behind."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import ansible_runner
from ansible_runner import _descendants, _run_own_process, close_session, run_tasks, start_session

COMPARED = ("action", "changed", "failed", "skipped", "msg", "diff", "registered", "ansible_facts", "checksum",
            "mode", "false_condition", "skip_reason")


def tasks_for(target: Path) -> list[dict[str, Any]]:
    return [
        {"name": "copy", "ansible.builtin.copy": {"content": "pgrepl\n", "dest": str(target), "mode": "0600"}},
        {"name": "own keyword wins",
         "ansible.builtin.copy": {"content": "own\n", "dest": str(target) + ".own", "mode": "0600"},
         "check_mode": False, "diff": False},
        {"name": "register", "ansible.builtin.set_fact": {"fact": 1}, "register": "registered"},
        {"name": "show", "ansible.builtin.debug": {"var": "registered"}},
        {"name": "fails", "ansible.builtin.fail": {"msg": "on purpose"}},
        {"name": "skipped", "ansible.builtin.debug": {"msg": "never"}, "when": False},
    ]


def test_a_session_call_gives_what_its_own_process_gives(tmp_path: Path) -> None:
    for check, diff in ((True, True), (True, False), (False, True), (False, False)):
        session_target, own_target = tmp_path / f"s-{check}-{diff}", tmp_path / f"o-{check}-{diff}"
        session = run_tasks(tasks_for(session_target), check=check, diff=diff)
        own = _run_own_process(tasks_for(own_target), check, diff, 0, True)
        assert session.returncode == own.returncode == 0
        assert len(session.results) == len(own.results) == 6
        for got, want in zip(session.results, own.results):
            # Everything but what differs between any two runs (temporary file names, the copied file's path).
            assert sorted(got) == sorted(want)
            for key in COMPARED:
                assert str(got.get(key)).replace(str(session_target), str(own_target)) == str(want.get(key)), \
                    (check, diff, key)
        assert session_target.exists() is not check and own_target.exists() is not check
        assert Path(str(session_target) + ".own").exists()  # the task's own check_mode: false won


def test_no_call_sees_the_variables_of_another() -> None:
    run_tasks([{"name": "register", "ansible.builtin.set_fact": {"leaked": 1}, "register": "leaked_result"}])
    shown = run_tasks([{"name": "show", "ansible.builtin.debug": {"msg": "{{ leaked is defined or "
                                                                         "leaked_result is defined }}"}}])
    assert shown.results[0]["msg"] is False


def test_a_closed_session_leaves_no_process_and_the_next_call_starts_one() -> None:
    session = start_session()
    run_tasks([{"name": "one", "ansible.builtin.debug": {"msg": "one"}}])
    pids = [session.proc.pid, *_descendants(session.proc.pid)]
    close_session()
    assert ansible_runner._session is None
    for pid in pids:
        assert not os.path.exists(f"/proc/{pid}") or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2], pid
    assert not session.dir.exists()
    assert run_tasks([{"name": "two", "ansible.builtin.debug": {"msg": "two"}}]).results[0]["msg"] == "two"
    assert ansible_runner._session is not None and ansible_runner._session is not session
