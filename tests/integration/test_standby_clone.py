"""pgrepl.streaming.standby_clone through Ansible, as root, against the shared primary.

On the shared primary this file creates two roles and two slots (prefixed standby_clone_) and drops them at the
end. Every data directory it clones, initdb's or starts lives in its own temporary directory and is stopped and
removed at the end; the timeout scenario uses a primary of its own (a spread checkpoint it can make slow).
"""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import shutil
import signal
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pytest
from psycopg import sql

from ansible_collections.pgrepl.streaming.plugins.module_utils._rewind_grants import rewind_grant_statements

from ansible_runner import VENV_BIN, ansible_env, run_module, run_tasks
from cluster import CloneBench, Clusters, PgCluster, _as_postgres, clone_bench, find_bin_dir, free_port, moved_siblings

MODULE = "pgrepl.streaming.standby_clone"
ROLE = "standby_clone_rep"
PASSWORD = "standby-clone-rep-pw-9Zt"
NOREP_ROLE = "standby_clone_norep"
NOREP_PASSWORD = "standby-clone-norep-pw-4Qw"
SLOT = "standby_clone_slot"
SLOT2 = "standby_clone_slot2"
APP = "standby_clone_app"


# ---------------------------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------------------------


def clone(args: dict[str, Any], check: bool = False, diff: bool = False) -> dict[str, Any]:
    """The module's own result as a play registers it (the JSON callback overwrites a result key named action)."""
    run = run_tasks([{"name": "under test", MODULE: args, "register": "clone_result"},
                     {"name": "show", "ansible.builtin.debug": {"var": "clone_result"}}], check=check, diff=diff)
    assert len(run.results) == 2, f"{run.stdout}\n{run.stderr}"
    return run.results[1]["clone_result"]


def chown_postgres(path: Path) -> None:
    entry = pwd.getpwnam("postgres")
    os.chown(path, entry.pw_uid, entry.pw_gid)


def write_passfile(path: Path, lines: list[str], mode: int = 0o600, owner_postgres: bool = True) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    os.chmod(path, mode)
    if owner_postgres:
        chown_postgres(path)
    return path


def snapshot(root: Path) -> dict[str, tuple]:
    """Every entry below root (root included): type, mode, owner, size, mtime and a hash of regular files."""
    found: dict[str, tuple] = {}
    if not os.path.lexists(root):
        return found
    for current, dirs, files in os.walk(root, followlinks=False):
        for name in [""] + dirs + files if current == str(root) else dirs + files:
            path = Path(current) / name if name else Path(current)
            st = path.lstat()
            digest = ""
            if stat.S_ISREG(st.st_mode):
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                digest = os.readlink(path)
            found[str(path.relative_to(root))] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid,
                                                  st.st_size, st.st_mtime_ns, digest)
    return found


def pgrepl_siblings(data_dir: Path) -> list[str]:
    """The module's moved-aside and temporary directories beside data_dir."""
    return sorted(name for name in os.listdir(data_dir.parent) if name.startswith(data_dir.name + ".pgrepl-"))


