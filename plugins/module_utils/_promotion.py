# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Promoting a standby over SQL: its recovery facts in one round trip, the wait until its replay is past an LSN,
``pg_promote(wait => false)``, the wait until it left recovery, the timeline it left and the one it started.

promote (on the standby's own host) and handover (on the old primary's host, over TCP) use it. Every wait runs short
queries of its own rather than one long statement: a statement that holds a snapshot while replay goes on is
canceled by a recovery conflict (SQLSTATE 40001) on a lagging standby; such a poll is retried, a session ended by
one is reopened.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

from ansible_collections.pgrepl.streaming.plugins.module_utils._connection import (
    psycopg,
    query_dict,
    query_one,
    sql,
)
from ansible_collections.pgrepl.streaming.plugins.module_utils._errors import PgreplError
from ansible_collections.pgrepl.streaming.plugins.module_utils._lsn import (
    is_lsn,
    normalize_lsn,
    parse_lsn,
    timeline_of_wal_file,
)

# pg_get_wal_replay_pause_state() ('not paused', 'pause requested', 'paused') exists from PostgreSQL 14 on.
PAUSE_STATE_MIN_VERSION = 140000
PROMOTE_SIGNATURE = "pg_catalog.pg_promote(boolean, integer)"
# What a query canceled (or a session ended) by a conflict with WAL replay fails with on a standby:
# serialization_failure, or deadlock_detected for a buffer-pin deadlock with the startup process.
RECOVERY_CONFLICT_SQLSTATES = ("40001", "40P01")
POLL_SECONDS = 0.1
# What handover polls at while writes are stopped (a poll is one short query; the gap should not wait for it).
FAST_POLL_SECONDS = 0.01
SIGNAL_ATTEMPTS = 3


class WaitTimeout(PgreplError):
    """A wait ended at its deadline (or was stopped early) without its condition being met."""


class LeftRecovery(PgreplError):
    """The standby left recovery while a wait for its replay went on: something else promoted it."""


def history_file_name(timeline: int) -> str:
    """The name of a timeline's history file in pg_wal ('00000002.history')."""
    if timeline < 1:
        raise PgreplError(f"{timeline} is not a timeline")
    return f"{timeline:08X}.history"


@dataclass(frozen=True)
class HistoryEntry:
    """One line of a timeline history file: a parent timeline and the LSN at which its child began."""

    parent_timeline: int
    switch_lsn: str
    reason: str


def parse_history(text: str) -> list[HistoryEntry]:
    """The entries of a timeline history file (``parentTLI <tab> switchpoint <tab> reason``), in order.

    Blank lines and lines starting with '#' are comments, as in the server's own reader; a line that does not
    parse is skipped.
    """
    entries: list[HistoryEntry] = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        parts = stripped.split(None, 2)
        if len(parts) < 2 or not parts[0].isdigit() or not is_lsn(parts[1]):
            continue
        entries.append(HistoryEntry(int(parts[0]), normalize_lsn(parts[1]), parts[2].strip() if len(parts) > 2 else ""))
    return entries


def max_timeline(*values: Any) -> int | None:
    """The largest known (positive) timeline of the values, or None."""
    known = [int(value) for value in values if isinstance(value, int) and not isinstance(value, bool) and value > 0]
    return max(known) if known else None


def paused_refusal(pause_state: str | None) -> str:
    """Why a paused standby is not promoted without allow_paused."""
    state = f" (pg_get_wal_replay_pause_state() is {pause_state!r})" if pause_state else ""
    return ("allow_paused: WAL replay on this standby is paused (pg_is_wal_replay_paused() is true)" + state
            + ": someone paused it on purpose, for example to inspect data or to stop short of a bad transaction, "
            "and promoting ends the pause and makes the server a primary at whatever point replay then reaches. "
            "Nothing was done. Resume replay with pg_wal_replay_resume() first, or set allow_paused: true to "
            "promote anyway")


def not_finished_message(wait_seconds: int, detail: str = "") -> str:
    """The failure when the server is still in recovery at the deadline."""
    extra = f" (last error: {detail})" if detail else ""
    return (f"the promotion did not finish within wait_seconds={wait_seconds}: pg_is_in_recovery() was still "
            f"true{extra}. It was requested and may still complete on its own: check pg_is_in_recovery() on the "
            "server before doing anything else, and raise wait_seconds if the standby has much WAL left to replay")


