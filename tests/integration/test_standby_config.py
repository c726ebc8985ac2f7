"""pgrepl.streaming.standby_config through Ansible, on real clones (pg_basebackup -R) of the shared primary.

The clones are this file's own clusters, so they can be reconfigured, stopped and started freely; the shared
primary only gets a slot and a replication role from this file, both removed at the end.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from psycopg import sql

from ansible_runner import run_module
from cluster import PgCluster, free_port, wait_for

MODULE = "standby_config"
SLOT = "standby_config_sc"
REPL_ROLE = "standby_config_repl"
REPL_PW = "standby-config-repl-pw-Jx27"
LEAKY_PW = "standby-config-leaky-pw-Pq55"
MASK = "********"


# ---------------------------------------------------------------------------------------------- helpers


def sighups(cluster: PgCluster) -> int:
    return cluster.log_text().count("received SIGHUP")


def auto_conf(cluster: PgCluster) -> Path:
    return cluster.data_dir / "postgresql.auto.conf"


def walsender(primary: PgCluster) -> tuple[str, str] | None:
    """(application_name, usename) of the streaming walsender that serves this file's slot, if any."""
    rows = primary.sql("SELECT r.application_name, r.usename FROM pg_stat_replication r "
                       "JOIN pg_replication_slots s ON s.active_pid = r.pid "
                       "WHERE s.slot_name = %s AND r.state = 'streaming'", (SLOT,))
    return (str(rows[0][0]), str(rows[0][1])) if rows else None


def receiver_conninfo(standby: PgCluster) -> str | None:
    rows = standby.sql("SELECT conninfo FROM pg_stat_wal_receiver WHERE status = 'streaming'")
    return str(rows[0][0]) if rows else None


def state_of(cluster: PgCluster) -> tuple[bytes, bool, bool]:
    """What the module may change on disk: postgresql.auto.conf's bytes and the two signal files."""
    return (auto_conf(cluster).read_bytes(), (cluster.data_dir / "standby.signal").exists(),
            (cluster.data_dir / "recovery.signal").exists())


def no_secret(result: dict[str, Any], *secrets: str) -> None:
    text = json.dumps(result)
    for secret in secrets:
        assert secret not in text


# ---------------------------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def sc_base() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="pgrepl-sc-"))
    postgres = pwd.getpwnam("postgres")
    os.chown(path, postgres.pw_uid, postgres.pw_gid)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def repl_role(primary: PgCluster) -> Iterator[str]:
    """A replication role with a scram password on the shared primary (test setup over the socket)."""
    primary.sql(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(REPL_ROLE)))
    primary.sql(sql.SQL("SET password_encryption = 'scram-sha-256'; CREATE ROLE {} LOGIN REPLICATION PASSWORD {}")
                .format(sql.Identifier(REPL_ROLE), sql.Literal(REPL_PW)))
    yield REPL_ROLE
    primary.sql(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(REPL_ROLE)))


@pytest.fixture(scope="module")
def passfile(sc_base: Path, primary: PgCluster, repl_role: str) -> Path:
    """The password file the clones' WAL receivers read (owned by postgres, 0600)."""
    path = sc_base / "pgpass"
    path.write_text(f"127.0.0.1:{primary.port}:replication:{repl_role}:{REPL_PW}\n")
    postgres = pwd.getpwnam("postgres")
    os.chown(path, postgres.pw_uid, postgres.pw_gid)
    path.chmod(0o600)
    return path


def drop_slot(primary: PgCluster) -> None:
    def inactive() -> bool:
        return not primary.scalar("SELECT count(*) FROM pg_replication_slots WHERE slot_name = %s AND active",
                                  (SLOT,))
    wait_for("the slot to become inactive", inactive)
    primary.sql("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = %s",
                (SLOT,))


@pytest.fixture(scope="module")
def clone(sc_base: Path, primary: PgCluster, passfile: Path) -> Iterator[tuple[PgCluster, bytes]]:
    """A running streaming standby of the shared primary (its own slot) and its postgresql.auto.conf as cloned."""
    cluster = PgCluster(sc_base, "sc_standby")
    try:
        cluster.clone_from(primary, slot=SLOT)
        cluster.start()
        cluster.wait_streaming()
        yield cluster, auto_conf(cluster).read_bytes()
    finally:
        cluster.destroy()
        drop_slot(primary)


