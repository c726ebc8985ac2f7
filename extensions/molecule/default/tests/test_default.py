"""Verify the real state of the cluster site.yml built: replication works end to end, nothing was lost."""

from __future__ import annotations

import os
import time

import pytest

# Every scenario names its hosts <scenario>-primary, -standby1, -standby2 (MOLECULE_SCENARIO_NAME is set by
# Molecule for the verifier).
SCENARIO = os.environ.get("MOLECULE_SCENARIO_NAME", "default")
PRIMARY = f"pgrepl-{SCENARIO}-primary"
STANDBYS = [f"pgrepl-{SCENARIO}-standby1", f"pgrepl-{SCENARIO}-standby2"]
PASSWORD = "molecule-replication-pw-3Hk"


def psql(host, query: str) -> str:
    """One query as the postgres OS user over the local socket; testinfra quotes the argument."""
    result = host.run("runuser -u postgres -- psql -XAtc %s", query)
    assert result.rc == 0, result.stderr
    return result.stdout.strip()


@pytest.fixture(scope="module")
def major(all_hosts) -> int:
    return int(all_hosts[PRIMARY].ansible.get_variables()["pgrepl_test_major"])


@pytest.fixture(scope="module")
def all_hosts(request):
    import testinfra
    inventory = request.config.option.ansible_inventory
    return {h: testinfra.get_host(f"ansible://{h}", ansible_inventory=inventory) for h in [PRIMARY, *STANDBYS]}


def test_rows_written_on_the_primary_arrive_on_every_standby(all_hosts) -> None:
    primary = all_hosts[PRIMARY]
    marker = str(time.time_ns())
    psql(primary, "CREATE TABLE IF NOT EXISTS verify_rows (marker text)")
    psql(primary, f"INSERT INTO verify_rows VALUES ('{marker}')")  # noqa: S608 (marker: digits we made)
    for standby in STANDBYS:
        deadline = time.monotonic() + 30
        seen = ""
        while time.monotonic() < deadline:
            seen = psql(all_hosts[standby],
                        f"SELECT count(*) FROM verify_rows WHERE marker = '{marker}'")  # noqa: S608 (digits)
            if seen == "1":
                break
            time.sleep(0.5)
        assert seen == "1", f"{standby} never received the row"


def test_every_standby_streams_through_its_active_slot(all_hosts) -> None:
    primary = all_hosts[PRIMARY]
    rows = psql(primary, "SELECT application_name || ':' || state FROM pg_stat_replication ORDER BY 1").splitlines()
    assert rows == [f"{s}:streaming" for s in STANDBYS]
    slots = psql(primary, "SELECT slot_name || ':' || active FROM pg_replication_slots ORDER BY 1").splitlines()
    assert slots == [f"{s.replace('-', '_')}:true" for s in STANDBYS]
    for standby in STANDBYS:
        assert psql(all_hosts[standby], "SELECT status FROM pg_stat_wal_receiver") == "streaming"


def test_no_password_in_configuration_or_logs(all_hosts, major) -> None:
    for host in all_hosts.values():
        auto = host.file(f"/var/lib/postgresql/{major}/main/postgresql.auto.conf")
        assert PASSWORD not in auto.content_string
        assert "password=" not in auto.content_string
        logs = host.run("cat /var/log/postgresql/*.log")
        assert PASSWORD not in logs.stdout


def test_passfile_is_private_and_holds_every_other_node(all_hosts) -> None:
    for host_name, host in all_hosts.items():
        passfile = host.file("/var/lib/postgresql/.pgpass")
        assert passfile.mode == 0o600
        assert passfile.user == "postgres"
        lines = [line for line in passfile.content_string.splitlines() if line and not line.startswith("#")]
        assert len(lines) == 2, f"{host_name}: {lines}"


def test_pg_hba_parses_and_keeps_the_original_lines_in_order(all_hosts, major) -> None:
    for host_name, host in all_hosts.items():
        assert psql(host, "SELECT count(*) FROM pg_hba_file_rules WHERE error IS NOT NULL") == "0"
        original = host.file("/root/pg_hba.conf.orig").content_string.splitlines()
        current = host.file(f"/etc/postgresql/{major}/main/pg_hba.conf").content_string.splitlines()
        added = [line for line in current if "pgrepl.streaming" in line]
        assert len(added) == 2, f"{host_name}: {added}"
        assert [line for line in current if line not in added] == original
        # The new entries match before the final replication reject.
        reject = current.index("host    replication     all             0.0.0.0/0               reject")
        assert all(current.index(line) < reject for line in added)


def test_the_unrelated_database_was_moved_aside_not_deleted(all_hosts, major) -> None:
    standby1 = all_hosts[STANDBYS[0]]
    moved = standby1.run(f"ls -d /var/lib/postgresql/{major}/main.pgrepl-moved-*").stdout.split()
    assert len(moved) == 1
    assert standby1.file(moved[0] + "/PG_VERSION").exists
    assert standby1.file(moved[0] + "/base").is_directory
