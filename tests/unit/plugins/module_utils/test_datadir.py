"""Unit tests of module_utils/_datadir.py: pg_controldata parsing, binary choice, data directory checks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest

from ansible_collections.pgrepl.streaming.plugins.module_utils import _binaries, _datadir
from ansible_collections.pgrepl.streaming.plugins.module_utils._errors import PgreplError

# pg_controldata of PostgreSQL 13 (LC_ALL=C) on a running primary.
CONTROLDATA_13 = """\
pg_control version number:            1300
Catalog version number:               202007201
Database system identifier:           6889174327126123456
Database cluster state:               in production
pg_control last modified:             Tue Mar  2 10:11:12 2021
Latest checkpoint location:           0/16D4F30
Latest checkpoint's REDO location:    0/16D4EF8
Latest checkpoint's REDO WAL file:    000000010000000000000001
Latest checkpoint's TimeLineID:       1
Latest checkpoint's PrevTimeLineID:   1
Latest checkpoint's full_page_writes: on
Latest checkpoint's NextXID:          0:487
Latest checkpoint's NextOID:          16385
Latest checkpoint's NextMultiXactId:  1
Latest checkpoint's NextMultiOffset:  0
Latest checkpoint's oldestXID:        479
Latest checkpoint's oldestXID's DB:   1
Latest checkpoint's oldestActiveXID:  487
Latest checkpoint's oldestMultiXid:   1
Latest checkpoint's oldestMulti's DB: 1
Latest checkpoint's oldestCommitTsXid:0
Latest checkpoint's newestCommitTsXid:0
Time of latest checkpoint:            Tue Mar  2 10:11:10 2021
Fake LSN counter for unlogged rels:   0/3E8
Minimum recovery ending location:     0/0
Min recovery ending loc's timeline:   0
Backup start location:                0/0
Backup end location:                  0/0
End-of-backup record required:        no
wal_level setting:                    replica
wal_log_hints setting:                off
max_connections setting:              100
max_worker_processes setting:         8
max_wal_senders setting:              10
max_prepared_xacts setting:           0
max_locks_per_xact setting:           64
track_commit_timestamp setting:       off
Maximum data alignment:               8
Database block size:                  8192
Blocks per segment of large relation: 131072
WAL block size:                       8192
Bytes per WAL segment:                16777216
Maximum length of identifiers:        64
Maximum columns in an index:          32
Maximum size of a TOAST chunk:        1996
Size of a large-object chunk:         2048
Date/time type storage:               64-bit integers
Float8 argument passing:              by value
Data page checksum version:           0
Mock authentication nonce:            3b4c3e0b6f0e6a1a2a9c0f7d2e5b8c1d4e7f0a3b6c9d2e5f8a1b4c7d0e3f6a9b
"""

# pg_controldata of PostgreSQL 17 (LC_ALL=C) on a cleanly stopped standby of timeline 3, with checksums.
CONTROLDATA_17 = """\
pg_control version number:            1700
Catalog version number:               202406281
Database system identifier:           7401234567890123456
Database cluster state:               shut down in recovery
pg_control last modified:             Mon Nov  4 08:00:01 2024
Latest checkpoint location:           1A/B374D848
Latest checkpoint's REDO location:    1A/B374D810
Latest checkpoint's REDO WAL file:    000000030000001A000000B3
Latest checkpoint's TimeLineID:       3
Latest checkpoint's PrevTimeLineID:   3
Latest checkpoint's full_page_writes: on
Latest checkpoint's NextXID:          0:1048576
Latest checkpoint's NextOID:          24576
Latest checkpoint's NextMultiXactId:  1
Latest checkpoint's NextMultiOffset:  0
Latest checkpoint's oldestXID:        730
Latest checkpoint's oldestXID's DB:   1
Latest checkpoint's oldestActiveXID:  1048576
Latest checkpoint's oldestMultiXid:   1
Latest checkpoint's oldestMulti's DB: 1
Latest checkpoint's oldestCommitTsXid:0
Latest checkpoint's newestCommitTsXid:0
Time of latest checkpoint:            Mon Nov  4 07:59:58 2024
Fake LSN counter for unlogged rels:   0/3E8
Minimum recovery ending location:     1A/B374D8C0
Min recovery ending loc's timeline:   3
Backup start location:                0/0
Backup end location:                  0/0
End-of-backup record required:        no
wal_level setting:                    replica
wal_log_hints setting:                on
max_connections setting:              200
max_worker_processes setting:         8
max_wal_senders setting:              10
max_prepared_xacts setting:           0
max_locks_per_xact setting:           64
track_commit_timestamp setting:       off
Maximum data alignment:               8
Database block size:                  8192
Blocks per segment of large relation: 131072
WAL block size:                       8192
Bytes per WAL segment:                16777216
Maximum length of identifiers:        64
Maximum columns in an index:          32
Maximum size of a TOAST chunk:        1996
Size of a large-object chunk:         2048
Date/time type storage:               64-bit integers
Float8 argument passing:              by value
Data page checksum version:           1
Mock authentication nonce:            0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0
"""


# ------------------------------------------------------------------------------------------------ parse_controldata

def test_parse_controldata_13_running_primary() -> None:
    facts = _datadir.parse_controldata(CONTROLDATA_13)
    assert facts["pg_control_version"] == 1300
    assert facts["system_identifier"] == "6889174327126123456"
    assert isinstance(facts["system_identifier"], str)
    assert facts["cluster_state"] == "in production"
    assert facts["checkpoint_lsn"] == "0/16D4F30"
    assert facts["redo_lsn"] == "0/16D4EF8"
    assert facts["redo_wal_file"] == "000000010000000000000001"
    assert facts["timeline"] == 1
    assert facts["prev_timeline"] == 1
    assert facts["checkpoint_time"] == "Tue Mar  2 10:11:10 2021"
    assert facts["min_recovery_end_lsn"] == "0/0"
    assert facts["min_recovery_end_timeline"] == 0
    assert facts["wal_level"] == "replica"
    assert facts["wal_log_hints"] is False
    assert facts["data_checksum_version"] == 0
    assert facts["data_checksums"] is False


def test_parse_controldata_17_stopped_standby() -> None:
    facts = _datadir.parse_controldata(CONTROLDATA_17)
    assert facts["pg_control_version"] == 1700
    assert facts["system_identifier"] == "7401234567890123456"
    assert facts["cluster_state"] == "shut down in recovery"
    assert facts["checkpoint_lsn"] == "1A/B374D848"
    assert facts["timeline"] == 3
    assert facts["min_recovery_end_lsn"] == "1A/B374D8C0"
    assert facts["min_recovery_end_timeline"] == 3
    assert facts["wal_log_hints"] is True
    assert facts["data_checksums"] is True
    assert facts["pg_control_last_modified"] == "Mon Nov  4 08:00:01 2024"


@pytest.mark.parametrize("state", _datadir.CLUSTER_STATES)
def test_parse_controldata_every_cluster_state(state: str) -> None:
    text = CONTROLDATA_13.replace("in production", state)
    assert _datadir.parse_controldata(text)["cluster_state"] == state


def test_parse_controldata_ignores_unknown_lines_and_keeps_missing_ones_null() -> None:
    text = ("WARNING: Calculated CRC checksum does not match value stored in file.\n"
            "Default char data signedness:         signed\n"
            "Database system identifier:           42\n"
            "Database cluster state:               shut down\n"
            "Latest checkpoint location:           not-an-lsn\n")
    facts = _datadir.parse_controldata(text)
    assert facts["system_identifier"] == "42"
    assert facts["cluster_state"] == "shut down"
    assert facts["checkpoint_lsn"] is None
    assert facts["timeline"] is None
    assert facts["data_checksums"] is None


def test_parse_controldata_lowercase_lsn_is_normalised() -> None:
    facts = _datadir.parse_controldata("Latest checkpoint location:           1a/b374d848\n")
    assert facts["checkpoint_lsn"] == "1A/B374D848"


# ------------------------------------------------------------------------------------------------ data directory

def _fake_data_dir(root: Path, version: str = "15") -> Path:
    (root / "global").mkdir(parents=True)
    (root / "PG_VERSION").write_text(version + "\n", encoding="utf-8")
    (root / "global" / "pg_control").write_bytes(b"\0" * 64)
    return root


def test_validate_data_dir_refusals(tmp_path: Path) -> None:
    with pytest.raises(PgreplError, match=r"^data_dir: 'relative/dir' must be an absolute path"):
        _datadir.validate_data_dir("relative/dir")
    with pytest.raises(PgreplError, match=r"^data_dir: '.*/missing' does not exist"):
        _datadir.validate_data_dir(str(tmp_path / "missing"))
    (tmp_path / "file").write_text("x", encoding="utf-8")
    with pytest.raises(PgreplError, match=r"^data_dir: '.*/file' is not a directory"):
        _datadir.validate_data_dir(str(tmp_path / "file"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(PgreplError, match=r"is not a PostgreSQL data directory \(no PG_VERSION and no global/"):
        _datadir.validate_data_dir(str(tmp_path / "empty"))
    _datadir.validate_data_dir(str(_fake_data_dir(tmp_path / "ok")))


def test_read_pg_version_refuses_garbage(tmp_path: Path) -> None:
    data = _fake_data_dir(tmp_path / "d")
    assert _datadir.read_pg_version(str(data)) == "15"
    (data / "PG_VERSION").write_text("hello\n", encoding="utf-8")
    with pytest.raises(PgreplError, match=r"^data_dir: .*PG_VERSION' holds 'hello', not a PostgreSQL major"):
        _datadir.read_pg_version(str(data))


def test_parse_postmaster_pid() -> None:
    text = "6186\n/srv/pg/data\n1795310165\n5433\n/run/postgresql\n127.0.0.1\n  2146545        34\nready   \n"
    assert _datadir.parse_postmaster_pid(text) == {"postmaster_pid": 6186, "postmaster_port": 5433,
                                                   "postmaster_status": "ready"}
    assert _datadir.parse_postmaster_pid("garbage") == {"postmaster_pid": None, "postmaster_port": None,
                                                        "postmaster_status": None}


def test_read_postmaster_running_stale_and_absent(tmp_path: Path) -> None:
    data = _fake_data_dir(tmp_path / "d")
    assert _datadir.read_postmaster(str(data))["postmaster_pid_file"] is False
    (data / "postmaster.pid").write_text("4242\n" + str(data) + "\n1\n5432\n/tmp\n*\n1 2\nready\n", encoding="utf-8")
    running = _datadir.read_postmaster(str(data), alive=lambda pid: pid == 4242)
    assert running["postmaster_pid_file"] is True
    assert running["postmaster_running"] is True
    assert running["postmaster_port"] == 5432
    stale = _datadir.read_postmaster(str(data), alive=lambda pid: False)
    assert stale["postmaster_pid_file"] is True
    assert stale["postmaster_running"] is False


def test_pid_is_postgres_checks_liveness_and_process_name(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    dead_pid = int(proc.stdout)
    assert _datadir.pid_is_postgres(dead_pid) is False
    assert _datadir.pid_is_postgres(0) is False
    # Our own (live) process is python, not postgres: a pid reused by another program is not a postmaster.
    assert _datadir.pid_is_postgres(os.getpid()) is False
    fake_proc = tmp_path / "proc"
    (fake_proc / str(os.getpid())).mkdir(parents=True)
    (fake_proc / str(os.getpid()) / "comm").write_text("postgres\n", encoding="utf-8")
    assert _datadir.pid_is_postgres(os.getpid(), proc_root=str(fake_proc)) is True


def test_read_data_dir_runs_pg_controldata_in_the_c_locale(
        tmp_path: Path, fake_program: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    data = _fake_data_dir(tmp_path / "data")
    (data / "standby.signal").write_text("", encoding="utf-8")
    sample = tmp_path / "sample.txt"
    sample.write_text(CONTROLDATA_17.replace("1700", "1300"), encoding="utf-8")
    # The stand-in answers like pg_controldata, and in German unless it runs with LC_ALL=C.
    fake_program(tmp_path / "bin", (
        'if [ "$1" = "--version" ]; then echo "pg_controldata (PostgreSQL) 15.18"; exit 0; fi\n'
        f'if [ "$LC_ALL" = "C" ] && [ "$2" = "{data}" ]; then cat "{sample}"; '
        'else echo "Datenbanksystemidentifikation: 1"; fi'))
    monkeypatch.setenv("LC_ALL", "de_DE.UTF-8")
    facts, warnings = _datadir.read_data_dir(str(data), str(tmp_path / "bin"))
    assert warnings == []
    assert facts["pg_version"] == "15"
    assert facts["major"] == 15
    assert facts["pg_controldata"] == str(tmp_path / "bin" / "pg_controldata")
    assert facts["system_identifier"] == "7401234567890123456"
    assert facts["cluster_state"] == "shut down in recovery"
    assert facts["standby_signal"] is True
    assert facts["recovery_signal"] is False
    assert facts["recovery_conf"] is False
    assert facts["postmaster_pid_file"] is False
    assert facts["postmaster_running"] is False


def test_read_data_dir_without_a_matching_binary_warns_and_leaves_control_facts_null(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = _fake_data_dir(tmp_path / "data", version="12")
    monkeypatch.setattr(_binaries, "installed_binaries", lambda name: [])
    facts, warnings = _datadir.read_data_dir(str(data))
    assert facts["system_identifier"] is None
    assert facts["cluster_state"] is None
    assert facts["pg_version"] == "12"
    assert len(warnings) == 1
    assert "no pg_controldata of PostgreSQL 12 found" in warnings[0]
    assert "set bin_dir" in warnings[0]


def test_read_data_dir_with_unparsable_output_fails(tmp_path: Path, fake_program: Callable[..., Path]) -> None:
    data = _fake_data_dir(tmp_path / "data")
    fake_program(tmp_path / "bin", 'if [ "$1" = "--version" ]; then echo "pg_controldata (PostgreSQL) 15.1"; '
                                   'else echo "nonsense"; fi')
    with pytest.raises(PgreplError, match=r"^data_dir: the output of .* could not be parsed"):
        _datadir.read_data_dir(str(data), str(tmp_path / "bin"))


def test_read_data_dir_reports_pg_controldata_errors(tmp_path: Path, fake_program: Callable[..., Path]) -> None:
    data = _fake_data_dir(tmp_path / "data")
    fake_program(tmp_path / "bin", 'if [ "$1" = "--version" ]; then echo "pg_controldata (PostgreSQL) 15.1"; '
                                   'else echo "could not open file" >&2; exit 1; fi')
    with pytest.raises(PgreplError, match=r"^data_dir: .* failed \(exit 1\): could not open file"):
        _datadir.read_data_dir(str(data), str(tmp_path / "bin"))
