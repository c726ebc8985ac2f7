"""The connection core without a server: options and their community.postgresql names, libpq keywords,
connect_params checks, the classification of failed connections, and what reaches Ansible's output."""

from __future__ import annotations

import re
import socket
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from ansible_collections.pgrepl.streaming.plugins.doc_fragments.connection import ModuleDocFragment
from ansible_collections.pgrepl.streaming.plugins.module_utils import _connection
from ansible_collections.pgrepl.streaming.plugins.module_utils._connection import (
    CAUSES,
    ConnectFacts,
    ConnectFailure,
    classify,
    connection_argument_spec,
    conninfo_kwargs,
    describe_target,
    diagnose_connect_error,
    explain_connect_failure,
    failure_of,
    libpq_keywords,
    printable,
    probe_libpq,
    refused_message,
    session_settings,
    timeout_advice,
    validate_connect_params,
    validate_connection_params,
    with_timeout_advice,
)
from ansible_collections.pgrepl.streaming.plugins.module_utils._errors import PgreplError
from ansible_collections.pgrepl.streaming.plugins.module_utils._names import ascii_lower

REPO = Path(__file__).resolve().parents[4]
PARAMS = {"login_user": "postgres", "login_host": "db1", "login_port": 5432, "login_db": "postgres",
          "login_password": "s3cret-pw", "ssl_mode": "require", "connect_timeout": 10}


# ------------------------------------------------------------------------------------------------ options

def test_conninfo_kwargs_pass_values_as_keywords_not_a_string() -> None:
    kwargs = conninfo_kwargs({**PARAMS, "login_user": "x' host=evil"})
    # psycopg quotes each keyword itself: a value cannot add another keyword.
    assert kwargs["user"] == "x' host=evil"
    assert kwargs["host"] == "db1"
    assert kwargs["sslmode"] == "require"
    assert kwargs["password"] == "s3cret-pw"
    assert kwargs["application_name"] == "pgrepl.streaming"


def test_unix_socket_is_used_when_no_host_and_tls_keywords_are_left_out() -> None:
    kwargs = conninfo_kwargs({**PARAMS, "login_host": "", "login_unix_socket": "/run/postgresql",
                              "ssl_cert": "/c.crt", "ssl_key": "/c.key", "ssl_rootcert": "/ca.crt"})
    assert kwargs["host"] == "/run/postgresql"
    assert not {"sslmode", "sslcert", "sslkey", "sslrootcert"} & set(kwargs)


def test_client_certificate_and_connect_params_reach_libpq() -> None:
    kwargs = conninfo_kwargs({**PARAMS, "ssl_cert": "/etc/pg/client.crt", "ssl_key": "/etc/pg/client.key",
                              "ssl_rootcert": "/etc/pg/ca.crt",
                              "connect_params": {"keepalives_idle": 30, "target_session_attrs": "read-write"}})
    assert kwargs["sslcert"] == "/etc/pg/client.crt" and kwargs["sslkey"] == "/etc/pg/client.key"
    assert kwargs["sslrootcert"] == "/etc/pg/ca.crt"
    assert kwargs["keepalives_idle"] == "30" and kwargs["target_session_attrs"] == "read-write"


def test_tcp_connections_get_keepalives_that_connect_params_may_change() -> None:
    kwargs = conninfo_kwargs(PARAMS)
    assert (kwargs["keepalives"], kwargs["keepalives_idle"], kwargs["keepalives_interval"],
            kwargs["keepalives_count"]) == ("1", "10", "5", "3")
    assert kwargs["tcp_user_timeout"] == "30000"  # this host's libpq (15) knows it
    assert conninfo_kwargs({**PARAMS, "connect_params": {"keepalives_idle": 60}})["keepalives_idle"] == "60"
    # A unix socket has no TCP to keep alive.
    socket_kwargs = conninfo_kwargs({**PARAMS, "login_host": "", "login_unix_socket": "/run/postgresql"})
    assert not [key for key in socket_kwargs if key.startswith(("keepalives", "tcp_"))]


def test_every_session_gets_lock_timeout_and_statement_timeout_in_milliseconds() -> None:
    assert session_settings({}) == {"lock_timeout": "30000", "statement_timeout": "0"}
    assert session_settings({"lock_timeout": 0, "statement_timeout": 600}) == {
        "lock_timeout": "0", "statement_timeout": "600000"}


