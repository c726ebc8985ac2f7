# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a PostgreSQL data directory tells without a running server.

PG_VERSION, the signal files, postmaster.pid (and whether its process lives) are read directly;
pg_control is read through ``pg_controldata`` of the data directory's own major version, run with
LC_ALL=C so its labels are the English ones parsed here.
"""

from __future__ import annotations

import os
import re
import subprocess
from typing import Any, Callable

from ansible_collections.pgrepl.streaming.plugins.module_utils._binaries import c_locale_env, looked_in, search_binary
from ansible_collections.pgrepl.streaming.plugins.module_utils._errors import PgreplError
from ansible_collections.pgrepl.streaming.plugins.module_utils._lsn import is_lsn, normalize_lsn

CONTROLDATA = "pg_controldata"
CONTROLDATA_TIMEOUT = 30

# pg_controldata labels (LC_ALL=C) -> (key in data_dir_facts, converter name)
CONTROL_FIELDS: dict[str, tuple[str, str]] = {
    "pg_control version number": ("pg_control_version", "int"),
    "Database system identifier": ("system_identifier", "str"),
    "Database cluster state": ("cluster_state", "str"),
    "pg_control last modified": ("pg_control_last_modified", "str"),
    "Latest checkpoint location": ("checkpoint_lsn", "lsn"),
    "Latest checkpoint's REDO location": ("redo_lsn", "lsn"),
    "Latest checkpoint's REDO WAL file": ("redo_wal_file", "str"),
    "Latest checkpoint's TimeLineID": ("timeline", "int"),
    "Latest checkpoint's PrevTimeLineID": ("prev_timeline", "int"),
    "Time of latest checkpoint": ("checkpoint_time", "str"),
    "Minimum recovery ending location": ("min_recovery_end_lsn", "lsn"),
    "Min recovery ending loc's timeline": ("min_recovery_end_timeline", "int"),
    "wal_level setting": ("wal_level", "str"),
    "wal_log_hints setting": ("wal_log_hints", "bool"),
    "Data page checksum version": ("data_checksum_version", "int"),
}

# Cluster states pg_controldata prints: a clean shutdown (its latest checkpoint is the end of its WAL), of a primary
# or of a standby, and a running standby (also a directory pg_rewind rewound and nobody started since).
SHUT_DOWN = "shut down"
SHUT_DOWN_IN_RECOVERY = "shut down in recovery"
CLEAN_STATES = (SHUT_DOWN, SHUT_DOWN_IN_RECOVERY)
IN_ARCHIVE_RECOVERY = "in archive recovery"
# The states pg_controldata prints (DBState in pg_control.h).
CLUSTER_STATES = (
    "starting up",
    "shut down",
    "shut down in recovery",
    "shutting down",
    "in crash recovery",
    "in archive recovery",
    "in production",
)


def empty_control_facts() -> dict[str, Any]:
    """Every key pg_control contributes, all unknown."""
    facts: dict[str, Any] = {key: None for key, _conv in CONTROL_FIELDS.values()}
    facts["data_checksums"] = None
    return facts


def _convert(value: str, kind: str) -> Any:
    if kind == "int":
        return int(value) if re.fullmatch(r"-?\d+", value) else None
    if kind == "bool":
        return {"on": True, "off": False}.get(value)
    if kind == "lsn":
        return normalize_lsn(value) if is_lsn(value) else None
    return value


def parse_controldata(text: str) -> dict[str, Any]:
    """pg_controldata output (C locale) -> the facts this collection decides from.

    Each line is ``label:   value``; labels never contain a colon, values may (times, NextXID).
    Unknown labels are ignored, missing ones stay None, so output of any major 10+ parses.
    """
    facts = empty_control_facts()
    for line in text.splitlines():
        label, sep, value = line.partition(":")
        if not sep:
            continue
        field = CONTROL_FIELDS.get(label.strip())
        if field is None:
            continue
        key, kind = field
        facts[key] = _convert(value.strip(), kind)
    version = facts.get("data_checksum_version")
    facts["data_checksums"] = None if version is None else version > 0
    return facts


def read_pg_version(data_dir: str) -> str:
    """Contents of PG_VERSION ('15', or '9.6' for old clusters)."""
    path = os.path.join(data_dir, "PG_VERSION")
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read().strip()
    except OSError as exc:
        raise PgreplError(f"data_dir: cannot read {path!r}: {exc.strerror}") from None
    if not re.fullmatch(r"\d+(\.\d+)?", text):
        raise PgreplError(f"data_dir: {path!r} holds {text[:40]!r}, not a PostgreSQL major version")
    return text


def validate_data_dir(data_dir: str) -> None:
    """Refuse a path that is not a readable PostgreSQL data directory, naming the option and the value."""
    if not os.path.isabs(data_dir):
        raise PgreplError(f"data_dir: {data_dir!r} must be an absolute path")
    if not os.path.exists(data_dir):
        raise PgreplError(f"data_dir: {data_dir!r} does not exist")
    if not os.path.isdir(data_dir):
        raise PgreplError(f"data_dir: {data_dir!r} is not a directory")
    if not os.access(data_dir, os.R_OK | os.X_OK):
        raise PgreplError(f"data_dir: {data_dir!r} is not readable by this user (run as the postgres user "
                          "or with become)")
    missing = [name for name in ("PG_VERSION", os.path.join("global", "pg_control"))
               if not os.path.isfile(os.path.join(data_dir, name))]
    if missing:
        raise PgreplError(f"data_dir: {data_dir!r} is not a PostgreSQL data directory "
                          f"(no {' and no '.join(missing)})")


def run_controldata(binary: str, data_dir: str) -> str:
    """pg_controldata -D data_dir in the C locale; its stdout, or PgreplError with its stderr."""
    try:
        proc = subprocess.run([binary, "-D", data_dir], capture_output=True, text=True, env=c_locale_env(),
                              timeout=CONTROLDATA_TIMEOUT, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        raise PgreplError(f"data_dir: running {binary} -D {data_dir!r} failed: {exc}") from None
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip()
        raise PgreplError(f"data_dir: {binary} -D {data_dir!r} failed (exit {proc.returncode}): {detail}")
    return proc.stdout


def pid_is_postgres(pid: int, proc_root: str = "/proc") -> bool:
    """Whether a process with this pid lives and (where /proc tells) is a postgres process, not a reused pid."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, owned by another user
    except OSError:
        return False
    comm = os.path.join(proc_root, str(pid), "comm")
    if os.path.isdir(proc_root) and os.path.exists(comm):
        try:
            with open(comm, encoding="utf-8", errors="replace") as handle:
                name = handle.read().strip()
        except OSError:
            return True
        return name in ("postgres", "postmaster") or name.startswith("postgres")
    return True


