"""pgrepl.streaming.promote through Ansible, against a primary and standbys of this file's own.

Promotion is irreversible, so the shared `standby` fixture is never touched: this file builds its own primary
(`promote_origin`) and clones a fresh streaming standby for every scenario that promotes one. Everything lives in
one temporary directory and is stopped and removed at the end.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest
from psycopg import sql

from ansible_runner import run_module
from cluster import SUPERUSER_PASSWORD, Clusters, PgCluster, free_port

MODULE = "pgrepl.streaming.promote"
NOPRIV_ROLE = "promote_nopriv"
NOPRIV_PASSWORD = "promote-nopriv-pw-3Kd"
PROMOTE_CALL = "pg_promote(wait"


# ---------------------------------------------------------------------------------------------------- helpers


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise TimeoutError(f"timed out waiting for {what}")


def wait_replayed(primary: PgCluster, standby: PgCluster) -> str:
    lsn = primary.scalar("SELECT pg_current_wal_lsn()::text")
    wait_for(lambda: bool(standby.scalar("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,))),
             f"{standby.name} to replay up to {lsn}")
    return str(lsn)


def wal_timeline(cluster: PgCluster) -> int:
    """The timeline of a primary's current WAL file (what it writes on now)."""
    return int(str(cluster.scalar("SELECT pg_walfile_name(pg_current_wal_lsn())"))[:8], 16)


def control_timeline(cluster: PgCluster) -> int:
    return int(cluster.scalar("SELECT timeline_id FROM pg_control_checkpoint()"))


def lsn_order(cluster: PgCluster, *lsns: str) -> bool:
    """Whether the LSNs are in non-decreasing order (compared by the server, as pg_lsn)."""
    return all(cluster.scalar("SELECT %s::pg_lsn <= %s::pg_lsn", (low, high)) for low, high in zip(lsns, lsns[1:]))


def in_recovery(cluster: PgCluster) -> bool:
    return bool(cluster.scalar("SELECT pg_is_in_recovery()"))


def lsn_after(cluster: PgCluster, lsn: str, other: str) -> bool:
    """Whether lsn is strictly past other (compared by the server, as pg_lsn)."""
    return bool(cluster.scalar("SELECT %s::pg_lsn > %s::pg_lsn", (lsn, other)))


def checkpoint_lsn(cluster: PgCluster) -> str:
    """A CHECKPOINT on the server, and the location of its record (what pg_controldata calls the latest one)."""
    cluster.sql("CHECKPOINT")
    return str(cluster.scalar("SELECT checkpoint_lsn::text FROM pg_control_checkpoint()"))


@dataclass
class Bench:
    clusters: Clusters
    origin: PgCluster

    @property
    def base(self) -> Path:
        return self.clusters.base

    def standby(self, name: str, extra_conf: str = "") -> PgCluster:
        """A fresh streaming standby of the origin, through a slot named after it."""
        return self.clusters.standby(self.origin, name, slot=name, conf=extra_conf)


@pytest.fixture(scope="module")
def bench(throwaway: Clusters) -> Bench:
    origin = throwaway.server("promote_origin")
    origin.sql(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
        sql.Identifier(NOPRIV_ROLE), sql.Literal(NOPRIV_PASSWORD)))
    origin.sql("CREATE TABLE promote_probe (id int, note text)")
    return Bench(clusters=throwaway, origin=origin)


@pytest.fixture(scope="module")
def still_standby(bench: Bench) -> PgCluster:
    """A standby every bad input is aimed at; it must still be a standby afterwards."""
    return bench.standby("promote_untouched")


def log_since(cluster: PgCluster, offset: int) -> str:
    return cluster.log_text()[offset:]


# ---------------------------------------------------------------------------------------------------- scenarios


