# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_info.data_size and _info.tablespaces (what a copy of the primary needs, node_prepare's facts): each on a
connection of its own, closed after; a server that cannot be reached or a query that fails gives None and a
warning naming the fact and the server, never an exception. (Live: tests/integration/test_standby_clone.py.)"""

from __future__ import annotations

from typing import Any

import pytest

from ansible_collections.pgrepl.streaming.plugins.module_utils import _info
from ansible_collections.pgrepl.streaming.plugins.module_utils._connection import psycopg
from ansible_collections.pgrepl.streaming.plugins.module_utils._errors import PgreplError

PARAMS = {"login_host": "db1.example", "login_port": 5432, "login_db": "postgres", "login_user": "postgres"}


class FakeConnection:
    def __init__(self, rows: list[Any] | Exception) -> None:
        self.rows = rows
        self.closed = False
        self.queries: list[str] = []

    def close(self) -> None:
        self.closed = True


@pytest.fixture(name="conn")
def fixture_conn(monkeypatch: pytest.MonkeyPatch) -> FakeConnection:
    conn = FakeConnection([])

    def query(kind: str) -> Any:
        def run(c: FakeConnection, text: str, args: Any = None) -> Any:
            c.queries.append(text)
            if isinstance(c.rows, Exception):
                raise c.rows
            return c.rows[0] if kind == "one" else c.rows
        return run

    monkeypatch.setattr(_info, "connect", lambda params: conn)
    monkeypatch.setattr(_info, "query_one", query("one"))
    monkeypatch.setattr(_info, "query_all", query("all"))
    return conn


def test_data_size(conn: FakeConnection) -> None:
    conn.rows = [(123456,)]
    assert _info.data_size(PARAMS) == (123456, [])
    assert conn.queries == [_info.DATA_SIZE_QUERY] and conn.closed


def test_tablespaces(conn: FakeConnection) -> None:
    conn.rows = [{"name": "ts1", "location": "/srv/ts1", "size": 8192, "extra": 1}]
    assert _info.tablespaces(PARAMS) == ([{"name": "ts1", "location": "/srv/ts1", "size": 8192}], [])
    assert conn.queries == [_info.TABLESPACES_QUERY] and conn.closed


@pytest.mark.parametrize(("ask", "words"), [(_info.data_size, "the data size of"),
                                            (_info.tablespaces, "the tablespaces of")])
def test_a_failing_query_is_a_warning_and_the_connection_is_closed(
        conn: FakeConnection, ask: Any, words: str) -> None:
    conn.rows = psycopg.errors.InsufficientPrivilege("permission denied for function pg_tablespace_size\n")
    value, warnings = ask(PARAMS)
    assert value is None and conn.closed
    (warning,) = warnings
    assert warning.startswith(words) and "db1.example" in warning
    assert warning.endswith("unknown: permission denied for function pg_tablespace_size")


@pytest.mark.parametrize(("ask", "verb"), [(_info.data_size, "is"), (_info.tablespaces, "are")])
def test_a_server_that_cannot_be_reached_is_a_warning(monkeypatch: pytest.MonkeyPatch, ask: Any, verb: str) -> None:
    def refuse(params: dict[str, Any]) -> Any:
        raise PgreplError("connection refused")

    monkeypatch.setattr(_info, "connect", refuse)
    value, (warning,) = ask(PARAMS)
    assert value is None
    assert f"{verb} unknown: connection refused" in warning and "db1.example" in warning
