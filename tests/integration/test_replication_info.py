"""pgrepl.streaming.replication_info through Ansible against real PostgreSQL servers.

Shared `primary`/`standby` fixtures are only read (the replay pause is undone in a finally, the probe table and
the test role are dropped). Stopped-server scenarios use a primary + standby pair of this file's own.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from psycopg import sql

from ansible_collections.pgrepl.streaming.plugins.module_utils import _info
from ansible_collections.pgrepl.streaming.plugins.module_utils._conninfo import mask

from ansible_runner import run_module, run_tasks
from cluster import SUPERUSER_PASSWORD, Clusters, PgCluster, free_port

MODULE = "pgrepl.streaming.replication_info"
PROBE_TABLE = "replication_info_probe"
WATCHER_ROLE = "replication_info_watcher"
WATCHER_PASSWORD = "replication-info-watcher-pw-3Kd"
OWN_SLOT = "replication_info_own"

# ---------------------------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------------------------


def lsn(value: str) -> int:
    high, _sep, low = value.partition("/")
    return (int(high, 16) << 32) | int(low, 16)


def wait_for(predicate: Any, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise TimeoutError(f"timed out waiting for {what}")


def wait_replayed(primary: PgCluster, standby: PgCluster) -> None:
    """Until the standby has replayed everything the primary has written so far."""
    target = primary.scalar("SELECT pg_current_wal_lsn()::text")
    wait_for(lambda: standby.scalar("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (target,)),
             f"the standby to replay up to {target}")


def statements_since(cluster: PgCluster, mark: int) -> list[str]:
    """SQL texts the server logged (log_statement=all) after a log offset."""
    text = cluster.log_text()[mark:]
    entries = re.split(r"\n(?=\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2})", text)
    found = []
    for entry in entries:
        match = re.search(r"LOG:  (?:statement|execute [^:]*): (.*)", entry, re.DOTALL)
        if match:
            found.append(match.group(1).strip())
    return found


def real_timeline_of_primary(primary: PgCluster) -> int:
    return int(primary.scalar("SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)"), 16)


def insert_probe(primary: PgCluster) -> None:
    primary.sql(sql.SQL("INSERT INTO {} DEFAULT VALUES").format(sql.Identifier(PROBE_TABLE)))


def is_running(cluster: PgCluster) -> bool:
    return (cluster.data_dir / "postmaster.pid").exists()


def ensure_up(own: dict[str, PgCluster]) -> None:
    for name in ("primary", "standby"):
        if not is_running(own[name]):
            own[name].start()
    own["standby"].wait_streaming()


def ensure_down(own: dict[str, PgCluster]) -> None:
    own["standby"].stop("fast")
    own["primary"].stop("fast")


# ---------------------------------------------------------------------------------------------------------------
# fixtures
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def own(throwaway: Clusters) -> dict[str, Any]:
    """A primary and a standby of this file's own, the standby streaming over TCP with a password in its
    primary_conninfo (so masking has something to hide); free to stop and start."""
    primary = throwaway.server("own_primary")
    standby = throwaway.standby(primary, "own_standby", slot=OWN_SLOT)
    conninfo = (f"host=127.0.0.1 port={primary.port} user=postgres password='{SUPERUSER_PASSWORD}' "
                "application_name=replication_info_own sslmode=disable")
    standby.sql(sql.SQL("ALTER SYSTEM SET primary_conninfo = {}").format(sql.Literal(conninfo)))
    standby.reload()
    wait_for(lambda: standby.scalar("SELECT sender_host FROM pg_stat_wal_receiver WHERE status = 'streaming'")
             == "127.0.0.1", "the own standby to stream over TCP")
    ids = {"primary": primary.scalar("SELECT system_identifier::text FROM pg_control_system()"),
           "standby": standby.scalar("SELECT system_identifier::text FROM pg_control_system()")}
    return {"primary": primary, "standby": standby, "ids": ids, "base": throwaway.base}


@pytest.fixture(scope="module")
def probe(primary: PgCluster, standby: PgCluster) -> Iterator[None]:
    """A table on the shared primary to commit into (so the standby has replayed transactions); dropped after."""
    primary.sql(sql.SQL("CREATE TABLE IF NOT EXISTS {} (id serial PRIMARY KEY, at timestamptz DEFAULT now())")
                .format(sql.Identifier(PROBE_TABLE)))
    insert_probe(primary)
    wait_replayed(primary, standby)
    yield
    primary.sql(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(PROBE_TABLE)))
    wait_replayed(primary, standby)


@pytest.fixture()
def watcher(primary: PgCluster) -> Iterator[str]:
    """A login role that is neither superuser nor pg_monitor member; dropped after."""
    role = sql.Identifier(WATCHER_ROLE)
    primary.sql(sql.SQL("DROP ROLE IF EXISTS {}").format(role))
    primary.sql(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(role, sql.Literal(WATCHER_PASSWORD)))
    yield WATCHER_ROLE
    primary.sql(sql.SQL("DROP ROLE IF EXISTS {}").format(role))


# ---------------------------------------------------------------------------------------------------------------
# the shared primary and standby
# ---------------------------------------------------------------------------------------------------------------


def test_primary_facts_match_the_server(primary: PgCluster, standby: PgCluster) -> None:
    result = run_module(MODULE, primary.login(data_dir=str(primary.data_dir)))
    assert result.get("failed") is not True, result
    assert result["changed"] is False
    assert result["reachable"] is True
    assert result["role"] == "primary"
    assert result["in_recovery"] is False
    assert result["facts_source"] == "server"
    assert result["error"] is None
    assert result["server_version_num"] == primary.scalar("SELECT current_setting('server_version_num')::int")
    assert result["major"] == result["server_version_num"] // 10000
    assert result["system_identifier"] == primary.scalar("SELECT system_identifier::text FROM pg_control_system()")
    assert result["timeline"] == real_timeline_of_primary(primary)
    assert lsn(result["current_lsn"]) <= lsn(primary.scalar("SELECT pg_current_wal_lsn()::text"))
    assert result["receive_lsn"] is None and result["replay_lsn"] is None
    assert result["replay_delay_seconds"] is None
    assert result["wal_receiver"] is None

    real_rows = primary.sql("SELECT pid, application_name, state, sync_state FROM pg_stat_replication")
    assert result["walsenders_count"] == len(real_rows) >= 1
    # The bench standby's WAL sender is the one holding its slot.
    sender_pid = primary.scalar("SELECT active_pid FROM pg_replication_slots WHERE slot_name = 'bench_standby'")
    real = next(r for r in real_rows if r[0] == sender_pid)
    row = next(r for r in result["replication"] if r["pid"] == sender_pid)
    assert row["application_name"] == real[1]
    assert row["state"] == real[2] == "streaming"
    assert row["sync_state"] == real[3]
    for key in ("sent_lag_bytes", "write_lag_bytes", "flush_lag_bytes", "replay_lag_bytes"):
        assert isinstance(row[key], int) and row[key] >= 0, (key, row)
    for key in ("sent_lsn", "write_lsn", "flush_lsn", "replay_lsn"):
        assert re.fullmatch(r"[0-9A-F]+/[0-9A-F]+", row[key]), (key, row)
    for key in ("write_lag", "flush_lag", "replay_lag"):
        assert row[key] is None or isinstance(row[key], float)
    assert row["backend_start"] and row["sync_priority"] is not None

    real_slots = dict(primary.sql("SELECT slot_name, active FROM pg_replication_slots"))
    slots = {slot["slot_name"]: slot for slot in result["slots"]}
    assert set(slots) == set(real_slots)
    assert slots["bench_standby"]["active"] is True is real_slots["bench_standby"]
    assert slots["bench_standby"]["slot_type"] == "physical"
    assert slots["bench_standby"]["wal_status"] in ("reserved", "extended")
    assert isinstance(slots["bench_standby"]["retained_bytes"], int) and slots["bench_standby"]["retained_bytes"] >= 0
    assert "conflicting" not in slots["bench_standby"]  # a 16+ column: this server is 15
    assert result["active_slots_count"] == sum(1 for active in real_slots.values() if active)

    real_settings = dict(primary.sql("SELECT name, setting FROM pg_settings WHERE name = ANY(%s)",
                                     (list(_info.SETTINGS_NAMES),)))
    settings = result["settings"]
    assert settings["port"] == int(real_settings["port"]) == primary.port
    assert settings["wal_level"] == real_settings["wal_level"] == "replica"
    assert settings["max_wal_senders"] == int(real_settings["max_wal_senders"])
    assert settings["hot_standby"] is True and settings["wal_log_hints"] is True
    assert settings["data_directory"] == real_settings["data_directory"] == str(primary.data_dir)
    assert settings["hba_file"] == str(primary.hba_file)
    assert result["synchronous_standby_names"] == primary.scalar("SHOW synchronous_standby_names")
    assert result["synchronous_commit"] == primary.scalar("SHOW synchronous_commit")
    assert result["pending_restart"] == [r[0] for r in primary.sql(
        "SELECT name FROM pg_settings WHERE pending_restart ORDER BY name")]
    assert result["postmaster_start_time"].startswith(
        primary.scalar("SELECT to_char(pg_postmaster_start_time() AT TIME ZONE 'UTC', 'YYYY-MM-DD')"))

    facts = result["data_dir_facts"]
    assert facts["data_dir"] == str(primary.data_dir)
    assert facts["cluster_state"] == "in production"
    assert facts["system_identifier"] == result["system_identifier"]
    assert facts["standby_signal"] is False
    assert facts["postmaster_running"] is True
    assert facts["postmaster_port"] == primary.port
    assert facts["pg_version"] == (primary.data_dir / "PG_VERSION").read_text().strip()


def test_standby_facts_match_the_server(primary: PgCluster, standby: PgCluster) -> None:
    result = run_module(MODULE, standby.login(data_dir=str(standby.data_dir)))
    assert result.get("failed") is not True, result
    assert result["changed"] is False
    assert result["role"] == "standby"
    assert result["in_recovery"] is True is standby.scalar("SELECT pg_is_in_recovery()")
    assert result["system_identifier"] == primary.scalar("SELECT system_identifier::text FROM pg_control_system()")
    assert result["timeline"] == standby.scalar("SELECT received_tli FROM pg_stat_wal_receiver")
    assert result["current_lsn"] is None
    receiver = result["wal_receiver"]
    assert receiver["status"] == "streaming"
    assert receiver["slot_name"] == "bench_standby"
    assert receiver["sender_port"] == primary.port
    assert "received_lsn" not in receiver and receiver["flushed_lsn"]
    real_conninfo = standby.scalar("SELECT conninfo FROM pg_stat_wal_receiver")
    assert receiver["conninfo"] == mask(real_conninfo)
    assert SUPERUSER_PASSWORD not in json.dumps(result)
    assert re.search(r"password=(?!\*{8})", receiver["conninfo"]) is None
    # Positions only move forward: what the module saw is at most what the standby has now.
    assert lsn(result["receive_lsn"]) <= lsn(standby.scalar("SELECT pg_last_wal_receive_lsn()::text"))
    assert lsn(result["replay_lsn"]) <= lsn(standby.scalar("SELECT pg_last_wal_replay_lsn()::text"))
    assert result["replay_paused"] is False
    assert result["replay_pause_state"] == "not paused"
    assert result["replication"] == [] and result["walsenders_count"] == 0
    assert result["settings"]["primary_slot_name"] == "bench_standby"
    facts = result["data_dir_facts"]
    assert facts["standby_signal"] is True is (standby.data_dir / "standby.signal").exists()
    assert facts["cluster_state"] == "in archive recovery"
    assert facts["system_identifier"] == result["system_identifier"]


def test_replay_delay_is_zero_on_an_idle_caught_up_standby(primary: PgCluster, standby: PgCluster,
                                                           probe: None) -> None:
    insert_probe(primary)
    wait_replayed(primary, standby)
    time.sleep(2)
    # The naive metric (now() - pg_last_xact_replay_timestamp()) says seconds here, unless a commit of the
    # shared primary (autovacuum of another test's table) was replayed meanwhile: it is not asserted, the module's is.
    # The primary's background WAL (autovacuum, a running-transactions record) can reach the standby during the
    # call and be received a moment before it is replayed: the module's zeros are asserted for a call during which
    # the standby was caught up and received nothing (its positions the same before and after).
    positions = "SELECT pg_last_wal_receive_lsn()::text, pg_last_wal_replay_lsn()::text"
    for _attempt in range(20):
        before = standby.sql(positions)[0]
        result = run_module(MODULE, standby.login())
        if before[0] == before[1] and standby.sql(positions)[0] == before:
            break
    else:
        raise AssertionError("the standby received WAL during each of 20 calls")
    assert result["replay_delay_seconds"] == 0
    assert result["replay_lag_bytes"] == 0


def test_replay_delay_is_positive_while_replay_is_behind(
        primary: PgCluster, standby: PgCluster, probe: None) -> None:
    insert_probe(primary)
    wait_replayed(primary, standby)
    standby.sql("SELECT pg_wal_replay_pause()")
    try:
        time.sleep(1)
        insert_probe(primary)
        wait_for(lambda: standby.scalar("SELECT pg_last_wal_receive_lsn() > pg_last_wal_replay_lsn()"),
                 "the standby to receive WAL it does not replay")
        wait_for(lambda: standby.scalar("SELECT pg_get_wal_replay_pause_state()") == "paused", "replay to pause")
        result = run_module(MODULE, standby.login())
        assert result.get("failed") is not True, result
        assert result["replay_paused"] is True
        assert result["replay_pause_state"] == "paused"
        assert result["replay_delay_seconds"] > 0
        assert result["replay_lag_bytes"] > 0
        assert lsn(result["receive_lsn"]) > lsn(result["replay_lsn"])
        assert standby.scalar("SELECT pg_is_wal_replay_paused()") is True
    finally:
        standby.sql("SELECT pg_wal_replay_resume()")
        wait_replayed(primary, standby)
    assert standby.scalar("SELECT pg_get_wal_replay_pause_state()") == "not paused"


STABLE_KEYS = ("reachable", "role", "server_version_num", "major", "system_identifier", "timeline", "in_recovery",
               "synchronous_standby_names", "synchronous_commit", "settings", "pending_restart",
               "postmaster_start_time", "walsenders_count", "active_slots_count", "privileges", "facts_source")


@pytest.mark.parametrize("node", ["primary", "standby"])
def test_check_mode_gives_the_same_result(request: pytest.FixtureRequest, node: str) -> None:
    cluster: PgCluster = request.getfixturevalue(node)
    args = cluster.login(data_dir=str(cluster.data_dir))
    normal, checked = run_tasks([{"name": "normal", MODULE: args},
                                 {"name": "check mode", MODULE: args, "check_mode": True}]).results
    assert checked.get("failed") is not True, checked
    assert normal["changed"] is False and checked["changed"] is False
    for key in STABLE_KEYS:
        assert checked[key] == normal[key], key
    assert [s["slot_name"] for s in checked["slots"]] == [s["slot_name"] for s in normal["slots"]]
    assert [r["application_name"] for r in checked["replication"]] == \
        [r["application_name"] for r in normal["replication"]]
    assert checked["data_dir_facts"]["system_identifier"] == normal["data_dir_facts"]["system_identifier"]


def test_one_read_only_query_per_call(primary: PgCluster) -> None:
    mark = len(primary.log_text())
    result = run_module(MODULE, primary.login())
    assert result["role"] == "primary"
    statements = statements_since(primary, mark)
    # Every module session first bounds itself (_connection.SESSION_TIMEOUTS, through set_config), then one query.
    assert len(statements) == 2, statements
    assert statements[0] == ("SELECT pg_catalog.set_config('lock_timeout', $1, false), "
                             "pg_catalog.set_config('statement_timeout', $2, false)"), statements
    assert statements[1].startswith("WITH pos AS")
    assert re.search(r"\b(INSERT|UPDATE|DELETE|CREATE|ALTER|DROP|GRANT|SET|COPY|TRUNCATE)\b",
                     statements[1].replace("OFFSET", "")) is None


def test_sql_of_13_and_14_runs_on_this_server(primary: PgCluster, standby: PgCluster) -> None:
    """The column sets chosen for 13 and 14 are subsets of 15's: their SQL must run here too."""
    for cluster in (primary, standby):
        for major in (13, 14):
            with cluster.connect() as conn:
                row = conn.execute(_info.build_info_query(major), (list(_info.SETTINGS_NAMES),)).fetchone()
            facts, _warnings = _info.shape_info(row[0])
            assert facts["system_identifier"] == cluster.scalar(
                "SELECT system_identifier::text FROM pg_control_system()")
            if major == 13:
                assert all("two_phase" not in slot for slot in facts["slots"])
            assert facts["in_recovery"] is (cluster is standby)


