"""pgrepl.streaming.server_start through Ansible, as root, on servers of this file's own (the pg_ctl path).

A primary with a streaming standby, in one temporary directory, stopped and removed at the end. There is no
systemd here: the unit path is exercised by the roles' Molecule scenarios and the day-2 chain, on systemd hosts.
Also node_apply's rule: a server_start item after an item that left a restart pending restarts the server.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ansible_runner import run_module, run_tasks
from cluster import Clusters, PgCluster

MODULE = "pgrepl.streaming.server_start"


def postmaster_pid(cluster: PgCluster) -> int | None:
    path = cluster.data_dir / "postmaster.pid"
    return int(path.read_text(encoding="utf-8").splitlines()[0]) if path.exists() else None


def ok(result: dict[str, Any]) -> dict[str, Any]:
    assert result.get("failed") is not True, result
    return result


@dataclass
class Env:
    base: Path
    primary: PgCluster
    standby: PgCluster

    def args(self, cluster: PgCluster, **extra: Any) -> dict[str, Any]:
        """Start options for a cluster of this file: pg_ctl with its log file, the wait over its own socket."""
        return {"data_dir": str(cluster.data_dir), "log_file": str(cluster.log_file),
                "login_unix_socket": str(cluster.socket_dir), "login_port": cluster.port, "login_user": "postgres",
                **extra}


@pytest.fixture(scope="module")
def env(throwaway: Clusters) -> Env:
    primary, standby = throwaway.pair("start")
    return Env(base=throwaway.base, primary=primary, standby=standby)


def test_bad_inputs_change_nothing(env: Env) -> None:
    standby = env.standby
    standby.stop()
    not_data = env.base / "not-a-data-dir"
    not_data.mkdir(exist_ok=True)
    data_dir = str(standby.data_dir)
    log = str(standby.log_file)
    cases: list[tuple[dict[str, Any], str]] = [
        ({}, "missing required arguments: data_dir"),
        ({"data_dir": str(not_data), "log_file": log}, f"data_dir: '{not_data}' is not a PostgreSQL data directory"),
        ({"data_dir": "relative/pgdata", "log_file": log}, "data_dir: 'relative/pgdata' must be an absolute path"),
        ({"data_dir": data_dir}, "log_file: required without service"),
        ({"data_dir": data_dir, "log_file": "server.log"}, "log_file: 'server.log' must be an absolute path"),
        ({"data_dir": data_dir, "service": "--now"}, "service: '--now' is not a systemd unit name"),
        ({"data_dir": data_dir, "service": "pg; reboot"}, "service: 'pg; reboot' is not a systemd unit name"),
        ({"data_dir": data_dir, "log_file": log, "state": "stopped"}, "value of state must be one of"),
        ({"data_dir": data_dir, "log_file": log, "wait_for": "ready"}, "value of wait_for must be one of"),
        ({"data_dir": data_dir, "log_file": log, "timeout": 0}, "timeout: 0 is not a number of seconds"),
        ({"data_dir": data_dir, "log_file": log, "enabled": True}, "enabled: needs service"),
        ({"data_dir": data_dir, "log_file": log, "os_user": "pgrepl_no_such_user"}, "pgrepl_no_such_user"),
    ]
    run = run_tasks([{"name": f"case {index}", MODULE: args} for index, (args, _match) in enumerate(cases)])
    assert len(run.results) == len(cases), run.stdout
    for (args, match), result in zip(cases, run.results):
        assert result.get("failed") is True, (args, result)
        assert match in result["msg"], (args, result["msg"])
        assert result.get("changed") is not True, (args, result)
    # Nothing was started.
    assert postmaster_pid(standby) is None


def test_check_mode_then_start_until_streaming_then_rerun(env: Env) -> None:
    standby = env.standby
    standby.stop()
    args = env.args(standby, wait_for="streaming", timeout=60)

    predicted = ok(run_module(MODULE, args, check=True))
    assert predicted["changed"] is True and predicted["outcome"] == "would_start"
    assert postmaster_pid(standby) is None

    started = ok(run_module(MODULE, args))
    assert started["changed"] is True and started["outcome"] == "started"
    assert started["last_seen"] == "streaming"
    # The real state: a standby in recovery whose WAL receiver streams, and the primary sees its walsender.
    assert standby.scalar("SELECT pg_is_in_recovery()") is True
    assert standby.scalar("SELECT status FROM pg_stat_wal_receiver") == "streaming"
    assert env.primary.scalar("SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'") == 1
    pid = postmaster_pid(standby)

    again = ok(run_module(MODULE, args))
    assert again["changed"] is False and again["outcome"] == "already_running"
    assert postmaster_pid(standby) == pid


def test_restarted_restarts(env: Env) -> None:
    primary = env.primary
    pid = postmaster_pid(primary)
    predicted = ok(run_module(MODULE, env.args(primary, state="restarted"), check=True))
    assert predicted["outcome"] == "would_restart" and postmaster_pid(primary) == pid
    restarted = ok(run_module(MODULE, env.args(primary, state="restarted")))
    assert restarted["changed"] is True and restarted["outcome"] == "restarted"
    assert postmaster_pid(primary) not in (None, pid)
    assert primary.scalar("SELECT 1") == 1


def test_wait_for_streaming_on_a_primary_times_out_saying_why(env: Env) -> None:
    result = run_module(MODULE, env.args(env.primary, wait_for="streaming", timeout=2))
    assert result.get("failed") is True
    assert "was not its WAL receiver streaming within 2s (last seen: not in recovery)" in result["msg"]
    assert result["reason"] == "not_streaming", result
    # Through node_apply too: the standby role's failed.yml decides by this code, not by the message text.
    login = {"login_unix_socket": str(env.primary.socket_dir), "login_port": env.primary.port, "login_user": "postgres"}
    start = {"module": "server_start", "params": env.args(env.primary, wait_for="streaming", timeout=2)}
    applied = run_module("pgrepl.streaming.node_apply", {"checks": {"start": start}, **login})
    assert applied.get("failed") is True and applied["msg"].startswith("start[0] (server_start): timeout:"), applied
    assert applied["reason"] == "not_streaming", applied


def test_node_apply_restarts_only_for_a_pending_setting(env: Env) -> None:
    """settings then start in one node_apply call: a postmaster setting makes the start item restart, once."""
    primary = env.primary
    login = {"login_unix_socket": str(primary.socket_dir), "login_port": primary.port, "login_user": "postgres"}
    start = {"module": "server_start", "params": {"data_dir": str(primary.data_dir), "log_file": str(primary.log_file)}}
    current = int(primary.scalar("SHOW max_prepared_transactions"))
    wanted = str(current + 3)
    checks = {"settings": {"module": "server_settings", "params": {"settings": {"max_prepared_transactions": wanted}}},
              "start": start}
    pid = postmaster_pid(primary)

    predicted = ok(run_module("pgrepl.streaming.node_apply", {"checks": checks, **login}, check=True))
    assert predicted["check_results"]["start"][0]["outcome"] == "would_restart"
    assert predicted["restart_required"] is False
    assert postmaster_pid(primary) == pid and primary.scalar("SHOW max_prepared_transactions") == str(current)

    applied = ok(run_module("pgrepl.streaming.node_apply", {"checks": checks, **login}))
    assert applied["check_results"]["start"][0]["outcome"] == "restarted"
    assert applied["restart_required"] is False
    assert primary.scalar("SHOW max_prepared_transactions") == wanted
    assert primary.scalar("SELECT count(*) FROM pg_settings WHERE pending_restart") == 0
    pid = postmaster_pid(primary)

    again = ok(run_module("pgrepl.streaming.node_apply", {"checks": checks, **login}))
    assert again["changed"] is False and again["check_results"]["start"][0]["outcome"] == "already_running"
    assert postmaster_pid(primary) == pid

    # Without a start item the pending restart is reported, not done.
    other = {"module": "server_settings", "params": {"settings": {"max_prepared_transactions": str(current + 5)}}}
    only = ok(run_module("pgrepl.streaming.node_apply", {"checks": {"settings": other}, **login}))
    assert only["restart_required"] is True and postmaster_pid(primary) == pid
    assert primary.scalar("SELECT pending_restart FROM pg_settings WHERE name = 'max_prepared_transactions'") is True
    primary.sql("ALTER SYSTEM RESET max_prepared_transactions")


def test_node_apply_creates_slots_after_the_restart_they_need(throwaway: Clusters) -> None:
    """The primary role's order in one call: settings, start, slots. A server that runs wal_level=minimal cannot
    hold a slot; the settings raise it, the start item restarts, the slot item then creates the slot on the
    restarted server. Check mode predicts the restart and the slot and does neither; a re-run changes nothing."""
    cluster = throwaway.server("start_minimal", conf="wal_level = minimal\nmax_wal_senders = 0\n")
    try:
        login = {"login_unix_socket": str(cluster.socket_dir), "login_port": cluster.port, "login_user": "postgres"}
        checks = {
            "settings": {"module": "server_settings",
                         "params": {"settings": {"wal_level": "replica", "max_wal_senders": "5"}}},
            "restart": {"module": "server_start",
                        "params": {"data_dir": str(cluster.data_dir), "log_file": str(cluster.log_file)}},
            "slots": {"module": "replication_slot", "params": [{"name": "after_restart", "immediately_reserve": True}]},
        }
        args = {"checks": checks, **login}
        pid = postmaster_pid(cluster)
        assert cluster.scalar("SHOW wal_level") == "minimal"

        predicted = ok(run_module("pgrepl.streaming.node_apply", args, check=True))
        assert predicted["changed_checks"] == {"settings": True, "restart": True, "slots": True}, predicted
        assert predicted["check_results"]["restart"][0]["outcome"] == "would_restart"
        assert postmaster_pid(cluster) == pid and cluster.scalar("SHOW wal_level") == "minimal"
        assert cluster.scalar("SELECT count(*) FROM pg_replication_slots") == 0
        assert "wal_level" not in (cluster.data_dir / "postgresql.auto.conf").read_text(encoding="utf-8")

        applied = ok(run_module("pgrepl.streaming.node_apply", args))
        assert applied["changed_checks"] == {"settings": True, "restart": True, "slots": True}, applied
        assert applied["check_results"]["restart"][0]["outcome"] == "restarted"
        assert applied["restart_required"] is False
        assert all(item["seconds"] >= 0 for items in applied["check_results"].values() for item in items)
        # The real state: restarted once, the new WAL level runs, the slot exists and reserves WAL.
        assert postmaster_pid(cluster) not in (None, pid)
        assert cluster.scalar("SHOW wal_level") == "replica"
        assert cluster.sql("SELECT slot_type, restart_lsn IS NOT NULL FROM pg_replication_slots "
                           "WHERE slot_name = 'after_restart'") == [("physical", True)]
        pid = postmaster_pid(cluster)

        again = ok(run_module("pgrepl.streaming.node_apply", args))
        assert again["changed"] is False, again
        assert again["check_results"]["restart"][0]["outcome"] == "already_running"
        assert postmaster_pid(cluster) == pid
    finally:
        cluster.destroy()
