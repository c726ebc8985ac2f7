"""The run's lease of a node through real ansible-playbook runs (node_prepare and its action plugin): one run at a time,
the holder named, a killed run's lease taken over by the next run, released at the end, renewed by the same run.

Each test has its own lease file (lease_path), so test processes running at once share none.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_node_prepare import layout_args

from ansible_collections.pgrepl.streaming.plugins.module_utils._lease import process_start

from ansible_runner import VENV_BIN, _descendants, ansible_env, run_module, run_tasks, start_session
from cluster import Clusters, PgCluster


@pytest.fixture(scope="module")
def server(throwaway: Clusters) -> PgCluster:
    return throwaway.server("lease")


@pytest.fixture
def lease(tmp_path: Path) -> Path:
    return tmp_path / "pgrepl" / "run.lease"


def prepare(server: PgCluster, lease: Path, **extra: Any) -> dict[str, Any]:
    return {**layout_args(server), "install": False, "lease": "take", "lease_path": str(lease), **extra}


def record(lease: Path) -> dict[str, Any] | None:
    text = lease.read_text(encoding="utf-8")
    return json.loads(text) if text else None


def foreign(lease: Path, pid: int, start: str, controller: str | None = None, expires: float | None = None) -> bytes:
    """A lease of another run written into the file as that run would have; returns the file's bytes."""
    controller = controller or socket.gethostname()
    lease.parent.mkdir(parents=True, exist_ok=True)
    now = time.time()
    lease.write_text(json.dumps({
        "run_id": f"{controller}:{pid}:other", "controller": controller, "user": "someone", "pid": pid,
        "pid_start": start, "playbook": "switchover.yml", "since": now - 30, "renewed": now - 30,
        "expires": now + 3600 if expires is None else expires}), encoding="utf-8")
    return lease.read_bytes()


def test_take_renew_release(server: PgCluster, lease: Path) -> None:
    first = run_module("node_prepare", prepare(server, lease))
    assert first.get("failed") is not True, first
    assert (first["changed"], first["lease"]["state"], first["lease"]["decision"]) == (False, "taken", "free")
    held = record(lease)
    assert held is not None
    # The run is the ansible-playbook process (here the test session's), not its worker.
    session_pid = start_session().proc.pid
    assert held["pid"] == session_pid and held["run_id"].endswith(f":{session_pid}:{held['pid_start'].split('/')[1]}")
    assert held["pid_start"] == process_start(session_pid) and held["controller"] == socket.gethostname()
    assert oct(lease.stat().st_mode & 0o777) == "0o600"
    # Every task of the same run renews it, nothing reported as changed.
    again = run_module("node_prepare", prepare(server, lease))
    assert (again["changed"], again["lease"]["state"], again.get("warnings")) == (False, "renewed", None), again
    renewed = record(lease)
    assert renewed is not None and renewed["since"] == held["since"] and renewed["expires"] >= held["expires"]
    released = run_module("node_prepare", {"lease": "release", "lease_path": str(lease)})
    assert (released["changed"], released["lease"]["state"]) == (False, "released"), released
    assert "layout" not in released  # a release does nothing else
    assert lease.read_text(encoding="utf-8") == ""
    twice = run_module("node_prepare", {"lease": "release", "lease_path": str(lease)})
    assert (twice["changed"], twice["lease"]["state"]) == (False, "free")


