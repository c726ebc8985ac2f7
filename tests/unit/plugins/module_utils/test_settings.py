# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""server_settings' pure logic: names, value rendering, the server's unit/bool/enum parsing, comparison, decisions."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from ansible_collections.pgrepl.streaming.plugins.module_utils._errors import PgreplError
from ansible_collections.pgrepl.streaming.plugins.module_utils._server import ServerFacts
from ansible_collections.pgrepl.streaming.plugins.module_utils._settings import (
    FileValues,
    InvalidValue,
    Planned,
    Request,
    SettingInfo,
    alter_statement,
    canonical,
    canonical_request,
    check_value,
    decide,
    flatten,
    format_number,
    parse_bool,
    parse_number,
    parse_requests,
    render_elements,
    restore_elements,
    server_message,
    split_list,
    validate_name,
    write_all,
)

# pg_settings rows as PostgreSQL 15 reports them.
WORK_MEM = SettingInfo("work_mem", "4096", "kB", "integer", "user", "default", (), "64", "2147483647", "4096")
SHARED_BUFFERS = SettingInfo("shared_buffers", "2048", "8kB", "integer", "postmaster", "configuration file", (),
                             "16", "1073741823", "16384")
WAL_KEEP_SIZE = SettingInfo("wal_keep_size", "0", "MB", "integer", "sighup", "default", (), "0", "2147483647", "0")
MAX_WAL_SENDERS = SettingInfo("max_wal_senders", "10", None, "integer", "postmaster", "configuration file", (),
                              "0", "262143", "10")
LOG_MIN_DURATION = SettingInfo("log_min_duration_statement", "-1", "ms", "integer", "superuser", "default", (),
                               "-1", "2147483647", "-1")
CHECKPOINT_TIMEOUT = SettingInfo("checkpoint_timeout", "300", "s", "integer", "sighup", "default", (), "30",
                                 "86400", "300")
LOG_ROTATION_AGE = SettingInfo("log_rotation_age", "1440", "min", "integer", "sighup", "default", (), "0",
                               "35791394", "1440")
WAL_SEGMENT_SIZE = SettingInfo("wal_segment_size", "16777216", "B", "integer", "internal", "default", (),
                               "1048576", "1073741824", "16777216")
VACUUM_COST_DELAY = SettingInfo("vacuum_cost_delay", "0", "ms", "real", "user", "default", (), "0", "100", "0")
CHECKPOINT_TARGET = SettingInfo("checkpoint_completion_target", "0.9", None, "real", "sighup", "default", (), "0",
                                "1", "0.9")
HOT_STANDBY = SettingInfo("hot_standby", "on", None, "bool", "postmaster", "configuration file", (), None, None,
                          "on")
WAL_LEVEL = SettingInfo("wal_level", "replica", None, "enum", "postmaster", "configuration file",
                        ("minimal", "replica", "logical"), None, None, "replica")
SYNC_COMMIT = SettingInfo("synchronous_commit", "on", None, "enum", "user", "default",
                          ("local", "remote_write", "remote_apply", "on", "off"), None, None, "on")
SPL = SettingInfo("shared_preload_libraries", "", None, "string", "postmaster", "default", (), None, None, "")
SEARCH_PATH = SettingInfo("search_path", '"$user", public', None, "string", "user", "default", (), None, None,
                          '"$user", public')
LOG_DESTINATION = SettingInfo("log_destination", "stderr", None, "string", "sighup", "default", (), None, None,
                              "stderr")
DATESTYLE = SettingInfo("DateStyle", "ISO, MDY", None, "string", "user", "configuration file", (), None, None,
                        "ISO, MDY")
ARCHIVE_COMMAND = SettingInfo("archive_command", "", None, "string", "sighup", "default", (), None, None, "")
WAL_BUFFERS = SettingInfo("wal_buffers", "64", "8kB", "integer", "postmaster", "default", (), "-1", "262143", "-1")


def req(key: str, value: Any) -> Request:
    return Request(key=key, name=key.lower(), value=value, elements=render_elements(key, key.lower(), value))


# ------------------------------------------------------------------------------------------------------ names

