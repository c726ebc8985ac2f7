"""pgrepl.streaming.node_apply (and the login_os_user connection option) against a real PostgreSQL server.

In check mode node_apply must predict exactly what each module's own run would report, and change nothing; for real
it must change exactly that, then report a converged node: every test compares its answer with the modules' own
runs and the server's state before and after.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from psycopg import sql

from ansible_runner import run_module, run_tasks
from cluster import PgCluster, free_port

MODULE = "node_apply"
SLOT = "node_apply_slot"
ROLE = "node_apply_repl"
PASSWORD = "node-apply-secret-Zq8"
SETTING = "wal_keep_size"


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def state(cluster: PgCluster) -> dict[str, Any]:
    """What a read-only call must leave exactly as it was."""
    return {
        "slots": sorted(row[0] for row in cluster.sql("SELECT slot_name FROM pg_replication_slots")),
        "roles": sorted(row[0] for row in cluster.sql("SELECT rolname FROM pg_roles")),
        "auto_conf": digest(cluster.data_dir / "postgresql.auto.conf"),
        "hba": digest(cluster.hba_file),
    }


@pytest.fixture
def cleanup(primary: PgCluster) -> Iterator[None]:
    yield
    primary.sql("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = %s", (SLOT,))
    primary.sql(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(ROLE)))


@pytest.fixture
def passfile(tmp_path: Path) -> Path:
    return tmp_path / "pgpass"


def apply(primary: PgCluster, checks: dict[str, Any], check: bool = False, diff: bool = False,
          **extra: Any) -> dict[str, Any]:
    return run_module(MODULE, {**primary.login(), "checks": checks, **extra}, check=check, diff=diff)


def predict(primary: PgCluster, checks: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """node_apply in check mode: the read-only answer to "what would change here"."""
    return apply(primary, checks, check=True, **extra)


def hba_params(primary: PgCluster, address: str) -> dict[str, Any]:
    return {"path": str(primary.hba_file), "contype": "host", "databases": ["replication"], "users": [ROLE],
            "address": address, "method": "scram-sha-256", "comment": "node_apply test"}


def test_converged_pieces_are_not_predicted_and_nothing_changes(primary: PgCluster) -> None:
    running = primary.scalar("SELECT current_setting(%s)", (SETTING,))
    before = state(primary)
    result = predict(primary, {"settings": {"module": "server_settings", "params": {"settings": {SETTING: running}}}})
    assert not result.get("failed"), result
    assert result["changed"] is False
    assert result["changed_checks"] == {"settings": False}, result
    # The module itself agrees: its real run changes nothing either.
    module = run_module("server_settings", {**primary.login(), "settings": {SETTING: running}})
    assert module["changed"] is False
    assert state(primary) == before


def test_differences_are_predicted_and_check_mode_changes_nothing(primary: PgCluster, cleanup: None,
                                                                  passfile: Path) -> None:
    before = state(primary)
    checks = {
        "settings": {"module": "server_settings", "params": {"settings": {SETTING: "123MB"}}},
        "slots": {"module": "replication_slot", "params": [{"name": SLOT, "immediately_reserve": True}]},
        "role": {"module": "replication_user", "params": {"name": ROLE}},
        "hba": {"module": "pg_hba", "params": [hba_params(primary, "10.77.0.1/32")]},
        "passfile": {"module": "passfile", "params": {
            "path": str(passfile), "entries": [{"host": "10.77.0.1", "user": ROLE}]}},
    }
    result = predict(primary, checks, replication_password=PASSWORD)
    assert not result.get("failed"), result
    assert result["changed_checks"] == {name: True for name in checks}, result
    assert all(item["changed"] is True for items in result["check_results"].values() for item in items), result
    # Read-only: no setting written, no slot, no role, no hba line, no passfile.
    assert state(primary) == before
    assert not passfile.exists()


def test_the_prediction_matches_the_modules_real_runs(primary: PgCluster, cleanup: None, passfile: Path) -> None:
    """Apply each module for real, then check mode says converged: prediction and change agree."""
    slot_args = {"name": SLOT, "immediately_reserve": True}
    role_args = {"name": ROLE, "password": PASSWORD}
    pass_args = {"path": str(passfile), "entries": [{"host": "10.77.0.1", "user": ROLE, "password": PASSWORD}]}
    assert run_module("replication_slot", {**primary.login(), **slot_args})["changed"] is True
    assert run_module("replication_user", {**primary.login(), **role_args})["changed"] is True
    assert run_module("passfile", pass_args)["changed"] is True
    checks = {
        "slots": {"module": "replication_slot", "params": [slot_args]},
        "role": {"module": "replication_user", "params": {"name": ROLE}},
        "passfile": {"module": "passfile", "params": {
            "path": str(passfile), "entries": [{"host": "10.77.0.1", "user": ROLE}]}},
    }
    result = predict(primary, checks, replication_password=PASSWORD)
    assert result["changed_checks"] == {"slots": False, "role": False, "passfile": False}, result
    # A different password is a difference the role module would fix: predicted, and still nothing changed.
    verifier = primary.scalar("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (ROLE,))
    other = predict(primary, {"role": checks["role"], "passfile": checks["passfile"]},
                    replication_password="another-password-1")
    assert other["changed_checks"] == {"role": True, "passfile": True}, other
    assert primary.scalar("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (ROLE,)) == verifier
    assert PASSWORD in passfile.read_text() and "another-password-1" not in passfile.read_text()


def test_an_undecidable_check_fails_the_prediction_with_the_modules_own_error(primary: PgCluster) -> None:
    before = state(primary)
    bad = predict(primary, {"bad_slot": {"module": "replication_slot", "params": {"name": "Bad-Slot"}}})
    assert bad.get("failed") and "bad_slot[0] (replication_slot)" in bad["msg"] and "Bad-Slot" in bad["msg"], bad
    down = predict(primary, {"no_server": {"module": "replication_slot", "params": {
        "name": SLOT, "login_port": 1, "login_host": "127.0.0.1"}}})
    assert down.get("failed") and "no_server[0] (replication_slot)" in down["msg"], down
    assert state(primary) == before


@pytest.mark.parametrize(("checks", "expected"), [
    ("not-a-dict", "checks"),
    ({"x": {"module": "drop_database", "params": {}}}, "checks.x.module: 'drop_database'"),
    ({"x": {"module": "replication_slot"}}, "checks.x.params"),
    ({"x": {"module": "replication_slot", "params": ["a"]}}, "checks.x.params"),
    ({"x": {"module": "replication_slot", "params": {"name": "s"}, "extra": 1}}, "checks.x"),
    ({"x": "replication_slot"}, "checks.x"),
    ({"x": {"module": None, "params": {}}}, "checks.x.module"),
    ({"x": {"module": "promote", "params": {}}}, "checks.x.module: 'promote'"),
], ids=["not-dict", "unknown-module", "no-params", "params-not-dicts", "extra-key", "check-not-dict",
        "module-null", "module-not-runnable"])
def test_bad_checks_are_refused_naming_the_option(primary: PgCluster, checks: Any, expected: str) -> None:
    before = state(primary)
    for check in (True, False):
        result = apply(primary, checks, check=check)
        assert result.get("failed"), result
        assert expected in result["msg"], result["msg"]
    assert state(primary) == before


# ---------------------------------------------------------------- login_os_user

@pytest.fixture(scope="module")
def peer_cluster(bench_dir: Path) -> Iterator[PgCluster]:
    """A server whose unix socket admits only peer authentication (what Debian's pg_hba.conf does)."""
    cluster = PgCluster(bench_dir, "node_apply_peer")
    cluster.init()
    cluster.start()
    cluster.hba_file.write_text("local all all peer\nhost all all 127.0.0.1/32 scram-sha-256\n")
    cluster.reload()
    yield cluster
    cluster.destroy()


def socket_login(cluster: PgCluster, **extra: Any) -> dict[str, Any]:
    return {"login_user": "postgres", "login_unix_socket": str(cluster.socket_dir), "login_port": cluster.port,
            **extra}


def test_login_os_user_opens_a_peer_connection_from_root(peer_cluster: PgCluster) -> None:
    assert os.geteuid() == 0, "the bench runs as root, like a become: true task"
    refused = run_module("replication_info", socket_login(peer_cluster))
    assert refused.get("failed") and "peer authentication failed" in refused["msg"].lower(), refused
    accepted = run_module("replication_info", socket_login(peer_cluster, login_os_user="postgres"))
    assert not accepted.get("failed"), accepted
    assert accepted["role"] == "primary"


def test_login_os_user_work_after_connect_runs_as_root_again(peer_cluster: PgCluster, tmp_path: Path) -> None:
    """The passfile written after a peer connection belongs to who the module runs as (the switch is undone)."""
    target = tmp_path / "pgpass"
    result = run_module(MODULE, {**socket_login(peer_cluster, login_os_user="postgres"), "checks": {
        "slot": {"module": "replication_slot", "params": {"name": SLOT}}}}, check=True)
    assert result["changed_checks"] == {"slot": True} and result["check_results"]["slot"][0]["changed"] is True, \
        result
    written = run_module("passfile", {"path": str(target), "entries": [
        {"host": "h", "user": "u", "password": "p-1"}]})
    assert written["changed"] is True and target.stat().st_uid == 0


@pytest.mark.parametrize(("os_user", "expected"), [
    ("no_such_os_user_x", "login_os_user: there is no OS user 'no_such_os_user_x'"),
], ids=["unknown-user"])
def test_login_os_user_refuses_an_unknown_user(peer_cluster: PgCluster, os_user: str, expected: str) -> None:
    result = run_module("replication_info", socket_login(peer_cluster, login_os_user=os_user))
    assert result.get("failed") and expected in result["msg"], result


# ---------------------------------------------------------------- check mode, then for real

def apply_checks(passfile: Path) -> dict[str, Any]:
    return {
        "role": {"module": "replication_user", "params": {"name": ROLE}},
        "slots": {"module": "replication_slot", "params": [{"name": SLOT, "immediately_reserve": True}]},
        "passfile": {"module": "passfile", "params": {
            "path": str(passfile), "entries": [{"host": "10.77.0.1", "user": ROLE}]}},
    }


def test_apply_check_mode_then_real_then_converged(primary: PgCluster, cleanup: None, passfile: Path) -> None:
    checks = apply_checks(passfile)
    before = state(primary)
    predicted = apply(primary, checks, check=True, diff=True, replication_password=PASSWORD)
    assert not predicted.get("failed"), predicted
    assert predicted["changed"] is True
    assert predicted["changed_checks"] == {"role": True, "slots": True, "passfile": True}
    assert predicted["diff"], "diff mode shows what each module would change"
    assert state(primary) == before and not passfile.exists()

    done = apply(primary, checks, replication_password=PASSWORD)
    assert done["changed_checks"] == {"role": True, "slots": True, "passfile": True}, done
    assert primary.scalar("SELECT rolreplication AND rolcanlogin FROM pg_roles WHERE rolname = %s", (ROLE,))
    assert primary.scalar("SELECT restart_lsn IS NOT NULL FROM pg_replication_slots WHERE slot_name = %s", (SLOT,))
    assert PASSWORD in passfile.read_text() and oct(passfile.stat().st_mode & 0o777) == "0o600"
    # A real login with the password the passfile holds proves the verifier is right.
    with primary.connect(host="127.0.0.1", user=ROLE, password=PASSWORD, dbname="replication",
                         replication="true", autocommit=True) as conn:
        assert conn.execute("IDENTIFY_SYSTEM").fetchone()

    again = apply(primary, checks, replication_password=PASSWORD)
    converged = {"role": False, "slots": False, "passfile": False}
    assert again["changed"] is False and again["changed_checks"] == converged
    assert predict(primary, checks, replication_password=PASSWORD)["changed_checks"] == converged


def test_apply_stops_at_the_first_refusal_naming_the_check(primary: PgCluster, cleanup: None,
                                                           passfile: Path) -> None:
    checks = {
        "slots": {"module": "replication_slot", "params": [{"name": SLOT}, {"name": "Bad-Slot"}]},
        "passfile": {"module": "passfile", "params": {
            "path": str(passfile), "entries": [{"host": "10.77.0.1", "user": ROLE}]}},
    }
    result = apply(primary, checks, replication_password=PASSWORD)
    assert result.get("failed"), result
    assert "slots[1] (replication_slot)" in result["msg"] and "Bad-Slot" in result["msg"], result["msg"]
    # The item before the refusal is done (as a task before a failing one would be); nothing after it ran.
    assert primary.scalar("SELECT count(*) FROM pg_replication_slots WHERE slot_name = %s", (SLOT,)) == 1
    assert not passfile.exists()


def test_apply_never_shows_the_password(primary: PgCluster, cleanup: None, passfile: Path) -> None:
    task = {"pgrepl.streaming.node_apply": {**primary.login(), "replication_password": PASSWORD,
                                            "checks": apply_checks(passfile)}, "diff": True}
    # In check mode (the prediction), then for real.
    tasks = [{**task, "check_mode": True}, task]
    run = run_tasks(tasks, verbosity=3, json_output=False)
    assert run.returncode == 0, run.stdout[-2000:]
    assert PASSWORD not in run.stdout and PASSWORD not in run.stderr
    assert PASSWORD not in primary.log_text()


def test_upstream_pending_predicts_a_copy_its_upstream_cannot_serve_yet(primary: PgCluster, tmp_path: Path) -> None:
    """Check mode on a standby whose upstream would first get its replication role (nothing answers there yet, as
    for a primary whose listen_addresses a real run changes first): without upstream_pending the copy's own check
    fails connecting; with it the copy is reported as the change a real run makes, and nothing is created."""
    target = tmp_path / "copy"
    checks = {"clone": {"module": "standby_clone", "params": {
        "data_dir": str(target), "primary_host": "127.0.0.1", "primary_port": free_port(),
        "replication_user": ROLE, "passfile": str(tmp_path / "pgpass")}}}
    before = state(primary)
    tried = predict(primary, checks)
    assert tried.get("failed") is True and "clone[0] (standby_clone)" in tried["msg"], tried
    predicted = predict(primary, checks, upstream_pending=True)
    assert predicted.get("failed") is not True, predicted
    assert predicted["changed"] is True and predicted["predicted"] == ["clone"], predicted
    assert predicted["check_results"]["clone"][0]["outcome"] == "predicted"
    assert any("would connect to its upstream" in warning for warning in predicted.get("warnings", []))
    # Outside check mode the option changes nothing: the copy is tried (and fails here, nothing answering).
    assert apply(primary, checks, upstream_pending=True).get("failed") is True
    assert not target.exists() and state(primary) == before
