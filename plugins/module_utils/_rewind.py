# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rewind module: pg_rewind of a stopped former primary against the new primary, decided honestly.

The rewind, in order; everything before step 5 only reads:

1. the options, the OS user, the passfile (readable by that user, outside data_dir);
2. the target data directory from disk and pg_control (``pg_controldata``): it must be a data directory owned
   by os_user, with no live postmaster, shut down cleanly, with wal_log_hints on or data checksums. A directory
   that pg_rewind already rewound and that was not started since (state "in archive recovery" and a
   backup_label written by pg_rewind) is reported as already rewound;
3. a SQL session to the source with the same options: its system identifier, its timeline and that timeline's
   history file, and whether the role is a superuser (refused: pg_rewind needs only four EXECUTE grants, see
   below). A target that never went past the point where the source's timeline forked off its own (same timeline,
   or its WAL ends at or before the switch point: _divergence.py) needs no rewind: it is reported as outcome
   ``repoint`` and pg_rewind is never run (on such a target it can fail: "could not find previous WAL record");
4. otherwise ``pg_rewind --dry-run`` as os_user: it connects to the source, compares the timelines, scans the
   target's WAL and computes what it would copy, and writes nothing. Its output says whether a rewind is needed.
   When the session of step 3 could not be opened, pg_rewind's own error speaks first. Before PostgreSQL 16, pg_rewind
   reads the source's timeline only from the checkpoint record in pg_control, so right after a promotion (before
   the first checkpoint on the new timeline) it says "no rewind required" although the servers diverged; such a
   source is refused with advice to run CHECKPOINT on it;
5. outside check mode, and only when a rewind is needed: ``pg_rewind --progress``. pg_rewind runs with
   ``--no-ensure-shutdown`` (it never starts the target itself) and never with ``--write-recovery-conf``: making
   the result a standby is the standby_config module's job.

The EXECUTE grants pg_rewind needs on the source (checked here after a failure) are _rewind_grants.py's.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable

from ansible_collections.pgrepl.streaming.plugins.module_utils._binaries import find_binary
from ansible_collections.pgrepl.streaming.plugins.module_utils._changes import ChangeTracker, finish
from ansible_collections.pgrepl.streaming.plugins.module_utils._connection import (
    CAUSE_TEXT,
    SSL_MODES,
    ConnectFailure,
    describe_failure,
    open_session,
    psycopg,
    query_dict,
    query_one,
)
from ansible_collections.pgrepl.streaming.plugins.module_utils._conninfo import (
    build,
    check_sslrootcert,
    mask,
    mask_embedded,
    tls_pairs,
    validate_host,
)
from ansible_collections.pgrepl.streaming.plugins.module_utils._datadir import (
    CLEAN_STATES,
    IN_ARCHIVE_RECOVERY,
    read_data_dir,
    validate_data_dir,
)
from ansible_collections.pgrepl.streaming.plugins.module_utils._divergence import (
    PAST_FORK,
    Divergence,
    NodeWal,
    divergence,
)
from ansible_collections.pgrepl.streaming.plugins.module_utils._errors import PgreplConnectionError, PgreplError
from ansible_collections.pgrepl.streaming.plugins.module_utils._files import atomic_write, fsync_dir
from ansible_collections.pgrepl.streaming.plugins.module_utils._lsn import (
    LSN_PATTERN,
    normalize_lsn,
    timeline_of_wal_file,
)
from ansible_collections.pgrepl.streaming.plugins.module_utils._module import ModuleSpec
from ansible_collections.pgrepl.streaming.plugins.module_utils._names import (
    PLAIN_NAME_CHARS,
    PLAIN_NAME_RE,
    validate_plain_name,
)
from ansible_collections.pgrepl.streaming.plugins.module_utils._options import (
    outside_dir,
    require_bool,
    require_choice,
    require_int,
    validate_abs_path,
)
from ansible_collections.pgrepl.streaming.plugins.module_utils._osuser import (
    OsUser,
    as_os_user,
    become_os_user,
    run_as,
    scrub_libpq_env,
    validate_os_user_name,
)
from ansible_collections.pgrepl.streaming.plugins.module_utils._pgpass import check_client_passfile
from ansible_collections.pgrepl.streaming.plugins.module_utils._promotion import (
    HistoryEntry,
    history_file_name,
    parse_history,
)
from ansible_collections.pgrepl.streaming.plugins.module_utils._rewind_grants import missing_rewind_grants

PG_REWIND = "pg_rewind"
# PostgreSQL 16 made pg_rewind read a just-promoted source's timeline from minRecoveryPointTLI as well.
STALE_SOURCE_FIXED_MAJOR = 16
CONNECT_TIMEOUT = 10
TIMEOUT_MAX = 7 * 24 * 3600
APPLICATION_NAME = "pgrepl.streaming"
LOG_MAX_LINES = 60

REWOUND_LABEL_RE = re.compile(r"^BACKUP METHOD:\s*pg_rewind\s*$", re.MULTILINE)
# Configuration files that live in the data directory on some layouts; pg_rewind replaces them with the source's.
CONFIG_FILES = ("postgresql.conf", "postgresql.auto.conf", "pg_hba.conf", "pg_ident.conf")

