"""The WAL archive program (module_utils/_archive.py, installed by the node role as /usr/local/bin/pgrepl-archive-wal)
run by real servers on loopback: archive_command on a primary, restore_command on a standby that lost its slot, and
the cleanup asking a primary what its slots still need. Every assertion reads the real state: pg_stat_archiver, the
archive directory's files against pg_wal's, the server log, rows on the standby.
"""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ansible_collections.pgrepl.streaming.plugins.module_utils._archive import INTERPRETER, archive_plan

from ansible_runner import run_module
from cluster import Clusters, PgCluster, wait_for

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "plugins" / "module_utils" / "_archive.py"
# The interpreter the role's template names: the server's OS user runs it (the venv's may be out of its reach).
# Spelled out so that the install check's scan reads which program the test runs; held to the plan's below.
SYSTEM_PYTHON = "/usr/bin/python3"
assert SYSTEM_PYTHON == INTERPRETER, "the test runs the program with the interpreter the role's template names"


def _chown(path: Path) -> None:
    if os.geteuid() == 0:
        entry = pwd.getpwnam("postgres")
        os.chown(path, entry.pw_uid, entry.pw_gid)


@pytest.fixture(scope="module")
def bench(throwaway: Clusters) -> Iterator[dict[str, Any]]:
    """The program as the role installs it (a shebang, then _archive.py's text), an archive directory, and a primary
    archiving into it."""
    base = throwaway.base / "archive-bench"
    base.mkdir()
    os.chmod(base, 0o755)
    script = base / "pgrepl-archive-wal"
    script.write_text(f"#!{SYSTEM_PYTHON}\n" + SOURCE.read_text(encoding="utf-8"), encoding="utf-8")
    os.chmod(script, 0o755)
    archive = base / "wal"
    archive.mkdir()
    _chown(archive)
    os.chmod(archive, 0o750)
    conf = (f"archive_mode = on\narchive_command = '{script} archive {archive} %p %f'\n"
            "wal_keep_size = 0\nmax_wal_size = 64MB\n")
    primary = throwaway.server("archiving", conf=conf)
    # Here, not in the first test that writes: pytest-xdist may run any test of this file first on a worker.
    primary.sql("CREATE TABLE filler (v text)")
    yield {"script": script, "archive": archive, "primary": primary}


def archiver(primary: PgCluster) -> dict[str, Any]:
    row = primary.sql("SELECT archived_count, last_archived_wal, failed_count, last_failed_wal FROM pg_stat_archiver")
    return dict(zip(("archived_count", "last_archived_wal", "failed_count", "last_failed_wal"), row[0]))


def switch(primary: PgCluster) -> str:
    """Write something, close the segment; its name."""
    primary.sql("INSERT INTO filler SELECT 'x' FROM generate_series(1, 100)")
    return primary.scalar("SELECT pg_walfile_name(pg_switch_wal())")


def run_script(bench: dict[str, Any], *args: str, count_fsync: bool = False) -> subprocess.CompletedProcess:
    """The program as the server runs it (as postgres); with count_fsync, every fsync'd path printed on stderr."""
    program = [str(bench["script"]), *args]
    if args[0] == "cleanup":
        # The cleanup asks the server with psycopg, which this test's interpreter has (the role installs it for the
        # system's); as the database user postgres.
        return subprocess.run([sys.executable, *program], capture_output=True, text=True, check=False,
                              env=dict(os.environ, PGUSER="postgres"))
    # Run by the interpreter its shebang names (named here, so that the install check reads which program runs).
    argv = [SYSTEM_PYTHON, *program]
    if count_fsync:
        wrapper = ("import os, runpy, sys\nreal = os.fsync\ndef spy(fd):\n"
                   "    sys.stderr.write('fsync ' + os.readlink('/proc/self/fd/%d' % fd) + '\\n')\n    real(fd)\n"
                   "os.fsync = spy\nsys.argv = sys.argv[1:]\nrunpy.run_path(sys.argv[0], run_name='__main__')\n")
        argv = [SYSTEM_PYTHON, "-c", wrapper, *program]
    if os.geteuid() == 0:
        argv = ["runuser", "-u", "postgres", "--", *argv]
    return subprocess.run(argv, capture_output=True, text=True, check=False)


