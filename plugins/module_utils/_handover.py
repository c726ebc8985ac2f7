# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The handover module: on the old primary's host, in one process, this server fenced and stopped, then a streaming
standby (the target, reached over TCP with the connection options) promoted over SQL, or everything rolled back.

No Ansible round trip sits between the stop and the promotion, and a controller that dies half-way cannot leave two
writable servers: every step below runs here, in order, and the rollback too.

The states of a switchover (docs/runbooks.md, "Two writable primaries, never"), with the server that may accept
writes in each:

=====  ==========================================================================  =======================
state  reached when                                                                accepts writes
=====  ==========================================================================  =======================
P      this server runs read-write, the target is in recovery (the start)          this server
D      its unit will not start it at boot (``systemctl disable``, when enabled)     this server
F      ``standby.signal`` in its data directory (inert while it runs)               this server
S      fast shutdown done, pg_control says ``shut down``: its checkpoint LSN read   none (writes stop here)
C      the target's replay is past that checkpoint                                 none
R      ``pg_promote()`` sent to the target                                          none, then the target
T      the target left recovery                                                    the target (writes resume)
=====  ==========================================================================  =======================

Every state from F on is fenced: a start of this server (a reboot, ``systemctl start``) brings it up read-only. D and
F come before the stop, so they cost the write gap nothing. From D to C a failure (the stop, a target that does not
catch up within wait_seconds, an interruption) abandons the handover: this process never sent ``pg_promote()``, and
the target, when it answers, is still in recovery; only then is everything undone (``standby.signal`` removed, the
unit enabled again, this server started) and the state is P again. Once R is reached there is no rollback: at the
deadline the module fails with promotion_requested, this server stays fenced, and the target becomes the one
writable server when its promotion completes.

A failover runs the same states without the condition of C (the target is promoted with the WAL it has), and this
server may already be down (crashed): nothing is stopped then, and a rollback leaves it down as it was.

A re-run finds where an interrupted one stopped: this server stopped cleanly (fenced or not) with the target still in
recovery goes on from S; with the target promoted already, only the fence is made complete.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable

from ansible_collections.pgrepl.streaming.plugins.module_utils._connection import (
    connect,
    describe_target,
    printable,
    psycopg,
    query_dict,
)
from ansible_collections.pgrepl.streaming.plugins.module_utils._datadir import (
    SHUT_DOWN,
    SHUT_DOWN_IN_RECOVERY,
    read_postmaster,
)
from ansible_collections.pgrepl.streaming.plugins.module_utils._errors import PgreplConnectionError, PgreplError
from ansible_collections.pgrepl.streaming.plugins.module_utils._files import (
    atomic_write,
    create_signal,
    read_bytes,
    remove_quietly,
    remove_signal,
)
from ansible_collections.pgrepl.streaming.plugins.module_utils._lsn import timeline_of_wal_file
from ansible_collections.pgrepl.streaming.plugins.module_utils._module import ModuleSpec
from ansible_collections.pgrepl.streaming.plugins.module_utils._options import require_bool, require_choice, require_int
from ansible_collections.pgrepl.streaming.plugins.module_utils._osuser import lookup_os_user
from ansible_collections.pgrepl.streaming.plugins.module_utils._pgctl import find_pg_ctl, run_pg_ctl, start_command
from ansible_collections.pgrepl.streaming.plugins.module_utils._promotion import (
    FAST_POLL_SECONDS,
    PROMOTE_SIGNATURE,
    CatchUp,
    LeftRecovery,
    RecoveryFacts,
    Session,
    WaitTimeout,
    is_broken,
    not_caught_up_message,
    paused_refusal,
    read_recovery_facts,
    signal_promotion,
    wait_for_replay,
    wait_until_promoted,
)
from ansible_collections.pgrepl.streaming.plugins.module_utils._server import supported_server_facts
from ansible_collections.pgrepl.streaming.plugins.module_utils._shutdown import (
    TIMEOUT_MAX,
    StopRequest,
    read_control,
    stop_and_confirm,
    stop_plan,
    stop_request,
)
from ansible_collections.pgrepl.streaming.plugins.module_utils._systemd import systemctl, unit_enablement

