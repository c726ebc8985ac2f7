# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The replication role's pure logic: input validation, password comparison, planning, the statement sent."""

from __future__ import annotations

from typing import Any

import pytest

from ansible_collections.pgrepl.streaming.plugins.module_utils._changes import ChangeTracker
from ansible_collections.pgrepl.streaming.plugins.module_utils._errors import PgreplError
from ansible_collections.pgrepl.streaming.plugins.module_utils._names import validate_role_name
from ansible_collections.pgrepl.streaming.plugins.module_utils._replication_user import (
    SHARED_OBJECTS,
    Plan,
    RoleRequest,
    RoleState,
    _dependency_refusal,
    _role_statement,
    looks_like_md5,
    password_differs,
    plan_present,
    validate_conn_limit,
    validate_password,
    validate_request,
)
from ansible_collections.pgrepl.streaming.plugins.module_utils._scram import build_verifier, parse_verifier

SECRET = "unit-Secret-pw-8Hq"


def request(**overrides: Any) -> RoleRequest:
    values: dict[str, Any] = {"name": "replicator", "password": SECRET, "state": "present",
                              "update_password": "always", "conn_limit": -1}
    values.update(overrides)
    return RoleRequest(**values)


def existing(**overrides: Any) -> RoleState:
    values: dict[str, Any] = {"oid": 16384, "name": "replicator", "superuser": False, "login": True,
                              "replication": True, "conn_limit": -1, "stored_password": build_verifier(SECRET)}
    values.update(overrides)
    return RoleState(**values)


@pytest.mark.parametrize("name", [
    "replicator", "Replicator", "a", "a" * 63, "\u00e9" * 31, 'x"; DROP ROLE postgres; --', "PUBLIC",
    "current_user", "with space", "PG_upper_is_allowed",
])
def test_valid_role_names(name: str) -> None:
    assert validate_role_name(name) == name


@pytest.mark.parametrize("name,reason", [
    ("", "must not be empty"),
    ("a" * 64, "64 bytes"),
    ("\u00e9" * 32, "64 bytes"),
    ("bad\x00name", "NUL"),
    ("pg_replicator", "reserved"),
    ('pg_x"; DROP ROLE postgres; --', "reserved"),
    ("public", "reserved"),
    ("none", "reserved"),
    (123, "must be a string"),
])
def test_invalid_role_names_name_option_and_value(name: Any, reason: str) -> None:
    with pytest.raises(PgreplError) as info:
        validate_role_name(name)
    message = str(info.value)
    assert message.startswith("name: ")
    assert repr(name) in message
    assert reason in message


@pytest.mark.parametrize("password,reason", [
    ("", "empty"),
    ("a\x00b" + SECRET, "NUL"),
    (SECRET + "x" * 1100, "1024 bytes"),
    ("md5" + "0123456789abcdef" * 2, "md5"),
])
def test_invalid_passwords_never_echo_the_value(password: str, reason: str) -> None:
    with pytest.raises(PgreplError) as info:
        validate_password(password)
    message = str(info.value)
    assert message.startswith("password: ")
    assert reason in message
    if password:
        assert password not in message
    assert SECRET not in message


def test_valid_passwords() -> None:
    assert validate_password(None) is None
    assert validate_password(SECRET) == SECRET
    assert validate_password("x" * 1024) == "x" * 1024
    verifier = build_verifier(SECRET, salt=b"s" * 800)  # a verifier is stored as it is, whatever its length
    assert len(verifier) > 1024
    assert validate_password(verifier) == verifier


def test_md5_detection() -> None:
    assert looks_like_md5("md5" + "a" * 32)
    assert not looks_like_md5("md5" + "a" * 31)
    assert not looks_like_md5("md5" + "A" * 32)
    assert not looks_like_md5("md5 is not a hash at all, just a phrase")


@pytest.mark.parametrize("value", [-1, 0, 1, 2147483647])
def test_valid_conn_limits(value: int) -> None:
    assert validate_conn_limit(value) == value


@pytest.mark.parametrize("value,reason", [(-2, "out of range"), (2147483648, "out of range"),
                                          (True, "not an integer"), ("5", "not an integer")])
def test_invalid_conn_limits(value: Any, reason: str) -> None:
    with pytest.raises(PgreplError) as info:
        validate_conn_limit(value)
    assert str(info.value).startswith("conn_limit: ")
    assert str(value) in str(info.value) and reason in str(info.value)


