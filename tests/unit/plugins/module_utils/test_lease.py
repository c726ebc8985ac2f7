# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The run's lease of a node: who may take it (free, same run, expired, broken, live holder), when a holder of this
controller is stale, and the file as a real run leaves it."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from ansible_collections.pgrepl.streaming.plugins.module_utils._errors import PgreplError
from ansible_collections.pgrepl.streaming.plugins.module_utils._lease import (
    BROKEN,
    EXPIRED,
    FREE,
    HELD,
    SAME,
    LeaseHeld,
    decide,
    describe,
    path_problem,
    process_start,
    release,
    release_with_last_call,
    stale_here,
    take,
)

NOW = 1_800_000_000.0


def run(run_id: str = "ctl:100:5", controller: str = "ctl", pid: int = 100, start: str = "boot/5") -> dict[str, Any]:
    return {"run_id": run_id, "controller": controller, "user": "ops", "pid": pid, "pid_start": start,
            "playbook": "site.yml"}


def holder(expires: float = NOW + 600, **fields: Any) -> dict[str, Any]:
    return {**run(**fields), "since": NOW - 60, "renewed": NOW - 60, "expires": expires}


@pytest.mark.parametrize(("current", "break_run", "expected"), [
    (None, None, FREE),
    ({}, None, FREE),
    (holder(run_id="ctl:100:5"), None, SAME),
    (holder(run_id="other:7:1"), None, HELD),
    (holder(run_id="other:7:1", expires=NOW - 1), None, EXPIRED),
    (holder(run_id="other:7:1", expires=NOW), None, EXPIRED),
    (holder(run_id="other:7:1"), "other:7:1", BROKEN),
    (holder(run_id="other:7:1"), "other:8:1", HELD),  # naming another run breaks nothing
    ({"run_id": "other:7:1", "expires": "soon"}, None, EXPIRED),  # an unreadable expiry does not hold a node
])
def test_decide(current: dict[str, Any] | None, break_run: str | None, expected: str) -> None:
    assert decide(current, "ctl:100:5", NOW, break_run) == expected


def test_a_holder_of_another_controller_is_never_stale_from_here() -> None:
    assert stale_here(holder(controller="elsewhere"), "ctl", lambda pid: None) is False


@pytest.mark.parametrize(("live", "expected"), [
    (None, True),          # its ansible-playbook is gone
    ("boot/9", True),      # the PID now belongs to a later process
    ("other-boot/5", True),  # the controller was rebooted since
    ("boot/5", False),     # still running
    ("", False),           # alive, start unknown (no /proc): live
])
def test_a_holder_of_this_controller_is_stale_when_its_process_is_gone(live: str | None, expected: bool) -> None:
    assert stale_here(holder(), "ctl", lambda pid: live) is expected


def test_process_start_of_this_process_and_of_a_dead_one() -> None:
    mine = process_start(os.getpid())
    assert mine and mine == process_start(os.getpid())
    assert mine != process_start(1)
    child = subprocess.Popen(["true"])
    child.wait()
    assert process_start(child.pid) is None


def test_describe_names_the_holder() -> None:
    text = describe(holder(run_id="other:7:1", controller="ctl2", pid=7))
    for part in ("other:7:1", "site.yml", "ops@ctl2", "pid 7", "since 2027-01-15 07:59:00 UTC"):
        assert part in text, text


def test_take_renew_release(tmp_path: Path) -> None:
    path = str(tmp_path / "lease" / "run.lease")
    lease, warnings = take(path, run(), 600, now=NOW)
    assert (lease["state"], lease["decision"], warnings) == ("taken", FREE, [])
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    record = json.loads(Path(path).read_text(encoding="utf-8"))
    assert (record["run_id"], record["since"], record["expires"]) == ("ctl:100:5", NOW, NOW + 600)
    lease, warnings = take(path, run(), 600, now=NOW + 100)
    assert (lease["state"], warnings) == ("renewed", [])
    record = json.loads(Path(path).read_text(encoding="utf-8"))
    assert (record["since"], record["expires"]) == (NOW, NOW + 700)  # since stays, the expiry moves
    lease, warnings = release(path, "ctl:100:5")
    assert lease["released"] is True and Path(path).read_text(encoding="utf-8") == ""
    assert take(path, run(run_id="ctl:200:6", pid=200), 600, now=NOW)[0]["decision"] == FREE


