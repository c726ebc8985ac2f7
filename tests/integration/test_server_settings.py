# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pgrepl.streaming.server_settings through ansible-playbook against real servers.

Every assertion on state reads the server: postgresql.auto.conf on disk (byte for byte where nothing may change),
pg_file_settings, pg_settings and SHOW from a fresh session, and the server log (log_statement=all) to prove
that check mode sends no ALTER SYSTEM and no reload. The shared primary and standby get every setting touched
here reset by a finalizer; restarts happen only on a cluster of this file's own.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from psycopg import sql

from ansible_runner import run_module, run_tasks
from cluster import Clusters, PgCluster, free_port

MODULE = "pgrepl.streaming.server_settings"
PLAIN_ROLE = "server_settings_plain"
GRANTED_ROLE = "server_settings_granted"
ROLE_PASSWORD = "ss-Role-pw-5Kd"
CONNINFO_PASSWORD = "ss-Conninfo-pw-9Wq"


# --- helpers -------------------------------------------------------------------------------------------------

def auto_conf(cluster: PgCluster) -> bytes:
    return (cluster.data_dir / "postgresql.auto.conf").read_bytes()


def auto_lines(cluster: PgCluster) -> list[str]:
    return [line for line in auto_conf(cluster).decode().splitlines() if line and not line.startswith("#")]


def file_settings(cluster: PgCluster) -> list[tuple]:
    return cluster.sql("SELECT sourcefile, name, setting, applied, error FROM pg_file_settings ORDER BY seqno")


def auto_entry(cluster: PgCluster, name: str) -> tuple | None:
    rows = cluster.sql("SELECT setting, applied, error FROM pg_file_settings"
                       " WHERE lower(name) = lower(%s) AND sourcefile LIKE '%%/postgresql.auto.conf'"
                       " ORDER BY seqno DESC LIMIT 1", (name,))
    return rows[0] if rows else None


def show(cluster: PgCluster, name: str) -> str:
    """SHOW from a new session (so the value a reload applied is seen)."""
    return str(cluster.scalar(sql.SQL("SHOW {}").format(sql.Identifier(name))))


