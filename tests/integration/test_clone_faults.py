# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pgrepl.streaming.standby_clone when a run is cut off or overlaps another: a play killed mid-pg_basebackup leaves
no pg_basebackup behind and its partial copy is removed by the next run, which clones; a run cut off between the
swap's two renames is finished by the next run without copying again; a second run on the same data directory at
the same time is refused at once, naming the holder, with nothing changed. Real primary, real pg_basebackup,
real ansible-playbook processes killed with SIGKILL."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from ansible_collections.pgrepl.streaming.plugins.module_utils._lock import lock_path

from ansible_runner import ansible_env, run_tasks
from cluster import CloneBench, Clusters, clone_bench, find_bin_dir, moved_siblings

MODULE = "pgrepl.streaming.standby_clone"
ROLE = "clone_faults_rep"
PASSWORD = "clone-faults-rep-pw-7Kq"


@pytest.fixture(scope="module")
def bench(throwaway: Clusters) -> CloneBench:
    """A primary of this file's own: a spread checkpoint on it keeps pg_basebackup busy long enough to be cut off."""
    return clone_bench(throwaway, ROLE, PASSWORD, conf="checkpoint_timeout = 30min\n"
                       "checkpoint_completion_target = 0.9\nbgwriter_lru_maxpages = 0\n")


def clone(args: dict[str, Any]) -> dict[str, Any]:
    run = run_tasks([{"name": "under test", MODULE: args, "register": "clone_result"},
                     {"name": "show", "ansible.builtin.debug": {"var": "clone_result"}}])
    assert len(run.results) == 2, f"{run.stdout}\n{run.stderr}"
    return run.results[1]["clone_result"]


def processes_naming(text: str) -> list[int]:
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:
            continue
        if text in cmdline and "pytest" not in cmdline:
            found.append(int(pid))
    return found


def ancestors(pid: int) -> list[int]:
    """The parent, grandparent, ... of a process (as long as they are there)."""
    chain: list[int] = []
    while pid > 1:
        try:
            status = Path(f"/proc/{pid}/status").read_text(encoding="utf-8")
        except OSError:
            break
        pid = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("PPid:"))
        chain.append(pid)
    return chain


def wait_until(predicate: Any, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return bool(predicate())


def sysid(data_dir: Path) -> str:
    out = subprocess.run([str(find_bin_dir() / "pg_controldata"), "-D", str(data_dir)], capture_output=True,
                         text=True, env={**os.environ, "LC_ALL": "C"}, check=True).stdout
    return next(line.split(":", 1)[1].strip() for line in out.splitlines()
                if line.startswith("Database system identifier:"))


def test_a_play_killed_mid_copy_leaves_no_pg_basebackup_and_the_rerun_clones(bench: CloneBench) -> None:
    bench.primary.sql("CREATE TABLE IF NOT EXISTS clone_faults_ballast AS SELECT g, repeat('x', 200) AS pad "
                      "FROM generate_series(1, 40000) AS g")
    cluster = bench.target("killed")
    partial = f"{cluster.data_dir}.pgrepl-clone-"
    with tempfile.TemporaryDirectory(prefix="pgrepl-play-") as tmp:
        playbook = Path(tmp) / "play.yml"
        playbook.write_text(json.dumps([{"hosts": "localhost", "gather_facts": False, "connection": "local",
                                         # The slowest rate pg_basebackup takes: the kill below always lands
                                         # mid-copy, however late a loaded machine lets this test look.
                                         "tasks": [{MODULE: bench.args(cluster.data_dir, checkpoint="spread",
                                                                       max_rate="32k")}]}]))
        play = subprocess.Popen(["ansible-playbook", "-i", "localhost,", str(playbook)], env=ansible_env(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            assert wait_until(lambda: processes_naming(partial), 60), "pg_basebackup never started"
            # The play cut off and its module killed, as when the controller's job is killed and its SSH session
            # to the host ends (Ansible's workers run in sessions of their own, so the module is killed by pid).
            # This play's module: the standby_clone process that runs this copy's pg_basebackup (other tests and
            # other users of the machine run standby_clone at the same time: never a process found by name alone).
            ours = {pid for copy in processes_naming(partial) for pid in ancestors(copy)}
            modules = [pid for pid in processes_naming("AnsiballZ_standby_clone") if pid in ours]
            assert modules, "the module's process was not found"
            os.killpg(play.pid, signal.SIGKILL)
            for pid in modules:
                with contextlib.suppress(ProcessLookupError):  # already gone with the play: as good
                    os.kill(pid, signal.SIGKILL)
            play.wait(timeout=30)
        finally:
            if play.poll() is None:
                os.killpg(play.pid, signal.SIGKILL)
    # No pg_basebackup (running as postgres, in its own session) outlived the module.
    assert wait_until(lambda: not processes_naming(partial), 10), processes_naming(partial)
    left = moved_siblings(cluster.data_dir)
    assert len(left) == 1 and left[0].startswith(cluster.data_dir.name + ".pgrepl-clone-"), left
    assert not cluster.data_dir.exists()

    result = clone(bench.args(cluster.data_dir))
    assert result.get("failed") is not True, result
    assert (result["changed"], result["outcome"]) == (True, "cloned")
    assert any("an interrupted run left" in warning for warning in result.get("warnings", [])), result
    assert moved_siblings(cluster.data_dir) == [], "the partial copy was not removed"
    assert sysid(cluster.data_dir) == bench.primary.scalar("SELECT system_identifier::text FROM pg_control_system()")
    assert (cluster.data_dir / "standby.signal").is_file()


def test_a_swap_cut_off_between_its_renames_is_finished_without_copying_again(bench: CloneBench) -> None:
    cluster = bench.target("swap")
    first = clone(bench.args(cluster.data_dir))
    assert first["outcome"] == "cloned", first
    # As a run killed after moving the old directory aside and before renaming the finished copy leaves it.
    ready = Path(f"{cluster.data_dir}.pgrepl-ready-20260101T000000Z")
    os.rename(cluster.data_dir, ready)
    inode = ready.stat().st_ino

    result = clone(bench.args(cluster.data_dir))
    assert result.get("failed") is not True, result
    assert (result["changed"], result["outcome"], result["pg_basebackup"]) == (True, "swapped_in", None)
    assert cluster.data_dir.stat().st_ino == inode, "the finished copy was not the one put in place"
    assert moved_siblings(cluster.data_dir) == []
    again = clone(bench.args(cluster.data_dir))
    assert (again["changed"], again["outcome"]) == (False, "kept")


def test_a_second_run_on_the_same_data_directory_is_refused_naming_the_holder(bench: CloneBench) -> None:
    cluster = bench.target("locked")
    path = lock_path(str(cluster.data_dir))
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(fd, json.dumps({"pid": os.getpid(), "what": "a test holding the lock", "since": time.time()}).encode())
        result = clone(bench.args(cluster.data_dir))
    finally:
        os.close(fd)
    assert result.get("failed") is True, result
    assert f"pid {os.getpid()}, a test holding the lock" in result["msg"], result["msg"]
    assert "nothing was changed" in result["msg"]
    assert not cluster.data_dir.exists() and moved_siblings(cluster.data_dir) == []
    # The lock is the kernel's: the holder gone, the next run goes on, and removes the file when it ends.
    assert clone(bench.args(cluster.data_dir))["outcome"] == "cloned"
    assert not os.path.exists(path)
