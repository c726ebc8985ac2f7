"""The test bench itself: a real primary and a real streaming standby, and Ansible that can reach them."""

from __future__ import annotations

import time

from ansible_runner import run_module
from cluster import PgCluster


def test_standby_streams_rows_from_primary(primary: PgCluster, standby: PgCluster) -> None:
    primary.sql("CREATE TABLE IF NOT EXISTS bench_probe (id int)")
    primary.sql("INSERT INTO bench_probe VALUES (1)")
    lsn = primary.scalar("SELECT pg_current_wal_lsn()")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not standby.scalar("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,)):
        time.sleep(0.1)
    assert standby.scalar("SELECT pg_is_in_recovery()") is True
    assert standby.scalar("SELECT count(*) FROM bench_probe") >= 1


def test_ansible_runs_on_localhost() -> None:
    result = run_module("ansible.builtin.ping", {})
    assert result.get("ping") == "pong", result
