"""pgrepl.streaming.replication_slot through ansible-playbook against the bench's real primary and standby."""

from __future__ import annotations

import os
import pwd
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from ansible_runner import run_module
from cluster import Clusters, PgCluster, free_port

MODULE = "replication_slot"
CANARY_SLOT = "replication_slot_canary"
CANARY_TABLE = "replication_slot_canary_table"
NOPRIV_ROLE = "replication_slot_nopriv"
NOPRIV_PASSWORD = "replication-slot-nopriv-pw"
REPL_ROLE = "replication_slot_repl"
REPL_PASSWORD = "replication-slot-repl-pw"

# (cluster, slot name) pairs a test asks to have dropped afterwards.
Cleanup = list[tuple[PgCluster, str]]
# (id, module args built from the primary, texts the failure message must contain)
BadCase = tuple[str, Callable[[PgCluster], dict[str, Any]], list[str]]


# ---------------------------------------------------------------- helpers

def slot_row(cluster: PgCluster, name: str) -> dict[str, Any] | None:
    """The slot as the server sees it, or None."""
    rows = cluster.sql(
        "SELECT slot_type, restart_lsn::text, active, active_pid, temporary FROM pg_replication_slots"
        " WHERE slot_name = %s", (name,))
    if not rows:
        return None
    slot_type, restart_lsn, active, active_pid, temporary = rows[0]
    return {"slot_type": slot_type, "restart_lsn": restart_lsn, "active": active, "active_pid": active_pid,
            "temporary": temporary}


def slot_names(cluster: PgCluster) -> set[str]:
    return {row[0] for row in cluster.sql("SELECT slot_name FROM pg_replication_slots")}


def drop_if_exists(cluster: PgCluster, name: str) -> None:
    """Cleanup: terminate a holder if any, then drop (never used on bench_standby)."""
    assert name != "bench_standby"
    for _attempt in range(50):
        row = slot_row(cluster, name)
        if row is None:
            return
        if row["active"] and row["active_pid"]:
            cluster.sql("SELECT pg_terminate_backend(%s)", (row["active_pid"],))
            time.sleep(0.2)
            continue
        try:
            cluster.sql("SELECT pg_drop_replication_slot(%s)", (name,))
            return
        except psycopg.errors.ObjectInUse:
            time.sleep(0.2)
    raise AssertionError(f"could not drop test slot {name}")


class LogWatch:
    """The part of a server log written after this object was made."""

    def __init__(self, cluster: PgCluster) -> None:
        self.cluster = cluster
        self.offset = len(cluster.log_text())

    def new_text(self) -> str:
        return self.cluster.log_text()[self.offset:]


MUTATING_FUNCTIONS = ("pg_create_physical_replication_slot", "pg_drop_replication_slot", "pg_terminate_backend")


def assert_no_mutation_logged(watch: LogWatch) -> None:
    text = watch.new_text()
    # The module did connect and read (so the watch is not empty by accident) ...
    assert "pg_replication_slots" in text, text[-2000:]
    # ... and sent no statement that changes anything.
    for function in MUTATING_FUNCTIONS:
        assert function not in text, f"{function} was sent:\n{text[-3000:]}"


