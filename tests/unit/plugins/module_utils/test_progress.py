# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The copy's progress: --max-rate values, pg_basebackup's --progress lines, the progress file and its sentence."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from ansible_collections.pgrepl.streaming.plugins.module_utils import _progress
from ansible_collections.pgrepl.streaming.plugins.module_utils._clone import basebackup_command, request_from_params
from ansible_collections.pgrepl.streaming.plugins.module_utils._errors import PgreplError
from ansible_collections.pgrepl.streaming.plugins.module_utils._osuser import run_with_timeout
from ansible_collections.pgrepl.streaming.plugins.module_utils._progress import (
    ProgressFile,
    Sample,
    describe_progress,
    human_bytes,
    parse_progress_line,
    progress_path,
    read_job,
    read_progress,
    validate_max_rate,
    watch_copy,
)

# What pg_basebackup 15 -P -v wrote to a pipe (each report ends with \n there, with \r on a terminal).
REAL_OUTPUT = """\
pg_basebackup: initiating base backup, waiting for checkpoint to complete
pg_basebackup: checkpoint completed
pg_basebackup: write-ahead log start point: 0/6000028 on timeline 1
pg_basebackup: starting background WAL receiver
pg_basebackup: created temporary replication slot "pg_basebackup_17037"
   72/67545 kB (0%), 0/1 tablespace (/tmp/pgcap/c2/global/2677          )
 8221/67545 kB (12%), 0/1 tablespace (/tmp/pgcap/c2/base/5/16384         )
16413/67545 kB (24%), 0/1 tablespace (/tmp/pgcap/c2/base/5/16384         )
65961/67545 kB (97%), 0/1 tablespace (/tmp/pgcap/c2/base/1/2654          )
67555/67555 kB (100%), 0/1 tablespace (/tmp/pgcap/c2/global/pg_control    )
67555/67555 kB (100%), 1/1 tablespace                                         
pg_basebackup: write-ahead log end point: 0/6000170
pg_basebackup: waiting for background process to finish streaming ...
pg_basebackup: syncing data to disk ...
pg_basebackup: base backup completed
"""  # noqa: W291 (pg_basebackup pads the last report with spaces)


# ---------------------------------------------------------------- max_rate

@pytest.mark.parametrize(("value", "expected"), [
    (None, None), ("", None), ("  ", None), ("20M", "20M"), ("32k", "32k"), ("32", "32"), ("1024M", "1024M"),
    ("1048576", "1048576"), ("1.5M", "1.5M"), (500, "500"), (" 10M ", "10M"),
])
def test_max_rate_accepted(value: object, expected: str | None) -> None:
    assert validate_max_rate(value) == expected


@pytest.mark.parametrize(("value", "message"), [
    ("fast", "max_rate: 'fast' is not a transfer rate"),
    ("20m", "max_rate: '20m' is not a transfer rate"),
    ("20MB", "max_rate: '20MB' is not a transfer rate"),
    ("-5M", "max_rate: '-5M' is not a transfer rate"),
    ("10 M", "max_rate: '10 M' is not a transfer rate"),
    ("1G", "max_rate: '1G' is not a transfer rate"),
    (True, "max_rate: True is not a transfer rate"),
    ("31k", "max_rate: '31k' is outside what pg_basebackup accepts (32k to 1024M"),
    ("0", "max_rate: '0' is outside what pg_basebackup accepts"),
    ("1025M", "max_rate: '1025M' is outside what pg_basebackup accepts"),
    ("1048577", "max_rate: '1048577' is outside"),
])
def test_max_rate_refused_naming_option_and_value(value: object, message: str) -> None:
    with pytest.raises(PgreplError) as err:
        validate_max_rate(value)
    assert message in str(err.value)


def _params(**extra: object) -> dict[str, object]:
    return {"data_dir": "/srv/pg/data", "primary_host": "db1", "passfile": "/srv/pgpass", **extra}


def test_max_rate_reaches_pg_basebackup() -> None:
    request = request_from_params(_params(max_rate="10M"))
    assert request.max_rate == "10M"
    assert basebackup_command("/bin/pg_basebackup", "/x", request)[-1] == "--max-rate=10M"
    assert not any(part.startswith("--max-rate") for part in
                   basebackup_command("/bin/pg_basebackup", "/x", request_from_params(_params(max_rate=""))))


def test_bad_max_rate_refused_by_the_module_options() -> None:
    with pytest.raises(PgreplError, match=r"max_rate: '5 GB' is not a transfer rate"):
        request_from_params(_params(max_rate="5 GB"))


# ---------------------------------------------------------------- progress lines