MODES = ("switchover", "failover")
WAIT_SECONDS_MAX = 86400
STANDBY_SIGNAL = "standby.signal"
# Beside the data directory (never inside it: a copy or a rewind would carry it along): what an unfinished handover
# changed, so that a re-run after an interruption can undo it exactly. Removed when the handover ends either way.
JOURNAL_SUFFIX = ".pgrepl-handover"
# Each query to the target while writes are stopped gets at most this long (a frozen server answers nothing, and
# its kernel still acknowledges TCP, so keepalives would not notice); a reconnection gets as long.
QUERY_SECONDS = 3
RECONNECT_SECONDS = 3
# systemctl enable/disable and the rollback's start.
UNIT_SECONDS = 120

OUTCOME_HANDED_OVER = "handed_over"
OUTCOME_WOULD_HAND_OVER = "would_hand_over"
OUTCOME_ALREADY_PROMOTED = "already_promoted"

# Local states of this server, from postmaster.pid and pg_control (local_state).
RUNNING_PRIMARY = "running primary"
RUNNING_STANDBY = "running standby"
STOPPED_CLEAN = "stopped cleanly"
STOPPED_STANDBY = "stopped standby"
STOPPED_UNCLEAN = "stopped uncleanly"

# What is decided before anything changes (decide).
ACT_HAND_OVER = "hand_over"    # stop (when running), fence, [catch up], promote
ACT_FENCE_ONLY = "fence_only"  # the target is a primary already: make this server's fence complete

# What the run needs of the site playbook when the target refuses the connection or the promotion.
RUN_SITE = ("the replication user needs, on every node, a pg_hba entry for database postgres from this host and "
            f"EXECUTE on {PROMOTE_SIGNATURE}: pgrepl.streaming.site adds both (run site first)")

HANDOVER_SPEC = ModuleSpec({
    "mode": {"type": "str", "default": "switchover", "choices": list(MODES)},
    "data_dir": {"type": "path", "required": True},
    "bin_dir": {"type": "path"},
    "service": {"type": "str"},
    "os_user": {"type": "str", "default": "postgres"},
    "log_file": {"type": "path"},
    "stop_timeout": {"type": "int", "default": 300},
    "wait_seconds": {"type": "int", "default": 60},
    "allow_paused": {"type": "bool", "default": False},
})


# ---------------------------------------------------------------------------------------------------------------
# options
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HandoverRequest:
    """The options, validated before anything is read or run."""

    mode: str
    stop: StopRequest
    log_file: str | None
    wait_seconds: int
    allow_paused: bool
    target: str  # the target as messages name it (never a password)

    @property
    def data_dir(self) -> str:
        return self.stop.data_dir

    @property
    def journal_path(self) -> str:
        return self.stop.data_dir + JOURNAL_SUFFIX


def handover_request(params: dict[str, Any]) -> HandoverRequest:
    """Validate every option (the connection options point at the target, over TCP)."""
    mode = require_choice(params, "mode", MODES, "switchover")
    stop = stop_request({
        "data_dir": params.get("data_dir"), "bin_dir": params.get("bin_dir"), "service": params.get("service"),
        "mode": "fast", "os_user": params.get("os_user"),
        "timeout": require_int(params, "stop_timeout", 300, 1, TIMEOUT_MAX, "a number of seconds"),
        # A failover may stop a server that crashed or does not shut down cleanly; a switchover must not.
        "require_clean": mode == "switchover",
    })
    log_file = params.get("log_file")
    if log_file:
        if not os.path.isabs(log_file):
            raise PgreplError(f"log_file: {log_file!r} must be an absolute path")
    elif not stop.service:
        raise PgreplError("log_file: required without service: a rollback starts the server again with pg_ctl, which "
                          "sends its output there; give service to start it through its systemd unit")
    if not params.get("login_host"):
        raise PgreplError("login_host: give the address of the standby to promote (the target): it is reached over "
                          "TCP from this host, as the replication user, in database login_db")
    return HandoverRequest(
        mode=mode,
        stop=stop,
        log_file=os.path.normpath(log_file) if log_file else None,
        wait_seconds=require_int(params, "wait_seconds", 60, 1, WAIT_SECONDS_MAX, "a number of seconds"),
        allow_paused=require_bool(params, "allow_paused", False),
        target=describe_target(params),
    )


