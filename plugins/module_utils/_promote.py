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
from typing import Any

from ansible_collections.pgrepl.streaming.plugins.module_utils._changes import ChangeTracker, finish
from ansible_collections.pgrepl.streaming.plugins.module_utils._connection import connect, describe_target
from ansible_collections.pgrepl.streaming.plugins.module_utils._errors import PgreplError
from ansible_collections.pgrepl.streaming.plugins.module_utils._lsn import is_lsn, normalize_lsn, timeline_of_wal_file
from ansible_collections.pgrepl.streaming.plugins.module_utils._module import ModuleSpec
from ansible_collections.pgrepl.streaming.plugins.module_utils._options import require_bool
from ansible_collections.pgrepl.streaming.plugins.module_utils._promotion import (
    FAST_POLL_SECONDS,
    PROMOTE_SIGNATURE,
    CatchUp,
    HistoryEntry,
    RecoveryFacts,
    Session,
    history_file_name,
    is_recovery_conflict,
    max_timeline,
    not_caught_up_message,
    not_finished_message,
    parse_history,
    paused_refusal,
    poll_until,
    read_history,
    read_recovery_facts,
    replay_is_past,
    run_checkpoint,
    signal_promotion,
    wait_for_replay,
    wait_until_promoted,
)
from ansible_collections.pgrepl.streaming.plugins.module_utils._server import supported_server_facts

# Promoting over SQL lives in _promotion.py (handover promotes the same way); these names are also this module's.
__all__ = [
    "OUTCOME_ALREADY_PRIMARY", "OUTCOME_PROMOTED", "OUTCOME_WOULD_PROMOTE", "PROMOTE_SPEC", "CatchUp",
    "HistoryEntry", "PromoteRequest", "RecoveryFacts", "history_file_name", "is_recovery_conflict", "max_timeline",
    "not_caught_up_message", "not_finished_message", "parse_history", "paused_refusal", "poll_until",
    "promote_request", "replay_is_past", "run_promote", "signal_promotion", "validate_replay_past_lsn",
    "wait_for_replay", "wait_until_promoted",
]

WAIT_SECONDS_MAX = 86400

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


def stale_control_timeline(facts: RecoveryFacts) -> bool:
    """Whether a primary's pg_control still shows an older timeline than the one it writes (no checkpoint since
    its promotion)."""
    current = facts.timeline
    return (not facts.in_recovery and current is not None and facts.checkpoint_timeline is not None
            and facts.checkpoint_timeline < current)


def promote(session: Session, params: dict[str, Any], request: PromoteRequest, facts: RecoveryFacts,
            version_num: int, warnings: list[str]) -> dict[str, Any]:
    """Signal, wait, confirm; the result keys of a real promotion."""
    signal_promotion(session.conn)
    session.conn = wait_until_promoted(session.conn, lambda: connect(params), request.wait_seconds,
                                       poll=FAST_POLL_SECONDS)
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
            if request.checkpoint and stale_control_timeline(facts):
                # Promoted without a checkpoint since (handover promotes over a connection that may not run one):
                # pg_rewind of PostgreSQL 15 and older reads the source's timeline from pg_control only.
                tracker.record("checkpoint_timeline", facts.checkpoint_timeline, facts.timeline)
                result["changed"] = True
                result["checkpointed"] = tracker.apply and run_checkpoint(conn, warnings)
                result["msg"] += (f"; pg_control showed timeline {facts.checkpoint_timeline}: "
                                  + ("checkpointed" if tracker.apply else "a CHECKPOINT would record the current one"))
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
                                               request.wait_seconds, facts.paused, poll=FAST_POLL_SECONDS)
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
