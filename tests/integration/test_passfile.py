"""pgrepl.streaming.passfile through Ansible: files on disk (bytes, mode, owner) and real libpq logins with them."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from ansible_collections.pgrepl.streaming.plugins.module_utils._conninfo import parse

from ansible_runner import run_module, run_tasks
from cluster import Clusters, PgCluster

MODULE = "passfile"
ROLE = "passfile_login"
ROLE_PW = "passfile-login-pw-Zq81"
OTHER_PW = "passfile-other-pw-Hy42"
MASK = "********"
# A hand-maintained file: comments, a blank line, an unrelated entry, a line libpq skips.
HAND_WRITTEN = (
    "# credentials of this host\n"
    "db9.example.com:5432:*:app:passfile-app-pw-Ux3\n"
    "\n"
    "# the next line has too few fields and is ignored by libpq\n"
    "broken:line\n"
)


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def login(primary: PgCluster, passfile: Path) -> str:
    """Log in over TCP 127.0.0.1 as ROLE with no password but this passfile: current_user, or the error."""
    try:
        with psycopg.connect(host="127.0.0.1", port=primary.port, user=ROLE, dbname="postgres",
                             passfile=str(passfile), sslmode="disable", connect_timeout=5) as conn:
            row = conn.execute("SELECT current_user").fetchone()
            return str(row[0]) if row else ""
    except psycopg.OperationalError as exc:
        return f"error: {exc}"


def entry(primary: PgCluster, password: str = ROLE_PW, **extra: Any) -> dict[str, Any]:
    return {"host": "127.0.0.1", "port": primary.port, "database": "*", "user": ROLE, "password": password,
            **extra}


def role_line(primary: PgCluster, password: str = ROLE_PW) -> str:
    return f"127.0.0.1:{primary.port}:*:{ROLE}:{password}\n"


def no_secret(result: dict[str, Any], *secrets: str) -> None:
    text = json.dumps(result)
    for secret in secrets:
        assert secret not in text


@pytest.fixture(scope="module")
def login_role(primary: PgCluster) -> Iterator[str]:
    """A plain LOGIN role with a scram password, created over the socket (test setup)."""
    primary.sql(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(ROLE)))
    primary.sql(sql.SQL("SET password_encryption = 'scram-sha-256'; CREATE ROLE {} LOGIN PASSWORD {}").format(
        sql.Identifier(ROLE), sql.Literal(ROLE_PW)))
    yield ROLE
    primary.sql(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(ROLE)))


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A private directory owned by the postgres OS user (so a new file's default owner is visible)."""
    path = Path(tempfile.mkdtemp(prefix="pgrepl-passfile-"))
    entry_pw = pwd.getpwnam("postgres")
    os.chown(path, entry_pw.pw_uid, entry_pw.pw_gid)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_create_check_first_then_real_then_unchanged(primary: PgCluster, login_role: str, workdir: Path) -> None:
    path = workdir / "pgpass"
    args = {"path": str(path), "entries": [entry(primary)]}
    assert login(primary, path).startswith("error:")  # no file, no password: the server refuses

    check = run_module(MODULE, args, check=True, diff=True)
    assert check["changed"] is True and check["entries_added"] == 1 and check["keys_added"] == [
        f"127.0.0.1:{primary.port}:*:{ROLE}"]
    assert not path.exists()
    assert check["diff"][0]["before"] == ""
    assert check["diff"][0]["after"] == f"127.0.0.1:{primary.port}:*:{ROLE}:{MASK}\n"
    assert check["diff"][1]["after"] == "mode: 0600\nowner: postgres\ngroup: postgres\n"
    no_secret(check, ROLE_PW)

    real = run_module(MODULE, args, diff=True)
    assert real["changed"] is True and real["entries_added"] == 1
    assert path.read_text() == role_line(primary)
    assert mode_of(path) == 0o600 and real["mode"] == "0600"
    assert path.stat().st_uid == pwd.getpwnam("postgres").pw_uid == real["uid"]  # the directory's owner
    assert [p.name for p in workdir.iterdir()] == ["pgpass"]  # no temporary file left behind
    no_secret(real, ROLE_PW)
    assert login(primary, path) == ROLE

    again = run_module(MODULE, args)
    assert again["changed"] is False and again["entries_added"] == again["entries_updated"] == 0