# ---------------------------------------------------------------------------------------------------------------
# decisions (pure)
# ---------------------------------------------------------------------------------------------------------------


def local_state(facts: dict[str, Any]) -> str:
    """This server from postmaster.pid and pg_control: running as a primary or a standby, or stopped (cleanly as a
    primary, as a standby, or without a shutdown checkpoint: a crash)."""
    state = facts.get("cluster_state")
    if facts.get("postmaster_running"):
        return RUNNING_PRIMARY if state == "in production" else RUNNING_STANDBY
    if state == SHUT_DOWN:
        return STOPPED_CLEAN
    if state == SHUT_DOWN_IN_RECOVERY:
        return STOPPED_STANDBY
    return STOPPED_UNCLEAN


@dataclass(frozen=True)
class TargetFacts:
    """The target as it answered before anything changed."""

    recovery: RecoveryFacts
    system_identifier: str | None
    version_num: int
    current_user: str


def target_problems(mode: str, request_allow_paused: bool, target: TargetFacts, system_identifier: str | None,
                    timeline: int | None) -> list[str]:
    """Why this target must not be promoted from here (only asked while it is in recovery)."""
    problems = []
    facts = target.recovery
    if system_identifier and target.system_identifier and target.system_identifier != system_identifier:
        problems.append(f"the target's system identifier is {target.system_identifier}, this data directory's "
                        f"{system_identifier}: it is a copy of another cluster")
    if not facts.may_promote:
        problems.append(f"the target's role {target.current_user!r} may not execute {PROMOTE_SIGNATURE}; {RUN_SITE}")
    if facts.paused and not request_allow_paused:
        problems.append(paused_refusal(facts.pause_state))
    if mode == "switchover" and timeline is not None and facts.timeline is not None and facts.timeline > timeline:
        problems.append(f"the target is on timeline {facts.timeline}, past this server's timeline {timeline}: it does "
                        "not follow this server's history")
    return problems


def decide(mode: str, local: str, target_in_recovery: bool) -> str:
    """ACT_HAND_OVER or ACT_FENCE_ONLY for this server's state and the target's; PgreplError when refused."""
    if local in (RUNNING_STANDBY, STOPPED_STANDBY):
        raise PgreplError(f"data_dir: this server is a standby ({local}), not the primary to hand over from; nothing "
                          "was done")
    if not target_in_recovery:
        if local == RUNNING_PRIMARY:
            raise PgreplError("the target is not in recovery while this server runs as a primary: there are two "
                              "primaries already. Nothing was done; find out which one took the writes before anything "
                              "else")
        # Promoted by an earlier run (or by hand): this stopped server only needs its fence.
        return ACT_FENCE_ONLY
    if mode == "switchover" and local == STOPPED_UNCLEAN:
        raise PgreplError("data_dir: this server is not running and was not shut down cleanly (pg_control has no "
                          "shutdown checkpoint), so its latest checkpoint is not the end of its WAL and a switchover "
                          "cannot prove the target has every commit. Nothing was done; start it so that it finishes "
                          "crash recovery, or promote the target with mode: failover")
    return ACT_HAND_OVER


def may_roll_back(promotion_sent: bool, target_in_recovery: bool | None) -> bool:
    """Whether an abandoned handover may give this server its writes back: only when this process never sent
    pg_promote() and the target does not answer as a primary (None: it did not answer)."""
    return not promotion_sent and target_in_recovery is not False