def parse_postmaster_pid(text: str) -> dict[str, Any]:
    """postmaster.pid lines: pid, data dir, start epoch, port, socket dir, listen address, shm key, status."""
    lines = text.splitlines()

    def line(index: int) -> str | None:
        return lines[index].strip() if len(lines) > index and lines[index].strip() else None

    pid_text = line(0)
    port_text = line(3)
    return {
        "postmaster_pid": int(pid_text) if pid_text and pid_text.lstrip("-").isdigit() else None,
        "postmaster_port": int(port_text) if port_text and port_text.isdigit() else None,
        "postmaster_status": line(7),
    }


def read_postmaster(data_dir: str, alive: Callable[[int], bool] = pid_is_postgres) -> dict[str, Any]:
    """postmaster.pid facts; running only when the file names a live postgres process."""
    path = os.path.join(data_dir, "postmaster.pid")
    facts: dict[str, Any] = {"postmaster_pid_file": os.path.exists(path), "postmaster_pid": None,
                             "postmaster_port": None, "postmaster_status": None, "postmaster_running": False}
    if not facts["postmaster_pid_file"]:
        return facts
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            facts.update(parse_postmaster_pid(handle.read()))
    except OSError:
        return facts
    pid = facts["postmaster_pid"]
    # A negative pid marks a single-user backend; it still owns the data directory.
    facts["postmaster_running"] = bool(pid) and alive(abs(pid))
    return facts


def read_data_dir(data_dir: str, bin_dir: str | None = None) -> tuple[dict[str, Any], list[str]]:
    """(data_dir_facts, warnings). Refuses bad input; a missing pg_controldata only warns (facts stay None)."""
    warnings: list[str] = []
    data_dir = os.path.normpath(data_dir)
    validate_data_dir(data_dir)
    pg_version = read_pg_version(data_dir)
    binary, tried = search_binary(CONTROLDATA, pg_version, bin_dir)
    facts: dict[str, Any] = {
        "data_dir": data_dir,
        "pg_version": pg_version,
        "major": int(pg_version) if pg_version.isdigit() else None,
        "pg_controldata": binary,
        "standby_signal": os.path.exists(os.path.join(data_dir, "standby.signal")),
        "recovery_signal": os.path.exists(os.path.join(data_dir, "recovery.signal")),
        "recovery_conf": os.path.exists(os.path.join(data_dir, "recovery.conf")),
    }
    facts.update(read_postmaster(data_dir))
    if binary is None:
        warnings.append(f"no {CONTROLDATA} of PostgreSQL {pg_version} found (tried: {looked_in(tried)}): set bin_dir; "
                        "the pg_control facts of data_dir_facts are null")
        facts.update(empty_control_facts())
        return facts, warnings
    output = run_controldata(binary, data_dir)
    control = parse_controldata(output)
    if control["system_identifier"] is None or control["cluster_state"] is None:
        raise PgreplError(f"data_dir: the output of {binary} -D {data_dir!r} could not be parsed: "
                          f"{output.strip()[:200]!r}")
    if "WARNING" in output:
        warnings.append(f"{binary} warned about {data_dir}: "
                        + " ".join(line for line in output.splitlines() if "WARNING" in line))
    facts.update(control)
    return facts, warnings


def is_standby_of(data_dir_facts: dict[str, Any] | None, system_identifier: Any) -> bool:
    """Whether a data directory (its data_dir_facts) is already a copy of the cluster with this system identifier
    and kept in recovery (standby.signal or recovery.signal): such a directory is configured and started, never
    copied again. No identifier on either side (no data directory, no pg_controldata) is never the same cluster."""
    facts = data_dir_facts or {}
    own = facts.get("system_identifier")
    if own in (None, "") or system_identifier in (None, ""):
        return False
    return str(own) == str(system_identifier) and bool(facts.get("standby_signal") or facts.get("recovery_signal"))
