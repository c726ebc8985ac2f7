# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The progress of a running copy: pg_basebackup's --max-rate value, its --progress lines, the progress file that
standby_clone keeps beside the data directory while it copies, and the sentence the standby role prints from it.

The file (`<parent>/.<name>.pgrepl-progress`, JSON) exists only while pg_basebackup runs; the module removes it
when the copy ends, however it ends, and a new run removes one a killed run left.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass
from typing import Any

from ansible_collections.pgrepl.streaming.plugins.module_utils._errors import PgreplError
from ansible_collections.pgrepl.streaming.plugins.module_utils._files import pid_alive as files_pid_alive

PROGRESS_SUFFIX = ".pgrepl-progress"
# Seconds between two writes of the progress file (pg_basebackup reports about once a second).
WRITE_INTERVAL = 2.0
# pg_basebackup's MAX_RATE bounds in kB/s (MAX_RATE_LOWER and MAX_RATE_UPPER of PostgreSQL's basebackup.h).
MAX_RATE_MIN_KB = 32
MAX_RATE_MAX_KB = 1024 * 1024
# What pg_basebackup -r accepts: a number of kB/s, or one with the suffix k (kB/s) or M (MB/s).
_MAX_RATE_RE = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(k|M)?$")
# "<done>/<total> kB (<n>%), <i>/<j> tablespace(s) [(<file>)]": the unit word is not read (it is translated).
_PROGRESS_RE = re.compile(r"^\s*([0-9]+)/([0-9]+) \S+ \(([0-9]+) ?%\)")
_UNITS = ("bytes", "kB", "MB", "GB", "TB", "PB")


def validate_max_rate(value: Any, option: str = "max_rate") -> str | None:
    """pg_basebackup's --max-rate value, checked here so a bad one fails before anything stops; None or "":
    unlimited. A bare number is kB/s, as pg_basebackup reads it."""
    if value is None or (isinstance(value, str) and value.strip() == ""):
        return None
    text = str(value).strip() if isinstance(value, (str, int)) and not isinstance(value, bool) else ""
    match = _MAX_RATE_RE.fullmatch(text)
    if match is None:
        raise PgreplError(f"{option}: {value!r} is not a transfer rate: give kB/s as a number, or a number with "
                          "the suffix k (kB/s) or M (MB/s), such as 20M")
    kilobytes = float(match.group(1)) * (1024 if match.group(2) == "M" else 1)
    if not MAX_RATE_MIN_KB <= kilobytes <= MAX_RATE_MAX_KB:
        raise PgreplError(f"{option}: {value!r} is outside what pg_basebackup accepts (32k to 1024M, that is "
                          f"{MAX_RATE_MIN_KB} to {MAX_RATE_MAX_KB} kB/s)")
    return text


def runs_in_background(data_size: Any, min_size: Any, option: str = "pgrepl_clone_progress_min_size") -> bool:
    """Whether a copy of a primary holding data_size bytes runs in the background with its progress printed: at
    least min_size bytes. An unknown size (the primary's facts have none) stays in the one call."""
    if isinstance(min_size, bool) or not isinstance(min_size, (int, str)) or not str(min_size).strip().isdigit():
        raise PgreplError(f"{option}: {min_size!r} is not a number of bytes (0 or more)")
    if data_size in (None, "") or isinstance(data_size, bool):
        return False
    try:
        return int(data_size) >= int(str(min_size).strip())
    except (TypeError, ValueError):
        return False


def progress_path(data_dir: str) -> str:
    """<parent>/.<name>.pgrepl-progress for data_dir <parent>/<name>."""
    path = os.path.normpath(data_dir)
    return os.path.join(os.path.dirname(path), f".{os.path.basename(path)}{PROGRESS_SUFFIX}")


@dataclass(frozen=True)
class Sample:
    """One --progress line: kB sent so far, kB in all (an estimate that grows when the data does), percent."""

    done_kb: int
    total_kb: int
    percent: int


def parse_progress_line(line: str) -> Sample | None:
    match = _PROGRESS_RE.match(line)
    if match is None:
        return None
    done, total, percent = (int(group) for group in match.groups())
    return Sample(done, max(done, total), min(percent, 100))


def human_bytes(count: float) -> str:
    """1.2 GB (1024-based, PostgreSQL's unit names)."""
    value = float(count)
    for unit in _UNITS:
        if abs(value) < 1024 or unit == _UNITS[-1]:
            return f"{value:.0f} {unit}" if unit == "bytes" or value >= 100 else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} {_UNITS[-1]}"  # not reached


