# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""promote's pure logic: options, WAL file names, timeline history files, refusals."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from ansible_collections.pgrepl.streaming.plugins.module_utils._errors import PgreplError
from ansible_collections.pgrepl.streaming.plugins.module_utils._promote import (
    CatchUp,
    HistoryEntry,
    PromoteRequest,
    RecoveryFacts,
    history_file_name,
    is_recovery_conflict,
    max_timeline,
    not_caught_up_message,
    not_finished_message,
    parse_history,
    paused_refusal,
    poll_until,
    promote_request,
    replay_is_past,
    signal_promotion,
    validate_replay_past_lsn,
    wait_for_replay,
    wait_until_promoted,
)


def facts(**overrides: Any) -> RecoveryFacts:
    values: dict[str, Any] = {
        "in_recovery": True, "paused": False, "pause_state": "not paused", "received_lsn": "0/3018080",
        "replayed_lsn": "0/3018080", "received_timeline": None, "checkpoint_timeline": 1,
        "min_recovery_end_timeline": 1, "wal_file": None, "may_promote": True,
    }
    values.update(overrides)
    return RecoveryFacts(**values)


def test_defaults() -> None:
    assert promote_request({}) == PromoteRequest(wait_seconds=60, allow_paused=False, checkpoint=True)
    assert promote_request({"wait_seconds": None, "allow_paused": None, "checkpoint": None}) == PromoteRequest()


def test_options_taken_as_given() -> None:
    request = promote_request({"wait_seconds": 1, "allow_paused": True, "checkpoint": False})
    assert request == PromoteRequest(wait_seconds=1, allow_paused=True, checkpoint=False)
    assert promote_request({"wait_seconds": 86400}).wait_seconds == 86400


@pytest.mark.parametrize("value, expected", [
    (0, "wait_seconds: 0 is not a number of seconds greater than 0 (1-86400)"),
    (-5, "wait_seconds: -5 is not a number of seconds greater than 0"),
    (86401, "wait_seconds: 86401 is not a number of seconds"),
    (True, "wait_seconds: True is not an integer"),
    ("60", "wait_seconds: '60' is not an integer"),
    (1.5, "wait_seconds: 1.5 is not an integer"),
])
def test_bad_wait_seconds(value: Any, expected: str) -> None:
    with pytest.raises(PgreplError) as err:
        promote_request({"wait_seconds": value})
    assert expected in str(err.value)


@pytest.mark.parametrize("option", ["allow_paused", "checkpoint"])
def test_bad_booleans(option: str) -> None:
    with pytest.raises(PgreplError, match=f"{option}: 'yes' is not a boolean"):
        promote_request({option: "yes"})


def test_history_file_name() -> None:
    assert history_file_name(2) == "00000002.history"
    assert history_file_name(255) == "000000FF.history"
    with pytest.raises(PgreplError):
        history_file_name(0)


def test_parse_history_of_a_first_promotion() -> None:
    # What PostgreSQL 15 wrote in pg_wal/00000002.history on the test bench.
    assert parse_history("1\t0/3018080\tno recovery target specified\n") == [
        HistoryEntry(1, "0/3018080", "no recovery target specified")]


def test_parse_history_of_later_timelines_keeps_order() -> None:
    text = ("1\t0/3018080\tno recovery target specified\n\n"
            "# a comment line\n"
            "2\t0/5A000D8\tat restore point \"before_upgrade\"\n")
    entries = parse_history(text)
    assert [entry.parent_timeline for entry in entries] == [1, 2]
    assert entries[-1] == HistoryEntry(2, "0/5A000D8", 'at restore point "before_upgrade"')


def test_parse_history_skips_what_it_cannot_read() -> None:
    assert parse_history("garbage\nx\t0/1\treason\n1\tnot-an-lsn\tr\n3\t0/a0\n") == [HistoryEntry(3, "0/A0", "")]


def test_max_timeline() -> None:
    assert max_timeline(1, None, 2) == 2
    assert max_timeline(None, 0) is None
    assert max_timeline(True, 1) == 1