def replay_is_past(replayed_lsn: str | None, target_lsn: str) -> bool:
    """Whether the replay position is strictly past the target (a null replay position never is)."""
    if replayed_lsn is None:
        return False
    return parse_lsn(replayed_lsn) > parse_lsn(target_lsn)


def not_caught_up_message(target_lsn: str, wait_seconds: int, received_lsn: str | None, replayed_lsn: str | None,
                          paused: bool = False, detail: str = "", prefix: str = "replay_past_lsn: ",
                          outcome: str = "It was not promoted (nothing was done)") -> str:
    """The refusal when replay did not pass replay_past_lsn in time (nothing was done, unless ``outcome`` says)."""
    extra = f" (last error: {detail})" if detail else ""
    if paused:
        hint = ("WAL replay is paused (allow_paused: true), so it does not advance: resume it with "
                "pg_wal_replay_resume() first")
    elif received_lsn is not None and replay_is_past(received_lsn, target_lsn):
        hint = "it has received that WAL but not replayed it yet: raise wait_seconds if replay is slow"
    else:
        hint = ("that WAL has not even reached this standby: check that it streams from the old primary and that the "
                "old primary was shut down cleanly, and that the LSN belongs to this cluster")
    return (f"{prefix}the standby did not replay past {target_lsn} within wait_seconds={wait_seconds}: it "
            f"has received WAL up to {received_lsn or 'nothing (null)'} and replayed up to "
            f"{replayed_lsn or 'nothing (null)'}{extra}. {outcome}; {hint}")


def is_recovery_conflict(exc: BaseException) -> bool:
    """Whether a server error is a query canceled (or a session ended) by a conflict with WAL replay."""
    return getattr(exc, "sqlstate", None) in RECOVERY_CONFLICT_SQLSTATES


def is_broken(conn: Any) -> bool:
    return bool(getattr(conn, "closed", False) or getattr(conn, "broken", False))


@dataclass(frozen=True)
class RecoveryFacts:
    """What the server says about its recovery, before anything is done."""

    in_recovery: bool
    paused: bool
    pause_state: str | None
    received_lsn: str | None
    replayed_lsn: str | None
    received_timeline: int | None
    checkpoint_timeline: int | None
    min_recovery_end_timeline: int | None
    wal_file: str | None
    may_promote: bool

    @property
    def timeline(self) -> int | None:
        """The timeline the server is on: from the WAL file name on a primary, else the largest one it knows."""
        if not self.in_recovery:
            current = timeline_of_wal_file(self.wal_file)
            if current is not None:
                return current
        return max_timeline(self.received_timeline, self.checkpoint_timeline, self.min_recovery_end_timeline)


FACTS_QUERY = (
    "SELECT pg_catalog.pg_is_in_recovery() AS in_recovery,"
    " CASE WHEN pg_catalog.pg_is_in_recovery() THEN pg_catalog.pg_is_wal_replay_paused() ELSE false END AS paused,"
    " pg_catalog.pg_last_wal_receive_lsn()::text AS received_lsn,"
    " pg_catalog.pg_last_wal_replay_lsn()::text AS replayed_lsn,"
    " (SELECT received_tli FROM pg_catalog.pg_stat_wal_receiver LIMIT 1) AS received_timeline,"
    " (SELECT timeline_id FROM pg_catalog.pg_control_checkpoint()) AS checkpoint_timeline,"
    " (SELECT min_recovery_end_timeline FROM pg_catalog.pg_control_recovery()) AS min_recovery_end_timeline,"
    " CASE WHEN pg_catalog.pg_is_in_recovery() THEN NULL"
    " ELSE pg_catalog.pg_walfile_name(pg_catalog.pg_current_wal_lsn()) END AS wal_file,"
    " pg_catalog.has_function_privilege(%s, 'EXECUTE') AS may_promote"
)