def test_the_primary_archives_each_segment_byte_for_byte(bench: dict[str, Any]) -> None:
    primary, archive = bench["primary"], bench["archive"]
    name = switch(primary)
    wait_for(f"{name} archived", lambda: (archiver(primary)["last_archived_wal"] or "") >= name)
    assert archiver(primary)["failed_count"] == 0
    in_wal = primary.data_dir / "pg_wal" / name
    assert (archive / name).read_bytes() == in_wal.read_bytes()
    assert (archive / name).stat().st_mode & 0o007 == 0  # nothing for others (the server's umask narrows 0640)
    assert not [p.name for p in archive.iterdir() if p.name.startswith(".")]  # no temporary copy left


def test_an_identical_file_already_archived_is_success_and_untouched(bench: dict[str, Any]) -> None:
    primary, archive = bench["primary"], bench["archive"]
    name = switch(primary)
    wait_for(f"{name} archived", lambda: (archiver(primary)["last_archived_wal"] or "") >= name)
    before = (archive / name).stat()
    done = run_script(bench, "archive", str(archive), str(primary.data_dir / "pg_wal" / name), name)
    assert done.returncode == 0, done.stderr
    after = (archive / name).stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_a_new_segment_is_fsynced_file_then_directory(bench: dict[str, Any]) -> None:
    primary, archive = bench["primary"], bench["archive"]
    name = switch(primary)
    wait_for(f"{name} archived", lambda: (archiver(primary)["last_archived_wal"] or "") >= name)
    # The same segment archived again into an empty directory, by the program itself, its fsync calls seen.
    other = archive.parent / "wal-fsync"
    other.mkdir()
    _chown(other)
    done = run_script(bench, "archive", str(other), str(primary.data_dir / "pg_wal" / name), name, count_fsync=True)
    assert done.returncode == 0, done.stderr
    synced = [line.split(" ", 1)[1] for line in done.stderr.splitlines() if line.startswith("fsync ")]
    assert len(synced) == 2, done.stderr
    assert Path(synced[0]).name.startswith(".pgrepl-tmp." + name)  # the data, under its temporary name
    assert synced[1] == str(other)  # then the directory holding its final name
    assert (other / name).read_bytes() == (archive / name).read_bytes()


def test_a_different_file_under_the_name_fails_loudly_and_is_never_overwritten(bench: dict[str, Any]) -> None:
    primary, archive = bench["primary"], bench["archive"]
    # Written to first: right after a switch, the position is on a boundary, which pg_walfile_name names by the
    # segment before.
    primary.sql("INSERT INTO filler VALUES ('y')")
    current = primary.scalar("SELECT pg_walfile_name(pg_current_wal_lsn())")
    squatter = archive / current
    assert not squatter.exists()
    squatter.write_bytes(b"another cluster's segment")
    _chown(squatter)
    failed_before = archiver(primary)["failed_count"]
    switch(primary)
    wait_for("the archiver's failure", lambda: archiver(primary)["failed_count"] > failed_before)
    state = archiver(primary)
    assert state["last_failed_wal"] == current
    assert squatter.read_bytes() == b"another cluster's segment"
    wait_for("the message in the server log", lambda: "already archived with a different content" in
             primary.log_text())
    # Removed, the next segment's notification makes the archiver retry: it goes on in order.
    squatter.unlink()
    name = switch(primary)
    wait_for(f"{name} archived", lambda: (archiver(primary)["last_archived_wal"] or "") >= name, timeout=90)
    assert (archive / current).stat().st_size == (primary.data_dir / "pg_wal" / name).stat().st_size


def test_a_standby_that_lost_its_slot_catches_up_from_the_archive(bench: dict[str, Any], throwaway: Clusters) -> None:
    primary, archive, script = bench["primary"], bench["archive"], bench["script"]
    standby = throwaway.standby(primary, "archive_standby", slot="archive_standby",
                                conf=f"restore_command = '{script} restore {archive} %f %p'\n")
    primary.sql("CREATE TABLE IF NOT EXISTS caught (v text)")
    wait_for("the table on the standby", lambda: standby.scalar("SELECT to_regclass('caught') IS NOT NULL"))
    standby.stop()
    primary.sql("SELECT pg_drop_replication_slot('archive_standby')")
    primary.sql("INSERT INTO caught VALUES ('from the archive')")
    needed = primary.scalar("SELECT pg_walfile_name(pg_current_wal_lsn())")
    for _round in range(3):
        switch(primary)
    primary.sql("CHECKPOINT")
    last = switch(primary)
    wait_for(f"{last} archived", lambda: (archiver(primary)["last_archived_wal"] or "") >= last)
    primary.sql("CHECKPOINT")
    assert not (primary.data_dir / "pg_wal" / needed).exists(), "the primary still has the WAL: nothing proven"
    assert (archive / needed).exists()
    standby.start()
    wait_for("the row on the standby", lambda: standby.scalar(
        "SELECT count(*) FROM caught WHERE v = 'from the archive'") == 1, timeout=60)
    assert f'restored log file "{needed}" from archive' in standby.log_text()