def test_standby_timeline_is_the_largest_known() -> None:
    assert facts(received_timeline=3, checkpoint_timeline=2, min_recovery_end_timeline=1).timeline == 3
    assert facts(received_timeline=None, checkpoint_timeline=1, min_recovery_end_timeline=2).timeline == 2


def test_primary_timeline_comes_from_the_wal_file_name() -> None:
    # Right after promotion pg_control still says 1: the WAL file name knows better.
    promoted = facts(in_recovery=False, checkpoint_timeline=1, min_recovery_end_timeline=2,
                     wal_file="000000030000000000000004")
    assert promoted.timeline == 3


def test_paused_refusal_names_the_option_and_the_way_out() -> None:
    text = paused_refusal("paused")
    assert text.startswith("allow_paused: WAL replay on this standby is paused")
    assert "'paused'" in text and "pg_wal_replay_resume()" in text and "Nothing was done" in text
    assert "pg_get_wal_replay_pause_state" not in paused_refusal(None)


def test_not_finished_message_says_what_to_check() -> None:
    text = not_finished_message(7)
    assert text.startswith("the promotion did not finish within wait_seconds=7: pg_is_in_recovery() was still true.")
    assert "may still complete on its own" in text and "raise wait_seconds" in text
    assert "(last error: boom)" in not_finished_message(7, "boom")


def test_recovery_conflicts_are_recognised() -> None:
    assert is_recovery_conflict(psycopg.errors.SerializationFailure("canceling statement due to conflict with "
                                                                    "recovery"))
    assert is_recovery_conflict(psycopg.errors.DeadlockDetected("canceling statement due to conflict with recovery"))
    # By SQLSTATE only: the words follow the server's lc_messages (a session it ended is caught as broken).
    assert not is_recovery_conflict(psycopg.OperationalError("terminating connection due to conflict with recovery"))
    assert not is_recovery_conflict(psycopg.errors.InsufficientPrivilege("permission denied"))


# A connection whose queries answer from a script: a value is the first column of the row, an exception is raised.


class FakeCursor:
    def __init__(self, conn: FakeConn) -> None:
        self.conn = conn
        self.answer: Any = None

    def __enter__(self) -> FakeCursor:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def execute(self, query: Any, args: Any = None) -> None:
        self.conn.queries.append(str(query))
        answer = self.conn.script.pop(0)
        if isinstance(answer, BaseException):
            if isinstance(answer, psycopg.OperationalError) and "closed" in str(answer):
                self.conn.broken = True
            raise answer
        self.answer = answer

    def fetchone(self) -> tuple | None:
        # A tuple is a whole row; anything else is the row's only column.
        return self.answer if isinstance(self.answer, tuple) else (self.answer,)


class FakeConn:
    def __init__(self, script: list[Any]) -> None:
        self.script = script
        self.queries: list[str] = []
        self.closed = False
        self.broken = False

    def cursor(self, **kwargs: Any) -> FakeCursor:
        return FakeCursor(self)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


CONFLICT = psycopg.errors.SerializationFailure("canceling statement due to conflict with recovery")


def test_signal_is_sent_once() -> None:
    conn = FakeConn([True])
    signal_promotion(conn, sleep=Clock().sleep)
    assert len(conn.queries) == 1 and "SELECT pg_catalog.pg_promote(wait => false)" in conn.queries[0]


def test_signal_canceled_by_a_conflict_is_sent_again() -> None:
    conn = FakeConn([CONFLICT, True])
    signal_promotion(conn, sleep=Clock().sleep)
    assert len(conn.queries) == 2


def test_signal_that_returns_false_fails() -> None:
    with pytest.raises(PgreplError, match="could not signal the postmaster"):
        signal_promotion(FakeConn([False]), sleep=Clock().sleep)


def test_signal_gives_up_after_repeated_conflicts() -> None:
    with pytest.raises(psycopg.errors.SerializationFailure):
        signal_promotion(FakeConn([CONFLICT, CONFLICT, CONFLICT]), sleep=Clock().sleep)


