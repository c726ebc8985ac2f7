# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""server_start's pure logic: options, the action, the outcome, pg_ctl's command, the wait and its timeout."""

from __future__ import annotations

from typing import Any

import pytest

from ansible_collections.pgrepl.streaming.plugins.module_utils import _start
from ansible_collections.pgrepl.streaming.plugins.module_utils._errors import PgreplConnectionError, PgreplError
from ansible_collections.pgrepl.streaming.plugins.module_utils._start import (
    outcome_of,
    pg_ctl_command,
    plan_action,
    start_request,
    wait_for_server,
    wait_query,
)

BASE = {"data_dir": "/var/lib/postgresql/15/main", "service": "postgresql@15-main"}


def request(**overrides: Any) -> _start.StartRequest:
    return start_request(dict(BASE, **overrides))


def test_defaults():
    req = request()
    wanted = ("started", "accepting", 120, None, "postgres")
    assert (req.state, req.wait_for, req.timeout, req.enabled, req.os_user) == wanted


@pytest.mark.parametrize("overrides, message", [
    ({"data_dir": "relative/dir"}, "^data_dir: "),
    ({"data_dir": "/"}, "^data_dir: "),
    ({"service": "--now"}, r"^service: '--now' is not a systemd unit name"),
    ({"service": "a b"}, r"^service: 'a b' is not a systemd unit name"),
    ({"state": "stopped"}, r"^state: 'stopped' is not one of started, restarted"),
    ({"wait_for": "ready"}, r"^wait_for: 'ready' is not one of accepting, streaming, none"),
    ({"timeout": 0}, r"^timeout: 0 is not a number of seconds"),
    ({"timeout": "10"}, r"^timeout: '10' is not an integer"),
    ({"service": None}, "^log_file: required without service"),
    ({"service": None, "log_file": "server.log"}, "^log_file: "),
    ({"service": None, "log_file": "/tmp/pg.log", "enabled": True}, "^enabled: needs service"),
    ({"enabled": "yes"}, r"^enabled: 'yes' is not a boolean"),
])
def test_bad_options_are_refused_naming_the_option(overrides, message):
    with pytest.raises(PgreplError, match=message):
        request(**overrides)


@pytest.mark.parametrize("running, state, action", [
    (False, "started", "start"), (False, "restarted", "start"), (True, "started", None), (True, "restarted", "restart"),
])
def test_action(running, state, action):
    assert plan_action(running, state) == action


@pytest.mark.parametrize("action, check_mode, outcome", [
    ("start", False, "started"), ("restart", False, "restarted"), (None, False, "already_running"),
    ("start", True, "would_start"), ("restart", True, "would_restart"), (None, True, "already_running"),
])
def test_outcome(action, check_mode, outcome):
    assert outcome_of(action, check_mode) == outcome


def test_pg_ctl_command_waits_and_logs():
    req = request(service=None, log_file="/srv/pg.log", timeout=30)
    assert pg_ctl_command("/usr/lib/postgresql/15/bin/pg_ctl", "start", req) == [
        "/usr/lib/postgresql/15/bin/pg_ctl", "start", "-D", "/var/lib/postgresql/15/main", "-w", "-t", "30",
        "-l", "/srv/pg.log"]


def test_wait_queries():
    assert "pg_stat_wal_receiver" in wait_query("streaming")
    assert "pg_stat_wal_receiver" not in wait_query("accepting")


class FakeServer:
    """What connect/query_one see: a list of answers, each an exception to raise or a value to return."""

    def __init__(self, answers: list[Any]) -> None:
        self.answers = answers
        self.asked = 0

    def connect(self, params: dict[str, Any]) -> FakeServer:
        answer = self.answers[min(self.asked, len(self.answers) - 1)]
        self.asked += 1
        if isinstance(answer, Exception):
            raise answer
        self.current = answer
        return self

    def query_one(self, conn: Any, query: str) -> tuple:
        return (self.current,)

    def close(self) -> None:
        pass


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def run_wait(monkeypatch, answers: list[Any], **overrides: Any) -> tuple[str, float]:
    server = FakeServer(answers)
    monkeypatch.setattr(_start, "connect", server.connect)
    monkeypatch.setattr(_start, "query_one", server.query_one)
    clock = Clock()
    return wait_for_server(request(**overrides), {"connect_timeout": 10}, clock=clock, sleep=clock.sleep)


def test_wait_polls_through_a_starting_server_until_it_streams(monkeypatch):
    starting = PgreplConnectionError("the database system is starting up", unreachable=True)
    last, waited = run_wait(monkeypatch, [starting, starting, "startup", "streaming"], wait_for="streaming")
    assert last == "streaming" and waited == pytest.approx(3 * _start.POLL_INTERVAL)


def test_wait_times_out_saying_what_it_saw_last(monkeypatch):
    with pytest.raises(PgreplError, match=r"^timeout: .* was not its WAL receiver streaming within 2s "
                                          r"\(last seen: no WAL receiver\)") as err:
        run_wait(monkeypatch, ["no WAL receiver"], wait_for="streaming", timeout=2)
    # The code the standby role decides by (failed.yml), whatever the message says.
    assert err.value.reason == "not_streaming"
    with pytest.raises(PgreplError) as err:
        run_wait(monkeypatch, [PgreplConnectionError("starting", unreachable=True)], wait_for="accepting", timeout=2)
    assert err.value.reason == "not_accepting"


def test_a_refused_login_fails_at_once(monkeypatch):
    refused = PgreplConnectionError("password authentication failed for user \"postgres\"", unreachable=False)
    with pytest.raises(PgreplError, match="^wait_for: .* refuses the connection: password authentication failed"):
        run_wait(monkeypatch, [refused])


def test_accepting_is_done_at_the_first_answer(monkeypatch):
    assert run_wait(monkeypatch, ["accepting"]) == ("accepting", 0.0)