@pytest.mark.parametrize("option,value", [("state", "gone"), ("update_password", "sometimes")])
def test_invalid_choices(option: str, value: str) -> None:
    params = {"name": "replicator", option: value}
    with pytest.raises(PgreplError) as info:
        validate_request(params)
    assert str(info.value).startswith(f"{option}: {value!r}")


def test_request_defaults() -> None:
    req = validate_request({"name": "replicator", "password": None, "state": None, "update_password": None,
                            "conn_limit": None})
    assert req == RoleRequest("replicator", None, "present", "always", -1)


def test_password_differs_against_stored_values() -> None:
    assert password_differs(None, SECRET)
    assert not password_differs(build_verifier(SECRET), SECRET)
    assert password_differs(build_verifier(SECRET + "2"), SECRET)
    assert password_differs("md5" + "0" * 32, SECRET)
    assert password_differs("SCRAM-SHA-256$garbage", SECRET)
    given = build_verifier(SECRET)
    assert not password_differs(given, given)
    assert password_differs(build_verifier(SECRET), given)  # same password, other salt: a different verifier
    assert password_differs(None, given)


def test_plan_creates_a_missing_role_with_password() -> None:
    tracker = ChangeTracker(check_mode=True)
    plan = plan_present(request(conn_limit=3), None, tracker)
    assert plan == Plan(create=True, set_password=True)
    assert tracker.changed and not tracker.apply
    assert tracker.diff() == {
        "before": {"state": "absent"},
        "after": {"state": "present", "login": True, "replication": True, "superuser": False, "conn_limit": 3,
                  "password_set": True, "password": "changed"},
    }


def test_plan_create_without_password() -> None:
    tracker = ChangeTracker(check_mode=False)
    plan = plan_present(request(password=None), None, tracker)
    assert plan.create and not plan.set_password
    assert tracker.after["password_set"] is False and tracker.after["password"] == "unchanged"


def test_plan_leaves_a_matching_role_alone() -> None:
    tracker = ChangeTracker(check_mode=False)
    plan = plan_present(request(), existing(), tracker)
    assert not plan.alters and not plan.create
    assert not tracker.changed
    assert tracker.before == tracker.after
    assert tracker.after["password"] == "unchanged"


def test_plan_adds_login_replication_and_conn_limit() -> None:
    tracker = ChangeTracker(check_mode=False)
    plan = plan_present(request(conn_limit=5), existing(login=False, replication=False), tracker)
    assert plan == Plan(add_login=True, add_replication=True, conn_limit=5)
    assert tracker.changed
    assert tracker.before["login"] is False and tracker.after["login"] is True
    assert tracker.before["conn_limit"] == -1 and tracker.after["conn_limit"] == 5


def test_plan_password_change_and_on_create() -> None:
    role = existing(stored_password=build_verifier("old password"))
    tracker = ChangeTracker(check_mode=False)
    assert plan_present(request(), role, tracker).set_password
    assert tracker.before["password"] == "unchanged" and tracker.after["password"] == "changed"
    tracker = ChangeTracker(check_mode=False)
    assert not plan_present(request(update_password="on_create"), role, tracker).set_password
    assert not tracker.changed


def test_plan_sets_a_password_on_a_role_without_one() -> None:
    tracker = ChangeTracker(check_mode=False)
    assert plan_present(request(), existing(stored_password=None), tracker).set_password
    assert tracker.before["password_set"] is False and tracker.after["password_set"] is True


def test_plan_refuses_an_existing_superuser() -> None:
    with pytest.raises(PgreplError) as info:
        plan_present(request(), existing(superuser=True), ChangeTracker(check_mode=True))
    assert "'replicator'" in str(info.value) and "SUPERUSER" in str(info.value)


def render(query: Any) -> str:
    return query.as_string(None)


def test_create_statement_sends_the_verifier_never_the_password() -> None:
    query, args = _role_statement(request(name='x"; DROP ROLE postgres; --', conn_limit=2),
                                  Plan(create=True, set_password=True))
    text = render(query)
    assert text == ('CREATE ROLE "x""; DROP ROLE postgres; --" WITH LOGIN REPLICATION NOSUPERUSER '
                    "CONNECTION LIMIT %s PASSWORD %s")
    assert args[0] == 2
    parse_verifier(args[1])
    assert SECRET not in args[1] and SECRET not in text


