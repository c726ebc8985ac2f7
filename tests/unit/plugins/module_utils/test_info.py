"""Unit tests of module_utils/_info.py: per-major SQL, conninfo masking, the replay delay rule, result shaping."""

from __future__ import annotations

from typing import Any

import pytest

from ansible_collections.pgrepl.streaming.plugins.module_utils import _info
from ansible_collections.pgrepl.streaming.plugins.module_utils._errors import PgreplConnectionError, PgreplError

MAJORS = (13, 14, 15, 16, 17, 18)


# ------------------------------------------------------------------------------------------------ per-major SQL

def test_slot_columns_per_major() -> None:
    base = ["slot_name", "slot_type", "plugin", "database", "temporary", "active", "active_pid", "xmin",
            "catalog_xmin", "restart_lsn", "confirmed_flush_lsn", "wal_status", "safe_wal_size"]
    assert _info.slot_columns(13) == base
    assert _info.slot_columns(14) == base + ["two_phase"]
    assert _info.slot_columns(15) == base + ["two_phase"]
    assert _info.slot_columns(16) == base + ["two_phase", "conflicting"]
    assert _info.slot_columns(17) == base + ["two_phase", "conflicting", "invalidation_reason", "inactive_since",
                                             "failover", "synced"]
    assert _info.slot_columns(18) == _info.slot_columns(17) + ["two_phase_at"]
    assert "wal_status" not in _info.slot_columns(12)


@pytest.mark.parametrize("major", MAJORS)
def test_wal_receiver_columns_13_and_later_have_written_and_flushed_lsn(major: int) -> None:
    columns = _info.wal_receiver_columns(major)
    assert "written_lsn" in columns
    assert "flushed_lsn" in columns
    assert "received_lsn" not in columns  # removed in 13
    for column in ("status", "sender_host", "sender_port", "slot_name", "latest_end_lsn", "last_msg_receipt_time",
                   "conninfo", "received_tli"):
        assert column in columns


def test_wal_receiver_columns_before_13_read_received_lsn_under_the_new_name() -> None:
    columns = _info.wal_receiver_columns(12)
    assert "received_lsn" in columns
    assert "written_lsn" not in columns
    text = _info.build_info_query(12).as_string(None)
    assert '"s"."received_lsn" AS "flushed_lsn"' in text


@pytest.mark.parametrize("major", MAJORS)
def test_replication_columns_are_the_same_from_13_on(major: int) -> None:
    columns = _info.replication_columns(major)
    for column in ("application_name", "client_addr", "state", "sync_state", "sync_priority", "sent_lsn",
                   "write_lsn", "flush_lsn", "replay_lsn", "write_lag", "flush_lag", "replay_lag", "backend_start",
                   "reply_time"):
        assert column in columns


def test_pause_state_expr_uses_the_14_function_from_14() -> None:
    assert _info.pause_state_expr(13).as_string(None) == (
        "CASE WHEN pg_catalog.pg_is_wal_replay_paused() THEN 'paused' ELSE 'not paused' END")
    for major in (14, 15, 16, 17, 18):
        assert _info.pause_state_expr(major).as_string(None) == "pg_catalog.pg_get_wal_replay_pause_state()"


@pytest.mark.parametrize("major", MAJORS)
def test_build_info_query_selects_exactly_the_columns_of_the_major(major: int) -> None:
    text = _info.build_info_query(major).as_string(None)
    for column in _info.slot_columns(major) + _info.wal_receiver_columns(major) + _info.replication_columns(major):
        assert f'"s"."{column}"' in text
    present = {column: f'"s"."{column}"' in text for column in
               ("two_phase", "conflicting", "invalidation_reason", "inactive_since", "failover", "synced",
                "two_phase_at", "received_lsn")}
    assert present == {
        "two_phase": major >= 14, "conflicting": major >= 16, "invalidation_reason": major >= 17,
        "inactive_since": major >= 17, "failover": major >= 17, "synced": major >= 17, "two_phase_at": major >= 18,
        "received_lsn": False,
    }
    assert ("pg_get_wal_replay_pause_state" in text) is (major >= 14)
    # One statement, one bound parameter (the settings names), only pg_catalog objects.
    assert text.count("%s") == 1
    assert ";" not in text
    for lag in ("write_lag", "flush_lag", "replay_lag"):
        assert f'extract(epoch FROM "s"."{lag}")::float8 AS "{lag}"' in text
    for lsn, alias in _info.LAG_LSN_COLUMNS.items():
        assert f'pg_catalog.pg_wal_lsn_diff(ref.lsn, "s"."{lsn}")::bigint AS "{alias}"' in text