def test_the_cleanup_keeps_what_a_slot_needs_and_nothing_on_a_standby(bench: dict[str, Any]) -> None:
    primary, archive = bench["primary"], bench["archive"]
    primary.sql("SELECT pg_create_physical_replication_slot('archive_hold', true)")
    try:
        held = primary.scalar("SELECT pg_walfile_name(restart_lsn) FROM pg_replication_slots "
                              "WHERE slot_name = 'archive_hold'")
        for _round in range(3):
            last = switch(primary)
        wait_for(f"{last} archived", lambda: (archiver(primary)["last_archived_wal"] or "") >= last)
        segments = sorted(p.name for p in archive.iterdir() if len(p.name) == 24)
        assert segments[0] < held
        done = run_script(bench, "cleanup", str(archive), "--keep", "1", "--host", str(primary.socket_dir),
                          "--port", str(primary.port))
        assert done.returncode == 0, done.stderr
        left = sorted(p.name for p in archive.iterdir() if len(p.name) == 24)
        # Everything before the slot's segment went (count 1 keeps only the newest, far later); nothing from it on.
        assert left == [name for name in segments if name[8:] >= held[8:]]
        assert "removed" in done.stdout
    finally:
        primary.sql("SELECT pg_drop_replication_slot('archive_hold')")


def test_the_cleanup_on_a_standby_removes_nothing(bench: dict[str, Any], throwaway: Clusters) -> None:
    primary, archive = bench["primary"], bench["archive"]
    standby = throwaway.standby(primary, "cleanup_standby")
    # The primary goes on archiving meanwhile (the copy's segments): only removals count.
    before = {p.name for p in archive.iterdir() if not p.name.startswith(".")}
    done = run_script(bench, "cleanup", str(archive), "--keep", "1", "--host", str(standby.socket_dir),
                      "--port", str(standby.port))
    assert done.returncode == 0, done.stderr
    assert "standby" in done.stdout
    assert before <= {p.name for p in archive.iterdir()}


def test_a_standby_made_before_archiving_gets_the_settings_and_one_restart(bench: dict[str, Any],
                                                                           throwaway: Clusters) -> None:
    """What the standby role's archive and archive_restart items do (node_apply): check mode predicts the settings and
    the restart and changes nothing; the real run writes them on the standby (ALTER SYSTEM works in recovery) and
    restarts it once (archive_mode waits for a restart); the next run changes nothing."""
    primary, archive, script = bench["primary"], bench["archive"], bench["script"]
    # Made as before archiving (the copy brings the bench primary's archive lines in postgresql.conf along).
    standby = throwaway.standby(primary, "late_standby", slot="late_standby",
                                conf="archive_mode = off\narchive_command = ''\n")
    settings = archive_plan(True, str(archive), "7d", script=str(script)).settings
    login = {"login_unix_socket": str(standby.socket_dir), "login_port": standby.port, "login_user": "postgres"}
    checks = {
        "archive": {"module": "server_settings", "params": {"settings": settings}},
        "archive_restart": {"module": "server_start", "params": {
            "data_dir": str(standby.data_dir), "log_file": str(standby.log_file), "wait_for": "streaming",
            "timeout": 60}},
    }
    started = standby.scalar("SELECT pg_postmaster_start_time()")
    auto = (standby.data_dir / "postgresql.auto.conf").read_bytes()

    predicted = run_module("node_apply", {**login, "checks": checks}, check=True)
    assert predicted["changed_checks"] == {"archive": True, "archive_restart": True}, predicted
    assert (standby.data_dir / "postgresql.auto.conf").read_bytes() == auto
    assert standby.scalar("SELECT pg_postmaster_start_time()") == started

    applied = run_module("node_apply", {**login, "checks": checks})
    assert applied["changed_checks"] == {"archive": True, "archive_restart": True}, applied
    assert standby.scalar("SELECT pg_postmaster_start_time()") > started
    assert standby.scalar("SELECT pg_is_in_recovery()") is True
    for name, value in settings.items():
        assert standby.scalar("SELECT setting FROM pg_settings WHERE name = %s", (name,)) == value, name
    assert standby.scalar("SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming'") == 1
    # archive_mode=on archives nothing in recovery.
    assert standby.scalar("SELECT archived_count + failed_count FROM pg_stat_archiver") == 0

    again = run_module("node_apply", {**login, "checks": checks})
    assert again["changed"] is False, again