def test_login_without_pg_monitor_warns_and_nulls_restricted_columns(primary: PgCluster, watcher: str) -> None:
    login = primary.login(login_user=watcher, login_password=WATCHER_PASSWORD)
    result = run_module(MODULE, login)
    assert result.get("failed") is not True, result
    assert result["changed"] is False
    assert result["role"] == "primary"
    assert result["privileges"] == {"login_role": watcher, "superuser": False, "read_all_stats": False,
                                    "read_all_settings": False}
    assert any(f"the role '{watcher}' is neither a superuser nor a member of pg_monitor" in w
               for w in result.get("warnings", [])), result.get("warnings")
    assert result["replication"] and all(row["state"] is None and row["sent_lsn"] is None
                                         for row in result["replication"])
    assert result["settings"]["data_directory"] is None
    assert result["system_identifier"] == primary.scalar("SELECT system_identifier::text FROM pg_control_system()")

    primary.sql(sql.SQL("GRANT pg_monitor TO {}").format(sql.Identifier(watcher)))
    result = run_module(MODULE, login)
    assert not result.get("warnings"), result.get("warnings")
    assert result["privileges"]["read_all_stats"] is True
    assert all(row["state"] == "streaming" for row in result["replication"])
    assert result["settings"]["data_directory"] == str(primary.data_dir)


