# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Physical replication slots: read one, decide what a run would change, create or drop it."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.pgrepl.streaming.plugins.module_utils._changes import ChangeTracker
from ansible_collections.pgrepl.streaming.plugins.module_utils._connection import (
    connect,
    psycopg,
    query_dict,
    query_one,
    sql,
)
from ansible_collections.pgrepl.streaming.plugins.module_utils._errors import PgreplError
from ansible_collections.pgrepl.streaming.plugins.module_utils._lsn import parse_lsn
from ansible_collections.pgrepl.streaming.plugins.module_utils._module import ModuleSpec
from ansible_collections.pgrepl.streaming.plugins.module_utils._names import validate_slot_name
from ansible_collections.pgrepl.streaming.plugins.module_utils._options import (
    require_bool,
    require_choice,
    require_int,
)
from ansible_collections.pgrepl.streaming.plugins.module_utils._server import supported_server_facts

STATES = ("present", "absent")
# How long a forced drop waits for the slot to be released after terminating its walsender.
FORCE_WAIT_SECONDS = 10.0
MAX_WAIT_INACTIVE = 3600
POLL_SECONDS = 0.2
# SQLSTATE object_in_use: pg_drop_replication_slot on a slot some process holds.
SQLSTATE_OBJECT_IN_USE = "55006"
# How pg_lsn prints: two hexadecimal 32-bit halves.

if sql is not None:
    SLOT_QUERY = sql.SQL(
        "SELECT s.slot_name, s.slot_type, s.plugin, s.temporary, s.active, s.active_pid,"
        " s.restart_lsn::text AS restart_lsn, s.wal_status, s.safe_wal_size"
        " FROM pg_catalog.pg_replication_slots AS s WHERE s.slot_name = %s"
    )
    # Only the chosen branch of a CASE runs, so a standby never calls pg_current_wal_lsn() (an error there).
    CURRENT_LSN_QUERY = sql.SQL(
        "SELECT (CASE WHEN pg_catalog.pg_is_in_recovery() THEN pg_catalog.pg_last_wal_receive_lsn()"
        " ELSE pg_catalog.pg_current_wal_lsn() END)::text"
    )
    REPLICATION_ATTRIBUTE_QUERY = sql.SQL(
        "SELECT r.rolreplication FROM pg_catalog.pg_roles AS r WHERE r.rolname = current_user"
    )
    CREATE_QUERY = sql.SQL("SELECT pg_catalog.pg_create_physical_replication_slot(%s, %s)")
    DROP_QUERY = sql.SQL("SELECT pg_catalog.pg_drop_replication_slot(%s)")
    TERMINATE_QUERY = sql.SQL("SELECT pg_catalog.pg_terminate_backend(%s)")


@dataclass(frozen=True)
class SlotRequest:
    """The module's options after validation."""

    name: str
    state: str = "present"
    immediately_reserve: bool = False
    force: bool = False
    allow_on_standby: bool = False
    # state=absent: seconds an active slot is waited for (its consumer is moving to another node) before the drop
    # is refused; 0 refuses at once.
    wait_inactive: int = 0


@dataclass(frozen=True)
class SlotPlan:
    """What a run does: 'create', 'drop' or 'none', and which walsenders a forced drop terminates."""

    action: str
    terminate_pids: tuple[int, ...] = ()


@dataclass
class SlotOutcome:
    """Everything the module reports."""

    result: dict[str, Any]
    diff: dict[str, Any]
    warnings: list[str] = field(default_factory=list)


def request_from_params(params: dict[str, Any]) -> SlotRequest:
    """Validate the options before any connection is opened."""
    name = validate_slot_name(params.get("name"), "name")
    state = require_choice(params, "state", STATES, "present")
    return SlotRequest(
        name=name,
        state=state,
        immediately_reserve=require_bool(params, "immediately_reserve"),
        force=require_bool(params, "force"),
        allow_on_standby=require_bool(params, "allow_on_standby"),
        wait_inactive=require_int(params, "wait_inactive", 0, 0, MAX_WAIT_INACTIVE, "a number of seconds"),
    )


def retained_bytes(current_lsn: str | None, restart_lsn: str | None) -> int | None:
    """Bytes of WAL a slot holds back: current position minus restart_lsn (never negative).

    None when the slot reserves nothing (restart_lsn null) or the server has no current position
    (a standby that has not received any WAL from a walreceiver yet).
    """
    if restart_lsn is None or current_lsn is None:
        return None
    return max(0, parse_lsn(current_lsn) - parse_lsn(restart_lsn))


def slot_result(row: dict[str, Any] | None, current_lsn: str | None) -> dict[str, Any] | None:
    """The `slot` return value from a pg_replication_slots row (None when there is no slot)."""
    if row is None:
        return None
    restart_lsn = row.get("restart_lsn")
    return {
        "name": row["slot_name"],
        "slot_type": row["slot_type"],
        "active": bool(row.get("active")),
        "active_pid": row.get("active_pid"),
        "restart_lsn": restart_lsn,
        "wal_status": row.get("wal_status"),
        "safe_wal_size": row.get("safe_wal_size"),
        "retained_bytes": retained_bytes(current_lsn, restart_lsn),
        "reserved": restart_lsn is not None,
    }


