# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""node_apply's order rules without a server: a server_start item restarts after an item that left a restart
pending (and only then), the items after it run after the restart, check mode without psycopg reports the server
items as changes without running them, and every item is timed. The module bodies are stand-ins that record what
node_apply gave them; the real bodies run against PostgreSQL in tests/integration/test_node_apply.py and
test_server_start.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ansible_collections.pgrepl.streaming.plugins.module_utils import _node_apply
from ansible_collections.pgrepl.streaming.plugins.module_utils._errors import PgreplError
from ansible_collections.pgrepl.streaming.plugins.module_utils._lease import take
from ansible_collections.pgrepl.streaming.plugins.module_utils._node_apply import (
    OUTCOME_PREDICTED,
    apply_node,
    predicted_without_server,
    run_node_apply,
)
from ansible_collections.pgrepl.streaming.plugins.module_utils._settings import restart_warning

START = {"data_dir": "/var/lib/postgresql/15/main", "service": "postgresql@15-main", "wait_for": "accepting"}

# The primary role's order: settings, role, pg_hba, passfile, restart, slots.
PRIMARY_CHECKS: dict[str, Any] = {
    "settings": {"module": "server_settings", "params": {"settings": {"wal_level": "replica"}}},
    "role": {"module": "replication_user", "params": {"name": "replicator"}},
    "hba": {"module": "pg_hba",
            "params": {"path": "/etc/postgresql/15/main/pg_hba.conf", "contype": "host", "databases": ["replication"],
                       "users": ["replicator"], "address": "10.0.0.2/32", "method": "scram-sha-256"}},
    "restart": {"module": "server_start", "params": START},
    "slots": {"module": "replication_slot", "params": [{"name": "s1"}, {"name": "s2"}]},
}


class Recorder:
    """Stand-in bodies: each records (module, check mode, server_start's state) and answers what the test set."""

    def __init__(self, answers: dict[str, dict[str, Any]]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, bool, str | None]] = []

    def body(self, module_name: str):
        def run(module: Any) -> dict[str, Any]:
            state = module.params["state"] if module_name == "server_start" else None
            self.calls.append((module_name, module.check_mode, state))
            answer = dict(self.answers.get(module_name, {"changed": False}))
            for warning in answer.pop("warn", []):
                module.warn(warning)
            if module_name == "server_start":
                restart = module.params.get("state") == "restarted"
                done = "restarted" if restart else "already_running"
                answer = {"changed": restart, "outcome": f"would_{done[:-2]}" if restart and module.check_mode
                          else done}
            return answer
        return run


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    rec = Recorder({})
    modules = {name: (spec, rec.body(name), server) for name, (spec, _body, server) in _node_apply.MODULES.items()}
    monkeypatch.setattr(_node_apply, "MODULES", modules)
    return rec


def run(checks: dict[str, Any], check_mode: bool = False, can_connect: bool = True,
        upstream_pending: bool = False) -> dict[str, Any]:
    ticks = iter(range(1000))
    return apply_node(checks, {}, set(), "pw", check_mode, False, can_connect=can_connect,
                      clock=lambda: float(next(ticks)), upstream_pending=upstream_pending)


def test_a_pending_setting_restarts_before_the_slots(recorder: Recorder) -> None:
    recorder.answers["server_settings"] = {"changed": True, "restart_required": True}
    result = run(PRIMARY_CHECKS)
    order = [(module, state) for module, _check, state in recorder.calls]
    assert order == [("server_settings", None), ("replication_user", None), ("pg_hba", None),
                     ("server_start", "restarted"), ("replication_slot", None), ("replication_slot", None)]
    assert result["check_results"]["restart"] == [{"changed": True, "outcome": "restarted", "seconds": 1.0}]
    # Done in this call: no restart is left to report.
    assert result["restart_required"] is False and result["predicted"] == []


def test_a_setting_written_by_an_earlier_run_also_restarts(recorder: Recorder) -> None:
    """Nothing changed now, but the file value waits for a restart (an earlier run stopped before it)."""
    recorder.answers["server_settings"] = {"changed": False, "restart_required": True}
    result = run(PRIMARY_CHECKS)
    assert ("server_start", False, "restarted") in recorder.calls
    assert result["changed_checks"] == {"settings": False, "role": False, "hba": False, "restart": True,
                                        "slots": False}


def test_no_pending_setting_leaves_the_running_server_alone(recorder: Recorder) -> None:
    recorder.answers["server_settings"] = {"changed": True, "restart_required": False}
    result = run(PRIMARY_CHECKS)
    assert ("server_start", False, "started") in recorder.calls
    assert result["check_results"]["restart"][0]["outcome"] == "already_running"
    assert result["changed_checks"]["restart"] is False and result["restart_required"] is False


def test_without_a_start_item_the_pending_restart_is_reported(recorder: Recorder) -> None:
    recorder.answers["server_settings"] = {"changed": True, "restart_required": True}
    checks = {name: check for name, check in PRIMARY_CHECKS.items() if name != "restart"}
    assert run(checks)["restart_required"] is True