def test_password_change_updates_the_line_in_place(primary: PgCluster, login_role: str, workdir: Path) -> None:
    path = workdir / "pgpass"
    original = HAND_WRITTEN + role_line(primary, OTHER_PW) + "# last comment\n"
    path.write_text(original)
    path.chmod(0o600)
    assert "password authentication failed" in login(primary, path)
    args = {"path": str(path), "entries": [entry(primary)]}

    check = run_module(MODULE, args, check=True, diff=True)
    assert check["changed"] is True and check["entries_updated"] == 1 and check["entries_added"] == 0
    assert path.read_text() == original
    assert OTHER_PW not in check["diff"][0]["before"] and f"{ROLE}:{MASK}" in check["diff"][0]["before"]
    assert "passfile-app-pw-Ux3" not in json.dumps(check)

    real = run_module(MODULE, args)
    assert real["changed"] is True and real["keys_updated"] == [f"127.0.0.1:{primary.port}:*:{ROLE}"]
    assert path.read_text() == HAND_WRITTEN + role_line(primary) + "# last comment\n"
    assert login(primary, path) == ROLE

    again = run_module(MODULE, args)
    assert again["changed"] is False


def test_wrong_mode_is_repaired(primary: PgCluster, login_role: str, workdir: Path) -> None:
    path = workdir / "pgpass"
    content = HAND_WRITTEN + role_line(primary)
    path.write_text(content)
    path.chmod(0o644)
    assert login(primary, path).startswith("error:")  # libpq ignores a file others may read
    args = {"path": str(path), "entries": [entry(primary)]}

    check = run_module(MODULE, args, check=True, diff=True)
    assert check["changed"] is True and check["entries_updated"] == check["entries_added"] == 0
    assert mode_of(path) == 0o644
    assert check["diff"][1]["before"].startswith("mode: 0644") and check["diff"][1]["after"].startswith("mode: 0600")
    assert check["diff"][0]["before"] == check["diff"][0]["after"]

    real = run_module(MODULE, args)
    assert real["changed"] is True and mode_of(path) == 0o600 and path.read_text() == content
    assert login(primary, path) == ROLE

    again = run_module(MODULE, args)
    assert again["changed"] is False


def test_owner_and_group_are_applied(primary: PgCluster, login_role: str, workdir: Path) -> None:
    path = workdir / "pgpass"
    path.write_text(role_line(primary))
    path.chmod(0o600)
    args = {"path": str(path), "owner": "nobody", "group": "nogroup", "entries": [entry(primary)]}
    check = run_module(MODULE, args, check=True)
    assert check["changed"] is True and path.stat().st_uid == 0
    real = run_module(MODULE, args)
    nobody = pwd.getpwnam("nobody")
    assert real["changed"] is True and path.stat().st_uid == nobody.pw_uid and real["owner"] == "nobody"
    assert path.read_text() == role_line(primary) and mode_of(path) == 0o600
    assert run_module(MODULE, args)["changed"] is False


def test_absent_removes_only_that_entry(primary: PgCluster, login_role: str, workdir: Path) -> None:
    path = workdir / "pgpass"
    original = role_line(primary) + HAND_WRITTEN
    path.write_text(original)
    path.chmod(0o600)
    assert login(primary, path) == ROLE
    args = {"path": str(path), "state": "absent",
            "entries": [{"host": "127.0.0.1", "port": str(primary.port), "user": ROLE}]}

    check = run_module(MODULE, args, check=True, diff=True)
    assert check["changed"] is True and check["entries_removed"] == 1
    assert path.read_text() == original
    assert check["diff"][0]["after"] == HAND_WRITTEN.replace("passfile-app-pw-Ux3", MASK)

    real = run_module(MODULE, args)
    assert real["changed"] is True and real["keys_removed"] == [f"127.0.0.1:{primary.port}:*:{ROLE}"]
    assert path.read_text() == HAND_WRITTEN
    assert login(primary, path).startswith("error:")

    again = run_module(MODULE, args)
    assert again["changed"] is False and again["entries_removed"] == 0