def slot_state(row: dict[str, Any] | None) -> dict[str, bool]:
    """What diff mode shows of a slot: whether it exists and whether it reserves WAL."""
    return {"present": row is not None, "reserved": row is not None and row.get("restart_lsn") is not None}


def require_slot_privilege(current_user: str, is_superuser: bool, has_replication: bool) -> None:
    """pg_create_physical_replication_slot and pg_drop_replication_slot need SUPERUSER or REPLICATION."""
    if not (is_superuser or has_replication):
        raise PgreplError(
            f"login_user: the role {current_user!r} has neither the SUPERUSER nor the REPLICATION attribute, "
            "and creating or dropping replication slots needs one of them "
            f"(ALTER ROLE {current_user} REPLICATION, or connect as a superuser)"
        )


def awaits_release(request: SlotRequest, row: dict[str, Any] | None) -> bool:
    """Whether a drop first waits for the slot's consumer to let go (wait_inactive, without force)."""
    return (request.state == "absent" and not request.force and request.wait_inactive > 0 and row is not None
            and row.get("slot_type") == "physical" and bool(row.get("active")))


def wait_released(conn: Any, name: str, seconds: float) -> dict[str, Any] | None:
    """The slot's row once no process uses it (or it is gone), or as it is when the time is up."""
    deadline = time.monotonic() + seconds
    while True:
        row = read_slot(conn, name)
        if row is None or not row.get("active") or time.monotonic() >= deadline:
            return row
        time.sleep(POLL_SECONDS)


def plan_slot(request: SlotRequest, row: dict[str, Any] | None, in_recovery: bool, waited: int = 0) -> SlotPlan:
    """Decide from facts alone what a run does, or refuse with a message that names the option. ``waited``: the
    seconds an active slot was already waited for (named in the refusal)."""
    name = request.name
    if row is not None and row.get("slot_type") != "physical":
        raise PgreplError(
            f"name: a {row.get('slot_type')} replication slot named {name!r} exists "
            f"(plugin {row.get('plugin')!r}); this module manages physical slots only and leaves it alone: "
            "choose another name, or drop the logical slot yourself if it is no longer used"
        )
    if request.state == "present":
        if row is None:
            if in_recovery and not request.allow_on_standby:
                raise PgreplError(
                    f"allow_on_standby: the server is a standby (pg_is_in_recovery() is true) and creating the "
                    f"slot {name!r} there is refused while allow_on_standby is false; set allow_on_standby: true "
                    "to create it for a cascading standby, or connect to the primary"
                )
            return SlotPlan("create")
        if row.get("temporary"):
            raise PgreplError(
                f"name: {name!r} is a temporary slot of session {row.get('active_pid')} and goes away with it; "
                "it cannot be made permanent: choose another name or run again once that session has ended"
            )
        return SlotPlan("none")
    if row is None:
        return SlotPlan("none")
    if row.get("active"):
        pid = row.get("active_pid")
        if not request.force:
            still = f" still after waiting {waited} s (wait_inactive)" if waited else ""
            raise PgreplError(
                f"force: the slot {name!r} is active (used by process {pid}){still} and force is false: refusing to "
                "drop it; stop its consumer first, or set force: true to terminate that walsender and drop the slot"
            )
        return SlotPlan("drop", (int(pid),) if pid is not None else ())
    return SlotPlan("drop")


def reserve_mismatch_warning(request: SlotRequest, row: dict[str, Any] | None) -> str | None:
    """A warning when immediately_reserve is true but the existing slot reserves nothing (it is not recreated).

    The reverse (a slot that reserves WAL although immediately_reserve is false) is the normal life of a slot:
    it reserves from the moment its first consumer streams through it, so it is not reported.
    """
    if request.state != "present" or row is None or not request.immediately_reserve:
        return None
    if row.get("restart_lsn") is not None:
        return None
    return (
        f"immediately_reserve is true but the existing slot {request.name!r} reserves no WAL "
        f"(restart_lsn is null, wal_status {row.get('wal_status')!r}); it is left as it is (not dropped "
        "and recreated): drop it yourself if it must reserve WAL before its first consumer connects"
    )


def read_slot(conn: Any, name: str) -> dict[str, Any] | None:
    return query_dict(conn, SLOT_QUERY, (name,))


def read_current_lsn(conn: Any) -> str | None:
    row = query_one(conn, CURRENT_LSN_QUERY)
    return row[0] if row else None


def read_replication_attribute(conn: Any) -> bool:
    """Whether the current role has the REPLICATION attribute (not inherited through membership)."""
    row = query_one(conn, REPLICATION_ATTRIBUTE_QUERY)
    return bool(row[0]) if row else False


def terminate_walsender(conn: Any, name: str, pid: int) -> None:
    try:
        query_one(conn, TERMINATE_QUERY, (pid,))
    except psycopg.Error as exc:
        raise PgreplError(
            f"force: cannot terminate process {pid}, which uses the slot {name!r}: {str(exc).strip()} "
            "(a superuser walsender can only be terminated by a superuser)"
        ) from None