def sysid_of(data_dir: Path) -> str:
    env = dict(os.environ, LC_ALL="C")
    out = subprocess.run([str(find_bin_dir() / "pg_controldata"), "-D", str(data_dir)], capture_output=True,
                         text=True, env=env, check=True).stdout
    for line in out.splitlines():
        if line.startswith("Database system identifier:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"no system identifier in pg_controldata output:\n{out}")


def postmaster_identity(cluster: PgCluster) -> tuple[str, str]:
    """(pid, start time) from postmaster.pid: unchanged means the server was not restarted."""
    lines = (cluster.data_dir / "postmaster.pid").read_text(encoding="utf-8").splitlines()
    return lines[0], lines[2]


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise TimeoutError(f"timed out waiting for {what}")


def processes_mentioning(text: str) -> list[str]:
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                cmdline = handle.read().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(f"{pid}: {cmdline}")
    return found


@dataclass
class Bench:
    """The shared primary plus what this file set up on it, and the clusters to clean up."""

    primary: PgCluster
    work: Path
    passfile: Path
    auth: Path
    clusters: list[PgCluster] = field(default_factory=list)
    mounts: list[Path] = field(default_factory=list)
    counter: int = 0

    def target(self, prefix: str) -> PgCluster:
        """A fresh, not yet existing data directory (work/<unique>/data) whose parent exists."""
        self.counter += 1
        cluster = PgCluster(self.work, f"{prefix}{self.counter}")
        cluster._prepare_dirs()
        self.clusters.append(cluster)
        return cluster

    def args(self, data_dir: Path | str, **overrides: Any) -> dict[str, Any]:
        args: dict[str, Any] = {"data_dir": str(data_dir), "primary_host": "127.0.0.1",
                                "primary_port": self.primary.port, "replication_user": ROLE,
                                "passfile": str(self.passfile), "slot_name": SLOT, "application_name": APP,
                                "sslmode": "disable"}
        args.update(overrides)
        return args

    def start_copy(self, cluster: PgCluster) -> None:
        """Start a cloned copy on its own port and socket (config lines appended, as cluster.py does)."""
        conf = (cluster.data_dir / "postgresql.conf").read_text(encoding="utf-8")
        if f"port = {cluster.port}\n" not in conf:
            cluster._write_local_conf()
        cluster.start()


# ---------------------------------------------------------------------------------------------------------------
# fixtures
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bench(primary: PgCluster) -> Iterator[Bench]:
    work = Path(tempfile.mkdtemp(prefix="pgrepl-clone-"))
    os.chmod(work, 0o755)
    auth = work / "auth"
    auth.mkdir(mode=0o755)
    os.chmod(auth, 0o755)
    primary.sql(sql.SQL("CREATE ROLE {} LOGIN REPLICATION PASSWORD {}").format(
        sql.Identifier(ROLE), sql.Literal(PASSWORD)))
    primary.sql(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
        sql.Identifier(NOREP_ROLE), sql.Literal(NOREP_PASSWORD)))
    for slot in (SLOT, SLOT2):
        primary.sql("SELECT pg_create_physical_replication_slot(%s, true)", (slot,))
    passfile = write_passfile(auth / "good.pgpass", [
        f"127.0.0.1:{primary.port}:replication:{ROLE}:{PASSWORD}",
        f"127.0.0.1:{primary.port}:replication:{NOREP_ROLE}:{NOREP_PASSWORD}",
    ])
    state = Bench(primary=primary, work=work, passfile=passfile, auth=auth)
    try:
        yield state
    finally:
        for cluster in state.clusters:
            try:
                cluster.stop("immediate")
            except subprocess.CalledProcessError:
                pass
        for mount in state.mounts:
            subprocess.run(["umount", "-l", str(mount)], check=False, capture_output=True)
        wait_for(lambda: primary.scalar("SELECT count(*) FROM pg_replication_slots WHERE slot_name IN (%s, %s) "
                                        "AND active", (SLOT, SLOT2)) == 0, "the test slots to be released")
        for slot in (SLOT, SLOT2):
            primary.sql("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = %s",
                        (slot,))
        for role in (ROLE, NOREP_ROLE):
            primary.sql(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
        shutil.rmtree(work, ignore_errors=True)


@dataclass
class FirstClone:
    cluster: PgCluster
    check: dict[str, Any]
    existed_after_check: bool
    siblings_after_check: list[str]
    real: dict[str, Any]
    args: dict[str, Any]


@pytest.fixture(scope="module")
def first(bench: Bench) -> FirstClone:
    """A copy cloned into a missing directory: check mode first, then the real run (both with diff)."""
    cluster = bench.target("first")
    args = bench.args(cluster.data_dir)
    checked = clone(args, check=True, diff=True)
    existed = os.path.lexists(cluster.data_dir)
    siblings = pgrepl_siblings(cluster.data_dir)
    real = clone(args, diff=True)
    return FirstClone(cluster, checked, existed, siblings, real, args)


def stopped(bench: Bench, cluster: PgCluster) -> None:
    cluster.stop("fast")
    wait_for(lambda: not (cluster.data_dir / "postmaster.pid").exists(), "the copy to stop")


# ---------------------------------------------------------------------------------------------------------------
# a copy into a missing directory, its stream, and idempotence
# ---------------------------------------------------------------------------------------------------------------


def test_check_mode_predicts_the_clone_and_creates_nothing(bench: Bench, first: FirstClone) -> None:
    assert first.check.get("failed") is not True, first.check
    assert first.check["changed"] is True
    assert first.check["outcome"] == "would_clone"
    assert first.check["moved_aside_to"] is None
    assert first.check["data_dir_state"] == "missing"
    assert first.check["log"] == []
    assert first.existed_after_check is False
    assert first.siblings_after_check == []


def test_check_mode_diff_predicts_a_standby_of_the_primary(bench: Bench, first: FirstClone) -> None:
    assert first.check["diff"] == {"before": {"data_dir_state": "missing", "moved_aside_to": None},
                                   "after": {"data_dir_state": "standby-of-primary", "moved_aside_to": None}}


def test_clone_result(bench: Bench, first: FirstClone) -> None:
    sysid = bench.primary.scalar("SELECT system_identifier::text FROM pg_control_system()")
    result = first.real
    assert result.get("failed") is not True, result
    assert (result["changed"], result["outcome"], result["moved_aside_to"]) == (True, "cloned", None)
    assert result["system_identifier"] == sysid
    assert result["primary_timeline"] == 1
    assert (result["slot_name"], result["application_name"]) == (SLOT, APP)
    assert result["pg_basebackup"] == str(find_bin_dir() / "pg_basebackup")
    assert any("base backup completed" in line for line in result["log"]), result["log"]
    assert result["diff"] == first.check["diff"]
    assert PASSWORD not in json.dumps(result)


def test_clone_is_a_standby_copy_owned_by_postgres(bench: Bench, first: FirstClone) -> None:
    data_dir = first.cluster.data_dir
    st = data_dir.stat()
    assert stat.S_IMODE(st.st_mode) == 0o700
    assert (st.st_uid, st.st_gid) == (pwd.getpwnam("postgres").pw_uid, pwd.getpwnam("postgres").pw_gid)
    assert (data_dir / "standby.signal").is_file()
    assert sysid_of(data_dir) == bench.primary.scalar("SELECT system_identifier::text FROM pg_control_system()")
    assert pgrepl_siblings(data_dir) == []


def test_clone_conninfo_has_passfile_slot_and_no_password(bench: Bench, first: FirstClone) -> None:
    auto_conf = (first.cluster.data_dir / "postgresql.auto.conf").read_text(encoding="utf-8")
    assert PASSWORD not in auto_conf
    assert "password=" not in auto_conf
    assert f"passfile=''{bench.passfile}''" in auto_conf
    assert f"user={ROLE}" in auto_conf and f"application_name={APP}" in auto_conf
    assert f"primary_slot_name = '{SLOT}'" in auto_conf


def test_clone_streams_from_the_primary_through_the_slot(bench: Bench, first: FirstClone) -> None:
    cluster = first.cluster
    bench.start_copy(cluster)
    try:
        cluster.wait_streaming()
        wait_for(lambda: bench.primary.scalar(
            "SELECT count(*) FROM pg_stat_replication WHERE application_name = %s AND usename = %s "
            "AND state = 'streaming'", (APP, ROLE)) == 1, "pg_stat_replication to show the copy")
        slot = bench.primary.sql("SELECT s.active, r.application_name FROM pg_replication_slots s "
                                 "JOIN pg_stat_replication r ON r.pid = s.active_pid WHERE s.slot_name = %s", (SLOT,))
        assert slot == [(True, APP)]
        assert cluster.scalar("SELECT pg_is_in_recovery()") is True
    finally:
        stopped(bench, cluster)


def test_rerun_on_the_running_copy_is_kept_and_does_not_restart_it(bench: Bench, first: FirstClone) -> None:
    cluster = first.cluster
    bench.start_copy(cluster)
    try:
        cluster.wait_streaming()
        before = postmaster_identity(cluster)
        checked = clone(first.args, check=True)
        result = clone(first.args, diff=True)
        assert (checked["changed"], checked["outcome"]) == (False, "kept")
        assert (result["changed"], result["outcome"], result["moved_aside_to"]) == (False, "kept", None)
        assert result["data_dir_state"] == "standby-of-primary"
        assert result["diff"]["before"] == result["diff"]["after"]
        assert postmaster_identity(cluster) == before
        assert pgrepl_siblings(cluster.data_dir) == []
    finally:
        stopped(bench, cluster)


def test_rerun_on_the_stopped_copy_is_kept_and_touches_nothing(bench: Bench, first: FirstClone) -> None:
    cluster = first.cluster
    before = snapshot(cluster.data_dir)
    result = clone(first.args)
    assert (result["changed"], result["outcome"]) == (False, "kept")
    assert snapshot(cluster.data_dir) == before
    assert pgrepl_siblings(cluster.data_dir) == []


# ---------------------------------------------------------------------------------------------------------------
# what the data directory holds
# ---------------------------------------------------------------------------------------------------------------


def test_an_existing_empty_directory_is_replaced_by_the_copy(bench: Bench) -> None:
    cluster = bench.target("empty")
    cluster.data_dir.mkdir(mode=0o755)
    checked = clone(bench.args(cluster.data_dir), check=True)
    assert (checked["changed"], checked["outcome"], checked["data_dir_state"]) == (True, "would_clone", "empty")
    assert list(cluster.data_dir.iterdir()) == [] and stat.S_IMODE(cluster.data_dir.stat().st_mode) == 0o755
    result = clone(bench.args(cluster.data_dir))
    assert (result["changed"], result["outcome"], result["moved_aside_to"]) == (True, "cloned", None)
    assert stat.S_IMODE(cluster.data_dir.stat().st_mode) == 0o700
    assert (cluster.data_dir / "PG_VERSION").is_file() and pgrepl_siblings(cluster.data_dir) == []
    again = clone(bench.args(cluster.data_dir))
    assert (again["changed"], again["outcome"]) == (False, "kept")


def test_another_cluster_is_moved_aside_intact_then_cloned(bench: Bench) -> None:
    cluster = bench.target("other")
    cluster.init()
    other_sysid = sysid_of(cluster.data_dir)
    before = snapshot(cluster.data_dir)
    args = bench.args(cluster.data_dir)

    checked = clone(args, check=True, diff=True)
    assert (checked["changed"], checked["outcome"]) == (True, "would_clone")
    assert checked["data_dir_state"] == f"other-cluster({other_sysid})"
    assert checked["moved_aside_to"].startswith(f"{cluster.data_dir}.pgrepl-moved-")
    assert checked["diff"]["before"] == {"data_dir_state": f"other-cluster({other_sysid})", "moved_aside_to": None}
    assert checked["diff"]["after"]["moved_aside_to"] == checked["moved_aside_to"]
    assert snapshot(cluster.data_dir) == before and pgrepl_siblings(cluster.data_dir) == []

    result = clone(args)
    assert (result["changed"], result["outcome"]) == (True, "cloned")
    moved = Path(result["moved_aside_to"])
    assert moved.parent == cluster.data_dir.parent
    stamp = moved.name.split(".pgrepl-moved-")[1]
    assert time.strptime(stamp, "%Y%m%dT%H%M%SZ")
    assert snapshot(moved) == before, "the old cluster must be moved aside unchanged"
    assert (moved / "PG_VERSION").read_text(encoding="utf-8").strip() == "15"
    assert sysid_of(moved) == other_sysid
    assert sysid_of(cluster.data_dir) == result["system_identifier"] != other_sysid
    assert pgrepl_siblings(cluster.data_dir) == [moved.name]

    again = clone(args)
    assert (again["changed"], again["outcome"], again["moved_aside_to"]) == (False, "kept", None)
    assert pgrepl_siblings(cluster.data_dir) == [moved.name]


def test_other_files_are_moved_aside(bench: Bench) -> None:
    cluster = bench.target("files")
    cluster.data_dir.mkdir()
    (cluster.data_dir / "notes.txt").write_text("keep me\n", encoding="utf-8")
    result = clone(bench.args(cluster.data_dir))
    assert (result["changed"], result["outcome"], result["data_dir_state"]) == (True, "cloned", "files")
    assert (Path(result["moved_aside_to"]) / "notes.txt").read_text(encoding="utf-8") == "keep me\n"
    assert (cluster.data_dir / "standby.signal").is_file()


def test_move_aside_false_refuses_and_leaves_the_other_cluster_alone(bench: Bench) -> None:
    cluster = bench.target("keepout")
    cluster.init()
    before = snapshot(cluster.data_dir)
    for check in (True, False):
        result = clone(bench.args(cluster.data_dir, move_aside=False), check=check)
        assert result["failed"] is True
        assert "holds another cluster" in result["msg"] and "move_aside is false: nothing was changed" in result["msg"]
    assert snapshot(cluster.data_dir) == before
    assert pgrepl_siblings(cluster.data_dir) == []


def test_a_running_server_in_the_target_is_refused(bench: Bench) -> None:
    cluster = bench.target("running")
    cluster.init()
    cluster.start()
    try:
        identity = postmaster_identity(cluster)
        names = sorted(os.listdir(cluster.data_dir))
        result = clone(bench.args(cluster.data_dir))
        assert result["failed"] is True
        assert "stop the server first" in result["msg"] and f"live process {identity[0]}" in result["msg"]
        assert postmaster_identity(cluster) == identity
        assert sorted(os.listdir(cluster.data_dir)) == names
        assert cluster.scalar("SELECT 1") == 1
        assert pgrepl_siblings(cluster.data_dir) == []
    finally:
        cluster.stop("fast")


def test_a_symlinked_data_dir_is_refused(bench: Bench) -> None:
    cluster = bench.target("link")
    real = cluster.data_dir.parent / "real"
    real.mkdir()
    (real / "file.txt").write_text("x", encoding="utf-8")
    cluster.data_dir.symlink_to(real)
    before = snapshot(cluster.data_dir.parent)
    result = clone(bench.args(cluster.data_dir))
    assert result["failed"] is True
    assert result["msg"].startswith(f"data_dir is a symlink to {real}: give the real path")
    assert snapshot(cluster.data_dir.parent) == before


def test_a_config_directory_is_refused(bench: Bench) -> None:
    cluster = bench.target("etc")
    conf_dir = cluster.data_dir
    conf_dir.mkdir()
    (conf_dir / "postgresql.conf").write_text("data_directory = '/var/lib/postgresql/15/main'\n", encoding="utf-8")
    (conf_dir / "pg_hba.conf").write_text("local all postgres peer\n", encoding="utf-8")
    before = snapshot(conf_dir)
    result = clone(bench.args(conf_dir))
    assert result["failed"] is True
    assert "looks like a PostgreSQL configuration directory" in result["msg"]
    assert snapshot(conf_dir) == before and pgrepl_siblings(conf_dir) == []


def test_a_wrong_password_is_refused_before_anything_changes(bench: Bench) -> None:
    cluster = bench.target("wrongpw")
    cluster.data_dir.mkdir()
    (cluster.data_dir / "notes.txt").write_text("keep me\n", encoding="utf-8")
    wrong = write_passfile(bench.auth / "wrong.pgpass", [f"127.0.0.1:{bench.primary.port}:replication:{ROLE}:nope"])
    before = snapshot(cluster.data_dir)
    for check in (True, False):
        result = clone(bench.args(cluster.data_dir, passfile=str(wrong)), check=check)
        assert result["failed"] is True
        assert result["msg"].startswith(
            f"cannot open a replication connection to the primary (primary_host=127.0.0.1 "
            f"primary_port={bench.primary.port} replication_user={ROLE}): the password for {ROLE} in passfile")
        assert "password authentication failed" in result["msg"] and "nothing was changed" in result["msg"]
        assert snapshot(cluster.data_dir) == before
        assert pgrepl_siblings(cluster.data_dir) == []


def test_a_password_in_the_environment_is_never_used(bench: Bench, monkeypatch: pytest.MonkeyPatch) -> None:
    """PGPASSWORD would let the connection test pass while pg_basebackup (clean environment) fails: ignored."""
    cluster = bench.target("envpw")
    wrong = write_passfile(bench.auth / "env.pgpass", [f"127.0.0.1:{bench.primary.port}:replication:{ROLE}:nope"])
    monkeypatch.setenv("PGPASSWORD", PASSWORD)
    result = clone(bench.args(cluster.data_dir, passfile=str(wrong)))
    assert result["failed"] is True, result
    assert result["msg"].startswith("cannot open a replication connection to the primary")
    assert "password authentication failed" in result["msg"]
    assert not os.path.lexists(cluster.data_dir) and pgrepl_siblings(cluster.data_dir) == []


def test_a_missing_slot_fails_clearly_and_leaves_no_directory(bench: Bench) -> None:
    cluster = bench.target("noslot")
    args = bench.args(cluster.data_dir, slot_name="standby_clone_nosuch")
    checked = clone(args, check=True)
    assert (checked["changed"], checked["outcome"]) == (True, "would_clone")
    assert any("'standby_clone_nosuch' does not exist on the primary" in warning and "would fail" in warning
               for warning in checked.get("warnings", [])), checked
    result = clone(args)
    assert result["failed"] is True
    assert result["msg"].startswith("slot_name: the replication slot 'standby_clone_nosuch' does not exist on the "
                                    f"primary (127.0.0.1:{bench.primary.port}): create it first")
    assert not os.path.lexists(cluster.data_dir)
    assert pgrepl_siblings(cluster.data_dir) == []


def test_a_former_primary_is_refused_then_force_reclone_moves_it_aside(bench: Bench) -> None:
    cluster = bench.target("former")
    args = bench.args(cluster.data_dir, slot_name=SLOT2, application_name="standby_clone_former")
    assert clone(args)["outcome"] == "cloned"
    bench.start_copy(cluster)
    try:
        cluster.wait_streaming()
        _as_postgres([str(cluster.bin_dir / "pg_ctl"), "-D", str(cluster.data_dir), "-w", "promote"])
        wait_for(lambda: cluster.scalar("SELECT pg_is_in_recovery()") is False, "the copy to be promoted")
    finally:
        stopped(bench, cluster)
    sysid = sysid_of(cluster.data_dir)
    assert not (cluster.data_dir / "standby.signal").exists()
    before = snapshot(cluster.data_dir)

    refused = clone(args)
    assert refused["failed"] is True
    assert refused["msg"].startswith(
        f"data_dir holds a former primary of the same cluster (system identifier {sysid}): rejoin it with "
        "pg_rewind (pgrepl.streaming.rejoin) or set force_reclone")
    assert snapshot(cluster.data_dir) == before and pgrepl_siblings(cluster.data_dir) == []

    forced = dict(args, force_reclone=True)
    checked = clone(forced, check=True)
    assert (checked["changed"], checked["outcome"]) == (True, "would_clone")
    assert checked["data_dir_state"] == f"former-primary({sysid})" and checked["moved_aside_to"]
    assert snapshot(cluster.data_dir) == before and pgrepl_siblings(cluster.data_dir) == []

    result = clone(forced)
    assert (result["changed"], result["outcome"]) == (True, "cloned")
    moved = Path(result["moved_aside_to"])
    assert snapshot(moved) == before
    assert (cluster.data_dir / "standby.signal").is_file()
    assert clone(args)["outcome"] == "kept"


def test_force_reclone_of_a_copy_moves_the_copy_aside(bench: Bench) -> None:
    cluster = bench.target("force")
    args = bench.args(cluster.data_dir)
    assert clone(args)["outcome"] == "cloned"
    before = snapshot(cluster.data_dir)
    forced = dict(args, force_reclone=True)
    checked = clone(forced, check=True, diff=True)
    assert (checked["changed"], checked["outcome"], checked["data_dir_state"]) == (
        True, "would_clone", "standby-of-primary")
    assert checked["diff"]["after"]["moved_aside_to"] == checked["moved_aside_to"]
    assert snapshot(cluster.data_dir) == before
    result = clone(forced)
    assert (result["changed"], result["outcome"]) == (True, "cloned")
    assert snapshot(Path(result["moved_aside_to"])) == before
    assert sysid_of(cluster.data_dir) == result["system_identifier"]
    assert clone(args)["changed"] is False


def test_an_empty_mount_point_is_cloned_in_place(bench: Bench) -> None:
    cluster = bench.target("mnt")
    cluster.data_dir.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256m,mode=0755", "tmpfs", str(cluster.data_dir)],
                   check=True, capture_output=True)
    bench.mounts.append(cluster.data_dir)
    try:
        result = clone(bench.args(cluster.data_dir))
        assert (result["changed"], result["outcome"], result["moved_aside_to"]) == (True, "cloned", None)
        assert os.path.ismount(cluster.data_dir)
        st = cluster.data_dir.stat()
        assert (stat.S_IMODE(st.st_mode), st.st_uid) == (0o700, pwd.getpwnam("postgres").pw_uid)
        assert sysid_of(cluster.data_dir) == result["system_identifier"]
        assert clone(bench.args(cluster.data_dir))["outcome"] == "kept"
        before = snapshot(cluster.data_dir)
        refused = clone(bench.args(cluster.data_dir, force_reclone=True))
        assert refused["failed"] is True and "is a mount point" in refused["msg"]
        assert snapshot(cluster.data_dir) == before and pgrepl_siblings(cluster.data_dir) == []
    finally:
        subprocess.run(["umount", str(cluster.data_dir)], check=True, capture_output=True)
        bench.mounts.remove(cluster.data_dir)