def wait_for(predicate: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def standby_caught_up(primary: PgCluster, standby: PgCluster) -> None:
    lsn = primary.scalar("SELECT pg_current_wal_lsn()::text")
    wait_for(lambda: bool(standby.scalar("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,))),
             what="standby replay")


def as_postgres_cmd(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def chown_postgres(path: Path) -> None:
    if os.geteuid() == 0:
        entry = pwd.getpwnam("postgres")
        os.chown(path, entry.pw_uid, entry.pw_gid)


# ---------------------------------------------------------------- fixtures

@pytest.fixture
def slots_to_clean(primary: PgCluster) -> Iterator[Cleanup]:
    """Tests append (cluster, slot) pairs; each is dropped afterwards whatever happened."""
    pairs: Cleanup = []
    yield pairs
    for cluster, name in pairs:
        drop_if_exists(cluster, name)


@pytest.fixture
def receivewal(primary: PgCluster) -> Iterator[Callable[[str], subprocess.Popen]]:
    """Start a real WAL consumer (pg_receivewal --no-loop) on a slot of the primary, as the postgres OS user."""
    procs: list[subprocess.Popen] = []
    counter = [0]

    def start(slot: str) -> subprocess.Popen:
        counter[0] += 1
        target = primary.base / f"replication_slot_receivewal_{os.getpid()}_{slot}_{counter[0]}"
        target.mkdir()
        chown_postgres(target)
        cmd = [str(primary.bin_dir / "pg_receivewal"), "-h", str(primary.socket_dir), "-p", str(primary.port),
               "-U", "postgres", "-w", "--no-loop", f"--slot={slot}", "-D", str(target)]
        proc = subprocess.Popen(as_postgres_cmd(cmd), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        procs.append(proc)
        wait_for(lambda: bool((slot_row(primary, slot) or {}).get("active")) or proc.poll() is not None,
                 what=f"pg_receivewal to use {slot}")
        assert proc.poll() is None, f"pg_receivewal exited: {proc.communicate()[0]}"
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


@pytest.fixture(scope="module")
def canary(primary: PgCluster) -> Iterator[None]:
    """A slot and a table that bad inputs must leave alone."""
    drop_if_exists(primary, CANARY_SLOT)
    primary.sql("SELECT pg_create_physical_replication_slot(%s)", (CANARY_SLOT,))
    primary.sql(sql.SQL("CREATE TABLE IF NOT EXISTS {} (id int)").format(sql.Identifier(CANARY_TABLE)))
    yield
    drop_if_exists(primary, CANARY_SLOT)
    primary.sql(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(CANARY_TABLE)))


@pytest.fixture(scope="module")
def login_roles(primary: PgCluster) -> Iterator[None]:
    """A login role with neither SUPERUSER nor REPLICATION, and one with REPLICATION only."""
    for role, password, attrs in ((NOPRIV_ROLE, NOPRIV_PASSWORD, "NOSUPERUSER NOREPLICATION"),
                                  (REPL_ROLE, REPL_PASSWORD, "NOSUPERUSER REPLICATION")):
        primary.sql(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
        primary.sql(sql.SQL("CREATE ROLE {} LOGIN " + attrs + " PASSWORD {}").format(
            sql.Identifier(role), sql.Literal(password)))
    yield
    for role in (NOPRIV_ROLE, REPL_ROLE):
        primary.sql(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


@pytest.fixture(scope="module")
def logical_cluster(throwaway: Clusters) -> PgCluster:
    """A server of our own with wal_level=logical, holding a logical slot named like a physical one would be."""
    cluster = throwaway.server("replication_slot_logical", conf="wal_level = logical\n")
    cluster.sql("SELECT pg_create_logical_replication_slot(%s, 'test_decoding')", ("replication_slot_logical",))
    return cluster


# ---------------------------------------------------------------- creating on the primary

def test_create_unreserved_check_then_real_then_idempotent(
        primary: PgCluster, slots_to_clean: Cleanup) -> None:
    name = "replication_slot_create"
    slots_to_clean.append((primary, name))
    args = {"name": name, **primary.login()}

    watch = LogWatch(primary)
    checked = run_module(MODULE, args, check=True, diff=True)
    assert not checked.get("failed"), checked
    assert checked["changed"] is True
    assert checked["diff"] == {"before": {"present": False, "reserved": False},
                               "after": {"present": True, "reserved": False}}
    assert checked["slot"] is None
    assert checked["in_recovery"] is False
    assert slot_row(primary, name) is None
    assert_no_mutation_logged(watch)

    created = run_module(MODULE, args, diff=True)
    assert not created.get("failed"), created
    assert created["changed"] is True
    assert created["diff"]["after"] == {"present": True, "reserved": False}
    row = slot_row(primary, name)
    assert row == {"slot_type": "physical", "restart_lsn": None, "active": False, "active_pid": None,
                   "temporary": False}
    assert created["slot"] == {"name": name, "slot_type": "physical", "active": False, "active_pid": None,
                               "restart_lsn": None, "wal_status": None, "safe_wal_size": None,
                               "retained_bytes": None, "reserved": False}
    assert created["reserve_mismatch"] is False
    assert created["in_recovery"] is False

    again = run_module(MODULE, args, diff=True)
    assert again["changed"] is False, again
    assert again["diff"]["before"] == again["diff"]["after"] == {"present": True, "reserved": False}
    assert again["reserve_mismatch"] is False
    assert not again.get("warnings")
    assert slot_row(primary, name) == row


def test_create_reserved_reports_retained_wal(
        primary: PgCluster, slots_to_clean: Cleanup) -> None:
    name = "replication_slot_reserved"
    slots_to_clean.append((primary, name))
    args = {"name": name, "immediately_reserve": True, **primary.login()}

    watch = LogWatch(primary)
    checked = run_module(MODULE, args, check=True, diff=True)
    assert checked["changed"] is True, checked
    assert checked["diff"]["after"] == {"present": True, "reserved": True}
    assert slot_row(primary, name) is None
    assert_no_mutation_logged(watch)

    created = run_module(MODULE, args)
    assert created["changed"] is True, created
    row = slot_row(primary, name)
    assert row is not None and row["restart_lsn"] is not None
    slot = created["slot"]
    assert slot["reserved"] is True and slot["restart_lsn"] == row["restart_lsn"]
    assert slot["wal_status"] == "reserved"
    assert isinstance(slot["retained_bytes"], int) and slot["retained_bytes"] >= 0

    # Write some WAL: the slot now retains at least that much, as the server itself computes it.
    primary.sql("CREATE TABLE IF NOT EXISTS replication_slot_wal (id int)")
    primary.sql("INSERT INTO replication_slot_wal SELECT generate_series(1, 2000)")
    primary.sql("DROP TABLE replication_slot_wal")
    floor = primary.scalar("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint"
                           " FROM pg_replication_slots WHERE slot_name = %s", (name,))
    again = run_module(MODULE, args)
    assert again["changed"] is False, again
    assert again["reserve_mismatch"] is False
    assert again["slot"]["retained_bytes"] >= floor > slot["retained_bytes"]
    assert slot_row(primary, name) == row


def test_reserve_mismatch_reported_not_fixed(
        primary: PgCluster, slots_to_clean: Cleanup) -> None:
    unreserved, reserved = "replication_slot_mismatch_a", "replication_slot_mismatch_b"
    slots_to_clean.extend([(primary, unreserved), (primary, reserved)])
    primary.sql("SELECT pg_create_physical_replication_slot(%s, false)", (unreserved,))
    primary.sql("SELECT pg_create_physical_replication_slot(%s, true)", (reserved,))
    reserved_lsn = slot_row(primary, reserved)["restart_lsn"]

    watch = LogWatch(primary)
    wants_reserve = run_module(MODULE, {"name": unreserved, "immediately_reserve": True, **primary.login()},
                               diff=True)
    assert not wants_reserve.get("failed"), wants_reserve
    assert wants_reserve["changed"] is False
    assert wants_reserve["reserve_mismatch"] is True
    assert any("immediately_reserve is true" in w and unreserved in w for w in wants_reserve["warnings"])
    assert wants_reserve["diff"]["before"] == wants_reserve["diff"]["after"] == {"present": True, "reserved": False}
    # Not dropped and recreated: still there, still reserving nothing.
    assert slot_row(primary, unreserved)["restart_lsn"] is None

    wants_none = run_module(MODULE, {"name": reserved, "immediately_reserve": False, **primary.login()})
    # Reserving although not asked to is a slot's normal life once a standby used it: no warning.
    assert wants_none["changed"] is False, wants_none
    assert wants_none["reserve_mismatch"] is False
    assert not wants_none.get("warnings"), wants_none
    assert slot_row(primary, reserved)["restart_lsn"] == reserved_lsn
    assert_no_mutation_logged(watch)


def test_existing_active_slot_is_reported_read_only(primary: PgCluster, standby: PgCluster) -> None:
    """bench_standby is used by the real standby: the module reports it as active and leaves it be."""
    walsender = primary.scalar("SELECT r.pid FROM pg_stat_replication AS r JOIN pg_replication_slots AS s"
                               " ON s.active_pid = r.pid WHERE s.slot_name = 'bench_standby'")
    assert walsender is not None
    result = run_module(MODULE, {"name": "bench_standby", "immediately_reserve": True, **primary.login()})
    assert result["changed"] is False, result
    slot = result["slot"]
    assert slot["active"] is True and slot["active_pid"] == walsender
    assert slot["reserved"] is True and slot["wal_status"] in ("reserved", "extended")
    assert result["reserve_mismatch"] is False
    assert slot_row(primary, "bench_standby")["active"] is True


# ---------------------------------------------------------------- dropping on the primary

def test_drop_inactive_check_then_real_then_idempotent(
        primary: PgCluster, slots_to_clean: Cleanup) -> None:
    name = "replication_slot_drop"
    slots_to_clean.append((primary, name))
    primary.sql("SELECT pg_create_physical_replication_slot(%s, true)", (name,))
    args = {"name": name, "state": "absent", **primary.login()}

    watch = LogWatch(primary)
    checked = run_module(MODULE, args, check=True, diff=True)
    assert checked["changed"] is True, checked
    assert checked["diff"] == {"before": {"present": True, "reserved": True},
                               "after": {"present": False, "reserved": False}}
    assert checked["slot"]["name"] == name  # still there: check mode drops nothing
    assert slot_row(primary, name) is not None
    assert_no_mutation_logged(watch)

    dropped = run_module(MODULE, args, diff=True)
    assert dropped["changed"] is True, dropped
    assert dropped["slot"] is None
    assert dropped["terminated_pids"] == []
    assert slot_row(primary, name) is None

    again = run_module(MODULE, args, diff=True)
    assert again["changed"] is False, again
    assert again["diff"]["before"] == again["diff"]["after"] == {"present": False, "reserved": False}


def test_drop_active_refused_without_force_then_forced(
        primary: PgCluster, slots_to_clean: Cleanup, receivewal: Callable[[str], subprocess.Popen],
        login_roles: None) -> None:
    name = "replication_slot_active"
    slots_to_clean.append((primary, name))
    primary.sql("SELECT pg_create_physical_replication_slot(%s, true)", (name,))
    consumer = receivewal(name)
    walsender = slot_row(primary, name)["active_pid"]
    assert walsender and primary.scalar(
        "SELECT backend_type FROM pg_stat_activity WHERE pid = %s", (walsender,)) == "walsender"
    args = {"name": name, "state": "absent", **primary.login()}

    for check in (True, False):  # check mode predicts the same refusal
        refused = run_module(MODULE, args, check=check)
        assert refused["failed"] is True, refused
        assert refused["msg"].startswith(f"force: the slot '{name}' is active (used by process {walsender})")
        assert slot_row(primary, name)["active_pid"] == walsender and consumer.poll() is None

    # A REPLICATION role may drop slots but cannot terminate a superuser's walsender: clear refusal, no change.
    not_allowed = run_module(MODULE, {**args, "force": True, **primary.login(
        login_user=REPL_ROLE, login_password=REPL_PASSWORD)})
    assert not_allowed["failed"] is True, not_allowed
    assert "force: cannot terminate process" in not_allowed["msg"] and str(walsender) in not_allowed["msg"]
    assert slot_row(primary, name)["active_pid"] == walsender and consumer.poll() is None

    watch = LogWatch(primary)
    checked = run_module(MODULE, {**args, "force": True}, check=True, diff=True)
    assert checked["changed"] is True, checked
    assert checked["terminated_pids"] == [walsender]
    assert checked["diff"]["after"] == {"present": False, "reserved": False}
    assert slot_row(primary, name)["active_pid"] == walsender and consumer.poll() is None
    assert_no_mutation_logged(watch)

    forced = run_module(MODULE, {**args, "force": True}, diff=True)
    assert forced["changed"] is True, forced
    assert forced["terminated_pids"] == [walsender]
    assert forced["slot"] is None
    assert slot_row(primary, name) is None
    assert primary.scalar("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (walsender,)) == 0
    # pg_receivewal --no-loop exits once its walsender is gone.
    consumer.wait(timeout=20)
    assert consumer.returncode != 0

    again = run_module(MODULE, {**args, "force": True})
    assert again["changed"] is False, again
    assert again["terminated_pids"] == []


def test_wait_inactive_drops_a_slot_once_its_consumer_has_moved_away(
        primary: PgCluster, slots_to_clean: Cleanup, receivewal: Callable[[str], subprocess.Popen]) -> None:
    # As in site when a direct standby became a cascade: its old slot on the primary is still in use for a moment.
    name = "replication_slot_moving"
    slots_to_clean.append((primary, name))
    primary.sql("SELECT pg_create_physical_replication_slot(%s, true)", (name,))
    consumer = receivewal(name)
    walsender = slot_row(primary, name)["active_pid"]
    args = {"name": name, "state": "absent", "wait_inactive": 1, **primary.login()}

    # Check mode waits for nothing: it predicts the drop and says the real run waits.
    watch = LogWatch(primary)
    checked = run_module(MODULE, {**args, "wait_inactive": 30}, check=True)
    assert checked["changed"] is True and "a real run waits up to 30 s" in " ".join(checked["warnings"]), checked
    assert slot_row(primary, name)["active_pid"] == walsender and consumer.poll() is None
    assert_no_mutation_logged(watch)

    # Still in use after the wait: refused, saying how long it waited; the consumer keeps its slot.
    refused = run_module(MODULE, args)
    assert refused["failed"] is True, refused
    assert refused["msg"].startswith(f"force: the slot '{name}' is active (used by process {walsender}) still "
                                     "after waiting 1 s (wait_inactive)"), refused["msg"]
    assert slot_row(primary, name)["active_pid"] == walsender and consumer.poll() is None

    # The consumer goes away while the module waits: the slot is dropped then, no walsender terminated by us.
    stopper = threading.Timer(1.5, consumer.terminate)
    stopper.start()
    try:
        dropped = run_module(MODULE, {**args, "wait_inactive": 30})
    finally:
        stopper.join()
    assert dropped["changed"] is True and dropped["terminated_pids"] == [], dropped
    assert slot_row(primary, name) is None


# ---------------------------------------------------------------- privileges

def test_replication_role_is_enough(
        primary: PgCluster, login_roles: None, slots_to_clean: Cleanup) -> None:
    name = "replication_slot_by_repl_role"
    slots_to_clean.append((primary, name))
    login = primary.login(login_user=REPL_ROLE, login_password=REPL_PASSWORD)
    created = run_module(MODULE, {"name": name, "immediately_reserve": True, **login})
    assert created["changed"] is True, created
    assert slot_row(primary, name)["restart_lsn"] is not None
    dropped = run_module(MODULE, {"name": name, "state": "absent", **login})
    assert dropped["changed"] is True, dropped
    assert slot_row(primary, name) is None


# ---------------------------------------------------------------- on the standby

def test_standby_create_refused_without_allow_on_standby(standby: PgCluster) -> None:
    name = "replication_slot_standby_refused"
    before = slot_names(standby)
    for check in (True, False):
        refused = run_module(MODULE, {"name": name, **standby.login()}, check=check)
        assert refused["failed"] is True, refused
        assert "allow_on_standby" in refused["msg"] and name in refused["msg"]
        assert "pg_is_in_recovery() is true" in refused["msg"]
    assert slot_row(standby, name) is None
    assert slot_names(standby) == before


def test_standby_create_with_allow_on_standby(
        primary: PgCluster, standby: PgCluster, slots_to_clean: Cleanup) -> None:
    name = "replication_slot_cascade"
    slots_to_clean.append((standby, name))
    args = {"name": name, "immediately_reserve": True, "allow_on_standby": True, **standby.login()}

    watch = LogWatch(standby)
    checked = run_module(MODULE, args, check=True, diff=True)
    assert checked["changed"] is True, checked
    assert checked["in_recovery"] is True
    assert checked["diff"]["after"] == {"present": True, "reserved": True}
    assert slot_row(standby, name) is None
    assert_no_mutation_logged(watch)

    created = run_module(MODULE, args, diff=True)
    assert created["changed"] is True, created
    assert created["in_recovery"] is True
    row = slot_row(standby, name)
    assert row is not None and row["slot_type"] == "physical" and row["restart_lsn"] is not None
    # Created on the standby only: a standby's slots are not replicated to the primary.
    assert slot_row(primary, name) is None
    assert isinstance(created["slot"]["retained_bytes"], int)  # from pg_last_wal_receive_lsn()

    again = run_module(MODULE, args)
    assert again["changed"] is False, again
    assert again["in_recovery"] is True
    # An existing slot is not "created", so allow_on_standby is not needed to confirm it.
    confirmed = run_module(MODULE, {"name": name, "immediately_reserve": True, **standby.login()})
    assert confirmed["changed"] is False, confirmed
    assert confirmed["in_recovery"] is True

    dropped = run_module(MODULE, {"name": name, "state": "absent", **standby.login()})
    assert dropped["changed"] is True, dropped
    assert dropped["in_recovery"] is True
    assert slot_row(standby, name) is None
    standby_caught_up(primary, standby)


# ---------------------------------------------------------------- a logical slot of that name

@pytest.mark.parametrize("state", ["present", "absent"])
def test_logical_slot_of_that_name_refused(logical_cluster: PgCluster, state: str) -> None:
    name = "replication_slot_logical"
    args = {"name": name, "state": state, "force": True, **logical_cluster.login()}
    for check in (True, False):
        refused = run_module(MODULE, args, check=check)
        assert refused["failed"] is True, refused
        assert f"logical replication slot named '{name}'" in refused["msg"], refused["msg"]
        assert "physical slots only" in refused["msg"]
    row = slot_row(logical_cluster, name)
    assert row is not None and row["slot_type"] == "logical"


# ---------------------------------------------------------------- bad inputs

CLOSED_PORT = free_port()
BAD_INPUTS: list[BadCase] = [
    ("uppercase", lambda p: {"name": "Replication_Slot_Bad", **p.login()},
     ["name: 'Replication_Slot_Bad' is not a valid slot name", "^[a-z0-9_]{1,63}$"]),
    ("too_long", lambda p: {"name": "a" * 64, **p.login()},
     ["name: '" + "a" * 64 + "' is not a valid slot name", "64 characters"]),
    ("injection_quote", lambda p: {"name": f"a'; DROP TABLE {CANARY_TABLE};--", **p.login()},
     ["name: ", f"a'; DROP TABLE {CANARY_TABLE};--", "is not a valid slot name"]),
    ("double_quote", lambda p: {"name": 'a"b', **p.login()}, ["name: 'a\"b' is not a valid slot name"]),
    ("empty", lambda p: {"name": "", **p.login()}, ["name: '' is not a valid slot name", "empty"]),
    ("hyphen", lambda p: {"name": "replication-slot", **p.login()},
     ["name: 'replication-slot' is not a valid slot name"]),
    ("trailing_newline", lambda p: {"name": "replication_slot_nl\n", **p.login()},
     ["name: 'replication_slot_nl\\n' is not a valid slot name"]),
    ("reserve_not_bool", lambda p: {"name": "replication_slot_badbool", "immediately_reserve": "maybe",
                                    **p.login()},
     ["immediately_reserve", "'maybe' is not a valid boolean"]),
    ("force_not_bool", lambda p: {"name": CANARY_SLOT, "state": "absent", "force": "sometimes", **p.login()},
     ["force", "'sometimes' is not a valid boolean"]),
    ("bad_state", lambda p: {"name": CANARY_SLOT, "state": "gone", **p.login()}, ["state", "gone"]),
    ("port_out_of_range", lambda p: {"name": "replication_slot_port", **p.login(login_port=70000)},
     ["login_port: 70000"]),
    ("closed_port", lambda p: {"name": CANARY_SLOT, "state": "absent", "force": True,
                               **p.login(login_port=CLOSED_PORT, connect_timeout=3)},
     ["cannot reach PostgreSQL", f"127.0.0.1:{CLOSED_PORT}"]),
    ("wrong_password", lambda p: {"name": CANARY_SLOT, "state": "absent", "force": True,
                                  **p.login(login_password="not-the-password")},
     ["authentication failed", "login_password", "postgres@127.0.0.1"]),
    ("no_privilege_drop", lambda p: {"name": CANARY_SLOT, "state": "absent", "force": True,
                                     **p.login(login_user=NOPRIV_ROLE, login_password=NOPRIV_PASSWORD)},
     [f"login_user: the role '{NOPRIV_ROLE}'", "neither the SUPERUSER nor the REPLICATION"]),
    ("no_privilege_create", lambda p: {"name": "replication_slot_nopriv_slot",
                                       **p.login(login_user=NOPRIV_ROLE, login_password=NOPRIV_PASSWORD)},
     [f"login_user: the role '{NOPRIV_ROLE}'", "neither the SUPERUSER nor the REPLICATION"]),
]


@pytest.mark.parametrize("case", BAD_INPUTS, ids=[case[0] for case in BAD_INPUTS])
def test_bad_input_fails_cleanly_and_changes_nothing(
        primary: PgCluster, canary: None, login_roles: None, case: BadCase) -> None:
    build_args, expected = case[1], case[2]
    before = slot_names(primary)
    assert CANARY_SLOT in before
    result = run_module(MODULE, build_args(primary))
    assert result.get("failed") is True, result
    for text in expected:
        assert text in result["msg"], result["msg"]
    assert "Traceback" not in result["msg"]
    assert NOPRIV_PASSWORD not in str(result) and "not-the-password" not in str(result)
    assert slot_names(primary) == before
    assert primary.scalar("SELECT to_regclass(%s) IS NOT NULL", (CANARY_TABLE,)) is True