OUTCOME_REWOUND = "rewound"
OUTCOME_WOULD_REWIND = "would_rewind"
OUTCOME_NOT_NEEDED = "not_needed"
OUTCOME_ALREADY_REWOUND = "already_rewound"
OUTCOME_REPOINT = "repoint"


REWIND_SPEC = ModuleSpec({
    "data_dir": {"type": "path", "required": True},
    "bin_dir": {"type": "path"},
    "source_host": {"type": "str", "required": True},
    "source_port": {"type": "int", "default": 5432},
    "source_user": {"type": "str", "required": True},
    "source_dbname": {"type": "str", "default": "postgres"},
    "passfile": {"type": "path", "required": True},
    "sslmode": {"type": "str", "default": "prefer", "choices": list(SSL_MODES)},
    "sslrootcert": {"type": "path"},
    "os_user": {"type": "str", "default": "postgres"},
    "timeout": {"type": "int", "default": 3600},
    "keep_config": {"type": "bool", "default": True},
}, with_connection=False)

_DIVERGED_RE = re.compile(rf"servers diverged at WAL location ({LSN_PATTERN}) on timeline (\d+)")
_CHECKPOINT_RE = re.compile(rf"rewinding from last common checkpoint at ({LSN_PATTERN}) on timeline (\d+)")
_NEED_COPY_RE = re.compile(r"need to copy (\d+) MB \(total source directory size is (\d+) MB\)")
_PROGRESS_RE = re.compile(r"^\s*\d+/\d+ kB \(\d+%\) copied\s*$")
_ERROR_RE = re.compile(r"^pg_rewind: (?:error|fatal): ")
_TOOL_LINE_RE = re.compile(r"^pg_rewind: ")


# ---------------------------------------------------------------------------------------------------------------
# options
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RewindRequest:
    """The rewind module's options, validated (nothing was read or run to build it)."""

    data_dir: str
    source_host: str
    source_user: str
    passfile: str
    source_port: int = 5432
    source_dbname: str = "postgres"
    sslmode: str = "prefer"
    # The CA file that verifies the source (sslmode verify-ca/verify-full); None: libpq's default.
    sslrootcert: str | None = None
    os_user: str = "postgres"
    timeout: int = 3600
    bin_dir: str | None = None
    keep_config: bool = True


def rewind_request(params: dict[str, Any]) -> RewindRequest:
    """Validate every option before anything is read, run or connected."""
    data_dir = validate_abs_path("data_dir", params.get("data_dir"))
    if data_dir == "/":
        raise PgreplError("data_dir: '/' is the root directory, never a data directory")
    passfile = validate_abs_path("passfile", params.get("passfile"))
    outside_dir("passfile", passfile, data_dir, "pg_rewind replaces or removes there every file that is not on the "
                                                "source")
    bin_dir = params.get("bin_dir")
    if bin_dir is not None:
        bin_dir = validate_abs_path("bin_dir", bin_dir)
    dbname = params.get("source_dbname")
    return RewindRequest(
        data_dir=data_dir,
        source_host=validate_host("source_host", params.get("source_host")),
        source_user=validate_plain_name("source_user", params.get("source_user")),
        passfile=passfile,
        source_port=require_int(params, "source_port", 5432, 1, 65535, "a TCP port"),
        source_dbname=validate_plain_name("source_dbname", "postgres" if dbname is None else dbname, PLAIN_NAME_RE,
                                          PLAIN_NAME_CHARS, "database name"),
        sslmode=require_choice(params, "sslmode", SSL_MODES, "prefer"),
        sslrootcert=check_sslrootcert(params.get("sslrootcert")),
        os_user=validate_os_user_name(params.get("os_user") or "postgres"),
        timeout=require_int(params, "timeout", 3600, 1, TIMEOUT_MAX, "a number of seconds"),
        bin_dir=bin_dir,
        keep_config=require_bool(params, "keep_config", True),
    )


def source_pairs(request: RewindRequest) -> list[tuple[str, str]]:
    """libpq keywords of the source connection: never a password (it comes from the passfile)."""
    return [
        ("host", request.source_host),
        ("port", str(request.source_port)),
        ("user", request.source_user),
        ("dbname", request.source_dbname),
        ("passfile", request.passfile),
        *tls_pairs(request.sslmode, request.sslrootcert),
        ("connect_timeout", str(CONNECT_TIMEOUT)),
        ("application_name", APPLICATION_NAME),
    ]


def source_conninfo(request: RewindRequest) -> str:
    """What pg_rewind gets with --source-server (every value quoted)."""
    return build(source_pairs(request), always_quote=True)


def describe_source(request: RewindRequest) -> str:
    return (f"source_host={request.source_host} source_port={request.source_port} "
            f"source_user={request.source_user} source_dbname={request.source_dbname}")