def test_build_info_query_refuses_pre_10_servers() -> None:
    with pytest.raises(PgreplError, match="PostgreSQL 9 is too old"):
        _info.build_info_query(9)


# ------------------------------------------------------------------------------------------------ replay delay rule

@pytest.mark.parametrize(("in_recovery", "receive", "replay", "seconds", "expected"), [
    # Idle primary: the standby has replayed all it received, however old the last commit is.
    (True, "0/3000148", "0/3000148", 3600.0, 0.0),
    # WAL waits to be replayed: the delay is the age of the last replayed commit.
    (True, "0/3000200", "0/3000148", 12.5, 12.5),
    (True, "1/0", "0/FFFFFFFF", 0.4, 0.4),
    # Replay ahead of receipt (restart, archive recovery): not late.
    (True, "0/3000000", "0/3000148", 50.0, 0.0),
    # Nothing received by streaming (archive-only standby): nothing waits.
    (True, None, "0/3000148", 50.0, 0.0),
    # Behind, but no commit replayed since start: unknown.
    (True, "0/3000200", "0/3000148", None, None),
    # Clock skew never gives a negative delay.
    (True, "0/3000200", "0/3000148", -0.2, 0.0),
    # A primary has no replay delay.
    (False, None, None, None, None),
])
def test_replay_delay_rule(in_recovery: bool, receive: str | None, replay: str | None, seconds: float | None,
                           expected: float | None) -> None:
    assert _info.replay_delay(in_recovery, receive, replay, seconds) == expected


# ------------------------------------------------------------------------------------------------ settings

def test_convert_setting_by_vartype() -> None:
    assert _info.convert_setting("on", "bool") is True
    assert _info.convert_setting("off", "bool") is False
    assert _info.convert_setting("10", "integer") == 10
    assert _info.convert_setting("-1", "integer") == -1
    assert _info.convert_setting("0.9", "real") == 0.9
    assert _info.convert_setting("replica", "enum") == "replica"
    assert _info.convert_setting(None, "integer") is None


def test_shape_settings_masks_primary_conninfo_and_fills_hidden_ones_with_null() -> None:
    raw = {"primary_conninfo": {"setting": "host=p password='x y' user=r", "vartype": "string"},
           "max_wal_senders": {"setting": "10", "vartype": "integer"},
           "hot_standby": {"setting": "on", "vartype": "bool"}}
    settings = _info.shape_settings(raw)
    assert settings["primary_conninfo"] == "host=p password=******** user=r"
    assert settings["max_wal_senders"] == 10
    assert settings["hot_standby"] is True
    assert settings["data_directory"] is None
    assert set(settings) == set(_info.SETTINGS_NAMES)


# ------------------------------------------------------------------------------------------------ shaping