@pytest.fixture
def standby(clone: tuple[PgCluster, bytes], primary: PgCluster) -> PgCluster:
    """The clone as pg_basebackup left it, streaming over the primary's socket (restored before each test)."""
    cluster, pristine = clone
    if auto_conf(cluster).read_bytes() != pristine:
        auto_conf(cluster).write_bytes(pristine)  # in place: owner and mode stay
        cluster.reload()
    wait_for("the clone to stream with its cloned settings",
             lambda: (receiver_conninfo(cluster) or "").find(f"host={primary.socket_dir} ") >= 0)
    wait_for("the primary to serve the clone's slot", lambda: walsender(primary))
    return cluster


@pytest.fixture
def copy(sc_base: Path, primary: PgCluster) -> Iterator[PgCluster]:
    """A stopped clone (no slot), free to become a primary; destroyed after the test."""
    cluster = PgCluster(sc_base, "sc_copy")
    try:
        cluster.clone_from(primary)
        yield cluster
    finally:
        cluster.destroy()


def bench_args(standby: PgCluster, primary: PgCluster, **extra: Any) -> dict[str, Any]:
    """The options the clone was made with: primary over its socket, the clone's slot."""
    return {"data_dir": str(standby.data_dir), "primary_host": str(primary.socket_dir), "primary_port": primary.port,
            "primary_slot_name": SLOT, **extra}


def tcp_args(standby: PgCluster, primary: PgCluster, passfile: Path, **extra: Any) -> dict[str, Any]:
    """The options a role would pass: TCP, the replication role, a passfile, an application_name."""
    return {"data_dir": str(standby.data_dir), "primary_host": "127.0.0.1", "primary_port": primary.port,
            "replication_user": REPL_ROLE, "passfile": str(passfile), "application_name": "sc_node_a",
            "primary_slot_name": SLOT, "conninfo_options": {"keepalives_idle": 30}, **extra}


# ------------------------------------------------------------------------------------------------- tests

def test_fresh_clone_with_the_options_it_was_made_with_is_unchanged(standby: PgCluster,
                                                                    primary: PgCluster) -> None:
    before = state_of(standby)
    hups = sighups(standby)
    args = bench_args(standby, primary)
    for check in (True, False):
        result = run_module(MODULE, args, check=check, diff=True)
        assert result["changed"] is False, result
        assert result["settings_changed"] == [] and result["reloaded"] is False
        assert result["reload_required"] is False and result["restart_required"] is False
        assert result["server_running"] is True and result["standby_signal"] is True
        assert result["diff"][0]["before"] == result["diff"][0]["after"] == before[0].decode()
    # the same with the user and passfile pg_basebackup wrote (libpq's defaults for the postgres OS user)
    result = run_module(MODULE, dict(args, replication_user="postgres", passfile="/var/lib/postgresql/.pgpass"))
    assert result["changed"] is False
    assert state_of(standby) == before and sighups(standby) == hups