def test_the_timeout_stops_pg_basebackup_and_removes_the_temporary_copy(bench: Bench) -> None:
    """A primary of this test's own, with dirty buffers, so that a spread checkpoint surely outlasts timeout=1."""
    source = PgCluster(bench.work, "slowprimary")
    source.init()
    with open(source.data_dir / "postgresql.conf", "a", encoding="utf-8") as conf:
        conf.write("checkpoint_timeout = 30min\ncheckpoint_completion_target = 0.9\nbgwriter_lru_maxpages = 0\n")
    bench.clusters.append(source)
    source.start()
    source.sql(sql.SQL("CREATE ROLE {} LOGIN REPLICATION PASSWORD {}").format(
        sql.Identifier(ROLE), sql.Literal(PASSWORD)))
    source.sql("CREATE TABLE standby_clone_ballast AS SELECT g, repeat('x', 200) AS pad "
               "FROM generate_series(1, 40000) AS g")
    passfile = write_passfile(bench.auth / "slow.pgpass", [f"127.0.0.1:{source.port}:replication:{ROLE}:{PASSWORD}"])
    cluster = bench.target("timeout")
    args = bench.args(cluster.data_dir, primary_port=source.port, passfile=str(passfile), slot_name=None,
                      checkpoint="spread", timeout=1)
    started = time.monotonic()
    result = clone(args)
    assert result["failed"] is True
    assert "did not finish within timeout=1s and was stopped" in result["msg"], result["msg"]
    assert time.monotonic() - started < 60
    assert not os.path.lexists(cluster.data_dir)
    assert pgrepl_siblings(cluster.data_dir) == []
    assert processes_mentioning(f"{cluster.data_dir}.pgrepl-clone-") == []


