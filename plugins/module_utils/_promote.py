# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A standby promoted with pg_promote(), confirmed, and measured: the timeline it left and the one it started.

Facts first, in one round trip (recovery state, replay paused or not, received and replayed LSN, the timeline,
whether the login may call pg_promote). A server that is not in recovery is already a primary and is left
alone. With replay_past_lsn set, the module first waits, with short queries, until the standby's replay position
is past that LSN (so a switchover knows the old primary's shutdown checkpoint was replayed), and refuses without
promoting when it is not within wait_seconds; check mode waits and refuses the same way. Check mode stops
there. A real run signals the promotion with ``pg_promote(wait => false)`` and then waits up to wait_seconds
(again, a second window) for ``pg_is_in_recovery()`` to turn false, with short queries. (It does not
let ``pg_promote(wait => true)`` wait inside one statement: that statement holds a snapshot while replay catches
up, and a standby that lags, for example after a pause, cancels it with a recovery conflict, SQLSTATE 40001, as
soon as replay removes row versions; the promotion then goes on while the call has failed.) Then it reads the
new timeline from the name of the current WAL file (pg_control keeps the old timeline until the first checkpoint
after promotion, which is spread over minutes) and the switch point from the new timeline's history file, and by
default runs a CHECKPOINT so that pg_control shows the new timeline at once (pg_rewind before PostgreSQL 16 reads
a source's timeline only from there).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

from ansible_collections.pgrepl.streaming.plugins.module_utils._changes import ChangeTracker, finish
from ansible_collections.pgrepl.streaming.plugins.module_utils._connection import (
    connect,
    describe_target,
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
from ansible_collections.pgrepl.streaming.plugins.module_utils._module import ModuleSpec
from ansible_collections.pgrepl.streaming.plugins.module_utils._options import require_bool
from ansible_collections.pgrepl.streaming.plugins.module_utils._server import supported_server_facts

WAIT_SECONDS_MAX = 86400
# pg_get_wal_replay_pause_state() ('not paused', 'pause requested', 'paused') exists from PostgreSQL 14 on.
PAUSE_STATE_MIN_VERSION = 140000
PROMOTE_SIGNATURE = "pg_catalog.pg_promote(boolean, integer)"
# What a query canceled (or a session ended) by a conflict with WAL replay fails with on a standby:
# serialization_failure, or deadlock_detected for a buffer-pin deadlock with the startup process.
RECOVERY_CONFLICT_SQLSTATES = ("40001", "40P01")
POLL_SECONDS = 0.1
SIGNAL_ATTEMPTS = 3

# replay_past_lsn as pg_controldata and pg_lsn print it (matched whole: no sign, no spaces, no newline).

OUTCOME_PROMOTED = "promoted"
OUTCOME_WOULD_PROMOTE = "would_promote"
OUTCOME_ALREADY_PRIMARY = "already_primary"


# The module's own options (the connection options are merged in by ModuleSpec).
PROMOTE_SPEC = ModuleSpec({
    "wait_seconds": {"type": "int", "default": 60},
    "allow_paused": {"type": "bool", "default": False},
    "checkpoint": {"type": "bool", "default": True},
    "replay_past_lsn": {"type": "str"},
})


@dataclass(frozen=True)
class PromoteRequest:
    """The options, validated."""

    wait_seconds: int = 60
    allow_paused: bool = False
    checkpoint: bool = True
    replay_past_lsn: str | None = None


def validate_replay_past_lsn(value: Any) -> str | None:
    """An LSN such as '0/3000060' in the form pg_lsn prints it (upper case, no leading zeros), or None."""
    if value is None:
        return None
    if not is_lsn(value):
        raise PgreplError(f"replay_past_lsn: {value!r} is not a WAL location (1 to 8 hexadecimal digits, '/', 1 to 8 "
                          "hexadecimal digits, like 0/3000060, as pg_controldata prints its 'Latest checkpoint "
                          "location'); nothing was done")
    return normalize_lsn(value)


def promote_request(params: dict[str, Any]) -> PromoteRequest:
    """Validate the options before any connection is opened."""
    wait = params.get("wait_seconds")
    if wait is None:
        wait = 60
    if isinstance(wait, bool) or not isinstance(wait, int):
        raise PgreplError(f"wait_seconds: {wait!r} is not an integer")
    if not 1 <= wait <= WAIT_SECONDS_MAX:
        raise PgreplError(f"wait_seconds: {wait} is not a number of seconds greater than 0 "
                          f"(1-{WAIT_SECONDS_MAX})")
    return PromoteRequest(
        wait_seconds=wait,
        allow_paused=require_bool(params, "allow_paused", False),
        checkpoint=require_bool(params, "checkpoint", True),
        replay_past_lsn=validate_replay_past_lsn(params.get("replay_past_lsn")),
    )


# ---------------------------------------------------------------------------------------------------------------
# pure helpers
# ---------------------------------------------------------------------------------------------------------------


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
                          paused: bool = False, detail: str = "") -> str:
    """The refusal when replay did not pass replay_past_lsn in time (nothing was done)."""
    extra = f" (last error: {detail})" if detail else ""
    if paused:
        hint = ("WAL replay is paused (allow_paused: true), so it does not advance: resume it with "
                "pg_wal_replay_resume() first")
    elif received_lsn is not None and replay_is_past(received_lsn, target_lsn):
        hint = "it has received that WAL but not replayed it yet: raise wait_seconds if replay is slow"
    else:
        hint = ("that WAL has not even reached this standby: check that it streams from the old primary and that the "
                "old primary was shut down cleanly, and that the LSN belongs to this cluster")
    return (f"replay_past_lsn: the standby did not replay past {target_lsn} within wait_seconds={wait_seconds}: it "
            f"has received WAL up to {received_lsn or 'nothing (null)'} and replayed up to "
            f"{replayed_lsn or 'nothing (null)'}{extra}. It was not promoted (nothing was done); {hint}")


def is_recovery_conflict(exc: BaseException) -> bool:
    """Whether a server error is a query canceled (or a session ended) by a conflict with WAL replay."""
    return getattr(exc, "sqlstate", None) in RECOVERY_CONFLICT_SQLSTATES


def is_broken(conn: Any) -> bool:
    return bool(getattr(conn, "closed", False) or getattr(conn, "broken", False))


# ---------------------------------------------------------------------------------------------------------------
# facts
# ---------------------------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------------------------
# the module body
# ---------------------------------------------------------------------------------------------------------------


def _base_result(facts: RecoveryFacts, request: PromoteRequest) -> dict[str, Any]:
    return {
        "changed": False,
        "outcome": OUTCOME_ALREADY_PRIMARY,
        "in_recovery": facts.in_recovery,
        "timeline_before": facts.timeline,
        "timeline_after": None,
        "promoted_at_lsn": None,
        # On a primary these are leftovers of an earlier recovery (or null): they describe a standby only.
        "received_lsn": facts.received_lsn if facts.in_recovery else None,
        "replayed_lsn": facts.replayed_lsn if facts.in_recovery else None,
        "replay_paused": facts.paused,
        "wait_seconds": request.wait_seconds,
        "replay_past_lsn": request.replay_past_lsn,
        "caught_up_lsn": None,
        "checkpointed": False,
        "msg": "",
    }


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


def poll_until(conn: Any, reconnect: Callable[[], Any], probe: Callable[[Any], bool], wait_seconds: int,
               timeout_message: Callable[[str], str], clock: Callable[[], float] = time.monotonic,
               sleep: Callable[[float], None] = time.sleep) -> Any:
    """Run a short probe query until it returns true; returns the connection (a new one if the old one broke).

    A probe canceled by a recovery conflict is retried, a session ended by one is reopened; at the deadline the
    failure is ``timeout_message(last error)``. A PgreplError raised by the probe itself ends the wait at once.
    """
    deadline = clock() + wait_seconds
    last_error = ""
    while True:
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
            raise PgreplError(timeout_message(last_error))
        sleep(POLL_SECONDS)


def _left_recovery(conn: Any) -> bool:
    row = query_one(conn, "SELECT pg_catalog.pg_is_in_recovery()")
    return bool(row) and row[0] is False


def wait_until_promoted(conn: Any, reconnect: Callable[[], Any], wait_seconds: int,
                        clock: Callable[[], float] = time.monotonic,
                        sleep: Callable[[float], None] = time.sleep) -> Any:
    """Poll pg_is_in_recovery() until it is false; returns the connection (a new one if the old one broke).

    A poll canceled by a recovery conflict is retried, a session ended by one is reopened; at the deadline the
    promotion is reported as not finished.
    """
    return poll_until(conn, reconnect, _left_recovery, wait_seconds,
                      lambda last_error: not_finished_message(wait_seconds, last_error), clock, sleep)


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
            raise PgreplError(f"replay_past_lsn: the server left recovery while this task waited for replay past "
                              f"{self.target_lsn} (something else promoted it); this task did not promote it")
        self.received_lsn, self.replayed_lsn = row[1], row[2]
        return self.check()


def wait_for_replay(conn: Any, reconnect: Callable[[], Any], catch_up: CatchUp, wait_seconds: int, paused: bool,
                    clock: Callable[[], float] = time.monotonic,
                    sleep: Callable[[float], None] = time.sleep) -> Any:
    """Poll until replay is past the target (no query when the facts already show it); returns the connection.

    At the deadline the refusal names the target and the last received and replayed LSNs.
    """
    if catch_up.check():
        return conn
    return poll_until(conn, reconnect, catch_up.probe, wait_seconds,
                      lambda last_error: not_caught_up_message(catch_up.target_lsn, wait_seconds,
                                                               catch_up.received_lsn, catch_up.replayed_lsn, paused,
                                                               last_error),
                      clock, sleep)


class Session:
    """The module's connection, which the wait may replace; closed once at the end."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def close(self) -> None:
        if not is_broken(self.conn):
            self.conn.close()


def promote(session: Session, params: dict[str, Any], request: PromoteRequest, facts: RecoveryFacts,
            version_num: int, warnings: list[str]) -> dict[str, Any]:
    """Signal, wait, confirm; the result keys of a real promotion."""
    signal_promotion(session.conn)
    session.conn = wait_until_promoted(session.conn, lambda: connect(params), request.wait_seconds)
    conn = session.conn
    after = read_recovery_facts(conn, version_num)
    if after.in_recovery:
        raise PgreplError("pg_is_in_recovery() turned false and then true again: check the server's log")
    timeline_after = timeline_of_wal_file(after.wal_file)
    if timeline_after is None:
        raise PgreplError(f"the server left recovery, but its current WAL file name {after.wal_file!r} does not "
                          "tell its timeline")
    timeline_before = facts.timeline
    promoted_at = facts.replayed_lsn
    history = read_history(conn, timeline_after, warnings)
    if history:
        timeline_before = history[-1].parent_timeline
        promoted_at = history[-1].switch_lsn
    checkpointed = run_checkpoint(conn, warnings) if request.checkpoint else False
    return {
        "timeline_before": timeline_before,
        "timeline_after": timeline_after,
        "promoted_at_lsn": promoted_at,
        "checkpointed": checkpointed,
        "in_recovery": False,
    }


def run_promote(module: Any) -> dict[str, Any]:
    """Promote the standby the connection options point at, or say why not."""
    started = time.monotonic()
    request = promote_request(module.params)
    warnings: list[str] = []
    session = Session(connect(module.params))
    conn = session.conn
    try:
        server = supported_server_facts(conn, warnings)
        facts = read_recovery_facts(conn, server.version_num)
        result = _base_result(facts, request)
        tracker = ChangeTracker(module.check_mode)
        target = describe_target(module.params)
        if not facts.in_recovery:
            tracker.record("in_recovery", False, False)
            result["timeline_after"] = facts.timeline
            result["msg"] = (f"the server at {target} is already a primary (pg_is_in_recovery() is false) on "
                             f"timeline {facts.timeline}: nothing to promote")
            if request.replay_past_lsn is not None:
                result["msg"] += f" (replay_past_lsn {request.replay_past_lsn} not checked on a primary)"
        else:
            if not facts.may_promote:
                raise PgreplError(f"login_user: the role {server.current_user!r} may not execute {PROMOTE_SIGNATURE} "
                                  "(it needs to be a superuser, or be granted EXECUTE on that function); nothing "
                                  "was done")
            if facts.paused and not request.allow_paused:
                raise PgreplError(paused_refusal(facts.pause_state))
            caught_up = ""
            if request.replay_past_lsn is not None:
                catch_up = CatchUp(request.replay_past_lsn, facts.received_lsn, facts.replayed_lsn)
                session.conn = wait_for_replay(session.conn, lambda: connect(module.params), catch_up,
                                               request.wait_seconds, facts.paused)
                result["caught_up_lsn"] = catch_up.caught_up_lsn
                # What the standby had received and replayed right before the promotion (after the wait).
                result["received_lsn"], result["replayed_lsn"] = catch_up.received_lsn, catch_up.replayed_lsn
                caught_up = f", past replay_past_lsn {request.replay_past_lsn}"
            tracker.record("in_recovery", True, False)
            result["changed"] = True
            if not tracker.apply:
                result["outcome"] = OUTCOME_WOULD_PROMOTE
                result["msg"] = (f"the standby at {target} (timeline {facts.timeline}, replayed up to "
                                 f"{result['replayed_lsn']}{caught_up}) would be promoted")
            else:
                result.update(promote(session, module.params, request, facts, server.version_num, warnings))
                result["outcome"] = OUTCOME_PROMOTED
                result["msg"] = (f"promoted the standby at {target}: timeline {result['timeline_before']} -> "
                                 f"{result['timeline_after']} at {result['promoted_at_lsn']}{caught_up}")
                if facts.paused:
                    warnings.append("WAL replay was paused; promotion ended the pause (allow_paused: true)")
    finally:
        session.close()
    return finish(module, result, tracker, warnings, started)
