# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Replication slots' pure logic: options, LSN arithmetic, the returned dict, the plan and its refusals."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from ansible_collections.pgrepl.streaming.plugins.module_utils import _slots
from ansible_collections.pgrepl.streaming.plugins.module_utils._errors import PgreplError
from ansible_collections.pgrepl.streaming.plugins.module_utils._slots import (
    SlotPlan,
    SlotRequest,
    awaits_release,
    plan_slot,
    request_from_params,
    require_slot_privilege,
    reserve_mismatch_warning,
    retained_bytes,
    slot_result,
    slot_state,
)


def row(**overrides: Any) -> dict[str, Any]:
    """A pg_replication_slots row as the module reads it."""
    base: dict[str, Any] = {
        "slot_name": "db2", "slot_type": "physical", "plugin": None, "temporary": False, "active": False,
        "active_pid": None, "restart_lsn": None, "wal_status": None, "safe_wal_size": None,
    }
    base.update(overrides)
    return base


# ---------------------------------------------------------------- options

def test_request_defaults() -> None:
    assert request_from_params({"name": "db2"}) == SlotRequest("db2", "present", False, False, False)


def test_request_keeps_every_option() -> None:
    params = {"name": "db2", "state": "absent", "immediately_reserve": True, "force": True, "allow_on_standby": True,
              "wait_inactive": 30}
    assert request_from_params(params) == SlotRequest("db2", "absent", True, True, True, 30)


@pytest.mark.parametrize(("params", "message"), [
    ({"name": "Db2"}, "name: 'Db2' is not a valid slot name"),
    ({"name": None}, "name: None is not a valid slot name"),
    ({"name": "db2", "state": "gone"}, "state: 'gone' is not one of present, absent"),
    ({"name": "db2", "force": "yes"}, "force: 'yes' is not a boolean"),
    ({"name": "db2", "immediately_reserve": 1}, "immediately_reserve: 1 is not a boolean"),
    ({"name": "db2", "allow_on_standby": "true"}, "allow_on_standby: 'true' is not a boolean"),
    ({"name": "db2", "wait_inactive": -1}, "wait_inactive: -1 is not a number of seconds (0-3600)"),
    ({"name": "db2", "wait_inactive": "10"}, "wait_inactive: '10' is not an integer"),
])
def test_request_refuses_bad_options(params: dict[str, Any], message: str) -> None:
    with pytest.raises(PgreplError) as err:
        request_from_params(params)
    assert str(err.value).startswith(message)


# ---------------------------------------------------------------- LSNs and retained bytes

def test_retained_bytes() -> None:
    assert retained_bytes("0/3000148", "0/3000000") == 0x148
    # Across the 4 GiB boundary between the two halves of an LSN.
    assert retained_bytes("1/100", "0/FFFFFF00") == 0x200
    assert retained_bytes("0/3000000", "0/3000000") == 0


def test_retained_bytes_is_null_without_a_reservation_or_a_position() -> None:
    assert retained_bytes("0/3000000", None) is None
    assert retained_bytes(None, "0/3000000") is None
    assert retained_bytes(None, None) is None


def test_retained_bytes_never_negative() -> None:
    # A standby's receive position can lag a slot it created from its replay position.
    assert retained_bytes("0/2000000", "0/3000000") == 0


# ---------------------------------------------------------------- the returned dict

def test_slot_result_of_a_reserving_active_slot() -> None:
    result = slot_result(row(active=True, active_pid=4242, restart_lsn="0/3000000", wal_status="reserved",
                             safe_wal_size=1024), "0/3000400")
    assert result == {
        "name": "db2", "slot_type": "physical", "active": True, "active_pid": 4242, "restart_lsn": "0/3000000",
        "wal_status": "reserved", "safe_wal_size": 1024, "retained_bytes": 0x400, "reserved": True,
    }


def test_slot_result_of_an_unreserved_slot() -> None:
    result = slot_result(row(), "0/3000400")
    assert result is not None
    assert result["reserved"] is False and result["retained_bytes"] is None and result["restart_lsn"] is None
    assert result["active"] is False and result["active_pid"] is None


def test_slot_result_without_slot() -> None:
    assert slot_result(None, "0/1") is None


def test_slot_state_for_diff() -> None:
    assert slot_state(None) == {"present": False, "reserved": False}
    assert slot_state(row()) == {"present": True, "reserved": False}
    assert slot_state(row(restart_lsn="0/1")) == {"present": True, "reserved": True}


# ---------------------------------------------------------------- privileges

def test_superuser_or_replication_is_enough() -> None:
    require_slot_privilege("postgres", True, False)
    require_slot_privilege("replicator", False, True)


def test_neither_is_refused() -> None:
    with pytest.raises(PgreplError, match=r"^login_user: the role 'app' has neither the SUPERUSER nor the "
                                          r"REPLICATION attribute"):
        require_slot_privilege("app", False, False)