def test_wait_returns_when_recovery_ends() -> None:
    clock = Clock()
    conn = FakeConn([True, True, False])
    assert wait_until_promoted(conn, lambda: pytest.fail("no reconnect"), 60, clock, clock.sleep) is conn
    assert len(clock.sleeps) == 2


def test_wait_survives_conflicts_and_a_broken_session() -> None:
    clock = Clock()
    first = FakeConn([CONFLICT, psycopg.OperationalError("server closed the connection unexpectedly")])
    second = FakeConn([True, False])
    assert wait_until_promoted(first, lambda: second, 60, clock, clock.sleep) is second


def test_wait_fails_at_the_deadline_with_the_last_error() -> None:
    clock = Clock()
    conn = FakeConn([True] * 5 + [CONFLICT] + [True] * 100)
    with pytest.raises(PgreplError) as err:
        wait_until_promoted(conn, lambda: conn, 3, clock, clock.sleep)
    assert "did not finish within wait_seconds=3" in str(err.value)
    assert "conflict with recovery" in str(err.value)


def test_wait_does_not_hide_other_errors() -> None:
    clock = Clock()
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        wait_until_promoted(FakeConn([psycopg.errors.InsufficientPrivilege("permission denied")]), lambda: None, 5,
                            clock, clock.sleep)


# ---------------------------------------------------------------------------------------------------- replay_past_lsn


def test_replay_past_lsn_defaults_to_none() -> None:
    assert promote_request({}).replay_past_lsn is None
    assert promote_request({"replay_past_lsn": None}).replay_past_lsn is None


@pytest.mark.parametrize("value, normalized", [
    ("0/3000060", "0/3000060"),
    ("0/300006a", "0/300006A"),
    ("16/b374d848", "16/B374D848"),
    ("00000000/03000060", "0/3000060"),
    ("FFFFFFFF/FFFFFFFF", "FFFFFFFF/FFFFFFFF"),
    ("0/0", "0/0"),
])
def test_replay_past_lsn_is_taken_as_pg_lsn_prints_it(value: str, normalized: str) -> None:
    assert validate_replay_past_lsn(value) == normalized
    assert promote_request({"replay_past_lsn": value}).replay_past_lsn == normalized


@pytest.mark.parametrize("value", [
    "", "0", "3000060", "0/", "/3000060", "0/3000060 ", " 0/3000060", "0/3000060\n", "G/1", "0x0/1", "-1/0",
    "123456789/0", "0/123456789", "0/1/2", "0/1; SELECT pg_promote()", "0:3000060", 3000060, True, ["0/1"],
])
def test_bad_replay_past_lsn_names_the_option_and_the_value(value: Any) -> None:
    with pytest.raises(PgreplError) as err:
        promote_request({"replay_past_lsn": value})
    assert str(err.value).startswith(f"replay_past_lsn: {value!r} is not a WAL location")
    assert "nothing was done" in str(err.value)


def test_replay_is_past_is_strict_and_numeric() -> None:
    assert replay_is_past("0/3000061", "0/3000060")
    assert not replay_is_past("0/3000060", "0/3000060")
    assert not replay_is_past("0/2FFFFFF", "0/3000060")
    # Compared as numbers, not as text: 1/0 is past 0/FFFFFFFF, and 0/A0 is past 0/9F.
    assert replay_is_past("1/0", "0/FFFFFFFF")
    assert replay_is_past("0/A0", "0/9F")
    assert not replay_is_past("0/10000000", "FFFFFFF/0")
    assert not replay_is_past(None, "0/0")


def test_not_caught_up_message_names_the_lsns_and_says_nothing_was_done() -> None:
    text = not_caught_up_message("FFFFFFF/0", 2, "0/3000148", "0/3000110")
    assert text.startswith("replay_past_lsn: the standby did not replay past FFFFFFF/0 within wait_seconds=2: it has "
                           "received WAL up to 0/3000148 and replayed up to 0/3000110.")
    assert "It was not promoted (nothing was done)" in text and "has not even reached this standby" in text
    behind = not_caught_up_message("0/3000100", 2, "0/3000148", "0/3000000")
    assert "received that WAL but not replayed it yet" in behind
    assert "received WAL up to nothing (null)" in not_caught_up_message("0/1", 1, None, None)
    assert "pg_wal_replay_resume()" in not_caught_up_message("0/1", 1, "0/5", "0/0", paused=True)
    assert "(last error: boom)" in not_caught_up_message("0/1", 1, "0/5", "0/0", detail="boom")


