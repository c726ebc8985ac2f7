# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""standby_config's logic: the request, the standby plan (what a data directory must become) decided without a
server, the data directory's facts, signal files, hot standby parity."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
from samples import CLONED_AUTO_CONF as CLONED

from ansible_collections.pgrepl.streaming.plugins.module_utils._conffile import AUTO_CONF_HEADER, ConfFile
from ansible_collections.pgrepl.streaming.plugins.module_utils._errors import PgreplError
from ansible_collections.pgrepl.streaming.plugins.module_utils._standby_config import (
    DirFacts,
    Plan,
    StandbyRequest,
    build_standby_request,
    create_signal,
    masked_text,
    plan_standby,
    read_dir_facts,
    restart_needed,
    signal_text,
)

HEADER = AUTO_CONF_HEADER


# ----------------------------------------------------------------------------------------------- requests

def params(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "data_dir": "/var/lib/postgresql/15/main", "state": "standby", "primary_host": "10.0.0.5",
        "primary_port": 5432, "replication_user": "replicator", "passfile": "/var/lib/postgresql/.pgpass",
        "application_name": "node_b", "sslmode": "prefer", "conninfo_options": None, "primary_slot_name": "node_b",
        "remove_settings": ["synchronous_standby_names"], "owner": None, "reload": True,
    }
    base.update(overrides)
    return base


def test_request_builds_the_connection_string_in_a_fixed_order() -> None:
    request = build_standby_request(params(conninfo_options={"keepalives_idle": 30, "connect_timeout": "5"}))
    assert request.conninfo == ("host=10.0.0.5 port=5432 user=replicator passfile='/var/lib/postgresql/.pgpass' "
                                "application_name=node_b sslmode=prefer connect_timeout=5 keepalives_idle=30")
    assert request.slot == "node_b" and request.remove_settings == ("synchronous_standby_names",)


def test_optional_keywords_are_left_out() -> None:
    request = build_standby_request(params(replication_user=None, passfile=None, application_name=None))
    assert request.conninfo == "host=10.0.0.5 port=5432 sslmode=prefer"


def test_state_primary_needs_no_primary_options() -> None:
    request = build_standby_request({"data_dir": "/d", "state": "primary", "primary_host": None})
    assert request.state == "primary" and request.conninfo_pairs == ()


@pytest.mark.parametrize("overrides,fragment", [
    ({"primary_slot_name": "Bad-Slot"}, "primary_slot_name: 'Bad-Slot' is not a valid slot name"),
    ({"application_name": "a" * 64}, "application_name: '" + "a" * 64 + "' is 64 bytes long, at most 63"),
    ({"application_name": "é" * 32}, "is 64 bytes long"),
    ({"conninfo_options": {"password": "x"}}, "conninfo_options: 'password' is refused"),
    ({"conninfo_options": {"sslpassword": "x"}}, "conninfo_options: 'sslpassword' is refused"),
    ({"conninfo_options": {"host": "x"}}, "conninfo_options: 'host' has its own option, use primary_host"),
    ({"conninfo_options": {"replication": "true"}}, "conninfo_options: 'replication' is set by the WAL receiver"),
    ({"conninfo_options": {"Keepalives": 1}}, "conninfo_options: 'Keepalives' is not a libpq keyword"),
    ({"conninfo_options": {"keepalives": True}}, "conninfo_options.keepalives: True is a boolean"),
    ({"conninfo_options": {"keepalives": [1]}}, "conninfo_options.keepalives: [1] is a list"),
    ({"conninfo_options": {"options": "a\nb"}}, "conninfo_options.options: 'a\\nb' contains a line break"),
    ({"primary_host": "db1\nhost=evil"}, "primary_host: 'db1\\nhost=evil' contains a line break"),
    ({"primary_host": "db1\x00"}, "primary_host: 'db1\\x00' contains a NUL character"),
    ({"primary_host": "  "}, "primary_host: '  ' is blank"),
    ({"primary_host": None}, "primary_host: None is a NoneType"),
    ({"primary_port": 70000}, "primary_port: 70000 is not a TCP port (1-65535)"),
    ({"primary_port": 0}, "primary_port: 0 is not a TCP port"),
    ({"replication_user": "re\rp"}, "replication_user: 're\\rp' contains a line break"),
    ({"passfile": "relative/.pgpass"}, "passfile: 'relative/.pgpass' must be an absolute path"),
    ({"remove_settings": ["bad name"]}, "remove_settings: 'bad name' is not a setting name"),
    ({"remove_settings": ["primary_conninfo"]}, "remove_settings: 'primary_conninfo' is managed"),
    ({"remove_settings": ["primary_slot_name"]}, "remove_settings: 'primary_slot_name' is managed"),
])
def test_bad_requests_are_refused_naming_option_and_value(overrides: dict[str, Any], fragment: str) -> None:
    with pytest.raises(PgreplError) as info:
        build_standby_request(params(**overrides))
    assert fragment in str(info.value)