# ---------------------------------------------------------------------------------------------------------------
# bad input: failed, a message naming the option and the value, nothing changed on disk
# ---------------------------------------------------------------------------------------------------------------


def _unreachable(bench: Bench, target: Path) -> dict[str, Any]:
    return bench.args(target, primary_port=free_port())


def _open_passfile(bench: Bench, target: Path) -> dict[str, Any]:
    path = write_passfile(bench.auth / "open.pgpass", [f"127.0.0.1:{bench.primary.port}:replication:{ROLE}:x"],
                          mode=0o644)
    return bench.args(target, passfile=str(path))


def _root_passfile(bench: Bench, target: Path) -> dict[str, Any]:
    path = write_passfile(bench.auth / "root.pgpass", [f"127.0.0.1:{bench.primary.port}:replication:{ROLE}:x"],
                          owner_postgres=False)
    return bench.args(target, passfile=str(path))


def _passfile_inside(bench: Bench, target: Path) -> dict[str, Any]:
    path = write_passfile(target / ".pgpass", [f"127.0.0.1:{bench.primary.port}:replication:{ROLE}:{PASSWORD}"])
    return bench.args(target, passfile=str(path))


def _parent_of_cluster(bench: Bench, target: Path) -> dict[str, Any]:
    inner = target / "15" / "main"
    (inner / "global").mkdir(parents=True)
    (inner / "PG_VERSION").write_text("15\n", encoding="utf-8")
    return bench.args(target)


