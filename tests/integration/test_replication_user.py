# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pgrepl.streaming.replication_user through ansible-playbook against the real primary and standby.

Every assertion on state reads pg_authid (or logs in over TCP), not only what the module reported. Every
password given to the module is checked to be absent from the server log (log_statement=all), the task
result and, where relevant, the -vvv output. Roles are named replication_user_* and dropped afterwards.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from ansible_collections.pgrepl.streaming.plugins.module_utils._errors import PgreplError
from ansible_collections.pgrepl.streaming.plugins.module_utils._replication_user import (
    Plan,
    apply_plan,
    validate_request,
)
from ansible_collections.pgrepl.streaming.plugins.module_utils._scram import build_verifier, verify_password

from ansible_runner import run_module, run_tasks
from cluster import PgCluster, free_port

MODULE = "pgrepl.streaming.replication_user"
PREFIX = "replication_user_"
NONSUPER = PREFIX + "nonsuper"
NONSUPER_PASSWORD = "ru-NonSuper-pw-3Zr"
DDL = re.compile(r"\b(CREATE|ALTER|DROP)\s+(ROLE|USER)\b", re.IGNORECASE)


# --- helpers -------------------------------------------------------------------------------------------------

def role_row(cluster: PgCluster, name: str) -> dict[str, Any] | None:
    rows = cluster.sql("SELECT rolsuper, rolcanlogin, rolreplication, rolconnlimit, rolpassword"
                       " FROM pg_authid WHERE rolname = %s", (name,))
    if not rows:
        return None
    keys = ("superuser", "login", "replication", "conn_limit", "password")
    return dict(zip(keys, rows[0]))


def authid_snapshot(cluster: PgCluster) -> list[tuple]:
    return cluster.sql("SELECT rolname, rolsuper, rolcanlogin, rolreplication, rolconnlimit, rolpassword"
                       " FROM pg_authid ORDER BY rolname")


def can_login(cluster: PgCluster, name: str, password: str) -> bool:
    """A real password login over TCP (pg_hba: host all all 127.0.0.1/32 scram-sha-256)."""
    try:
        with psycopg.connect(host="127.0.0.1", port=cluster.port, user=name, password=password,
                             dbname="postgres", sslmode="disable", connect_timeout=5) as conn:
            return conn.execute("SELECT current_user").fetchone() == (name,)
    except psycopg.OperationalError:
        return False


def identify_system(cluster: PgCluster, name: str, password: str) -> str:
    """A physical replication connection as the role, running the walsender command IDENTIFY_SYSTEM."""
    with psycopg.connect(host="127.0.0.1", port=cluster.port, user=name, password=password, dbname="postgres",
                         sslmode="disable", replication="true", autocommit=True) as conn:
        res = conn.pgconn.exec_(b"IDENTIFY_SYSTEM")
        value = res.get_value(0, 0)
        assert value is not None, res.error_message
        return value.decode()


def drop_role(cluster: PgCluster, name: str) -> None:
    cluster.sql(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


def call(cluster: PgCluster, name: str, check: bool = False, diff: bool = False, **args: Any) -> dict[str, Any]:
    return run_module(MODULE, {**cluster.login(), "name": name, **args}, check=check, diff=diff)


def assert_secret_absent(primary: PgCluster, secret: str, *results: dict[str, Any]) -> None:
    assert secret not in primary.log_text()
    for result in results:
        assert secret not in json.dumps(result)


def assert_no_ddl_in_log(log: str, name: str) -> None:
    """No role DDL at all; the role's name only appears as the bound parameter of the pg_authid lookup."""
    assert "FROM pg_catalog.pg_authid WHERE rolname" in log, "the run did not reach the server's log"
    for line in log.splitlines():
        assert not DDL.search(line), line
        if name in line:
            assert "DETAIL:  parameters: $1 = " in line, line


@pytest.fixture
def roles(primary: PgCluster) -> Iterator[list[str]]:
    """Names to drop after the test, whatever happened."""
    names: list[str] = []
    yield names
    for name in names:
        drop_role(primary, name)


@pytest.fixture(scope="module")
def nonsuper(primary: PgCluster) -> Iterator[str]:
    """A login role without superuser (its password set as a verifier, so not even the test logs it)."""
    drop_role(primary, NONSUPER)
    primary.sql(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
        sql.Identifier(NONSUPER), sql.Literal(build_verifier(NONSUPER_PASSWORD))))
    yield NONSUPER
    drop_role(primary, NONSUPER)