def _row(**overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "server_version_num": 150018, "in_recovery": False, "current_lsn": "0/3000148", "receive_lsn": None,
        "replay_lsn": None, "current_walfile": "000000020000000000000003", "checkpoint_timeline": 1,
        "system_identifier": "7710798437670357016", "replay_pause_state": None, "seconds_since_last_replay": None,
        "last_replay_timestamp": None, "postmaster_start_time": "2026-01-01T00:00:00+00:00",
        "synchronous_standby_names": "", "synchronous_commit": "on", "read_only": False, "login_role": "postgres",
        "is_superuser": True, "read_all_stats": True, "read_all_settings": True,
        "replication": [{"application_name": "node2", "state": "streaming", "sync_state": "async"}],
        "wal_receiver": None,
        "slots": [{"slot_name": "node2", "active": True}, {"slot_name": "old", "active": False}],
        "settings": {}, "pending_restart": ["max_connections"],
    }
    row.update(overrides)
    return row


def test_shape_info_primary() -> None:
    facts, warnings = _info.shape_info(_row())
    assert warnings == []
    assert facts["major"] == 15
    # The timeline of the WAL being written (after a promotion the last checkpoint may still say 1).
    assert facts["timeline"] == 2
    assert facts["walsenders_count"] == 1
    assert facts["active_slots_count"] == 1
    assert facts["replay_delay_seconds"] is None
    assert facts["replay_paused"] is None
    assert facts["replay_lag_bytes"] is None
    assert facts["pending_restart"] == ["max_connections"]


def test_shape_info_standby_masks_the_receiver_conninfo() -> None:
    receiver = {"status": "streaming", "received_tli": 3, "slot_name": "node2",
                "conninfo": "user=r password=******** host=p port=5432"}
    facts, warnings = _info.shape_info(_row(
        in_recovery=True, current_lsn=None, current_walfile=None, receive_lsn="0/3000200", replay_lsn="0/3000148",
        seconds_since_last_replay=4.25, replay_pause_state="paused", wal_receiver=receiver, replication=[],
        slots=[], checkpoint_timeline=2))
    assert warnings == []
    assert facts["timeline"] == 3
    assert facts["replay_paused"] is True
    assert facts["replay_pause_state"] == "paused"
    assert facts["replay_delay_seconds"] == 4.25
    assert facts["replay_lag_bytes"] == 0xB8
    assert facts["wal_receiver"]["conninfo"] == "user=r password=******** host=p port=5432"


def test_shape_info_standby_masks_a_clear_password_in_the_receiver_conninfo() -> None:
    receiver = {"status": "streaming", "received_tli": 1, "conninfo": "user=r password=clear host=p"}
    facts, _warnings = _info.shape_info(_row(in_recovery=True, wal_receiver=receiver, current_walfile=None))
    assert "clear" not in facts["wal_receiver"]["conninfo"]


def test_shape_info_standby_without_receiver_uses_the_checkpoint_timeline() -> None:
    facts, _warnings = _info.shape_info(_row(in_recovery=True, current_walfile=None, checkpoint_timeline=4,
                                             replay_pause_state="pause requested"))
    assert facts["timeline"] == 4
    assert facts["replay_paused"] is True
    assert facts["replay_delay_seconds"] == 0.0


def test_shape_info_warns_when_replay_is_behind_without_a_timestamp() -> None:
    _facts, warnings = _info.shape_info(_row(in_recovery=True, current_walfile=None, receive_lsn="0/2",
                                             replay_lsn="0/1", seconds_since_last_replay=None))
    assert len(warnings) == 1
    assert "replay_delay_seconds is unknown" in warnings[0]


def test_shape_info_warns_about_restricted_columns() -> None:
    _facts, warnings = _info.shape_info(_row(login_role="watcher", is_superuser=False, read_all_stats=False,
                                             read_all_settings=False))
    assert len(warnings) == 1
    assert "login_user: the role 'watcher' is neither a superuser nor a member of pg_monitor" in warnings[0]
    assert "pg_read_all_stats and pg_read_all_settings" in warnings[0]
    assert "primary_conninfo" in warnings[0]
    _facts, warnings = _info.shape_info(_row(is_superuser=False, read_all_stats=True, read_all_settings=False))
    assert "pg_read_all_settings" in warnings[0] and "pg_read_all_stats" not in warnings[0]


# ------------------------------------------------------------------------------------------------ reachability