BAD_INPUTS: list[tuple[str, Callable[[Bench, Path], dict[str, Any]], str]] = [
    ("relative_data_dir", lambda b, t: b.args("relative/data"), "data_dir: 'relative/data' must be an absolute path"),
    ("root_data_dir", lambda b, t: b.args("/"), "data_dir: '/' is the root directory, never a data directory"),
    ("system_data_dir", lambda b, t: b.args("/var/lib/postgresql"), "data_dir: '/var/lib/postgresql' is a system"),
    ("missing_parent", lambda b, t: b.args(t / "no" / "data"), "the parent directory of"),
    ("parent_of_a_cluster", _parent_of_cluster, "holds another cluster at"),
    ("bad_slot_name", lambda b, t: b.args(t, slot_name="Bad-Slot"),
     "slot_name: 'Bad-Slot' is not a valid slot name (^[a-z0-9_]{1,63}$)"),
    ("slot_injection", lambda b, t: b.args(t, slot_name='x" TEMPORARY'), "slot_name: 'x\" TEMPORARY' is not a valid"),
    ("long_application_name", lambda b, t: b.args(t, application_name="a" * 64),
     "application_name: '" + "a" * 64 + "' is not accepted"),
    ("application_name_injection", lambda b, t: b.args(t, application_name="x' password=evil"),
     "application_name: \"x' password=evil\" is not accepted"),
    ("port_zero", lambda b, t: b.args(t, primary_port=0), "primary_port: 0 is not a TCP port (1-65535)"),
    ("port_not_a_number", lambda b, t: b.args(t, primary_port="fivefour"), "primary_port"),
    ("missing_passfile", lambda b, t: b.args(t, passfile=str(b.auth / "nope.pgpass")), "does not exist"),
    ("passfile_mode_0644", _open_passfile, "has mode 0644; libpq ignores a password file"),
    ("passfile_not_readable_by_os_user", _root_passfile, "is not readable by os_user 'postgres'"),
    ("passfile_inside_data_dir", _passfile_inside, "is inside data_dir"),
    ("replication_user_injection", lambda b, t: b.args(t, replication_user="rep' host=evil"),
     "replication_user: \"rep' host=evil\" is not accepted"),
    ("primary_host_injection", lambda b, t: b.args(t, primary_host="127.0.0.1 dbname=evil"),
     "primary_host: '127.0.0.1 dbname=evil' is not one host name"),
    ("unknown_os_user", lambda b, t: b.args(t, os_user="standby_clone_nosuch"),
     "os_user: 'standby_clone_nosuch' is not a user on this host"),
    ("root_os_user", lambda b, t: b.args(t, os_user="root"), "os_user: 'root' cannot own a data directory"),
    ("bad_sslmode", lambda b, t: b.args(t, sslmode="sometimes"), "sslmode"),
    ("zero_timeout", lambda b, t: b.args(t, timeout=0), "timeout: 0 is not a number of seconds"),
    ("bin_dir_without_pg_basebackup", lambda b, t: b.args(t, bin_dir=str(b.auth)), "has no executable pg_basebackup"),
    ("unreachable_primary", _unreachable, "cannot open a replication connection to the primary (primary_host="
                                          "127.0.0.1 primary_port="),
    ("role_without_replication", lambda b, t: b.args(t, replication_user=NOREP_ROLE),
     f"the role {NOREP_ROLE} is missing or lacks the REPLICATION attribute"),
]


@dataclass
class BadRun:
    target: Path
    before: dict[str, tuple]
    after: dict[str, tuple]
    result: dict[str, Any]


@pytest.fixture(scope="module")
def bad_runs(bench: Bench) -> dict[str, BadRun]:
    """Every bad input against its own target holding a file, all in one ansible-playbook run (one task each)."""
    prepared: list[tuple[str, Path, dict[str, Any]]] = []
    for name, build, _message in BAD_INPUTS:
        target = bench.target("bad").data_dir
        target.mkdir()
        (target / "notes.txt").write_text("keep me\n", encoding="utf-8")
        prepared.append((name, target, build(bench, target)))
    before = {name: snapshot(target.parent) for name, target, _args in prepared}
    run = run_tasks([{"name": name, MODULE: args} for name, _target, args in prepared])
    assert len(run.results) == len(prepared), f"{run.stdout}\n{run.stderr}"
    return {name: BadRun(target, before[name], snapshot(target.parent), result)
            for (name, target, _args), result in zip(prepared, run.results)}


@pytest.mark.parametrize(("name", "message"), [pytest.param(name, message, id=name)
                                               for name, _build, message in BAD_INPUTS])
def test_bad_input_is_refused_and_nothing_changes(bad_runs: dict[str, BadRun], name: str, message: str) -> None:
    run = bad_runs[name]
    assert run.result.get("failed") is True, run.result
    assert message in run.result["msg"], run.result["msg"]
    assert run.after == run.before
    assert not os.path.lexists(run.target / "standby.signal")


def test_preflight_proves_the_connection_past_a_running_server_and_changes_nothing(bench: Bench) -> None:
    """What the standby role runs before it stops anything: a verdict, never a change."""
    cluster = bench.target("preflight")
    cluster.init()
    cluster.start()
    try:
        before = snapshot(cluster.data_dir)
        result = clone(bench.args(cluster.data_dir, preflight=True))
        assert not result.get("failed"), result
        assert (result["changed"], result["outcome"], result["server_running"]) == (False, "would_clone", True)
        assert result["moved_aside_to"] is not None and not os.path.exists(result["moved_aside_to"])
        assert cluster.scalar("SELECT 1") == 1  # still running, untouched
        assert pgrepl_siblings(cluster.data_dir) == []

        wrong = write_passfile(bench.auth / "preflight.pgpass",
                               [f"127.0.0.1:{bench.primary.port}:replication:{ROLE}:nope"])
        refused = clone(bench.args(cluster.data_dir, preflight=True, passfile=str(wrong)))
        assert refused["failed"] is True and "password authentication failed" in refused["msg"], refused
    finally:
        cluster.stop()
    # The cluster is still there, whole: the same files but the running server's own (postmaster.pid, ...).
    after = snapshot(cluster.data_dir)
    assert {"PG_VERSION", "global/pg_control", "base"} <= after.keys()
    assert after["PG_VERSION"] == before["PG_VERSION"]


# ---------------------------------------------------------------------------------------------------------------
# a large copy: max_rate, the progress file, and clone_wait printing it
# ---------------------------------------------------------------------------------------------------------------


# Progress lines clone_wait must print while the watcher holds the copy's module process.
HELD_LINES = 2
HOLD_LIMIT = 120.0  # seconds the hold may last (a clone_wait look takes interval, 1 s, plus Ansible's own time)


def progress_lines(text: str) -> list[str]:
    """clone_wait's lines that give the copy's progress: "localhost - 42% of 60.1 MB, 8.0 MB/s, about 4 s left"."""
    return [line for line in text.splitlines() if line.startswith("localhost - ") and "% of " in line]