@pytest.mark.parametrize("name", ["work_mem", "WAL_KEEP_SIZE", "DateStyle", "_x", "pg_stat_statements.max",
                                  "auto_explain.log_min_duration"])
def test_valid_names_are_lowered(name: str) -> None:
    assert validate_name(name) == name.lower()


@pytest.mark.parametrize("name", ["work_mem; DROP TABLE x", "1abc", "work-mem", "", "a b", 'x"y', "wal_level'",
                                  "work_mem\x00", "é", "a" * 201, 42, None])
def test_invalid_names_are_refused_with_the_pattern(name: Any) -> None:
    with pytest.raises(PgreplError, match=r"settings: .* is not a valid setting name \(\^\[a-z_\]"):
        validate_name(name)


# ----------------------------------------------------------------------------------------------- rendering

@pytest.mark.parametrize(("value", "expected"), [
    (True, ("on",)), (False, ("off",)), (12, ("12",)), (-1, ("-1",)), (0.9, ("0.9",)), (1e-05, ("1e-05",)),
    ("256MB", ("256MB",)), ("", ("",)), ("it's", ("it's",)), (None, None),
])
def test_render_scalar_values(value: Any, expected: Any) -> None:
    assert render_elements("work_mem", "work_mem", value) == expected


def test_render_splits_a_string_for_quoted_list_settings() -> None:
    assert render_elements("shared_preload_libraries", "shared_preload_libraries",
                           "pg_stat_statements, auto_explain") == ("pg_stat_statements", "auto_explain")
    assert render_elements("search_path", "search_path", '"$user", public') == ("$user", "public")
    # a list keeps an element with a comma whole (the server quotes it as one name)
    assert render_elements("search_path", "search_path", ["a,b", "c"]) == ("a,b", "c")


def test_render_keeps_a_string_whole_for_other_settings() -> None:
    assert render_elements("log_destination", "log_destination", "stderr,csvlog") == ("stderr,csvlog",)
    assert render_elements("log_destination", "log_destination", ["stderr", "csvlog"]) == ("stderr", "csvlog")
    assert render_elements("myext.list", "myext.list", ["a", 1]) == ("a", "1")


@pytest.mark.parametrize(("key", "value", "message"), [
    ("work_mem", ["1MB", "2MB"], r"settings\.work_mem: \['1MB', '2MB'\] is a list, but work_mem is not a list"),
    ("work_mem", {"a": 1}, r"settings\.work_mem: \{'a': 1\} is a dict"),
    ("work_mem", float("nan"), r"settings\.work_mem: nan is not a finite number"),
    ("work_mem", float("inf"), r"settings\.work_mem: inf is not a finite number"),
    ("archive_command", "a\x00b", r"settings\.archive_command: the value contains a NUL character"),
    ("shared_preload_libraries", "", r"settings\.shared_preload_libraries: '' has an empty list element"),
    ("shared_preload_libraries", "a,,b", r"has an empty list element"),
    ("shared_preload_libraries", [], r"has an empty list element"),
    ("log_destination", [], r"settings\.log_destination: an empty list is not a value"),
    ("log_destination", [True], r"settings\.log_destination \(list element\): True is a boolean"),
    ("log_destination", [["x"]], r"settings\.log_destination \(list element\): \['x'\] is a list"),
])
def test_render_refuses_values_naming_the_setting(key: str, value: Any, message: str) -> None:
    with pytest.raises(PgreplError, match=message):
        render_elements(key, key.lower(), value)


def test_parse_requests_collects_every_problem() -> None:
    with pytest.raises(PgreplError) as exc:
        parse_requests({"work_mem; DROP TABLE x": "1MB", "data_directory": "/x", "hba_file": "/y",
                        "transaction_isolation": "serializable", "work_mem": [1, 2]})
    text = str(exc.value)
    assert "'work_mem; DROP TABLE x' is not a valid setting name" in text
    assert "settings.data_directory: cannot be set with this module" in text
    assert "settings.hba_file: cannot be set with this module" in text
    assert "settings.transaction_isolation: cannot be set" in text and "default_transaction_isolation" in text
    assert "settings.work_mem: [1, 2] is a list" in text