# ---------------------------------------------------------------- the plan

def test_create_when_missing() -> None:
    assert plan_slot(SlotRequest("db2"), None, in_recovery=False) == SlotPlan("create")


def test_nothing_when_present() -> None:
    assert plan_slot(SlotRequest("db2"), row(), in_recovery=False) == SlotPlan("none")
    assert plan_slot(SlotRequest("db2", immediately_reserve=True), row(), False) == SlotPlan("none")


def test_create_on_standby_refused_without_allow_on_standby() -> None:
    with pytest.raises(PgreplError) as err:
        plan_slot(SlotRequest("db3"), None, in_recovery=True)
    message = str(err.value)
    assert message.startswith("allow_on_standby: the server is a standby (pg_is_in_recovery() is true)")
    assert "'db3'" in message


def test_create_on_standby_with_allow_on_standby() -> None:
    assert plan_slot(SlotRequest("db3", allow_on_standby=True), None, in_recovery=True) == SlotPlan("create")


def test_existing_slot_on_standby_needs_no_allow() -> None:
    assert plan_slot(SlotRequest("db3"), row(slot_name="db3"), in_recovery=True) == SlotPlan("none")


def test_drop_on_standby_needs_no_allow() -> None:
    assert plan_slot(SlotRequest("db3", "absent"), row(slot_name="db3"), in_recovery=True) == SlotPlan("drop")


@pytest.mark.parametrize("state", ["present", "absent"])
@pytest.mark.parametrize("force", [False, True])
def test_logical_slot_of_that_name_refused(state: str, force: bool) -> None:
    logical = row(slot_type="logical", plugin="pgoutput", restart_lsn="0/1")
    with pytest.raises(PgreplError) as err:
        plan_slot(SlotRequest("db2", state, force=force, allow_on_standby=True), logical, in_recovery=False)
    message = str(err.value)
    assert message.startswith("name: a logical replication slot named 'db2' exists (plugin 'pgoutput')")
    assert "physical slots only" in message


def test_temporary_slot_cannot_become_permanent() -> None:
    with pytest.raises(PgreplError, match=r"^name: 'db2' is a temporary slot of session 77"):
        plan_slot(SlotRequest("db2"), row(temporary=True, active=True, active_pid=77), in_recovery=False)


def test_drop_missing_is_nothing() -> None:
    assert plan_slot(SlotRequest("db2", "absent"), None, in_recovery=False) == SlotPlan("none")


def test_drop_inactive() -> None:
    assert plan_slot(SlotRequest("db2", "absent"), row(restart_lsn="0/1"), in_recovery=False) == SlotPlan("drop")


def test_drop_active_refused_without_force() -> None:
    with pytest.raises(PgreplError) as err:
        plan_slot(SlotRequest("db2", "absent"), row(active=True, active_pid=4242), in_recovery=False)
    message = str(err.value)
    assert message.startswith("force: the slot 'db2' is active (used by process 4242) and force is false")


def test_drop_active_with_force_terminates_its_walsender() -> None:
    plan = plan_slot(SlotRequest("db2", "absent", force=True), row(active=True, active_pid=4242), False)
    assert plan == SlotPlan("drop", (4242,))


# ---------------------------------------------------------------- reservation mismatch

def test_no_mismatch_when_reservation_matches() -> None:
    assert reserve_mismatch_warning(SlotRequest("db2"), row()) is None
    assert reserve_mismatch_warning(SlotRequest("db2", immediately_reserve=True), row(restart_lsn="0/1")) is None


def test_no_mismatch_without_slot_or_when_dropping() -> None:
    assert reserve_mismatch_warning(SlotRequest("db2", immediately_reserve=True), None) is None
    assert reserve_mismatch_warning(SlotRequest("db2", "absent", immediately_reserve=True), row()) is None


def test_mismatch_wanted_reserved_but_is_not() -> None:
    warning = reserve_mismatch_warning(SlotRequest("db2", immediately_reserve=True), row(wal_status="lost"))
    assert warning is not None
    assert warning.startswith("immediately_reserve is true but the existing slot 'db2' reserves no WAL")
    assert "'lost'" in warning and "not dropped" in warning


def test_reserved_but_not_asked_for_is_normal() -> None:
    # A slot reserves WAL once a standby streams through it, whatever it was created with.
    assert reserve_mismatch_warning(SlotRequest("db2"), row(restart_lsn="0/3000000")) is None


# ---------------------------------------------------------------- forced drop loop (the SQL calls faked)