def test_real_progress_lines_parsed() -> None:
    samples = [parse_progress_line(line) for line in REAL_OUTPUT.splitlines()]
    found = [sample for sample in samples if sample is not None]
    assert found[0] == Sample(72, 67545, 0)
    assert found[1] == Sample(8221, 67545, 12)
    assert found[-1] == Sample(67555, 67555, 100)
    assert len(found) == 6
    assert parse_progress_line("pg_basebackup: write-ahead log end point: 0/6000170") is None


def test_progress_beyond_the_estimate_is_capped() -> None:
    # pg_basebackup's total is an estimate: data written during the copy can push done past it.
    assert parse_progress_line("70001/67545 kB (103%), 0/1 tablespace") == Sample(70001, 70001, 100)


def test_translated_unit_word_still_parsed() -> None:
    assert parse_progress_line(" 8221/67545 Ko (12 %), 0/1 tablespace") == Sample(8221, 67545, 12)


# ---------------------------------------------------------------- the file

class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_progress_file_lifecycle(tmp_path: Path) -> None:
    data_dir = str(tmp_path / "main")
    clock = Clock()
    progress = ProgressFile(data_dir, "40M", clock=clock, wall=lambda: 1.0e9)
    path = Path(progress_path(data_dir))
    assert path == tmp_path / ".main.pgrepl-progress"
    first = json.loads(path.read_text(encoding="utf-8"))
    assert (first["phase"], first["percent"], first["bytes_total"], first["max_rate"]) == ("starting", 0, None, "40M")
    assert "waiting for the primary's checkpoint (max_rate 40M)" in describe_progress(first)
    lines = [line for line in REAL_OUTPUT.splitlines() if parse_progress_line(line)]
    progress.feed(lines[0])  # first sample at t=100: no rate yet
    clock.now = 104.0
    progress.feed(lines[2])  # 16413 kB at t=104: (16413-72) kB in 4 s
    report = read_progress(data_dir)
    assert report is not None
    assert (report["phase"], report["percent"], report["bytes_done"]) == ("copying", 24, 16413 * 1024)
    assert report["rate_bytes_per_second"] == round((16413 - 72) * 1024 / 4)
    assert report["eta_seconds"] == pytest.approx((67545 - 16413) * 4 / (16413 - 72), abs=0.1)
    assert describe_progress(report).startswith("24% of 66.0 MB, 4.0 MB/s, about 12 s left")
    clock.now = 104.5
    progress.feed(lines[3])  # within WRITE_INTERVAL: not written
    assert read_progress(data_dir)["percent"] == 24
    progress.feed(lines[-1])  # 100%: always written
    assert read_progress(data_dir)["phase"] == "finishing"
    progress.close()
    assert sorted(os.listdir(tmp_path)) == []


def test_progress_of_a_dead_writer_is_ignored(tmp_path: Path) -> None:
    data_dir = str(tmp_path / "main")
    Path(progress_path(data_dir)).write_text(json.dumps({"pid": 12345, "percent": 3}), encoding="utf-8")
    assert read_progress(data_dir, pid_alive=lambda pid: False) is None
    assert read_progress(data_dir, pid_alive=lambda pid: True) == {"pid": 12345, "percent": 3}
    Path(progress_path(data_dir)).write_text("{half", encoding="utf-8")
    assert read_progress(data_dir) is None
    assert read_progress(str(tmp_path / "other")) is None


def test_progress_file_never_fails_the_copy(tmp_path: Path) -> None:
    progress = ProgressFile(str(tmp_path / "gone" / "main"), None)  # parent missing: nothing written, no error
    progress.feed("100/200 kB (50%), 0/1 tablespace")
    progress.close()


@pytest.mark.parametrize(("count", "text"), [
    (0, "0 bytes"), (1023, "1023 bytes"), (1536, "1.5 kB"), (66 * 1024 * 1024, "66.0 MB"),
    (1288490189, "1.2 GB"), (150 * 1024 ** 3, "150 GB"),
])
def test_human_bytes(count: int, text: str) -> None:
    assert human_bytes(count) == text


def test_describe_long_copy() -> None:
    report = {"phase": "copying", "percent": 42, "bytes_total": 300 * 1024 ** 3, "rate_bytes_per_second":
              38 * 1024 ** 2, "eta_seconds": 4 * 3600 + 600, "max_rate": None}
    assert describe_progress(report) == "42% of 300 GB, 38.0 MB/s, about 4 h 10 min left"


# ---------------------------------------------------------------- lines as they come

