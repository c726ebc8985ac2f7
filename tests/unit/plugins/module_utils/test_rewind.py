# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""rewind's pure logic: options, the command, pg_rewind's output, the target decision, the source checks, grants."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest
from psycopg.conninfo import conninfo_to_dict

from ansible_collections.pgrepl.streaming.plugins.module_utils import _rewind
from ansible_collections.pgrepl.streaming.plugins.module_utils._divergence import NodeWal, divergence
from ansible_collections.pgrepl.streaming.plugins.module_utils._errors import PgreplError
from ansible_collections.pgrepl.streaming.plugins.module_utils._osuser import OsUser
from ansible_collections.pgrepl.streaming.plugins.module_utils._promotion import parse_history
from ansible_collections.pgrepl.streaming.plugins.module_utils._rewind import (
    OUTCOME_ALREADY_REWOUND,
    RewindReport,
    RewindRequest,
    SourceFacts,
    TargetFacts,
    classify_target,
    collapse_progress,
    config_files_in,
    explain_failure,
    failure_hint,
    parse_rewind_output,
    rewind_command,
    rewind_request,
    source_conninfo,
    source_problem,
)

# Real output of pg_rewind 15 (C locale, stdout and stderr merged, \r turned into line breaks), from the bench.
DIVERGED = """pg_rewind: connected to server
pg_rewind: servers diverged at WAL location 0/3C582F0 on timeline 1
pg_rewind: rewinding from last common checkpoint at 0/3C56360 on timeline 1
pg_rewind: reading source file list
pg_rewind: reading target file list
pg_rewind: reading WAL in target
pg_rewind: need to copy 67 MB (total source directory size is 93 MB)
    0/69342 kB (0%) copied
11952/69342 kB (17%) copied
69342/69342 kB (100%) copied
pg_rewind: creating backup label and updating control file
pg_rewind: syncing target data directory
pg_rewind: Done!""".splitlines()
SAME_TIMELINE = """pg_rewind: connected to server
pg_rewind: source and target cluster are on the same timeline
pg_rewind: no rewind required""".splitlines()
BAD_PASSWORD = ["pg_rewind: error: connection to server at \"127.0.0.1\", port 20005 failed: FATAL:  password "
                "authentication failed for user \"rewind_user\"",
                "password retrieved from file \"/tmp/x/pgpass\""]
CLOSED_PORT = ["pg_rewind: error: connection to server at \"127.0.0.1\", port 1 failed: Connection refused",
               "\tIs the server running on that host and accepting TCP/IP connections?"]

USER = OsUser(name="postgres", uid=105, gid=110, home="/var/lib/postgresql")