def test_the_last_node_apply_of_a_run_releases_its_lease(server: PgCluster, lease: Path) -> None:
    """node_apply's release_lease (site's last call on a node): released only after every item succeeded, for real;
    the settings on the server as they were."""
    taken = run_module("node_prepare", prepare(server, lease))
    assert taken["lease"]["state"] == "taken", taken
    release = {"path": str(lease), "run_id": taken["lease"]["holder"]["run_id"]}
    wal_level = server.scalar("SHOW wal_level")
    checks = {"settings": {"module": "server_settings", "params": {"settings": {"wal_level": wal_level}}}}
    held = lease.read_bytes()
    refused = run_module("node_apply", {**server.login(), "checks": checks,
                                        "release_lease": {**release, "path": "run.lease"}})
    assert refused.get("failed") is True and "release_lease.path: 'run.lease' is not an absolute path" in refused["msg"]
    assert lease.read_bytes() == held
    predicted = run_module("node_apply", {**server.login(), "checks": checks, "release_lease": release}, check=True)
    assert predicted.get("failed") is not True and "lease" not in predicted, predicted
    assert lease.read_bytes() == held
    bad = {**checks, "slot": {"module": "replication_slot", "params": {"name": "s1", "no_such_option": 1}}}
    failed = run_module("node_apply", {**server.login(), "checks": bad, "release_lease": release})
    assert failed.get("failed") is True and "slot[0] (replication_slot)" in failed["msg"], failed
    assert lease.read_bytes() == held
    done = run_module("node_apply", {**server.login(), "checks": checks, "release_lease": release})
    assert done.get("failed") is not True and done["changed"] is False, done
    assert done["lease"] == {"path": str(lease), "state": "released", "released": True}
    assert lease.read_text(encoding="utf-8") == "" and server.scalar("SHOW wal_level") == wal_level
    # The release play then finds it free (site skips it on that node; a release after it changes nothing).
    again = run_module("node_prepare", {"lease": "release", "lease_path": str(lease)})
    assert (again["changed"], again["lease"]["state"]) == (False, "free")


def test_a_live_run_of_this_controller_refuses_naming_it(server: PgCluster, lease: Path) -> None:
    # The holder: this test process, alive, with its real start time, as another run.
    before = foreign(lease, os.getpid(), process_start(os.getpid()) or "")
    refused = run_module("node_prepare", prepare(server, lease))
    assert refused.get("failed") is True, refused
    for part in (f"pid {os.getpid()}", "someone@", "switchover.yml", "since",
                 f"-e pgrepl_break_lease={socket.gethostname()}:{os.getpid()}:other", "nothing was changed"):
        assert part in refused["msg"], (part, refused["msg"])
    assert refused["lease_holder"]["pid"] == os.getpid()
    assert "layout" not in refused  # the module stopped before anything else (the install comes after the lease)
    assert lease.read_bytes() == before
    # Check mode takes no lease: the live holder is a warning, the file as it was.
    checked = run_module("node_prepare", prepare(server, lease), check=True)
    assert checked.get("failed") is not True and checked["lease"]["state"] == "checked", checked
    assert any("would be refused" in warning for warning in checked["warnings"])
    assert lease.read_bytes() == before
    # A read-only call (the status playbook's) takes none and reads whatever holds it.
    reader = run_module("node_prepare", {**layout_args(server), "install": False})
    assert reader.get("failed") is not True and reader["lease"] is None
    assert lease.read_bytes() == before


def test_a_holder_whose_ansible_playbook_ended_is_taken_over(server: PgCluster, lease: Path) -> None:
    child = subprocess.Popen(["true"])
    child.wait()  # a PID of this controller that no longer runs
    foreign(lease, child.pid, "boot/1")
    taken = run_module("node_prepare", prepare(server, lease))
    assert taken.get("failed") is not True, taken
    assert taken["lease"]["replaced"]["pid"] == child.pid
    assert [warning for warning in taken["warnings"] if "has ended" in warning and str(child.pid) in warning]
    held = record(lease)
    assert held is not None and held["pid"] == start_session().proc.pid
    # The same PID alive but started at another time (a PID reused after a reboot or a wrap) is stale too.
    foreign(lease, os.getpid(), "another-boot/1")
    assert run_module("node_prepare", prepare(server, lease))["lease"]["replaced"]["pid"] == os.getpid()


def test_another_controller_keeps_it_until_it_expires_or_is_broken(server: PgCluster, lease: Path) -> None:
    before = foreign(lease, 4242, "boot/1", controller="other-controller.example")
    assert run_module("node_prepare", prepare(server, lease)).get("failed") is True
    assert lease.read_bytes() == before
    broken = run_tasks([{"name": "break", "pgrepl.streaming.node_prepare": prepare(server, lease),
                         "vars": {"pgrepl_break_lease": "other-controller.example:4242:other"}}]).results[0]
    assert broken.get("failed") is not True, broken
    assert any("lease_break" in warning for warning in broken["warnings"])
    assert record(lease)["pid"] == start_session().proc.pid  # type: ignore[index]
    foreign(lease, 4242, "boot/1", controller="other-controller.example", expires=time.time() - 1)
    expired = run_module("node_prepare", prepare(server, lease))
    assert expired.get("failed") is not True and any("expired" in warning for warning in expired["warnings"])