# --- create, rerun, login --------------------------------------------------------------------------------------

def test_create_check_then_real_then_rerun(primary: PgCluster, roles: list[str]) -> None:
    name, password = PREFIX + "main", "ru-Create-pw-5fK2"
    roles.append(name)

    offset = len(primary.log_text())
    checked = call(primary, name, check=True, diff=True, password=password)
    assert not checked.get("failed"), checked
    assert checked["changed"] is True
    assert checked["diff"]["before"] == {"state": "absent"}
    assert checked["diff"]["after"] == {"state": "present", "login": True, "replication": True,
                                        "superuser": False, "conn_limit": -1, "password_set": True,
                                        "password": "changed"}
    assert checked["role"] == {"name": name, "login": True, "replication": True, "superuser": False,
                               "conn_limit": -1, "password_set": True}
    assert role_row(primary, name) is None
    assert_no_ddl_in_log(primary.log_text()[offset:], name)

    created = call(primary, name, diff=True, password=password)
    assert created["changed"] is True, created
    row = role_row(primary, name)
    assert row is not None
    assert row["login"] and row["replication"] and not row["superuser"]
    assert row["conn_limit"] == -1
    assert row["password"].startswith("SCRAM-SHA-256$4096:")
    assert verify_password(row["password"], password)
    assert "queries" not in created
    assert created["role"]["password_set"] is True

    again = call(primary, name, diff=True, password=password)
    assert again["changed"] is False, again
    assert again["diff"]["before"] == again["diff"]["after"]
    assert role_row(primary, name) == row  # same salt: the password was not set again

    assert can_login(primary, name, password)
    assert not can_login(primary, name, password + "x")
    system_id = primary.scalar("SELECT system_identifier FROM pg_control_system()")
    assert identify_system(primary, name, password) == str(system_id)
    assert_secret_absent(primary, password, checked, created, again)


def test_password_change_new_works_old_fails(primary: PgCluster, roles: list[str]) -> None:
    name, old, new = PREFIX + "pwchange", "ru-Old-pw-Lq81", "ru-New-pw-Tz42"
    roles.append(name)
    assert call(primary, name, password=old)["changed"] is True
    before = role_row(primary, name)

    checked = call(primary, name, check=True, diff=True, password=new)
    assert checked["changed"] is True, checked
    assert checked["diff"]["before"]["password"] == "unchanged"
    assert checked["diff"]["after"]["password"] == "changed"
    assert role_row(primary, name) == before
    assert can_login(primary, name, old)

    changed = call(primary, name, password=new)
    assert changed["changed"] is True, changed
    assert can_login(primary, name, new)
    assert not can_login(primary, name, old)

    again = call(primary, name, password=new)
    assert again["changed"] is False, again
    assert_secret_absent(primary, old, checked, changed, again)
    assert_secret_absent(primary, new, checked, changed, again)


def test_update_password_on_create_keeps_the_existing_password(primary: PgCluster, roles: list[str]) -> None:
    name, first, second = PREFIX + "oncreate", "ru-First-pw-Ke55", "ru-Second-pw-Ua09"
    roles.append(name)
    created = call(primary, name, password=first, update_password="on_create")
    assert created["changed"] is True and created["role"]["password_set"] is True, created
    assert can_login(primary, name, first)
    stored = role_row(primary, name)

    checked = call(primary, name, check=True, diff=True, password=second, update_password="on_create")
    assert checked["changed"] is False, checked
    kept = call(primary, name, password=second, update_password="on_create")
    assert kept["changed"] is False, kept
    assert role_row(primary, name) == stored
    assert can_login(primary, name, first)
    assert not can_login(primary, name, second)
    assert_secret_absent(primary, first, created, checked, kept)
    assert_secret_absent(primary, second, created, checked, kept)


def test_conn_limit_change(primary: PgCluster, roles: list[str]) -> None:
    name = PREFIX + "connlimit"
    roles.append(name)
    assert call(primary, name)["changed"] is True
    assert role_row(primary, name)["conn_limit"] == -1

    checked = call(primary, name, check=True, diff=True, conn_limit=5)
    assert checked["changed"] is True, checked
    assert (checked["diff"]["before"]["conn_limit"], checked["diff"]["after"]["conn_limit"]) == (-1, 5)
    assert role_row(primary, name)["conn_limit"] == -1

    assert call(primary, name, conn_limit=5)["changed"] is True
    assert role_row(primary, name)["conn_limit"] == 5
    assert call(primary, name, conn_limit=5)["changed"] is False

    assert call(primary, name, conn_limit=0)["changed"] is True
    assert role_row(primary, name)["conn_limit"] == 0
    back = call(primary, name)  # the default, -1, means no limit
    assert back["changed"] is True and back["role"]["conn_limit"] == -1
    assert role_row(primary, name)["conn_limit"] == -1
    # The role was created without a password and the runs above never gave one: none was set.
    assert role_row(primary, name)["password"] is None