# ------------------------------------------------------------------------------------------- bad inputs

BAD_PASSWORD = "passfile-never-shown-Kw9"


def bad_cases() -> list[tuple[str, dict[str, Any], list[str]]]:
    """(id, args to merge over a valid call, fragments the message must contain)."""
    good = {"host": "db1", "user": "replicator", "password": BAD_PASSWORD}
    return [
        ("entries_wrong_type", {"entries": 5}, ["entries", "5", "must be a list"]),
        ("entry_missing_user", {"entries": [good, {"host": "db2", "password": BAD_PASSWORD}]},
         ["entries[1].user: is required"]),
        ("newline_in_password", {"entries": [dict(good, password=BAD_PASSWORD + "\nx")]},
         ["entries[0].password: the value contains a line break"]),
        ("newline_in_user", {"entries": [good, dict(good, user="rep\nlicator")]},
         ["entries[1].user: 'rep\\nlicator' contains a line break"]),
        ("port_not_a_number", {"entries": [dict(good, port="54x2")]},
         ["entries[0].port: '54x2' is not a port number (1-65535) or '*'"]),
        ("port_out_of_range", {"entries": [dict(good, port=70000)]}, ["entries[0].port: '70000'"]),
        ("user_is_a_list", {"entries": [dict(good, user=["a", "b"])]},
         ["entries[0].user: ['a', 'b'] is a list"]),
        ("duplicate_entries", {"entries": [good, dict(good, port="5432")]},
         ["entries[1]: 'db1:5432:*:replicator' is the same host:port:database:user as entries[0]"]),
        ("present_without_password", {"entries": [{"host": "db1", "user": "replicator"}]},
         ["entries[0].password: is required (with state=present)"]),
        ("unknown_owner", {"owner": "passfile_no_such_user", "entries": [good]},
         ["owner: 'passfile_no_such_user' is not a user on this host"]),
        ("path_is_a_directory", {"path": "{dir}", "entries": [good]}, ["path: '{dir}' is a directory"]),
        ("parent_missing", {"path": "{dir}/missing/pgpass", "entries": [good]},
         ["path: the directory '{dir}/missing' of '{dir}/missing/pgpass' does not exist"]),
        ("relative_path", {"path": "relative/pgpass", "entries": [good]},
         ["path: 'relative/pgpass' must be an absolute path"]),
    ]


@pytest.mark.parametrize("case", bad_cases(), ids=[case[0] for case in bad_cases()])
def test_bad_input_is_refused_and_changes_nothing(workdir: Path, case: tuple[str, dict[str, Any], list[str]]) -> None:
    _id, overrides, fragments = case
    path = workdir / "pgpass"
    original = HAND_WRITTEN
    path.write_text(original)
    path.chmod(0o640)  # a wrong mode: a refused call must not even fix it
    args: dict[str, Any] = {"path": str(path)}
    args.update({key: value.replace("{dir}", str(workdir)) if isinstance(value, str) else value
                 for key, value in overrides.items()})
    result = run_module(MODULE, args)
    assert result.get("failed") is True, result
    for fragment in fragments:
        assert fragment.replace("{dir}", str(workdir)) in result["msg"]
    assert "Traceback" not in json.dumps(result)
    assert BAD_PASSWORD not in json.dumps(result)
    assert path.read_text() == original and mode_of(path) == 0o640
    assert sorted(p.name for p in workdir.iterdir()) == ["pgpass"]


# --- an IPv6 primary: pg_hba entry, passfile line and primary_conninfo, the way the roles build them ---------------

V6_ROLE = "passfile_v6_replicator"
V6_PW = "passfile-v6-pw:with\\colon-Kp7"  # a colon and a backslash: both escaped in the passfile line


@pytest.fixture(scope="module")
def v6_pair(throwaway: Clusters) -> tuple[PgCluster, PgCluster]:
    """A primary that listens on ::1 too, and a copy of it (stopped) to configure as its standby."""
    primary = throwaway.server("v6primary", listen_ipv6=True)
    primary.sql(sql.SQL("SET password_encryption = 'scram-sha-256'; CREATE ROLE {} LOGIN REPLICATION "
                        "PASSWORD {}").format(sql.Identifier(V6_ROLE), sql.Literal(V6_PW)))
    return primary, throwaway.standby(primary, "v6standby", start=False)


