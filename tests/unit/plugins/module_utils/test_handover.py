# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""handover's decisions without a server: the options, this server's state, what is done or refused for each
state of both sides, when an abandoned handover may be rolled back, the journal, the bounded queries."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from ansible_collections.pgrepl.streaming.plugins.module_utils._errors import PgreplError
from ansible_collections.pgrepl.streaming.plugins.module_utils._handover import (
    ACT_FENCE_ONLY,
    ACT_HAND_OVER,
    HANDOVER_SPEC,
    RUNNING_PRIMARY,
    RUNNING_STANDBY,
    STOPPED_CLEAN,
    STOPPED_STANDBY,
    STOPPED_UNCLEAN,
    Interruption,
    Journal,
    QueryTimeout,
    TargetFacts,
    bounded,
    decide,
    handover_request,
    local_state,
    may_roll_back,
    target_problems,
    time_limit,
)
from ansible_collections.pgrepl.streaming.plugins.module_utils._promotion import RecoveryFacts

DATA_DIR = "/var/lib/postgresql/15/main"


def params(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"mode": "switchover", "data_dir": DATA_DIR, "bin_dir": None,
                            "service": "postgresql@15-main", "os_user": "postgres", "log_file": None,
                            "stop_timeout": 300, "wait_seconds": 60, "allow_paused": False,
                            "login_host": "10.0.0.12", "login_port": 5432, "login_user": "replicator",
                            "login_db": "postgres"}
    base.update(overrides)
    return base


def recovery(**overrides: Any) -> RecoveryFacts:
    values: dict[str, Any] = {
        "in_recovery": True, "paused": False, "pause_state": "not paused", "received_lsn": "0/3018080",
        "replayed_lsn": "0/3018080", "received_timeline": None, "checkpoint_timeline": 1,
        "min_recovery_end_timeline": 1, "wal_file": None, "may_promote": True,
    }
    values.update(overrides)
    return RecoveryFacts(**values)


def target(**overrides: Any) -> TargetFacts:
    system_identifier = overrides.pop("system_identifier", "7312345678901234567")
    return TargetFacts(recovery=recovery(**overrides), system_identifier=system_identifier, version_num=150010,
                       current_user="replicator")


# ---------------------------------------------------------------------------------------------------- options


def test_the_spec_and_its_defaults() -> None:
    spec = HANDOVER_SPEC.argument_spec()
    assert {"mode", "data_dir", "bin_dir", "service", "os_user", "log_file", "stop_timeout", "wait_seconds",
            "allow_paused", "login_host", "login_password"} <= set(spec)
    assert spec["mode"]["choices"] == ["switchover", "failover"] and spec["mode"]["default"] == "switchover"
    assert spec["login_password"]["no_log"] is True
    request = handover_request(params())
    assert (request.mode, request.wait_seconds, request.allow_paused) == ("switchover", 60, False)
    assert request.stop.mode == "fast" and request.stop.require_clean is True and request.stop.timeout == 300
    assert request.journal_path == DATA_DIR + ".pgrepl-handover"
    assert request.target == "replicator@10.0.0.12:5432/postgres"
    # A failover may stop a server that does not shut down cleanly.
    assert handover_request(params(mode="failover")).stop.require_clean is False