def test_primary_slot_name_may_be_removed_when_not_managed() -> None:
    request = build_standby_request(params(primary_slot_name=None, remove_settings=["primary_slot_name"]))
    assert request.remove_settings == ("primary_slot_name",)


# --------------------------------------------------------------------------------------------------- plans

def facts(text: str | None = CLONED, standby: bool = True, recovery: bool = False, running: bool = False,
          major: int = 15) -> DirFacts:
    return DirFacts(data_dir="/d", major=major, auto_text=text, standby_signal=standby, recovery_signal=recovery,
                    running=running, port=None, socket_dir=None, uid=101, gid=104, server_user="postgres",
                    server_home="/var/lib/postgresql")


def bench_request(**overrides: Any) -> StandbyRequest:
    base = params(primary_host="/tmp/bench/p/sock", primary_port=45651, replication_user=None, passfile=None,
                  application_name=None, primary_slot_name="bench_slot")
    base.update(overrides)
    return build_standby_request(base)


def test_a_fresh_clone_matches_the_options_it_was_cloned_with() -> None:
    plan = plan_standby(facts(), bench_request())
    assert not plan.auto_changed and plan.settings_changed == [] and plan.conninfo_differences == []
    # the user and passfile pg_basebackup wrote are libpq's defaults for the server's OS user
    plan = plan_standby(facts(), bench_request(replication_user="postgres",
                                               passfile="/var/lib/postgresql/.pgpass"))
    assert not plan.auto_changed


def test_another_application_name_rewrites_only_primary_conninfo() -> None:
    plan = plan_standby(facts(), bench_request(application_name="node_b"))
    assert plan.settings_changed == ["primary_conninfo"]
    assert plan.conninfo_differences == ["application_name"]
    assert plan.after_text is not None
    lines = plan.after_text.splitlines()
    assert lines[:2] == HEADER.splitlines() and lines[3] == "primary_slot_name = 'bench_slot'"
    written = ConfFile.parse(plan.after_text).get("primary_conninfo")
    assert written == "host='/tmp/bench/p/sock' port=45651 application_name=node_b sslmode=prefer"


def test_a_non_default_extra_keyword_counts_as_a_difference() -> None:
    text = CLONED.replace("gssencmode=prefer", "gssencmode=require")
    plan = plan_standby(facts(text), bench_request())
    assert plan.conninfo_differences == ["gssencmode"]


def test_an_existing_password_is_dropped_with_a_warning_that_does_not_show_it() -> None:
    text = HEADER + "primary_conninfo = 'host=''/tmp/bench/p/sock'' port=45651 password=''hunter2'''\n"
    plan = plan_standby(facts(text), bench_request())
    assert plan.password_dropped and "primary_conninfo" in plan.settings_changed
    assert "hunter2" not in (plan.after_text or "")
    assert plan.warnings and all("hunter2" not in warning for warning in plan.warnings)


def test_an_unreadable_primary_conninfo_is_replaced() -> None:
    text = HEADER + "primary_conninfo = 'postgresql://u@h/db'\n"
    plan = plan_standby(facts(text), bench_request())
    assert plan.settings_changed[0] == "primary_conninfo" and "could not be read" in plan.warnings[0]


def test_remove_settings_drops_synchronous_standby_names_and_keeps_the_rest() -> None:
    text = CLONED + "synchronous_standby_names = 'ANY 1 (a, b)'\nwork_mem = '8MB'\n"
    plan = plan_standby(facts(text), bench_request())
    assert plan.settings_changed == ["synchronous_standby_names"]
    assert plan.after_text == CLONED + "work_mem = '8MB'\n"


def test_slot_is_set_and_left_alone_when_not_given() -> None:
    plan = plan_standby(facts(), bench_request(primary_slot_name="other_slot"))
    assert plan.settings_changed == ["primary_slot_name"] and plan.slot == "other_slot"
    plan = plan_standby(facts(), bench_request(primary_slot_name=None))
    assert plan.settings_changed == [] and plan.slot == "bench_slot"