# ---------------------------------------------------------------------------------------------------------------
# what was changed (kept in a journal beside the data directory)
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class Journal:
    """What this handover (or an interrupted one before it) changed: undone by a rollback, removed at the end."""

    path: str
    unit_was_enabled: bool = False
    signal_written: bool = False
    stopped: bool = False
    promotion_sent: bool = False

    @classmethod
    def load(cls, path: str) -> Journal:
        """An interrupted handover's journal, or a new one."""
        raw = read_bytes(path, "data_dir")
        journal = cls(path)
        if raw:
            try:
                data = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                data = {}
            if isinstance(data, dict):
                journal.unit_was_enabled = data.get("unit_was_enabled") is True
                journal.signal_written = data.get("signal_written") is True
                journal.stopped = data.get("stopped") is True
                journal.promotion_sent = data.get("promotion_sent") is True
        return journal

    def save(self) -> None:
        data = {"unit_was_enabled": self.unit_was_enabled, "signal_written": self.signal_written,
                "stopped": self.stopped, "promotion_sent": self.promotion_sent, "saved": time.time()}
        atomic_write(self.path, json.dumps(data).encode("utf-8"), mode=0o600, option="data_dir")

    def remove(self) -> None:
        remove_quietly(self.path)


# ---------------------------------------------------------------------------------------------------------------
# signals: an interruption ends a wait at the next poll (the rollback then runs), a hang-up is ignored
# ---------------------------------------------------------------------------------------------------------------


class Interruption:
    """SIGTERM or SIGINT seen while changes run (they are handled at the next safe point, never mid-step)."""

    def __init__(self) -> None:
        self.reason: str | None = None

    def stop(self) -> str | None:
        return self.reason

    @contextmanager
    def handled(self) -> Iterator[None]:
        def note(signum: int, _frame: Any) -> None:
            self.reason = f"interrupted by {signal.Signals(signum).name}"

        previous = {sig: signal.signal(sig, handler) for sig, handler in
                    ((signal.SIGTERM, note), (signal.SIGINT, note), (signal.SIGHUP, signal.SIG_IGN))}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