PARAMS = {"login_user": "postgres", "login_host": "db1", "login_port": 5432, "login_db": "postgres"}


def _fake_dir_facts(running: bool) -> dict[str, Any]:
    return {"data_dir": "/srv/pg", "major": 15, "system_identifier": "123", "timeline": 2,
            "postmaster_running": running, "postmaster_pid": 99 if running else None,
            "postmaster_port": 5433 if running else None, "cluster_state": "shut down"}


@pytest.mark.parametrize(("data_dir", "running", "role"), [
    (None, False, "unknown"),
    ("/srv/pg", False, "down"),
    ("/srv/pg", True, "unknown"),
])
def test_replication_info_when_unreachable(monkeypatch: pytest.MonkeyPatch, data_dir: str | None, running: bool,
                                           role: str) -> None:
    def refuse(params: dict[str, Any]) -> Any:
        raise PgreplConnectionError("cannot reach PostgreSQL at postgres@db1:5432/postgres: Connection refused", True)

    monkeypatch.setattr(_info, "query_server", refuse)
    monkeypatch.setattr(_info, "read_data_dir", lambda path, bin_dir: (_fake_dir_facts(running), []))
    result, warnings = _info.replication_info({**PARAMS, "data_dir": data_dir})
    assert result["changed"] is False
    assert result["reachable"] is False
    assert result["role"] == role
    assert "Connection refused" in result["error"]
    assert result["replication"] is None
    if data_dir:
        assert result["data_dir_facts"]["cluster_state"] == "shut down"
        assert result["system_identifier"] == "123"
        assert result["timeline"] == 2
        assert result["facts_source"] == "data_dir"
    else:
        assert result["data_dir_facts"] is None
        assert result["system_identifier"] is None
        assert result["facts_source"] is None
    assert (len(warnings) == 1 and "postmaster of /srv/pg is running (pid 99, port 5433)" in warnings[0]) is running


def test_replication_info_fails_on_configuration_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(params: dict[str, Any]) -> Any:
        raise PgreplConnectionError(
            "authentication failed for postgres@db1:5432/postgres: check login_user and login_password", False)

    monkeypatch.setattr(_info, "query_server", refuse)
    with pytest.raises(PgreplError, match="^authentication failed"):
        _info.replication_info(dict(PARAMS))


def test_replication_info_warns_when_data_dir_is_another_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    live, _warnings = _info.shape_info(_row())
    monkeypatch.setattr(_info, "query_server", lambda params: (live, []))
    monkeypatch.setattr(_info, "read_data_dir", lambda path, bin_dir: (_fake_dir_facts(True), []))
    result, warnings = _info.replication_info({**PARAMS, "data_dir": "/srv/pg"})
    assert result["role"] == "primary"
    assert result["reachable"] is True
    assert result["facts_source"] == "server"
    assert result["system_identifier"] == "7710798437670357016"
    assert any("they are not the same cluster" in warning for warning in warnings)


def test_return_documents_every_key_the_module_returns(monkeypatch: pytest.MonkeyPatch) -> None:
    import yaml

    from ansible_collections.pgrepl.streaming.plugins.modules import replication_info as module

    documented = set(yaml.safe_load(module.RETURN))
    live, _warnings = _info.shape_info(_row())
    monkeypatch.setattr(_info, "query_server", lambda params: (live, []))
    monkeypatch.setattr(_info, "read_data_dir", lambda path, bin_dir: (_fake_dir_facts(False), []))
    up, _warnings = _info.replication_info({**PARAMS, "data_dir": "/srv/pg"})

    def refuse(params: dict[str, Any]) -> Any:
        raise PgreplConnectionError("cannot reach PostgreSQL at x: Connection refused", True)

    monkeypatch.setattr(_info, "query_server", refuse)
    down, _warnings = _info.replication_info(dict(PARAMS))
    assert set(up) == set(down)
    assert set(up) - documented == set()
    assert documented - set(up) == set()