def read_recovery_facts(conn: Any, version_num: int) -> RecoveryFacts:
    row = query_dict(conn, FACTS_QUERY, (PROMOTE_SIGNATURE,))
    if row is None:
        raise PgreplError("the server returned no row for its recovery facts")
    pause_state = None
    if row["in_recovery"] and version_num >= PAUSE_STATE_MIN_VERSION:
        found = query_one(conn, "SELECT pg_catalog.pg_get_wal_replay_pause_state()")
        pause_state = str(found[0]) if found and found[0] is not None else None
    return RecoveryFacts(
        in_recovery=bool(row["in_recovery"]),
        paused=bool(row["paused"]),
        pause_state=pause_state,
        received_lsn=row["received_lsn"],
        replayed_lsn=row["replayed_lsn"],
        received_timeline=row["received_timeline"],
        checkpoint_timeline=row["checkpoint_timeline"],
        min_recovery_end_timeline=row["min_recovery_end_timeline"],
        wal_file=row["wal_file"],
        may_promote=bool(row["may_promote"]),
    )


def read_history(conn: Any, timeline: int, warnings: list[str]) -> list[HistoryEntry]:
    """The new timeline's history file (needs pg_read_file: a superuser or pg_read_server_files)."""
    path = "pg_wal/" + history_file_name(timeline)
    try:
        row = query_one(conn, "SELECT pg_catalog.pg_read_file(%s)", (path,))
    except psycopg.Error as exc:
        warnings.append(f"cannot read {path} to find where timeline {timeline} began (promoted_at_lsn is the "
                        f"replay position before promotion instead): {str(exc).strip()}")
        return []
    return parse_history(str(row[0])) if row and row[0] is not None else []


def run_checkpoint(conn: Any, warnings: list[str]) -> bool:
    """CHECKPOINT, so pg_control records the new timeline now; a refusal is a warning (promotion is done)."""
    try:
        with conn.cursor() as cur:
            cur.execute(sql.SQL("CHECKPOINT"))
    except psycopg.Error as exc:
        warnings.append("the server was promoted, but CHECKPOINT after it failed, so pg_control shows the new "
                        "timeline only after the next checkpoint (pg_rewind of PostgreSQL 15 and older against "
                        f"this server must wait for it; connect as a superuser or a member of pg_checkpoint): "
                        f"{str(exc).strip()}")
        return False
    return True


def signal_promotion(conn: Any, sleep: Callable[[float], None] = time.sleep) -> None:
    """pg_promote(wait => false): the promote signal, sent at once (retried when a recovery conflict cancels it)."""
    for attempt in range(1, SIGNAL_ATTEMPTS + 1):
        try:
            row = query_one(conn, sql.SQL("SELECT pg_catalog.pg_promote(wait => false)"))
        except psycopg.Error as exc:
            if attempt < SIGNAL_ATTEMPTS and is_recovery_conflict(exc) and not is_broken(conn):
                sleep(POLL_SECONDS)
                continue
            raise
        if not row or row[0] is not True:
            raise PgreplError("pg_promote() returned false: it could not signal the postmaster (see the server "
                              "log); the server was not promoted")
        return


def poll_until(conn: Any, reconnect: Callable[[], Any], probe: Callable[[Any], bool], wait_seconds: float,
               timeout_message: Callable[[str], str], clock: Callable[[], float] = time.monotonic,
               sleep: Callable[[float], None] = time.sleep, poll: float = POLL_SECONDS,
               stop: Callable[[], str | None] | None = None) -> Any:
    """Run a short probe query until it returns true; returns the connection (a new one if the old one broke).

    A probe canceled by a recovery conflict is retried, a session ended by one is reopened; at the deadline the
    failure is WaitTimeout(``timeout_message(last error)``), and so is a reason ``stop`` gives to end the wait early
    (an interruption). A PgreplError raised by the probe itself ends the wait at once.
    """
    deadline = clock() + wait_seconds
    last_error = ""
    while True:
        reason = stop() if stop is not None else None
        if reason:
            raise WaitTimeout(timeout_message(reason))
        try:
            if is_broken(conn):
                conn = reconnect()
        except PgreplError as exc:  # reopening the session failed: keep trying until the deadline
            last_error = str(exc)
        else:
            try:
                if probe(conn):
                    return conn
            except psycopg.Error as exc:
                if not (is_recovery_conflict(exc) or is_broken(conn)):
                    raise
                last_error = str(exc).strip()
        if clock() >= deadline:
            raise WaitTimeout(timeout_message(last_error))
        sleep(poll)