@dataclass
class Watch:
    """What a thread saw while the copy ran: pg_basebackup command lines, when pg_basebackup was first and last
    seen, and the progress file's contents.

    How many lines clone_wait prints while the task runs depends on how long each of its looks takes, that is on
    the machine's load, against a copy of a few seconds. So on the first report of the copy in the progress file,
    the watcher stops the module process that writes it (SIGSTOP; the file's pid) until the playbook's output (a
    file) shows HELD_LINES progress lines, then lets it go on: the task is still running for clone_wait all along,
    and the lines are facts, not a race. pg_basebackup itself is never held: the copy's pace stays max_rate's."""

    output: Path
    commands: list[str] = field(default_factory=list)
    reports: list[dict[str, Any]] = field(default_factory=list)
    copy_seen: list[float] = field(default_factory=list)  # monotonic times pg_basebackup was seen running
    held: dict[str, Any] | None = None
    stop: threading.Event = field(default_factory=threading.Event)

    def look(self, data_dir: Path) -> None:
        for line in processes_mentioning(f"{data_dir}.pgrepl-clone-"):
            if "pg_basebackup" in line:
                self.copy_seen.append(time.monotonic())
                if line not in self.commands:
                    self.commands.append(line)

    def run(self, data_dir: Path) -> None:
        progress = data_dir.parent / f".{data_dir.name}.pgrepl-progress"
        while not self.stop.is_set():
            self.look(data_dir)
            try:
                report = json.loads(progress.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                report = None
            if isinstance(report, dict):
                self.reports.append(report)
                if self.held is None and report.get("phase") == "copying":
                    self.hold(report, data_dir)
            time.sleep(0.1)

    def printed(self) -> list[str]:
        try:
            return progress_lines(self.output.read_text(encoding="utf-8"))
        except OSError:
            return []

    def hold(self, report: dict[str, Any], data_dir: Path) -> None:
        self.held = report
        started = time.monotonic()
        os.kill(report["pid"], signal.SIGSTOP)
        try:
            while (len(self.printed()) < HELD_LINES and time.monotonic() - started < HOLD_LIMIT
                   and not self.stop.is_set()):
                self.look(data_dir)
                time.sleep(0.1)
        finally:
            os.kill(report["pid"], signal.SIGCONT)

    @property
    def copy_seconds(self) -> float:
        """How long pg_basebackup ran, as far as seen (each end at most one look of /proc late or early)."""
        return self.copy_seen[-1] - self.copy_seen[0] if self.copy_seen else 0.0


RATE = "8M"
RATE_BYTES = 8 * 1024 * 1024


def test_max_rate_limits_the_copy_and_clone_wait_prints_its_progress(bench: Bench, tmp_path: Path) -> None:
    """A primary of this test's own with about 60 MB: the copy in the background (async, poll 0) with max_rate 8M,
    clone_wait printing its progress every second. The rate is proven on pg_basebackup's own command line and by
    the time the copy took; the progress file existed during the copy with a plausible percent, clone_wait printed
    it while the task ran, and the file is gone."""
    source = PgCluster(bench.work, "rateprimary")
    source.init()
    bench.clusters.append(source)
    source.start()
    source.sql(sql.SQL("CREATE ROLE {} LOGIN REPLICATION PASSWORD {}").format(
        sql.Identifier(ROLE), sql.Literal(PASSWORD)))
    source.sql("CREATE TABLE standby_clone_ballast AS SELECT g, md5(g::text) || md5((g + 1)::text) AS pad "
               "FROM generate_series(1, 350000) AS g")
    source.sql("CHECKPOINT")
    size = int(source.scalar("SELECT sum(pg_database_size(oid)) FROM pg_database"))
    assert size > 40 * 1024 * 1024
    passfile = write_passfile(bench.auth / "rate.pgpass", [f"127.0.0.1:{source.port}:replication:{ROLE}:{PASSWORD}"])
    cluster = bench.target("rate")
    args = bench.args(cluster.data_dir, primary_port=source.port, passfile=str(passfile), slot_name=None,
                      max_rate=RATE, timeout=600)
    saved = tmp_path / "waited.json"
    tasks = [
        {"name": "copy in the background", MODULE: args, "async": 600, "poll": 0, "register": "job"},
        {"name": "wait", "pgrepl.streaming.clone_wait": {"jid": "{{ job.ansible_job_id }}",
                                                         "data_dir": str(cluster.data_dir), "interval": 1},
         "register": "waited"},
        {"name": "keep", "ansible.builtin.copy": {"content": "{{ waited | to_json }}", "dest": str(saved)}},
    ]
    playbook = tmp_path / "play.yml"
    playbook.write_text(json.dumps([{"hosts": "localhost", "gather_facts": False, "connection": "local",
                                     "tasks": tasks}]), encoding="utf-8")
    # The text output goes to a file the watcher reads while the playbook runs.
    watch = Watch(tmp_path / "play.out")
    watcher = threading.Thread(target=watch.run, args=(cluster.data_dir,), daemon=True)
    watcher.start()
    started = time.monotonic()
    try:
        with watch.output.open("w", encoding="utf-8") as output:
            run = subprocess.run([str(VENV_BIN / "ansible-playbook"), "-i", "localhost,", str(playbook)],
                                 stdout=output, stderr=subprocess.PIPE, text=True, env=ansible_env("default"),
                                 timeout=900, check=False)
    finally:
        watch.stop.set()
        watcher.join()
    took = time.monotonic() - started
    stdout = watch.output.read_text(encoding="utf-8")
    assert run.returncode == 0, f"{stdout}\n{run.stderr}"
    waited = json.loads(saved.read_text(encoding="utf-8"))
    # The task's own result, through clone_wait: a real copy of the source.
    assert (bool(waited.get("failed")), waited["outcome"], waited["changed"]) == (False, "cloned", True), waited
    assert sysid_of(cluster.data_dir) == waited["system_identifier"] == sysid_of(source.data_dir)
    # The limit reached pg_basebackup, and the copy took at least the size at that rate (80 %: the estimate): the
    # time pg_basebackup was seen running, which the hold of the module process does not lengthen.
    assert watch.commands and all(f"--max-rate={RATE}" in line for line in watch.commands), watch.commands
    assert watch.held is not None, watch.reports
    assert watch.copy_seconds >= 0.8 * size / RATE_BYTES, (watch.copy_seconds, size)
    assert took >= 0.8 * size / RATE_BYTES, (took, size)
    assert 0.8 * size / RATE_BYTES <= waited["basebackup_seconds"] <= waited["duration_seconds"] <= took
    # The progress file during the copy: growing percent below 100, the rate near the limit.
    copying = [report for report in watch.reports if report.get("phase") == "copying"]
    assert copying, watch.reports
    percents = [report["percent"] for report in copying]
    assert percents == sorted(percents) and 0 <= percents[0] < 100 and percents[-1] > 10
    assert all(report["max_rate"] == RATE for report in watch.reports)
    rates = [report["rate_bytes_per_second"] for report in copying if report["rate_bytes_per_second"]]
    assert rates and max(rates) <= RATE_BYTES * 1.3, rates
    assert abs(copying[-1]["bytes_total"] - size) < size * 0.3
    # clone_wait printed lines such as "localhost - 42% of 60.1 MB, 8.0 MB/s, about 4 s left" as it went (while
    # the task ran: HELD_LINES of them during the hold at least), each the task's own progress.
    printed = progress_lines(stdout)
    assert len(printed) >= HELD_LINES and printed == progress_lines("\n".join(waited["progress"])), stdout
    # Nothing left beside the data directory: no progress file, no lock, no temporary copy.
    assert pgrepl_siblings(cluster.data_dir) == []
    assert sorted(name for name in os.listdir(cluster.data_dir.parent) if name.startswith(".")) == []


# ---------------------------------------------------------------------------------------------------------------
# tablespaces: a throwaway primary of this section with a tablespace of its own (issue 13 item 6)
# ---------------------------------------------------------------------------------------------------------------

TS_ROLE = "standby_clone_ts_rep"
TS_PASSWORD = "standby-clone-ts-rep-pw-8Lq"
# A unit that does not exist: a run that got as far as stopping would fail on it, not on the refusal under test.
NO_UNIT = "pgrepl-test-never-stopped.service"


@dataclass
class TsBench:
    """The primary (tablespace ts1 with the table ts_rows), its facts, and a root-owned 0755 /srv of its own."""

    clone: CloneBench
    location: Path
    srv: Path
    facts: list[dict[str, Any]]
    counter: int = 0

    def mapped(self, name: str) -> Path:
        self.counter += 1
        return self.srv / f"{name}{self.counter}"

    def args(self, data_dir: Path, target: Path, **overrides: Any) -> dict[str, Any]:
        return self.clone.args(data_dir, tablespaces=self.facts, tablespace_map={str(self.location): str(target)},
                               **overrides)


def layout_args(cluster: PgCluster) -> dict[str, Any]:
    return {"data_dir": str(cluster.data_dir), "config_dir": str(cluster.data_dir), "bin_dir": str(cluster.bin_dir),
            "socket_dir": str(cluster.socket_dir), "port": cluster.port, "service": "pgrepl-test-none",
            "install": False}


@pytest.fixture(scope="module")
def ts(throwaway: Clusters) -> TsBench:
    # WAL kept: the last test rewinds this primary once a copy of it was promoted.
    bench = clone_bench(throwaway, TS_ROLE, TS_PASSWORD, conf="wal_keep_size = '512MB'\n")
    location = throwaway.base / "primary_ts1"
    location.mkdir(mode=0o700)
    chown_postgres(location)
    bench.primary.sql(sql.SQL("CREATE TABLESPACE ts1 LOCATION {}").format(sql.Literal(str(location))))
    bench.primary.sql("CREATE TABLE ts_rows (n int) TABLESPACE ts1")
    bench.primary.sql("INSERT INTO ts_rows SELECT generate_series(1, 1000)")
    srv = throwaway.base / "srv"
    srv.mkdir(mode=0o755)  # root's: pg_basebackup, running as postgres, could not create a directory in it
    facts = run_module("pgrepl.streaming.node_prepare", layout_args(bench.primary))
    assert facts.get("failed") is not True, facts
    return TsBench(bench, location, srv, facts["tablespaces"])


def ts_link(data_dir: Path) -> str:
    (oid,) = os.listdir(data_dir / "pg_tblspc")
    return os.readlink(data_dir / "pg_tblspc" / oid)


def owner_and_mode(path: Path) -> tuple[str, int]:
    st = path.stat()
    return pwd.getpwuid(st.st_uid).pw_name, stat.S_IMODE(st.st_mode)


def test_node_prepare_reports_the_primarys_tablespaces(ts: TsBench) -> None:
    (fact,) = ts.facts
    assert (fact["name"], fact["location"]) == ("ts1", str(ts.location))
    size = ts.clone.primary.scalar("SELECT pg_tablespace_size('ts1')")
    assert isinstance(fact["size"], int) and fact["size"] > 0 and abs(fact["size"] - size) <= size * 0.1


def test_a_tablespace_is_copied_to_its_mapped_directory_made_for_postgres(ts: TsBench) -> None:
    cluster = ts.clone.target("tsfirst")
    target = ts.mapped("ts1-")
    args = ts.args(cluster.data_dir, target)
    checked = clone(args, check=True, diff=True)
    assert (checked["changed"], checked["outcome"]) == (True, "would_clone"), checked
    assert checked["tablespaces"] == [{"location": str(ts.location), "path": str(target), "how": "in_place",
                                       "moved_aside_to": None}]
    assert checked["diff"]["after"]["tablespaces"] == {str(ts.location): str(target)}
    assert not os.path.lexists(target) and not os.path.lexists(cluster.data_dir)

    result = clone(args)
    assert (result["changed"], result["outcome"]) == (True, "cloned"), result
    # Made by the module for the server's OS user, under a parent pg_basebackup could not have written in.
    assert owner_and_mode(target) == ("postgres", 0o700) and owner_and_mode(ts.srv) == ("root", 0o755)
    assert [name for name in os.listdir(target) if name.startswith("PG_")], os.listdir(target)
    assert ts_link(cluster.data_dir) == str(target)
    cluster._write_local_conf()
    cluster.start()
    try:
        cluster.wait_streaming()
        assert cluster.scalar("SELECT pg_tablespace_location(oid) FROM pg_tablespace WHERE spcname = 'ts1'") == \
            str(target)
        assert cluster.scalar("SELECT count(*) FROM ts_rows") == 1000
        # Idempotent: a copy of this primary is kept, its tablespace untouched, its server not restarted.
        identity = postmaster_identity(cluster)
        before = snapshot(target)
        again = clone(args)
        assert (again["changed"], again["outcome"], again["tablespaces"]) == (False, "kept", [])
        assert postmaster_identity(cluster) == identity and snapshot(target) == before
    finally:
        cluster.stop()


def test_a_reseed_copies_the_tablespace_beside_it_and_swaps_it_in(ts: TsBench) -> None:
    cluster = ts.clone.target("tsreseed")
    target = ts.mapped("ts1-")
    args = ts.args(cluster.data_dir, target)
    assert clone(args)["outcome"] == "cloned"
    ts.clone.primary.sql("INSERT INTO ts_rows VALUES (-1)")
    old_tablespace = snapshot(target)
    old_data = snapshot(cluster.data_dir)
    forced = dict(args, force_reclone=True)
    checked = clone(forced, check=True)
    (planned,) = checked["tablespaces"]
    assert (planned["how"], planned["path"]) == ("swap", str(target))
    assert planned["moved_aside_to"].startswith(str(target) + ".pgrepl-moved-")
    assert snapshot(target) == old_tablespace and snapshot(cluster.data_dir) == old_data
    assert moved_siblings(target) == []

    result = clone(forced)
    assert (result["changed"], result["outcome"]) == (True, "cloned"), result
    (done,) = result["tablespaces"]
    moved_ts, moved_data = Path(done["moved_aside_to"]), Path(result["moved_aside_to"])
    # The old tablespace and data directory moved aside, never deleted, and still pointing at each other.
    assert snapshot(moved_ts) == old_tablespace
    assert ts_link(moved_data) == str(moved_ts)
    assert moved_siblings(target) == [moved_ts.name]
    # The new copy in place, its link at the target's own path, the server's OS user its owner.
    assert ts_link(cluster.data_dir) == str(target) and owner_and_mode(target) == ("postgres", 0o700)
    cluster._write_local_conf()
    cluster.start()
    try:
        cluster.wait_streaming()
        assert cluster.scalar("SELECT count(*) FROM ts_rows WHERE n = -1") == 1
    finally:
        cluster.stop()
    assert clone(args)["changed"] is False


def test_a_tablespace_without_a_usable_target_is_refused_before_anything_stops(ts: TsBench) -> None:
    cluster = ts.clone.target("tsrefused")
    private = ts.srv / "private"
    private.mkdir(mode=0o700)  # root's, not searchable by postgres
    link = ts.srv / "link"
    link.symlink_to(ts.mapped("real"))
    foreign = ts.mapped("foreign")
    foreign.mkdir()
    (foreign / "notes.txt").write_text("someone else's\n", encoding="utf-8")
    cases = {
        # The primary's own tablespace directory on this host: not empty, not this standby's.
        str(ts.location): "is not empty and holds no tablespace of this standby's data directory",
        str(foreign): "is not empty and holds no tablespace",
        str(cluster.data_dir / "ts1"): "inside data_dir",
        str(cluster.data_dir.parent): "which holds data_dir",
        str(private / "ts1"): "cannot reach",
        str(link): "is a symlink",
    }
    before = snapshot(ts.srv)
    for mapped_to, message in cases.items():
        for check in (True, False):
            result = clone(ts.args(cluster.data_dir, Path(mapped_to), stop_service=NO_UNIT), check=check)
            assert result.get("failed") is True and message in result["msg"], (mapped_to, check, result)
            assert "tablespace" in result["msg"] and NO_UNIT not in result["msg"]
            assert not os.path.lexists(cluster.data_dir) and moved_siblings(cluster.data_dir) == []
    assert snapshot(ts.srv) == before
    # A running standby of the primary asked for a new copy (a re-seed) into a target that is not its own: refused
    # before its server is stopped (a run that got as far as the stop would fail on NO_UNIT instead).
    running = ts.clone.target("tsrunning")
    own = ts.mapped("own")
    assert clone(ts.args(running.data_dir, own))["outcome"] == "cloned"
    running._write_local_conf()
    running.start()
    try:
        running.wait_streaming()
        identity, held = postmaster_identity(running), snapshot(own)
        for check in (True, False):
            result = clone(ts.args(running.data_dir, foreign, force_reclone=True, stop_service=NO_UNIT), check=check)
            assert result.get("failed") is True and "is not empty" in result["msg"], result
            assert NO_UNIT not in result["msg"]
        # Its tablespace is where it was: every file still there (their times may move and replay may add a
        # relation fork such as _fsm or _vm: the running standby writes there).
        assert postmaster_identity(running) == identity and held.keys() <= snapshot(own).keys()
        assert moved_siblings(running.data_dir) == [] and moved_siblings(own) == []
        assert running.scalar("SELECT status FROM pg_stat_wal_receiver") == "streaming"
    finally:
        running.stop()


def test_bad_tablespace_options_are_refused_naming_them(ts: TsBench) -> None:
    cluster = ts.clone.target("tsbad")
    cases = [
        ({"tablespace_map": {"relative/ts": "/srv/x"}}, "tablespace_map key: 'relative/ts' must be an absolute"),
        ({"tablespace_map": {"/a": "/b", "/c": "/b"}}, "both map to '/b'"),
        ({"tablespace_map": {"/a": "/etc"}}, "is a system directory"),
        ({"tablespace_map": ["/a"]}, "tablespace_map"),
        ({"tablespaces": [{"size": 3}]}, "tablespaces: {'size': 3} has no location"),
    ]
    for overrides, message in cases:
        result = clone(ts.clone.args(cluster.data_dir, **overrides))
        assert result.get("failed") is True and message in result["msg"], (overrides, result)
        assert not os.path.lexists(cluster.data_dir)


def test_free_space_is_checked_on_each_tablespace_filesystem(ts: TsBench) -> None:
    cluster = ts.clone.target("tsspace")
    small = ts.mapped("small")
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m,mode=0755", "tmpfs", str(small)], check=True,
                   capture_output=True)
    try:
        big = [{"name": "ts1", "location": str(ts.location), "size": 64 * 1024 * 1024}]
        args = ts.clone.args(cluster.data_dir, tablespaces=big, tablespace_map={str(ts.location): str(small / "t")},
                             data_size=100 * 1024 * 1024)
        for check in (True, False):
            result = clone(args, check=check)
            assert result.get("failed") is True, result
            assert "not enough free space" in result["msg"] and repr(str(small)) in result["msg"], result["msg"]
            assert "tablespace(s)" in result["msg"] and "64.0 MiB of data there" in result["msg"]
            assert os.listdir(small) == [] and not os.path.lexists(cluster.data_dir)
        # The check off, the copy goes through (the tablespace itself is small).
        assert clone(dict(args, space_check=False))["outcome"] == "cloned"
        assert ts_link(cluster.data_dir) == str(small / "t")
    finally:
        subprocess.run(["umount", "-l", str(small)], check=True, capture_output=True)