def test_converge_to_tcp_with_a_passfile(standby: PgCluster, primary: PgCluster, passfile: Path) -> None:
    before = state_of(standby)
    st = auto_conf(standby).stat()
    hups = sighups(standby)
    args = tcp_args(standby, primary, passfile)
    expected = (f"host=127.0.0.1 port={primary.port} user={REPL_ROLE} passfile='{passfile}' "
                "application_name=sc_node_a sslmode=prefer keepalives_idle=30")

    check = run_module(MODULE, args, check=True, diff=True)
    assert check["changed"] is True and check["settings_changed"] == ["primary_conninfo"]
    assert check["reload_required"] is True and check["reloaded"] is False and check["restart_required"] is False
    assert check["primary_conninfo"] == expected
    assert check["diff"][0]["before"] == before[0].decode()
    assert "primary_conninfo = '" + expected.replace("'", "''") + "'" in check["diff"][0]["after"]
    signals = "standby.signal: present\nrecovery.signal: absent\n"
    assert check["diff"][1]["before"] == check["diff"][1]["after"] == signals
    assert state_of(standby) == before and sighups(standby) == hups  # nothing written, nothing reloaded

    real = run_module(MODULE, args, diff=True)
    assert real["changed"] is True and real["reloaded"] is True and real["restart_required"] is False
    text = auto_conf(standby).read_text()
    assert text == real["diff"][0]["after"]
    lines = text.splitlines()
    assert lines[0] == "# Do not edit this file manually!"
    assert lines[2] == "primary_conninfo = '" + expected.replace("'", "''") + "'"
    assert lines[3] == f"primary_slot_name = '{SLOT}'" and len(lines) == 4
    new_st = auto_conf(standby).stat()
    assert (new_st.st_uid, new_st.st_gid, stat.S_IMODE(new_st.st_mode)) == (st.st_uid, st.st_gid, 0o600)
    # the server reads back exactly the value built, and streams over TCP as the replication role
    assert standby.scalar("SHOW primary_conninfo") == expected
    assert wait_for("the walsender of the replication role",
                    lambda: walsender(primary) == ("sc_node_a", REPL_ROLE))
    assert "host=127.0.0.1" in (receiver_conninfo(standby) or "")
    # no password anywhere in the data directory's configuration
    assert REPL_PW not in text and "password" not in text
    no_secret(real, REPL_PW)

    again = run_module(MODULE, args)
    assert again["changed"] is False and again["reloaded"] is False and again["reload_required"] is False


def test_new_application_name_is_reloaded_and_seen_by_the_primary(standby: PgCluster, primary: PgCluster,
                                                                  passfile: Path) -> None:
    run_module(MODULE, tcp_args(standby, primary, passfile))
    wait_for("sc_node_a streaming", lambda: walsender(primary) == ("sc_node_a", REPL_ROLE))
    args = tcp_args(standby, primary, passfile, application_name="sc_node_b")
    before = state_of(standby)
    hups = sighups(standby)

    check = run_module(MODULE, args, check=True)
    assert check["changed"] is True and check["reload_required"] is True and check["reloaded"] is False
    assert state_of(standby) == before and sighups(standby) == hups

    real = run_module(MODULE, args)
    assert real["changed"] is True and real["reloaded"] is True
    assert "application_name=sc_node_b" in auto_conf(standby).read_text()
    assert sighups(standby) > hups
    assert wait_for("the primary to show the new application_name",
                    lambda: walsender(primary) == ("sc_node_b", REPL_ROLE))
    assert "application_name=sc_node_b" in (receiver_conninfo(standby) or "")

    assert run_module(MODULE, args)["changed"] is False


def test_remove_settings_drops_synchronous_standby_names(standby: PgCluster, primary: PgCluster) -> None:
    pristine = auto_conf(standby).read_text()
    with open(auto_conf(standby), "a", encoding="utf-8") as handle:
        handle.write("synchronous_standby_names = 'ANY 1 (sc_x, sc_y)'\n")
    standby.reload()
    wait_for("the standby to load synchronous_standby_names",
             lambda: standby.scalar("SHOW synchronous_standby_names") == "ANY 1 (sc_x, sc_y)")
    before = state_of(standby)
    args = bench_args(standby, primary)

    check = run_module(MODULE, args, check=True, diff=True)
    assert check["changed"] is True and check["settings_changed"] == ["synchronous_standby_names"]
    assert check["diff"][0]["after"] == pristine
    assert state_of(standby) == before

    real = run_module(MODULE, args)
    assert real["changed"] is True and real["reloaded"] is True
    assert auto_conf(standby).read_text() == pristine
    wait_for("synchronous_standby_names to be gone", lambda: standby.scalar("SHOW synchronous_standby_names") == "")

    assert run_module(MODULE, args)["changed"] is False


def test_a_password_in_primary_conninfo_is_removed_and_never_shown(standby: PgCluster, primary: PgCluster) -> None:
    text = auto_conf(standby).read_text()
    leaky = text.replace("target_session_attrs=any'", f"target_session_attrs=any password={LEAKY_PW}'")
    assert leaky != text
    auto_conf(standby).write_text(leaky)
    args = bench_args(standby, primary)

    check = run_module(MODULE, args, check=True, diff=True)
    assert check["changed"] is True and check["settings_changed"] == ["primary_conninfo"]
    assert f"password={MASK}" in check["diff"][0]["before"]
    assert any("held a password" in warning for warning in check["warnings"])
    no_secret(check, LEAKY_PW)
    assert auto_conf(standby).read_text() == leaky

    real = run_module(MODULE, args)
    assert real["changed"] is True
    assert LEAKY_PW not in auto_conf(standby).read_text() and "password" not in auto_conf(standby).read_text()
    no_secret(real, LEAKY_PW)
    assert run_module(MODULE, args)["changed"] is False