def test_check_mode_predicts_the_restart_and_runs_every_body_in_check_mode(recorder: Recorder) -> None:
    recorder.answers["server_settings"] = {"changed": True, "restart_required": True}
    recorder.answers["replication_slot"] = {"changed": True}
    result = run(PRIMARY_CHECKS, check_mode=True)
    assert all(check for _module, check, _state in recorder.calls)
    assert result["check_results"]["restart"][0]["outcome"] == "would_restart"
    assert result["changed_checks"]["slots"] is True and result["predicted"] == []


def test_check_mode_without_psycopg_reports_the_server_items_without_running_them(recorder: Recorder) -> None:
    result = run(PRIMARY_CHECKS, check_mode=True, can_connect=False)
    # Only the file item and server_start ran (both in check mode); settings count as leaving a restart pending.
    assert recorder.calls == [("pg_hba", True, None), ("server_start", True, "restarted")]
    assert result["predicted"] == ["settings", "role", "slots"]
    predicted_slot = {"changed": True, "outcome": OUTCOME_PREDICTED, "restart_required": False, "seconds": 1.0}
    assert result["check_results"]["slots"] == [predicted_slot] * 2
    assert result["changed_checks"] == {"settings": True, "role": True, "hba": False, "restart": True, "slots": True}
    assert any("psycopg is not installed" in warning and "settings, role, slots" in warning
               for warning in result["warnings"])


STANDBY_CHECKS: dict[str, Any] = {
    "passfile": {"module": "passfile", "params": {"path": "/var/lib/postgresql/.pgpass", "entries": [
        {"host": "10.0.0.1", "port": "5432", "database": "replication", "user": "replicator"}]}},
    "clone": {"module": "standby_clone", "params": {
        "data_dir": "/var/lib/postgresql/15/main", "primary_host": "10.0.0.1", "replication_user": "replicator",
        "passfile": "/var/lib/postgresql/.pgpass", "slot_name": "s1"}},
}


@pytest.mark.parametrize("passfile_changes", [True, False])
def test_check_mode_copy_after_a_passfile_to_write_is_predicted_not_run(recorder: Recorder,
                                                                        passfile_changes: bool) -> None:
    # A fresh standby with psycopg: check mode does not write the password file, so the copy cannot connect yet.
    recorder.answers["passfile"] = {"changed": passfile_changes}
    recorder.answers["standby_clone"] = {"changed": True, "outcome": "would_clone"}
    result = run(STANDBY_CHECKS, check_mode=True)
    ran = [module for module, _check, _state in recorder.calls]
    if passfile_changes:
        assert ran == ["passfile"]
        assert result["check_results"]["clone"][0]["outcome"] == OUTCOME_PREDICTED
        assert result["predicted"] == ["clone"]
        assert any("password file this run writes first" in warning for warning in result["warnings"])
        assert not any("psycopg" in warning for warning in result["warnings"])
    else:
        assert ran == ["passfile", "standby_clone"] and result["predicted"] == []
    # A real run always runs the copy after writing the file.
    recorder.calls.clear()
    run(STANDBY_CHECKS)
    assert [module for module, _check, _state in recorder.calls] == ["passfile", "standby_clone"]


@pytest.mark.parametrize("check_mode", [True, False])
def test_a_copy_from_an_upstream_that_changes_first_is_predicted_in_check_mode(recorder: Recorder,
                                                                               check_mode: bool) -> None:
    # The password file is already right, but the primary's check predicted its replication role: the copy cannot
    # connect in check mode (the role is not there), a real run creates it first and copies.
    recorder.answers["passfile"] = {"changed": False}
    recorder.answers["standby_clone"] = {"changed": True, "outcome": "cloned"}
    result = run(STANDBY_CHECKS, check_mode=check_mode, upstream_pending=True)
    ran = [module for module, _check, _state in recorder.calls]
    if check_mode:
        assert ran == ["passfile"]
        assert result["predicted"] == ["clone"] and result["changed_checks"] == {"passfile": False, "clone": True}
        assert [warning for warning in result["warnings"] if "upstream" in warning] == [
            "check mode: clone would connect to its upstream, where this run changes things first (check mode "
            "changes nothing there), so it is reported as a change without asking the upstream"]
        assert not any("psycopg" in warning for warning in result["warnings"])
    else:
        assert ran == ["passfile", "standby_clone"] and result["predicted"] == []


def test_bad_options_of_a_predicted_item_are_still_refused(recorder: Recorder) -> None:
    checks = {"slots": {"module": "replication_slot", "params": {"name": "s1", "state": "gone"}}}
    with pytest.raises(PgreplError, match=r"^slots\[0\] \(replication_slot\): .*state"):
        run(checks, check_mode=True, can_connect=False)
    assert not recorder.calls