@pytest.mark.parametrize(("overrides", "message"), [
    ({"login_host": ""}, "login_host: give the address of the standby to promote"),
    ({"login_host": None}, "login_host: give the address"),
    ({"service": None}, "log_file: required without service"),
    ({"service": None, "log_file": "pg.log"}, "log_file: 'pg.log' must be an absolute path"),
    ({"mode": "takeover"}, "mode"),
    ({"wait_seconds": 0}, "wait_seconds: 0 is not a number of seconds"),
    ({"wait_seconds": 86401}, "wait_seconds: 86401"),
    ({"stop_timeout": 0}, "timeout: 0 is not a number of seconds"),
    ({"service": "--now"}, "service: '--now' is not a systemd unit name"),
    ({"data_dir": "pgdata"}, "data_dir: 'pgdata' must be an absolute path"),
    ({"allow_paused": "maybe"}, "allow_paused"),
])
def test_bad_options_are_refused_naming_the_option(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(PgreplError, match=message.replace("(", r"\(")):
        handover_request(params(**overrides))


def test_without_a_unit_a_log_file_is_enough() -> None:
    request = handover_request(params(service=None, log_file="/srv/pg.log/"))
    assert request.stop.service is None and request.log_file == "/srv/pg.log"


# ---------------------------------------------------------------------------------------------------- this server


@pytest.mark.parametrize(("running", "state", "expected"), [
    (True, "in production", RUNNING_PRIMARY),
    (True, "in archive recovery", RUNNING_STANDBY),
    (True, "in crash recovery", RUNNING_STANDBY),
    (False, "shut down", STOPPED_CLEAN),
    (False, "shut down in recovery", STOPPED_STANDBY),
    (False, "in production", STOPPED_UNCLEAN),
    (False, "in crash recovery", STOPPED_UNCLEAN),
    (False, None, STOPPED_UNCLEAN),
])
def test_local_state(running: bool, state: str | None, expected: str) -> None:
    assert local_state({"postmaster_running": running, "cluster_state": state}) == expected


# ---------------------------------------------------------------------------------------------------- decisions


@pytest.mark.parametrize("mode", ["switchover", "failover"])
def test_a_running_primary_and_a_standby_target_hand_over(mode: str) -> None:
    assert decide(mode, RUNNING_PRIMARY, target_in_recovery=True) == ACT_HAND_OVER


@pytest.mark.parametrize("mode", ["switchover", "failover"])
def test_two_primaries_are_refused(mode: str) -> None:
    with pytest.raises(PgreplError, match="two primaries already. Nothing was done"):
        decide(mode, RUNNING_PRIMARY, target_in_recovery=False)


@pytest.mark.parametrize("local", [RUNNING_STANDBY, STOPPED_STANDBY])
@pytest.mark.parametrize("in_recovery", [True, False])
def test_a_standby_is_not_handed_over_from(local: str, in_recovery: bool) -> None:
    with pytest.raises(PgreplError, match="this server is a standby"):
        decide("switchover", local, in_recovery)


def test_an_interrupted_switchover_goes_on_from_the_stop() -> None:
    # Stopped cleanly (by an earlier run), the target still in recovery: resume.
    assert decide("switchover", STOPPED_CLEAN, target_in_recovery=True) == ACT_HAND_OVER


@pytest.mark.parametrize("mode", ["switchover", "failover"])
@pytest.mark.parametrize("local", [STOPPED_CLEAN, STOPPED_UNCLEAN])
def test_a_promoted_target_only_completes_the_fence(mode: str, local: str) -> None:
    assert decide(mode, local, target_in_recovery=False) == ACT_FENCE_ONLY


def test_a_switchover_refuses_a_crashed_server_a_failover_takes_it() -> None:
    with pytest.raises(PgreplError, match="not shut down cleanly .* promote the target with mode: failover"):
        decide("switchover", STOPPED_UNCLEAN, target_in_recovery=True)
    assert decide("failover", STOPPED_UNCLEAN, target_in_recovery=True) == ACT_HAND_OVER


def test_target_problems() -> None:
    assert target_problems("switchover", False, target(), "7312345678901234567", 1) == []
    other = target_problems("switchover", False, target(system_identifier="1"), "7312345678901234567", 1)
    assert other and "copy of another cluster" in other[0]
    grant = target_problems("failover", False, target(may_promote=False), None, 1)
    assert grant and "may not execute pg_catalog.pg_promote(boolean, integer)" in grant[0]
    assert "run site first" in grant[0]
    paused = target_problems("switchover", False, target(paused=True, pause_state="paused"), None, 1)
    assert paused and "paused" in paused[0]
    assert target_problems("switchover", True, target(paused=True), None, 1) == []
    ahead = target_problems("switchover", False, target(checkpoint_timeline=3, min_recovery_end_timeline=3), None, 2)
    assert ahead and "past this server's timeline 2" in ahead[0]
    # A failover does not compare timelines (this server may be far behind or gone).
    assert target_problems("failover", False, target(checkpoint_timeline=3), None, 2) == []
    # Every reason at once.
    assert len(target_problems("switchover", False, target(may_promote=False, paused=True, system_identifier="1"),
                               "2", 1)) == 3


@pytest.mark.parametrize(("sent", "in_recovery", "expected"), [
    (False, True, True),     # never requested, the target still a standby: proven abandoned
    (False, None, True),     # never requested, the target does not answer (it cannot have been promoted by us)
    (False, False, False),   # the target answers as a primary: someone promoted it; keep the fence
    (True, True, False),     # requested: the promotion may still complete; never roll back
    (True, None, False),
    (True, False, False),
])
def test_when_an_abandoned_handover_may_be_rolled_back(sent: bool, in_recovery: bool | None, expected: bool) -> None:
    assert may_roll_back(sent, in_recovery) is expected


# ---------------------------------------------------------------------------------------------------- the journal


def test_journal_survives_a_run_and_is_removed(tmp_path: Path) -> None:
    path = str(tmp_path / "main.pgrepl-handover")
    fresh = Journal.load(path)
    assert (fresh.unit_was_enabled, fresh.signal_written, fresh.stopped, fresh.promotion_sent) == (False,) * 4
    fresh.unit_was_enabled = fresh.stopped = fresh.promotion_sent = True
    fresh.save()
    assert (tmp_path / "main.pgrepl-handover").stat().st_mode & 0o777 == 0o600
    again = Journal.load(path)
    assert (again.unit_was_enabled, again.signal_written, again.stopped, again.promotion_sent) == (True, False, True,
                                                                                                   True)
    again.remove()
    assert not (tmp_path / "main.pgrepl-handover").exists()
    again.remove()  # already gone: nothing happens


@pytest.mark.parametrize("text", [b"", b"not json", b"[1, 2]", b"\xff\xfe", b'{"stopped": "yes"}'])
def test_a_damaged_journal_reads_as_nothing_done(tmp_path: Path, text: bytes) -> None:
    path = tmp_path / "j"
    path.write_bytes(text)
    journal = Journal.load(str(path))
    assert (journal.unit_was_enabled, journal.signal_written, journal.stopped, journal.promotion_sent) == (False,) * 4


# ---------------------------------------------------------------------------------------------------- signals, limits


def test_time_limit_interrupts_a_block_and_restores_the_handler() -> None:
    before = signal.getsignal(signal.SIGALRM)
    with pytest.raises(QueryTimeout, match="no answer within 0.05s"):
        with time_limit(0.05):
            time.sleep(2)
    assert signal.getsignal(signal.SIGALRM) is before
    with time_limit(1):
        pass
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


class HangingConn:
    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True


def test_a_poll_without_answer_closes_its_session(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("ansible_collections.pgrepl.streaming.plugins.module_utils._handover.QUERY_SECONDS", 0.05)
    conn = HangingConn()

    def hang(_conn: Any) -> bool:
        time.sleep(2)
        return True

    with pytest.raises(psycopg.OperationalError, match="no answer within"):
        bounded(hang)(conn)
    assert conn.closed
    assert bounded(lambda _conn: True)(HangingConn()) is True


def test_interruptions_are_noted_and_hangups_ignored() -> None:
    interruption = Interruption()
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    with interruption.handled():
        assert interruption.stop() is None
        signal.raise_signal(signal.SIGHUP)  # ignored: the process goes on
        signal.raise_signal(signal.SIGTERM)
        assert interruption.stop() == "interrupted by SIGTERM"
    assert {sig: signal.getsignal(sig) for sig in before} == before