def human_seconds(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


class ProgressFile:
    """Kept up to date from pg_basebackup's lines while it runs (at most every WRITE_INTERVAL seconds), removed
    by close(). Written whole and renamed, so a reader never sees half a file."""

    def __init__(self, data_dir: str, max_rate: str | None, clock: Any = time.monotonic,
                 wall: Any = time.time) -> None:
        self.path = progress_path(data_dir)
        self.max_rate = max_rate
        self.clock = clock
        self.wall = wall
        self.started = clock()
        self.first: tuple[float, int] | None = None
        self.sample: Sample | None = None
        self.written = 0.0
        self.write()

    def report(self) -> dict[str, Any]:
        """What the file holds: bytes done and in all, percent, the rate since the first sample, the time left."""
        now = self.clock()
        report: dict[str, Any] = {"pid": os.getpid(), "updated": self.wall(), "elapsed_seconds":
                                  round(now - self.started, 1), "max_rate": self.max_rate, "phase": "starting",
                                  "bytes_done": 0, "bytes_total": None, "percent": 0,
                                  "rate_bytes_per_second": None, "eta_seconds": None}
        sample = self.sample
        if sample is None:
            return report
        done, total = sample.done_kb * 1024, sample.total_kb * 1024
        report.update(phase="finishing" if sample.percent >= 100 else "copying", bytes_done=done,
                      bytes_total=total, percent=sample.percent)
        if self.first is not None and now - self.first[0] >= 1 and done > self.first[1]:
            rate = (done - self.first[1]) / (now - self.first[0])
            report["rate_bytes_per_second"] = round(rate)
            report["eta_seconds"] = round(max(total - done, 0) / rate, 1)
        return report

    def feed(self, line: str) -> None:
        sample = parse_progress_line(line)
        if sample is None:
            return
        if self.first is None:
            self.first = (self.clock(), sample.done_kb * 1024)
        self.sample = sample
        if self.clock() - self.written >= WRITE_INTERVAL or sample.percent >= 100:
            self.write()

    def write(self) -> None:
        self.written = self.clock()
        temporary = self.path + ".tmp"
        try:
            with open(temporary, "w", encoding="utf-8") as handle:
                json.dump(self.report(), handle)
            os.chmod(temporary, 0o644)
            os.replace(temporary, self.path)
        except OSError:
            remove_files([temporary])  # progress is a display: never fail a copy

    def close(self) -> None:
        remove_files([self.path, self.path + ".tmp"])


def remove_files(paths: list[str]) -> None:
    for path in paths:
        try:
            os.unlink(path)
        except OSError:
            pass


def read_progress(data_dir: str, pid_alive: Any = None) -> dict[str, Any] | None:
    """The progress file of data_dir, or None when there is none (no copy runs), it is unreadable, or the process
    that wrote it is gone (a killed run left it)."""
    try:
        with open(progress_path(data_dir), encoding="utf-8") as handle:
            report = json.load(handle)
    except (OSError, ValueError):
        return None
    if not isinstance(report, dict):
        return None
    alive = pid_alive or files_pid_alive
    if isinstance(report.get("pid"), int) and not alive(report["pid"]):
        return None
    return report


def describe_progress(report: dict[str, Any], ended: bool = False) -> str:
    """42% of 1.2 GB, 38.0 MB/s, about 20 s left (max_rate 40M); ended: the copy's last report, once it is done."""
    limit = f" (max_rate {report['max_rate']})" if report.get("max_rate") else ""
    if ended:
        total = report.get("bytes_total")
        return (f"pg_basebackup ended after {human_seconds(report.get('elapsed_seconds') or 0)}"
                + (f", {human_bytes(total)} copied" if total else "") + limit)
    if report.get("bytes_total") is None:
        return f"pg_basebackup started {human_seconds(report.get('elapsed_seconds') or 0)} ago, waiting for the " \
               f"primary's checkpoint{limit}"
    parts = [f"{report.get('percent', 0)}% of {human_bytes(report['bytes_total'])}"]
    if report.get("rate_bytes_per_second"):
        parts.append(f"{human_bytes(report['rate_bytes_per_second'])}/s")
    if report.get("phase") == "finishing":
        parts.append("streaming the last WAL and syncing to disk")
    elif report.get("eta_seconds") is not None:
        parts.append(f"about {human_seconds(report['eta_seconds'])} left")
    return ", ".join(parts) + limit


# How often the file is looked at while waiting.
WATCH_STEP = 0.5


def read_job(results_file: str) -> dict[str, Any] | None:
    """The result of a finished background task from its job file (async_wrapper writes {"started": ...} while the
    task runs and the task's own result once it ends, whole, by a rename), or None while it runs."""
    try:
        with open(results_file, encoding="utf-8") as handle:
            data = json.load(handle)
    except OSError:
        return {"failed": True, "msg": f"the background task's job file {results_file} is missing"}
    except ValueError:
        return None
    if not isinstance(data, dict) or "started" in data:
        return None
    return data


def watch_copy(data_dir: str, results_file: str, wait: float, sleep: Any = time.sleep,
               clock: Any = time.monotonic) -> tuple[dict[str, Any] | None, bool, dict[str, Any] | None]:
    """Up to `wait` seconds of the copy: (its latest progress, whether its progress file went away meanwhile, the
    task's result once it ended - returned at once, the job file removed)."""
    deadline = clock() + wait
    latest = read_progress(data_dir)
    ended = False
    while True:
        job = read_job(results_file)
        if job is not None:
            remove_files([results_file])
            return latest, True, job
        if clock() >= deadline:
            return latest, ended, None
        sleep(min(WATCH_STEP, max(deadline - clock(), 0)))
        current = read_progress(data_dir)
        ended = ended or (current is None and latest is not None)
        latest = current or latest


# The options of clone_wait (the module looks, the action on the controller loops and prints).
WAIT_MIN_INTERVAL = 1
WAIT_MAX_INTERVAL = 25
CLONE_WAIT_SPEC: dict[str, Any] = {
    "jid": {"type": "str", "required": True},
    "data_dir": {"type": "path", "required": True},
    "interval": {"type": "int", "default": 15},
}
# What the action adds for its look on the host: the job file async_wrapper writes (in the async_dir of the
# become user).
CLONE_LOOK_SPEC: dict[str, Any] = {**CLONE_WAIT_SPEC, "results_file": {"type": "path"}}