def test_a_standby_streams_from_an_ipv6_primary_with_the_passfile_line(v6_pair: tuple[PgCluster, PgCluster]) -> None:
    primary, standby = v6_pair
    passfile = standby.base / "v6standby" / "pgpass"
    # The addresses as a user may write them: the filters give the canonical text (the same for conninfo and
    # passfile: libpq finds the line by comparing that text) and the pg_hba entry.
    tasks = [
        {"name": "primary: pg_hba entry for the standby",
         "vars": {"peers": {"v6standby": "[0:0::1]"}, "entry": {
             "path": str(primary.hba_file), "contype": "host", "databases": ["replication"], "users": [V6_ROLE],
             "method": "scram-sha-256", "reload": True}},
         "pgrepl.streaming.node_apply": {**primary.login(), "checks": {"hba": {
             "module": "pg_hba", "params": "{{ peers | pgrepl.streaming.hba_entries({}, entry) }}"}}}},
        {"name": "standby: passfile line and primary_conninfo",
         "vars": {"host": "{{ '0:0::1' | pgrepl.streaming.node_address }}"},
         "pgrepl.streaming.node_apply": {
             "replication_password": V6_PW,
             "checks": {
                 "passfile": {"module": "passfile", "params": {
                     "path": str(passfile), "owner": "postgres", "group": "postgres",
                     "entries": [{"host": "{{ host }}", "port": str(primary.port), "database": "replication",
                                  "user": V6_ROLE}]}},
                 "config": {"module": "standby_config", "params": {
                     "data_dir": str(standby.data_dir), "primary_host": "{{ host }}", "primary_port": primary.port,
                     "replication_user": V6_ROLE, "passfile": str(passfile), "application_name": "v6standby",
                     "sslmode": "disable", "owner": "postgres"}}}}},
    ]
    run = run_tasks(tasks)
    for result in run.results:
        assert result.get("failed") is not True and result["changed"] is True, result
    assert "host    replication     passfile_v6_replicator ::1/128" in primary.hba_file.read_text()
    assert primary.scalar("SELECT count(*) FROM pg_hba_file_rules WHERE %s = ANY(user_name) AND address = '::1' "
                          "AND error IS NULL", (V6_ROLE,)) == 1
    # libpq's escaping: every ':' of the address and of the password, and the backslash.
    escaped_pw = V6_PW.replace("\\", "\\\\").replace(":", "\\:")
    assert passfile.read_text() == f"\\:\\:1:{primary.port}:replication:{V6_ROLE}:{escaped_pw}\n"
    auto = (standby.data_dir / "postgresql.auto.conf").read_text()
    conninfo = next(line for line in auto.splitlines() if line.startswith("primary_conninfo"))
    # The IPv6 host quoted, as libpq reads it back (the setting's own quotes doubled inside the file).
    assert "host=''::1''" in conninfo, conninfo

    # libpq itself finds the line and connects over ::1 with it (a physical replication connection).
    with psycopg.connect(host="::1", port=primary.port, user=V6_ROLE, dbname="replication", replication="true",
                         passfile=str(passfile), sslmode="disable", connect_timeout=5, autocommit=True) as conn:
        res = conn.pgconn.exec_(b"IDENTIFY_SYSTEM")
        assert res.status == psycopg.pq.ExecStatus.TUPLES_OK, res.error_message

    # And so does the standby's WAL receiver, from its primary_conninfo.
    standby.start()
    standby.wait_streaming()
    assert standby.scalar("SELECT sender_host FROM pg_stat_wal_receiver") == "::1"
    assert parse(str(standby.scalar("SHOW primary_conninfo")))["host"] == "::1"
    assert str(primary.scalar("SELECT client_addr FROM pg_stat_replication WHERE application_name = 'v6standby' "
                              "AND usename = %s", (V6_ROLE,))) == "::1"
    # The roles' second run changes nothing.
    again = run_tasks(tasks)
    for result in again.results:
        assert result.get("failed") is not True and result["changed"] is False, result