# ---------------------------------------------------------------------------------------------------------------
# the target
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TargetFacts:
    """What the target data directory says, read without changing anything."""

    data_dir: str
    major: str
    cluster_state: str | None
    system_identifier: str | None
    checkpoint_timeline: int | None
    min_recovery_end_timeline: int | None
    wal_log_hints: bool | None
    data_checksums: bool | None
    postmaster_running: bool
    postmaster_pid: int | None
    postmaster_pid_file: bool
    rewound_label: bool
    owner_uid: int
    controldata: str | None
    checkpoint_lsn: str | None = None
    min_recovery_end_lsn: str | None = None

    @property
    def timeline(self) -> int | None:
        known = [tli for tli in (self.checkpoint_timeline, self.min_recovery_end_timeline) if tli]
        return max(known) if known else None

    @property
    def wal(self) -> NodeWal:
        """Where pg_control says the target's WAL is (for the divergence decision)."""
        return NodeWal(self.timeline, self.checkpoint_lsn, self.min_recovery_end_lsn, self.checkpoint_timeline)


def _read_text(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read(65536)
    except OSError:
        return None


def inspect_target(data_dir: str, bin_dir: str | None, warnings: list[str]) -> TargetFacts:
    validate_data_dir(data_dir)
    facts, read_warnings = read_data_dir(data_dir, bin_dir)
    warnings.extend(read_warnings)
    label = _read_text(os.path.join(data_dir, "backup_label")) or ""
    return TargetFacts(
        data_dir=data_dir,
        major=str(facts["pg_version"]),
        cluster_state=facts.get("cluster_state"),
        system_identifier=facts.get("system_identifier"),
        checkpoint_timeline=facts.get("timeline"),
        min_recovery_end_timeline=facts.get("min_recovery_end_timeline"),
        wal_log_hints=facts.get("wal_log_hints"),
        data_checksums=facts.get("data_checksums"),
        postmaster_running=bool(facts.get("postmaster_running")),
        postmaster_pid=facts.get("postmaster_pid"),
        postmaster_pid_file=bool(facts.get("postmaster_pid_file")),
        rewound_label=REWOUND_LABEL_RE.search(label) is not None,
        owner_uid=os.stat(data_dir).st_uid,
        controldata=facts.get("pg_controldata"),
        checkpoint_lsn=facts.get("checkpoint_lsn"),
        min_recovery_end_lsn=facts.get("min_recovery_end_lsn"),
    )


def classify_target(facts: TargetFacts, os_user: OsUser) -> str:
    """'ready' or 'already_rewound', or a PgreplError saying why pg_rewind must not run on this directory."""
    path = facts.data_dir
    if facts.controldata is None:
        raise PgreplError(f"bin_dir: no pg_controldata of PostgreSQL {facts.major} was found, so whether {path!r} "
                          "was shut down cleanly cannot be told: set bin_dir to that version's binaries")
    if facts.owner_uid != os_user.uid:
        raise PgreplError(f"data_dir: {path!r} belongs to uid {facts.owner_uid}, not to os_user {os_user.name!r} "
                          f"(uid {os_user.uid}), as whom pg_rewind runs: set os_user to the server's OS user")
    if facts.postmaster_running:
        raise PgreplError(f"data_dir: a server is running on {path!r} (postmaster.pid names the live process "
                          f"{facts.postmaster_pid}): pg_rewind needs the target stopped cleanly; stop it first "
                          "(pg_ctl stop -m fast). Nothing was changed")
    state = facts.cluster_state or "unknown"
    if state == IN_ARCHIVE_RECOVERY and facts.rewound_label:
        return OUTCOME_ALREADY_REWOUND
    if state not in CLEAN_STATES:
        stale = " and a stale postmaster.pid" if facts.postmaster_pid_file else ""
        raise PgreplError(
            f"data_dir: {path!r} was not shut down cleanly (pg_controldata says 'Database cluster state: {state}', "
            f"with no live server{stale}), and pg_rewind needs a clean shutdown. Nothing was changed. Start the "
            "server once so that it finishes crash recovery, keeping clients out (for example pg_ctl start -o "
            "\"-c listen_addresses=''\"), stop it with pg_ctl stop -m fast, then run this again. This module never "
            "starts a server, and it runs pg_rewind with --no-ensure-shutdown so that pg_rewind does not either")
    if facts.wal_log_hints is False and facts.data_checksums is False:
        raise PgreplError(
            f"data_dir: {path!r} has wal_log_hints off and no data checksums (pg_controldata: 'wal_log_hints "
            "setting: off', 'Data page checksum version: 0'), so the pages that only hint-bit updates changed "
            "after the divergence are not in its WAL and pg_rewind refuses it. It cannot be rewound safely: clone "
            "it again (pgrepl.streaming.standby_clone with force_reclone: true), and set wal_log_hints = on on "
            "every node so that the next rewind is possible. Nothing was changed")
    return "ready"


def config_files_in(data_dir: str) -> list[str]:
    """The configuration files in data_dir that pg_rewind replaces with the source's copies."""
    return [name for name in CONFIG_FILES if os.path.isfile(os.path.join(data_dir, name))]


# The node's own configuration files, kept here while pg_rewind runs: a run cut off after pg_rewind replaced them
# finds them on its next run (and restores those, not what is in data_dir by then, which is the source's).
KEPT_CONFIG_INFIX = ".pgrepl-own-config"


def kept_config_dir(data_dir: str) -> str:
    return data_dir.rstrip("/") + KEPT_CONFIG_INFIX


def keep_own_config(data_dir: str, names: list[str]) -> str:
    """Copy the node's configuration files aside (with their mode and owner) before pg_rewind replaces them, unless
    an interrupted run kept them already; the directory that holds them."""
    keep = kept_config_dir(data_dir)
    if os.path.isdir(keep):
        return keep
    partial = keep + ".partial"
    shutil.rmtree(partial, ignore_errors=True)
    os.mkdir(partial, 0o700)
    for name in names:
        shutil.copy2(os.path.join(data_dir, name), os.path.join(partial, name))
        st = os.stat(os.path.join(data_dir, name))
        os.chown(os.path.join(partial, name), st.st_uid, st.st_gid)
    fsync_dir(partial, quiet=True)
    os.rename(partial, keep)  # complete or absent: never half a set of the node's files
    fsync_dir(os.path.dirname(keep), quiet=True)
    return keep


def restore_own_config(data_dir: str, keep: str) -> list[str]:
    """Put the kept files back in data_dir (atomically each, with their mode and owner), then drop the copy."""
    restored = []
    for name in sorted(os.listdir(keep)):
        source = os.path.join(keep, name)
        st = os.stat(source)
        with open(source, "rb") as handle:
            data = handle.read()
        target = os.path.join(data_dir, name)
        atomic_write(target, data, mode=stat.S_IMODE(st.st_mode), option="keep_config")
        if os.stat(target).st_uid != st.st_uid or os.stat(target).st_gid != st.st_gid:
            os.chown(target, st.st_uid, st.st_gid)
        restored.append(name)
    shutil.rmtree(keep)
    return restored


# ---------------------------------------------------------------------------------------------------------------
# the binary and its output
# ---------------------------------------------------------------------------------------------------------------


def rewind_command(binary: str, request: RewindRequest, dry_run: bool) -> list[str]:
    """pg_rewind that never starts the target, never writes recovery settings, and reports progress."""
    cmd = [binary, "--target-pgdata", request.data_dir, "--source-server", source_conninfo(request),
           "--no-ensure-shutdown", "--progress"]
    if dry_run:
        cmd.append("--dry-run")
    return cmd


@dataclass
class RewindReport:
    """What pg_rewind's output (C locale) says."""

    lines: list[str] = field(default_factory=list)
    connected: bool = False
    same_timeline: bool = False
    no_rewind_required: bool = False
    divergence_lsn: str | None = None
    divergence_timeline: int | None = None
    checkpoint_lsn: str | None = None
    checkpoint_timeline: int | None = None
    copy_mb: int | None = None
    source_mb: int | None = None
    done: bool = False
    errors: list[str] = field(default_factory=list)

    @property
    def rewind_needed(self) -> bool | None:
        """True/False as pg_rewind decided, None when its output does not say."""
        if self.no_rewind_required:
            return False
        if self.checkpoint_lsn is not None or self.divergence_lsn is not None:
            return True
        return None


def collapse_progress(lines: list[str]) -> list[str]:
    """Consecutive progress lines ('1234/5678 kB (21%) copied') reduced to the last of each run."""
    out: list[str] = []
    previous_progress = False
    for line in lines:
        progress = _PROGRESS_RE.match(line) is not None
        if progress and previous_progress:
            out[-1] = line.strip()
        else:
            out.append(line.strip() if progress else line)
        previous_progress = progress
    return out


def parse_rewind_output(raw_lines: list[str]) -> RewindReport:
    """pg_rewind's merged stdout and stderr, line by line; error lines keep their continuation lines."""
    lines = collapse_progress([mask_embedded(line.rstrip()) for line in raw_lines if line.strip()])
    report = RewindReport(lines=lines)
    in_error = False
    for line in lines:
        if _ERROR_RE.match(line):
            report.errors.append(line)
            in_error = True
            continue
        if in_error and not _TOOL_LINE_RE.match(line) and not _PROGRESS_RE.match(line):
            report.errors[-1] += " " + line.strip()
            continue
        in_error = False
        if "connected to server" in line:
            report.connected = True
        if "source and target cluster are on the same timeline" in line:
            report.same_timeline = True
        if line.rstrip().endswith("no rewind required"):
            report.no_rewind_required = True
        if line.rstrip().endswith("Done!"):
            report.done = True
        match = _DIVERGED_RE.search(line)
        if match:
            report.divergence_lsn, report.divergence_timeline = normalize_lsn(match.group(1)), int(match.group(2))
        match = _CHECKPOINT_RE.search(line)
        if match:
            report.checkpoint_lsn, report.checkpoint_timeline = normalize_lsn(match.group(1)), int(match.group(2))
        match = _NEED_COPY_RE.search(line)
        if match:
            report.copy_mb, report.source_mb = int(match.group(1)), int(match.group(2))
    return report


def failure_hint(request: RewindRequest, cause: str | None, missing_grants: list[str]) -> str:
    """The likely cause of a failed pg_rewind, from what diagnose_source() learnt (libpq's facts about the source
    connection, then SQL): pg_rewind's own output carries the source's lc_messages, so its words decide nothing."""
    hints = {
        "password": f"the password for {request.source_user} in passfile {request.passfile} is wrong",
        "no_password": (f"passfile {request.passfile} has no line matching {request.source_host}:"
                        f"{request.source_port}:{request.source_dbname}:{request.source_user}"),
        "hba": (f"the source's pg_hba.conf has no line admitting {request.source_user} to database "
                f"{request.source_dbname} from this host"),
        "database": f"source_dbname: the database {request.source_dbname!r} does not exist on the source",
        "login_refused": f"the role {request.source_user} may not log in on the source",
    }
    if cause in hints:
        return f"; {hints[str(cause)]}"
    if cause is not None:
        return f"; the source cannot be reached or refuses the connection: {CAUSE_TEXT[cause]}"
    if missing_grants:
        return (f"; {request.source_user} may not execute {', '.join(missing_grants)}: grant it what pg_rewind needs "
                f"in database {request.source_dbname} (pgrepl.streaming.rewind_grants)")
    return ""


_NO_RECORD_AT_RE = re.compile(rf"could not find previous WAL record at ({LSN_PATTERN})")


def fork_failure_hint(fork: Divergence | None, errors: list[str]) -> str:
    """The likely cause when pg_rewind found no WAL record at the switch point itself on a target that pg_control
    puts past the fork (pg_rewind's C-locale words; "" otherwise)."""
    if fork is None or fork.verdict != PAST_FORK or not fork.fork_lsn:
        return ""
    at = [match.group(1) for line in errors for match in _NO_RECORD_AT_RE.finditer(line)]
    if not any(normalize_lsn(lsn) == fork.fork_lsn for lsn in at):
        return ""
    return (f"; by pg_control {fork.reason}, but its pg_wal holds no record at the switch point {fork.fork_lsn} "
            "itself, where pg_rewind starts reading: pg_control and pg_wal disagree and it cannot be rewound. Copy "
            "the primary again (pgrepl.streaming.standby_clone with force_reclone: true; in a rejoin, "
            "pgrepl_rejoin_reseed=true)")


def explain_failure(request: RewindRequest, report: RewindReport, returncode: int, dry_run: bool,
                    hint: str = "") -> str:
    """pg_rewind's failure as a sentence: its own error lines quoted, the likely cause, what it left behind."""
    quoted = " | ".join(report.errors[-3:] or report.lines[-3:]) or "no output"
    lowered = quoted.lower()
    if not hint and ("could not find previous wal record" in lowered or "could not open file" in lowered):
        # pg_rewind's own words about the target's pg_wal: it runs under LC_ALL=C (clean_env), so they are English.
        hint = ("; the target's pg_wal no longer holds WAL back to the last checkpoint before the divergence "
                "(copy the missing segments back from the archive, or clone it again with standby_clone)")
    if dry_run or report.checkpoint_lsn is None:
        where = "nothing was changed"
    else:
        where = ("pg_rewind may have changed data_dir before it stopped, and PostgreSQL's documentation advises a "
                 "fresh base backup then (pgrepl.streaming.standby_clone with force_reclone: true)")
    mode = "pg_rewind --dry-run" if dry_run else "pg_rewind"
    return (f"{mode} against the source ({describe_source(request)}) failed (exit {returncode}){hint}; {where}. "
            f"pg_rewind said: {quoted}")


# ---------------------------------------------------------------------------------------------------------------
# the source, over SQL
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SourceFacts:
    system_identifier: str
    in_recovery: bool
    checkpoint_timeline: int | None
    min_recovery_end_timeline: int | None
    wal_file: str | None
    is_superuser: bool
    current_user: str
    version_num: int
    # The current timeline's history file (None: timeline 1, which has none, or it could not be read).
    history: list[HistoryEntry] | None = None

    @property
    def timeline(self) -> int | None:
        """The timeline the source is on: its WAL insert timeline, or the largest pg_control knows."""
        known = [tli for tli in (self.checkpoint_timeline, self.min_recovery_end_timeline,
                                 timeline_of_wal_file(self.wal_file)) if tli]
        return max(known) if known else None


SOURCE_QUERY = (
    "SELECT (SELECT system_identifier FROM pg_catalog.pg_control_system())::text AS system_identifier,"
    " pg_catalog.pg_is_in_recovery() AS in_recovery,"
    " (SELECT timeline_id FROM pg_catalog.pg_control_checkpoint()) AS checkpoint_timeline,"
    " (SELECT min_recovery_end_timeline FROM pg_catalog.pg_control_recovery()) AS min_recovery_end_timeline,"
    " CASE WHEN pg_catalog.pg_is_in_recovery() THEN NULL"
    " ELSE pg_catalog.pg_walfile_name(pg_catalog.pg_current_wal_lsn()) END AS wal_file,"
    " COALESCE((SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user), false) AS is_superuser,"
    " current_user AS current_user,"
    " current_setting('server_version_num')::int AS version_num"
)


def source_kwargs(request: RewindRequest) -> dict[str, str]:
    return dict(source_pairs(request))


def explain_source_failure(request: RewindRequest, failure: ConnectFailure) -> str:
    return (f"cannot connect to the source ({describe_source(request)}) to read its timeline"
            f"{failure_hint(request, failure.cause, [])}; nothing was changed. libpq said: {failure.text}")


def read_history(conn: Any, timeline: int | None) -> list[HistoryEntry] | None:
    """The source's history file of that timeline, read as pg_rewind reads it (pg_read_binary_file, one of the
    grants source_user has); None for timeline 1 (no file) or when it cannot be read (the grant is missing: pg_rewind
    then says so itself)."""
    if not timeline or timeline < 2:
        return None
    try:
        row = query_one(conn, "SELECT pg_catalog.pg_read_binary_file(%s)", (f"pg_wal/{history_file_name(timeline)}",))
    except psycopg.Error:
        return None
    if row is None or row[0] is None:
        return None
    return parse_history(bytes(row[0]).decode("ascii", errors="replace"))


def probe_source(request: RewindRequest, opener: Callable[..., Any] | None = None) -> SourceFacts:
    """Read-only queries on the source with the module's options (the same passfile line as pg_rewind's): its
    control data, then its current timeline's history file."""
    if psycopg is None:
        raise PgreplError("the Python library psycopg (version 3) is required on the managed host")
    conn = open_session(source_kwargs(request), lambda failure: explain_source_failure(request, failure), opener)
    try:
        row = query_dict(conn, SOURCE_QUERY)
        if row is None:
            raise PgreplError("the source returned no row for its control data")
        facts = SourceFacts(
            system_identifier=str(row["system_identifier"]),
            in_recovery=bool(row["in_recovery"]),
            checkpoint_timeline=row["checkpoint_timeline"],
            min_recovery_end_timeline=row["min_recovery_end_timeline"],
            wal_file=row["wal_file"],
            is_superuser=bool(row["is_superuser"]),
            current_user=str(row["current_user"]),
            version_num=int(row["version_num"]),
        )
        # A superuser is refused before anything reads a file as it.
        history = None if facts.is_superuser else read_history(conn, facts.timeline)
    except psycopg.Error as exc:
        raise PgreplError(f"cannot read the source's control data ({describe_source(request)}) as "
                          f"{request.source_user}: {str(exc).strip()}; nothing was changed") from None
    finally:
        conn.close()
    return replace(facts, history=history)


def diagnose_source(request: RewindRequest, os_user: str) -> tuple[str | None, list[str]]:
    """After pg_rewind failed: (why a connection to the source fails, or None; the functions source_user may not
    execute). Connects as os_user, as pg_rewind did (peer authentication on a unix socket depends on it)."""
    try:
        with as_os_user(os_user):
            conn = open_session(source_kwargs(request), describe_failure)
    except PgreplConnectionError as exc:
        return exc.cause, []
    except PgreplError:  # cannot take os_user's identity here: no diagnosis, pg_rewind's words stay
        return None, []
    try:
        return None, missing_rewind_grants(conn, request.source_user)[1]
    except psycopg.Error:
        return None, []
    finally:
        conn.close()


def source_problem(source: SourceFacts, target: TargetFacts, request: RewindRequest,
                   rewinding: bool = True) -> str | None:
    """Why the source must not be used (superuser, other cluster, and when pg_rewind is to run, a just-promoted
    source that pg_rewind misreads)."""
    if source.is_superuser:
        return (f"source_user: the role {source.current_user!r} is a superuser on the source; pg_rewind must connect "
                "as an ordinary login role that has only the EXECUTE grants it needs (create one, and run "
                f"pgrepl.streaming.rewind_grants for it in database {request.source_dbname!r}). Nothing was changed")
    if target.system_identifier and source.system_identifier != target.system_identifier:
        return (f"the source ({describe_source(request)}) has system identifier {source.system_identifier} but "
                f"data_dir {target.data_dir!r} has {target.system_identifier}: they are not copies of the same "
                "cluster, and pg_rewind cannot join them. Nothing was changed")
    major = int(target.major) if target.major.isdigit() else 0
    current = source.timeline
    if rewinding and major < STALE_SOURCE_FIXED_MAJOR and source.checkpoint_timeline and current \
            and source.checkpoint_timeline < current:
        return (f"the source is on timeline {current} but its pg_control still names timeline "
                f"{source.checkpoint_timeline} (it was promoted and the first checkpoint on the new timeline has not "
                f"finished), and pg_rewind of PostgreSQL {target.major} reads the timeline from there: it would "
                "wrongly find that no rewind is needed. Run CHECKPOINT on the source (pgrepl.streaming.promote does "
                "by default), or wait for its checkpoint, then run this again. Nothing was changed")
    return None


# ---------------------------------------------------------------------------------------------------------------
# the rewind module
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class RewindRun:
    """What the steps share."""

    request: RewindRequest
    user: OsUser
    euid: int
    warnings: list[str] = field(default_factory=list)
    # What the timelines said before pg_rewind ran (added to a failure of pg_rewind).
    fork: Divergence | None = None


def run_pg_rewind(ctx: RewindRun, binary: str, dry_run: bool) -> RewindReport:
    """pg_rewind as os_user with a deadline; a failure is a PgreplError quoting pg_rewind's own error lines."""
    request = ctx.request
    outcome = run_as(ctx.user, rewind_command(binary, request, dry_run), request.timeout, ctx.euid)
    report = parse_rewind_output(outcome.lines)
    if outcome.timed_out:
        where = "nothing was changed" if dry_run else (
            "data_dir may be partly rewound and unusable: clone it again (pgrepl.streaming.standby_clone with "
            "force_reclone: true)")
        raise PgreplError(f"pg_rewind did not finish within timeout={request.timeout}s and was stopped; {where}. "
                          f"Last output: {' | '.join(report.lines[-3:])}")
    if outcome.returncode != 0:
        cause, missing = diagnose_source(request, ctx.user.name)
        hint = failure_hint(request, cause, missing) or fork_failure_hint(ctx.fork, report.errors)
        raise PgreplError(explain_failure(request, report, outcome.returncode, dry_run, hint))
    if report.rewind_needed is None:
        raise PgreplError(f"pg_rewind{' --dry-run' if dry_run else ''} succeeded but its output says neither that a "
                          f"rewind is needed nor that none is: {' | '.join(report.lines[-5:])}")
    return report


def _target_state(facts: TargetFacts) -> dict[str, Any]:
    return {"cluster_state": facts.cluster_state, "timeline": facts.timeline}


def run_rewind(module: Any) -> dict[str, Any]:
    """The rewind module's body: validate, inspect, dry-run, probe the source, then rewind (not in check mode)."""
    started = time.monotonic()
    request = rewind_request(module.params)
    user, euid = become_os_user(request.os_user)
    ctx = RewindRun(request=request, user=user, euid=euid)

    target = inspect_target(request.data_dir, request.bin_dir, ctx.warnings)
    decision = classify_target(target, user)
    check_client_passfile(request.passfile, user, euid, "pg_rewind")
    removed = scrub_libpq_env(os.environ)
    if removed:
        ctx.warnings.append(f"ignored the environment variables {', '.join(removed)}: the source connection uses "
                            "only this module's options and the passfile")
    binary = find_binary(PG_REWIND, target.major, request.bin_dir)

    result: dict[str, Any] = {
        "changed": False,
        "outcome": OUTCOME_NOT_NEEDED,
        "msg": "",
        "data_dir": request.data_dir,
        "target_state": target.cluster_state,
        "target_timeline": target.timeline,
        "target_timeline_after": target.timeline,
        "source_timeline": None,
        "system_identifier": target.system_identifier,
        "divergence_lsn": None,
        "divergence_timeline": None,
        "target_wal_end_lsn": None,
        "last_common_checkpoint_lsn": None,
        "copy_mb": None,
        "source_size_mb": None,
        "config_files_from_source": [],
        "config_files_kept": [],
        "log": [],
        "pg_rewind": binary,
        "source_conninfo": mask(source_conninfo(request)),
        "duration_seconds": 0.0,
    }
    tracker = ChangeTracker(module.check_mode)
    before = _target_state(target)

    if decision == OUTCOME_ALREADY_REWOUND:
        source = probe_source(request)
        problem = source_problem(source, target, request)
        if problem:
            raise PgreplError(problem)
        result["source_timeline"] = source.timeline
        result["outcome"] = OUTCOME_ALREADY_REWOUND
        keep = kept_config_dir(request.data_dir)
        if request.keep_config and os.path.isdir(keep):
            # A run cut off between pg_rewind and putting the node's own configuration back: put it back now.
            result["changed"] = True
            result["config_files_kept"] = sorted(os.listdir(keep))
            if tracker.apply:
                restore_own_config(request.data_dir, keep)
            ctx.warnings.append(f"put back the node's own {', '.join(result['config_files_kept'])}, kept in {keep!r} "
                                "by a run cut off after pg_rewind")
        result["msg"] = (f"data_dir {request.data_dir!r} was already rewound (state '{IN_ARCHIVE_RECOVERY}', "
                         "backup_label written by pg_rewind) and has not been started since: configure it as a standby "
                         "(pgrepl.streaming.standby_config) and start it to finish its recovery")
        tracker.record("target", before, before)
        return finish(module, result, tracker, ctx.warnings, started)

    result["target_wal_end_lsn"] = target.wal.end_lsn
    # The timelines first (read-only SQL): a target that never went past the fork is only repointed, and pg_rewind
    # never runs on it. When the source cannot be asked, pg_rewind's dry run speaks (its error names the cause).
    try:
        early: SourceFacts | None = probe_source(request)
    except PgreplError:
        early = None
    if early is not None:
        problem = source_problem(early, target, request, rewinding=False)
        if problem:
            raise PgreplError(problem)
        fork = divergence(target.wal, early.timeline, early.history)
        result["source_timeline"] = early.timeline
        if fork.rewind_needed is False:
            return _repoint(module, result, tracker, before, ctx, fork, early, started)
        ctx.fork = fork

    dry = run_pg_rewind(ctx, binary, dry_run=True)
    source = early or probe_source(request)
    problem = source_problem(source, target, request)
    if problem:
        raise PgreplError(problem)
    _report_into(result, dry)
    result["source_timeline"] = source.timeline
    if not dry.rewind_needed:
        result["msg"] = (f"pg_rewind found no rewind required: data_dir {request.data_dir!r} (timeline "
                         f"{target.timeline}) can follow the source (timeline {source.timeline}) as it is")
        tracker.record("target", before, before)
        return finish(module, result, tracker, ctx.warnings, started)

    config_files = config_files_in(request.data_dir)
    result["config_files_from_source"] = config_files
    if request.keep_config:
        result["config_files_kept"] = config_files
    tracker.record("target", before, {"cluster_state": IN_ARCHIVE_RECOVERY, "timeline": source.timeline})
    result["changed"] = True
    if not tracker.apply:
        result["outcome"] = OUTCOME_WOULD_REWIND
        result["msg"] = (f"data_dir {request.data_dir!r} diverged from the source at {dry.divergence_lsn} on timeline "
                         f"{dry.divergence_timeline} and would be rewound from the last common checkpoint at "
                         f"{dry.checkpoint_lsn} (pg_rewind --dry-run changed nothing)")
        return finish(module, result, tracker, ctx.warnings, started)

    keep = keep_own_config(request.data_dir, config_files) if request.keep_config and config_files else None
    try:
        real = run_pg_rewind(ctx, binary, dry_run=False)
    finally:
        if keep:
            # The node's own files back, whatever pg_rewind did (a failed rewind leaves an unusable data directory
            # to clone again, whose configuration is still the node's).
            result["config_files_kept"] = restore_own_config(request.data_dir, keep)
    _report_into(result, real)
    if not real.rewind_needed:
        # The source moved between the dry run and the real run so that nothing is needed any more.
        result["changed"] = False
        result["config_files_from_source"] = []
        result["config_files_kept"] = []
        result["msg"] = f"pg_rewind found no rewind required for data_dir {request.data_dir!r}"
        tracker.record("target", before, before)
        return finish(module, result, tracker, ctx.warnings, started)
    if not real.done:
        raise PgreplError(f"pg_rewind exited 0 but did not report 'Done!': {' | '.join(real.lines[-5:])}")
    after, _after_warnings = read_data_dir(request.data_dir, request.bin_dir)
    after_timeline = max([tli for tli in (after.get("timeline"), after.get("min_recovery_end_timeline")) if tli],
                         default=None)
    result["target_timeline_after"] = after_timeline
    tracker.record("target", before, {"cluster_state": after.get("cluster_state"), "timeline": after_timeline})
    result["outcome"] = OUTCOME_REWOUND
    result["msg"] = (f"rewound data_dir {request.data_dir!r} from the source ({describe_source(request)}): diverged at "
                     f"{real.divergence_lsn} on timeline {real.divergence_timeline}, now on timeline {after_timeline}; "
                     "configure it as a standby (pgrepl.streaming.standby_config) before starting it")
    if config_files and request.keep_config:
        ctx.warnings.append(f"pg_rewind replaced {', '.join(config_files)} in data_dir with the source's copies; the "
                            "node's own were put back (keep_config)")
    elif config_files:
        ctx.warnings.append(f"pg_rewind replaced {', '.join(config_files)} in data_dir with the source's copies "
                            "(keep_config: false): check them (port, listen_addresses, primary_conninfo) before "
                            "starting the server")
    return finish(module, result, tracker, ctx.warnings, started)


def _repoint(module: Any, result: dict[str, Any], tracker: ChangeTracker, before: dict[str, Any], ctx: RewindRun,
             fork: Divergence, source: SourceFacts, started: float) -> dict[str, Any]:
    """The target never diverged from the source: nothing to rewind, pg_rewind is not run; it only has to follow."""
    request = ctx.request
    result["outcome"] = OUTCOME_REPOINT
    result["source_timeline"] = source.timeline
    result["divergence_lsn"] = fork.fork_lsn
    result["divergence_timeline"] = fork.fork_timeline
    result["msg"] = (f"data_dir {request.data_dir!r} never diverged from the source ({fork.reason}): repoint it "
                     "without pg_rewind (pg_rewind was not run): configure it as a standby of the source "
                     "(pgrepl.streaming.standby_config, recovery_target_timeline 'latest') and start it, and it "
                     "follows the source's timeline")
    tracker.record("target", before, before)
    return finish(module, result, tracker, ctx.warnings, started)


def _report_into(result: dict[str, Any], report: RewindReport) -> None:
    result["divergence_lsn"] = report.divergence_lsn
    result["divergence_timeline"] = report.divergence_timeline
    result["last_common_checkpoint_lsn"] = report.checkpoint_lsn
    result["copy_mb"] = report.copy_mb
    result["source_size_mb"] = report.source_mb
    result["log"] = report.lines[-LOG_MAX_LINES:]