class QueryTimeout(Exception):
    """A query to the target got no answer in time."""


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise QueryTimeout in this (main) thread when the block takes longer (SIGALRM)."""
    def expire(_signum: int, _frame: Any) -> None:
        raise QueryTimeout(f"no answer within {seconds:g}s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def bounded(run: Callable[[Any], bool]) -> Callable[[Any], bool]:
    """A poll that gets QUERY_SECONDS at most: on no answer its session is closed (the wait then reconnects)."""
    def probe(conn: Any) -> bool:
        try:
            with time_limit(QUERY_SECONDS):
                return run(conn)
        except QueryTimeout as exc:
            try:
                conn.close()
            except Exception:  # pylint: disable=broad-exception-caught
                pass
            raise psycopg.OperationalError(str(exc)) from None
    return probe


# ---------------------------------------------------------------------------------------------------------------
# the target
# ---------------------------------------------------------------------------------------------------------------


SYSTEM_QUERY = "SELECT system_identifier::text AS system_identifier FROM pg_catalog.pg_control_system()"
AFTER_QUERY = ("SELECT pg_catalog.pg_is_in_recovery() AS in_recovery,"
               " CASE WHEN pg_catalog.pg_is_in_recovery() THEN NULL"
               " ELSE pg_catalog.pg_walfile_name(pg_catalog.pg_current_wal_lsn()) END AS wal_file,"
               " pg_catalog.pg_last_wal_replay_lsn()::text AS replayed_lsn")


def connect_target(params: dict[str, Any], seconds: int | None = None) -> Any:
    """A session on the target; a failure names the cause, and what site gives, when it is a configuration one."""
    if seconds is not None:
        params = dict(params, connect_timeout=seconds)
    try:
        return connect(params)
    except PgreplConnectionError as exc:
        if exc.unreachable:
            raise
        raise PgreplConnectionError(f"{exc}; {RUN_SITE}", exc.unreachable, exc.cause) from None


def read_target(conn: Any, warnings: list[str]) -> TargetFacts:
    server = supported_server_facts(conn, warnings)
    recovery = read_recovery_facts(conn, server.version_num)
    row = query_dict(conn, SYSTEM_QUERY)
    return TargetFacts(recovery=recovery, system_identifier=(row or {}).get("system_identifier"),
                       version_num=server.version_num, current_user=server.current_user)


def target_in_recovery(params: dict[str, Any], session: Session) -> bool | None:
    """Asked again before a rollback: True or False as the target answers, None when it does not answer."""
    try:
        if is_broken(session.conn):
            session.conn = connect_target(params, RECONNECT_SECONDS)
        with time_limit(QUERY_SECONDS):
            row = query_dict(session.conn, "SELECT pg_catalog.pg_is_in_recovery() AS in_recovery")
    except (PgreplError, QueryTimeout, psycopg.Error):
        return None
    return None if row is None else bool(row["in_recovery"])


# ---------------------------------------------------------------------------------------------------------------
# this server: unit, fence, start
# ---------------------------------------------------------------------------------------------------------------


class Local:
    """This server's side: its unit at boot, standby.signal, the stop and the start."""

    def __init__(self, request: HandoverRequest) -> None:
        self.request = request
        self.signal_path = os.path.join(request.data_dir, STANDBY_SIGNAL)
        st = os.stat(request.data_dir)
        self.owner = (st.st_uid, st.st_gid)

    @property
    def fenced(self) -> bool:
        return os.path.exists(self.signal_path)

    def enablement(self) -> str | None:
        return unit_enablement(self.request.stop.service) if self.request.stop.service else None

    def disable(self) -> None:
        systemctl("disable", str(self.request.stop.service), "service", UNIT_SECONDS)

    def enable(self) -> None:
        systemctl("enable", str(self.request.stop.service), "service", UNIT_SECONDS)

    def write_signal(self) -> None:
        create_signal(self.signal_path, *self.owner)

    def remove_signal(self) -> None:
        remove_signal(self.signal_path)

    def start(self) -> str:
        """Start it again (the rollback); the command shown."""
        request = self.request
        if request.stop.service:
            systemctl("start", request.stop.service, "service", request.stop.timeout)
            return f"systemctl start {request.stop.service}"
        facts, _warnings = read_control(request.stop)
        cmd = start_command(find_pg_ctl(str(facts["pg_version"]), request.stop.bin_dir), "start", request.data_dir,
                            request.stop.timeout, str(request.log_file))
        run_pg_ctl(cmd, lookup_os_user(request.stop.os_user), request.stop.timeout, "pg_ctl start",
                   f" (see {request.log_file})")
        return " ".join(cmd)


# ---------------------------------------------------------------------------------------------------------------
# the run
# ---------------------------------------------------------------------------------------------------------------


class HandoverFailed(PgreplError):
    """The handover did not complete; ``result`` says what state it left (rolled back, or fenced)."""

    def __init__(self, message: str, result: dict[str, Any]) -> None:
        super().__init__(message)
        self.result = result


class Run:
    """One handover: the facts before, the steps (timed), the rollback."""

    def __init__(self, module: Any, request: HandoverRequest, started: float) -> None:
        self.module = module
        self.params = module.params
        self.request = request
        self.started = started
        self.warnings: list[str] = []
        self.local = Local(request)
        self.journal = Journal.load(request.journal_path)
        self.interruption = Interruption()
        self.result: dict[str, Any] = {
            "changed": False, "outcome": "", "mode": request.mode, "msg": "", "target": request.target,
            "data_dir": request.data_dir, "was_running": False, "stopped": False, "cluster_state": None,
            "checkpoint_lsn": None, "timeline_before": None, "unit_enabled_before": None, "unit_disabled": False,
            "fenced": False, "promotion_requested": False, "promoted": False, "rolled_back": False,
            "received_lsn": None, "replayed_lsn": None, "caught_up_lsn": None, "timeline_after": None,
            "promoted_at_lsn": None, "writes_stopped_seconds": None, "steps": [],
        }

    def step(self, name: str) -> None:
        """When each step ended, in seconds since the module started (the write gap can be read off them)."""
        self.result["steps"].append({"step": name, "at": round(time.monotonic() - self.started, 3)})

    def fail(self, message: str) -> HandoverFailed:
        self.result["msg"] = message
        self.result["fenced"] = self.local.fenced
        self.result["duration_seconds"] = round(time.monotonic() - self.started, 2)
        for warning in self.warnings:
            self.module.warn(warning)
        return HandoverFailed(message, self.result)