def test_unreachable_server_without_data_dir_is_a_fact_not_a_failure(primary: PgCluster) -> None:
    closed = free_port()
    result = run_module(MODULE, primary.login(login_port=closed))
    assert result.get("failed") is not True, result
    assert result["changed"] is False
    assert result["reachable"] is False
    assert result["role"] == "unknown"
    assert "cannot reach PostgreSQL" in result["error"] and str(closed) in result["error"]
    assert result["system_identifier"] is None and result["data_dir_facts"] is None


# ---------------------------------------------------------------------------------------------------------------
# this file's own pair: masking with a real password, running-but-unreachable, stopped servers
# ---------------------------------------------------------------------------------------------------------------


def test_passwords_in_primary_conninfo_are_masked_everywhere(own: dict[str, Any]) -> None:
    ensure_up(own)
    standby: PgCluster = own["standby"]
    # The running setting really holds the password in clear: the module must hide it.
    assert SUPERUSER_PASSWORD in standby.scalar("SHOW primary_conninfo")
    run = run_tasks([{"name": "facts", MODULE: standby.login(data_dir=str(standby.data_dir))}],
                    verbosity=3, json_output=False)
    assert run.returncode == 0, run.stdout
    assert SUPERUSER_PASSWORD not in run.stdout + run.stderr
    result = run_module(MODULE, standby.login(data_dir=str(standby.data_dir)))
    assert SUPERUSER_PASSWORD not in json.dumps(result)
    assert "password=********" in result["settings"]["primary_conninfo"]
    assert f"port={own['primary'].port}" in result["settings"]["primary_conninfo"]
    assert result["wal_receiver"]["status"] == "streaming"
    assert result["wal_receiver"]["sender_host"] == "127.0.0.1"
    assert result["wal_receiver"]["slot_name"] == OWN_SLOT
    assert "password=********" in result["wal_receiver"]["conninfo"]
    assert result["system_identifier"] == own["ids"]["primary"]