def test_existing_role_gets_login_and_replication(primary: PgCluster, roles: list[str]) -> None:
    name, password = PREFIX + "nologin", "ru-NoLogin-pw-Rb73"
    roles.append(name)
    primary.sql(sql.SQL("CREATE ROLE {} NOLOGIN NOREPLICATION").format(sql.Identifier(name)))

    checked = call(primary, name, check=True, diff=True, password=password)
    assert checked["changed"] is True, checked
    assert checked["diff"]["before"]["login"] is False and checked["diff"]["after"]["login"] is True
    assert checked["diff"]["before"]["replication"] is False and checked["diff"]["after"]["replication"] is True
    assert checked["diff"]["before"]["password_set"] is False and checked["diff"]["after"]["password_set"] is True
    row = role_row(primary, name)
    assert row is not None and not row["login"] and not row["replication"] and row["password"] is None

    assert call(primary, name, password=password)["changed"] is True
    row = role_row(primary, name)
    assert row["login"] and row["replication"] and not row["superuser"]
    assert can_login(primary, name, password)
    assert call(primary, name, password=password)["changed"] is False


def test_md5_password_is_replaced_by_scram(primary: PgCluster, roles: list[str]) -> None:
    name, password = PREFIX + "md5", "ru-Md5-pw-Wc18"
    roles.append(name)
    md5 = "md5" + hashlib.md5((password + name).encode()).hexdigest()  # PostgreSQL's md5 format
    primary.sql(sql.SQL("CREATE ROLE {} LOGIN REPLICATION PASSWORD {}").format(
        sql.Identifier(name), sql.Literal(md5)))
    assert role_row(primary, name)["password"] == md5

    checked = call(primary, name, check=True, password=password)
    assert checked["changed"] is True, checked
    assert role_row(primary, name)["password"] == md5
    assert call(primary, name, password=password)["changed"] is True
    stored = role_row(primary, name)["password"]
    assert stored.startswith("SCRAM-SHA-256$") and verify_password(stored, password)
    assert call(primary, name, password=password)["changed"] is False
    assert can_login(primary, name, password)


PASSWORDS_FOR_POSTGRES = [
    "ru-pg-ascii-Pw7",
    "ru-pg-p\u00e4ssw\u00f6rd",
    "ru-pg-\u2168-nfkc",
    "ru-pg-nb\u00a0sp-soft\u00adhyphen",
    "\u0627ru-pg-bidi\u0628",
    "\u0627\u0661",
    "\u65e5\u672c\u8a9e-ru-pg",
]


def test_verifiers_computed_by_real_postgresql(primary: PgCluster, roles: list[str]) -> None:
    """PostgreSQL hashes each cleartext (the test sends it, not the module); our verify function and the module
    must agree with what the server stored, for ASCII and for each SASLprep path."""
    names = [f"{PREFIX}pgmade_{index}" for index in range(len(PASSWORDS_FOR_POSTGRES))]
    roles.extend(names)
    stored: dict[str, str] = {}
    with primary.connect() as conn:
        conn.execute("SET password_encryption = 'scram-sha-256'")
        for name, password in zip(names, PASSWORDS_FOR_POSTGRES):
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN REPLICATION PASSWORD {}").format(
                sql.Identifier(name), sql.Literal(password)))
    for name, password in zip(names, PASSWORDS_FOR_POSTGRES):
        stored[name] = role_row(primary, name)["password"]
        assert stored[name].startswith("SCRAM-SHA-256$4096:"), name
        assert verify_password(stored[name], password), password
        assert not verify_password(stored[name], password + "!"), password
        assert not verify_password(stored[name], "ru-wrong-password"), password

    tasks = []
    for name, password in zip(names, PASSWORDS_FOR_POSTGRES):
        args = {**primary.login(), "name": name}
        tasks.append({"name": f"same {name}", MODULE: {**args, "password": password}})
        tasks.append({"name": f"other {name}", MODULE: {**args, "password": password + "!"}, "check_mode": True})
    results = run_tasks(tasks).results
    for index, name in enumerate(names):
        same, other = results[2 * index], results[2 * index + 1]
        assert same["changed"] is False, (name, same)
        assert other["changed"] is True, (name, other)
        assert role_row(primary, name)["password"] == stored[name]