def _reconnect(run: Run, session: Session) -> Callable[[], Any]:
    """A new session on the target within RECONNECT_SECONDS (a wait keeps trying until its deadline)."""
    def reconnect() -> Any:
        try:
            with time_limit(RECONNECT_SECONDS + 1):
                session.conn = connect_target(run.params, RECONNECT_SECONDS)
        except QueryTimeout as exc:
            raise PgreplError(f"reconnecting to the target: {exc}") from None
        return session.conn
    return reconnect


def run_handover(module: Any) -> dict[str, Any]:
    """The module body: read both sides, refuse or predict, then the states P..T (or a rollback)."""
    started = time.monotonic()
    request = handover_request(module.params)
    before, warnings = read_control(request.stop)
    run = Run(module, request, started)
    result = run.result
    run.warnings.extend(warnings)
    local = local_state(before)
    result.update(was_running=bool(before.get("postmaster_running")), cluster_state=before.get("cluster_state"),
                  timeline_before=before.get("timeline"), fenced=run.local.fenced)
    plan = stop_plan(request.stop, before)  # the unit or pg_ctl refusals, also when nothing is to be stopped
    session = Session(connect_target(module.params))
    try:
        target = read_target(session.conn, run.warnings)
        action = decide(request.mode, local, target.recovery.in_recovery)
        if action == ACT_HAND_OVER:
            problems = target_problems(request.mode, request.allow_paused, target, before.get("system_identifier"),
                                       before.get("timeline"))
            if problems:
                raise PgreplError(f"the target {request.target} cannot be promoted from here: {'; '.join(problems)}. "
                                  "Nothing was done")
        enablement = run.local.enablement()
        result["unit_enabled_before"] = enablement
        if module.check_mode:
            return predicted(run, action, local, enablement)
        with run.interruption.handled():
            if action == ACT_FENCE_ONLY:
                return fence_only(run, enablement)
            return hand_over(run, session, plan, before, target, enablement)
    finally:
        session.close()


def predicted(run: Run, action: str, local: str, enablement: str | None) -> dict[str, Any]:
    result = run.result
    if action == ACT_FENCE_ONLY:
        missing = [what for what, needed in (("standby.signal", not run.local.fenced),
                                             ("its unit disabled", enablement == "enabled")) if needed]
        result.update(changed=bool(missing), outcome=OUTCOME_ALREADY_PROMOTED)
        result["msg"] = (f"the target {run.request.target} is a primary already; this server ({local}) would get "
                         f"{' and '.join(missing) if missing else 'nothing: it is fenced'}")
    else:
        what = "stopped (fast shutdown), " if local == RUNNING_PRIMARY else ""
        wait = (" once its replay is past this server's shutdown checkpoint" if run.request.mode == "switchover"
                else "")
        result.update(changed=True, outcome=OUTCOME_WOULD_HAND_OVER)
        result["msg"] = (f"this server ({local}) would be fenced, {what}and the target {run.request.target} promoted"
                         f"{wait}")
    return finish_run(run)


def finish_run(run: Run) -> dict[str, Any]:
    run.result["duration_seconds"] = round(time.monotonic() - run.started, 2)
    run.result["fenced"] = run.local.fenced
    for warning in run.warnings:
        run.module.warn(warning)
    return run.result


def fence(run: Run, enablement: str | None) -> bool:
    """Disable the unit (when enabled by its own links) and write standby.signal, journaled; whether it changed."""
    changed = False
    journal = run.journal
    if enablement == "enabled":
        journal.unit_was_enabled = True
        journal.save()
        run.local.disable()
        run.result["unit_disabled"] = changed = True
        run.step("unit disabled")
    if not run.local.fenced:
        journal.signal_written = True
        journal.save()
        run.local.write_signal()
        changed = True
        run.step("standby.signal written")
    return changed