def test_check_mode_then_promotion_then_rerun(bench: Bench) -> None:
    standby = bench.standby("promote_life")
    bench.origin.sql("INSERT INTO promote_probe VALUES (1, 'before promotion')")
    replayed = wait_replayed(bench.origin, standby)
    timeline_before = control_timeline(standby)
    offset = len(standby.log_text())

    predicted = run_module(MODULE, standby.login(), check=True, diff=True)
    assert predicted.get("failed") is not True, predicted
    assert predicted["changed"] is True and predicted["outcome"] == "would_promote"
    assert predicted["diff"] == {"before": {"in_recovery": True}, "after": {"in_recovery": False}}
    assert predicted["in_recovery"] is True and predicted["timeline_after"] is None
    assert predicted["timeline_before"] == timeline_before
    # (The origin's background writer may log a running-xacts record at any time: at least what the test saw.)
    assert lsn_order(standby, replayed, predicted["replayed_lsn"])
    # Nothing was sent: still a standby, still streaming, and no pg_promote or CHECKPOINT in its log.
    assert in_recovery(standby)
    standby.wait_streaming()
    assert PROMOTE_CALL not in log_since(standby, offset)
    assert "CHECKPOINT" not in log_since(standby, offset)

    received = standby.scalar("SELECT pg_last_wal_receive_lsn()::text")
    promoted = run_module(MODULE, standby.login(), diff=True)
    assert promoted.get("failed") is not True, promoted.get("msg")
    assert promoted["changed"] is True and promoted["outcome"] == "promoted"
    assert promoted["diff"] == {"before": {"in_recovery": True}, "after": {"in_recovery": False}}
    assert promoted["in_recovery"] is False and not in_recovery(standby)
    assert promoted["timeline_before"] == timeline_before
    assert promoted["timeline_after"] == timeline_before + 1 == wal_timeline(standby)
    # The history file of the new timeline names the parent timeline and the switch point.
    history = standby.scalar("SELECT pg_read_file(%s)", (f"pg_wal/{promoted['timeline_after']:08X}.history",))
    parent, switch_lsn = history.strip().splitlines()[-1].split("\t")[:2]
    assert int(parent) == timeline_before and promoted["promoted_at_lsn"] == switch_lsn
    # The LSNs read before promotion: at least what the test saw, and replay never beyond the switch point (the
    # origin may have written a little more WAL, a running-xacts record, between the test's read and the module's).
    assert lsn_order(standby, received, promoted["received_lsn"])
    assert lsn_order(standby, replayed, promoted["replayed_lsn"], switch_lsn)
    # checkpoint: true (the default) made pg_control show the new timeline at once.
    assert promoted["checkpointed"] is True and control_timeline(standby) == promoted["timeline_after"]
    assert PROMOTE_CALL in log_since(standby, offset)
    standby.sql("INSERT INTO promote_probe VALUES (2, 'written on the new primary')")
    assert standby.scalar("SELECT count(*) FROM promote_probe WHERE id = 2") == 1

    offset = len(standby.log_text())
    for check in (True, False):
        again = run_module(MODULE, standby.login(), check=check, diff=True)
        assert again.get("failed") is not True, again
        assert again["changed"] is False and again["outcome"] == "already_primary"
        assert "already a primary" in again["msg"]
        assert again["timeline_after"] == promoted["timeline_after"] == again["timeline_before"]
        assert again["diff"] == {"before": {"in_recovery": False}, "after": {"in_recovery": False}}
    assert PROMOTE_CALL not in log_since(standby, offset)
    assert wal_timeline(standby) == promoted["timeline_after"]


def test_new_timeline_is_right_although_pg_control_still_shows_the_old_one(bench: Bench) -> None:
    # No restartpoint for an hour and many dirty buffers: the end-of-recovery checkpoint after promotion is spread
    # over minutes, so pg_control keeps naming the old timeline while the module returns.
    standby = bench.standby("promote_nockpt", "checkpoint_timeout = '1h'\n")
    bench.origin.sql("INSERT INTO promote_probe SELECT g, repeat('x', 200) FROM generate_series(1, 100000) g")
    wait_replayed(bench.origin, standby)
    timeline_before = control_timeline(standby)

    promoted = run_module(MODULE, {**standby.login(), "checkpoint": False})
    assert promoted.get("failed") is not True, promoted.get("msg")
    assert promoted["outcome"] == "promoted" and promoted["checkpointed"] is False
    assert control_timeline(standby) == timeline_before
    assert promoted["timeline_after"] == wal_timeline(standby) == timeline_before + 1