def test_parse_requests_refuses_a_password_in_primary_conninfo_without_showing_it() -> None:
    with pytest.raises(PgreplError) as exc:
        parse_requests({"primary_conninfo": "host=db1 user=repl password=unit-Secret-9"})
    assert "settings.primary_conninfo: the connection string contains a password" in str(exc.value)
    assert "unit-Secret-9" not in str(exc.value)
    assert parse_requests({"primary_conninfo": "host=db1 user=repl passfile=/var/lib/postgresql/.pgpass"})


def test_parse_requests_refuses_the_same_setting_twice() -> None:
    with pytest.raises(PgreplError, match=r"settings: 'work_mem' and 'WORK_MEM' name the same setting"):
        parse_requests({"work_mem": "1MB", "WORK_MEM": "2MB"})


def test_parse_requests_refuses_a_non_dict() -> None:
    with pytest.raises(PgreplError, match=r"settings: \['work_mem'\] is not a dictionary"):
        parse_requests(["work_mem"])


def test_parse_requests_keeps_keys_and_resets() -> None:
    requests = parse_requests({"Work_Mem": "1MB", "wal_keep_size": None})
    assert [(r.key, r.name, r.elements, r.reset) for r in requests] == [
        ("Work_Mem", "work_mem", ("1MB",), False), ("wal_keep_size", "wal_keep_size", None, True)]
    assert requests[0].display == "1MB" and requests[1].display is None


# ------------------------------------------------------------------------------------------------- lists

@pytest.mark.parametrize(("text", "expected"), [
    ("", ()), ("   ", ()), ("a", ("a",)), ("a, b", ("a", "b")), (" a ,b ", ("a", "b")),
    ('"$user", public', ("$user", "public")), ('"a,b"', ("a,b",)), ('"say ""hi"""', ('say "hi"',)),
    ('"x" , "y"', ("x", "y")), ("a,", ("a",)),
])
def test_split_list_like_the_server(text: str, expected: tuple[str, ...]) -> None:
    assert split_list(text) == expected


def test_flatten_quotes_only_quoted_list_settings() -> None:
    assert flatten("search_path", ("$user", 'a"b')) == '"$user", "a""b"'
    assert flatten("log_destination", ("stderr", "csvlog")) == "stderr, csvlog"
    assert flatten("work_mem", ("1MB",)) == "1MB"


# ----------------------------------------------------------------------------------------------- numbers

@pytest.mark.parametrize(("text", "unit", "expected"), [
    # memory, base kB
    ("4096", "kB", 4096), ("4MB", "kB", 4096), ("1GB", "kB", 1048576), ("1TB", "kB", 1073741824),
    ("2048kB", "kB", 2048), ("1024B", "kB", 1), ("1.5MB", "kB", 1536), ("4 MB", "kB", 4096), (" 4MB ", "kB", 4096),
    # memory, base MB (wal_keep_size) and B (wal_segment_size)
    ("1GB", "MB", 1024), ("1024MB", "MB", 1024), ("256MB", "MB", 256), ("0.5GB", "MB", 512), ("16MB", "B", 16777216),
    # 8kB blocks (shared_buffers, effective_cache_size)
    ("128MB", "8kB", 16384), ("16MB", "8kB", 2048), ("8kB", "8kB", 1), ("1GB", "8kB", 131072), ("2048", "8kB", 2048),
    ("4kB", "8kB", 0), ("12kB", "8kB", 2), ("1TB", "8kB", 134217728),
    # time
    ("250ms", "ms", 250), ("1s", "ms", 1000), ("1min", "ms", 60000), ("1h", "ms", 3600000), ("1d", "ms", 86400000),
    ("1500us", "ms", 2), ("2500us", "ms", 2), ("5min", "s", 300), ("300", "s", 300), ("1h", "s", 3600),
    ("1d", "min", 1440), ("90s", "min", 2), ("30s", "min", 0), ("1.5h", "min", 90),
    # plain numbers: rint() rounds half to even; strtol base 0 reads hex and octal
    ("12", None, 12), ("-1", "ms", -1), ("+7", None, 7), ("1.5", None, 2), ("2.5", None, 2), ("0.5", None, 0),
    ("1e3", None, 1000), ("0x10", None, 16), ("010", None, 8), ("0", None, 0), (".5", None, 0),
])
def test_integer_values_in_base_units(text: str, unit: str | None, expected: int) -> None:
    assert parse_number(text, unit, integer=True) == expected