def test_non_ascii_password_set_by_the_module_logs_in_through_libpq(primary: PgCluster, roles: list[str]) -> None:
    name, password = PREFIX + "unicode", "ru-Unicode-\u2168-p\u00e4ss\u00a0w\u00f6rd"
    roles.append(name)
    assert call(primary, name, password=password)["changed"] is True
    assert can_login(primary, name, password)
    # libpq applies SASLprep too: the NFKC-equivalent spelling is the same password.
    assert can_login(primary, name, "ru-Unicode-IX-p\u00e4ss w\u00f6rd")
    assert not can_login(primary, name, "ru-Unicode-IX-pass word")
    assert call(primary, name, password=password)["changed"] is False
    assert password not in primary.log_text()


def test_a_scram_verifier_given_as_password_is_stored_as_it_is(primary: PgCluster, roles: list[str]) -> None:
    name, cleartext = PREFIX + "verifier", "ru-Verifier-pw-Jn60"
    roles.append(name)
    verifier = build_verifier(cleartext)
    assert call(primary, name, password=verifier)["changed"] is True
    assert role_row(primary, name)["password"] == verifier
    assert can_login(primary, name, cleartext)
    assert call(primary, name, password=verifier)["changed"] is False
    assert cleartext not in primary.log_text()


def test_injection_in_name_is_a_literal_identifier(primary: PgCluster, roles: list[str]) -> None:
    name = PREFIX + 'x"; DROP ROLE postgres; --'
    roles.append(name)
    before = {row[0] for row in authid_snapshot(primary)}
    checked = call(primary, name, check=True, password="ru-Inject-pw-Ya31")
    assert checked["changed"] is True and checked["role"]["name"] == name, checked
    assert {row[0] for row in authid_snapshot(primary)} == before
    created = call(primary, name, password="ru-Inject-pw-Ya31")
    assert created["changed"] is True, created
    after = {row[0] for row in authid_snapshot(primary)}
    assert after - before == {name}
    assert primary.scalar("SELECT rolsuper FROM pg_authid WHERE rolname = 'postgres'") is True
    assert can_login(primary, name, "ru-Inject-pw-Ya31")
    dropped = call(primary, name, state="absent")
    assert dropped["changed"] is True, dropped
    assert role_row(primary, name) is None
    assert primary.scalar("SELECT rolsuper FROM pg_authid WHERE rolname = 'postgres'") is True


def test_quotes_in_the_password_never_reach_sql(primary: PgCluster, roles: list[str]) -> None:
    name, password = PREFIX + "quotes", "ru'); DROP ROLE postgres; --\\'\""
    roles.append(name)
    assert call(primary, name, password=password)["changed"] is True
    assert primary.scalar("SELECT rolsuper FROM pg_authid WHERE rolname = 'postgres'") is True
    assert can_login(primary, name, password)
    assert call(primary, name, password=password)["changed"] is False
    assert password not in primary.log_text()


# --- replication: false (an ordinary login role, such as the one pg_rewind connects as) ---------------------------

def cannot_stream(cluster: PgCluster, name: str, password: str) -> str:
    """The server's refusal of a physical replication connection as the role (it authenticates first)."""
    with pytest.raises(psycopg.OperationalError) as info:
        identify_system(cluster, name, password)
    return str(info.value)


