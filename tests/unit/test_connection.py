"""The connection core: option validation, libpq keywords, and error classification (no server needed)."""

from __future__ import annotations

import pytest

from ansible_collections.pgrepl.streaming.plugins.module_utils._connection import (
    PgreplError,
    conninfo_kwargs,
    describe_target,
    explain_connect_error,
    validate_connection_params,
)

PARAMS = {"login_user": "postgres", "login_host": "db1", "login_port": 5432, "login_db": "postgres",
          "login_password": "s3cret-pw", "ssl_mode": "require", "connect_timeout": 10}


def test_conninfo_kwargs_pass_values_as_keywords_not_a_string() -> None:
    kwargs = conninfo_kwargs({**PARAMS, "login_user": "x' host=evil"})
    # psycopg quotes each keyword itself: a value cannot add another keyword.
    assert kwargs["user"] == "x' host=evil"
    assert kwargs["host"] == "db1"
    assert kwargs["sslmode"] == "require"
    assert kwargs["password"] == "s3cret-pw"


def test_unix_socket_is_used_when_no_host_and_sslmode_is_left_out() -> None:
    kwargs = conninfo_kwargs({**PARAMS, "login_host": "", "login_unix_socket": "/run/postgresql"})
    assert kwargs["host"] == "/run/postgresql"
    assert "sslmode" not in kwargs


def test_describe_target_never_shows_the_password() -> None:
    assert "s3cret-pw" not in describe_target(PARAMS)
    assert describe_target(PARAMS) == "postgres@db1:5432/postgres"


@pytest.mark.parametrize(("params", "option"), [
    ({"login_port": 0}, "login_port"),
    ({"login_port": 70000}, "login_port"),
    ({"connect_timeout": 0}, "connect_timeout"),
    ({"login_user": "a\x00b"}, "login_user"),
])
def test_impossible_options_are_refused_naming_the_option(params: dict, option: str) -> None:
    with pytest.raises(PgreplError, match=f"^{option}: "):
        validate_connection_params({**PARAMS, **params})


@pytest.mark.parametrize(("libpq", "expected"), [
    ('FATAL:  password authentication failed for user "postgres"', "authentication failed for postgres@db1"),
    ("fe_sendauth: no password supplied", "login_password is not set"),
    ('FATAL:  no pg_hba.conf entry for host "10.0.0.1"', "no pg_hba.conf entry"),
    ('FATAL:  database "nope" does not exist', "login_db: the database does not exist"),
    ('FATAL:  role "nope" does not exist', "login_user: the role does not exist"),
    ("Connection refused\n\tIs the server running on that host?", "cannot reach PostgreSQL at postgres@db1:5432"),
])
def test_connect_errors_say_which_cause(libpq: str, expected: str) -> None:
    message = explain_connect_error(PARAMS, Exception(libpq))
    assert expected in message
    assert "s3cret-pw" not in message


def test_unreachable_message_names_host_and_port_options() -> None:
    message = explain_connect_error(PARAMS, Exception("Connection refused"))
    assert "login_host=db1" in message and "login_port=5432" in message


def test_as_os_user_refuses_when_not_root_and_not_that_user(monkeypatch) -> None:
    import pwd

    from ansible_collections.pgrepl.streaming.plugins.module_utils import _connection

    target = pwd.getpwnam("postgres")
    monkeypatch.setattr(_connection.os, "geteuid", lambda: target.pw_uid + 12345)
    with pytest.raises(_connection.PgreplError, match="login_os_user: connecting as OS user 'postgres' needs"):
        with _connection.as_os_user("postgres"):
            pass


def test_as_os_user_is_a_no_op_without_a_user_or_as_that_user(monkeypatch) -> None:
    import pwd

    from ansible_collections.pgrepl.streaming.plugins.module_utils import _connection

    calls: list[int] = []
    monkeypatch.setattr(_connection.os, "seteuid", calls.append)
    with _connection.as_os_user(None):
        pass
    monkeypatch.setattr(_connection.os, "geteuid", lambda: pwd.getpwnam("postgres").pw_uid)
    with _connection.as_os_user("postgres"):
        pass
    assert calls == []


def test_as_os_user_switches_back_even_when_the_block_fails(monkeypatch) -> None:
    import pwd

    from ansible_collections.pgrepl.streaming.plugins.module_utils import _connection

    target = pwd.getpwnam("postgres")
    seen: list[tuple[str, int]] = []
    monkeypatch.setattr(_connection.os, "geteuid", lambda: 0)
    monkeypatch.setattr(_connection.os, "seteuid", lambda uid: seen.append(("uid", uid)))
    monkeypatch.setattr(_connection.os, "setegid", lambda gid: seen.append(("gid", gid)))
    with pytest.raises(RuntimeError):
        with _connection.as_os_user("postgres"):
            raise RuntimeError("boom")
    assert seen == [("gid", target.pw_gid), ("uid", target.pw_uid), ("uid", 0), ("gid", 0)]