def wait_show(cluster: PgCluster, name: str, expected: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if show(cluster, name) == expected:
            return
        time.sleep(0.1)
    raise AssertionError(f"SHOW {name} is {show(cluster, name)!r}, not {expected!r}, after {timeout}s")


def wait_pending_restart(cluster: PgCluster, name: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cluster.scalar("SELECT pending_restart FROM pg_settings WHERE name = %s", (name,)):
            return
        time.sleep(0.1)
    raise AssertionError(f"pending_restart of {name} never became true")


def call(cluster: PgCluster, settings: Any, check: bool = False, diff: bool = False,
         **args: Any) -> dict[str, Any]:
    return run_module(MODULE, {**cluster.login(), "settings": settings, **args}, check=check, diff=diff)


def log_since(cluster: PgCluster, offset: int) -> str:
    return cluster.log_text()[offset:]


def reset(cluster: PgCluster, names: set[str]) -> None:
    for name in sorted(names):
        cluster.sql(sql.SQL("ALTER SYSTEM RESET {}").format(sql.Identifier(name)))
    cluster.reload()


# --- fixtures ------------------------------------------------------------------------------------------------

@pytest.fixture
def touched(primary: PgCluster, standby: PgCluster) -> Iterator[Callable[[PgCluster, str], None]]:
    """Register settings a test sets; they are reset (ALTER SYSTEM RESET + reload) on that server afterwards."""
    names: dict[str, set[str]] = {"primary": set(), "standby": set()}
    clusters = {"primary": primary, "standby": standby}

    def touch(cluster: PgCluster, *settings: str) -> None:
        names[cluster.name].update(settings)

    yield touch
    for key, settings in names.items():
        if settings:
            reset(clusters[key], settings)


@pytest.fixture(scope="module")
def own_cluster(throwaway: Clusters) -> PgCluster:
    """A server of this file's own, restarted by the tests."""
    return throwaway.server("server_settings_own")


@pytest.fixture(scope="module")
def roles(primary: PgCluster) -> Iterator[None]:
    """A plain login role, and one granted exactly what a non-superuser needs for one setting (PostgreSQL 15+)."""
    for role in (PLAIN_ROLE, GRANTED_ROLE):
        primary.sql(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
            sql.Identifier(role), sql.Literal(ROLE_PASSWORD)))
    grants = [
        "GRANT ALTER SYSTEM ON PARAMETER log_min_duration_statement TO {}",
        "GRANT SELECT ON pg_catalog.pg_file_settings TO {}",
        "GRANT EXECUTE ON FUNCTION pg_catalog.pg_show_all_file_settings() TO {}",
        "GRANT EXECUTE ON FUNCTION pg_catalog.pg_reload_conf() TO {}",
    ]
    for grant in grants:
        primary.sql(sql.SQL(grant).format(sql.Identifier(GRANTED_ROLE)))
    yield
    for grant in grants:
        revoke = grant.replace("GRANT ", "REVOKE ", 1).replace(" TO {}", " FROM {}")
        primary.sql(sql.SQL(revoke).format(sql.Identifier(GRANTED_ROLE)))
    for role in (PLAIN_ROLE, GRANTED_ROLE):
        primary.sql(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


# --- a reloadable setting: check mode, real run, rerun -----------------------------------------------------

def test_sighup_settings_check_then_apply_then_unchanged(primary: PgCluster, touched: Callable) -> None:
    touched(primary, "wal_keep_size", "log_min_duration_statement")
    wanted = {"wal_keep_size": "256MB", "log_min_duration_statement": "250ms"}
    before_bytes, before_files = auto_conf(primary), file_settings(primary)
    assert show(primary, "wal_keep_size") == "0" and show(primary, "log_min_duration_statement") == "-1"
    offset = len(primary.log_text())

    predicted = call(primary, wanted, check=True, diff=True)
    assert predicted["changed"] is True and predicted["reloaded"] is True, predicted
    assert predicted["restart_required"] is False
    assert predicted["settings"]["wal_keep_size"] == {
        "old": "0", "new": "256MB", "pending": None, "changed": True, "restart_required": False, "context": "sighup"}
    assert predicted["settings"]["log_min_duration_statement"]["context"] == "superuser"
    assert predicted["diff"] == {"before": {"wal_keep_size": "0", "log_min_duration_statement": "-1"},
                                 "after": wanted}
    # nothing written, nothing reloaded, nothing running differently
    assert auto_conf(primary) == before_bytes
    assert file_settings(primary) == before_files
    assert show(primary, "wal_keep_size") == "0" and show(primary, "log_min_duration_statement") == "-1"
    sent = log_since(primary, offset)
    assert "set_config" in sent  # the values were tried in a rolled-back transaction ...
    assert "ALTER SYSTEM" not in sent and "pg_reload_conf" not in sent  # ... but nothing was written

    applied = call(primary, wanted, diff=True)
    assert applied["changed"] is True and applied["reloaded"] is True, applied
    assert applied["diff"] == predicted["diff"]
    assert "wal_keep_size = '256MB'" in auto_lines(primary)
    assert "log_min_duration_statement = '250ms'" in auto_lines(primary)
    assert auto_entry(primary, "wal_keep_size") == ("256MB", True, None)
    wait_show(primary, "wal_keep_size", "256MB")
    wait_show(primary, "log_min_duration_statement", "250ms")

    again = call(primary, wanted, diff=True)
    assert again["changed"] is False and again["reloaded"] is False, again
    assert again["settings"]["wal_keep_size"]["old"] == "256MB"
    assert again["diff"]["before"] == again["diff"]["after"] == wanted


def test_without_reload_the_value_waits_in_the_file(primary: PgCluster, touched: Callable) -> None:
    touched(primary, "wal_receiver_timeout")
    offset = len(primary.log_text())
    result = call(primary, {"wal_receiver_timeout": "45s"}, reload=False)
    assert result["changed"] is True and result["reloaded"] is False, result
    assert "pg_reload_conf" not in log_since(primary, offset)
    assert auto_entry(primary, "wal_receiver_timeout") == ("45s", True, None)
    time.sleep(1)
    assert show(primary, "wal_receiver_timeout") == "1min"  # not reloaded: the server still runs the old value

    waiting = call(primary, {"wal_receiver_timeout": "45000ms"}, reload=False)
    assert waiting["changed"] is False and waiting["reloaded"] is False
    assert waiting["settings"]["wal_receiver_timeout"]["pending"] == "45s"
    assert waiting["settings"]["wal_receiver_timeout"]["old"] == "1min"
    primary.reload()
    wait_show(primary, "wal_receiver_timeout", "45s")
    settled = call(primary, {"wal_receiver_timeout": "45s"})
    assert settled["changed"] is False and settled["settings"]["wal_receiver_timeout"]["pending"] is None


def test_units_are_normalised_before_comparing(primary: PgCluster, touched: Callable) -> None:
    touched(primary, "wal_keep_size")
    assert call(primary, {"wal_keep_size": "1GB"})["changed"] is True
    assert auto_entry(primary, "wal_keep_size")[0] == "1GB"
    wait_show(primary, "wal_keep_size", "1GB")
    written = auto_conf(primary)
    for same in ("1024MB", 1024, "1048576kB", "0.0009765625TB"):
        result = call(primary, {"wal_keep_size": same})
        assert result["changed"] is False, (same, result)
        assert result["settings"]["wal_keep_size"]["new"] == str(same)
    assert auto_conf(primary) == written
    different = call(primary, {"wal_keep_size": "1000MB"}, check=True)
    assert different["changed"] is True
    assert auto_conf(primary) == written


def test_block_units_and_postgresql_conf_values(primary: PgCluster) -> None:
    """shared_buffers = 16MB in postgresql.conf runs as 2048 blocks of 8kB: each spelling is the same value."""
    before = auto_conf(primary)
    assert primary.scalar("SELECT setting || ' ' || unit FROM pg_settings WHERE name = 'shared_buffers'") == \
        "2048 8kB"
    for same in ("16MB", 2048, "16384kB", "16777216B"):
        result = call(primary, {"shared_buffers": same, "hot_standby": "yes", "wal_level": "REPLICA"})
        assert result["changed"] is False and result["restart_required"] is False, (same, result)
        assert result["settings"]["shared_buffers"]["old"] == "16MB"
    assert auto_conf(primary) == before


# --- a setting that needs a restart (own cluster) ----------------------------------------------------------

def test_postmaster_setting_waits_for_restart_then_settles(own_cluster: PgCluster) -> None:
    cluster = own_cluster
    before = auto_conf(cluster)
    offset = len(cluster.log_text())

    predicted = call(cluster, {"max_wal_senders": 12}, check=True, diff=True)
    assert predicted["changed"] is True and predicted["restart_required"] is True, predicted
    assert predicted["settings"]["max_wal_senders"]["restart_required"] is True
    assert predicted["diff"] == {"before": {"max_wal_senders": "10"}, "after": {"max_wal_senders": "12"}}
    assert any("restarted" in warning for warning in predicted.get("warnings", []))
    assert auto_conf(cluster) == before and auto_entry(cluster, "max_wal_senders") is None
    assert "ALTER SYSTEM" not in log_since(cluster, offset)

    applied = call(cluster, {"max_wal_senders": 12})
    assert applied["changed"] is True and applied["restart_required"] is True and applied["reloaded"] is True
    assert "max_wal_senders = '12'" in auto_lines(cluster)
    # the server's own view: the file value cannot be applied without a restart, and it still runs 10
    assert auto_entry(cluster, "max_wal_senders") == ("12", False, "setting could not be applied")
    assert show(cluster, "max_wal_senders") == "10"
    wait_pending_restart(cluster, "max_wal_senders")

    pending = call(cluster, {"max_wal_senders": "12"}, diff=True)
    assert pending["changed"] is False and pending["restart_required"] is True, pending
    assert pending["settings"]["max_wal_senders"] == {
        "old": "10", "new": "12", "pending": "12", "changed": False, "restart_required": True,
        "context": "postmaster"}
    assert pending["diff"]["before"] == pending["diff"]["after"] == {"max_wal_senders": "12"}

    cluster.restart()
    assert show(cluster, "max_wal_senders") == "12"
    settled = call(cluster, {"max_wal_senders": 12})
    assert settled["changed"] is False and settled["restart_required"] is False, settled
    assert settled["settings"]["max_wal_senders"]["pending"] is None

    # null: RESET removes the entry; postgresql.conf's 10 then waits for a restart
    written = auto_conf(cluster)
    predicted_reset = call(cluster, {"max_wal_senders": None}, check=True, diff=True)
    assert predicted_reset["changed"] is True and predicted_reset["restart_required"] is True
    assert predicted_reset["diff"] == {"before": {"max_wal_senders": "12"}, "after": {"max_wal_senders": None}}
    assert auto_conf(cluster) == written
    reset_run = call(cluster, {"max_wal_senders": None})
    assert reset_run["changed"] is True and reset_run["restart_required"] is True
    assert not any("max_wal_senders" in line for line in auto_lines(cluster))
    assert auto_entry(cluster, "max_wal_senders") is None
    cluster.restart()
    assert show(cluster, "max_wal_senders") == "10"
    final = call(cluster, {"max_wal_senders": None})
    assert final["changed"] is False and final["restart_required"] is False


def test_extension_setting_is_known_once_its_library_is_loaded(own_cluster: PgCluster) -> None:
    cluster = own_cluster
    before = auto_conf(cluster)
    unknown = call(cluster, {"pg_stat_statements.max": 2000})
    assert unknown.get("failed") is True
    assert "settings.pg_stat_statements.max: the server has no setting named" in unknown["msg"]
    assert "library is loaded" in unknown["msg"]
    assert auto_conf(cluster) == before

    try:
        loaded = call(cluster, {"shared_preload_libraries": ["pg_stat_statements"]})
        assert loaded["changed"] is True and loaded["restart_required"] is True
        assert "shared_preload_libraries = 'pg_stat_statements'" in auto_lines(cluster)
        assert call(cluster, {"shared_preload_libraries": "pg_stat_statements"})["changed"] is False
        cluster.restart()
        assert show(cluster, "shared_preload_libraries") == "pg_stat_statements"

        known = call(cluster, {"pg_stat_statements.max": 2000, "pg_stat_statements.track": "ALL"})
        assert known["changed"] is True and known["restart_required"] is True, known
        assert known["settings"]["pg_stat_statements.track"]["restart_required"] is False
        assert "pg_stat_statements.max = '2000'" in auto_lines(cluster)
        wait_show(cluster, "pg_stat_statements.track", "all")
        again = call(cluster, {"pg_stat_statements.max": "2000", "pg_stat_statements.track": "all"})
        assert again["changed"] is False and again["restart_required"] is True
    finally:
        reset(cluster, {"shared_preload_libraries", "pg_stat_statements.max", "pg_stat_statements.track"})
        cluster.restart()
    assert auto_conf(cluster) == before


# --- reset, standby, quoting, secrets ----------------------------------------------------------------------

def test_null_resets_the_setting(primary: PgCluster, touched: Callable) -> None:
    touched(primary, "log_min_duration_statement")
    before = auto_conf(primary)
    assert call(primary, {"log_min_duration_statement": "1s"})["changed"] is True
    assert "log_min_duration_statement = '1s'" in auto_lines(primary)
    wait_show(primary, "log_min_duration_statement", "1s")
    written = auto_conf(primary)

    predicted = call(primary, {"log_min_duration_statement": None}, check=True, diff=True)
    assert predicted["changed"] is True
    assert predicted["diff"] == {"before": {"log_min_duration_statement": "1s"},
                                 "after": {"log_min_duration_statement": None}}
    assert auto_conf(primary) == written and show(primary, "log_min_duration_statement") == "1s"

    result = call(primary, {"log_min_duration_statement": None})
    assert result["changed"] is True and result["settings"]["log_min_duration_statement"]["new"] is None
    assert auto_conf(primary) == before
    assert auto_entry(primary, "log_min_duration_statement") is None
    wait_show(primary, "log_min_duration_statement", "-1")
    assert call(primary, {"log_min_duration_statement": None})["changed"] is False


def test_works_on_the_standby(primary: PgCluster, standby: PgCluster, touched: Callable) -> None:
    touched(standby, "log_min_duration_statement", "wal_receiver_status_interval")
    wanted = {"log_min_duration_statement": "2s", "wal_receiver_status_interval": "5s"}
    before = auto_conf(standby)
    assert "primary_conninfo" in before.decode()
    primary_before = auto_conf(primary)

    predicted = call(standby, wanted, check=True)
    assert predicted["changed"] is True, predicted
    assert auto_conf(standby) == before

    result = call(standby, wanted)
    assert result["changed"] is True and result["reloaded"] is True and result["restart_required"] is False
    lines = auto_lines(standby)
    assert "log_min_duration_statement = '2s'" in lines and "wal_receiver_status_interval = '5s'" in lines
    assert any(line.startswith("primary_conninfo = ") for line in lines)  # the standby's own entries stay
    wait_show(standby, "log_min_duration_statement", "2s")
    wait_show(standby, "wal_receiver_status_interval", "5s")
    assert standby.scalar("SELECT pg_is_in_recovery()") is True
    standby.wait_streaming()
    assert auto_conf(primary) == primary_before

    assert call(standby, {"log_min_duration_statement": "2000ms", "wal_receiver_status_interval": 5})[
        "changed"] is False


def test_values_are_quoted_never_interpolated(primary: PgCluster, touched: Callable) -> None:
    touched(primary, "archive_command", "search_path")
    command = "cp \"%p\" '/tmp/server settings/%f'; echo done -- it's fine \\ here"
    result = call(primary, {"archive_command": command, "search_path": ['$user', "public", "Server Settings"]})
    assert result["changed"] is True, result
    assert auto_entry(primary, "archive_command")[0] == command
    assert auto_entry(primary, "search_path")[0] == '"$user", public, "Server Settings"'
    wait_show(primary, "search_path", '"$user", public, "Server Settings"')
    assert call(primary, {"archive_command": command,
                          "search_path": '"$user", public, "Server Settings"'})["changed"] is False


def test_password_in_primary_conninfo_is_refused_and_never_shown(primary: PgCluster, touched: Callable) -> None:
    touched(primary, "primary_conninfo")
    before = auto_conf(primary)
    offset = len(primary.log_text())
    with_password = f"host=127.0.0.1 port={primary.port} user=server_settings_repl password={CONNINFO_PASSWORD}"
    task = {"name": "conninfo", MODULE: {**primary.login(), "settings": {"primary_conninfo": with_password}}}
    refused = run_tasks([task], diff=True, verbosity=3, json_output=False)
    assert "settings.primary_conninfo: the connection string contains a password" in refused.stdout
    assert "passfile" in refused.stdout
    assert CONNINFO_PASSWORD not in refused.stdout + refused.stderr
    assert auto_conf(primary) == before
    assert CONNINFO_PASSWORD not in log_since(primary, offset)

    # A password already in postgresql.auto.conf (put there by hand) is masked in what the module shows.
    old_password = "ss-Old-conninfo-pw-4Tt"
    primary.sql(sql.SQL("ALTER SYSTEM SET primary_conninfo = {}").format(
        sql.Literal(f"host=127.0.0.1 user=server_settings_repl password={old_password}")))
    offset = len(primary.log_text())
    with_passfile = f"host=127.0.0.1 port={primary.port} user=server_settings_repl passfile=/nonexistent/.pgpass"
    task = {"name": "conninfo", MODULE: {**primary.login(), "settings": {"primary_conninfo": with_passfile}}}
    replaced = run_tasks([task], diff=True, verbosity=3, json_output=False)
    assert "changed: [localhost]" in replaced.stdout, replaced.stdout
    assert old_password not in replaced.stdout + replaced.stderr
    assert "password=********" in replaced.stdout  # the diff's before, masked
    assert auto_entry(primary, "primary_conninfo")[0] == with_passfile
    assert old_password not in log_since(primary, offset)
    again = call(primary, {"primary_conninfo": with_passfile}, diff=True)
    assert again["changed"] is False and again.get("failed") is not True, again


# --- nothing is half applied ---------------------------------------------------------------------------------

def test_one_bad_value_changes_nothing(primary: PgCluster, touched: Callable) -> None:
    touched(primary, "wal_keep_size", "archive_command", "log_destination")
    before, files = auto_conf(primary), file_settings(primary)
    offset = len(primary.log_text())
    result = call(primary, {"wal_keep_size": "512MB", "wal_level": "banana"})
    assert result.get("failed") is True
    assert "settings.wal_level: 'banana'" in result["msg"] and "'minimal', 'replica', 'logical'" in result["msg"]
    assert auto_conf(primary) == before and file_settings(primary) == files
    assert "ALTER SYSTEM" not in log_since(primary, offset)


def test_value_only_alter_system_can_judge_is_undone(primary: PgCluster, touched: Callable) -> None:
    """log_destination is checked by ALTER SYSTEM itself: the setting written before it is put back."""
    touched(primary, "archive_command", "log_destination")
    before, files = auto_conf(primary), file_settings(primary)
    result = call(primary, {"archive_command": "/bin/true", "log_destination": "banana"})
    assert result.get("failed") is True, result
    assert "settings.log_destination: 'banana' was refused by the server" in result["msg"]
    assert 'invalid value for parameter "log_destination"' in result["msg"]
    assert "put back" in result["msg"]
    assert auto_conf(primary) == before and file_settings(primary) == files
    assert auto_entry(primary, "archive_command") is None


# --- a non-superuser with exactly the grants it needs -----------------------------------------------------

def test_granted_non_superuser_can_set_its_parameter(primary: PgCluster, roles: None, touched: Callable) -> None:
    touched(primary, "log_min_duration_statement")
    login = primary.login(login_user=GRANTED_ROLE, login_password=ROLE_PASSWORD)
    result = run_module(MODULE, {**login, "settings": {"log_min_duration_statement": "3s"}})
    assert result["changed"] is True and result.get("failed") is not True, result
    assert "log_min_duration_statement = '3s'" in auto_lines(primary)
    wait_show(primary, "log_min_duration_statement", "3s")
    other = run_module(MODULE, {**login, "settings": {"log_min_duration_statement": "3s", "work_mem": "5MB"}})
    assert other.get("failed") is True
    assert f"login_user: the role '{GRANTED_ROLE}' is not a superuser and may not ALTER SYSTEM settings.work_mem" \
        in other["msg"]
    assert auto_entry(primary, "work_mem") is None


# --- bad input: refused before anything is written ---------------------------------------------------------

BAD_INPUTS: list[tuple[str, dict[str, Any], list[str]]] = [
    ("unknown_name", {"settings": {"server_settings_no_such": 1}},
     ["settings.server_settings_no_such: the server has no setting named 'server_settings_no_such'"]),
    ("unknown_extension_name", {"settings": {"server_settings.nothing": "x"}},
     ["settings.server_settings.nothing:", "library is loaded"]),
    ("enum_banana", {"settings": {"wal_level": "banana"}},
     ["settings.wal_level: 'banana' is not a valid value", "'minimal', 'replica', 'logical'"]),
    ("negative_max_connections", {"settings": {"max_connections": -5}},
     ["settings.max_connections: -5", "outside the valid range for max_connections (1 .. "]),
    ("unit_case", {"settings": {"work_mem": "1gb"}},
     ["settings.work_mem: '1gb'", 'Valid units for this parameter are "B", "kB", "MB", "GB", and "TB".']),
    ("bool_garbage", {"settings": {"hot_standby": "maybe"}}, ["settings.hot_standby: 'maybe'", "not a boolean"]),
    ("name_injection_semicolon", {"settings": {"work_mem; DROP TABLE x": "1MB"}},
     ["settings: 'work_mem; DROP TABLE x' is not a valid setting name"]),
    ("name_injection_quote", {"settings": {'work_mem" = 1; SELECT 1; --': "1MB"}},
     ["is not a valid setting name", "work_mem"]),
    ("value_injection_number", {"settings": {"work_mem": "'1MB'; SELECT pg_terminate_backend(1)--"}},
     ["settings.work_mem: \"'1MB'; SELECT pg_terminate_backend(1)--\" is not a valid value"]),
    ("value_injection_enum", {"settings": {"wal_level": "replica'; DROP TABLE x; --"}},
     ["settings.wal_level: \"replica'; DROP TABLE x; --\" is not a valid value"]),
    ("value_refused_by_server_check", {"settings": {"DateStyle": "banana"}},
     ["settings.DateStyle: 'banana' was refused by the server", 'invalid value for parameter "DateStyle"']),
    ("data_directory", {"settings": {"data_directory": "/tmp/elsewhere"}},
     ["settings.data_directory: cannot be set with this module"]),
    ("hba_file", {"settings": {"hba_file": "/tmp/hba"}}, ["settings.hba_file: cannot be set with this module"]),
    ("internal_setting", {"settings": {"wal_segment_size": "32MB"}},
     ["settings.wal_segment_size:", "read-only setting (context internal)"]),
    ("transaction_setting", {"settings": {"transaction_read_only": True}},
     ["settings.transaction_read_only: cannot be set", "default_transaction_read_only"]),
    ("settings_is_a_list", {"settings": ["work_mem", "1MB"]}, ["settings", "dict"]),
    ("list_for_a_number", {"settings": {"work_mem": ["1MB", "2MB"]}},
     ["settings.work_mem: ['1MB', '2MB'] is a list, but work_mem is not a list setting"]),
    ("dict_value", {"settings": {"work_mem": {"a": 1}}}, ["settings.work_mem: {'a': 1} is a dict"]),
    ("empty_library", {"settings": {"shared_preload_libraries": ""}},
     ["settings.shared_preload_libraries: '' has an empty list element"]),
    ("same_setting_twice", {"settings": {"work_mem": "1MB", "WORK_MEM": "2MB"}},
     ["settings: 'work_mem' and 'WORK_MEM' name the same setting"]),
    ("reload_not_bool", {"settings": {"work_mem": "1MB"}, "reload": "sometimes"}, ["reload"]),
    ("closed_port", {"settings": {"work_mem": "8MB"}, "login_port": "CLOSED", "connect_timeout": 3},
     ["cannot reach PostgreSQL at postgres@127.0.0.1:"]),
    ("wrong_password", {"settings": {"work_mem": "8MB"}, "login_password": "server-settings-wrong-pw"},
     ["authentication failed for postgres@127.0.0.1", "login_password"]),
    ("non_superuser", {"settings": {"work_mem": "8MB"}, "login_user": PLAIN_ROLE, "login_password": ROLE_PASSWORD},
     [f"login_user: the role '{PLAIN_ROLE}' is not a superuser and may not read pg_file_settings",
      "settings.work_mem"]),
]


@pytest.mark.parametrize(("args", "fragments"), [case[1:] for case in BAD_INPUTS], ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_is_refused_and_changes_nothing(primary: PgCluster, roles: None, args: dict[str, Any],
                                                  fragments: list[str]) -> None:
    before, files = auto_conf(primary), file_settings(primary)
    work_mem = show(primary, "work_mem")
    offset = len(primary.log_text())
    login = primary.login()
    if args.get("login_port") == "CLOSED":
        args = {**args, "login_port": free_port()}
    result = run_module(MODULE, {**login, **args})
    assert result.get("failed") is True, result
    for fragment in fragments:
        assert fragment in result["msg"], result["msg"]
    assert "Traceback" not in json.dumps(result)
    assert auto_conf(primary) == before
    assert file_settings(primary) == files
    assert show(primary, "work_mem") == work_mem
    sent = log_since(primary, offset)
    assert "ALTER SYSTEM" not in sent and "pg_reload_conf" not in sent