@pytest.fixture
def gate() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="pgrepl-lease-") as tmp:
        yield Path(tmp)


def holding_run(server: PgCluster, lease: Path, gate: Path) -> subprocess.Popen[bytes]:
    """A real ansible-playbook run that takes the lease, waits for gate/go, then releases it (as the playbooks'
    last play does); returns once it holds the lease."""
    play = [{"hosts": "localhost", "gather_facts": False, "connection": "local", "tasks": [
        {"name": "take", "pgrepl.streaming.node_prepare": prepare(server, lease), "register": "node"},
        {"name": "work", "ansible.builtin.wait_for": {"path": str(gate / "go"), "timeout": 120}},
        {"name": "release",
         "pgrepl.streaming.node_prepare": {"lease": "release", "lease_path": "{{ node.lease.path }}"}}]}]
    playbook = gate / "holder.yml"
    playbook.write_text(json.dumps(play), encoding="utf-8")
    proc = subprocess.Popen([str(VENV_BIN / "ansible-playbook"), "-i", "localhost,", str(playbook)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ansible_env(),
                            start_new_session=True)
    deadline = time.monotonic() + 120
    while not (lease.exists() and lease.read_text(encoding="utf-8")):
        assert proc.poll() is None and time.monotonic() < deadline, "the holding run never took the lease"
        time.sleep(0.2)
    return proc


def test_a_second_run_is_refused_while_the_first_holds_it(server: PgCluster, lease: Path, gate: Path) -> None:
    first = holding_run(server, lease, gate)
    try:
        second = run_module("node_prepare", prepare(server, lease))
        assert second.get("failed") is True, second
        assert f"pid {first.pid}" in second["msg"] and "holder.yml" in second["msg"], second["msg"]
        assert second["lease_holder"]["pid"] == first.pid
    finally:
        (gate / "go").touch()
        first.wait(timeout=120)
    assert first.returncode == 0 and lease.read_text(encoding="utf-8") == ""  # released at its end
    after = run_module("node_prepare", prepare(server, lease))
    assert (after["lease"]["decision"], after.get("warnings")) == ("free", None), after


def test_a_killed_run_does_not_block_the_next_one(server: PgCluster, lease: Path, gate: Path) -> None:
    killed = holding_run(server, lease, gate)
    # SIGKILL of the run, its workers included (they run in sessions of their own).
    for pid in [killed.pid, *_descendants(killed.pid)]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    killed.wait()
    assert record(lease)["pid"] == killed.pid  # type: ignore[index]  # never released
    rerun = run_module("node_prepare", prepare(server, lease))
    assert rerun.get("failed") is not True, rerun
    assert rerun["lease"]["replaced"]["pid"] == killed.pid
    assert any("has ended" in warning for warning in rerun["warnings"])


def test_an_interrupted_run_leaves_a_lease_the_next_run_handles(server: PgCluster, lease: Path, gate: Path) -> None:
    # Ctrl-C: SIGINT to ansible-playbook's process group while a task of the run that holds the lease is running.
    interrupted = holding_run(server, lease, gate)
    os.killpg(interrupted.pid, signal.SIGINT)
    try:
        interrupted.wait(timeout=90)
    except subprocess.TimeoutExpired:  # what the fault bench does after 90 s, so that the test never hangs
        os.killpg(interrupted.pid, signal.SIGKILL)
        interrupted.wait()
        pytest.fail("ansible-playbook did not stop within 90 s of SIGINT")
    assert not any(process_start(pid) for pid in [interrupted.pid, *_descendants(interrupted.pid)])
    # Whole JSON or empty, never torn; Ansible usually stops (exit 99) before the release task, and may also finish
    # its run: either way the file is one the next run takes without a refusal.
    held = record(lease)
    if interrupted.returncode == 0:
        assert held is None  # the run went on to its release task
    else:
        assert held is not None and held["pid"] == interrupted.pid and held["pid_start"]
    rerun = run_module("node_prepare", prepare(server, lease))
    assert rerun.get("failed") is not True, rerun
    if held is None:
        assert rerun["lease"]["decision"] == "free", rerun
    else:
        assert rerun["lease"]["replaced"]["pid"] == interrupted.pid, rerun
        assert any("has ended" in warning for warning in rerun["warnings"]), rerun["warnings"]
    assert record(lease)["run_id"] == rerun["lease"]["holder"]["run_id"]  # type: ignore[index]
