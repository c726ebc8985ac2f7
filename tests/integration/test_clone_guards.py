# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pgrepl.streaming.standby_clone's refusals before anything stops: a copy that does not fit on the standby's
filesystem (the primary's data size from node_prepare) is refused with the standby still running and its data
directory untouched; the check can be turned off. Another cluster in the data directory that holds data or is a
standby of another primary is replaced only with replace_existing_data (refused otherwise, its server running on,
its data untouched); a freshly created one is replaced without it. Real primary, real streaming standby, real
pg_basebackup."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from ansible_collections.pgrepl.streaming.plugins.module_utils._space import space_needed

from ansible_runner import run_module
from cluster import CloneBench, Clusters, PgCluster, clone_bench, find_bin_dir, moved_siblings

MODULE = "pgrepl.streaming.standby_clone"
ROLE = "clone_guards_rep"
PASSWORD = "clone-guards-rep-pw-3Tz"
# A unit that does not exist: a run that got as far as stopping would fail on it, not on the refusal under test.
NO_UNIT = "pgrepl-test-never-stopped.service"
PEBIBYTE = 1024 ** 5


@pytest.fixture(scope="module")
def bench(throwaway: Clusters) -> CloneBench:
    return clone_bench(throwaway, ROLE, PASSWORD)


def layout_args(cluster: PgCluster) -> dict[str, Any]:
    return {"data_dir": str(cluster.data_dir), "config_dir": str(cluster.data_dir), "bin_dir": str(cluster.bin_dir),
            "socket_dir": str(cluster.socket_dir), "port": cluster.port, "service": "pgrepl-test-none",
            "install": False}


def postmaster_identity(cluster: PgCluster) -> tuple[str, str]:
    """(pid, start time) from postmaster.pid: unchanged means the server was neither stopped nor restarted."""
    lines = (cluster.data_dir / "postmaster.pid").read_text(encoding="utf-8").splitlines()
    return lines[0], lines[2]


def sysid(data_dir: Path) -> str:
    out = subprocess.run([str(find_bin_dir() / "pg_controldata"), "-D", str(data_dir)], capture_output=True,
                         text=True, env={**os.environ, "LC_ALL": "C"}, check=True).stdout
    return next(line.split(":", 1)[1].strip() for line in out.splitlines()
                if line.startswith("Database system identifier:"))


def allocated(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            total += os.lstat(os.path.join(root, name)).st_size
    return total


def test_node_prepare_reports_the_primarys_data_size_and_none_on_a_standby(bench: CloneBench) -> None:
    bench.primary.sql("CREATE TABLE IF NOT EXISTS guards_ballast AS SELECT g, repeat('x', 200) AS pad "
                      "FROM generate_series(1, 20000) AS g")
    bench.primary.sql("CHECKPOINT")
    facts = run_module("pgrepl.streaming.node_prepare", layout_args(bench.primary))
    assert facts.get("failed") is not True, facts
    # What pg_basebackup copies of relation data: base/ (every database) and global/, not pg_wal.
    on_disk = allocated(bench.primary.data_dir / "base") + allocated(bench.primary.data_dir / "global")
    assert isinstance(facts["data_size"], int)
    assert abs(facts["data_size"] - on_disk) <= on_disk * 0.05, (facts["data_size"], on_disk)
    standby = bench.clusters.standby(bench.primary, "size_standby")
    try:
        assert run_module("pgrepl.streaming.node_prepare", layout_args(standby))["data_size"] is None
    finally:
        standby.stop()


def test_a_copy_that_does_not_fit_is_refused_with_the_standby_running_and_untouched(bench: CloneBench) -> None:
    standby = bench.clusters.standby(bench.primary, "running_standby")
    identity = postmaster_identity(standby)
    inode = standby.data_dir.stat().st_ino
    names = sorted(os.listdir(standby.data_dir))
    args = bench.args(standby.data_dir, force_reclone=True, stop_service=NO_UNIT, data_size=PEBIBYTE)
    for mode in ({"check": True}, {"check": False}, {"check": False, "preflight": True}):
        call = {**args, "preflight": mode.get("preflight", False)}
        result = run_module(MODULE, call, check=mode["check"])
        assert result.get("failed") is True, (mode, result)
        message = result["msg"]
        assert "not enough free space" in message and repr(str(standby.data_dir.parent)) in message, message
        assert "1126.4 TiB" in message and "1024.0 TiB of data" in message, message
        assert "space_check: false" in message and "Nothing was stopped" in message
        assert NO_UNIT not in message, "the refusal must come before the stop"
    # The standby never stopped: same postmaster, same directory, still streaming and replaying.
    assert postmaster_identity(standby) == identity
    assert standby.data_dir.stat().st_ino == inode and sorted(os.listdir(standby.data_dir)) == names
    assert (standby.data_dir / "standby.signal").is_file()
    assert sysid(standby.data_dir) == str(bench.primary.scalar("SELECT system_identifier FROM pg_control_system()"))
    assert moved_siblings(standby.data_dir) == []
    bench.primary.sql("CREATE TABLE guards_after_refusal (n int)")
    standby.wait_streaming()
    lsn = bench.primary.scalar("SELECT pg_current_wal_lsn()::text")
    for _attempt in range(100):
        if standby.scalar("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,)):
            break
        time.sleep(0.1)
    assert standby.scalar("SELECT to_regclass('guards_after_refusal') IS NOT NULL") is True
    standby.stop()


def test_a_copy_that_fits_is_made_and_space_check_false_skips_the_check(bench: CloneBench) -> None:
    size = run_module("pgrepl.streaming.node_prepare", layout_args(bench.primary))["data_size"]
    parent = bench.target("fits").data_dir.parent
    stats = os.statvfs(parent)
    assert stats.f_bavail * stats.f_frsize > space_needed(size), "this test needs the room for a small copy"
    target = bench.target("fits")
    result = run_module(MODULE, bench.args(target.data_dir, data_size=size))
    assert (result.get("failed"), result["outcome"]) == (None, "cloned"), result
    assert sysid(target.data_dir) == result["system_identifier"]
    forced = bench.target("unchecked")
    result = run_module(MODULE, bench.args(forced.data_dir, data_size=PEBIBYTE, space_check=False))
    assert (result.get("failed"), result["outcome"]) == (None, "cloned"), result
    assert (forced.data_dir / "standby.signal").is_file()


def test_bad_data_size_is_refused_naming_the_option(bench: CloneBench) -> None:
    target = bench.target("bad")
    result = run_module(MODULE, bench.args(target.data_dir, data_size=-5))
    assert result.get("failed") is True and "data_size: -5 is not a number of bytes" in result["msg"], result
    assert not target.data_dir.exists() and moved_siblings(target.data_dir) == []


def snapshot(root: Path) -> dict[str, tuple]:
    """Every file below root: type, mode, size and a hash of regular files (the server stopped)."""
    found: dict[str, tuple] = {}
    for current, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(current) / name
            st = path.lstat()
            digest = hashlib.sha256(path.read_bytes()).hexdigest() if stat.S_ISREG(st.st_mode) else ""
            found[str(path.relative_to(root))] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_size,
                                                  digest)
    return found


def refused_alike(bench: CloneBench, cluster: PgCluster, expected: str) -> None:
    """Check mode, preflight and a real run with stop_service all refuse, naming data_dir, what it holds and the
    option; the cluster's server runs on, not restarted."""
    identity = postmaster_identity(cluster)
    args = bench.args(cluster.data_dir, stop_service=NO_UNIT)
    for check, preflight in ((True, False), (False, True), (False, False)):
        result = run_module(MODULE, {**args, "preflight": preflight}, check=check)
        assert result.get("failed") is True, (check, preflight, result)
        message = result["msg"]
        assert "not a freshly created package cluster" in message and expected in message, message
        assert repr(str(cluster.data_dir)) in message and "replace_existing_data: true" in message
        assert "pgrepl_replace_existing_data" in message and "Nothing was stopped or changed" in message
        assert "its server is running" in message and NO_UNIT not in message
    assert postmaster_identity(cluster) == identity
    assert moved_siblings(cluster.data_dir) == []


def test_a_running_fresh_cluster_needs_no_consent(bench: CloneBench) -> None:
    fresh = bench.clusters.server("fresh_pkg")
    fresh.sql("CHECKPOINT")
    result = run_module(MODULE, bench.args(fresh.data_dir, stop_service=NO_UNIT), check=True)
    assert (result.get("failed"), result["outcome"]) == (None, "would_clone"), result
    assert result["moved_aside_to"].startswith(f"{fresh.data_dir}.pgrepl-moved-")
    fresh.stop()


def test_a_running_cluster_with_a_user_table_is_refused_and_keeps_running(bench: CloneBench) -> None:
    other = bench.clusters.server("with_table")
    other.sql("CREATE TABLE precious (note text)")
    other.sql("INSERT INTO precious VALUES ('keep me')")
    other.sql("CHECKPOINT")
    refused_alike(bench, other, "tables or other relations created in template1 or postgres")
    assert other.scalar("SELECT note FROM precious") == "keep me"

    # With consent (the server stopped here: stop_service needs systemd), it is moved aside whole, then cloned.
    other.stop()
    before = snapshot(other.data_dir)
    result = run_module(MODULE, bench.args(other.data_dir, replace_existing_data=True))
    assert (result.get("failed"), result["outcome"]) == (None, "cloned"), result
    moved = Path(result["moved_aside_to"])
    assert snapshot(moved) == before, "the other cluster must be moved aside unchanged"
    assert sysid(other.data_dir) == result["system_identifier"] != sysid(moved)


def test_a_user_database_is_refused(bench: CloneBench) -> None:
    other = bench.clusters.server("with_db")
    other.sql("CREATE DATABASE appdb")
    refused_alike(bench, other, "1 database(s) besides template0, template1 and postgres")
    other.stop()


def test_a_standby_of_another_primary_is_refused(bench: CloneBench) -> None:
    their_primary, their_standby = bench.clusters.pair("theirs", slot=False)
    refused_alike(bench, their_standby, "standby.signal: it is a standby (or in recovery) of another primary")
    their_standby.wait_streaming()
    their_standby.stop()
    their_primary.stop()