def test_a_data_dir_without_auto_conf_gets_one_with_the_header() -> None:
    plan = plan_standby(facts(None, standby=False), bench_request())
    assert plan.before_text is None and plan.after_text is not None
    assert plan.after_text.startswith(HEADER)
    assert plan.standby_signal


def test_state_primary_removes_signals_and_managed_settings() -> None:
    text = CLONED + "work_mem = '8MB'\n"
    plan = plan_standby(facts(text, recovery=True), build_standby_request({"data_dir": "/d", "state": "primary"}))
    assert plan.settings_changed == ["primary_conninfo", "primary_slot_name"]
    assert plan.after_text == HEADER + "work_mem = '8MB'\n"
    assert not plan.standby_signal and not plan.recovery_signal and plan.conninfo is None


def test_state_primary_on_a_primary_changes_nothing() -> None:
    plan = plan_standby(facts(HEADER, standby=False), build_standby_request({"data_dir": "/d", "state": "primary"}))
    assert not plan.auto_changed and not plan.standby_signal
    plan = plan_standby(facts(None, standby=False), build_standby_request({"data_dir": "/d", "state": "primary"}))
    assert plan.after_text is None and not plan.auto_changed


def test_standby_state_keeps_an_existing_recovery_signal() -> None:
    plan = plan_standby(facts(recovery=True), bench_request())
    assert plan.recovery_signal and plan.standby_signal


@pytest.mark.parametrize("running,major,standby_before,settings,expected", [
    (False, 15, False, ["primary_conninfo"], False),
    (True, 15, False, [], True),
    (True, 15, True, ["primary_conninfo"], False),
    (True, 12, True, ["primary_conninfo"], True),
    (True, 12, True, ["synchronous_standby_names"], False),
])
def test_restart_needed(running: bool, major: int, standby_before: bool, settings: list[str],
                        expected: bool) -> None:
    plan = Plan(CLONED, CLONED, settings_changed=settings, standby_signal=True)
    assert restart_needed(facts(standby=standby_before, running=running, major=major), plan) is expected


def test_masked_text_of_no_file_is_empty() -> None:
    assert masked_text(None) == ""


def test_signal_text() -> None:
    assert signal_text(True, False) == "standby.signal: present\nrecovery.signal: absent\n"


# ----------------------------------------------------------------------------------------- data directories

def fake_data_dir(tmp_path: Path, version: str = "15") -> Path:
    (tmp_path / "global").mkdir()
    (tmp_path / "global" / "pg_control").write_bytes(b"\0" * 16)
    (tmp_path / "PG_VERSION").write_text(version + "\n")
    return tmp_path


def test_read_dir_facts_of_a_stopped_directory(tmp_path: Path) -> None:
    data_dir = fake_data_dir(tmp_path)
    (data_dir / "postgresql.auto.conf").write_text(CLONED)
    (data_dir / "standby.signal").write_text("")
    read = read_dir_facts(str(data_dir))
    assert read.major == 15 and read.auto_text == CLONED and read.standby_signal and not read.running
    assert read.uid == os.stat(data_dir).st_uid


@pytest.mark.parametrize("setup,fragment", [
    ("empty", "is not a PostgreSQL data directory (no PG_VERSION"),
    ("v11", "holds PostgreSQL 11"),
    ("v96", "holds PostgreSQL 9.6"),
    ("recovery_conf", "has a recovery.conf"),
])
def test_read_dir_facts_refuses(tmp_path: Path, setup: str, fragment: str) -> None:
    if setup == "v11":
        fake_data_dir(tmp_path, "11")
    elif setup == "v96":
        fake_data_dir(tmp_path, "9.6")
    elif setup == "recovery_conf":
        fake_data_dir(tmp_path)
        (tmp_path / "recovery.conf").write_text("standby_mode = on\n")
    with pytest.raises(PgreplError) as info:
        read_dir_facts(str(tmp_path))
    assert str(info.value).startswith(f"data_dir: '{tmp_path}'") and fragment in str(info.value)


def test_create_signal_is_empty_and_0600(tmp_path: Path) -> None:
    path = tmp_path / "standby.signal"
    create_signal(str(path), os.geteuid(), os.getegid())
    assert path.read_bytes() == b"" and (path.stat().st_mode & 0o777) == 0o600
    create_signal(str(path), os.geteuid(), os.getegid())  # already there: nothing happens