def _left_recovery(conn: Any) -> bool:
    row = query_one(conn, "SELECT pg_catalog.pg_is_in_recovery()")
    return bool(row) and row[0] is False


def wait_until_promoted(conn: Any, reconnect: Callable[[], Any], wait_seconds: int,
                        clock: Callable[[], float] = time.monotonic,
                        sleep: Callable[[float], None] = time.sleep, poll: float = POLL_SECONDS,
                        probe: Callable[[Callable[[Any], bool]], Callable[[Any], bool]] = lambda run: run) -> Any:
    """Poll pg_is_in_recovery() until it is false; returns the connection (a new one if the old one broke).

    A poll canceled by a recovery conflict is retried, a session ended by one is reopened; at the deadline the
    promotion is reported as not finished. ``probe`` wraps each poll (handover bounds its time).
    """
    return poll_until(conn, reconnect, probe(_left_recovery), wait_seconds,
                      lambda last_error: not_finished_message(wait_seconds, last_error), clock, sleep, poll)


CATCH_UP_QUERY = (
    "SELECT pg_catalog.pg_is_in_recovery() AS in_recovery,"
    " pg_catalog.pg_last_wal_receive_lsn()::text AS received_lsn,"
    " pg_catalog.pg_last_wal_replay_lsn()::text AS replayed_lsn"
)


class CatchUp:
    """Replay's progress towards replay_past_lsn, as last seen (the refusal names it)."""

    def __init__(self, target_lsn: str, received_lsn: str | None, replayed_lsn: str | None) -> None:
        self.target_lsn = target_lsn
        self.received_lsn = received_lsn
        self.replayed_lsn = replayed_lsn
        self.caught_up_lsn: str | None = None

    def check(self) -> bool:
        """Whether the replay position last seen is past the target (then it is kept as caught_up_lsn)."""
        if replay_is_past(self.replayed_lsn, self.target_lsn):
            self.caught_up_lsn = self.replayed_lsn
        return self.caught_up_lsn is not None

    def probe(self, conn: Any) -> bool:
        """One short query: the received and replayed LSNs now (and still in recovery)."""
        row = query_one(conn, CATCH_UP_QUERY)
        if not row:
            return False
        if row[0] is False:
            raise LeftRecovery(f"replay_past_lsn: the server left recovery while this task waited for replay past "
                               f"{self.target_lsn} (something else promoted it); this task did not promote it")
        self.received_lsn, self.replayed_lsn = row[1], row[2]
        return self.check()


def wait_for_replay(conn: Any, reconnect: Callable[[], Any], catch_up: CatchUp, wait_seconds: int, paused: bool,
                    clock: Callable[[], float] = time.monotonic,
                    sleep: Callable[[float], None] = time.sleep, poll: float = POLL_SECONDS,
                    probe: Callable[[Callable[[Any], bool]], Callable[[Any], bool]] = lambda run: run,
                    stop: Callable[[], str | None] | None = None,
                    message: Callable[[str], str] | None = None) -> Any:
    """Poll until replay is past the target (no query when the facts already show it); returns the connection.

    At the deadline the refusal (``message(last error)``, by default replay_past_lsn's) names the target and the
    last received and replayed LSNs. ``probe`` wraps each poll, ``stop`` may end the wait early (see poll_until).
    """
    if catch_up.check():
        return conn
    if message is None:
        def message(last_error: str) -> str:
            return not_caught_up_message(catch_up.target_lsn, wait_seconds, catch_up.received_lsn,
                                         catch_up.replayed_lsn, paused, last_error)
    return poll_until(conn, reconnect, probe(catch_up.probe), wait_seconds, message, clock, sleep, poll, stop)


class Session:
    """The module's connection, which the wait may replace; closed once at the end."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def close(self) -> None:
        if not is_broken(self.conn):
            self.conn.close()