def test_ordinary_login_role_check_then_real_then_rerun(primary: PgCluster, roles: list[str]) -> None:
    name, password = PREFIX + "rewind", "ru-Rewind-pw-Hq57"
    roles.append(name)

    offset = len(primary.log_text())
    checked = call(primary, name, check=True, diff=True, password=password, replication=False)
    assert not checked.get("failed"), checked
    assert checked["changed"] is True
    assert checked["diff"]["before"] == {"state": "absent"}
    assert checked["diff"]["after"] == {"state": "present", "login": True, "replication": False,
                                        "superuser": False, "conn_limit": -1, "password_set": True,
                                        "password": "changed"}
    assert checked["role"] == {"name": name, "login": True, "replication": False, "superuser": False,
                               "conn_limit": -1, "password_set": True}
    assert role_row(primary, name) is None
    assert_no_ddl_in_log(primary.log_text()[offset:], name)

    offset = len(primary.log_text())
    created = call(primary, name, diff=True, password=password, replication=False)
    assert created["changed"] is True, created
    assert created["role"]["replication"] is False
    row = role_row(primary, name)
    assert row is not None
    assert row["login"] is True and row["replication"] is False and row["superuser"] is False
    assert row["conn_limit"] == -1
    assert row["password"].startswith("SCRAM-SHA-256$4096:") and verify_password(row["password"], password)
    # The statement that holds the verifier reached no log (log_statement=all on this server): it ran in a
    # transaction of its own with log_statement, log_min_duration_statement, log_min_error_statement,
    # pg_stat_statements.track_utility and pgaudit.log off. What it did is in pg_authid above.
    log = primary.log_text()[offset:]
    assert "SET LOCAL log_statement = 'none'" in log, log
    assert [line for line in log.splitlines() if DDL.search(line)] == []
    assert row["password"] not in log and "SCRAM-SHA-256$" not in log

    for check in (True, False):
        again = call(primary, name, check=check, diff=True, password=password, replication=False)
        assert again["changed"] is False, again
        assert again["diff"]["before"] == again["diff"]["after"]
    assert role_row(primary, name) == row  # same verifier: the password was not set again

    # A real password login over TCP works; a physical replication connection is refused by the server.
    assert can_login(primary, name, password)
    assert not can_login(primary, name, password + "x")
    refusal = cannot_stream(primary, name, password)
    assert "replication" in refusal, refusal
    assert_secret_absent(primary, password, checked, created, again)


def test_replication_flips_both_ways_on_an_existing_role(primary: PgCluster, roles: list[str]) -> None:
    name, password = PREFIX + "flip", "ru-Flip-pw-Nc29"
    roles.append(name)
    assert call(primary, name, password=password)["changed"] is True  # the default: a replication role
    first = role_row(primary, name)
    assert first is not None and first["replication"] is True
    system_id = str(primary.scalar("SELECT system_identifier FROM pg_control_system()"))
    assert identify_system(primary, name, password) == system_id

    # true -> false
    offset = len(primary.log_text())
    checked = call(primary, name, check=True, diff=True, password=password, replication=False)
    assert checked["changed"] is True, checked
    assert (checked["diff"]["before"]["replication"], checked["diff"]["after"]["replication"]) == (True, False)
    assert checked["diff"]["before"]["password"] == checked["diff"]["after"]["password"] == "unchanged"
    assert role_row(primary, name) == first
    assert_no_ddl_in_log(primary.log_text()[offset:], name)

    offset = len(primary.log_text())
    lowered = call(primary, name, diff=True, password=password, replication=False)
    assert lowered["changed"] is True and lowered["role"]["replication"] is False, lowered
    statements = [line for line in primary.log_text()[offset:].splitlines() if DDL.search(line)]
    assert len(statements) == 1 and f'ALTER ROLE "{name}" WITH NOREPLICATION' in statements[0], statements
    assert role_row(primary, name) == {**first, "replication": False}  # nothing else changed, same verifier
    assert can_login(primary, name, password)
    assert "replication" in cannot_stream(primary, name, password)
    assert call(primary, name, password=password, replication=False)["changed"] is False

    # false -> true
    checked = call(primary, name, check=True, diff=True, password=password, replication=True)
    assert checked["changed"] is True, checked
    assert (checked["diff"]["before"]["replication"], checked["diff"]["after"]["replication"]) == (False, True)
    assert role_row(primary, name)["replication"] is False

    raised = call(primary, name, diff=True, password=password)  # the default is true again
    assert raised["changed"] is True and raised["role"]["replication"] is True, raised
    assert role_row(primary, name) == first
    assert identify_system(primary, name, password) == system_id
    for check in (True, False):
        assert call(primary, name, check=check, password=password, replication=True)["changed"] is False
    assert_secret_absent(primary, password, checked, lowered, raised)