@pytest.mark.parametrize(("text", "unit", "expected"), [
    ("0.9", None, 0.9), ("1", None, 1.0), ("1e-3", None, 0.001), ("2ms", "ms", 2.0), ("500us", "ms", 0.5),
    ("0.1s", "ms", 100.0), ("2", "ms", 2.0),
])
def test_real_values_in_base_units(text: str, unit: str | None, expected: float) -> None:
    assert parse_number(text, unit, integer=False) == pytest.approx(expected)


@pytest.mark.parametrize(("text", "unit", "message"), [
    ("1gb", "kB", 'Valid units for this parameter are "B", "kB", "MB", "GB", and "TB".'),
    ("1 mb", "MB", 'is not a unit'),
    ("10 parsecs", "kB", "'parsecs' is not a unit"),
    ("5 minutes", "s", 'Valid units for this parameter are "us", "ms", "s", "min", "h", and "d".'),
    ("5MB", "s", '"us", "ms", "s", "min", "h", and "d"'),
    ("5s", "kB", '"B", "kB", "MB", "GB", and "TB"'),
    ("12 MB", None, "takes a plain number, without a unit"),
    ("banana", "kB", "it is not a number"),
    ("", None, "it is not a number"),
    ("nan", None, "it is not a number"),
    ("08", "kB", "'8' is not a unit"),
    ("99999999999", None, "Value exceeds integer range."),
    ("3GB", "B", "Value exceeds integer range."),
    ("'1MB'; SELECT pg_terminate_backend(1)--", "kB", "it is not a number"),
])
def test_invalid_numbers_say_why(text: str, unit: str | None, message: str) -> None:
    with pytest.raises(InvalidValue, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        parse_number(text, unit, integer=True)


@pytest.mark.parametrize(("text", "expected"), [
    ("on", True), ("ON", True), ("off", False), ("of", False), ("true", True), ("t", True), ("TRU", True),
    ("false", False), ("f", False), ("yes", True), ("y", True), ("no", False), ("n", False), ("1", True), ("0", False),
])
def test_booleans_like_the_server(text: str, expected: bool) -> None:
    assert parse_bool(text) is expected


@pytest.mark.parametrize("text", ["o", "onn", "offf", "truex", "2", "", " on", "enabled", "-1"])
def test_not_booleans(text: str) -> None:
    with pytest.raises(InvalidValue, match="it is not a boolean"):
        parse_bool(text)


@pytest.mark.parametrize(("number", "unit", "shown"), [
    (2048, "8kB", "16MB"), (16384, "8kB", "128MB"), (1, "8kB", "8kB"), (3, "8kB", "24kB"), (4096, "kB", "4MB"),
    (1048576, "kB", "1GB"), (1000, "kB", "1000kB"), (256, "MB", "256MB"), (1024, "MB", "1GB"), (0, "MB", "0"),
    (-1, "ms", "-1"), (250, "ms", "250ms"), (60000, "ms", "1min"), (300, "s", "5min"), (1440, "min", "1d"),
    (16777216, "B", "16MB"), (12, None, "12"), (0.9, None, "0.9"), (2.0, "ms", "2ms"), (0.5, "ms", "500us"),
])
def test_format_number_like_show(number: float, unit: str | None, shown: str) -> None:
    assert format_number(number, unit) == shown


def test_running_value_is_shown_with_its_unit() -> None:
    assert SHARED_BUFFERS.shown == "16MB"
    assert WAL_KEEP_SIZE.shown == "0"
    assert WAL_LEVEL.shown == "replica"
    assert SettingInfo("x", None, None, "string", "user").shown is None


# -------------------------------------------------------------------------------------------- comparison

@pytest.mark.parametrize(("info", "a", "b"), [
    (WAL_KEEP_SIZE, "1GB", "1024MB"), (WAL_KEEP_SIZE, "1024", "1GB"), (SHARED_BUFFERS, "128MB", "16384"),
    (SHARED_BUFFERS, "131072kB", "128MB"), (WORK_MEM, "4MB", "4096kB"), (LOG_MIN_DURATION, "1s", "1000ms"),
    (LOG_MIN_DURATION, "1000", "1s"), (CHECKPOINT_TIMEOUT, "5min", "300"), (LOG_ROTATION_AGE, "1d", "24h"),
    (HOT_STANDBY, "on", "true"), (HOT_STANDBY, "yes", "1"), (HOT_STANDBY, "off", "FALSE"),
    (WAL_LEVEL, "Replica", "replica"), (WAL_LEVEL, "LOGICAL", "logical"), (SYNC_COMMIT, "true", "on"),
    (SYNC_COMMIT, "no", "OFF"), (CHECKPOINT_TARGET, "0.9", "0.90"), (CHECKPOINT_TARGET, "0.9", "9e-1"),
    (CHECKPOINT_TARGET, "0.1234567", "0.123457"), (VACUUM_COST_DELAY, "2ms", "2"), (VACUUM_COST_DELAY, "0.5", "500us"),
    (SPL, "a, b", "a,b"), (SPL, '"a", b', "a, b"), (SEARCH_PATH, '"$user", public', "$user,public"),
    (LOG_DESTINATION, "stderr,csvlog", "stderr, csvlog"), (LOG_DESTINATION, "STDERR", "stderr"),
    (DATESTYLE, "ISO, MDY", "iso, mdy"),
])
def test_same_values(info: SettingInfo, a: str, b: str) -> None:
    assert canonical(info, a) == canonical(info, b)


@pytest.mark.parametrize(("info", "a", "b"), [
    (WAL_KEEP_SIZE, "1GB", "1000MB"), (SHARED_BUFFERS, "128MB", "16383"), (HOT_STANDBY, "on", "off"),
    (WAL_LEVEL, "replica", "logical"), (CHECKPOINT_TARGET, "0.9", "0.8"), (ARCHIVE_COMMAND, "cp %p x", "cp %p  x"),
    (ARCHIVE_COMMAND, "Cp", "cp"), (SPL, "a, b", "b, a"), (SEARCH_PATH, '"a,b"', "a, b"),
    (DATESTYLE, "ISO, MDY", "ISO, DMY"), (SPL, "Lib", "lib"),
])
def test_different_values(info: SettingInfo, a: str, b: str) -> None:
    assert canonical(info, a) != canonical(info, b)


def test_requested_list_keeps_quoted_elements_whole() -> None:
    assert canonical_request(SEARCH_PATH, req("search_path", ["a,b"])) == canonical(SEARCH_PATH, '"a,b"')
    assert canonical_request(SPL, req("shared_preload_libraries", "x, y")) == canonical(SPL, "x, y")
    assert canonical_request(LOG_DESTINATION, req("log_destination", ["stderr", "csvlog"])) == \
        canonical(LOG_DESTINATION, "stderr,csvlog")


# ---------------------------------------------------------------------------------------------- validation

@pytest.mark.parametrize(("info", "value"), [
    (WORK_MEM, "64kB"), (WORK_MEM, "1TB"), (WAL_KEEP_SIZE, 0), (MAX_WAL_SENDERS, 12), (LOG_MIN_DURATION, -1),
    (LOG_MIN_DURATION, "250ms"), (HOT_STANDBY, True), (HOT_STANDBY, "off"), (WAL_LEVEL, "LOGICAL"),
    (SYNC_COMMIT, False), (CHECKPOINT_TARGET, 0.5), (CHECKPOINT_TARGET, 1), (VACUUM_COST_DELAY, "100ms"),
    (ARCHIVE_COMMAND, "anything at all; the server judges strings"), (SPL, None),
])
def test_check_value_accepts(info: SettingInfo, value: Any) -> None:
    check_value(info, req(info.name, value))


@pytest.mark.parametrize(("info", "value", "message"), [
    (WAL_LEVEL, "banana", "settings.wal_level: 'banana' is not a valid value for wal_level (enum): valid values "
                          "are: 'minimal', 'replica', 'logical'"),
    (WAL_LEVEL, "hot_standby", "valid values are"),
    (MAX_WAL_SENDERS, -5, "settings.max_wal_senders: -5 (-5) is outside the valid range for max_wal_senders "
                          "(0 .. 262143)"),
    (WORK_MEM, "32kB", "settings.work_mem: '32kB' (32kB) is outside the valid range for work_mem "
                       "(64kB .. 2147483647kB)"),
    (WORK_MEM, "1gb", "settings.work_mem: '1gb' is not a valid value for work_mem (integer, unit kB): 'gb' is not"),
    (WORK_MEM, True, "settings.work_mem: True is not a valid value for work_mem (integer, unit kB): it is not a "
                     "number"),
    (WORK_MEM, "'1MB'; SELECT pg_terminate_backend(1)--", "it is not a number"),
    (MAX_WAL_SENDERS, "12 MB", "takes a plain number, without a unit"),
    (HOT_STANDBY, "maybe", "settings.hot_standby: 'maybe' is not a valid value for hot_standby (bool): it is not "
                           "a boolean"),
    (CHECKPOINT_TARGET, 1.5, "settings.checkpoint_completion_target: 1.5 (1.5) is outside the valid range"),
    (VACUUM_COST_DELAY, "1s", "'1s' (1000ms) is outside the valid range for vacuum_cost_delay (0ms .. 100ms)"),
    (SYNC_COMMIT, "sometimes", "valid values are: 'local', 'remote_write', 'remote_apply', 'on', 'off'"),
])
def test_check_value_refuses_naming_setting_and_value(info: SettingInfo, value: Any, message: str) -> None:
    with pytest.raises(PgreplError) as exc:
        check_value(info, req(info.name, value))
    assert message in str(exc.value)


def test_check_value_refuses_a_list_for_a_number() -> None:
    request = Request("myext.n", "myext.n", ["1", "2"], ("1", "2"))
    info = SettingInfo("myext.n", "1", None, "integer", "user", "default", (), "0", "10", "1")
    with pytest.raises(PgreplError, match=r"settings\.myext\.n: \['1', '2'\] is a list, but myext\.n takes one"):
        check_value(info, request)


# ------------------------------------------------------------------------------------------------ decisions

def test_sighup_value_not_configured_yet_is_a_change() -> None:
    decision = decide(WAL_KEEP_SIZE, req("wal_keep_size", "256MB"), FileValues())
    assert decision.changed and not decision.restart_required
    assert (decision.before, decision.after, decision.pending) == ("0", "256MB", None)


def test_value_written_in_other_units_is_no_change() -> None:
    running = SettingInfo("wal_keep_size", "1024", "MB", "integer", "sighup", "configuration file", (), "0",
                          "2147483647", "0")
    decision = decide(running, req("wal_keep_size", "1GB"), FileValues(auto="1024MB"))
    assert not decision.changed and not decision.restart_required
    assert decision.before == decision.after == "1024MB"


def test_postmaster_value_written_but_not_restarted_is_no_change_but_needs_restart() -> None:
    decision = decide(MAX_WAL_SENDERS, req("max_wal_senders", 12), FileValues(auto="12", other="10"))
    assert not decision.changed and decision.restart_required
    assert decision.pending == "12"


def test_postmaster_value_after_restart_is_settled() -> None:
    running = SettingInfo("max_wal_senders", "12", None, "integer", "postmaster", "configuration file", (), "0",
                          "262143", "10")
    decision = decide(running, req("max_wal_senders", 12), FileValues(auto="12", other="10"))
    assert not decision.changed and not decision.restart_required and decision.pending is None


def test_postmaster_change_needs_restart() -> None:
    decision = decide(SHARED_BUFFERS, req("shared_buffers", "128MB"), FileValues(other="16MB"))
    assert decision.changed and decision.restart_required
    assert (decision.before, decision.after) == ("16MB", "128MB")


def test_value_equal_to_postgresql_conf_is_no_change() -> None:
    decision = decide(SHARED_BUFFERS, req("shared_buffers", 2048), FileValues(other="16MB"))
    assert not decision.changed and not decision.restart_required


def test_postgresql_conf_edited_but_not_applied_is_overridden() -> None:
    # postgresql.conf says 20 (waiting for a restart), the server runs 10, and 10 is asked for: write 10 so no
    # restart is needed any more.
    decision = decide(MAX_WAL_SENDERS, req("max_wal_senders", 10), FileValues(other="20"))
    assert decision.changed and not decision.restart_required and decision.pending == "20"


def test_running_value_from_a_role_setting_is_not_the_server_wide_one() -> None:
    per_role = SettingInfo("work_mem", "65536", "kB", "integer", "user", "user", (), "64", "2147483647", "4096")
    assert decide(per_role, req("work_mem", "64MB"), FileValues()).changed
    assert not decide(per_role, req("work_mem", "4MB"), FileValues()).changed


def test_computed_default_counts_as_running_for_restart() -> None:
    decision = decide(WAL_BUFFERS, req("wal_buffers", -1), FileValues())
    assert decision.changed and not decision.restart_required


def test_reset_removes_the_auto_conf_entry() -> None:
    running = SettingInfo("wal_keep_size", "256", "MB", "integer", "sighup", "configuration file", (), "0",
                          "2147483647", "0")
    decision = decide(running, req("wal_keep_size", None), FileValues(auto="256MB"))
    assert decision.changed and not decision.restart_required
    assert (decision.before, decision.after) == ("256MB", None)


def test_reset_without_an_entry_is_no_change() -> None:
    decision = decide(WAL_KEEP_SIZE, req("wal_keep_size", None), FileValues())
    assert not decision.changed and decision.before == decision.after == "0"


def test_reset_of_a_postmaster_setting_back_to_postgresql_conf() -> None:
    running = SettingInfo("max_wal_senders", "12", None, "integer", "postmaster", "configuration file", (), "0",
                          "262143", "10")
    decision = decide(running, req("max_wal_senders", None), FileValues(auto="12", other="10"))
    assert decision.changed and decision.restart_required
    settled = decide(MAX_WAL_SENDERS, req("max_wal_senders", None), FileValues(auto="12", other="10"))
    assert settled.changed and not settled.restart_required


def test_invalid_value_in_the_file_is_replaced() -> None:
    decision = decide(WAL_LEVEL, req("wal_level", "replica"), FileValues(auto="banana"))
    assert decision.changed


def test_list_settings_compare_by_element() -> None:
    assert not decide(SPL, req("shared_preload_libraries", ["pg_stat_statements", "auto_explain"]),
                      FileValues(auto="pg_stat_statements, auto_explain")).changed
    assert decide(SPL, req("shared_preload_libraries", "auto_explain, pg_stat_statements"),
                  FileValues(auto="pg_stat_statements, auto_explain")).changed
    custom = SettingInfo("myext.names", "a, b", None, "string", "sighup", "configuration file")
    assert not decide(custom, req("myext.names", ["a", "b"]), FileValues(auto="a, b")).changed


# ----------------------------------------------------------------------------------------- SQL and secrets

def test_alter_statement_quotes_name_and_values() -> None:
    statement = alter_statement("work_mem", ("'1MB'; SELECT pg_terminate_backend(1)--",))
    assert statement.as_string(None) == \
        "ALTER SYSTEM SET \"work_mem\" = '''1MB''; SELECT pg_terminate_backend(1)--'"
    assert alter_statement("DateStyle", ("iso, mdy",)).as_string(None) == "ALTER SYSTEM SET \"DateStyle\" = 'iso, mdy'"
    assert alter_statement("search_path", ("$user", "public")).as_string(None) == \
        "ALTER SYSTEM SET \"search_path\" = '$user', 'public'"
    assert alter_statement('x"; DROP TABLE t; --', None).as_string(None) == \
        'ALTER SYSTEM RESET "x""; DROP TABLE t; --"'


def test_restore_elements_write_back_the_previous_entry() -> None:
    assert restore_elements(WORK_MEM, None) is None
    assert restore_elements(WORK_MEM, "8MB") == ("8MB",)
    assert restore_elements(SPL, '"a,b", c') == ("a,b", "c")
    assert restore_elements(LOG_DESTINATION, "stderr, csvlog") == ("stderr, csvlog",)


def test_server_message_is_one_line() -> None:
    error = Exception('invalid value for parameter "wal_level": "banana"\nHINT:  Available values: minimal.\n')
    assert server_message(error) == \
        'invalid value for parameter "wal_level": "banana" HINT:  Available values: minimal.'


# ------------------------------------------------------------------------------- write order and putting back

class RecordingConnection:
    """Stands in for a connection: records each statement, refuses the ones naming a given setting."""

    def __init__(self, refuse: str | None = None) -> None:
        self.refuse = refuse
        self.sent: list[str] = []

    def execute(self, statement: Any) -> None:
        text = statement if isinstance(statement, str) else statement.as_string(None)
        if self.refuse and f'"{self.refuse}"' in text and text.startswith("ALTER SYSTEM SET"):
            raise psycopg.errors.InvalidParameterValue(f'invalid value for parameter "{self.refuse}": "banana"')
        self.sent.append(text)


def planned(info: SettingInfo, value: Any, files: FileValues, checked: bool) -> Planned:
    request = req(info.name, value)
    return Planned(request, info, files, decide(info, request, files), checked)


FACTS = ServerFacts(version_num=150010, in_recovery=False, is_superuser=True, current_user="postgres",
                    read_only=False)


def test_values_only_the_server_can_judge_are_written_first() -> None:
    conn = RecordingConnection()
    items = [planned(WORK_MEM, "8MB", FileValues(), True), planned(ARCHIVE_COMMAND, "/bin/true", FileValues(), False),
             planned(WAL_KEEP_SIZE, "1GB", FileValues(), False), planned(WAL_LEVEL, "replica", FileValues(), False)]
    write_all(conn, items, FACTS)
    assert conn.sent == [  # wal_level is unchanged (postgresql.conf's value) and not written
        "ALTER SYSTEM SET \"archive_command\" = '/bin/true'",
        "ALTER SYSTEM SET \"work_mem\" = '8MB'",
        "ALTER SYSTEM SET \"wal_keep_size\" = '1GB'",
    ]


def test_a_refused_value_puts_back_what_was_written_before() -> None:
    conn = RecordingConnection(refuse="log_destination")
    items = [planned(ARCHIVE_COMMAND, "/bin/true", FileValues(), False),
             planned(SPL, ["pg_stat_statements"], FileValues(auto='"a,b", c'), False),
             planned(LOG_DESTINATION, "banana", FileValues(), False),
             planned(WORK_MEM, "8MB", FileValues(), True)]
    with pytest.raises(PgreplError) as exc:
        write_all(conn, items, FACTS)
    assert str(exc.value) == ("settings.log_destination: 'banana' was refused by the server: invalid value for "
                              'parameter "log_destination": "banana" (the settings written before it were put '
                              "back; nothing changed)")
    assert conn.sent == [
        "ALTER SYSTEM SET \"archive_command\" = '/bin/true'",
        "ALTER SYSTEM SET \"shared_preload_libraries\" = 'pg_stat_statements'",
        "ALTER SYSTEM SET \"shared_preload_libraries\" = 'a,b', 'c'",
        'ALTER SYSTEM RESET "archive_command"',
    ]


def test_statement_logging_is_switched_off_around_a_conninfo_with_a_password() -> None:
    conninfo = SettingInfo("primary_conninfo", "", None, "string", "sighup", "default")
    conn = RecordingConnection()
    item = planned(conninfo, "host=db2 passfile=/x", FileValues(auto="host=db1 password=old-secret"), False)
    write_all(conn, [item], FACTS)
    assert conn.sent[:3] == ["SET log_statement = 'none'", "SET log_min_duration_statement = -1",
                             "SET log_min_error_statement = panic"]
    assert conn.sent[3] == "ALTER SYSTEM SET \"primary_conninfo\" = 'host=db2 passfile=/x'"