def params(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {"data_dir": "/var/lib/postgresql/15/main", "source_host": "db2.example.com",
                              "source_user": "pgrepl_rewind", "passfile": "/var/lib/postgresql/.pgpass"}
    values.update(overrides)
    return values


def target(**overrides: Any) -> TargetFacts:
    values: dict[str, Any] = {
        "data_dir": "/var/lib/postgresql/15/main", "major": "15", "cluster_state": "shut down",
        "system_identifier": "7710851650192431319", "checkpoint_timeline": 1, "min_recovery_end_timeline": 0,
        "wal_log_hints": True, "data_checksums": False, "postmaster_running": False, "postmaster_pid": None,
        "postmaster_pid_file": False, "rewound_label": False, "owner_uid": 105,
        "controldata": "/usr/lib/postgresql/15/bin/pg_controldata",
    }
    values.update(overrides)
    return TargetFacts(**values)


def source(**overrides: Any) -> SourceFacts:
    values: dict[str, Any] = {
        "system_identifier": "7710851650192431319", "in_recovery": False, "checkpoint_timeline": 2,
        "min_recovery_end_timeline": 2, "wal_file": "000000020000000000000003", "is_superuser": False,
        "current_user": "pgrepl_rewind", "version_num": 150018,
    }
    values.update(overrides)
    return SourceFacts(**values)


# ---------------------------------------------------------------------------------------------------- options


def test_request_defaults() -> None:
    request = rewind_request(params())
    assert request == RewindRequest(data_dir="/var/lib/postgresql/15/main", source_host="db2.example.com",
                                    source_user="pgrepl_rewind", passfile="/var/lib/postgresql/.pgpass")
    assert (request.source_port, request.source_dbname, request.sslmode, request.os_user, request.timeout) == \
        (5432, "postgres", "prefer", "postgres", 3600)


def test_request_normalises_paths() -> None:
    request = rewind_request(params(data_dir="/srv/pg//data/", bin_dir="/usr/lib/postgresql/15/bin/"))
    assert request.data_dir == "/srv/pg/data" and request.bin_dir == "/usr/lib/postgresql/15/bin"


@pytest.mark.parametrize("overrides, expected", [
    ({"data_dir": "pgdata"}, "data_dir: 'pgdata' must be an absolute path"),
    ({"data_dir": "/"}, "data_dir: '/' is the root directory"),
    ({"data_dir": ""}, "data_dir: '' is not a path"),
    ({"data_dir": "/srv/a\nb"}, "data_dir: '/srv/a\\nb' contains a control character"),
    ({"passfile": "relative/.pgpass"}, "passfile: 'relative/.pgpass' must be an absolute path"),
    ({"passfile": "/var/lib/postgresql/15/main/.pgpass"}, "is inside data_dir"),
    ({"bin_dir": "bin"}, "bin_dir: 'bin' must be an absolute path"),
    ({"source_host": "db2 user=postgres"}, "source_host: 'db2 user=postgres' is not one host name"),
    ({"source_host": "a,b"}, "source_host: 'a,b' is not one host name"),
    ({"source_host": ""}, "source_host: '' is not a host"),
    ({"source_user": "x' password='y"}, "source_user: \"x' password='y\" is not accepted"),
    ({"source_user": ""}, "source_user: '' is not a role name"),
    ({"source_user": "a" * 64}, "is 64 bytes long"),
    ({"source_dbname": "postgres options='-c x'"}, "source_dbname: \"postgres options='-c x'\" is not accepted"),
    ({"source_port": 0}, "source_port: 0 is not a TCP port (1-65535)"),
    ({"source_port": 70000}, "source_port: 70000 is not a TCP port"),
    ({"source_port": "5432"}, "source_port: '5432' is not an integer"),
    ({"timeout": 0}, "timeout: 0 is not a number of seconds"),
    ({"sslmode": "sometimes"}, "sslmode: 'sometimes' is not one of"),
    ({"os_user": "root"}, "os_user: 'root' cannot own a data directory"),
    ({"os_user": "pg user"}, "os_user: 'pg user' is not a user name"),
])
def test_bad_options(overrides: dict[str, Any], expected: str) -> None:
    with pytest.raises(PgreplError) as err:
        rewind_request(params(**overrides))
    assert expected in str(err.value)


def test_conninfo_has_the_passfile_and_never_a_password() -> None:
    request = rewind_request(params(source_port=5433, sslmode="verify-full", source_dbname="app_db"))
    parsed = conninfo_to_dict(source_conninfo(request))
    assert parsed == {"host": "db2.example.com", "port": "5433", "user": "pgrepl_rewind", "dbname": "app_db",
                      "passfile": "/var/lib/postgresql/.pgpass", "sslmode": "verify-full", "connect_timeout": "10",
                      "application_name": "pgrepl.streaming"}


def test_passfile_with_quotes_stays_one_value() -> None:
    request = rewind_request(params(passfile="/home/o'brien/.pgpass"))
    assert conninfo_to_dict(source_conninfo(request))["passfile"] == "/home/o'brien/.pgpass"


def test_command_never_writes_recovery_settings_nor_starts_the_target() -> None:
    request = rewind_request(params())
    real = rewind_command("/usr/lib/postgresql/15/bin/pg_rewind", request, dry_run=False)
    dry = rewind_command("/usr/lib/postgresql/15/bin/pg_rewind", request, dry_run=True)
    assert real[:3] == ["/usr/lib/postgresql/15/bin/pg_rewind", "--target-pgdata", "/var/lib/postgresql/15/main"]
    for cmd in (real, dry):
        assert "--no-ensure-shutdown" in cmd and "--progress" in cmd
        assert not {"-R", "--write-recovery-conf", "-c", "--restore-target-wal"} & set(cmd)
    assert "--dry-run" in dry and "--dry-run" not in real


# ----------------------------------------------------------------------------------------------------- output


def test_parse_a_rewind() -> None:
    report = parse_rewind_output(DIVERGED)
    assert report.rewind_needed is True and report.done and report.connected and not report.errors
    assert (report.divergence_lsn, report.divergence_timeline) == ("0/3C582F0", 1)
    assert (report.checkpoint_lsn, report.checkpoint_timeline) == ("0/3C56360", 1)
    assert (report.copy_mb, report.source_mb) == (67, 93)
    progress = [line for line in report.lines if "copied" in line]
    assert progress == ["69342/69342 kB (100%) copied"]


def test_parse_no_rewind_required() -> None:
    report = parse_rewind_output(SAME_TIMELINE)
    assert report.rewind_needed is False and report.same_timeline and report.divergence_lsn is None


def test_diverged_but_no_rewind_required_is_not_needed() -> None:
    # A target that stopped before the divergence point: pg_rewind reports both lines.
    report = parse_rewind_output(["pg_rewind: connected to server",
                                  "pg_rewind: servers diverged at WAL location 0/5000060 on timeline 1",
                                  "pg_rewind: no rewind required"])
    assert report.rewind_needed is False and report.divergence_lsn == "0/5000060"


def test_output_that_says_nothing_is_undecided() -> None:
    assert parse_rewind_output(["pg_rewind: connected to server"]).rewind_needed is None
    assert RewindReport().rewind_needed is None


def test_error_lines_keep_their_continuation() -> None:
    report = parse_rewind_output(BAD_PASSWORD)
    assert report.errors == [BAD_PASSWORD[0] + " " + BAD_PASSWORD[1]]
    closed = parse_rewind_output(CLOSED_PORT)
    assert closed.errors[0].endswith("Connection refused Is the server running on that host and accepting TCP/IP "
                                     "connections?")


def test_fatal_prefix_of_older_versions_is_an_error() -> None:
    report = parse_rewind_output(["pg_rewind: connected to server",
                                  "pg_rewind: fatal: target server must be shut down cleanly"])
    assert report.errors == ["pg_rewind: fatal: target server must be shut down cleanly"]


def test_progress_runs_collapse_to_their_last_line() -> None:
    lines = ["a", "   0/10 kB (0%) copied", "5/10 kB (50%) copied", "10/10 kB (100%) copied", "b",
             "1/2 kB (50%) copied"]
    assert collapse_progress(lines) == ["a", "10/10 kB (100%) copied", "b", "1/2 kB (50%) copied"]


def test_passwords_are_masked_in_output_lines() -> None:
    report = parse_rewind_output(["pg_rewind: error: invalid connection option password=hunter2 foo"])
    assert "hunter2" not in str(report)


def test_failure_quotes_pg_rewind_and_names_the_cause() -> None:
    request = rewind_request(params())
    text = explain_failure(request, parse_rewind_output(BAD_PASSWORD), 1, dry_run=True,
                           hint=failure_hint(request, "password", []))
    assert text.startswith("pg_rewind --dry-run against the source (source_host=db2.example.com source_port=5432 "
                           "source_user=pgrepl_rewind source_dbname=postgres) failed (exit 1)")
    assert "the password for pgrepl_rewind in passfile /var/lib/postgresql/.pgpass is wrong" in text
    assert "nothing was changed" in text
    assert 'pg_rewind said: pg_rewind: error: connection to server at "127.0.0.1"' in text


def test_failure_after_copying_started_says_data_dir_may_be_changed() -> None:
    lines = DIVERGED[:6] + ["pg_rewind: error: could not read file \"base/1/1259\": Permission denied"]
    text = explain_failure(rewind_request(params()), parse_rewind_output(lines), 1, dry_run=False)
    assert "may have changed data_dir" in text and "force_reclone" in text


@pytest.mark.parametrize(("cause", "missing", "hint"), [
    ("no_password", [], "passfile /var/lib/postgresql/.pgpass has no line matching db2.example.com:5432:postgres:"
                        "pgrepl_rewind"),
    ("hba", [], "the source's pg_hba.conf has no line admitting pgrepl_rewind"),
    ("database", [], "source_dbname: the database 'postgres' does not exist on the source"),
    ("unreachable", [], "the source cannot be reached or refuses the connection: nothing answers"),
    (None, ["pg_catalog.pg_read_binary_file(text)"], "may not execute pg_catalog.pg_read_binary_file(text): grant"),
    (None, [], ""),
])
def test_failure_hints_come_from_libpq_facts_and_grants(cause: str | None, missing: list[str], hint: str) -> None:
    found = failure_hint(rewind_request(params()), cause, missing)
    assert hint in found and (found == "" or found.startswith("; "))


def test_wal_hint_from_pg_rewinds_own_words() -> None:
    # pg_rewind runs under LC_ALL=C, so its own messages (not the source's) are English.
    line = "pg_rewind: error: could not find previous WAL record at 0/2000100"
    text = explain_failure(rewind_request(params()), parse_rewind_output([line]), 1, dry_run=True)
    assert "copy the missing segments back" in text


# ----------------------------------------------------------------------------------------------------- target


def test_clean_target_is_ready() -> None:
    assert classify_target(target(), USER) == "ready"
    assert classify_target(target(cluster_state="shut down in recovery"), USER) == "ready"
    assert classify_target(target(wal_log_hints=False, data_checksums=True), USER) == "ready"


def test_running_target_refused() -> None:
    with pytest.raises(PgreplError, match="a server is running on '/var/lib/postgresql/15/main' "
                                          r"\(postmaster.pid names the live process 4242\)"):
        classify_target(target(postmaster_running=True, postmaster_pid=4242, cluster_state="in production"), USER)


@pytest.mark.parametrize("state", ["in production", "in crash recovery", "shutting down", "starting up",
                                   "in archive recovery"])
def test_unclean_target_refused_with_the_way_out(state: str) -> None:
    with pytest.raises(PgreplError) as err:
        classify_target(target(cluster_state=state), USER)
    text = str(err.value)
    assert f"'Database cluster state: {state}'" in text and "not shut down cleanly" in text
    assert "Start the server once" in text and "--no-ensure-shutdown" in text and "Nothing was changed" in text


def test_stale_pid_file_is_mentioned() -> None:
    with pytest.raises(PgreplError, match="a stale postmaster.pid"):
        classify_target(target(cluster_state="in production", postmaster_pid_file=True), USER)


def test_rewound_and_not_started_is_already_rewound() -> None:
    facts = target(cluster_state="in archive recovery", rewound_label=True, checkpoint_timeline=2)
    assert classify_target(facts, USER) == OUTCOME_ALREADY_REWOUND


def test_no_hints_and_no_checksums_refused() -> None:
    with pytest.raises(PgreplError) as err:
        classify_target(target(wal_log_hints=False, data_checksums=False), USER)
    assert "wal_log_hints off and no data checksums" in str(err.value)
    assert "force_reclone" in str(err.value)


def test_other_owner_refused() -> None:
    with pytest.raises(PgreplError, match="belongs to uid 0, not to os_user 'postgres'"):
        classify_target(target(owner_uid=0), USER)


def test_no_controldata_refused() -> None:
    with pytest.raises(PgreplError, match="bin_dir: no pg_controldata of PostgreSQL 15"):
        classify_target(target(controldata=None), USER)


def test_target_timeline_is_the_largest_known() -> None:
    assert target(checkpoint_timeline=1, min_recovery_end_timeline=2).timeline == 2
    assert target(checkpoint_timeline=None, min_recovery_end_timeline=None).timeline is None


def test_config_files_in(tmp_path: Path) -> None:
    for name in ("postgresql.conf", "pg_hba.conf", "PG_VERSION"):
        (tmp_path / name).write_text("x")
    assert config_files_in(str(tmp_path)) == ["postgresql.conf", "pg_hba.conf"]


# ----------------------------------------------------------------------------------------------------- source


def test_good_source_has_no_problem() -> None:
    assert source_problem(source(), target(), rewind_request(params())) is None
    assert source().timeline == 2


def test_superuser_source_refused() -> None:
    text = source_problem(source(is_superuser=True, current_user="postgres"), target(), rewind_request(params()))
    assert text is not None and text.startswith("source_user: the role 'postgres' is a superuser")
    assert "rewind_grants" in text


def test_other_cluster_refused() -> None:
    text = source_problem(source(system_identifier="1"), target(), rewind_request(params()))
    assert text is not None and "system identifier 1" in text and "7710851650192431319" in text


def test_just_promoted_source_refused_before_16() -> None:
    # Measured on PostgreSQL 15 right after pg_promote(): WAL file on timeline 2, pg_control still on 1.
    stale = source(checkpoint_timeline=1, min_recovery_end_timeline=2, wal_file="000000020000000000000003")
    text = source_problem(stale, target(), rewind_request(params()))
    assert text is not None and "pg_control still names timeline 1" in text and "Run CHECKPOINT" in text
    assert source_problem(stale, target(major="16"), rewind_request(params())) is None


def test_source_timeline_of_a_standby_source() -> None:
    standby = source(in_recovery=True, wal_file=None, checkpoint_timeline=1, min_recovery_end_timeline=3)
    assert standby.timeline == 3


# ---------------------------------------------------------------- the node's own configuration files

def test_the_nodes_own_config_is_kept_aside_and_put_back(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "postgresql.conf").write_bytes(b"port = 5433\n")
    (data_dir / "pg_hba.conf").write_bytes(b"local all all peer\n")
    os.chmod(data_dir / "pg_hba.conf", 0o640)
    names = _rewind.config_files_in(str(data_dir))
    assert names == ["postgresql.conf", "pg_hba.conf"]
    keep = _rewind.keep_own_config(str(data_dir), names)
    assert keep == str(data_dir) + ".pgrepl-own-config"
    # pg_rewind replaces them with the source's copies.
    (data_dir / "postgresql.conf").write_bytes(b"port = 5432\n")
    (data_dir / "pg_hba.conf").write_bytes(b"host all all 0.0.0.0/0 trust\n")
    # A second keep (a re-run after a cut-off) keeps the first, the node's own, not the source's now in data_dir.
    assert _rewind.keep_own_config(str(data_dir), names) == keep
    assert _rewind.restore_own_config(str(data_dir), keep) == ["pg_hba.conf", "postgresql.conf"]
    assert (data_dir / "postgresql.conf").read_bytes() == b"port = 5433\n"
    assert (data_dir / "pg_hba.conf").read_bytes() == b"local all all peer\n"
    assert stat.S_IMODE((data_dir / "pg_hba.conf").stat().st_mode) == 0o640
    assert not os.path.exists(keep) and not os.path.exists(keep + ".partial")


# ---------------------------------------------------------------------------------------------------- the fork


def test_just_promoted_source_is_no_problem_when_no_rewind_runs() -> None:
    stale = source(checkpoint_timeline=1, min_recovery_end_timeline=0, wal_file="000000020000000000000004")
    assert source_problem(stale, target(), rewind_request(params())) is not None
    assert source_problem(stale, target(), rewind_request(params()), rewinding=False) is None
    # The superuser refusal holds either way.
    assert source_problem(source(is_superuser=True, current_user="postgres"), target(), rewind_request(params()),
                          rewinding=False) is not None


def test_target_wal_facts_from_pg_control() -> None:
    facts = target(cluster_state="shut down in recovery", checkpoint_timeline=1, min_recovery_end_timeline=1,
                   checkpoint_lsn="0/3000060", min_recovery_end_lsn="0/40108C8")
    assert facts.wal.timeline == 1
    assert facts.wal.end_lsn == "0/40108C8"


class HistoryConn:
    """A connection whose pg_read_binary_file returns the given bytes, or fails."""

    def __init__(self, data: bytes | None, error: bool = False) -> None:
        self.data, self.error, self.queries = data, error, []

    def cursor(self) -> HistoryConn:
        return self

    def __enter__(self) -> HistoryConn:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def execute(self, query: str, args: tuple) -> None:
        self.queries.append((query, args))
        if self.error:
            raise _rewind.psycopg.errors.InsufficientPrivilege("permission denied for function pg_read_binary_file")

    def fetchone(self) -> tuple:
        return (self.data,)


def test_read_history_parses_the_current_timeline_file() -> None:
    conn = HistoryConn(b"1\t0/40108C8\tno recovery target specified\n")
    history = _rewind.read_history(conn, 2)
    assert [(entry.parent_timeline, entry.switch_lsn) for entry in history or []] == [(1, "0/40108C8")]
    assert conn.queries == [("SELECT pg_catalog.pg_read_binary_file(%s)", ("pg_wal/00000002.history",))]


def test_read_history_none_for_timeline_1_and_for_a_missing_grant() -> None:
    conn = HistoryConn(b"")
    assert _rewind.read_history(conn, 1) is None and conn.queries == []
    assert _rewind.read_history(HistoryConn(None, error=True), 2) is None


def test_no_record_at_the_switch_point_of_a_target_past_the_fork_says_copy_again() -> None:
    history = parse_history("1\t0/A943688\tno recovery target specified\n")
    past = divergence(NodeWal(1, "0/A000060", "0/A944000"), 2, history)
    lines = ["pg_rewind: servers diverged at WAL location 0/A943688 on timeline 1",
             "pg_rewind: error: could not find previous WAL record at 0/A943688: invalid record length at "
             "0/A943688: wanted 24, got 0"]
    errors = parse_rewind_output(lines).errors
    hint = _rewind.fork_failure_hint(past, errors)
    assert "reaches 0/A944000, past 0/A943688" in hint and "no record at the switch point 0/A943688" in hint
    assert "pgrepl_rejoin_reseed=true" in hint
    text = explain_failure(rewind_request(params()), parse_rewind_output(lines), 1, dry_run=True, hint=hint)
    # It replaces the generic hint about WAL gone from pg_wal, which does not fit this case.
    assert "no longer holds WAL" not in text and "nothing was changed" in text
    # Elsewhere than at the switch point, or without the timelines' verdict, the generic hint stays.
    elsewhere = parse_rewind_output([lines[0], lines[1].replace("at 0/A943688:", "at 0/A000060:")]).errors
    assert _rewind.fork_failure_hint(past, elsewhere) == ""
    assert _rewind.fork_failure_hint(None, errors) == ""
    behind = divergence(NodeWal(1, "0/A000060", "0/A943688"), 2, history)
    assert _rewind.fork_failure_hint(behind, errors) == ""