def test_a_statement_stopped_by_a_timeout_is_explained_naming_the_option() -> None:
    assert "lock_timeout" in timeout_advice("55P03") and "pg_locks" in timeout_advice("55P03")
    assert "statement_timeout" in timeout_advice("57014")
    assert timeout_advice("42501") == "" and timeout_advice(None) == ""
    exc = psycopg.errors.LockNotAvailable("canceling statement due to lock timeout")
    assert "lock_timeout" in refused_message(exc)


def test_a_reworded_server_error_gets_the_advice_of_the_timeout_it_came_from() -> None:
    def reworded() -> None:
        try:
            raise psycopg.errors.LockNotAvailable("canceling statement due to lock timeout")
        except psycopg.Error:
            raise PgreplError("name: could not alter the role 'r'") from None

    def wrapped() -> None:
        try:
            reworded()
        except PgreplError as exc:
            raise PgreplError(f"role: {exc}") from None

    for raiser, start in ((reworded, "name: could not"), (wrapped, "role: name: could not")):
        with pytest.raises(PgreplError) as err:
            raiser()
        message = with_timeout_advice(err.value)
        assert message.startswith(start) and message.count("it waited lock_timeout") == 1
    assert with_timeout_advice(PgreplError("plain")) == "plain"


def test_describe_target_never_shows_the_password() -> None:
    assert "s3cret-pw" not in describe_target(PARAMS)
    assert describe_target(PARAMS) == "postgres@db1:5432/postgres"


@pytest.mark.parametrize(("params", "option"), [
    ({"login_port": 0}, "login_port"),
    ({"login_port": 70000}, "login_port"),
    ({"connect_timeout": 0}, "connect_timeout"),
    ({"lock_timeout": -1}, "lock_timeout"),
    ({"statement_timeout": 2147484}, "statement_timeout"),
    ({"login_user": "a\x00b"}, "login_user"),
    ({"session_role": "a\x00b"}, "session_role"),
    ({"session_role": ""}, "session_role"),
    ({"ssl_key": "/k\x00"}, "ssl_key"),
    ({"connect_params": {"sslmod": "require"}}, "connect_params"),
])
def test_impossible_options_are_refused_naming_the_option(params: dict, option: str) -> None:
    with pytest.raises(PgreplError, match=f"^{option}: "):
        validate_connection_params({**PARAMS, **params})


KEYWORDS = {"keepalives": False, "password": True, "sslpassword": True, "port": False, "options": False,
            "target_session_attrs": False, "client_encoding": False, "replication": False}


@pytest.mark.parametrize(("value", "message"), [
    ({"keepalive": 1}, "connect_params: 'keepalive' is not a connection keyword of this host's libpq"),
    ({"port": 5433}, "connect_params: 'port' is not accepted here; use login_port"),
    ({"client_encoding": "LATIN1"}, "connect_params: 'client_encoding' is not accepted here; use nothing: the module"),
    ({"replication": "true"}, "connect_params: 'replication' is not accepted here"),
    ({"password": "x"}, "connect_params: 'password' holds a secret"),
    ({"sslpassword": "x"}, "connect_params: 'sslpassword' holds a secret"),
    ({"keepalives": True}, "connect_params.keepalives: expected a string or an integer"),
    ({"options": ["-c", "x=1"]}, "connect_params.options: expected a string or an integer"),
    ({"options": "-c a=\x00"}, "connect_params.options: the value contains a NUL character"),
    ("keepalives=1", "connect_params: expected a dict of libpq keywords, got str"),
])
def test_connect_params_refusals_name_the_key(value: Any, message: str) -> None:
    with pytest.raises(PgreplError) as err:
        validate_connect_params(value, KEYWORDS)
    assert str(err.value).startswith(message)
    assert "'x'" not in str(err.value)  # a refused secret is never repeated


def test_connect_params_values_become_text() -> None:
    assert validate_connect_params({"keepalives": 1, "options": "-c statement_timeout=5s"}, KEYWORDS) == {
        "keepalives": "1", "options": "-c statement_timeout=5s"}
    assert validate_connect_params({}, KEYWORDS) == {} and validate_connect_params(None, KEYWORDS) == {}