# ------------------------------------------------------------------------------------ hot standby parity

def test_min_settings_are_added_when_missing_and_need_a_restart_when_running() -> None:
    plan = plan_standby(facts(running=True), bench_request(min_settings={"max_connections": 150}))
    assert plan.raised == ["max_connections"]
    assert "max_connections = '150'" in (plan.after_text or "")
    assert restart_needed(facts(running=True), plan) is True
    assert restart_needed(facts(running=False), plan) is False


@pytest.mark.parametrize(("existing", "least", "raised"), [
    ("100", 150, True), ("150", 150, False), ("200", 150, False), ("junk", 150, True),
])
def test_min_settings_raise_only(existing: str, least: int, raised: bool) -> None:
    text = CLONED + f"max_connections = '{existing}'\n"
    plan = plan_standby(facts(text), bench_request(min_settings={"max_connections": least}))
    assert (plan.raised == ["max_connections"]) is raised
    if not raised:
        assert plan.after_text == text


@pytest.mark.parametrize(("value", "message"), [
    ([1], "min_settings: [1] is not a dict"),
    ({"max_connections": True}, "min_settings.max_connections: True is not a whole number >= 0"),
    ({"max_connections": 1.5}, "min_settings.max_connections: 1.5 is not a whole number"),
    ({"bad name": 1}, "min_settings: 'bad name' is not a setting name"),
    ({"primary_conninfo": 1}, "min_settings.primary_conninfo: 'primary_conninfo' is managed"),
])
def test_min_settings_bad_values_are_refused(value: Any, message: str) -> None:
    with pytest.raises(PgreplError, match=re.escape(message)):
        bench_request(min_settings=value)


def test_min_settings_accept_digit_strings() -> None:
    assert bench_request(min_settings={"max_connections": "120"}).min_settings == (("max_connections", 120),)


# ---------------------------------------------------------------------------------------- delayed standby

@pytest.mark.parametrize(("value", "expected"), [
    ("5min", ("5min", 300_000)), ("300s", ("300s", 300_000)), (1500, ("1500", 1500)), ("0", ("0", 0)),
    (" 2h ", ("2h", 7_200_000)), (None, None), ("", None),
])
def test_apply_delay_is_a_postgresql_time(value: Any, expected: Any) -> None:
    assert bench_request(apply_delay=value).apply_delay == expected


@pytest.mark.parametrize(("value", "message"), [
    ("5 minutes", "apply_delay: '5 minutes' is not a time such as '5min', '30s' or 0"),
    ("soon", "apply_delay: 'soon' is not a time"),
    ("-1", "apply_delay: '-1' is negative"),
    (True, "apply_delay: True is not a time"),
    ([1], "apply_delay: [1] is not a time"),
])
def test_apply_delay_bad_values_are_refused(value: Any, message: str) -> None:
    with pytest.raises(PgreplError, match=re.escape(message)):
        bench_request(apply_delay=value)


def test_apply_delay_and_its_removal_cannot_both_be_asked() -> None:
    with pytest.raises(PgreplError, match="remove_settings: 'recovery_min_apply_delay' is managed by apply_delay"):
        bench_request(apply_delay="5min", remove_settings=["recovery_min_apply_delay"])


def test_apply_delay_is_written_compared_in_milliseconds_and_removed_for_zero() -> None:
    plan = plan_standby(facts(CLONED), bench_request(apply_delay="5min"))
    assert plan.settings_changed == ["recovery_min_apply_delay"]
    assert "recovery_min_apply_delay = '5min'" in (plan.after_text or "")
    # A reload is enough (sighup): no restart.
    assert restart_needed(facts(CLONED, running=True), plan) is False
    delayed = CLONED + "recovery_min_apply_delay = '300s'\n"
    assert plan_standby(facts(delayed), bench_request(apply_delay="5min")).after_text == delayed
    longer = plan_standby(facts(delayed), bench_request(apply_delay="10min"))
    assert "recovery_min_apply_delay = '10min'" in (longer.after_text or "")
    removed = plan_standby(facts(delayed), bench_request(apply_delay=0))
    assert removed.settings_changed == ["recovery_min_apply_delay"]
    assert "recovery_min_apply_delay" not in (removed.after_text or "")
    # No delay asked and none there: nothing to do; not managed: an existing delay stays.
    assert plan_standby(facts(CLONED), bench_request(apply_delay="0")).after_text == CLONED
    assert plan_standby(facts(delayed), bench_request()).after_text == delayed
