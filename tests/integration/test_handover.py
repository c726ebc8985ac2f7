"""pgrepl.streaming.handover through Ansible, as root, on a primary and a streaming standby of this file's own (the
pg_ctl path; the systemd path runs in the day-2 chains): the old primary fenced and stopped, the standby promoted
over TCP as the replication user once it replayed the shutdown checkpoint; the rollback when it does not; a
promotion requested but not finished; the refusals, each changing nothing. Every check reads the real state: the
servers' recovery state and rows, standby.signal, postmaster.pid, pg_control, the timeline history file.

Each scenario that promotes gets its own pair; the refusals and the rollback share one (the rollback gives it back).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest
from psycopg import sql

from ansible_collections.pgrepl.streaming.plugins.module_utils._lsn import parse_lsn

from ansible_runner import run_module, run_tasks
from cluster import Clusters, PgCluster, find_bin_dir

MODULE = "pgrepl.streaming.handover"
REPLICATOR = "pgrepl_handover_repl"
PASSWORD = "handover-test-password"


# ---------------------------------------------------------------------------------------------------- the pairs


@dataclass
class Pair:
    primary: PgCluster
    standby: PgCluster

    def args(self, **overrides: Any) -> dict[str, Any]:
        """The module's options as the operations role gives them: this primary's data directory, the standby over
        TCP as the replication user (its password), database postgres."""
        args: dict[str, Any] = {"data_dir": str(self.primary.data_dir), "bin_dir": str(self.primary.bin_dir),
                                "log_file": str(self.primary.log_file), "login_host": "127.0.0.1",
                                "login_port": self.standby.port, "login_user": REPLICATOR,
                                "login_password": PASSWORD, "ssl_mode": "disable", "wait_seconds": 20}
        args.update(overrides)
        return args


def make_pair(clusters: Clusters, name: str) -> Pair:
    """A primary with the replication user site gives (LOGIN REPLICATION, EXECUTE on pg_promote; initdb's
    `host all all 127.0.0.1/32 scram-sha-256` admits it to database postgres) and a streaming standby of it."""
    primary = clusters.server(f"{name}_primary")
    primary.sql(sql.SQL("CREATE ROLE {} LOGIN REPLICATION PASSWORD {}").format(
        sql.Identifier(REPLICATOR), sql.Literal(PASSWORD)))
    primary.sql(sql.SQL("GRANT EXECUTE ON FUNCTION pg_catalog.pg_promote(boolean, integer) TO {}").format(
        sql.Identifier(REPLICATOR)))
    primary.sql("CREATE TABLE handover_probe (id bigint PRIMARY KEY)")
    return Pair(primary, clusters.standby(primary, f"{name}_standby", slot=f"{name}_standby"))


@pytest.fixture(scope="module")
def shared(throwaway: Clusters) -> Pair:
    """The pair the refusals and the rollback use (neither promotes anything)."""
    return make_pair(throwaway, "shared")


# ---------------------------------------------------------------------------------------------------- helpers


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise TimeoutError(f"timed out waiting for {what}")


def controldata(data_dir: Path) -> dict[str, str]:
    out = subprocess.run([str(find_bin_dir() / "pg_controldata"), "-D", str(data_dir)], capture_output=True,
                         text=True, env=dict(os.environ, LC_ALL="C"), check=True).stdout
    return {key.strip(): value.strip() for key, _sep, value in (line.partition(":") for line in out.splitlines())}


def postmaster_pid(cluster: PgCluster) -> int | None:
    path = cluster.data_dir / "postmaster.pid"
    return int(path.read_text(encoding="utf-8").splitlines()[0]) if path.exists() else None


def running(cluster: PgCluster) -> bool:
    pid = postmaster_pid(cluster)
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def in_recovery(cluster: PgCluster) -> bool:
    return cluster.scalar("SELECT pg_is_in_recovery()") is True


def fenced(cluster: PgCluster) -> bool:
    return (cluster.data_dir / "standby.signal").exists()


def journal(cluster: PgCluster) -> Path:
    return Path(str(cluster.data_dir) + ".pgrepl-handover")


def write_rows(cluster: PgCluster, first: int, count: int) -> None:
    cluster.sql("INSERT INTO handover_probe SELECT generate_series(%s::bigint, %s::bigint)", (first, first + count - 1))


def startup_pid(cluster: PgCluster) -> int:
    pid = cluster.scalar("SELECT pid FROM pg_stat_activity WHERE backend_type = 'startup'")
    assert pid, "no startup process on the standby"
    return int(pid)


def assert_as_before(pair: Pair, pid: int | None) -> None:
    """Nothing changed: the same postmaster serves the primary, unfenced, no journal; the standby streams."""
    assert running(pair.primary) and postmaster_pid(pair.primary) == pid, "the primary was restarted or stopped"
    assert not in_recovery(pair.primary)
    assert not fenced(pair.primary), "standby.signal was left in the primary"
    assert not journal(pair.primary).exists()
    assert in_recovery(pair.standby), "the standby was promoted"


def ok(result: dict[str, Any]) -> dict[str, Any]:
    assert result.get("failed") is not True, result.get("msg", result)
    return result


def history_switch_lsn(cluster: PgCluster, timeline: int) -> int:
    text = (cluster.data_dir / "pg_wal" / f"{timeline:08X}.history").read_text(encoding="utf-8")
    last = [line.split() for line in text.splitlines() if line.strip() and not line.startswith("#")][-1]
    return parse_lsn(last[1])


# ---------------------------------------------------------------------------------------------------- refusals


def test_refusals_change_nothing(shared: Pair) -> None:
    pair = shared
    pid = postmaster_pid(pair.primary)
    control = controldata(pair.primary.data_dir)
    cases: list[tuple[dict[str, Any], str]] = [
        (pair.args(login_host=""), "login_host: give the address of the standby to promote"),
        (pair.args(log_file=None), "log_file: required without service"),
        (pair.args(mode="takeover"), "value of mode must be one of: switchover, failover, got: takeover"),
        (pair.args(wait_seconds=0), "wait_seconds: 0 is not a number of seconds"),
        (pair.args(stop_timeout=-5), "timeout: -5 is not a number of seconds"),
        (pair.args(service="--now"), "service: '--now' is not a systemd unit name"),
        (pair.args(data_dir="relative/pgdata"), "data_dir: 'relative/pgdata' must be an absolute path"),
        # The primary itself as the target: two primaries, whatever the order.
        (pair.args(login_port=pair.primary.port), "the target is not in recovery while this server runs as a primary"),
        # Refused connections name what site gives (the password, the pg_hba entry are SQLSTATE-classified).
        (pair.args(login_password="not-the-handover-password"), "run site first"),
        (pair.args(login_db="no_such_db"), "login_db: the database does not exist"),
        (pair.args(login_port=1), "cannot reach PostgreSQL"),
        # The standby's data directory is a standby, not the primary to hand over from.
        (pair.args(data_dir=str(pair.standby.data_dir), log_file=str(pair.standby.log_file)),
         "this server is a standby (running standby)"),
    ]
    run = run_tasks([{"name": f"case {index}", MODULE: args} for index, (args, _match) in enumerate(cases)])
    assert len(run.results) == len(cases), run.stdout
    for (args, match), result in zip(cases, run.results):
        assert result.get("failed") is True, (args, result)
        assert match in result["msg"], (match, result["msg"])
        assert result.get("changed") is not True, (args, result)
        assert PASSWORD not in str(result) and "not-the-handover-password" not in str(result), result
    assert_as_before(pair, pid)
    assert controldata(pair.primary.data_dir)["Latest checkpoint location"] == control["Latest checkpoint location"]


def test_target_without_the_grant_or_paused_is_refused(shared: Pair) -> None:
    pair = shared
    pid = postmaster_pid(pair.primary)
    grant = sql.SQL("{} EXECUTE ON FUNCTION pg_catalog.pg_promote(boolean, integer) {} {}")
    pair.primary.sql(grant.format(sql.SQL("REVOKE"), sql.SQL("FROM"), sql.Identifier(REPLICATOR)))
    try:
        wait_for(lambda: pair.standby.scalar("SELECT has_function_privilege(%s, "
                                             "'pg_catalog.pg_promote(boolean, integer)', 'EXECUTE')",
                                             (REPLICATOR,)) is False, "the revoke on the standby")
        result = run_module(MODULE, pair.args())
        assert result.get("failed") is True and "may not execute pg_catalog.pg_promote" in result["msg"], result
        assert "run site first" in result["msg"]
    finally:
        pair.primary.sql(grant.format(sql.SQL("GRANT"), sql.SQL("TO"), sql.Identifier(REPLICATOR)))
    wait_for(lambda: pair.standby.scalar("SELECT has_function_privilege(%s, 'pg_catalog.pg_promote(boolean, "
                                         "integer)', 'EXECUTE')", (REPLICATOR,)) is True, "the grant on the standby")
    pair.standby.sql("SELECT pg_wal_replay_pause()")
    try:
        wait_for(lambda: pair.standby.scalar("SELECT pg_is_wal_replay_paused()") is True, "the pause")
        result = run_module(MODULE, pair.args())
        assert result.get("failed") is True and "WAL replay on this standby is paused" in result["msg"], result
    finally:
        pair.standby.sql("SELECT pg_wal_replay_resume()")
    assert_as_before(pair, pid)


def test_check_mode_predicts_and_changes_nothing(shared: Pair) -> None:
    pair = shared
    pid = postmaster_pid(pair.primary)
    for mode in ("switchover", "failover"):
        result = ok(run_module(MODULE, pair.args(mode=mode), check=True))
        assert result["changed"] is True and result["outcome"] == "would_hand_over", result
        assert result["promotion_requested"] is False and result["fenced"] is False
        assert result["was_running"] is True and result["cluster_state"] == "in production"
    assert_as_before(pair, pid)


# ---------------------------------------------------------------------------------------------------- rollback


def test_target_that_does_not_catch_up_is_abandoned_and_rolled_back(shared: Pair) -> None:
    """The standby's startup process is stopped (SIGSTOP): its replay cannot pass the shutdown checkpoint. At the
    deadline the handover is abandoned (no pg_promote was sent; the standby answers, in recovery) and undone: the
    old primary runs read-write again, without standby.signal, and takes writes; the standby catches up."""
    pair = shared
    write_rows(pair.primary, 1, 100)
    startup = startup_pid(pair.standby)
    os.kill(startup, signal.SIGSTOP)
    try:
        result = run_module(MODULE, pair.args(wait_seconds=3))
    finally:
        os.kill(startup, signal.SIGCONT)
    assert result.get("failed") is True, result
    assert result["rolled_back"] is True and result["promotion_requested"] is False, result
    assert result["fenced"] is False and result["stopped"] is True
    assert "did not replay past" in result["msg"] and "rolled back" in result["msg"], result["msg"]
    assert "the target still in recovery" in result["msg"]
    steps = [step["step"] for step in result["steps"]]
    assert steps[:2] == ["preflight", "standby.signal written"] and "stopped" in steps and steps[-1] == "rolled back"
    # The real state: the old primary is a primary again (a new postmaster), not fenced, no journal; it takes
    # writes, and the standby, still in recovery, streams them again.
    assert running(pair.primary) and not in_recovery(pair.primary)
    assert not fenced(pair.primary) and not journal(pair.primary).exists()
    assert in_recovery(pair.standby)
    write_rows(pair.primary, 101, 10)
    pair.standby.wait_streaming()
    wait_for(lambda: pair.standby.scalar("SELECT count(*) FROM handover_probe") == 110, "the standby to catch up")


# ---------------------------------------------------------------------------------------------------- handover


def test_clean_handover_then_rerun(throwaway: Clusters) -> None:
    pair = make_pair(throwaway, "clean")
    write_rows(pair.primary, 1, 1000)
    result = ok(run_module(MODULE, pair.args()))
    assert result["changed"] is True and result["outcome"] == "handed_over", result
    assert result["promotion_requested"] is True and result["promoted"] is True and result["rolled_back"] is False
    checkpoint = result["checkpoint_lsn"]
    control = controldata(pair.primary.data_dir)
    # The old primary: stopped cleanly at that shutdown checkpoint, fenced, no journal left.
    assert not running(pair.primary)
    assert control["Database cluster state"] == "shut down"
    assert control["Latest checkpoint location"] == checkpoint
    assert fenced(pair.primary) and result["fenced"] is True and not journal(pair.primary).exists()
    # The target: a primary, promoted past that checkpoint (its replay before the promotion, and the switch point
    # of its new timeline's history file), with every row.
    assert not in_recovery(pair.standby)
    assert parse_lsn(result["caught_up_lsn"]) > parse_lsn(checkpoint)
    timeline = int(result["timeline_after"])
    assert timeline == int(control["Latest checkpoint's TimeLineID"]) + 1
    assert history_switch_lsn(pair.standby, timeline) > parse_lsn(checkpoint)
    assert parse_lsn(result["promoted_at_lsn"]) == history_switch_lsn(pair.standby, timeline)
    assert pair.standby.scalar("SELECT count(*) FROM handover_probe") == 1000
    pair.standby.sql("INSERT INTO handover_probe VALUES (1001)")
    # The write gap as the module saw it, and its steps in order.
    steps = [step["step"] for step in result["steps"]]
    assert steps == ["preflight", "standby.signal written", "stopped", "target caught up", "promotion requested",
                     "target promoted"], steps
    assert 0 < result["writes_stopped_seconds"] < 20
    assert PASSWORD not in str(result)

    # handover's login role runs no CHECKPOINT: until the one the promotion requested (spread) completes, the new
    # primary's pg_control shows the old timeline. The promote module on it (as the roles run it next) runs one
    # when it still does (which of the two comes first is a race), once.
    checkpointed = ok(run_module("pgrepl.streaming.promote", pair.standby.login()))
    assert checkpointed["outcome"] == "already_primary"
    assert checkpointed["changed"] is checkpointed["checkpointed"], checkpointed
    assert int(controldata(pair.standby.data_dir)["Latest checkpoint's TimeLineID"]) == timeline
    assert ok(run_module("pgrepl.streaming.promote", pair.standby.login()))["changed"] is False

    # A re-run: the target is a primary and this server is fenced: nothing to do.
    again = ok(run_module(MODULE, pair.args()))
    assert again["changed"] is False and again["outcome"] == "already_promoted", again
    assert not running(pair.primary) and fenced(pair.primary)
    # The old primary, if started by hand now, comes up read-only.
    pair.primary.start()
    try:
        assert in_recovery(pair.primary)
        with pytest.raises(Exception, match="read-only"):
            pair.primary.sql("INSERT INTO handover_probe VALUES (5000)")
    finally:
        pair.primary.stop()


def test_rerun_after_an_interruption_between_stop_and_promotion(throwaway: Clusters) -> None:
    """What an interrupted run leaves: the old primary stopped cleanly and fenced, the target still in recovery.
    The re-run goes on from the stop (nothing to stop) and promotes the target past that shutdown checkpoint."""
    pair = make_pair(throwaway, "resume")
    write_rows(pair.primary, 1, 500)
    pair.primary.stop("fast")
    (pair.primary.data_dir / "standby.signal").touch()
    checkpoint = controldata(pair.primary.data_dir)["Latest checkpoint location"]
    result = ok(run_module(MODULE, pair.args()))
    assert result["outcome"] == "handed_over" and result["was_running"] is False, result
    assert result["checkpoint_lsn"] == checkpoint and result["writes_stopped_seconds"] is None
    assert "stopped" not in [step["step"] for step in result["steps"]]
    assert not in_recovery(pair.standby) and pair.standby.scalar("SELECT count(*) FROM handover_probe") == 500
    assert not running(pair.primary) and fenced(pair.primary)


def test_promotion_requested_but_not_finished_keeps_the_old_primary_fenced(throwaway: Clusters) -> None:
    """A failover whose target cannot finish its promotion in time (its startup process stopped): pg_promote() was
    sent, so nothing is rolled back: the old primary stays stopped and fenced; the target becomes the one primary
    once its promotion completes."""
    pair = make_pair(throwaway, "requested")
    write_rows(pair.primary, 1, 10)
    wait_for(lambda: pair.standby.scalar("SELECT count(*) FROM handover_probe") == 10, "the standby to catch up")
    startup = startup_pid(pair.standby)
    os.kill(startup, signal.SIGSTOP)
    try:
        result = run_module(MODULE, pair.args(mode="failover", wait_seconds=2))
        assert result.get("failed") is True, result
        assert result["promotion_requested"] is True and result["promoted"] is False, result
        assert result["rolled_back"] is False and result["fenced"] is True
        assert "was requested but did not finish" in result["msg"] and "stays fenced" in result["msg"]
        assert not running(pair.primary) and fenced(pair.primary) and not journal(pair.primary).exists()
        assert in_recovery(pair.standby)
    finally:
        os.kill(startup, signal.SIGCONT)
    wait_for(lambda: not in_recovery(pair.standby), "the requested promotion to complete")
    assert pair.standby.scalar("SELECT count(*) FROM handover_probe") == 10
    # Exactly one writable: the target; the old primary stays down and fenced.
    assert not running(pair.primary) and fenced(pair.primary)


# ---------------------------------------------------------------------------------------------------- the grant


def test_replication_user_promote_grants_pg_promote_once(shared: Pair) -> None:
    """What site gives the replication user for handover: EXECUTE on pg_promote in database postgres (a role that
    does not exist yet is created with it), predicted in check mode, then idempotent; the standby gets it."""
    pair = shared
    role = "pgrepl_handover_new"
    may = "SELECT has_function_privilege(%s, 'pg_catalog.pg_promote(boolean, integer)', 'EXECUTE')"
    for name in (role, REPLICATOR):
        args = pair.primary.login(name=name, password=PASSWORD, promote=True)
        predicted = ok(run_module("pgrepl.streaming.replication_user", args, check=True, diff=True))
        if name == REPLICATOR:  # granted by make_pair already
            assert predicted["changed"] is False and predicted["role"]["may_promote"] is True, predicted
            continue
        assert predicted["changed"] is True and predicted["diff"]["after"]["may_promote"] is True, predicted
        assert pair.primary.scalar("SELECT count(*) FROM pg_roles WHERE rolname = %s", (role,)) == 0
        created = ok(run_module("pgrepl.streaming.replication_user", args))
        assert created["changed"] is True and created["role"]["may_promote"] is True
        assert pair.primary.scalar(may, (role,)) is True
        wait_for(lambda: pair.standby.scalar("SELECT count(*) FROM pg_roles WHERE rolname = %s", (role,)) == 1,
                 "the role on the standby")
        assert pair.standby.scalar(may, (role,)) is True
        assert ok(run_module("pgrepl.streaming.replication_user", args))["changed"] is False
    # Granted to an existing role that lacks it.
    pair.primary.sql(sql.SQL("REVOKE EXECUTE ON FUNCTION pg_catalog.pg_promote(boolean, integer) FROM {}").format(
        sql.Identifier(role)))
    assert pair.primary.scalar(may, (role,)) is False
    regranted = ok(run_module("pgrepl.streaming.replication_user", pair.primary.login(name=role, promote=True)))
    assert regranted["changed"] is True and pair.primary.scalar(may, (role,)) is True
    # promote: false leaves the privilege alone.
    kept = ok(run_module("pgrepl.streaming.replication_user", pair.primary.login(name=role)))
    assert kept["changed"] is False and pair.primary.scalar(may, (role,)) is True