def test_running_postmaster_behind_the_wrong_port_is_unknown_not_down(own: dict[str, Any]) -> None:
    ensure_up(own)
    primary: PgCluster = own["primary"]
    result = run_module(MODULE, primary.login(login_port=free_port(), data_dir=str(primary.data_dir)))
    assert result.get("failed") is not True, result
    assert result["reachable"] is False
    assert result["role"] == "unknown"
    assert result["data_dir_facts"]["postmaster_running"] is True
    assert result["data_dir_facts"]["postmaster_port"] == primary.port
    assert any("postmaster of" in w and "is running" in w for w in result.get("warnings", []))


def test_stopped_servers_are_read_from_their_data_directories(own: dict[str, Any]) -> None:
    ensure_down(own)
    primary: PgCluster = own["primary"]
    standby: PgCluster = own["standby"]
    assert not is_running(primary) and not is_running(standby)
    run = run_tasks([
        {"name": "down primary", MODULE: primary.login(data_dir=str(primary.data_dir))},
        {"name": "down standby", MODULE: standby.login(data_dir=str(standby.data_dir))},
        {"name": "down primary, no data_dir", MODULE: primary.login()},
    ])
    down_primary, down_standby, no_dir = run.results
    for result in (down_primary, down_standby):
        assert result.get("failed") is not True, result
        assert result["changed"] is False
        assert result["reachable"] is False
        assert result["role"] == "down"
        assert result["facts_source"] == "data_dir"
        assert "cannot reach PostgreSQL" in result["error"]
        assert result["replication"] is None and result["slots"] is None
        assert result["data_dir_facts"]["postmaster_running"] is False
        assert result["data_dir_facts"]["postmaster_pid_file"] is False

    facts = down_primary["data_dir_facts"]
    assert facts["system_identifier"] == own["ids"]["primary"] == down_primary["system_identifier"]
    assert facts["cluster_state"] == "shut down"
    assert facts["standby_signal"] is False
    assert facts["timeline"] == 1 == down_primary["timeline"]
    assert re.fullmatch(r"[0-9A-F]+/[0-9A-F]+", facts["checkpoint_lsn"])
    assert facts["pg_controldata"] == str(primary.bin_dir / "pg_controldata")

    facts = down_standby["data_dir_facts"]
    assert facts["system_identifier"] == own["ids"]["primary"]
    assert facts["cluster_state"] == "shut down in recovery"
    assert facts["standby_signal"] is True

    # What the module read is what is on disk.
    real = subprocess.run([str(primary.bin_dir / "pg_controldata"), "-D", str(standby.data_dir)],
                          capture_output=True, text=True, env={**os.environ, "LC_ALL": "C"}, check=True).stdout
    assert f"Database system identifier:           {own['ids']['primary']}" in real
    assert "Database cluster state:               shut down in recovery" in real
    assert f"Latest checkpoint location:           {facts['checkpoint_lsn']}" in real
    assert (standby.data_dir / "standby.signal").exists()

    assert no_dir.get("failed") is not True, no_dir
    assert no_dir["reachable"] is False
    assert no_dir["role"] == "unknown"
    assert no_dir["data_dir_facts"] is None


