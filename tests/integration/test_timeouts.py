# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every module session is bounded: lock_timeout (30 s by default) and statement_timeout set on the real server,
TCP keepalives on TCP connections. A statement that waits behind another session's lock fails within lock_timeout,
names the option, and leaves the server as it was, instead of hanging the play."""

from __future__ import annotations

import time

import psycopg
import pytest
from psycopg import sql

from ansible_collections.pgrepl.streaming.plugins.module_utils._connection import connect

from ansible_runner import run_module
from cluster import PgCluster

ROLE = "timeouts_blocked"


def in_process_params(cluster: PgCluster, **overrides: object) -> dict:
    """The options a module gets, as run_module would pass them (the test's own process connects)."""
    return {**cluster.login(), **overrides}


def test_a_module_session_has_the_timeouts_set_on_the_server(primary: PgCluster) -> None:
    with connect(in_process_params(primary)) as conn:
        assert conn.execute("SHOW lock_timeout").fetchone() == ("30s",)
        assert conn.execute("SHOW statement_timeout").fetchone() == ("0",)
    with connect(in_process_params(primary, lock_timeout=0, statement_timeout=1)) as conn:
        assert conn.execute("SHOW lock_timeout").fetchone() == ("0",)
        assert conn.execute("SHOW statement_timeout").fetchone() == ("1s",)
        with pytest.raises(psycopg.errors.QueryCanceled):
            conn.execute("SELECT pg_sleep(3)")


def test_a_tcp_session_has_keepalives(primary: PgCluster) -> None:
    params = in_process_params(primary, login_host="127.0.0.1", login_unix_socket="")
    with connect(params) as conn:
        options = {option.keyword.decode(): (option.val or b"").decode() for option in conn.pgconn.info}
        assert conn.info.host == "127.0.0.1"
    assert (options["keepalives"], options["keepalives_idle"], options["keepalives_interval"],
            options["keepalives_count"], options["tcp_user_timeout"]) == ("1", "10", "5", "3", "30000")


def test_a_role_change_waiting_behind_another_sessions_lock_fails_within_lock_timeout(primary: PgCluster) -> None:
    primary.sql(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(ROLE)))
    primary.sql(sql.SQL("CREATE ROLE {} LOGIN REPLICATION CONNECTION LIMIT 3").format(sql.Identifier(ROLE)))
    try:
        with primary.connect(autocommit=False) as holder:
            # An open transaction that altered the same role: the module's ALTER ROLE waits for it to end.
            holder.execute(sql.SQL("ALTER ROLE {} CONNECTION LIMIT 4").format(sql.Identifier(ROLE)))
            started = time.monotonic()
            result = run_module("pgrepl.streaming.replication_user",
                                {**primary.login(), "name": ROLE, "conn_limit": 9, "lock_timeout": 2})
            elapsed = time.monotonic() - started
            holder.rollback()
        assert result.get("failed"), result
        assert "lock_timeout" in result["msg"], result["msg"]
        assert elapsed < 25, f"the module waited {elapsed:.1f} s for a lock_timeout of 2 s"
        # Nothing changed: the holder rolled back and the module's statement was cancelled.
        assert primary.scalar("SELECT rolconnlimit FROM pg_authid WHERE rolname = %s", (ROLE,)) == 3
    finally:
        primary.sql(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(ROLE)))


def test_a_bad_timeout_is_refused_naming_the_option_and_value(primary: PgCluster) -> None:
    result = run_module("pgrepl.streaming.replication_info", {**primary.login(), "lock_timeout": -5})
    assert result.get("failed") and result["msg"].startswith("lock_timeout: -5 "), result