def test_a_live_holder_refuses_and_nothing_changes(tmp_path: Path) -> None:
    path = tmp_path / "run.lease"
    path.write_text(json.dumps(holder(run_id="other:7:1", controller="ctl2")), encoding="utf-8")
    before = path.read_bytes()
    with pytest.raises(LeaseHeld) as refused:
        take(str(path), run(), 600, now=NOW)
    assert refused.value.holder["run_id"] == "other:7:1"
    assert "ops@ctl2" in str(refused.value) and "nothing was changed" in str(refused.value)
    assert path.read_bytes() == before
    # Check mode only reads: a warning, the file as it was.
    lease, warnings = take(str(path), run(), 600, check_mode=True, now=NOW)
    assert lease["state"] == "checked" and "would be refused" in warnings[0]
    assert path.read_bytes() == before
    # Releasing another run's lease leaves it.
    lease, warnings = release(str(path), "ctl:100:5")
    assert lease["released"] is False and warnings and path.read_bytes() == before


@pytest.mark.parametrize(("expires", "break_run", "why"), [
    (NOW - 1, None, "expired"),
    (NOW + 600, "other:7:1", "lease_break"),
])
def test_take_over_warns_and_keeps_what_it_replaced(
        tmp_path: Path, expires: float, break_run: str | None, why: str) -> None:
    path = tmp_path / "run.lease"
    path.write_text(json.dumps(holder(run_id="other:7:1", controller="ctl2", expires=expires)), encoding="utf-8")
    lease, warnings = take(str(path), run(), 600, break_run=break_run, now=NOW)
    assert lease["state"] == "taken" and lease["replaced"]["run_id"] == "other:7:1"
    assert len(warnings) == 1 and "other:7:1" in warnings[0] and why in warnings[0]
    assert json.loads(path.read_text(encoding="utf-8"))["run_id"] == "ctl:100:5"


def test_check_mode_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "none" / "run.lease"
    lease, warnings = take(str(path), run(), 600, check_mode=True, now=NOW)
    assert (lease["decision"], warnings) == (FREE, []) and not path.parent.exists()
    assert release(str(path), "ctl:100:5")[0]["state"] == "free"


def test_a_garbled_file_is_taken_over(tmp_path: Path) -> None:
    path = tmp_path / "run.lease"
    path.write_text("{half", encoding="utf-8")
    lease, warnings = take(str(path), run(), 600, now=NOW)
    assert lease["decision"] == EXPIRED and warnings


def test_a_run_without_identity_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PgreplError, match="lease_run: run_id missing"):
        take(str(tmp_path / "run.lease"), {"controller": "ctl"}, 600, now=NOW)


@pytest.mark.parametrize(("path", "expected"), [
    ("/var/lib/pgrepl/run.lease", None),
    ("run.lease", "lease_path: 'run.lease' is not an absolute path"),
    ("./pgrepl/run.lease", "lease_path: './pgrepl/run.lease' is not an absolute path"),
    ("", "lease_path: '' is not an absolute path"),
])
def test_a_lease_file_is_named_by_an_absolute_path(path: str, expected: str | None) -> None:
    assert path_problem(path) == expected


def test_the_action_plugin_says_why_it_breaks_a_lease(tmp_path: Path) -> None:
    path = tmp_path / "run.lease"
    path.write_text(json.dumps(holder(run_id="ctl:7:1", pid=7)), encoding="utf-8")
    lease, warnings = take(str(path), {**run(), "break_reason": "that ansible-playbook has ended"}, 600,
                           break_run="ctl:7:1", now=NOW)
    assert warnings == [f"took over the lease of {describe(holder(run_id='ctl:7:1', pid=7))}: that ansible-playbook "
                        "has ended; if that run still works on this node, stop it and check the node"]
    assert "break_reason" not in json.loads(path.read_text(encoding="utf-8"))


TAKEN = {"path": "/var/lib/pgrepl/run.lease", "state": "taken", "holder": {"run_id": "ctl:100:5"}}


@pytest.mark.parametrize(("lease", "later", "expected"), [
    (TAKEN, [], {"path": "/var/lib/pgrepl/run.lease", "run_id": "ctl:100:5"}),
    ({**TAKEN, "state": "renewed"}, (), {"path": "/var/lib/pgrepl/run.lease", "run_id": "ctl:100:5"}),
    # A later step calls a module on the node: the release play lets go of it after that.
    (TAKEN, ["synchronous_standby_names"], None),
    (TAKEN, ["stale slots"], None),
    # Check mode only read it; a run without a lease; facts of a node that did not answer.
    ({**TAKEN, "state": "checked"}, [], None),
    (None, [], None),
    ({}, [], None),
    ({**TAKEN, "holder": None}, [], None),
    ({**TAKEN, "path": ""}, [], None),
])
def test_release_with_the_last_call(lease: dict[str, Any] | None, later: list[str],
                                    expected: dict[str, str] | None) -> None:
    assert release_with_last_call(lease, later) == expected