def test_this_hosts_libpq_marks_its_secret_keywords() -> None:
    keywords = libpq_keywords()
    assert keywords is not None
    assert keywords["password"] is True and keywords["sslpassword"] is True
    assert keywords["keepalives"] is False and keywords["target_session_attrs"] is False


# ------------------------------------------------------------------------------------------------ community names

COMMUNITY_KEYS = ("login_user", "login", "login_password", "login_host", "host", "login_unix_socket", "unix_socket",
                  "login_port", "port", "login_db", "db", "database", "ssl_mode", "ca_cert", "ssl_rootcert",
                  "ssl_cert", "ssl_key", "connect_params", "session_role", "trust_input")


def test_every_community_postgresql_connection_key_is_an_option_or_alias() -> None:
    names = set()
    for name, spec in connection_argument_spec().items():
        names.add(name)
        names.update(spec.get("aliases", []))
    assert set(COMMUNITY_KEYS) <= names


def test_doc_fragment_matches_the_argument_spec() -> None:
    documented = yaml.safe_load(ModuleDocFragment.DOCUMENTATION)["options"]
    spec = connection_argument_spec()
    assert set(documented) == set(spec)
    for name, option in spec.items():
        doc = documented[name]
        assert doc["type"] == option["type"], name
        assert doc.get("default") == option.get("default"), name
        assert sorted(doc.get("aliases", [])) == sorted(option.get("aliases", [])), name
        assert doc.get("choices") == option.get("choices"), name


def test_the_connection_group_holds_exactly_the_modules_with_connection_options() -> None:
    runtime = yaml.safe_load((REPO / "meta" / "runtime.yml").read_text(encoding="utf-8"))
    with_connection = set()
    for path in (REPO / "plugins" / "modules").glob("*.py"):
        text = path.read_text(encoding="utf-8")
        if re.search(r"extends_documentation_fragment:\s*\n\s*-\s*pgrepl\.streaming\.connection\b", text):
            with_connection.add(path.stem)
    assert with_connection
    assert set(runtime["action_groups"]["connection"]) == with_connection


# ------------------------------------------------------------------------------------------------ failures

@pytest.mark.parametrize(("facts", "cause", "unreachable"), [
    (ConnectFacts(sqlstate="28P01", used_password=True, answered=True), "password", False),
    (ConnectFacts(sqlstate="28000", answered=True), "hba", False),
    (ConnectFacts(sqlstate="28000", used_password=True, answered=True), "login_refused", False),
    (ConnectFacts(sqlstate="3D000", used_password=True, answered=True), "database", False),
    (ConnectFacts(sqlstate="42501", answered=True), "privilege", False),
    (ConnectFacts(sqlstate="57P03", answered=True), "not_accepting", True),
    (ConnectFacts(sqlstate="57P01", answered=True), "not_accepting", True),
    (ConnectFacts(sqlstate="53300", answered=True), "too_many", True),
    (ConnectFacts(sqlstate="55000", answered=True), "refused", False),
    (ConnectFacts(needs_password=True, used_password=True, answered=True), "no_password", False),
    (ConnectFacts(answered=False), "unreachable", True),
    (ConnectFacts(timed_out=True), "timeout", True),
    (ConnectFacts(connected=True, answered=True), "transient", True),
    (ConnectFacts(answered=True, tls_required=True), "tls", False),
    (ConnectFacts(answered=True, used_password=True), "auth_client", False),
    (ConnectFacts(answered=True), "closed", True),
    (ConnectFacts(answered=False, invalid=True), "invalid", False),
    # PQping instead of libpq's verbose errors: the password facts decide.
    (ConnectFacts(exact=False, answered=True, used_password=True), "password", False),
    (ConnectFacts(exact=False, answered=True), "hba", False),
    (ConnectFacts(exact=False, answered=True, rejecting=True), "not_accepting", True),
    (ConnectFacts(exact=False, answered=False), "unreachable", True),
])
def test_failed_connections_are_classified_from_libpq_facts(
        facts: ConnectFacts, cause: str, unreachable: bool) -> None:
    assert classify(facts) == cause
    failure = failure_of(facts, "whatever the words")
    assert (failure.cause, failure.unreachable) == (cause, unreachable)