def test_alter_statement_contains_only_what_differs() -> None:
    query, args = _role_statement(request(), Plan(conn_limit=0))
    assert render(query) == 'ALTER ROLE "replicator" WITH CONNECTION LIMIT %s'
    assert args == [0]
    query, args = _role_statement(request(), Plan(add_login=True, add_replication=True))
    assert render(query) == 'ALTER ROLE "replicator" WITH LOGIN REPLICATION'
    assert args == []


def test_a_given_verifier_is_sent_as_it_is() -> None:
    verifier = build_verifier(SECRET)
    query, args = _role_statement(request(password=verifier), Plan(set_password=True))
    assert render(query) == 'ALTER ROLE "replicator" WITH PASSWORD %s'
    assert args == [verifier]


def test_drop_statement() -> None:
    query, args = _role_statement(request(), Plan(drop=True))
    assert render(query) == 'DROP ROLE "replicator"'
    assert args == []


def test_dependency_refusal_names_role_and_databases() -> None:
    message = str(_dependency_refusal("replicator", [(SHARED_OBJECTS, 1), ("app", 3)]))
    assert message.startswith("name: the role 'replicator' cannot be dropped")
    assert "'app': 3" in message and SHARED_OBJECTS in message and "REASSIGN OWNED" in message


# --- replication: false (an ordinary login role, such as pg_rewind's source role) -------------------------------

def test_replication_option_defaults_to_true_and_is_validated() -> None:
    assert validate_request({"name": "replicator"}).replication is True
    assert validate_request({"name": "replicator", "replication": None}).replication is True
    assert validate_request({"name": "pgrepl_rewind", "replication": False}).replication is False
    for value in ("maybe", "no", 0, 1):
        with pytest.raises(PgreplError) as info:
            validate_request({"name": "pgrepl_rewind", "replication": value})
        assert str(info.value) == f"replication: {value!r} is not a boolean (true or false)"


def test_plan_creates_an_ordinary_login_role() -> None:
    tracker = ChangeTracker(check_mode=True)
    plan = plan_present(request(name="pgrepl_rewind", replication=False), None, tracker)
    assert plan == Plan(create=True, set_password=True)
    assert tracker.diff()["after"] == {"state": "present", "login": True, "replication": False, "superuser": False,
                                       "conn_limit": -1, "password_set": True, "password": "changed"}


def test_create_statement_of_an_ordinary_login_role() -> None:
    query, args = _role_statement(request(name="pgrepl_rewind", replication=False),
                                  Plan(create=True, set_password=True))
    assert render(query) == ('CREATE ROLE "pgrepl_rewind" WITH LOGIN NOREPLICATION NOSUPERUSER CONNECTION LIMIT %s '
                             "PASSWORD %s")
    assert args[0] == -1
    parse_verifier(args[1])


def test_plan_removes_replication_when_not_wanted() -> None:
    tracker = ChangeTracker(check_mode=False)
    plan = plan_present(request(replication=False), existing(replication=True), tracker)
    assert plan == Plan(remove_replication=True)
    assert plan.alters and tracker.changed
    assert (tracker.before["replication"], tracker.after["replication"]) == (True, False)
    query, args = _role_statement(request(replication=False), plan)
    assert render(query) == 'ALTER ROLE "replicator" WITH NOREPLICATION'
    assert args == []


def test_plan_adds_replication_back() -> None:
    tracker = ChangeTracker(check_mode=False)
    plan = plan_present(request(), existing(replication=False), tracker)
    assert plan == Plan(add_replication=True)
    assert (tracker.before["replication"], tracker.after["replication"]) == (False, True)


def test_plan_leaves_a_matching_ordinary_role_alone() -> None:
    tracker = ChangeTracker(check_mode=False)
    plan = plan_present(request(replication=False), existing(replication=False), tracker)
    assert not plan.alters and not plan.create and not tracker.changed
    assert tracker.after["replication"] is False


def test_plan_ordinary_role_gets_login_without_replication() -> None:
    tracker = ChangeTracker(check_mode=False)
    plan = plan_present(request(replication=False), existing(login=False, replication=False), tracker)
    assert plan == Plan(add_login=True)
    assert render(_role_statement(request(replication=False), plan)[0]) == 'ALTER ROLE "replicator" WITH LOGIN'


def test_superuser_refusal_with_replication_false_names_the_kind_of_role() -> None:
    with pytest.raises(PgreplError) as info:
        plan_present(request(replication=False), existing(superuser=True), ChangeTracker(check_mode=True))
    message = str(info.value)
    assert message.startswith("name: the role 'replicator' exists and is a SUPERUSER")
    assert "ordinary login roles (replication false)" in message and "NOSUPERUSER" in message