def test_promotion_not_finished_within_wait_seconds_fails_and_says_so(bench: Bench) -> None:
    # recovery_end_command runs before recovery ends: a five-second sleep there outlasts wait_seconds=1.
    standby = bench.standby("promote_slow", "recovery_end_command = 'sleep 5'\n")
    result = run_module(MODULE, {**standby.login(), "wait_seconds": 1})
    assert result.get("failed") is True, result
    assert "the promotion did not finish within wait_seconds=1: pg_is_in_recovery() was still true" in result["msg"]
    assert "may still complete on its own: check pg_is_in_recovery()" in result["msg"]
    # It was requested, and it does complete: exactly what the message warns about.
    wait_for(lambda: not in_recovery(standby), "the slow promotion to finish")
    again = run_module(MODULE, standby.login())
    assert again["changed"] is False and again["outcome"] == "already_primary"


def test_paused_replay_is_refused_unless_allowed(bench: Bench) -> None:
    standby = bench.standby("promote_paused")
    standby.sql("SELECT pg_wal_replay_pause()")
    bench.origin.sql("INSERT INTO promote_probe VALUES (3, 'arrives while paused')")
    wait_for(lambda: standby.scalar("SELECT pg_get_wal_replay_pause_state()") == "paused", "replay to pause")
    offset = len(standby.log_text())

    for check in (True, False):
        refused = run_module(MODULE, standby.login(), check=check)
        assert refused.get("failed") is True, refused
        assert refused["msg"].startswith("allow_paused: WAL replay on this standby is paused")
        assert "Nothing was done" in refused["msg"] and "pg_wal_replay_resume()" in refused["msg"]
        assert in_recovery(standby) and standby.scalar("SELECT pg_is_wal_replay_paused()") is True
    assert PROMOTE_CALL not in log_since(standby, offset)

    predicted = run_module(MODULE, {**standby.login(), "allow_paused": True}, check=True)
    assert predicted["changed"] is True and predicted["outcome"] == "would_promote"
    assert predicted["replay_paused"] is True and in_recovery(standby)

    promoted = run_module(MODULE, {**standby.login(), "allow_paused": True})
    assert promoted.get("failed") is not True, promoted.get("msg")
    assert promoted["outcome"] == "promoted" and promoted["replay_paused"] is True
    assert any("promotion ended the pause" in warning for warning in promoted.get("warnings", []))
    assert not in_recovery(standby)
    assert promoted["timeline_after"] == wal_timeline(standby) == promoted["timeline_before"] + 1


def test_a_primary_is_left_alone(bench: Bench) -> None:
    origin = bench.origin
    timeline = wal_timeline(origin)
    offset = len(origin.log_text())
    for check in (True, False):
        result = run_module(MODULE, origin.login(), check=check, diff=True)
        assert result.get("failed") is not True, result
        assert result["changed"] is False and result["outcome"] == "already_primary"
        assert result["timeline_before"] == result["timeline_after"] == timeline
        assert result["received_lsn"] is None and result["replayed_lsn"] is None
        assert result["promoted_at_lsn"] is None and result["checkpointed"] is False
    assert PROMOTE_CALL not in log_since(origin, offset) and "CHECKPOINT" not in log_since(origin, offset)
    assert wal_timeline(origin) == timeline and not in_recovery(origin)


# ---------------------------------------------------------------------------------------------------- replay_past_lsn