def test_replication_false_gives_an_existing_nologin_replication_role_login_only(primary: PgCluster,
                                                                                 roles: list[str]) -> None:
    name, password = PREFIX + "nologin_repl", "ru-NoLoginRepl-pw-Df40"
    roles.append(name)
    primary.sql(sql.SQL("CREATE ROLE {} NOLOGIN REPLICATION").format(sql.Identifier(name)))

    checked = call(primary, name, check=True, diff=True, password=password, replication=False)
    assert checked["changed"] is True, checked
    before, after = checked["diff"]["before"], checked["diff"]["after"]
    assert (before["login"], after["login"]) == (False, True)
    assert (before["replication"], after["replication"]) == (True, False)
    assert (before["password_set"], after["password_set"]) == (False, True)
    assert role_row(primary, name)["login"] is False

    assert call(primary, name, password=password, replication=False)["changed"] is True
    row = role_row(primary, name)
    assert row["login"] is True and row["replication"] is False and row["superuser"] is False
    assert can_login(primary, name, password)
    assert call(primary, name, password=password, replication=False)["changed"] is False


# --- refusals --------------------------------------------------------------------------------------------------

def test_existing_superuser_of_that_name_is_refused_and_untouched(primary: PgCluster, roles: list[str]) -> None:
    name = PREFIX + "super"
    roles.append(name)
    primary.sql(sql.SQL("CREATE ROLE {} SUPERUSER LOGIN CONNECTION LIMIT 7").format(sql.Identifier(name)))
    snapshot = authid_snapshot(primary)
    args = {**primary.login(), "name": name}
    results = run_tasks([
        {"name": "check present", MODULE: {**args, "password": "ru-Super-pw-Ha94"}, "check_mode": True},
        {"name": "present", MODULE: {**args, "password": "ru-Super-pw-Ha94"}},
        {"name": "check absent", MODULE: {**args, "state": "absent"}, "check_mode": True},
        {"name": "absent", MODULE: {**args, "state": "absent"}},
    ]).results
    assert len(results) == 4
    for result in results:
        assert result.get("failed") is True, result
        assert f"the role '{name}' exists and is a SUPERUSER" in result["msg"]
        assert "role" not in result
    assert authid_snapshot(primary) == snapshot
    assert role_row(primary, name)["superuser"] is True
    assert_secret_absent(primary, "ru-Super-pw-Ha94", *results)

    # replication=false manages ordinary login roles, which are never superusers either.
    for check in (True, False):
        result = call(primary, name, check=check, password="ru-Super-pw-Ha94", replication=False)
        assert result.get("failed") is True, result
        assert f"the role '{name}' exists and is a SUPERUSER" in result["msg"]
        assert "ordinary login roles (replication false)" in result["msg"]
    assert authid_snapshot(primary) == snapshot


def test_on_a_standby_a_clear_error(primary: PgCluster, standby: PgCluster) -> None:
    name = PREFIX + "onstandby"
    snapshot = authid_snapshot(primary)
    args = {**standby.login(), "name": name}
    results = run_tasks([
        {"name": "present", MODULE: {**args, "password": "ru-Standby-pw-Vx27"}},
        {"name": "absent", MODULE: {**args, "state": "absent"}},
    ]).results
    assert len(results) == 2
    for result in results:
        assert result.get("failed") is True, result
        assert "the server is a standby (pg_is_in_recovery() is true)" in result["msg"]
        assert "Traceback" not in json.dumps(result)
    assert authid_snapshot(primary) == snapshot
    assert role_row(standby, name) is None


# --- drop ------------------------------------------------------------------------------------------------------

def test_drop_check_then_real_then_rerun(primary: PgCluster, roles: list[str]) -> None:
    name = PREFIX + "drop"
    roles.append(name)
    assert call(primary, name, password="ru-Drop-pw-Gs50", conn_limit=2)["changed"] is True

    offset = len(primary.log_text())
    checked = call(primary, name, check=True, diff=True, state="absent")
    assert checked["changed"] is True, checked
    assert checked["diff"]["before"] == {"state": "present", "login": True, "replication": True,
                                         "superuser": False, "conn_limit": 2, "password_set": True}
    assert checked["diff"]["after"] == {"state": "absent"}
    assert "role" not in checked
    assert role_row(primary, name) is not None
    assert_no_ddl_in_log(primary.log_text()[offset:], name)

    dropped = call(primary, name, diff=True, state="absent")
    assert dropped["changed"] is True, dropped
    assert role_row(primary, name) is None
    again = call(primary, name, state="absent")
    assert again["changed"] is False, again
    assert call(primary, name, check=True, state="absent")["changed"] is False