@pytest.mark.parametrize(("cause", "sqlstate", "expected"), [
    ("password", "28P01", "authentication failed for postgres@db1:5432/postgres: check login_user and login_password"),
    ("no_password", None, "asks for a password and login_password is not set"),
    ("hba", "28000", "has no pg_hba.conf entry that admits this connection"),
    ("database", "3D000", "login_db: the database does not exist on postgres@db1:5432/postgres (SQLSTATE 3D000)"),
    ("unreachable", None, "cannot reach PostgreSQL at postgres@db1:5432/postgres (login_host=db1, login_port=5432)"),
    ("timeout", None, "connect_timeout=10"),
    ("not_accepting", "57P03", "cannot reach PostgreSQL at postgres@db1:5432/postgres"),
    ("tls", None, "check ssl_mode (require), ssl_rootcert, ssl_cert and ssl_key"),
    ("privilege", "42501", "(SQLSTATE 42501); grant it, or check login_user and login_db"),
])
def test_messages_name_the_cause_and_quote_the_server_whole(
        cause: str, sqlstate: str | None, expected: str) -> None:
    words = 'ВАЖНО:  пользователь "postgres" не прошёл проверку подлинности (по паролю)'
    failure = ConnectFailure(cause, cause in _connection.TRANSIENT_CAUSES, sqlstate, words)
    message = explain_connect_failure(PARAMS, failure)
    assert expected in message
    assert message.endswith(f"libpq said: {words}")
    assert "s3cret-pw" not in message


def test_every_cause_has_words() -> None:
    assert set(_connection.CAUSE_TEXT) == set(CAUSES)
    for cause in CAUSES:
        explain_connect_failure(PARAMS, ConnectFailure(cause, False, None, "x"))


def test_a_timeout_is_not_asked_again() -> None:
    class NoLib:
        def __getattr__(self, name: str) -> Any:
            raise AssertionError(f"libpq was called ({name}) after a timeout")

    failure = diagnose_connect_error({"host": "db1"}, psycopg.errors.ConnectionTimeout("timeout expired"), NoLib())
    assert failure.cause == "timeout" and failure.unreachable


class FakeLibpq:
    """libpq's C API as probe_libpq calls it: a walk through connection states over a socket that is writable."""

    def __init__(self, states: list[int], message: bytes, needs: int = 0, used: int = 0) -> None:
        self.states = states
        self.status = 2  # CONNECTION_STARTED
        self.message = message
        self.needs, self.used = needs, used
        self.sock, self.peer = socket.socketpair()
        self.sock.sendall(b"")
        self.peer.sendall(b"x")  # readable too
        self.verbosity = None
        self.finished = False

    def PQconnectStart(self, conninfo: bytes) -> int:  # noqa: N802 (libpq's names)
        return 1

    def PQsetErrorVerbosity(self, conn: int, verbosity: int) -> int:  # noqa: N802
        self.verbosity = verbosity
        return 1

    def PQstatus(self, conn: int) -> int:  # noqa: N802
        return self.status

    def PQsocket(self, conn: int) -> int:  # noqa: N802
        return self.sock.fileno()

    def PQconnectPoll(self, conn: int) -> int:  # noqa: N802
        self.status = self.states.pop(0)
        return 0 if self.status == 1 else 3 if self.status == 0 else 1

    def PQerrorMessage(self, conn: int) -> bytes:  # noqa: N802
        return self.message

    def PQconnectionNeedsPassword(self, conn: int) -> int:  # noqa: N802
        return self.needs

    def PQconnectionUsedPassword(self, conn: int) -> int:  # noqa: N802
        return self.used

    def PQfinish(self, conn: int) -> None:  # noqa: N802
        self.finished = True
        self.sock.close()
        self.peer.close()


def test_the_probe_reads_the_sqlstate_of_a_translated_message() -> None:
    lib = FakeLibpq([3, 4, 1], 'подключиться к серверу не удалось: ВАЖНО:  28P01: пользователь "x" не прошёл '
                               'проверку подлинности\nLOCATION:  auth_failed, auth.c:334\n'.encode(), used=1)
    facts = probe_libpq(lib, "host=db1", 5.0, tls_required=False)
    assert lib.verbosity == 2 and lib.finished
    assert facts == ConnectFacts(sqlstate="28P01", used_password=True, answered=True)