def test_state_primary_on_a_stopped_copy_then_back_to_standby_while_running(copy: PgCluster,
                                                                            primary: PgCluster) -> None:
    with open(auto_conf(copy), "a", encoding="utf-8") as handle:
        handle.write("primary_slot_name = 'sc_copy_slot'\nwork_mem = '8MB'\n")
    before = state_of(copy)
    assert before[1] is True
    args = {"data_dir": str(copy.data_dir), "state": "primary"}

    check = run_module(MODULE, args, check=True, diff=True)
    assert check["changed"] is True and check["settings_changed"] == ["primary_conninfo", "primary_slot_name"]
    assert check["server_running"] is False and check["restart_required"] is False
    assert check["diff"][1]["after"] == "standby.signal: absent\nrecovery.signal: absent\n"
    assert state_of(copy) == before

    real = run_module(MODULE, args)
    assert real["changed"] is True and real["primary_conninfo"] is None and real["standby_signal"] is False
    assert not (copy.data_dir / "standby.signal").exists()
    text = auto_conf(copy).read_text()
    assert text == ("# Do not edit this file manually!\n# It will be overwritten by the ALTER SYSTEM command.\n"
                    "work_mem = '8MB'\n")
    assert run_module(MODULE, args)["changed"] is False

    copy.start()
    assert copy.scalar("SELECT pg_is_in_recovery()") is False

    # Back to a standby while it runs as a primary: creating standby.signal needs a restart.
    standby_args = {"data_dir": str(copy.data_dir), "primary_host": str(primary.socket_dir),
                    "primary_port": primary.port}
    before = state_of(copy)
    check = run_module(MODULE, standby_args, check=True)
    assert check["changed"] is True and check["restart_required"] is True and check["server_running"] is True
    assert state_of(copy) == before
    real = run_module(MODULE, standby_args)
    assert real["changed"] is True and real["restart_required"] is True and real["reloaded"] is True
    signal = copy.data_dir / "standby.signal"
    postgres = pwd.getpwnam("postgres")
    assert signal.exists() and signal.stat().st_uid == postgres.pw_uid and stat.S_IMODE(signal.stat().st_mode) == 0o600
    assert copy.scalar("SELECT pg_is_in_recovery()") is False  # until the restart the caller does
    assert run_module(MODULE, standby_args)["changed"] is False


def test_min_settings_raise_a_stopped_copy_and_never_lower(copy: PgCluster, primary: PgCluster) -> None:
    """Hot standby parity: written before the first start, raised only, and the server really runs with them."""
    args = {"data_dir": str(copy.data_dir), "primary_host": str(primary.socket_dir), "primary_port": primary.port,
            "min_settings": {"max_connections": 120, "max_locks_per_transaction": 80}}
    before = auto_conf(copy).read_bytes()
    predicted = run_module(MODULE, args, check=True, diff=True)
    assert predicted["changed"] is True and predicted["restart_required"] is False  # stopped: read at start
    assert auto_conf(copy).read_bytes() == before
    done = run_module(MODULE, args)
    assert done["changed"] is True
    text = auto_conf(copy).read_text()
    assert "max_connections = '120'" in text and "max_locks_per_transaction = '80'" in text
    assert run_module(MODULE, args)["changed"] is False
    # A lower minimum leaves the higher value as it is.
    lower = dict(args, min_settings={"max_connections": 50})
    assert run_module(MODULE, lower)["changed"] is False
    assert "max_connections = '120'" in auto_conf(copy).read_text()
    copy.start()
    try:
        assert copy.scalar("SHOW max_connections") == "120"
        assert copy.scalar("SHOW max_locks_per_transaction") == "80"
        # Raised on a running server: written, and the module says a restart is needed.
        raised = run_module(MODULE, dict(args, min_settings={"max_connections": 130}))
        assert raised["changed"] is True and raised["restart_required"] is True
        assert copy.scalar("SHOW max_connections") == "120"
    finally:
        copy.stop()


