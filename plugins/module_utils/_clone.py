# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A data directory made a fresh physical copy of a primary with pg_basebackup, safely and idempotently.

Everything that can refuse runs before anything changes: the options, the target directory (symlink, config
directory, parent of another cluster), the passfile, a real replication connection (IDENTIFY_SYSTEM, and
READ_REPLICATION_SLOT on PostgreSQL 15+), and the decision from the directory's system identifier. The copy
is made in a temporary sibling directory, checked, and only then swapped in; an old directory is renamed
aside, never deleted.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from ansible_collections.pgrepl.streaming.plugins.module_utils._binaries import find_binary
from ansible_collections.pgrepl.streaming.plugins.module_utils._changes import ChangeTracker, finish
from ansible_collections.pgrepl.streaming.plugins.module_utils._conffile import ConfFile
from ansible_collections.pgrepl.streaming.plugins.module_utils._connection import (
    SSL_MODES,
    ConnectFailure,
    describe_failure,
    diagnose_connect_error,
    psycopg,
)
from ansible_collections.pgrepl.streaming.plugins.module_utils._conninfo import (
    build,
    check_sslrootcert,
    has_password,
    mentions_password,
    tls_pairs,
    validate_host,
)
from ansible_collections.pgrepl.streaming.plugins.module_utils._datadir import (
    read_data_dir,
    read_pg_version,
    read_postmaster,
)
from ansible_collections.pgrepl.streaming.plugins.module_utils._errors import PgreplError
from ansible_collections.pgrepl.streaming.plugins.module_utils._files import fsync_dir
from ansible_collections.pgrepl.streaming.plugins.module_utils._lock import data_dir_lock
from ansible_collections.pgrepl.streaming.plugins.module_utils._module import ModuleSpec
from ansible_collections.pgrepl.streaming.plugins.module_utils._names import (
    NAME_MAX_BYTES,
    PLAIN_NAME_RE,
    validate_plain_name,
    validate_slot_name,
)
from ansible_collections.pgrepl.streaming.plugins.module_utils._options import (
    outside_dir,
    require_bool,
    require_choice,
    require_int,
    validate_abs_path,
    validate_data_dir_path,
)
from ansible_collections.pgrepl.streaming.plugins.module_utils._osuser import (
    OsUser,
    become_os_user,
    run_as,
    scrub_libpq_env,
    user_can,
    validate_os_user_name,
)
from ansible_collections.pgrepl.streaming.plugins.module_utils._pgpass import check_client_passfile
from ansible_collections.pgrepl.streaming.plugins.module_utils._progress import (
    ProgressFile,
    progress_path,
    remove_files,
    validate_max_rate,
)
from ansible_collections.pgrepl.streaming.plugins.module_utils._space import (
    SpaceNeed,
    gather_space_facts,
    group_by_filesystem,
    space_problem,
)
from ansible_collections.pgrepl.streaming.plugins.module_utils._systemd import systemctl, validate_unit_name
from ansible_collections.pgrepl.streaming.plugins.module_utils._tablespaces import (
    IN_PLACE,
    SWAP,
    Tablespace,
    Target,
    decide_target,
    mapped,
    mapping_argument,
    path_problems,
    read_target_facts,
    relink,
    tablespace_links,
    unused_keys,
    validate_tablespace_map,
    validate_tablespaces,
)

BASEBACKUP = "pg_basebackup"
CHECKPOINTS = ("fast", "spread")
MOVED_INFIX = ".pgrepl-moved-"
CLONE_INFIX = ".pgrepl-clone-"
# A finished and verified copy, renamed so before the swap: a run cut off between the swap's two renames leaves
# data_dir missing and this complete copy, which the next run puts in place instead of copying again.
READY_INFIX = ".pgrepl-ready-"
STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
# Seconds the up-front replication connection may take to open (it is also written into primary_conninfo).
CONNECT_TIMEOUT = 10
# Lines of pg_basebackup's output kept in the result.
LOG_TAIL_LINES = 30
# READ_REPLICATION_SLOT exists from PostgreSQL 15 on.
READ_SLOT_MIN_VERSION = 150000
# How deep and how wide the search for a cluster below data_dir goes (a bound, not a promise of completeness).
NESTED_SEARCH_DEPTH = 3
NESTED_SEARCH_MAX_ENTRIES = 20000
# initdb's own objects (template0, template1, postgres and their relations) have OIDs and relfilenodes below
# FirstNormalObjectId; every database and relation a user creates gets one at or above it.
FIRST_NORMAL_OID = 16384
_LEADING_NUMBER_RE = re.compile(r"^[0-9]+")


_ERROR_LINE_RE = re.compile(r"(?i)\b(error|fatal|could not|cannot|failed|invalid)\b")

# States of data_dir as decided from its facts (the diff shows them).
STATE_MISSING = "missing"
STATE_EMPTY = "empty"
STATE_STANDBY = "standby-of-primary"
STATE_FORMER_PRIMARY = "former-primary"
STATE_OTHER_CLUSTER = "other-cluster"
STATE_FILES = "files"


# ---------------------------------------------------------------------------------------------------------------
# options
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CloneRequest:
    """The module's options after validation (no file system or network access was needed to build it)."""

    data_dir: str
    primary_host: str
    passfile: str
    primary_port: int = 5432
    replication_user: str = "replicator"
    slot_name: str | None = None
    application_name: str | None = None
    sslmode: str = "prefer"
    # The CA file that verifies the primary (sslmode verify-ca/verify-full); None: libpq's default.
    sslrootcert: str | None = None
    os_user: str = "postgres"
    move_aside: bool = True
    checkpoint: str = "fast"
    timeout: int = 3600
    force_reclone: bool = False
    bin_dir: str | None = None
    preflight: bool = False
    stop_service: str | None = None
    stop_timeout: int = 600
    replace_existing_data: bool = False
    # Bytes of data on the primary (node_prepare's data_size); None: unknown, the free space is not checked.
    data_size: int | None = None
    space_check: bool = True
    # pg_basebackup --max-rate as it takes it (kB/s, or with the suffix k or M); None: unlimited.
    max_rate: str | None = None
    # The primary's tablespaces (node_prepare's tablespaces); None: unknown, the keys of tablespace_map are used.
    tablespaces: tuple[Tablespace, ...] | None = None
    # {primary's path: this host's path}; a tablespace not named keeps the primary's path.
    tablespace_map: dict[str, str] = field(default_factory=dict)