def test_drop_refused_while_the_role_owns_objects(primary: PgCluster, roles: list[str]) -> None:
    name, table = PREFIX + "owner", PREFIX + "owned_table"
    roles.append(name)
    assert call(primary, name)["changed"] is True
    try:
        primary.sql(sql.SQL("CREATE TABLE {} (id int)").format(sql.Identifier(table)))
        primary.sql(sql.SQL("ALTER TABLE {} OWNER TO {}").format(sql.Identifier(table), sql.Identifier(name)))
        primary.sql(sql.SQL("GRANT CONNECT ON DATABASE postgres TO {}").format(sql.Identifier(name)))
        for check in (True, False):
            result = call(primary, name, check=check, state="absent")
            assert result.get("failed") is True, result
            assert f"name: the role '{name}' cannot be dropped: it owns objects or holds privileges" in result["msg"]
            assert "'postgres': 1" in result["msg"] and "shared objects" in result["msg"]
            assert "REASSIGN OWNED BY" in result["msg"]
            assert role_row(primary, name) is not None
    finally:
        primary.sql(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(table)))
        primary.sql(sql.SQL("REVOKE CONNECT ON DATABASE postgres FROM {}").format(sql.Identifier(name)))
    assert call(primary, name, state="absent")["changed"] is True
    assert role_row(primary, name) is None


def test_server_side_drop_refusal_becomes_a_clear_message(primary: PgCluster, roles: list[str]) -> None:
    """If objects appear between the catalog check and DROP ROLE, the server's error is still a clear message."""
    name, table = PREFIX + "race", PREFIX + "race_table"
    roles.append(name)
    primary.sql(sql.SQL("CREATE ROLE {} LOGIN REPLICATION").format(sql.Identifier(name)))
    primary.sql(sql.SQL("CREATE TABLE {} (id int)").format(sql.Identifier(table)))
    try:
        primary.sql(sql.SQL("ALTER TABLE {} OWNER TO {}").format(sql.Identifier(table), sql.Identifier(name)))
        req = validate_request({"name": name, "state": "absent"})
        with primary.connect() as conn, pytest.raises(PgreplError) as info:
            apply_plan(conn, req, Plan(drop=True))
        message = str(info.value)
        assert message.startswith(f"name: the role '{name}' cannot be dropped: it owns objects or holds privileges")
        assert f"owner of table {table}" in message
        assert role_row(primary, name) is not None
    finally:
        primary.sql(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(table)))


# --- secrets ---------------------------------------------------------------------------------------------------

def test_password_absent_from_verbose_output_log_and_result(primary: PgCluster, roles: list[str]) -> None:
    name, first, second = PREFIX + "verbose", "ru-Verbose-pw-Pd36", "ru-Verbose-pw2-Mk84"
    roles.append(name)
    base = {**primary.login(), "name": name}
    run = run_tasks([
        {"name": "create", MODULE: {**base, "password": first}},
        {"name": "change", MODULE: {**base, "password": second}},
        {"name": "refused", MODULE: {**base, "password": first, "conn_limit": -5}},
    ], diff=True, verbosity=3, json_output=False)
    output = run.stdout + run.stderr
    assert f"'{name}'" in output or f'"{name}"' in output, output  # the tasks really ran and printed results
    assert "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER" in output
    assert "conn_limit: -5 is out of range" in output
    assert first not in output and second not in output
    row = role_row(primary, name)
    assert row is not None and verify_password(row["password"], second)
    assert first not in primary.log_text() and second not in primary.log_text()


# --- bad inputs ------------------------------------------------------------------------------------------------

ArgsFn = Callable[[PgCluster], dict[str, Any]]