# -------------------------------------------------------------------------------------------- bad inputs

def bad_cases() -> list[tuple[str, dict[str, Any], list[str]]]:
    """(id, options merged over valid bench options, fragments of the message). {dir}: the test's temp dir,
    {data}: the clone's data dir, {port}: a closed port, {primary_sock}/{primary_port}: the shared primary."""
    return [
        ("bad_slot_name", {"primary_slot_name": "Bad-Slot"},
         ["primary_slot_name: 'Bad-Slot' is not a valid slot name (^[a-z0-9_]{1,63}$)"]),
        ("application_name_64", {"application_name": "n" * 64},
         ["application_name: '" + "n" * 64 + "' is 64 bytes long, at most 63"]),
        ("password_in_conninfo_options", {"conninfo_options": {"password": LEAKY_PW}},
         ["conninfo_options: 'password' is refused"]),
        ("newline_in_primary_host", {"primary_host": "db1\nhost=evil"},
         ["primary_host: 'db1\\nhost=evil' contains a line break"]),
        ("not_a_data_dir", {"data_dir": "{dir}"},
         ["data_dir: '{dir}' is not a PostgreSQL data directory (no PG_VERSION"]),
        ("relative_data_dir", {"data_dir": "relative/data"}, ["data_dir: 'relative/data' must be an absolute path"]),
        ("port_out_of_range", {"primary_port": 70000}, ["primary_port: 70000 is not a TCP port (1-65535)"]),
        ("conninfo_options_wrong_type", {"conninfo_options": ["keepalives=1"]}, ["conninfo_options", "dict"]),
        ("remove_primary_conninfo", {"remove_settings": ["primary_conninfo"]},
         ["remove_settings: 'primary_conninfo' is managed"]),
        ("relative_passfile", {"passfile": "pgpass"}, ["passfile: 'pgpass' must be an absolute path"]),
        ("standby_without_primary_host", {"primary_host": None}, ["primary_host"]),
        ("unknown_owner", {"owner": "sc_no_such_user"}, ["owner: 'sc_no_such_user' is not a user on this host"]),
        ("min_settings_negative", {"min_settings": {"max_connections": -1}},
         ["min_settings.max_connections: -1 is not a whole number >= 0"]),
        ("min_settings_not_a_number", {"min_settings": {"max_connections": "lots"}},
         ["min_settings.max_connections: 'lots' is not a whole number"]),
        ("min_settings_injection_name", {"min_settings": {"max_connections = 1\nx": 5}},
         ["min_settings: 'max_connections = 1\\nx' is not a setting name"]),
        ("min_settings_managed", {"min_settings": {"primary_slot_name": 5}},
         ["min_settings.primary_slot_name: 'primary_slot_name' is managed"]),
        ("wrong_password", {"application_name": "sc_bad", "login_host": "127.0.0.1", "login_port": "{primary_port}",
                            "login_password": "wrong-pw"}, ["authentication failed"]),
        ("closed_port", {"application_name": "sc_bad", "login_host": "127.0.0.1", "login_port": "{port}"},
         ["cannot reach PostgreSQL", "login_port={port}"]),
        ("other_server", {"application_name": "sc_bad", "login_unix_socket": "{primary_sock}",
                          "login_port": "{primary_port}"},
         ["whose data_directory is", "not data_dir '{data}'"]),
    ]


@pytest.mark.parametrize("case", bad_cases(), ids=[case[0] for case in bad_cases()])
def test_bad_input_is_refused_and_changes_nothing(standby: PgCluster, primary: PgCluster, tmp_path: Path,
                                                  case: tuple[str, dict[str, Any], list[str]]) -> None:
    _id, overrides, fragments = case
    closed = free_port()
    values = {"{dir}": str(tmp_path), "{data}": str(standby.data_dir), "{port}": str(closed),
              "{primary_sock}": str(primary.socket_dir), "{primary_port}": str(primary.port)}

    def fill(value: Any) -> Any:
        if isinstance(value, str):
            for marker, real in values.items():
                value = value.replace(marker, real)
        return value

    args = bench_args(standby, primary)
    args.update({key: fill(value) for key, value in overrides.items()})
    args = {key: value for key, value in args.items() if value is not None}
    before = state_of(standby)
    hups = sighups(standby)
    result = run_module(MODULE, args)
    assert result.get("failed") is True, result
    for fragment in fragments:
        assert fill(fragment) in result["msg"], (fragment, result["msg"])
    assert "Traceback" not in json.dumps(result)
    no_secret(result, LEAKY_PW)
    assert state_of(standby) == before and sighups(standby) == hups
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------------ delayed standby

