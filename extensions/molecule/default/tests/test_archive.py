"""WAL archiving (pgrepl_archive), as the scenario's inventory asks for it: the pg17 scenario turns it on with a docker
volume mounted at the same path in every container (shared storage); the other scenarios leave it off, and this
file proves that nothing of it is there.

Runs before test_default.py (file order) and leaves the cluster as it found it: the standby whose slot it drops
gets the slot back and streams again.
"""

from __future__ import annotations

import time

SCRIPT = "/usr/local/bin/pgrepl-archive-wal"
UNIT = "pgrepl-archive-cleanup"


def archiving(nodes) -> bool:
    return bool(next(iter(nodes.values())).var("pgrepl_archive", False))


def archived_up_to(primary, name: str) -> bool:
    return primary.psql("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver") >= name


def switch(primary) -> str:
    """Something written, the segment closed; its name."""
    primary.psql("CREATE TABLE IF NOT EXISTS verify_archive (v text)")
    primary.psql("INSERT INTO verify_archive VALUES ('x')")
    return primary.psql("SELECT pg_walfile_name(pg_switch_wal())")


def test_every_node_has_the_same_archive_settings_or_none(nodes) -> None:
    settings = {name: node.psql("SELECT string_agg(name || '=' || setting, ' | ' ORDER BY name) FROM pg_settings "
                                "WHERE name IN ('archive_mode', 'archive_command', 'restore_command')")
                for name, node in nodes.items()}
    if not archiving(nodes):
        for name, node in nodes.items():
            assert "archive_mode=off" in settings[name], settings
            assert not node.host.file(SCRIPT).exists, name
            assert not node.host.file(f"/etc/systemd/system/{UNIT}.timer").exists, name
        return
    directory = next(iter(nodes.values())).var("pgrepl_archive_dir", "")
    expected = (f"archive_command={SCRIPT} archive {directory} %p %f | archive_mode=on | "
                f"restore_command={SCRIPT} restore {directory} %f %p")
    assert set(settings.values()) == {expected}, settings  # so the node a switchover promotes archives the same
    for name, node in nodes.items():
        script = node.host.file(SCRIPT)
        assert script.user == "root" and script.mode == 0o755, name
        assert node.host.run(f"{SCRIPT} --help").rc == 0, name
        archive = node.host.file(directory)
        assert archive.is_directory and archive.user == "postgres" and archive.mode == 0o750, name
        timer = node.host.service(f"{UNIT}.timer")
        assert timer.is_enabled and timer.is_running, name


def test_segments_arrive_in_the_shared_archive_without_failures(nodes, primary, standbys, wait_for) -> None:
    if not archiving(nodes):
        assert primary.psql("SELECT archived_count + failed_count FROM pg_stat_archiver") == "0"
        return
    directory = primary.var("pgrepl_archive_dir", "")
    name = switch(primary)
    wait_for(f"{name} archived", lambda: archived_up_to(primary, name))
    assert primary.psql("SELECT failed_count FROM pg_stat_archiver") == "0"
    # Seen from every node (shared storage), the same bytes as the primary's pg_wal holds.
    digest = primary.host.run(f"sha256sum {primary.data_dir}/pg_wal/{name}").stdout.split()[0]
    for node in [primary, *standbys]:
        assert node.host.run(f"sha256sum {directory}/{name}").stdout.split()[0] == digest, node.name
    # The cleanup service runs on the primary (7d keeps all of this) and on a standby (which leaves it alone).
    for node in (primary, standbys[0]):
        run = node.host.run(f"systemctl start {UNIT}.service && journalctl -q --no-pager -u {UNIT}.service -n 5")
        assert run.rc == 0, f"{node.name}: {run.stderr}"
        assert node.host.file(f"{directory}/{name}").exists


def test_a_standby_whose_slot_was_dropped_catches_up_from_the_archive(nodes, primary, standbys, wait_for) -> None:
    """The standby stops, its slot is dropped, the primary writes and removes the WAL the standby needs; started
    again, the standby fetches it with restore_command and shows the row. Its slot is then made again and it
    streams as before."""
    if not archiving(nodes):
        return
    standby = standbys[-1]
    slot = standby.name.replace("-", "_")
    directory = primary.var("pgrepl_archive_dir", "")
    keep = primary.psql("SHOW wal_keep_size")
    standby.host.run_expect([0], f"systemctl stop {standby.service}")
    try:
        primary.psql(f"SELECT pg_drop_replication_slot('{slot}')")
        # Nothing keeps old WAL on the primary now but its own wal_keep_size: 0 for this test.
        primary.psql("ALTER SYSTEM SET wal_keep_size = 0")
        primary.psql("SELECT pg_reload_conf()")
        marker = str(time.time_ns())
        primary.psql(f"INSERT INTO verify_archive VALUES ('{marker}')")  # noqa: S608 (digits we made)
        needed = primary.psql("SELECT pg_walfile_name(pg_current_wal_lsn())")
        for _round in range(3):
            last = switch(primary)
        wait_for(f"{last} archived", lambda: archived_up_to(primary, last))
        primary.psql("CHECKPOINT")
        assert not primary.host.file(f"{primary.data_dir}/pg_wal/{needed}").exists, "WAL still on the primary"
        assert standby.host.file(f"{directory}/{needed}").exists
        standby.host.run_expect([0], f"systemctl start {standby.service}")
        query = f"SELECT count(*) FROM verify_archive WHERE v = '{marker}'"  # noqa: S608 (digits we made)
        wait_for("the row on the standby", lambda: standby.psql(query) == "1", timeout=120)
        assert f'restored log file "{needed}" from archive' in standby.server_logs()
        assert primary.psql("SELECT failed_count FROM pg_stat_archiver") == "0"
    finally:
        primary.psql(f"ALTER SYSTEM SET wal_keep_size = '{keep}'")
        primary.psql("SELECT pg_reload_conf()")
        # slot: the inventory name with - as _ (letters, digits, _), not user input.
        if primary.psql(f"SELECT count(*) FROM pg_replication_slots WHERE slot_name = '{slot}'") == "0":  # noqa: S608
            primary.psql(f"SELECT pg_create_physical_replication_slot('{slot}', true)")
        standby.host.run(f"systemctl start {standby.service}")
    streaming = ("SELECT count(*) FROM pg_stat_replication AS r JOIN pg_replication_slots AS s "  # noqa: S608
                 f"ON s.active_pid = r.pid WHERE s.slot_name = '{slot}' AND r.state = 'streaming'")
    wait_for("the standby streaming through its slot again", lambda: primary.psql(streaming) == "1", timeout=120)