def test_stale_postmaster_pid_of_a_crashed_server_still_means_down(own: dict[str, Any]) -> None:
    ensure_down(own)
    primary: PgCluster = own["primary"]
    dead = subprocess.run(["sh", "-c", "echo $$"], capture_output=True, text=True, check=True)
    pid_file = primary.data_dir / "postmaster.pid"
    pid_file.write_text(f"{int(dead.stdout)}\n{primary.data_dir}\n0\n{primary.port}\n/tmp\n*\n0 0\nready\n")
    try:
        result = run_module(MODULE, primary.login(data_dir=str(primary.data_dir)))
    finally:
        pid_file.unlink()
    assert result.get("failed") is not True, result
    assert result["role"] == "down"
    assert result["data_dir_facts"]["postmaster_pid_file"] is True
    assert result["data_dir_facts"]["postmaster_running"] is False


# ---------------------------------------------------------------------------------------------------------------
# bad input: fails with a message naming the option and the value, sends nothing
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="pgrepl-replinfo-bad-"))
    (path / "not_a_data_dir").mkdir()
    (path / "empty_bin").mkdir()
    fake = path / "bin16" / "pg_controldata"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'pg_controldata (PostgreSQL) 16.4'\n")
    fake.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


BAD_INPUTS = {
    "data_dir_missing": ({"data_dir": "{scratch}/does/not/exist"},
                         r"^data_dir: '.*/does/not/exist' does not exist$"),
    "data_dir_not_a_data_dir": ({"data_dir": "{scratch}/not_a_data_dir"},
                                r"^data_dir: '.*/not_a_data_dir' is not a PostgreSQL data directory \(no PG_VERSION"),
    "data_dir_relative": ({"data_dir": "relative/data"}, r"^data_dir: 'relative/data' must be an absolute path$"),
    "bin_dir_without_pg_controldata": ({"data_dir": "{data_dir}", "bin_dir": "{scratch}/empty_bin"},
                                       r"^bin_dir: '.*/empty_bin' has no executable pg_controldata$"),
    "bin_dir_of_another_major": ({"data_dir": "{data_dir}", "bin_dir": "{scratch}/bin16"},
                                 r"^bin_dir: '.*/bin16/pg_controldata' is PostgreSQL 16 but data_dir is "
                                 r"PostgreSQL 15"),
    "wrong_password": ({"login_password": "not-the-password"},
                       r"^authentication failed for postgres@127\.0\.0\.1:\d+/postgres: check login_user and "
                       r"login_password"),
    "login_port_not_an_int": ({"login_port": "abc"},
                              r"^argument 'login_port' is of type str and we were unable to convert to int"),
    "connect_timeout_not_an_int": ({"connect_timeout": "soon"},
                                   r"^argument 'connect_timeout' is of type str and we were unable to convert to int"),
    "data_dir_not_a_string": ({"data_dir": ["/var/lib/postgresql"]},
                              r"^data_dir: \"\['/var/lib/postgresql'\]\" must be an absolute path$"),
    "login_port_out_of_range": ({"login_port": 70000}, r"^login_port: 70000 is not a TCP port \(1-65535\)$"),
    "login_db_quote_injection": ({"login_db": "postgres' OR '1'='1"},
                                 r"^login_db: the database does not exist on .*postgres' OR '1'='1"),
    "login_db_keyword_injection": ({"login_db": "postgres dbname=template1"},
                                   r"^login_db: the database does not exist .*\"postgres dbname=template1\""),
    # SCRAM answers an unknown role like a wrong password (no role enumeration).
    "login_user_injection": ({"login_user": 'postgres" --'},
                             r'^authentication failed for postgres" --@127\.0\.0\.1:\d+/postgres'),
    "unknown_option": ({"state": "present"}, r"Unsupported parameters for .*replication_info.* module: state"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_fails_clearly_and_sends_nothing(primary: PgCluster, scratch: Path, case: str) -> None:
    overrides, pattern = BAD_INPUTS[case]
    args = primary.login()
    for key, value in overrides.items():
        args[key] = value.format(scratch=scratch, data_dir=primary.data_dir) if isinstance(value, str) else value
    before = sorted(p.name for p in scratch.rglob("*"))
    mark = len(primary.log_text())
    result = run_module(MODULE, args)
    assert result.get("failed") is True, result
    assert result["changed"] is False
    assert re.search(pattern, result["msg"]), result["msg"]
    assert "Traceback" not in result["msg"]
    assert SUPERUSER_PASSWORD not in json.dumps(result)
    assert statements_since(primary, mark) == []
    assert sorted(p.name for p in scratch.rglob("*")) == before