def drop_slot(conn: Any, name: str, force: bool, timeout: float = FORCE_WAIT_SECONDS) -> list[int]:
    """Drop a slot; with force, terminate whatever walsender holds it first. Returns the terminated PIDs.

    A consumer can reconnect between the termination and the drop, so this loops until the drop
    succeeds or the time is up, terminating each new holder (force only).
    """
    terminated: list[int] = []
    deadline = time.monotonic() + timeout
    while True:
        row = read_slot(conn, name)
        if row is None:
            return terminated
        pid = row.get("active_pid")
        if row.get("active"):
            if not force:
                raise PgreplError(
                    f"force: the slot {name!r} became active (used by process {pid}) and force is false: "
                    "refusing to drop it"
                )
            if pid is not None and pid not in terminated:
                terminate_walsender(conn, name, int(pid))
                terminated.append(int(pid))
        else:
            try:
                query_one(conn, DROP_QUERY, (name,))
                return terminated
            except psycopg.Error as exc:
                if exc.sqlstate != SQLSTATE_OBJECT_IN_USE or not force:
                    raise PgreplError(f"name: cannot drop the slot {name!r}: {str(exc).strip()}") from None
        if time.monotonic() >= deadline:
            raise PgreplError(
                f"force: the slot {name!r} was still in use {timeout:g} s after terminating process(es) "
                f"{', '.join(str(p) for p in terminated) or '(none)'}; nothing was dropped"
            )
        time.sleep(POLL_SECONDS)


def manage_slot(conn: Any, request: SlotRequest, check_mode: bool) -> SlotOutcome:
    """Bring one slot to the requested state (or, in check mode, say what that would change)."""
    warnings: list[str] = []
    facts = supported_server_facts(conn, warnings)
    require_slot_privilege(facts.current_user, facts.is_superuser, read_replication_attribute(conn))

    row = read_slot(conn, request.name)
    if awaits_release(request, row):
        if check_mode:
            # The real run waits for its consumer to move away (as the roles' own runs make it do first).
            warnings.append(f"check mode: the slot {request.name!r} is active (used by process "
                            f"{row.get('active_pid')}); a real run waits up to {request.wait_inactive} s for it to "
                            "be released before dropping it, and refuses if it is still in use then")
            plan = SlotPlan("drop")
        else:
            row = wait_released(conn, request.name, request.wait_inactive)
            plan = plan_slot(request, row, facts.in_recovery, waited=request.wait_inactive)
    else:
        plan = plan_slot(request, row, facts.in_recovery)
    mismatch = reserve_mismatch_warning(request, row)
    if mismatch:
        warnings.append(mismatch)

    before = slot_state(row)
    if plan.action == "create":
        after = {"present": True, "reserved": request.immediately_reserve}
    elif plan.action == "drop":
        after = {"present": False, "reserved": False}
    else:
        after = dict(before)
    tracker = ChangeTracker(check_mode)
    for key in ("present", "reserved"):
        tracker.record(key, before[key], after[key])

    terminated: list[int] = list(plan.terminate_pids)
    if tracker.apply and plan.action == "create":
        try:
            query_one(conn, CREATE_QUERY, (request.name, request.immediately_reserve))
        except psycopg.Error as exc:
            raise PgreplError(f"name: cannot create the slot {request.name!r}: {str(exc).strip()}") from None
    elif tracker.apply and plan.action == "drop":
        terminated = drop_slot(conn, request.name, request.force)

    if tracker.apply and plan.action != "none":
        row = read_slot(conn, request.name)
    result: dict[str, Any] = {
        "changed": tracker.changed,
        "slot": slot_result(row, read_current_lsn(conn) if row is not None else None),
        "in_recovery": facts.in_recovery,
        "reserve_mismatch": mismatch is not None,
        "terminated_pids": terminated,
    }
    return SlotOutcome(result=result, diff=tracker.diff(), warnings=warnings)


REPLICATION_SLOT_SPEC = ModuleSpec({
    "name": {"type": "str", "required": True},
    "state": {"type": "str", "default": "present", "choices": ["present", "absent"]},
    "immediately_reserve": {"type": "bool", "default": False},
    "force": {"type": "bool", "default": False},
    "allow_on_standby": {"type": "bool", "default": False},
    "wait_inactive": {"type": "int", "default": 0},
})


def run_replication_slot(module: Any) -> dict[str, Any]:
    """Body of the replication_slot module: validate, connect, manage, report."""
    request = request_from_params(module.params)
    conn = connect(module.params)
    try:
        outcome = manage_slot(conn, request, module.check_mode)
    except psycopg.Error as exc:
        raise PgreplError(f"name: managing the slot {request.name!r} failed: {str(exc).strip()}") from None
    finally:
        conn.close()
    for warning in outcome.warnings:
        module.warn(warning)
    result = outcome.result
    if module._diff:
        result["diff"] = outcome.diff
    return result