def fence_only(run: Run, enablement: str | None) -> dict[str, Any]:
    changed = fence(run, enablement)
    run.journal.remove()
    run.result.update(changed=changed, outcome=OUTCOME_ALREADY_PROMOTED)
    run.result["msg"] = (f"the target {run.request.target} is a primary already: this server is "
                         f"{'now ' if changed else ''}fenced (standby.signal"
                         f"{', its unit disabled' if run.result['unit_disabled'] else ''})")
    return finish_run(run)


def hand_over(run: Run, session: Session, plan: Any, before: dict[str, Any], target: TargetFacts,
              enablement: str | None) -> dict[str, Any]:
    """D, F, S, C, R, T (see the module's docstring); an abandonment before R is rolled back."""
    request, result, journal = run.request, run.result, run.journal
    result["changed"] = True
    reconnect = _reconnect(run, session)
    stop_began: float | None = None
    catch_up = CatchUp(str(before.get("checkpoint_lsn")), target.recovery.received_lsn, target.recovery.replayed_lsn)
    run.step("preflight")
    try:
        fence(run, enablement)
        control = before
        if before.get("postmaster_running"):
            journal.stopped = True
            journal.save()
            stop_began = time.monotonic()
            _log, control = stop_and_confirm(request.stop, plan, run.warnings)
            run.step("stopped")
        result.update(stopped=True, cluster_state=control.get("cluster_state"),
                      checkpoint_lsn=control.get("checkpoint_lsn"), timeline_before=control.get("timeline"))
        if request.mode == "switchover" and control.get("cluster_state") != SHUT_DOWN:
            raise PgreplError(f"pg_control says {control.get('cluster_state')!r} after the stop, not {SHUT_DOWN!r}: "
                              "there is no shutdown checkpoint to promote the target past")
        catch_up.target_lsn = str(control.get("checkpoint_lsn"))
        if request.mode == "switchover":
            def late(last_error: str) -> str:
                return not_caught_up_message(catch_up.target_lsn, request.wait_seconds, catch_up.received_lsn,
                                             catch_up.replayed_lsn, target.recovery.paused, last_error, prefix="",
                                             outcome="It was not promoted")
            session.conn = wait_for_replay(session.conn, reconnect, catch_up, request.wait_seconds,
                                           target.recovery.paused, poll=FAST_POLL_SECONDS, probe=bounded,
                                           stop=run.interruption.stop, message=late)
            result["caught_up_lsn"] = catch_up.caught_up_lsn
            run.step("target caught up")
        else:
            if run.interruption.reason:
                raise WaitTimeout(run.interruption.reason)
            # What it has received right before the promotion: commits past it are lost with an async failover.
            bounded(catch_up.probe)(session.conn)
    except Exception as exc:  # pylint: disable=broad-exception-caught
        # Before pg_promote() every failure, even an unexpected one, is abandoned the same way.
        raise abandon(run, session, exc) from None
    result["received_lsn"], result["replayed_lsn"] = catch_up.received_lsn, catch_up.replayed_lsn
    # From here on there is no rollback: the promotion may have been requested even when the call fails.
    journal.promotion_sent = result["promotion_requested"] = True
    journal.save()
    try:
        with time_limit(QUERY_SECONDS):
            signal_promotion(session.conn)
        run.step("promotion requested")
        session.conn = wait_until_promoted(session.conn, reconnect, request.wait_seconds, poll=FAST_POLL_SECONDS,
                                           probe=bounded)
    except (PgreplError, psycopg.Error, QueryTimeout) as exc:
        journal.remove()
        raise run.fail(f"the promotion of the target {request.target} was requested but did not finish: "
                       f"{printable(str(exc)).strip()}. This server stays fenced (stopped, standby.signal) and is not "
                       "started again: the target becomes the primary when its promotion completes. Check "
                       "pg_is_in_recovery() on the target before anything else") from None
    result["promoted"] = True
    run.step("target promoted")
    if stop_began is not None:
        result["writes_stopped_seconds"] = round(time.monotonic() - stop_began, 3)
    journal.remove()
    after_promotion(run, session)
    result["outcome"] = OUTCOME_HANDED_OVER
    past = f" past its shutdown checkpoint {result['checkpoint_lsn']}" if request.mode == "switchover" else ""
    result["msg"] = (f"{'stopped and ' if result['was_running'] else ''}fenced this server, then promoted the target "
                     f"{request.target}{past}: timeline {result['timeline_before']} -> {result['timeline_after']} at "
                     f"{result['promoted_at_lsn']}")
    return finish_run(run)