def test_replay_past_lsn_waits_for_replay_then_promotes(bench: Bench) -> None:
    # Replay of commits is held back 6 s (recovery_min_apply_delay), so the origin's checkpoint record, written after
    # a commit, reaches the standby at once but is replayed only later: the module has to wait for it.
    standby = bench.standby("promote_catchup", "recovery_min_apply_delay = '6s'\n")
    bench.origin.sql("INSERT INTO promote_probe VALUES (-4, 'written before the checkpoint asked for')")
    target = checkpoint_lsn(bench.origin)
    wait_for(lambda: lsn_after(standby, str(standby.scalar("SELECT pg_last_wal_receive_lsn()::text")), target),
             f"{standby.name} to receive past {target}")
    assert not lsn_after(standby, str(standby.scalar("SELECT pg_last_wal_replay_lsn()::text")), target)
    offset = len(standby.log_text())

    predicted = run_module(MODULE, {**standby.login(), "replay_past_lsn": target, "wait_seconds": 60},
                           check=True, diff=True)
    assert predicted.get("failed") is not True, predicted.get("msg")
    assert predicted["changed"] is True and predicted["outcome"] == "would_promote"
    assert predicted["replay_past_lsn"] == target
    assert predicted["caught_up_lsn"] is not None and lsn_after(standby, predicted["caught_up_lsn"], target)
    assert predicted["replayed_lsn"] == predicted["caught_up_lsn"]
    assert f"past replay_past_lsn {target}" in predicted["msg"]
    assert predicted["diff"] == {"before": {"in_recovery": True}, "after": {"in_recovery": False}}
    # Check mode waited with read-only queries and promoted nothing.
    assert in_recovery(standby)
    assert PROMOTE_CALL not in log_since(standby, offset) and "CHECKPOINT" not in log_since(standby, offset)
    assert standby.scalar("SELECT count(*) FROM promote_probe WHERE id = -4") == 1

    # Now the LSN is already replayed: promoted at once.
    promoted = run_module(MODULE, {**standby.login(), "replay_past_lsn": target.lower()})
    assert promoted.get("failed") is not True, promoted.get("msg")
    assert promoted["changed"] is True and promoted["outcome"] == "promoted"
    assert promoted["replay_past_lsn"] == target  # as PostgreSQL prints it, whatever the case given
    assert lsn_after(standby, promoted["caught_up_lsn"], target)
    assert lsn_order(standby, predicted["caught_up_lsn"], promoted["caught_up_lsn"], promoted["promoted_at_lsn"])
    assert not in_recovery(standby) and promoted["in_recovery"] is False
    assert promoted["timeline_after"] == wal_timeline(standby) == promoted["timeline_before"] + 1
    assert standby.scalar("SELECT count(*) FROM promote_probe WHERE id = -4") == 1

    for check in (True, False):
        again = run_module(MODULE, {**standby.login(), "replay_past_lsn": target}, check=check)
        assert again.get("failed") is not True, again
        assert again["changed"] is False and again["outcome"] == "already_primary"
        assert again["caught_up_lsn"] is None and again["replay_past_lsn"] == target
        assert f"(replay_past_lsn {target} not checked on a primary)" in again["msg"]


def test_replay_past_lsn_not_reached_in_time_is_refused_and_nothing_is_promoted(still_standby: PgCluster) -> None:
    offset = len(still_standby.log_text())
    for check in (True, False):
        refused = run_module(MODULE, {**still_standby.login(), "replay_past_lsn": "FFFFFFF/0", "wait_seconds": 2},
                             check=check)
        assert refused.get("failed") is True, refused
        message = refused["msg"]
        assert message.startswith("replay_past_lsn: the standby did not replay past FFFFFFF/0 within wait_seconds=2: "
                                  "it has received WAL up to "), message
        assert "It was not promoted (nothing was done)" in message and "has not even reached this standby" in message
        found = re.search(r"received WAL up to ([0-9A-F]+/[0-9A-F]+) and replayed up to ([0-9A-F]+/[0-9A-F]+)\.",
                          message)
        assert found is not None, message
        received, replayed = found.groups()
        now_received = str(still_standby.scalar("SELECT pg_last_wal_receive_lsn()::text"))
        assert lsn_order(still_standby, replayed, received, now_received)
        assert in_recovery(still_standby) is True
    assert PROMOTE_CALL not in log_since(still_standby, offset)
    # It did poll: the facts query of each run names the function once, the short polls many more times.
    assert log_since(still_standby, offset).count("pg_last_wal_replay_lsn()") > 10
    still_standby.wait_streaming()


def test_replay_past_lsn_is_ignored_on_a_primary(bench: Bench) -> None:
    origin = bench.origin
    timeline = wal_timeline(origin)
    for check in (True, False):
        result = run_module(MODULE, {**origin.login(), "replay_past_lsn": "FFFFFFF/0", "wait_seconds": 1},
                            check=check)
        assert result.get("failed") is not True, result
        assert result["changed"] is False and result["outcome"] == "already_primary"
        assert result["replay_past_lsn"] == "FFFFFFF/0" and result["caught_up_lsn"] is None
    assert wal_timeline(origin) == timeline and not in_recovery(origin)


# ---------------------------------------------------------------------------------------------------- bad inputs