@pytest.mark.parametrize("module_name, check_mode, can_connect, expected", [
    ("server_settings", True, False, True),
    ("standby_clone", True, False, True),
    ("server_settings", False, False, False),  # a real run: the body says what is missing
    ("server_settings", True, True, False),
    ("pg_hba", True, False, False),
    ("server_start", True, False, False),  # its check mode asks nothing
])
def test_which_items_are_predicted_without_the_server(module_name: str, check_mode: bool, can_connect: bool,
                                                      expected: bool) -> None:
    assert predicted_without_server(module_name, check_mode, can_connect) is expected


@pytest.mark.parametrize("with_start, check_mode", [(True, False), (True, True), (False, False)])
def test_the_restart_warning_goes_when_a_later_item_restarts(recorder: Recorder, with_start: bool,
                                                             check_mode: bool) -> None:
    """server_settings warns that the server runs another value until a restart; in the same call as the restart
    that warning is wrong, and only that one goes."""
    other = "settings.x: the server's command line sets x"
    recorder.answers["server_settings"] = {
        "changed": True, "restart_required": True, "warn": [other, restart_warning(["wal_level"])],
        "settings": {"wal_level": {"restart_required": True}, "work_mem": {"restart_required": False}}}
    checks = PRIMARY_CHECKS if with_start else {k: v for k, v in PRIMARY_CHECKS.items() if k != "restart"}
    warnings = run(checks, check_mode=check_mode)["warnings"]
    expected = [f"settings[0] (server_settings): {other}"]
    if not with_start:
        expected.append(f"settings[0] (server_settings): {restart_warning(['wal_level'])}")
    assert warnings == expected


class FakeModule:
    """What run_node_apply reads of an AnsibleModule."""

    def __init__(self, params: dict[str, Any], check_mode: bool = False) -> None:
        self.params = {"checks": {}, "replication_password": None, "upstream_pending": False, "release_lease": None,
                       **params}
        self.check_mode = check_mode
        self._diff = False
        self.no_log_values: set[str] = set()
        self.warnings: list[str] = []

    def warn(self, warning: str) -> None:
        self.warnings.append(warning)


def lease_file(tmp_path: Path, run_id: str = "ctl:1:2") -> str:
    path = str(tmp_path / "run.lease")
    take(path, {"run_id": run_id, "controller": "ctl", "user": "ops", "pid": 1, "pid_start": "b/2",
                "playbook": "site.yml"}, 600)
    return path


def test_the_last_call_lets_go_of_the_lease_once_every_item_succeeded(recorder: Recorder, tmp_path: Path) -> None:
    path = lease_file(tmp_path)
    module = FakeModule({"checks": PRIMARY_CHECKS, "release_lease": {"path": path, "run_id": "ctl:1:2"}})
    result = run_node_apply(module)
    assert result["lease"] == {"path": path, "state": "released", "released": True}
    assert Path(path).read_text(encoding="utf-8") == "" and result["changed"] is False


def test_no_release_in_check_mode_after_a_failure_or_of_another_run(recorder: Recorder, tmp_path: Path) -> None:
    path = lease_file(tmp_path)
    held = Path(path).read_text(encoding="utf-8")
    release = {"path": path, "run_id": "ctl:1:2"}
    # Check mode: the lease was only read by node_prepare; nothing is released.
    result = run_node_apply(FakeModule({"checks": PRIMARY_CHECKS, "release_lease": release}, check_mode=True))
    assert "lease" not in result and Path(path).read_text(encoding="utf-8") == held
    # A failing item: the run keeps its lease (the task fails; its ansible-playbook ends or the lease expires).
    bad = {**PRIMARY_CHECKS, "slots": {"module": "replication_slot", "params": [{"name": "s1", "bogus": 1}]}}
    with pytest.raises(PgreplError, match=r"slots\[0\] \(replication_slot\)"):
        run_node_apply(FakeModule({"checks": bad, "release_lease": release}))
    assert Path(path).read_text(encoding="utf-8") == held
    # Another run's lease is left as it is, with a warning.
    module = FakeModule({"checks": PRIMARY_CHECKS, "release_lease": {"path": path, "run_id": "other:9:9"}})
    result = run_node_apply(module)
    assert result["lease"]["state"] == "other" and Path(path).read_text(encoding="utf-8") == held
    assert any("not this run's" in warning for warning in module.warnings)


@pytest.mark.parametrize(("release", "said"), [
    ({"path": "run.lease", "run_id": "ctl:1:2"}, "release_lease.path: 'run.lease' is not an absolute path"),
    ({"path": "/var/lib/pgrepl/run.lease", "run_id": " "}, "release_lease.run_id: is empty"),
])
def test_a_bad_lease_to_release_is_refused_before_any_item(recorder: Recorder, release: dict[str, str],
                                                           said: str) -> None:
    with pytest.raises(PgreplError, match=said):
        run_node_apply(FakeModule({"checks": PRIMARY_CHECKS, "release_lease": release}))
    assert recorder.calls == []