def test_run_with_timeout_hands_over_lines_as_they_come() -> None:
    seen: list[str] = []
    script = "import sys,time\nfor i in range(3):\n    sys.stderr.write(f'{i}/3 kB ({i*33}%)\\r'); " \
             "sys.stderr.flush(); time.sleep(0.05)\nprint('done')\n"
    outcome = run_with_timeout([sys.executable, "-c", script], 30, dict(os.environ), on_line=seen.append)
    assert seen == ["0/3 kB (0%)", "1/3 kB (33%)", "2/3 kB (66%)", "done"]
    assert outcome.lines == seen and outcome.returncode == 0 and not outcome.timed_out


def test_run_with_timeout_with_lines_still_stops_at_the_deadline() -> None:
    seen: list[str] = []
    outcome = run_with_timeout([sys.executable, "-c", "import time; print('x', flush=True); time.sleep(60)"], 1,
                               dict(os.environ), on_line=seen.append)
    assert outcome.timed_out and seen == ["x"]


def test_module_constant_names() -> None:
    assert _progress.PROGRESS_SUFFIX == ".pgrepl-progress"


# ---------------------------------------------------------------- the look of clone_wait

def test_read_job_running_finished_missing(tmp_path: Path) -> None:
    job = tmp_path / "j1"
    job.write_text(json.dumps({"started": True, "finished": False, "ansible_job_id": "j1"}), encoding="utf-8")
    assert read_job(str(job)) is None
    job.write_text("{half", encoding="utf-8")
    assert read_job(str(job)) is None
    job.write_text(json.dumps({"changed": True, "outcome": "cloned"}), encoding="utf-8")
    assert read_job(str(job)) == {"changed": True, "outcome": "cloned"}
    missing = read_job(str(tmp_path / "nope"))
    assert missing is not None and missing["failed"] is True and "is missing" in missing["msg"]


class FakeTime:
    """A clock that sleep() advances, and a hook run at each sleep (what the copy does meanwhile)."""

    def __init__(self, on_sleep: Any) -> None:
        self.now = 0.0
        self.on_sleep = on_sleep

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.on_sleep(self.now)


def _copy_files(tmp_path: Path) -> tuple[str, Path, Path]:
    data_dir = str(tmp_path / "main")
    job = tmp_path / "job"
    job.write_text(json.dumps({"started": True, "finished": False}), encoding="utf-8")
    return data_dir, Path(progress_path(data_dir)), job


def test_watch_copy_waits_the_interval_while_the_copy_runs(tmp_path: Path) -> None:
    data_dir, progress, job = _copy_files(tmp_path)
    progress.write_text(json.dumps({"pid": os.getpid(), "percent": 10}), encoding="utf-8")

    def copy(now: float) -> None:
        progress.write_text(json.dumps({"pid": os.getpid(), "percent": int(10 + now)}), encoding="utf-8")

    fake = FakeTime(copy)
    report, ended, result = watch_copy(data_dir, str(job), 5, sleep=fake.sleep, clock=fake.clock)
    assert (report, ended, result) == ({"pid": os.getpid(), "percent": 15}, False, None)
    assert fake.now == pytest.approx(5) and job.exists()


def test_watch_copy_returns_the_result_as_soon_as_the_task_ends(tmp_path: Path) -> None:
    data_dir, progress, job = _copy_files(tmp_path)
    progress.write_text(json.dumps({"pid": os.getpid(), "percent": 99}), encoding="utf-8")

    def copy(now: float) -> None:
        if now >= 1:
            progress.unlink(missing_ok=True)
        if now >= 2:
            job.write_text(json.dumps({"changed": True, "outcome": "cloned"}), encoding="utf-8")

    fake = FakeTime(copy)
    report, ended, result = watch_copy(data_dir, str(job), 15, sleep=fake.sleep, clock=fake.clock)
    assert report == {"pid": os.getpid(), "percent": 99} and ended is True
    assert result == {"changed": True, "outcome": "cloned"}
    assert fake.now == pytest.approx(2) and not job.exists()


def test_watch_copy_of_a_task_that_ended_before_any_copy(tmp_path: Path) -> None:
    """A refusal (connection, space) ends the task before pg_basebackup runs: no progress, the failure."""
    data_dir, _progress_file, job = _copy_files(tmp_path)
    job.write_text(json.dumps({"failed": True, "msg": "not enough free space"}), encoding="utf-8")
    fake = FakeTime(lambda now: None)
    assert watch_copy(data_dir, str(job), 15, sleep=fake.sleep, clock=fake.clock) == (
        None, True, {"failed": True, "msg": "not enough free space"})
    assert fake.now == 0