def validate_application_name(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or PLAIN_NAME_RE.fullmatch(value) is None:
        detail = ""
        if isinstance(value, str) and len(value) > NAME_MAX_BYTES:
            detail = f", it has {len(value)} characters and at most {NAME_MAX_BYTES} are allowed"
        raise PgreplError(f"application_name: {value!r} is not accepted (^[A-Za-z0-9_.-]{{1,63}}${detail})")
    return value


def request_from_params(params: dict[str, Any]) -> CloneRequest:
    """Validate every option before anything is read, run or connected."""
    data_dir = validate_data_dir_path(params.get("data_dir"))
    passfile = validate_abs_path("passfile", params.get("passfile"))
    bin_dir = params.get("bin_dir")
    if bin_dir is not None:
        bin_dir = validate_abs_path("bin_dir", bin_dir)
    slot_name = params.get("slot_name")
    if slot_name is not None:
        slot_name = validate_slot_name(slot_name, "slot_name")
    os_user = validate_os_user_name(params.get("os_user") or "postgres")
    data_size = params.get("data_size")
    if data_size is not None:
        data_size = require_int(params, "data_size", 0, 0, 2 ** 62, "a number of bytes")
    return CloneRequest(
        data_dir=data_dir,
        primary_host=validate_host("primary_host", params.get("primary_host")),
        passfile=passfile,
        primary_port=require_int(params, "primary_port", 5432, 1, 65535, "a TCP port"),
        replication_user=validate_plain_name(
            "replication_user", params.get("replication_user") if params.get("replication_user") is not None
            else "replicator"),
        slot_name=slot_name,
        application_name=validate_application_name(params.get("application_name")),
        sslmode=require_choice(params, "sslmode", SSL_MODES, "prefer"),
        sslrootcert=check_sslrootcert(params.get("sslrootcert")),
        os_user=os_user,
        move_aside=require_bool(params, "move_aside", True),
        checkpoint=require_choice(params, "checkpoint", CHECKPOINTS, "fast"),
        timeout=require_int(params, "timeout", 3600, 1, 7 * 24 * 3600, "a number of seconds"),
        force_reclone=require_bool(params, "force_reclone", False),
        bin_dir=bin_dir,
        preflight=require_bool(params, "preflight", False),
        stop_service=validate_unit_name(params.get("stop_service"), "stop_service"),
        stop_timeout=require_int(params, "stop_timeout", 600, 1, 7 * 24 * 3600, "a number of seconds"),
        data_size=data_size,
        space_check=require_bool(params, "space_check", True),
        replace_existing_data=require_bool(params, "replace_existing_data", False),
        max_rate=validate_max_rate(params.get("max_rate")),
        tablespaces=validate_tablespaces(params.get("tablespaces")),
        tablespace_map=validate_tablespace_map(params.get("tablespace_map")),
    )


def stop_server(request: CloneRequest) -> None:
    """Stop the server of data_dir through its unit, once every check passed; refuse when it still runs after."""
    unit = request.stop_service or ""
    # Bounded: a unit's own stop timeout may be an hour (Debian's), and the play would wait as long.
    systemctl("stop", unit, "stop_service", timeout=request.stop_timeout, advice="stop it before the clone")
    if read_postmaster(request.data_dir)["postmaster_running"]:
        raise PgreplError(f"stop_service: {request.stop_service!r} is stopped but a server still runs on data_dir "
                          f"{request.data_dir!r}: that unit does not run this data directory; nothing was moved")


# ---------------------------------------------------------------------------------------------------------------
# conninfo
# ---------------------------------------------------------------------------------------------------------------


def conninfo_pairs(request: CloneRequest) -> list[tuple[str, str]]:
    """The libpq keywords of the replication connection (never a password: it comes from the passfile)."""
    pairs = [
        ("host", request.primary_host),
        ("port", str(request.primary_port)),
        ("user", request.replication_user),
        ("passfile", request.passfile),
        *tls_pairs(request.sslmode, request.sslrootcert),
        ("connect_timeout", str(CONNECT_TIMEOUT)),
    ]
    if request.application_name:
        pairs.append(("application_name", request.application_name))
    return pairs


def clone_conninfo(request: CloneRequest) -> str:
    """What pg_basebackup gets with -d (and what -R writes into primary_conninfo)."""
    return build(conninfo_pairs(request), always_quote=True)


def describe_primary(request: CloneRequest) -> str:
    return (f"primary_host={request.primary_host} primary_port={request.primary_port} "
            f"replication_user={request.replication_user}")


# ---------------------------------------------------------------------------------------------------------------
# what data_dir is
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class DirFacts:
    """What data_dir is, read without pg_controldata and without changing anything."""

    path: str
    parent_exists: bool = True
    exists: bool = False
    is_symlink: bool = False
    symlink_target: str | None = None
    is_dir: bool = False
    empty: bool = False
    entries: list[str] = field(default_factory=list)
    is_mount: bool = False
    pg_version: str | None = None
    has_pg_control: bool = False
    has_postgresql_conf: bool = False
    has_pg_hba_conf: bool = False
    nested_cluster: str | None = None
    postmaster_running: bool = False
    postmaster_pid: int | None = None
    # What makes a cluster in data_dir more than a fresh package cluster (see cluster_holdings); empty for one.
    holdings: list[str] = field(default_factory=list)


def _has_user_relation(db_dir: str) -> bool:
    """A relation file (<relfilenode>[_fork][.segment]) numbered at or above FIRST_NORMAL_OID: a user's table,
    index, sequence or view storage (or a system catalog a user rewrote, VACUUM FULL: also a user's doing)."""
    try:
        with os.scandir(db_dir) as entries:
            for entry in entries:
                number = _LEADING_NUMBER_RE.match(entry.name)
                if number and int(number.group()) >= FIRST_NORMAL_OID:
                    return True
    except OSError:
        return False
    return False


def _names(path: str) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []


def cluster_holdings(path: str) -> list[str]:
    """What the cluster in path holds beyond what initdb made (a freshly created package cluster, such as Debian's
    postgresql package makes, holds none of it), read from its files, running or not: databases besides template0,
    template1 and postgres; relations in those; tablespaces; replication slots; a standby's or a recovery's
    configuration (standby.signal, recovery.signal, recovery.conf)."""
    found = []
    base = os.path.join(path, "base")
    databases = [name for name in _names(base) if name.isdigit()]
    created = [name for name in databases if int(name) >= FIRST_NORMAL_OID]
    if created:
        found.append(f"{len(created)} database(s) besides template0, template1 and postgres")
    defaults = [name for name in databases if int(name) < FIRST_NORMAL_OID]
    if any(_has_user_relation(os.path.join(base, name)) for name in defaults):
        found.append("tables or other relations created in template1 or postgres")
    tablespaces = _names(os.path.join(path, "pg_tblspc"))
    if tablespaces:
        found.append(f"{len(tablespaces)} tablespace(s) (pg_tblspc)")
    slots = _names(os.path.join(path, "pg_replslot"))
    if slots:
        found.append(f"replication slot(s) {', '.join(slots)} (standbys of its own stream from it)")
    signals = [name for name in ("standby.signal", "recovery.signal", "recovery.conf")
               if os.path.isfile(os.path.join(path, name))]
    if signals:
        found.append(f"{' and '.join(signals)}: it is a standby (or in recovery) of another primary")
    return found


def find_nested_cluster(path: str, max_depth: int = NESTED_SEARCH_DEPTH,
                        max_entries: int = NESTED_SEARCH_MAX_ENTRIES) -> str | None:
    """A data directory (PG_VERSION and global/) below path, up to max_depth levels, symlinks not followed."""
    seen = 0
    level = [path]
    for _depth in range(max_depth):
        following: list[str] = []
        for directory in level:
            try:
                with os.scandir(directory) as entries:
                    children = sorted(entry.path for entry in entries if entry.is_dir(follow_symlinks=False))
            except OSError:
                continue
            for child in children:
                seen += 1
                if seen > max_entries:
                    return None
                if os.path.isfile(os.path.join(child, "PG_VERSION")) and \
                        os.path.isdir(os.path.join(child, "global")):
                    return child
                following.append(child)
        level = following
    return None


def inspect_data_dir(path: str) -> DirFacts:
    facts = DirFacts(path=path)
    parent = os.path.dirname(path)
    facts.parent_exists = os.path.isdir(parent)
    if os.path.islink(path):
        facts.exists = True
        facts.is_symlink = True
        facts.symlink_target = os.path.realpath(path)
        return facts
    if not os.path.lexists(path):
        return facts
    facts.exists = True
    facts.is_dir = os.path.isdir(path)
    if not facts.is_dir:
        return facts
    try:
        facts.entries = sorted(os.listdir(path))
    except OSError as exc:
        raise PgreplError(f"data_dir: cannot list {path!r}: {exc.strerror or exc}") from None
    facts.empty = not facts.entries
    try:
        facts.is_mount = os.stat(path).st_dev != os.stat(parent).st_dev
    except OSError:
        facts.is_mount = False
    names = set(facts.entries)
    facts.has_postgresql_conf = "postgresql.conf" in names
    facts.has_pg_hba_conf = "pg_hba.conf" in names
    facts.has_pg_control = os.path.isfile(os.path.join(path, "global", "pg_control"))
    if "PG_VERSION" in names:
        try:
            facts.pg_version = read_pg_version(path)
        except PgreplError:  # unreadable or not a version: the directory holds files, not a cluster
            facts.pg_version = None
    if "PG_VERSION" not in names and not facts.empty:
        facts.nested_cluster = find_nested_cluster(path)
    postmaster = read_postmaster(path)
    facts.postmaster_running = bool(postmaster["postmaster_running"])
    facts.postmaster_pid = postmaster["postmaster_pid"]
    if facts.pg_version is not None and facts.has_pg_control:
        facts.holdings = cluster_holdings(path)
    return facts


def check_data_dir_static(facts: DirFacts) -> None:
    """Refusals that need no primary: symlink, not a directory, config directory, parent of a cluster."""
    path = facts.path
    if not facts.parent_exists:
        raise PgreplError(f"data_dir: the parent directory of {path!r} does not exist: create it first "
                          "(the copy is made in a sibling directory and renamed into place)")
    if facts.is_symlink:
        raise PgreplError(f"data_dir is a symlink to {facts.symlink_target}: give the real path "
                          f"(data_dir: {path!r}); cloning through a symlink replaces the link, not its target")
    if facts.exists and not facts.is_dir:
        raise PgreplError(f"data_dir: {path!r} exists and is not a directory")
    if not facts.exists:
        return
    if "PG_VERSION" not in facts.entries and (facts.has_postgresql_conf or facts.has_pg_hba_conf):
        present = (("postgresql.conf", facts.has_postgresql_conf), ("pg_hba.conf", facts.has_pg_hba_conf))
        found = " and ".join(name for name, there in present if there)
        raise PgreplError(f"data_dir: {path!r} looks like a PostgreSQL configuration directory (it has {found} but "
                          "no PG_VERSION), such as Debian's /etc/postgresql/N/main: give the data directory "
                          "(for example /var/lib/postgresql/N/main)")
    if facts.nested_cluster:
        raise PgreplError(f"data_dir: {path!r} holds another cluster at {facts.nested_cluster!r}: give the "
                          "cluster's own directory, not a parent of one")


# ---------------------------------------------------------------------------------------------------------------
# the decision (pure)
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DirState:
    """What data_dir holds, relative to the primary."""

    kind: str
    system_identifier: str | None = None
    pg_version: str | None = None

    def describe(self) -> str:
        if self.kind in (STATE_OTHER_CLUSTER, STATE_FORMER_PRIMARY):
            if self.system_identifier:
                return f"{self.kind}({self.system_identifier})"
            if self.pg_version:
                return f"{self.kind}(PostgreSQL {self.pg_version})"
        return self.kind


def classify(facts: DirFacts, primary_sysid: str, primary_major: str, dir_sysid: str | None,
             has_signal: bool) -> DirState:
    """data_dir's state from its facts and (for a cluster of the primary's major) its system identifier."""
    if not facts.exists:
        return DirState(STATE_MISSING)
    if facts.empty:
        return DirState(STATE_EMPTY)
    if facts.pg_version is None or not facts.has_pg_control:
        return DirState(STATE_FILES, pg_version=facts.pg_version)
    if facts.pg_version == primary_major and dir_sysid == primary_sysid:
        return DirState(STATE_STANDBY if has_signal else STATE_FORMER_PRIMARY, dir_sysid, facts.pg_version)
    return DirState(STATE_OTHER_CLUSTER, dir_sysid, facts.pg_version)


@dataclass(frozen=True)
class Decision:
    """'kept' (nothing to do) or 'clone'; whether the old directory moves aside; whether to clone in place."""

    action: str
    move_old_aside: bool = False
    in_place: bool = False


def decide(state: DirState, facts: DirFacts, move_aside: bool, force_reclone: bool,
           ignore_running: bool = False, replace_existing_data: bool = False) -> Decision:
    """The action for this state and these options, or a PgreplError saying why it is refused.

    ``ignore_running`` (preflight): a running server is reported, not refused, since the caller stops it next.
    ``replace_existing_data``: the user's consent to replace another cluster that holds more than initdb made.
    """
    path = facts.path
    if state.kind == STATE_MISSING:
        return Decision("clone")
    if state.kind == STATE_EMPTY:
        return Decision("clone", in_place=facts.is_mount)
    if state.kind == STATE_STANDBY and not force_reclone:
        return Decision("kept")
    if state.kind == STATE_FORMER_PRIMARY and not force_reclone:
        raise PgreplError(
            f"data_dir holds a former primary of the same cluster (system identifier {state.system_identifier}): "
            "rejoin it with pg_rewind (pgrepl.streaming.rejoin) or set force_reclone "
            f"(data_dir: {path!r} has no standby.signal or recovery.signal)")
    what = {
        STATE_STANDBY: f"a copy of this primary (system identifier {state.system_identifier})",
        STATE_FORMER_PRIMARY: f"a former primary of this cluster (system identifier {state.system_identifier})",
        STATE_OTHER_CLUSTER: "another cluster (" + (f"system identifier {state.system_identifier}"
                                                    if state.system_identifier
                                                    else f"PostgreSQL {state.pg_version}") + ")",
        STATE_FILES: f"{len(facts.entries)} entries that are not a PostgreSQL cluster of the primary's version",
    }[state.kind]
    if facts.postmaster_running and not ignore_running:
        raise PgreplError(f"data_dir: {path!r} holds {what} and a server is running on it (postmaster.pid names "
                          f"the live process {facts.postmaster_pid}): stop the server first; this module never "
                          "stops servers")
    if state.kind == STATE_OTHER_CLUSTER and facts.holdings and not replace_existing_data:
        running = (f", and its server is running (pid {facts.postmaster_pid}): replacing it is an outage of that "
                   "cluster" if facts.postmaster_running else "")
        raise PgreplError(f"data_dir: {path!r} holds {what} that is not a freshly created package cluster: it has "
                          f"{'; '.join(facts.holdings)}{running}. It is replaced (its server stopped, the directory "
                          "moved aside, never deleted) only when you say so: set replace_existing_data: true (the "
                          "roles' pgrepl_replace_existing_data: true for this host), or give another data_dir. "
                          "Nothing was stopped or changed")
    if not move_aside:
        option = "force_reclone is true but move_aside" if force_reclone else "move_aside"
        raise PgreplError(f"data_dir: {path!r} holds {what} and {option} is false: nothing was changed; "
                          "set move_aside: true to rename it aside (it is never deleted), or empty it yourself")
    if facts.is_mount:
        raise PgreplError(f"data_dir: {path!r} is a mount point and holds {what}: a mount point cannot be renamed "
                          "aside; move its contents away yourself, or use a directory below the mount point")
    return Decision("clone", move_old_aside=True)


# ---------------------------------------------------------------------------------------------------------------
# names of the sibling directories
# ---------------------------------------------------------------------------------------------------------------


def utc_stamp(now: float) -> str:
    """20250131T235959Z"""
    return time.strftime(STAMP_FORMAT, time.gmtime(now))


def sibling_name(data_dir: str, infix: str, stamp: str, exists: Callable[[str], bool] = os.path.lexists) -> str:
    """<data_dir><infix><stamp>, with -1, -2... appended when that name is taken."""
    base = f"{data_dir.rstrip('/')}{infix}{stamp}"
    candidate = base
    counter = 0
    while exists(candidate):
        counter += 1
        candidate = f"{base}-{counter}"
    return candidate


def moved_aside_dirs(data_dir: str) -> list[str]:
    """Old data directories earlier copies moved aside (never removed by this module)."""
    return sorted(glob.glob(glob.escape(data_dir.rstrip("/")) + MOVED_INFIX + "*"))


def stale_clone_dirs(data_dir: str) -> list[str]:
    """What interrupted runs left beside data_dir: copies being written, and finished ones not swapped in yet."""
    base = glob.escape(data_dir.rstrip("/"))
    return sorted(glob.glob(base + CLONE_INFIX + "*") + glob.glob(base + READY_INFIX + "*"))


def processes_using(path: str, proc: str = "/proc") -> list[int]:
    """PIDs of live processes whose command line names path or something below it (a pg_basebackup -D path an
    older run left running)."""
    found = []
    needle = path.rstrip("/").encode()
    for entry in os.listdir(proc):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(os.path.join(proc, entry, "cmdline"), "rb") as handle:
                args = handle.read().split(b"\0")
        except OSError:
            continue
        if any(arg == needle or arg.startswith(needle + b"/") for arg in args):
            found.append(int(entry))
    return found


# ---------------------------------------------------------------------------------------------------------------
# the primary, through a physical replication connection
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PrimaryFacts:
    system_identifier: str
    timeline: int
    xlogpos: str
    server_version: int
    # None: not checked (server older than 15 or no slot_name); "" : missing; else the slot's type.
    slot_type: str | None = None

    @property
    def major(self) -> str:
        return str(self.server_version // 10000)


def explain_replication_error(request: CloneRequest, failure: ConnectFailure) -> str:
    """The connection failure as a sentence naming the primary, the user, the cause (from libpq's facts, never from
    the words, which follow the primary's lc_messages) and the server's own words."""
    target = describe_primary(request)
    hints = {
        "password": f"the password for {request.replication_user} in passfile {request.passfile} is wrong",
        "no_password": (f"passfile {request.passfile} has no line matching "
                        f"{request.primary_host}:{request.primary_port}:replication:{request.replication_user}"),
        "hba": (f"the primary's pg_hba.conf has no 'replication' line admitting {request.replication_user} from "
                "this host (or the role does not exist)"),
        "privilege": f"the role {request.replication_user} is missing or lacks the REPLICATION attribute",
        "login_refused": f"the role {request.replication_user} may not log in",
        "tls": f"TLS negotiation failed with sslmode={request.sslmode}",
    }
    state = f" (SQLSTATE {failure.sqlstate})" if failure.sqlstate else ""
    hint = hints[failure.cause] + state if failure.cause in hints else describe_failure(failure)
    return (f"cannot open a replication connection to the primary ({target}): {hint}; nothing was changed. "
            f"Server said: {failure.text}")


def _result_rows(result: Any) -> list[dict[str, str | None]]:
    names = [(result.fname(index) or b"").decode("utf-8", "replace") for index in range(result.nfields)]
    rows = []
    for row in range(result.ntuples):
        values: dict[str, str | None] = {}
        for index, name in enumerate(names):
            raw = result.get_value(row, index)
            values[name] = None if raw is None else bytes(raw).decode("utf-8", "replace")
        rows.append(values)
    return rows


def replication_command(conn: Any, command: str) -> list[dict[str, str | None]]:
    """A replication command over the simple query protocol (a walsender refuses the extended one)."""
    result = conn.pgconn.exec_(command.encode("ascii"))
    if result.status != psycopg.pq.ExecStatus.TUPLES_OK:
        message = (result.error_message or b"").decode("utf-8", "replace").strip()
        raise PgreplError(f"{command.split()[0]} failed on the primary: {message or 'no result'}")
    return _result_rows(result)


def connect_replication(request: CloneRequest, connect: Callable[..., Any] | None = None) -> Any:
    if psycopg is None:
        raise PgreplError("the Python library psycopg (version 3) is required on the managed host")
    opener = connect or psycopg.connect
    # replication=true: a physical replication connection (a walsender), what pg_basebackup opens. The server
    # ignores dbname there, but libpq matches passfile lines on it: pg_basebackup and the standby's walreceiver
    # both send dbname=replication, so this test finds exactly the passfile line they will use.
    kwargs: dict[str, Any] = dict(conninfo_pairs(request))
    kwargs.update(replication="true", dbname="replication", autocommit=True)
    try:
        return opener(**kwargs)
    except psycopg.Error as exc:
        libpq = {key: value for key, value in kwargs.items() if key != "autocommit"}
        raise PgreplError(explain_replication_error(request, diagnose_connect_error(libpq, exc))) from None


def probe_primary(request: CloneRequest, connect: Callable[..., Any] | None = None) -> PrimaryFacts:
    """IDENTIFY_SYSTEM (and READ_REPLICATION_SLOT on 15+) with the real credentials; read-only."""
    conn = connect_replication(request, connect)
    try:
        rows = replication_command(conn, "IDENTIFY_SYSTEM")
        if not rows or not rows[0].get("systemid") or not rows[0].get("timeline"):
            raise PgreplError(f"IDENTIFY_SYSTEM on the primary ({describe_primary(request)}) returned no system "
                              "identifier")
        version = int(conn.pgconn.server_version)
        slot_type: str | None = None
        if request.slot_name and version >= READ_SLOT_MIN_VERSION:
            # slot_name matched ^[a-z0-9_]{1,63}$, so it is a plain quoted identifier.
            slot_rows = replication_command(conn, f'READ_REPLICATION_SLOT "{request.slot_name}"')
            slot_type = (slot_rows[0].get("slot_type") if slot_rows else None) or ""
        return PrimaryFacts(
            system_identifier=str(rows[0]["systemid"]),
            timeline=int(str(rows[0]["timeline"])),
            xlogpos=str(rows[0].get("xlogpos") or ""),
            server_version=version,
            slot_type=slot_type,
        )
    finally:
        conn.close()


def slot_problem(request: CloneRequest, primary: PrimaryFacts) -> str | None:
    """Why the slot cannot be used (missing, logical), or None when it is fine or could not be checked."""
    if not request.slot_name or primary.slot_type is None:
        return None
    if primary.slot_type == "":
        return (f"slot_name: the replication slot {request.slot_name!r} does not exist on the primary "
                f"({request.primary_host}:{request.primary_port})")
    if primary.slot_type != "physical":
        return (f"slot_name: {request.slot_name!r} is a {primary.slot_type} slot on the primary; a standby needs a "
                "physical slot")
    return None


# ---------------------------------------------------------------------------------------------------------------
# pg_basebackup
# ---------------------------------------------------------------------------------------------------------------


def basebackup_command(binary: str, target: str, request: CloneRequest,
                       mappings: tuple[tuple[str, str], ...] = ()) -> list[str]:
    """pg_basebackup that writes standby.signal and primary_conninfo, streams WAL, never prompts; mappings: the
    tablespaces written elsewhere than the primary's path (primary's path, where this copy writes it)."""
    cmd = [binary, "-D", target, "-R", "-X", "stream", f"--checkpoint={request.checkpoint}", "-P", "-v", "-w",
           "-d", clone_conninfo(request)]
    cmd += [mapping_argument(source, written) for source, written in mappings if source != written]
    if request.slot_name:
        cmd += ["-S", request.slot_name]
    if request.max_rate:
        cmd.append(f"--max-rate={request.max_rate}")
    return cmd


def error_lines(lines: list[str]) -> list[str]:
    """The lines of pg_basebackup's output that say what went wrong (the last lines when none match)."""
    picked = [line for line in lines if _ERROR_LINE_RE.search(line)]
    return (picked or lines)[-5:]


# ---------------------------------------------------------------------------------------------------------------
# the run
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class CloneContext:
    """What the steps share."""

    request: CloneRequest
    user: OsUser
    euid: int
    warnings: list[str] = field(default_factory=list)
    # How long pg_basebackup itself ran (the copy, without the checks, stop, verification and swap around it).
    basebackup_seconds: float | None = None


def _data_dir_sysid(facts: DirFacts, request: CloneRequest, primary_major: str,
                    warnings: list[str]) -> tuple[str | None, bool]:
    """(system identifier, has standby.signal or recovery.signal) of an existing cluster in data_dir."""
    if facts.pg_version is None or not facts.has_pg_control:
        return None, False
    same_major = facts.pg_version == primary_major
    try:
        dir_facts, dir_warnings = read_data_dir(facts.path, request.bin_dir if same_major else None)
    except PgreplError as exc:
        if same_major:
            raise PgreplError(f"data_dir: cannot read the system identifier of {facts.path!r}, so whether it already "
                              f"is a copy of this primary cannot be told: {exc}") from None
        warnings.append(f"data_dir: {facts.path!r} holds a PostgreSQL {facts.pg_version} cluster that could not be "
                        f"read: {exc}")
        return None, False
    has_signal = bool(dir_facts.get("standby_signal") or dir_facts.get("recovery_signal"))
    sysid = dir_facts.get("system_identifier")
    if sysid is None and same_major:
        raise PgreplError(f"data_dir: {facts.path!r} is a PostgreSQL {facts.pg_version} cluster but no "
                          f"pg_controldata of that version was found to read its system identifier: set bin_dir "
                          f"({'; '.join(dir_warnings)})")
    return sysid, has_signal


def verify_copy(path: str, request: CloneRequest, primary: PrimaryFacts) -> None:
    """The new copy must be of this primary, a standby, with no password in primary_conninfo."""
    facts, warnings = read_data_dir(path, request.bin_dir)
    if facts.get("system_identifier") is None:
        raise PgreplError(f"cannot read the system identifier of the copy in {path!r}: {'; '.join(warnings)}")
    if facts.get("system_identifier") != primary.system_identifier:
        raise PgreplError(f"the copy in {path!r} has system identifier {facts.get('system_identifier')}, not the "
                          f"primary's {primary.system_identifier}")
    if not os.path.isfile(os.path.join(path, "standby.signal")):
        raise PgreplError(f"the copy in {path!r} has no standby.signal (pg_basebackup -R did not write it)")
    auto_conf = os.path.join(path, "postgresql.auto.conf")
    try:
        with open(auto_conf, encoding="utf-8", errors="replace") as handle:
            text = handle.read()
    except OSError as exc:
        raise PgreplError(f"cannot read {auto_conf!r} of the copy: {exc.strerror or exc}") from None
    settings = ConfFile.parse(text)
    conninfo = settings.get("primary_conninfo") or ""
    if has_password(conninfo) or mentions_password(text):
        raise PgreplError(f"the copy's {auto_conf} holds a password in primary_conninfo: refusing to keep it "
                          "(the copy was removed); the password must come only from the passfile")
    if request.slot_name and settings.get("primary_slot_name") != request.slot_name:
        raise PgreplError(f"the copy's {auto_conf} does not name primary_slot_name {request.slot_name!r}")


def _remove_tree(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)


def _empty_dir(path: str) -> None:
    """Remove what a failed in-place clone wrote into a directory that was empty before."""
    try:
        names = os.listdir(path)
    except OSError:
        return
    for name in names:
        entry = os.path.join(path, name)
        if os.path.isdir(entry) and not os.path.islink(entry):
            shutil.rmtree(entry, ignore_errors=True)
        else:
            try:
                os.unlink(entry)
            except OSError:
                pass


def _prepare_target(path: str, ctx: CloneContext, create: bool, option: str = "data_dir") -> None:
    try:
        if create:
            os.mkdir(path, 0o700)
        if ctx.euid == 0:
            os.chown(path, ctx.user.uid, ctx.user.gid)
        os.chmod(path, 0o700)
    except OSError as exc:
        raise PgreplError(f"{option}: cannot prepare {path!r} for the copy: {exc.strerror or exc}") from None


# ---------------------------------------------------------------------------------------------------------------
# tablespaces (the decisions are in _tablespaces)
# ---------------------------------------------------------------------------------------------------------------


def plan_tablespaces(ctx: CloneContext, decision: Decision) -> list[Target]:
    """Where each tablespace of the primary goes and how, or a PgreplError before anything stops or changes."""
    request = ctx.request
    spaces = request.tablespaces
    if spaces is None:
        spaces = tuple(Tablespace(key) for key in request.tablespace_map)
    else:
        for key in unused_keys(spaces, request.tablespace_map):
            ctx.warnings.append(f"tablespace_map: {key!r} is no tablespace of the primary: not used")
    pairs = mapped(spaces, request.tablespace_map)
    problems = path_problems(pairs, request.data_dir)
    if problems:
        raise PgreplError("tablespace_map: " + "; ".join(problems) + ". Nothing was stopped or changed")
    # The tablespaces of the data directory being replaced: copied beside and swapped in like it.
    ours = {os.path.normpath(link) for link in tablespace_links(request.data_dir).values()
            if os.path.isabs(link)} if decision.move_old_aside else set()
    targets = []
    for space, path in pairs:
        facts = read_target_facts(path, ctx.user.uid)
        target = decide_target(space, facts, path in ours, decision.move_old_aside)
        reach = facts.anchor if target.how == IN_PLACE else os.path.dirname(path)
        if not user_can(ctx.user, "-x", reach, ctx.euid):
            raise PgreplError(f"tablespace {space.location!r}: os_user {ctx.user.name!r} cannot reach {reach!r} (a "
                              f"directory on the way is not searchable by that user), so it could not use {path!r}. "
                              "Nothing was stopped or changed")
        targets.append(target)
    return targets


@dataclass
class TablespaceRun:
    """What one copy did to the tablespace targets: where pg_basebackup writes each, what to undo, what moved."""

    targets: list[Target]
    write: dict[str, str] = field(default_factory=dict)
    made: list[str] = field(default_factory=list)
    emptied: list[str] = field(default_factory=list)
    moved: dict[str, str] = field(default_factory=dict)
    # The data directory whose tablespaces were moved aside (its links follow them).
    old_data_dir: str | None = None

    def mappings(self) -> tuple[tuple[str, str], ...]:
        return tuple((target.source, self.write[target.path]) for target in self.targets)

    def undo(self) -> None:
        """Put every target back as it was (swaps reversed, the old data directory's links with them, new
        directories removed, emptied ones emptied)."""
        for path, moved in reversed(list(self.moved.items())):
            with contextlib.suppress(OSError):
                if os.path.lexists(path):
                    os.rename(path, self.write[path])
                if self.old_data_dir:
                    relink(self.old_data_dir, {moved: path})
                os.rename(moved, path)
        self.moved.clear()
        for path in self.made:
            _remove_tree(path)
        for path in self.emptied:
            _empty_dir(path)


def prepare_tablespaces(ctx: CloneContext, targets: list[Target], stamp: str) -> TablespaceRun:
    """Each target made ready for pg_basebackup: created (parents 0755, the target 0700 of the OS user) or set to
    0700 of the OS user when empty; a sibling for a swapped one. Temporary copies interrupted runs left are
    removed first (this run holds the data directory's lock)."""
    run = TablespaceRun(targets)
    try:
        for target in targets:
            for stale in stale_clone_dirs(target.path):
                _remove_tree(stale)
                ctx.warnings.append(f"removed {stale!r}, a temporary tablespace copy an interrupted run left")
            option = f"tablespace {target.source!r}"
            if target.how == SWAP:
                written = sibling_name(target.path, CLONE_INFIX, stamp)
                _prepare_target(written, ctx, create=True, option=option)
                run.made.append(written)
            else:
                written = target.path
                if os.path.lexists(written):
                    _prepare_target(written, ctx, create=False, option=option)
                    run.emptied.append(written)
                else:
                    try:
                        os.makedirs(os.path.dirname(written), 0o755, exist_ok=True)
                    except OSError as exc:
                        raise PgreplError(f"{option}: cannot create the parents of {written!r}: "
                                          f"{exc.strerror or exc}") from None
                    _prepare_target(written, ctx, create=True, option=option)
                    run.made.append(written)
            run.write[target.path] = written
    except PgreplError:
        run.undo()
        raise
    return run


def swap_tablespaces(run: TablespaceRun, stamp: str, old_data_dir: str) -> None:
    """The copies written beside their targets renamed in, the old directories moved aside (never deleted) and the
    old data directory's links pointed at them at once: whenever a run is cut off, the old data directory names
    its own tablespaces (a target holding a new copy then is no longer its own, and is refused, not used)."""
    run.old_data_dir = old_data_dir
    for target in run.targets:
        if target.how != SWAP:
            continue
        moved = sibling_name(target.path, MOVED_INFIX, stamp)
        try:
            os.rename(target.path, moved)
        except OSError as exc:
            raise PgreplError(f"tablespace {target.source!r}: cannot move {target.path!r} aside to {moved!r}: "
                              f"{exc.strerror or exc}") from None
        run.moved[target.path] = moved
        try:
            relink(old_data_dir, {target.path: moved})
        except OSError as exc:
            raise PgreplError(f"tablespace {target.source!r}: cannot point the old data directory's link at "
                              f"{moved!r}: {exc.strerror or exc}") from None
        try:
            os.rename(run.write[target.path], target.path)
        except OSError as exc:
            raise PgreplError(f"tablespace {target.source!r}: cannot rename the copy into {target.path!r}: "
                              f"{exc.strerror or exc}") from None
        fsync_dir(os.path.dirname(target.path), quiet=True)


def execute_clone(ctx: CloneContext, binary: str, primary: PrimaryFacts, decision: Decision,
                  moved_to: str | None, tmp: str, spaces: TablespaceRun | None = None, stamp: str = "") -> list[str]:
    """Clone into tmp (or in place) and the tablespaces into their prepared places, verify, swap; returns
    pg_basebackup's output lines."""
    request = ctx.request
    target = request.data_dir if decision.in_place else tmp
    spaces = spaces or TablespaceRun([])
    try:
        _prepare_target(target, ctx, create=not decision.in_place)
    except PgreplError:
        spaces.undo()
        raise

    def undo() -> None:
        if decision.in_place:
            _empty_dir(target)
        else:
            _remove_tree(target)
        spaces.undo()

    where = "data_dir is untouched" if not decision.in_place else "data_dir was emptied again"
    # Beside data_dir while pg_basebackup runs (the standby role prints it), gone when it ends.
    progress = ProgressFile(request.data_dir, request.max_rate)
    copy_started = time.monotonic()
    try:
        outcome = run_as(ctx.user, basebackup_command(binary, target, request, spaces.mappings()), request.timeout,
                         ctx.euid,
                         on_line=progress.feed)
    except PgreplError:
        undo()
        raise
    finally:
        progress.close()
        ctx.basebackup_seconds = round(time.monotonic() - copy_started, 2)
    if outcome.timed_out:
        undo()
        raise PgreplError(f"pg_basebackup from the primary ({describe_primary(request)}) did not finish within "
                          f"timeout={request.timeout}s and was stopped; the temporary copy was removed and {where}. "
                          f"Last output: {' | '.join(outcome.lines[-3:])}")
    if outcome.returncode != 0:
        undo()
        raise PgreplError(f"pg_basebackup from the primary ({describe_primary(request)}) failed (exit "
                          f"{outcome.returncode}): {' | '.join(error_lines(outcome.lines))}; the temporary copy was "
                          f"removed and {where}")
    try:
        verify_copy(target, request, primary)
    except PgreplError:
        undo()
        raise
    if decision.in_place:
        return outcome.lines
    # The server may have been started while we copied: never rename a live data directory (or its
    # tablespaces).
    if moved_to and read_postmaster(request.data_dir)["postmaster_running"]:
        undo()
        raise PgreplError(f"data_dir: a server was started on {request.data_dir!r} during the clone: stop it first; "
                          "the new copy was removed and data_dir is untouched")
    # The old tablespaces moved aside and the new ones renamed in first: then the copy's links, which name the
    # places pg_basebackup wrote to, are named by the targets' paths before the copy becomes ready.
    try:
        swap_tablespaces(spaces, stamp or utc_stamp(time.time()), request.data_dir)
        relink(target, {spaces.write[path]: path for path in spaces.write if spaces.write[path] != path})
    except (PgreplError, OSError) as exc:
        undo()
        raise PgreplError(f"{exc}; the new copy was removed, the tablespaces put back and data_dir is "
                          "untouched") from None
    # Finished and verified: named so before the swap (see READY_INFIX); undo() removes it under its new name.
    ready = sibling_name(request.data_dir, READY_INFIX, tmp[len(request.data_dir.rstrip("/") + CLONE_INFIX):])
    try:
        os.rename(tmp, ready)
    except OSError as exc:
        undo()
        raise PgreplError(f"data_dir: cannot rename the copy {tmp!r} to {ready!r}: {exc.strerror or exc}; the copy "
                          "was removed and data_dir is untouched") from None
    target = tmp = ready
    parent = os.path.dirname(request.data_dir)
    if moved_to:
        try:
            os.rename(request.data_dir, moved_to)
        except OSError as exc:
            undo()
            raise PgreplError(f"data_dir: cannot move {request.data_dir!r} aside to {moved_to!r}: "
                              f"{exc.strerror or exc}; the new copy was removed and data_dir is untouched") from None
    try:
        os.rename(tmp, request.data_dir)
    except OSError as exc:
        restored = ""
        if moved_to:
            try:
                os.rename(moved_to, request.data_dir)
                restored = " and the old data_dir was put back"
            except OSError:
                restored = f"; the old data_dir stays at {moved_to!r}"
        undo()
        detail = "it is not empty any more" if exc.errno in (errno.ENOTEMPTY, errno.EEXIST) else exc.strerror
        raise PgreplError(f"data_dir: cannot rename the copy into {request.data_dir!r} ({detail}): the copy was "
                          f"removed{restored}") from None
    fsync_dir(parent, quiet=True)
    return outcome.lines


def _record(tracker: ChangeTracker, before_state: str, after_state: str, moved_to: str | None) -> None:
    tracker.record("data_dir_state", before_state, after_state)
    tracker.record("moved_aside_to", None, moved_to)


def run_standby_clone(module: Any) -> dict[str, Any]:
    """The module body: validate, prove the connection, decide, then clone (or predict it in check mode). A real
    run that has something to do takes the data directory's lock first and holds it to the end (two runs never
    copy into the same place at once); a refusal before that leaves no lock file behind."""
    with contextlib.ExitStack() as held:
        return _clone_body(module, request_from_params(module.params), held)


def settle_stale_dirs(request: CloneRequest, primary: PrimaryFacts, data_dir_exists: bool, apply: bool,
                      warnings: list[str]) -> str | None:
    """What interrupted runs left beside data_dir, under the lock (no live module writes them, and no program
    outlives its module): a finished copy whose swap was cut off (data_dir missing) is put in place, and its name
    returned; the rest is removed. A program an older run left still writing one is refused (nothing changed)."""
    resumed = None
    for path in stale_clone_dirs(request.data_dir):
        users = processes_using(path)
        if users:
            raise PgreplError(f"data_dir: {path!r}, a copy an interrupted run left, is still in use by pid "
                              f"{', '.join(map(str, users))} (a pg_basebackup of that run?): stop it first; nothing "
                              "was changed")
        if not apply:
            warnings.append(f"a real run removes {path!r}, a temporary copy an interrupted run left"
                            if resumed or data_dir_exists or CLONE_INFIX in os.path.basename(path) else
                            f"a real run puts {path!r}, a finished copy whose swap was cut off, in place if it is "
                            "still one of this primary")
            continue
        if resumed is None and not data_dir_exists and READY_INFIX in os.path.basename(path):
            try:
                verify_copy(path, request, primary)
            except PgreplError as exc:
                warnings.append(f"{path!r} is not a usable copy of this primary ({exc}): removed")
            else:
                os.rename(path, request.data_dir)
                fsync_dir(os.path.dirname(request.data_dir.rstrip("/")), quiet=True)
                resumed = path
                continue
        _remove_tree(path)
        warnings.append(f"removed {path!r}, a temporary copy an interrupted run left")
    return resumed


def restart_after_failure(request: CloneRequest, error: PgreplError) -> PgreplError:
    """The failure of a copy after this call stopped the server: start it again when its data directory is intact
    (every failure path puts it back), and say so; a standby must not stay down because a copy failed."""
    facts = inspect_data_dir(request.data_dir)
    if not facts.exists or not facts.has_pg_control or facts.postmaster_running:
        return error
    try:
        systemctl("start", request.stop_service or "", "stop_service", timeout=request.stop_timeout)
    except PgreplError as exc:
        return PgreplError(f"{error}; starting {request.stop_service} again (it was stopped for the copy) failed "
                           f"too: {exc}")
    return PgreplError(f"{error}; {request.stop_service} was started again on its own data directory (it was "
                       "stopped for the copy)")


def check_space(request: CloneRequest, decision: Decision, stale: list[str], targets: list[Target] | None = None,
                stale_tablespaces: bool = False) -> None:
    """Refuse a copy that does not fit on the filesystems that receive it (the data directory's and each
    tablespace target's, added up where they share one), before anything stops. The old directories stay (moved
    aside), so only the temporary copies a real run removes first count as freed (stale: empty once they are
    removed; stale_tablespaces: count the tablespaces' too, as check mode and preflight do)."""
    if request.data_size is None or not request.space_check:
        return
    targets = targets or []
    in_tablespaces = sum(target.size or 0 for target in targets)
    where = request.data_dir if decision.in_place else os.path.dirname(request.data_dir.rstrip("/"))
    needs = [SpaceNeed(where, max(request.data_size - in_tablespaces, 0), True, [], stale,
                       moved_aside_dirs(request.data_dir))]
    for target in targets:
        if target.how == SWAP:
            path = os.path.dirname(target.path)
        else:
            path = target.path
            while not os.path.isdir(path) and path != "/":
                path = os.path.dirname(path)
        needs.append(SpaceNeed(path, target.size or 0, False, [target.path],
                               stale_clone_dirs(target.path) if stale_tablespaces else [],
                               moved_aside_dirs(target.path)))
    for need in group_by_filesystem(needs):
        problem = space_problem(gather_space_facts(need.data_size, need.path, need.stale or [],
                                                   need.moved_aside or [], wal=need.wal,
                                                   tablespaces=tuple(need.tablespaces or ())))
        if problem:
            raise PgreplError(problem)


SLOT_ADVICE = "create it first (pgrepl.streaming.replication_slot); this module never creates slots"


def pg_basebackup_of(request: CloneRequest, primary: PrimaryFacts) -> str:
    return find_binary(BASEBACKUP, primary.major, request.bin_dir, of="the primary",
                       advice="install the PostgreSQL {major} client/server package or set bin_dir")


def clone_refusals(request: CloneRequest, primary: PrimaryFacts, problem: str | None) -> None:
    """What refuses a copy the decision asks for: no pg_basebackup of the primary's major, a missing slot."""
    pg_basebackup_of(request, primary)
    if problem:
        raise PgreplError(f"{problem}: {SLOT_ADVICE}")


def _clone_body(module: Any, request: CloneRequest, held: contextlib.ExitStack) -> dict[str, Any]:
    started = time.monotonic()
    user, euid = become_os_user(request.os_user)
    ctx = CloneContext(request=request, user=user, euid=euid)

    facts = inspect_data_dir(request.data_dir)
    check_data_dir_static(facts)
    outside_dir("passfile", request.passfile, request.data_dir, "it would be moved aside with the data directory")
    check_client_passfile(request.passfile, user, euid, "pg_basebackup")
    parent = os.path.dirname(request.data_dir)
    if not user_can(user, "-x", parent, euid):
        raise PgreplError(f"data_dir: os_user {user.name!r} cannot reach {parent!r} (a directory on the way is not "
                          "searchable by that user), so pg_basebackup could not write the copy there")

    removed = scrub_libpq_env(os.environ)
    if removed:
        ctx.warnings.append(f"ignored the environment variables {', '.join(removed)}: the replication connection "
                            "uses only this module's options and the passfile")
    primary = probe_primary(request)

    def decide_from(facts: DirFacts) -> tuple[DirState, Decision]:
        dir_sysid, has_signal = _data_dir_sysid(facts, request, primary.major, ctx.warnings)
        state = classify(facts, primary.system_identifier, primary.major, dir_sysid, has_signal)
        # A running server is refused, unless this call is a preflight or stops it itself once every check passed.
        return state, decide(state, facts, request.move_aside, request.force_reclone,
                             ignore_running=request.preflight or request.stop_service is not None,
                             replace_existing_data=request.replace_existing_data)

    state, decision = decide_from(facts)
    stale = stale_clone_dirs(request.data_dir)
    applying = not (module.check_mode or request.preflight)
    problem = slot_problem(request, primary)
    if applying and decision.action != "kept":
        # Refusals before the lock (which leaves its file beside data_dir): a refused run changes nothing at all.
        clone_refusals(request, primary, problem)
    resumed = None
    if applying and (stale or decision.action != "kept"):
        held.enter_context(data_dir_lock(request.data_dir, "pgrepl.streaming.standby_clone"))
        # A progress file a killed run left (no live run writes it: this one holds the lock).
        remove_files([progress_path(request.data_dir)])
        # Decided again from what data_dir holds now that no other run works on it.
        resumed = settle_stale_dirs(request, primary, os.path.lexists(request.data_dir), True, ctx.warnings)
        facts = inspect_data_dir(request.data_dir)
        state, decision = decide_from(facts)
        ctx.warnings[:] = list(dict.fromkeys(ctx.warnings))  # the second look repeats the first one's
    elif stale:
        settle_stale_dirs(request, primary, facts.exists, False, ctx.warnings)

    tracker = ChangeTracker(module.check_mode)
    result: dict[str, Any] = {
        "changed": False,
        "outcome": "kept",
        "moved_aside_to": None,
        "data_dir_state": state.describe(),
        "system_identifier": primary.system_identifier,
        "primary_timeline": primary.timeline,
        "primary_major": int(primary.major),
        "duration_seconds": 0.0,
        "log": [],
        "slot_name": request.slot_name,
        "application_name": request.application_name,
        "pg_basebackup": None,
        "basebackup_seconds": None,
        "server_running": facts.postmaster_running,
        "tablespaces": [],
    }
    if resumed:
        # The copy an interrupted run finished, put in place: the change that run did not get to report.
        result.update(changed=True, outcome="swapped_in", data_dir_state=STATE_MISSING)
        ctx.warnings.append(f"put {resumed!r} in place as data_dir: a finished copy of this primary whose swap an "
                            "interrupted run did not complete")
        _record(tracker, STATE_MISSING, state.describe(), None)
        return finish(module, result, tracker, ctx.warnings, started)
    if decision.action == "kept":
        if problem:
            ctx.warnings.append(f"{problem}: the standby in data_dir cannot stream through it until that is fixed")
        _record(tracker, state.describe(), state.describe(), None)
        return finish(module, result, tracker, ctx.warnings, started)

    binary = pg_basebackup_of(request, primary)
    result["pg_basebackup"] = binary
    if problem:
        if not module.check_mode:
            clone_refusals(request, primary, problem)
        ctx.warnings.append(f"{problem}: the clone would fail unless the slot exists by then ({SLOT_ADVICE})")
    # A real run removed the stale copies under the lock already; check mode and preflight count them as freed.
    # Every tablespace's target decided (refused here when it has none usable), before anything stops.
    targets = plan_tablespaces(ctx, decision)
    check_space(request, decision, [] if applying else stale_clone_dirs(request.data_dir), targets,
                stale_tablespaces=not applying)
    stamp = utc_stamp(time.time())
    moved_to = sibling_name(request.data_dir, MOVED_INFIX, stamp) if decision.move_old_aside else None
    tmp = sibling_name(request.data_dir, CLONE_INFIX, stamp)
    _record(tracker, state.describe(), STATE_STANDBY, moved_to)
    result["moved_aside_to"] = moved_to
    result["tablespaces"] = [
        {"location": target.source, "path": target.path, "how": target.how,
         "moved_aside_to": sibling_name(target.path, MOVED_INFIX, stamp) if target.how == SWAP else None}
        for target in targets]
    if targets:
        tracker.record("tablespaces", {target.source: None for target in targets},
                       {target.source: target.path for target in targets})
    if request.preflight:
        # Everything that can refuse has run; nothing was changed and nothing will be by this call.
        result["outcome"] = "would_clone"
        return finish(module, result, tracker, ctx.warnings, started)
    if not tracker.apply:
        result["outcome"] = "would_clone"
        result["changed"] = True
        return finish(module, result, tracker, ctx.warnings, started)
    stopped = bool(request.stop_service and facts.postmaster_running)
    if stopped:
        stop_server(request)
    try:
        spaces = prepare_tablespaces(ctx, targets, stamp)
        lines = execute_clone(ctx, binary, primary, decision, moved_to, tmp, spaces, stamp)
    except PgreplError as exc:
        if stopped and not decision.in_place:
            raise restart_after_failure(request, exc) from None
        raise
    result["outcome"] = "cloned"
    result["changed"] = True
    result["log"] = lines[-LOG_TAIL_LINES:]
    result["basebackup_seconds"] = ctx.basebackup_seconds
    return finish(module, result, tracker, ctx.warnings, started)


# The module's options, shared with node_apply (one definition for both).
STANDBY_CLONE_SPEC = ModuleSpec(
    {
        "data_dir": {"type": "path", "required": True},
        "bin_dir": {"type": "path"},
        "primary_host": {"type": "str", "required": True},
        "primary_port": {"type": "int", "default": 5432},
        "replication_user": {"type": "str", "default": "replicator"},
        "passfile": {"type": "path", "required": True},
        "slot_name": {"type": "str"},
        "application_name": {"type": "str"},
        "sslmode": {"type": "str", "default": "prefer", "choices": SSL_MODES},
        "sslrootcert": {"type": "path"},
        "os_user": {"type": "str", "default": "postgres"},
        "move_aside": {"type": "bool", "default": True},
        "checkpoint": {"type": "str", "default": "fast", "choices": ["fast", "spread"]},
        "timeout": {"type": "int", "default": 3600},
        "force_reclone": {"type": "bool", "default": False},
        "preflight": {"type": "bool", "default": False},
        "stop_service": {"type": "str"},
        "stop_timeout": {"type": "int", "default": 600},
        "data_size": {"type": "int"},
        "space_check": {"type": "bool", "default": True},
        "replace_existing_data": {"type": "bool", "default": False},
        "max_rate": {"type": "str"},
        "tablespaces": {"type": "list", "elements": "raw"},
        "tablespace_map": {"type": "dict"},
    },
    with_connection=False,
)