class FakeServer:
    """Stands in for read_slot/query_one/terminate_walsender: slot rows in sequence, drop outcomes in sequence."""

    def __init__(self, rows: list[dict[str, Any] | None], drop_errors: list[Exception | None]) -> None:
        self.rows = rows
        self.drop_errors = drop_errors
        self.terminated: list[int] = []
        self.drops = 0

    def read_slot(self, conn: Any, name: str) -> dict[str, Any] | None:
        return self.rows.pop(0) if len(self.rows) > 1 else self.rows[0]

    def query_one(self, conn: Any, query: Any, args: Any = None) -> tuple | None:
        assert query is _slots.DROP_QUERY
        self.drops += 1
        error = self.drop_errors.pop(0) if self.drop_errors else None
        if error is not None:
            raise error
        return (None,)

    def terminate(self, conn: Any, name: str, pid: int) -> None:
        self.terminated.append(pid)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Any:
    def install(rows: list[dict[str, Any] | None], drop_errors: list[Exception | None] | None = None) -> FakeServer:
        server = FakeServer(rows, drop_errors or [])
        monkeypatch.setattr(_slots, "read_slot", server.read_slot)
        monkeypatch.setattr(_slots, "query_one", server.query_one)
        monkeypatch.setattr(_slots, "terminate_walsender", server.terminate)
        monkeypatch.setattr(_slots, "POLL_SECONDS", 0.0)
        return server
    return install


def test_drop_inactive_slot_once(fake: Any) -> None:
    server = fake([row()])
    assert _slots.drop_slot(None, "db2", force=False) == []
    assert server.drops == 1 and server.terminated == []


def test_forced_drop_terminates_then_drops(fake: Any) -> None:
    server = fake([row(active=True, active_pid=10), row(active=True, active_pid=10), row()])
    assert _slots.drop_slot(None, "db2", force=True) == [10]
    assert server.terminated == [10] and server.drops == 1


def test_forced_drop_terminates_a_consumer_that_reconnected(fake: Any) -> None:
    in_use = psycopg.errors.ObjectInUse("replication slot \"db2\" is active for PID 11")
    server = fake([row(active=True, active_pid=10), row(), row(active=True, active_pid=11), row()], [in_use])
    assert _slots.drop_slot(None, "db2", force=True) == [10, 11]
    assert server.drops == 2


def test_drop_without_force_refuses_a_slot_that_became_active(fake: Any) -> None:
    server = fake([row(active=True, active_pid=12)])
    with pytest.raises(PgreplError, match=r"^force: the slot 'db2' became active \(used by process 12\)"):
        _slots.drop_slot(None, "db2", force=False)
    assert server.drops == 0 and server.terminated == []


def test_drop_of_a_slot_someone_else_dropped(fake: Any) -> None:
    server = fake([None])
    assert _slots.drop_slot(None, "db2", force=True) == []
    assert server.drops == 0


def test_forced_drop_gives_up_after_the_timeout(fake: Any) -> None:
    server = fake([row(active=True, active_pid=10)])
    with pytest.raises(PgreplError, match=r"^force: the slot 'db2' was still in use 0 s after terminating .*10"):
        _slots.drop_slot(None, "db2", force=True, timeout=0.0)
    assert server.terminated == [10] and server.drops == 0


def test_other_drop_errors_are_reported(fake: Any) -> None:
    fake([row()], [psycopg.errors.InsufficientPrivilege("permission denied")])
    with pytest.raises(PgreplError, match=r"^name: cannot drop the slot 'db2': permission denied"):
        _slots.drop_slot(None, "db2", force=True)


# ---------------------------------------------------------------- waiting for an active slot to be released

@pytest.mark.parametrize(("request_", "current", "waits"), [
    (SlotRequest("db2", "absent", wait_inactive=10), row(active=True, active_pid=7), True),
    (SlotRequest("db2", "absent", wait_inactive=10), row(), False),  # inactive: dropped at once
    (SlotRequest("db2", "absent", wait_inactive=10), None, False),
    (SlotRequest("db2", "absent"), row(active=True, active_pid=7), False),  # 0: refused at once
    (SlotRequest("db2", "absent", force=True, wait_inactive=10), row(active=True, active_pid=7), False),
    (SlotRequest("db2", "present", wait_inactive=10), row(active=True, active_pid=7), False),
    (SlotRequest("db2", "absent", wait_inactive=10), row(active=True, slot_type="logical", plugin="x"), False),
])
def test_only_a_drop_without_force_of_an_active_physical_slot_waits(
        request_: SlotRequest, current: Any, waits: bool) -> None:
    assert awaits_release(request_, current) is waits


def test_a_slot_still_active_after_the_wait_is_refused_saying_so() -> None:
    with pytest.raises(PgreplError, match=r"^force: the slot 'db2' is active \(used by process 7\) still after "
                                          r"waiting 10 s \(wait_inactive\) and force is false"):
        plan_slot(SlotRequest("db2", "absent", wait_inactive=10), row(active=True, active_pid=7), False, waited=10)