def test_a_delayed_standby_applies_commits_only_after_the_delay(standby: PgCluster, primary: PgCluster) -> None:
    table = "sc_apply_delay"
    primary.sql(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(table)))
    primary.sql(sql.SQL("CREATE TABLE {} (id int)").format(sql.Identifier(table)))
    wait_for("the table on the standby", lambda: standby.sql("SELECT to_regclass(%s) IS NOT NULL", (table,))[0][0])
    args = bench_args(standby, primary, apply_delay="4s")
    before = state_of(standby)
    predicted = run_module(MODULE, args, check=True, diff=True)
    assert predicted["changed"] is True and predicted["settings_changed"] == ["recovery_min_apply_delay"]
    assert state_of(standby) == before  # check mode wrote nothing
    applied = run_module(MODULE, args)
    assert applied["changed"] is True and applied["reloaded"] is True and applied["restart_required"] is False
    assert "recovery_min_apply_delay = '4s'" in auto_conf(standby).read_text()
    wait_for("the delay in effect", lambda: standby.sql("SHOW recovery_min_apply_delay")[0][0] == "4s")
    # The same delay written another way is the same: nothing to do.
    assert run_module(MODULE, dict(args, apply_delay="4000"))["changed"] is False

    committed = time.monotonic()
    primary.sql(sql.SQL("INSERT INTO {} VALUES (1)").format(sql.Identifier(table)))
    count = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
    # Received at once, applied only after the delay: checked as soon as the standby has the commit (its flush
    # on the primary), not after a fixed sleep that a loaded machine could stretch past the delay.
    flushed = primary.sql("SELECT pg_current_wal_flush_lsn()::text")[0][0]
    wait_for("the commit received", lambda: standby.sql("SELECT pg_last_wal_receive_lsn() >= %s::pg_lsn",
                                                        (flushed,))[0][0])
    assert standby.sql(count)[0][0] == 0
    wait_for("the row on the delayed standby", lambda: standby.sql(count)[0][0] == 1, timeout=30)
    assert time.monotonic() - committed >= 3.5

    # 0: no delay any more, the line is gone and the next row arrives at once. An hour's delay first, so that "at
    # once" needs no tight deadline on a loaded machine: with any delay left, the row would wait an hour.
    longer = run_module(MODULE, dict(args, apply_delay="1h"))
    assert longer["changed"] is True and longer["settings_changed"] == ["recovery_min_apply_delay"], longer
    wait_for("the hour's delay in effect", lambda: standby.sql("SHOW recovery_min_apply_delay")[0][0] == "1h")
    removed = run_module(MODULE, dict(args, apply_delay=0))
    assert removed["changed"] is True and removed["settings_changed"] == ["recovery_min_apply_delay"]
    assert "recovery_min_apply_delay" not in auto_conf(standby).read_text()
    wait_for("the delay gone", lambda: standby.sql("SHOW recovery_min_apply_delay")[0][0] == "0")
    primary.sql(sql.SQL("INSERT INTO {} VALUES (2)").format(sql.Identifier(table)))
    wait_for("the row without delay", lambda: standby.sql(count)[0][0] == 2, timeout=120)
    primary.sql(sql.SQL("DROP TABLE {}").format(sql.Identifier(table)))


def test_a_bad_apply_delay_changes_nothing(standby: PgCluster, primary: PgCluster) -> None:
    before = state_of(standby)
    result = run_module(MODULE, bench_args(standby, primary, apply_delay="5 minutes"))
    assert result.get("failed") is True and "apply_delay: '5 minutes' is not a time" in result["msg"], result
    assert state_of(standby) == before