def after_promotion(run: Run, session: Session) -> None:
    """The new timeline and where it began, as the promoted target says (outside the write gap)."""
    result = run.result
    try:
        if is_broken(session.conn):
            session.conn = connect_target(run.params, RECONNECT_SECONDS)
        with time_limit(QUERY_SECONDS):
            row = query_dict(session.conn, AFTER_QUERY)
    except (PgreplError, QueryTimeout, psycopg.Error) as exc:
        run.warnings.append(f"the target was promoted, but reading its new timeline failed: {exc}")
        return
    if row:
        result["timeline_after"] = timeline_of_wal_file(row.get("wal_file"))
        # After recovery pg_last_wal_replay_lsn() stays at the end of the last record replayed: where the new
        # timeline begins (its history file says the same, but reading it needs pg_read_file).
        result["promoted_at_lsn"] = row.get("replayed_lsn")


def abandon(run: Run, session: Session, exc: BaseException) -> HandoverFailed:
    """Before pg_promote(): prove the handover abandoned, then undo it; or keep the fence when the target answers
    as a primary already (something else promoted it) or an interrupted run had requested the promotion."""
    request, journal, result = run.request, run.journal, run.result
    why = printable(str(exc)).strip() or type(exc).__name__
    in_recovery = False if isinstance(exc, LeftRecovery) else target_in_recovery(run.params, session)
    if not may_roll_back(journal.promotion_sent, in_recovery):
        journal.remove()
        who = ("an earlier, interrupted run had requested its promotion" if journal.promotion_sent
               else f"the target {request.target} answers as a primary although this module did not promote it")
        return run.fail(f"{why}. Not rolled back: {who}. This server stays fenced (standby.signal) and stopped, so "
                        "only the target can take writes")
    switchover = request.mode == "switchover"
    undone = []
    try:
        # A switchover gives this server back its writes; a failover only undoes what it changed.
        if journal.signal_written or (switchover and run.local.fenced):
            run.local.remove_signal()
            undone.append("standby.signal removed")
        if journal.unit_was_enabled:
            run.local.enable()
            undone.append("its unit enabled again")
        if (journal.stopped or switchover) and not read_postmaster(request.data_dir)["postmaster_running"]:
            undone.append(f"started again ({run.local.start()})")
    except PgreplError as undo:
        return run.fail(f"{why}. The handover was abandoned (the target was never promoted), but undoing it failed "
                        f"after {', '.join(undone) or 'nothing'}: {undo}. Start this server as the primary yourself "
                        "(remove standby.signal, enable and start its unit)")
    journal.remove()
    result["rolled_back"] = True
    run.step("rolled back")
    state = "the target still in recovery" if in_recovery else "the target not answering"
    back = "; this server is the primary again" if switchover or journal.stopped else ""
    return run.fail(f"{why}. The {request.mode} was abandoned before any promotion was requested ({state}) and "
                    f"rolled back: {', '.join(undone) or 'nothing had changed'}{back}")


def handover_body(module: Any) -> dict[str, Any]:
    """run_handover, with a failure that changed something reported with its state (rolled_back, fenced,
    promotion_requested, ...) rather than a message alone."""
    try:
        return run_handover(module)
    except HandoverFailed as exc:
        module.fail_json(**printable(dict(exc.result)))
        raise  # fail_json exits; this line is for the type checker