def test_a_rewind_keeps_the_tablespace_links_of_the_former_primary(ts: TsBench) -> None:
    """Rejoin by pg_rewind (no copy): the former primary's tablespace stays in its own directory, its pg_tblspc link
    unchanged, and it follows the promoted copy with the rows written there. Last of the section: the primary of
    the section ends as a standby."""
    old = ts.clone.primary
    cluster = ts.clone.target("tsrewind")
    target = ts.mapped("ts1-")
    assert clone(ts.args(cluster.data_dir, target))["outcome"] == "cloned"
    cluster._write_local_conf()
    cluster.start()
    cluster.wait_streaming()
    rewinder = "standby_clone_ts_rewind"
    old.sql(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(rewinder), sql.Literal(TS_PASSWORD)))
    for statement in rewind_grant_statements(rewinder):
        old.sql(statement)
    wait_for(lambda: cluster.scalar("SELECT count(*) FROM pg_roles WHERE rolname = %s", (rewinder,)) == 1,
             "the rewind role on the copy")
    cluster.sql("SELECT pg_promote()")
    wait_for(lambda: cluster.scalar("SELECT pg_is_in_recovery()") is False, "the promotion")
    cluster.sql("INSERT INTO ts_rows VALUES (-2)")
    cluster.sql("CHECKPOINT")
    old.sql("INSERT INTO ts_rows VALUES (-3)")  # diverged: only on the former primary
    old_link = ts_link(old.data_dir)
    old.stop("fast")
    passfile = write_passfile(ts.clone.clusters.base / "rewind.pgpass",
                              [f"127.0.0.1:{cluster.port}:*:{rewinder}:{TS_PASSWORD}"])
    rewound = run_module("pgrepl.streaming.rewind", {
        "data_dir": str(old.data_dir), "source_host": "127.0.0.1", "source_port": cluster.port,
        "source_user": rewinder, "passfile": str(passfile), "sslmode": "disable"})
    assert rewound.get("failed") is not True and rewound["outcome"] == "rewound", rewound.get("msg")
    assert ts_link(old.data_dir) == old_link == str(ts.location)
    old._write_local_conf()
    auto_conf = old.data_dir / "postgresql.auto.conf"
    auto_conf.write_text(f"primary_conninfo = 'host={cluster.socket_dir} port={cluster.port} user=postgres'\n",
                         encoding="utf-8")
    (old.data_dir / "standby.signal").write_text("", encoding="utf-8")
    for path in (auto_conf, old.data_dir / "standby.signal"):
        chown_postgres(path)
    old.start()
    try:
        old.wait_streaming()
        cluster.sql("INSERT INTO ts_rows VALUES (-4)")
        wait_for(lambda: old.scalar("SELECT count(*) FROM ts_rows WHERE n = -4") == 1, "the row on the rejoined node")
        assert old.scalar("SELECT count(*) FROM ts_rows WHERE n IN (-2, -3)") == 1
        assert old.scalar("SELECT count(*) FROM ts_rows WHERE n = -2") == 1
        assert old.scalar("SELECT pg_tablespace_location(oid) FROM pg_tablespace WHERE spcname = 'ts1'") == \
            str(ts.location)
        # The promoted copy kept its own mapped tablespace.
        assert ts_link(cluster.data_dir) == str(target)
    finally:
        old.stop()
        cluster.stop()
