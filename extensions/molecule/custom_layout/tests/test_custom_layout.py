"""The custom layout's own checks (the shared ones in default/tests run too): the roles worked on the custom
cluster only, through its own unit, and left the package's cluster exactly as prepare left it."""

from __future__ import annotations

import re
from pathlib import Path

STATE_SCRIPT = (Path(__file__).parent.parent / "debian_cluster_state.sh").read_text()


def test_the_custom_unit_runs_the_server_on_every_node(nodes) -> None:
    for node in nodes.values():
        assert node.service == "pgcustom-15" and node.data_dir == "/var/lib/pgcustom/15/data"
        unit = node.host.run("systemctl show -p MainPID -p ActiveState -p UnitFileState %s", node.service)
        props = dict(line.split("=", 1) for line in unit.stdout.split())
        assert props["ActiveState"] == "active" and props["UnitFileState"] == "enabled", f"{node.name}: {props}"
        # The unit's main process is the postmaster of the custom data directory, listening where the inventory says.
        pid_file = node.host.file(f"{node.data_dir}/postmaster.pid").content_string.splitlines()
        assert pid_file[0] == props["MainPID"], f"{node.name}: {pid_file[0]} != {props['MainPID']}"
        assert pid_file[1] == node.data_dir
        assert int(pid_file[3]) == node.port == 5433
        assert pid_file[4] == node.socket_dir == "/tmp"
        assert node.psql("SELECT pg_backend_pid() > 0 AND current_setting('port') = '5433'") == "t"


def test_the_package_cluster_was_left_alone(nodes) -> None:
    for node in nodes.values():
        before = node.host.file("/root/pgrepl-debian-cluster.before").content_string
        now = node.host.run("sh -c %s sh %s", STATE_SCRIPT, str(node.major))
        assert now.rc == 0, now.stderr
        assert now.stdout == before, f"{node.name}: the package's cluster changed"
        assert re.search(r"^Database cluster state:\s+shut down$", now.stdout, re.MULTILINE), now.stdout
        assert "masked\nmasked\n" in now.stdout and "inactive\ninactive\n" in now.stdout
        debian = f"/var/lib/postgresql/{node.major}/main"
        assert not node.host.file(f"{debian}/postmaster.pid").exists
        assert not node.host.file(f"{debian}/standby.signal").exists


def test_standby_files_are_in_the_custom_data_directory(primary, standbys) -> None:
    auto = primary.host.file(f"{primary.data_dir}/postgresql.auto.conf").content_string
    assert "wal_log_hints = 'on'" in auto and "listen_addresses = '*'" in auto
    for standby in standbys:
        assert standby.host.file(f"{standby.data_dir}/standby.signal").is_file
        auto = standby.host.file(f"{standby.data_dir}/postgresql.auto.conf").content_string
        assert "primary_conninfo" in auto and " port=5433 " in auto
        # Nothing of it went to the package's layout.
        assert not standby.host.file(f"/var/lib/postgresql/{standby.major}/main/standby.signal").exists
        assert "primary_conninfo" not in standby.host.file(
            f"/var/lib/postgresql/{standby.major}/main/postgresql.auto.conf").content_string


def test_the_old_custom_directory_was_moved_aside_next_to_it(standbys) -> None:
    for standby in standbys:
        names = standby.host.run("ls -1A /var/lib/pgcustom/15").stdout.split()
        moved = [name for name in names if name.startswith("data.pgrepl-moved-")]
        # Each standby had its own initdb'd cluster (another system identifier): moved aside, never deleted.
        assert len(moved) == 1, f"{standby.name}: {names}"
        assert sorted(set(names) - set(moved)) == ["data"], f"{standby.name}: {names}"
        assert standby.host.file(f"/var/lib/pgcustom/15/{moved[0]}/postgresql.conf").is_file
        assert not standby.host.run("ls -d /var/lib/postgresql/15/main.pgrepl-moved-* 2>/dev/null").stdout