BAD_INPUTS: list[tuple[str, ArgsFn, list[str]]] = [
    ("empty-name", lambda p: {**p.login(), "name": ""}, ["name: '' is not a valid role name"]),
    ("name-64-bytes", lambda p: {**p.login(), "name": "r" * 64},
     [f"name: '{'r' * 64}' is not a valid role name", "64 bytes"]),
    ("name-64-bytes-utf8", lambda p: {**p.login(), "name": "\u00e9" * 32},
     [f"name: '{chr(0xe9) * 32}' is not a valid role name", "64 bytes"]),
    ("name-nul", lambda p: {**p.login(), "name": PREFIX + "nul\x00x"},
     [f"name: '{PREFIX}nul\\x00x' is not a valid role name", "NUL"]),
    ("name-reserved-prefix", lambda p: {**p.login(), "name": "pg_" + PREFIX},
     [f"name: 'pg_{PREFIX}' is not a valid role name", "reserved"]),
    ("name-injection-reserved", lambda p: {**p.login(), "name": 'pg_x"; DROP ROLE postgres; --'},
     ["name: 'pg_x\"; DROP ROLE postgres; --' is not a valid role name"]),
    ("name-public", lambda p: {**p.login(), "name": "public"}, ["name: 'public' is not a valid role name"]),
    ("name-missing", lambda p: p.login(), ["missing required arguments: name"]),
    ("conn-limit-below-minus-one", lambda p: {**p.login(), "name": PREFIX + "bad", "conn_limit": -2},
     ["conn_limit: -2 is out of range"]),
    ("conn-limit-too-big", lambda p: {**p.login(), "name": PREFIX + "bad", "conn_limit": 2147483648},
     ["conn_limit: 2147483648 is out of range"]),
    ("conn-limit-wrong-type", lambda p: {**p.login(), "name": PREFIX + "bad", "conn_limit": "ten"},
     ["conn_limit", "'ten'"]),
    ("conn-limit-injection", lambda p: {**p.login(), "name": PREFIX + "bad", "conn_limit": "1; DROP ROLE postgres"},
     ["conn_limit", "1; DROP ROLE postgres"]),
    ("state-unknown", lambda p: {**p.login(), "name": PREFIX + "bad", "state": "gone"}, ["state", "gone"]),
    ("update-password-unknown", lambda p: {**p.login(), "name": PREFIX + "bad", "update_password": "sometimes"},
     ["update_password", "sometimes"]),
    ("replication-not-bool", lambda p: {**p.login(), "name": PREFIX + "bad", "replication": "maybe"},
     ["replication", "maybe"]),
    ("replication-number", lambda p: {**p.login(), "name": PREFIX + "bad", "replication": 2},
     ["replication", "2"]),
    ("replication-injection", lambda p: {**p.login(), "name": PREFIX + "bad",
                                         "replication": "false; ALTER ROLE postgres NOSUPERUSER"},
     ["replication", "false; ALTER ROLE postgres NOSUPERUSER"]),
    ("replication-list", lambda p: {**p.login(), "name": PREFIX + "bad", "replication": [False]},
     ["replication"]),
    ("password-empty", lambda p: {**p.login(), "name": PREFIX + "bad", "password": ""},
     ["password: the value is empty"]),
    ("password-md5-hash", lambda p: {**p.login(), "name": PREFIX + "bad", "password": "md5" + "ab" * 16},
     ["password: the value looks like an md5 hash"]),
    ("unreachable-server", lambda p: {**p.login(login_port=CLOSED_PORT), "name": PREFIX + "bad"},
     ["cannot reach PostgreSQL at postgres@127.0.0.1:", "CLOSED_PORT"]),
    ("wrong-login-password", lambda p: {**p.login(login_password="ru-wrong-Login-pw"), "name": PREFIX + "bad"},
     ["authentication failed for postgres@127.0.0.1", "login_password"]),
    ("login-user-injection", lambda p: {**p.login(login_user="postgres' dbname=template1"), "name": PREFIX + "bad"},
     ["authentication failed for postgres' dbname=template1@127.0.0.1", "login_user"]),
    ("non-superuser-login",
     lambda p: {**p.login(login_user=NONSUPER, login_password=NONSUPER_PASSWORD), "name": PREFIX + "bad"},
     [f"login_user: the role '{NONSUPER}' is not a superuser", "reading pg_authid"]),
]
CLOSED_PORT = free_port()
BAD_INPUT_PASSWORD = "ru-BadInput-pw-Qe17"


@pytest.mark.parametrize("args_fn,expected", [pytest.param(fn, exp, id=case) for case, fn, exp in BAD_INPUTS])
def test_bad_input_fails_clearly_and_changes_nothing(primary: PgCluster, nonsuper: str, args_fn: ArgsFn,
                                                     expected: list[str]) -> None:
    snapshot = authid_snapshot(primary)
    args = args_fn(primary)
    args.setdefault("password", BAD_INPUT_PASSWORD)
    result = run_module(MODULE, args)
    assert result.get("failed") is True, result
    for fragment in expected:
        fragment = fragment.replace("CLOSED_PORT", str(CLOSED_PORT))
        assert fragment in result["msg"], result["msg"]
    assert "Traceback" not in json.dumps(result)
    assert authid_snapshot(primary) == snapshot
    assert primary.scalar("SELECT rolsuper FROM pg_authid WHERE rolname = 'postgres'") is True
    assert_secret_absent(primary, BAD_INPUT_PASSWORD, result)