def test_no_query_when_the_facts_already_show_replay_past_the_lsn() -> None:
    clock = Clock()
    conn = FakeConn([])
    catch_up = CatchUp("0/3000060", "0/3000148", "0/3000148")
    assert wait_for_replay(conn, lambda: pytest.fail("no reconnect"), catch_up, 5, False, clock,
                           clock.sleep) is conn
    assert conn.queries == [] and catch_up.caught_up_lsn == "0/3000148"


def test_wait_for_replay_polls_until_replay_is_past() -> None:
    clock = Clock()
    conn = FakeConn([(True, "0/3000148", "0/3000000"), CONFLICT, (True, "0/3000148", "0/3000060"),
                     (True, "0/3000200", "0/3000148")])
    catch_up = CatchUp("0/3000060", "0/3000000", "0/3000000")
    assert wait_for_replay(conn, lambda: pytest.fail("no reconnect"), catch_up, 5, False, clock, clock.sleep) is conn
    assert len(conn.queries) == 4 and "pg_last_wal_replay_lsn()" in conn.queries[0]
    assert catch_up.caught_up_lsn == "0/3000148" and catch_up.received_lsn == "0/3000200"


def test_wait_for_replay_reopens_a_broken_session() -> None:
    clock = Clock()
    first = FakeConn([psycopg.OperationalError("server closed the connection unexpectedly")])
    second = FakeConn([(True, "0/5000000", "0/5000000")])
    catch_up = CatchUp("0/3000060", None, None)
    assert wait_for_replay(first, lambda: second, catch_up, 5, False, clock, clock.sleep) is second
    assert catch_up.caught_up_lsn == "0/5000000"


def test_wait_for_replay_refuses_at_the_deadline_with_the_last_lsns() -> None:
    clock = Clock()
    conn = FakeConn([(True, "0/3000148", "0/3000148")] * 100)
    catch_up = CatchUp("FFFFFFF/0", "0/3000000", "0/3000000")
    with pytest.raises(PgreplError) as err:
        wait_for_replay(conn, lambda: conn, catch_up, 2, False, clock, clock.sleep)
    assert str(err.value).startswith("replay_past_lsn: the standby did not replay past FFFFFFF/0 within "
                                     "wait_seconds=2: it has received WAL up to 0/3000148 and replayed up to 0/3000148")
    assert catch_up.caught_up_lsn is None
    assert 2.0 <= clock.now <= 2.2


def test_wait_for_replay_stops_when_the_server_left_recovery() -> None:
    clock = Clock()
    conn = FakeConn([(True, "0/1", "0/1"), (False, None, "0/1")])
    with pytest.raises(PgreplError, match="replay_past_lsn: the server left recovery while this task waited"):
        wait_for_replay(conn, lambda: conn, CatchUp("0/5", "0/1", "0/1"), 60, False, clock, clock.sleep)
    assert clock.now < 1  # it did not wait for the deadline


def test_poll_until_does_not_hide_other_errors() -> None:
    clock = Clock()

    def probe(conn: Any) -> bool:
        raise psycopg.errors.InsufficientPrivilege("permission denied")

    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        poll_until(FakeConn([]), lambda: None, probe, 5, lambda last: "timeout", clock, clock.sleep)


def test_poll_until_keeps_trying_when_reconnecting_fails() -> None:
    clock = Clock()
    broken = FakeConn([])
    broken.broken = True

    def reconnect() -> Any:
        raise PgreplError("cannot reach PostgreSQL")

    with pytest.raises(PgreplError) as err:
        poll_until(broken, reconnect, lambda conn: True, 1, lambda last: f"timeout ({last})", clock, clock.sleep)
    assert str(err.value) == "timeout (cannot reach PostgreSQL)"