CLOSED_PORT = free_port()
BadCase = tuple[str, Callable[[PgCluster], dict[str, Any]], list[str]]
BAD_INPUTS: list[BadCase] = [
    ("wait_zero", lambda s: {**s.login(), "wait_seconds": 0},
     ["wait_seconds: 0 is not a number of seconds greater than 0 (1-86400)"]),
    ("wait_negative", lambda s: {**s.login(), "wait_seconds": -30},
     ["wait_seconds: -30 is not a number of seconds greater than 0"]),
    ("wait_too_long", lambda s: {**s.login(), "wait_seconds": 86401}, ["wait_seconds: 86401"]),
    ("wait_not_int", lambda s: {**s.login(), "wait_seconds": "soon"}, ["wait_seconds", "soon"]),
    ("allow_paused_not_bool", lambda s: {**s.login(), "allow_paused": "perhaps"}, ["allow_paused", "perhaps"]),
    ("checkpoint_not_bool", lambda s: {**s.login(), "checkpoint": "later"}, ["checkpoint", "later"]),
    ("lsn_no_slash", lambda s: {**s.login(), "replay_past_lsn": "3000060"},
     ["replay_past_lsn: '3000060' is not a WAL location", "nothing was done"]),
    ("lsn_empty", lambda s: {**s.login(), "replay_past_lsn": ""}, ["replay_past_lsn: '' is not a WAL location"]),
    ("lsn_too_many_digits", lambda s: {**s.login(), "replay_past_lsn": "123456789/0"},
     ["replay_past_lsn: '123456789/0' is not a WAL location"]),
    ("lsn_not_hex", lambda s: {**s.login(), "replay_past_lsn": "0/XYZ"},
     ["replay_past_lsn: '0/XYZ' is not a WAL location"]),
    ("lsn_trailing_space", lambda s: {**s.login(), "replay_past_lsn": "0/3000060 "},
     ["replay_past_lsn: '0/3000060 ' is not a WAL location"]),
    ("lsn_injection", lambda s: {**s.login(), "replay_past_lsn": "0/1'; SELECT pg_promote(); --"},
     ["replay_past_lsn: \"0/1'; SELECT pg_promote(); --\" is not a WAL location"]),
    ("lsn_number", lambda s: {**s.login(), "replay_past_lsn": 3000060},
     ["replay_past_lsn: '3000060' is not a WAL location"]),
    ("unknown_option", lambda s: {**s.login(), "force": True}, ["Unsupported parameters", "force"]),
    ("wrong_password", lambda s: s.login(login_password="not-the-password"),
     ["authentication failed for postgres@127.0.0.1", "check login_user and login_password"]),
    ("closed_port", lambda s: s.login(login_port=CLOSED_PORT), ["cannot reach PostgreSQL", f"{CLOSED_PORT}"]),
    ("login_db_injection", lambda s: s.login(login_db="postgres' OR '1'='1"),
     ["login_db: the database does not exist", "postgres' OR '1'='1"]),
    ("login_user_injection", lambda s: s.login(login_user='postgres"; SELECT pg_promote(); --'),
     ["authentication failed", 'postgres"; SELECT pg_promote(); --']),
    ("not_allowed_to_promote", lambda s: s.login(login_user=NOPRIV_ROLE, login_password=NOPRIV_PASSWORD),
     [f"login_user: the role '{NOPRIV_ROLE}' may not execute pg_catalog.pg_promote(boolean, integer)",
      "nothing was done"]),
]


@pytest.mark.parametrize("case", BAD_INPUTS, ids=[case[0] for case in BAD_INPUTS])
def test_bad_input_fails_cleanly_and_promotes_nothing(still_standby: PgCluster, case: BadCase) -> None:
    offset = len(still_standby.log_text())
    result = run_module(MODULE, case[1](still_standby))
    assert result.get("failed") is True, result
    for text in case[2]:
        assert text in result["msg"], result["msg"]
    assert "Traceback" not in result["msg"]
    assert SUPERUSER_PASSWORD not in str(result) and NOPRIV_PASSWORD not in str(result)
    assert "not-the-password" not in str(result)
    assert in_recovery(still_standby)
    still_standby.wait_streaming()
    assert PROMOTE_CALL not in log_since(still_standby, offset)