def test_the_probe_tells_nothing_answered_from_a_server_that_hung_up() -> None:
    refused = probe_libpq(FakeLibpq([1], b"Connection refused\n"), "host=db1", 5.0, tls_required=False)
    assert refused.answered is False and classify(refused) == "unreachable"
    hung_up = probe_libpq(FakeLibpq([3, 7, 1], b"server does not support SSL, but SSL was required\n"), "host=db1",
                          5.0, tls_required=True)
    assert hung_up.answered is True and classify(hung_up) == "tls"


# ------------------------------------------------------------------------------------------------ output

def test_printable_turns_undecodable_bytes_into_escapes() -> None:
    koi8 = "Привет".encode("koi8-r").decode("utf-8", "surrogateescape")
    result = printable({"name": koi8, "rows": [("ok", koi8)], "n": 3, koi8: None, "plain": "Привет"})
    assert result == {"name": "\\xf0\\xd2\\xc9\\xd7\\xc5\\xd4", "rows": [["ok", "\\xf0\\xd2\\xc9\\xd7\\xc5\\xd4"]],
                      "n": 3, "\\xf0\\xd2\\xc9\\xd7\\xc5\\xd4": None, "plain": "Привет"}
    assert printable("\ud800 lone") == "\\ud800 lone"


def test_server_words_decode_the_raw_message_as_utf8() -> None:
    class Result:
        error_message = "ОШИБКА:  деление на ноль\n".encode()

    class Failed(Exception):
        pgresult = Result()

    assert _connection.server_words(Failed("ERROR:  ?????? ?? ????")) == "ОШИБКА:  деление на ноль"
    assert _connection.server_words(ValueError(" plain ")) == "plain"


@pytest.mark.parametrize(("text", "folded"), [
    ("IntervalStyle", "intervalstyle"),
    ("WAL_LEVEL", "wal_level"),
    ("\u0130nterval", "\u0130nterval"),  # Turkish dotted capital I: not an A-Z letter, the server keeps it
    ("\u212a", "\u212a"),  # Kelvin sign: str.lower() would make it k
])
def test_ascii_lower_folds_as_the_server_does(text: str, folded: str) -> None:
    assert ascii_lower(text) == folded


# ------------------------------------------------------------------------------------------------ os user

def test_as_os_user_refuses_when_not_root_and_not_that_user(monkeypatch: pytest.MonkeyPatch) -> None:
    import pwd

    target = pwd.getpwnam("postgres")
    monkeypatch.setattr(_connection.os, "geteuid", lambda: target.pw_uid + 12345)
    with pytest.raises(PgreplError, match="login_os_user: connecting as OS user 'postgres' needs"):
        with _connection.as_os_user("postgres"):
            pass


def test_as_os_user_is_a_no_op_without_a_user_or_as_that_user(monkeypatch: pytest.MonkeyPatch) -> None:
    import pwd

    calls: list[int] = []
    monkeypatch.setattr(_connection.os, "seteuid", calls.append)
    with _connection.as_os_user(None):
        pass
    monkeypatch.setattr(_connection.os, "geteuid", lambda: pwd.getpwnam("postgres").pw_uid)
    with _connection.as_os_user("postgres"):
        pass
    assert calls == []


def test_as_os_user_switches_back_even_when_the_block_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    import pwd

    target = pwd.getpwnam("postgres")
    seen: list[tuple[str, int]] = []
    monkeypatch.setattr(_connection.os, "geteuid", lambda: 0)
    monkeypatch.setattr(_connection.os, "seteuid", lambda uid: seen.append(("uid", uid)))
    monkeypatch.setattr(_connection.os, "setegid", lambda gid: seen.append(("gid", gid)))
    monkeypatch.setenv("HOME", "/root")
    homes: list[str] = []
    with pytest.raises(RuntimeError):
        with _connection.as_os_user("postgres"):
            homes.append(_connection.os.environ["HOME"])
            raise RuntimeError("boom")
    assert seen == [("gid", target.pw_gid), ("uid", target.pw_uid), ("uid", 0), ("gid", 0)]
    # libpq reads the user's own ~/.postgresql (root's is unreadable to it: a TLS connection would fail), and
    # root's HOME comes back after.
    assert homes == [target.pw_dir] and _connection.os.environ["HOME"] == "/root"
