# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""`make bench`: the site playbook against the setup guides' manual procedure on identical fresh containers.

Run through scripts/bench.sh, which installs the venv, builds the host image, sets the Ansible environment and
removes every pgrepl-bench-* container at the end. What is measured, the raw command list and the targets:
docs/performance.md. Options are environment variables, listed in scripts/bench.sh.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Optional

ROOT = Path(__file__).resolve().parent.parent
# The collection's own slot names and SCRAM verifiers (as scripts/deps.sh links it), the day-2 proof's docker helpers.
sys.path.insert(0, str(ROOT / ".build" / "collections"))
sys.path.insert(0, str(ROOT / "tests" / "day2"))

from bench_common import exit_status  # noqa: E402
from d2_docker import (  # noqa: E402
    DockerError,
    TimedCommands,
    dexec,
    docker,
    env_flag,
    ip_of,
    prefixed_containers,
    start_hosts,
)

from ansible_collections.pgrepl.streaming.plugins.module_utils._names import slot_name_from_host  # noqa: E402
from ansible_collections.pgrepl.streaming.plugins.module_utils._scram import build_verifier  # noqa: E402

OUT = ROOT / ".build" / "bench"
LOGS = OUT / "logs"
NET = "pgrepl-bench"
PREFIX = "pgrepl-bench-"
IMAGE = os.environ.get("PGREPL_BENCH_IMAGE", "pgrepl-test/pg15:current")
# The Debian layout of the image (PostgreSQL 15 from bookworm, cluster 15/main).
DATA_DIR = "/var/lib/postgresql/15/main"
CONF_DIR = "/etc/postgresql/15/main"
SERVICE = "postgresql@15-main"
REPL_USER = "replicator"
# A throwaway password for throwaway containers, the same on both sides.
PASSWORD = "bench-only-replication-password"
STREAM_TIMEOUT = 120
POLL = 0.2
# Targets (issue 11 item 6): a fresh 1+2 converge, psycopg install included, at most 1.3x the manual procedure; a
# converged re-run at most 0.4x; 1+4 at most 1.4x the 1+1 time (the manual procedure scales about 2.6x).
CONVERGE_MAX = 1.3
RERUN_MAX = 0.4
SCALING_MAX = 1.4
RECAP = re.compile(
    r"^(?P<host>\S+)\s+:\s+ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)"
    r"\s+failed=(?P<failed>\d+)"
)
PROFILE_LINE = re.compile(r"^(?P<task>.+?) -+ (?P<secs>\d+\.\d+)s\s*$")
# node_prepare reports how long its psycopg install took on each host (the runs are verbose, so the log holds
# every result); the longest host is the wall time the install added to the play, reported apart (it is mostly
# the mirror).
INSTALL_SECONDS = re.compile(r'"install_seconds": ([0-9.]+)')


class BenchError(Exception):
    """A step of the benchmark failed: the measurement it belongs to is not reported."""


def say(msg: str) -> None:
    print(f"[bench] {msg}", flush=True)


# --- docker --------------------------------------------------------------------------------------------------

def psql(container: str, query: str, check: bool = True) -> str:
    return dexec(container, "psql", "-X", "-A", "-t", "-q", "-c", query, user="postgres", check=check)


def bench_containers() -> list[str]:
    return prefixed_containers(PREFIX)


def remove_containers(names: list[str]) -> None:
    if names:
        docker("rm", "-f", *names, check=False)


def image_id(image: str) -> str:
    return docker("image", "inspect", "-f", "{{.Id}}", image).stdout.strip().split(":")[-1][:12]


@dataclasses.dataclass
class Cluster:
    side: str  # "site" or "raw"
    primary: str
    standbys: list[str]
    address: dict[str, str]

    @property
    def nodes(self) -> list[str]:
        return [self.primary, *self.standbys]

    @property
    def size(self) -> str:
        return f"1+{len(self.standbys)}"


def start_cluster(side: str, standbys: int) -> Cluster:
    """Fresh containers for one set; returns once PostgreSQL answers in all of them and systemd has booted."""
    names = [f"{PREFIX}{side}{standbys}-{n}" for n in range(standbys + 1)]
    # Boot finished (running or degraded) when it returns: the start-up's own work is not timed as the procedure's.
    start_hosts(names, IMAGE, NET)
    return Cluster(side, names[0], names[1:], {name: ip_of(name, NET) for name in names})


def standby_state(cluster: Cluster) -> list[str]:
    """Everything that is not right about the replication; empty when every standby streams from the primary."""
    problems = []
    for standby in cluster.standbys:
        row = psql(standby, "SELECT pg_is_in_recovery(), coalesce((SELECT status FROM pg_stat_wal_receiver), 'none')",
                   check=False)
        if row != "t|streaming":
            problems.append(f"{standby}: in recovery|wal receiver = {row or 'no answer'} (want t|streaming)")
    row = psql(cluster.primary, "SELECT (SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'), "
               "(SELECT count(*) FROM pg_replication_slots WHERE active)", check=False)
    want = f"{len(cluster.standbys)}|{len(cluster.standbys)}"
    if row != want:
        problems.append(f"{cluster.primary}: streaming walsenders|active slots = {row or 'no answer'} (want {want})")
    return problems


def verify(cluster: Cluster, what: str) -> None:
    """After a timed procedure (untimed): every standby streams, so a broken setup is never reported as fast."""
    deadline = time.monotonic() + 15
    problems = standby_state(cluster)
    while problems and time.monotonic() < deadline:
        time.sleep(1)
        problems = standby_state(cluster)
    if problems:
        raise BenchError(f"{what}: not every standby streams after it ended: " + "; ".join(problems))


# --- the site playbook ---------------------------------------------------------------------------------------

@dataclasses.dataclass
class SiteRun:
    seconds: float
    changed: int
    failed: int
    unreachable: int
    log: Path
    profile: list[tuple[str, float]]

    @property
    def package_seconds(self) -> float:
        """Wall time of the psycopg install: the slowest host's (the hosts install at once, in one task)."""
        return max((float(secs) for secs in INSTALL_SECONDS.findall(self.log.read_text())), default=0.0)


def write_inventory(cluster: Cluster) -> Path:
    """scripts/demo.sh's inventory (docker connection as root, so no become, with pipelining; groups
    primary/standby), without a synchronous standby: the manual procedure sets none."""
    path = OUT / f"inventory-{cluster.side}{len(cluster.standbys)}.yml"
    standbys = "".join(f"        {name}:\n" for name in cluster.standbys)
    path.write_text(
        "all:\n"
        "  vars:\n"
        "    ansible_connection: community.docker.docker\n"
        "    ansible_python_interpreter: /usr/bin/python3\n"
        "    ansible_become: false\n"
        "    ansible_pipelining: true\n"
        f"    pgrepl_replication_password: {PASSWORD}\n"
        "  children:\n"
        "    primary:\n"
        "      hosts:\n"
        f"        {cluster.primary}:\n"
        "    standby:\n"
        "      hosts:\n"
        f"{standbys}"
    )
    return path


def run_site(cluster: Cluster, inventory: Path, label: str, diff: bool = False, playbook: str = "pgrepl.streaming.site",
             extra: tuple[str, ...] = ()) -> SiteRun:
    """One timed ansible-playbook run; `diff` (the re-run) puts what a non-idempotent task changed in its log.

    profile_tasks is always on (its cost is a timestamp per task): the log then shows where the time went, and
    the psycopg install can be reported apart."""
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    enabled = [c for c in env.get("ANSIBLE_CALLBACKS_ENABLED", "").split(",") if c.strip()]
    env["ANSIBLE_CALLBACKS_ENABLED"] = ",".join([*enabled, "ansible.posix.profile_tasks"])
    env["PROFILE_TASKS_TASK_OUTPUT_LIMIT"] = "all"
    log = LOGS / f"{label}.log"
    start = time.monotonic()
    with log.open("w") as out:
        argv = ["ansible-playbook", "-v", "-i", str(inventory), *(["--diff"] if diff else []), *extra, playbook]
        proc = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, env=env, check=False, cwd=ROOT)
    seconds = time.monotonic() - start
    text = log.read_text()
    totals = {"changed": 0, "failed": 0, "unreachable": 0}
    recap = text.split("PLAY RECAP", 1)[-1] if "PLAY RECAP" in text else ""
    hosts = 0
    for line in recap.splitlines():
        match = RECAP.match(line.strip())
        if match:
            hosts += 1
            for key in totals:
                totals[key] += int(match.group(key))
    if proc.returncode != 0 or hosts != len(cluster.nodes):
        tail = "\n".join(text.rstrip().splitlines()[-25:])
        raise BenchError(f"{label}: ansible-playbook exited {proc.returncode} after {seconds:.1f} s "
                         f"(log: {log.relative_to(ROOT)}); its last lines:\n{tail}")
    tasks = [(m.group("task").strip(), float(m.group("secs")))
             for m in map(PROFILE_LINE.match, recap.splitlines()) if m]
    tasks.sort(key=lambda item: item[1], reverse=True)
    return SiteRun(seconds, totals["changed"], totals["failed"], totals["unreachable"], log, tasks)


# --- the manual procedure ------------------------------------------------------------------------------------

class RawRun(TimedCommands):
    """The guides' commands, each one `docker exec`, run and timed one after another; the log lists them."""

    def __init__(self, cluster: Cluster, log: Path) -> None:
        super().__init__(log, "w", secret=PASSWORD, timeout=600)
        self.cluster = cluster

    def wait_streaming(self, standby: str) -> None:
        """What the person checks after the start, again and again until it says streaming."""
        deadline = time.monotonic() + STREAM_TIMEOUT
        query = "SELECT status FROM pg_stat_wal_receiver"
        while self.run(standby, ["psql", "-X", "-A", "-t", "-c", query], user="postgres") != "streaming":
            if time.monotonic() > deadline:
                raise BenchError(f"raw {self.cluster.size}: {standby} does not stream after {STREAM_TIMEOUT} s")
            time.sleep(POLL)


def raw_procedure(cluster: Cluster, label: str) -> tuple[float, int]:
    """The setup guides' steps as a DBA types them; standbys one after another. Returns (seconds, commands)."""
    primary = cluster.primary
    verifier = build_verifier(PASSWORD)  # psql's \password computes it locally: not a command of its own
    raw = RawRun(cluster, LOGS / f"{label}.log")
    start = time.monotonic()
    try:
        # On the primary.
        raw.run(primary, ["psql", "-c", "ALTER SYSTEM SET listen_addresses = '*'"], user="postgres")
        raw.run(primary, ["psql", "-c", f"CREATE ROLE {REPL_USER} WITH REPLICATION LOGIN"], user="postgres")
        # \password: the verifier only (base64 and '$:' characters), never the password, reaches the server.
        raw.run(primary, ["psql", "-c", f"ALTER ROLE {REPL_USER} PASSWORD '{verifier}'"], user="postgres")
        for standby in cluster.standbys:
            line = f"host replication {REPL_USER} {cluster.address[standby]}/32 scram-sha-256"
            raw.run(primary, ["sh", "-c", f"echo {shlex.quote(line)} >> {CONF_DIR}/pg_hba.conf"], user="postgres")
        raw.run(primary, ["systemctl", "restart", SERVICE])
        for standby in cluster.standbys:
            slot = slot_name_from_host(standby)
            raw.run(primary, ["psql", "-c", f"SELECT pg_create_physical_replication_slot('{slot}')"],  # noqa: S608
                    user="postgres")
        # On each standby, one after another.
        pgpass = f"{primary}:5432:replication:{REPL_USER}:{PASSWORD}"
        for standby in cluster.standbys:
            raw.run(standby, ["systemctl", "stop", SERVICE])
            raw.run(standby, ["mv", DATA_DIR, f"{DATA_DIR}.orig"], user="postgres")
            raw.run(standby, ["sh", "-c", f"umask 077 && echo {shlex.quote(pgpass)} > ~/.pgpass"], user="postgres")
            raw.run(standby, ["pg_basebackup", "-h", primary, "-U", REPL_USER, "-D", DATA_DIR, "-R", "-X", "stream",
                              "-S", slot_name_from_host(standby), "--checkpoint=fast"], user="postgres")
            raw.run(standby, ["systemctl", "start", SERVICE])
            raw.wait_streaming(standby)
    finally:
        seconds = time.monotonic() - start
        raw.close()
    return seconds, raw.commands


# --- the sequence, the table ---------------------------------------------------------------------------------

@dataclasses.dataclass
class Results:
    seconds: dict[str, list[float]] = dataclasses.field(default_factory=dict)
    rerun_changed: list[int] = dataclasses.field(default_factory=list)
    raw_commands: dict[int, int] = dataclasses.field(default_factory=dict)
    errors: list[str] = dataclasses.field(default_factory=list)
    profiles: dict[str, list[tuple[str, float]]] = dataclasses.field(default_factory=dict)
    clone_size: int = 0
    clone_progress: list[str] = dataclasses.field(default_factory=list)

    def add(self, key: str, seconds: float) -> None:
        self.seconds.setdefault(key, []).append(seconds)

    def add_site(self, key: str, run: SiteRun) -> None:
        """A site run: its wall time, and the same without the psycopg install (key + '-nopkg')."""
        self.add(key, run.seconds)
        self.add(f"{key}-nopkg", run.seconds - run.package_seconds)

    def median(self, key: str) -> Optional[float]:
        values = self.seconds.get(key)
        return statistics.median(values) if values else None


def with_cluster(side: str, standbys: int, body: Callable[[Cluster], None], results: Results) -> None:
    """Fresh containers for one set, the body, then the containers go (kept on failure with PGREPL_BENCH_KEEP=1)."""
    failed = True
    cluster = None
    try:
        say(f"starting {side} 1+{standbys}: {1 + standbys} fresh containers, waiting for PostgreSQL in all")
        cluster = start_cluster(side, standbys)
        body(cluster)
        failed = False
    except (BenchError, DockerError) as exc:
        results.errors.append(str(exc))
        say(f"ERROR {exc}")
    finally:
        if cluster and not (failed and env_flag("PGREPL_BENCH_KEEP")):
            remove_containers(cluster.nodes)


def bench_site(standbys: int, rerun: bool, profile: bool, results: Results, round_: int) -> None:
    def body(cluster: Cluster) -> None:
        inventory = write_inventory(cluster)
        label = f"site-1+{standbys}"
        run = run_site(cluster, inventory, f"{label}-converge-{round_}")
        verify(cluster, f"{label} converge")
        results.add_site(f"site{standbys}", run)
        say(f"{label} converge: {run.seconds:.1f} s (changed={run.changed}, "
            f"psycopg install {run.package_seconds:.1f} s of it)")
        if profile:
            results.profiles[f"{label} converge"] = run.profile
        if not rerun:
            return
        run = run_site(cluster, inventory, f"{label}-rerun-{round_}", diff=True)
        verify(cluster, f"{label} re-run")
        results.add_site(f"rerun{standbys}", run)
        results.rerun_changed.append(run.changed)
        say(f"{label} re-run: {run.seconds:.1f} s (changed={run.changed})")
        if run.changed:
            say(f"WARNING: the re-run reported changed={run.changed}, not 0: the playbook is not idempotent "
                f"(log, with --diff: {run.log.relative_to(ROOT)})")
        if profile:
            results.profiles[f"{label} re-run"] = run.profile

    with_cluster("site", standbys, body, results)


def bench_raw(standbys: int, results: Results, round_: int) -> None:
    def body(cluster: Cluster) -> None:
        label = f"raw-1+{standbys}"
        seconds, commands = raw_procedure(cluster, f"{label}-{round_}")
        verify(cluster, f"{label} procedure")
        results.add(f"raw{standbys}", seconds)
        results.raw_commands[standbys] = commands
        say(f"{label} procedure: {seconds:.1f} s ({commands} docker exec commands, standbys one after another)")

    with_cluster("raw", standbys, body, results)


# --- a copy of a large primary: the standby role's reseed against the same raw pg_basebackup -----------------

# Target (issue 13 item 7): the copy of a primary of at least 1 GB takes at most 1.1x the raw pg_basebackup.
CLONE_MAX = 1.1
# The copy as the role runs it: the two tasks of roles/standby/tasks/copy.yml (the copy in the background and the
# wait that prints its progress), as ansible.posix.profile_tasks timed them.
CLONE_TASKS = ("Passfile and copy of the primary, in the background", "Wait for the copy, printing its progress")
RAW_CLONE_DIR = "/var/lib/postgresql/15/bench-raw"
PROGRESS_LINE = re.compile(r"^\S+ - (pg_basebackup |[0-9]+% of )")
# From the reseed's log (-v): how long pg_basebackup ran inside standby_clone, and node_apply's time of the whole
# clone item (checks, stop of the standby, copy, verification, swap).
BASEBACKUP_SECONDS = re.compile(r'"basebackup_seconds": ([0-9.]+)')
CLONE_ITEM_SECONDS = re.compile(r'"outcome": "cloned", "seconds": ([0-9.]+)')


def clone_rounds() -> int:
    return int(os.environ.get("PGREPL_BENCH_CLONE_ROUNDS", "3"))


def clone_megabytes() -> int:
    return int(os.environ.get("PGREPL_BENCH_CLONE_MB", "1200"))


def fill_primary(primary: str, megabytes: int) -> int:
    """A table of about `megabytes` MB (rows of about 170 bytes on disk); returns the primary's data size."""
    rows = megabytes * 1024 * 1024 // 170
    # rows is an int this function computed: nothing from outside reaches the statement.
    fill = ("CREATE TABLE bench_ballast AS SELECT g, repeat(md5(g::text), 4) AS pad "  # noqa: S608
            f"FROM generate_series(1, {int(rows)}) AS g")
    # Frozen and analyzed now, so no autovacuum of the new table writes (and streams WAL) during a timed copy.
    for statement in (fill, "VACUUM (FREEZE, ANALYZE) bench_ballast", "CHECKPOINT"):
        dexec(primary, "psql", "-X", "-q", "-c", statement, user="postgres", timeout=1800)
    return int(psql(primary, "SELECT sum(pg_database_size(oid)) FROM pg_database"))


def raw_clone(cluster: Cluster, address: str) -> float:
    """The module's own pg_basebackup command, typed on the standby into a new directory (a temporary slot), with
    the standby's server stopped as the reseed stops it; only the command is timed. The copy is removed and the
    server started again afterwards (untimed)."""
    standby = cluster.standbys[0]
    conninfo = (f"host={address} port=5432 user={REPL_USER} passfile=/var/lib/postgresql/.pgpass sslmode=prefer "
                "connect_timeout=10 application_name=bench_raw")
    dexec(standby, "systemctl", "stop", SERVICE)
    start = time.monotonic()
    dexec(standby, "pg_basebackup", "-D", RAW_CLONE_DIR, "-R", "-X", "stream", "--checkpoint=fast", "-P", "-v", "-w",
          "-d", conninfo, user="postgres", timeout=3600)
    seconds = time.monotonic() - start
    dexec(standby, "rm", "-rf", RAW_CLONE_DIR)
    dexec(standby, "systemctl", "start", SERVICE)
    verify(cluster, "clone raw")
    return seconds


@dataclasses.dataclass
class RoleClone:
    basebackup: float  # pg_basebackup inside standby_clone
    item: float  # node_apply's clone item: standby_clone's whole work
    tasks: float  # the two copy tasks of the role (background + clone_wait)
    playbook: float  # the whole reseed playbook
    lines: list[str]


def role_clone(cluster: Cluster, inventory: Path, label: str) -> RoleClone:
    """pgrepl.streaming.reseed of the standby, timed four ways (see RoleClone), with the progress lines it printed;
    the old data directory it moved aside is removed afterwards (untimed)."""
    standby = cluster.standbys[0]
    run = run_site(cluster, inventory, label, playbook="pgrepl.streaming.reseed",
                   extra=("-e", f"pgrepl_host={standby}"))
    copy = [secs for task, secs in run.profile if any(name in task for name in CLONE_TASKS)]
    if len(copy) != len(CLONE_TASKS):
        raise BenchError(f"{label}: the copy did not run in the background (tasks {CLONE_TASKS} not both in the "
                         f"profile; log: {run.log.relative_to(ROOT)})")
    text = run.log.read_text()
    lines = [line.strip() for line in text.splitlines() if PROGRESS_LINE.match(line.strip())]
    basebackup, item = BASEBACKUP_SECONDS.search(text), CLONE_ITEM_SECONDS.search(text)
    if basebackup is None or item is None:
        raise BenchError(f"{label}: no basebackup_seconds or clone item seconds in {run.log.relative_to(ROOT)}")
    dexec(standby, "sh", "-c", "rm -rf /var/lib/postgresql/15/main.pgrepl-moved-*")
    return RoleClone(float(basebackup.group(1)), float(item.group(1)), sum(copy), run.seconds, lines)


def bench_clone(results: Results) -> None:
    def body(cluster: Cluster) -> None:
        megabytes = clone_megabytes()
        say(f"clone: filling the primary with about {megabytes} MB")
        size = fill_primary(cluster.primary, megabytes)
        results.clone_size = size
        inventory = write_inventory(cluster)
        run_site(cluster, inventory, "clone-site")
        verify(cluster, "clone site")
        # The primary's host as the role wrote it into primary_conninfo (and into the passfile's line).
        conf = dexec(cluster.standbys[0], "cat", f"{DATA_DIR}/postgresql.auto.conf")
        found = re.search(r"host='?([^' ]+)", conf)
        address = found.group(1) if found else cluster.address[cluster.primary]
        for round_ in range(1, clone_rounds() + 1):
            # Alternating order, so that neither side always runs after the other (warm page cache).
            for side in (("raw", "role") if round_ % 2 else ("role", "raw")):
                if side == "raw":
                    seconds = raw_clone(cluster, address)
                    results.add("clone-raw", seconds)
                    say(f"clone round {round_}: raw pg_basebackup {seconds:.1f} s")
                    continue
                role = role_clone(cluster, inventory, f"clone-reseed-{round_}")
                verify(cluster, f"clone reseed {round_}")
                results.add("clone-basebackup", role.basebackup)
                results.add("clone-item", role.item)
                results.add("clone-role", role.tasks)
                results.add("clone-reseed", role.playbook)
                results.clone_progress = role.lines
                say(f"clone round {round_}: reseed - pg_basebackup {role.basebackup:.1f} s, standby_clone "
                    f"{role.item:.1f} s, copy tasks {role.tasks:.1f} s, whole playbook {role.playbook:.1f} s; "
                    f"{len(role.lines)} progress line(s)")

    with_cluster("clone", 1, body, results)


def clone_rows(results: Results) -> list[tuple[str, str, str, str, str]]:
    med = results.median
    raw = med("clone-raw")
    size = f"{results.clone_size / 1024 ** 3:.2f} GiB" if results.clone_size else "?"
    copy = ratio(med("clone-basebackup"), raw)
    rows = [
        (f"clone {size}: raw pg_basebackup", fmt(raw), "1.00", "reference", ""),
        ("reseed: its pg_basebackup (in standby_clone)", fmt(med("clone-basebackup")), fmt(copy, "x raw"),
         f"<= {CLONE_MAX}x raw", verdict(None if copy is None else copy <= CLONE_MAX)),
    ]
    for label, key in (("  standby_clone: checks, stop, copy, swap", "clone-item"),
                       ("  the role's copy tasks (background, progress)", "clone-role"),
                       ("  the whole reseed playbook", "clone-reseed")):
        rows.append((label, fmt(med(key)), fmt(ratio(med(key), raw), "x raw"), "(info)", ""))
    return rows


def verdict(ok: Optional[bool]) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "MISS")


def ratio(a: Optional[float], b: Optional[float]) -> Optional[float]:
    return a / b if a is not None and b else None


def fmt(value: Optional[float], suffix: str = "") -> str:
    return "-" if value is None else f"{value:.2f}{suffix}"


def table_rows(results: Results, sets: list[int]) -> list[tuple[str, str, str, str, str]]:
    """(measurement, seconds, ratio, target, result) rows."""
    rows: list[tuple[str, str, str, str, str]] = []
    med = results.median
    if 2 in sets:
        raw2, site2, rerun2 = med("raw2"), med("site2"), med("rerun2")
        rows.append(("1+2 raw procedure", fmt(raw2), "1.00", "reference", ""))
        conv = ratio(site2, raw2)
        rows.append(("1+2 site converge", fmt(site2), fmt(conv, "x raw"), f"<= {CONVERGE_MAX}x raw",
                     verdict(None if conv is None else conv <= CONVERGE_MAX)))
        nopkg = med("site2-nopkg")
        rows.append(("  without the psycopg install", fmt(nopkg), fmt(ratio(nopkg, raw2), "x raw"), "(info)", ""))
        rer = ratio(rerun2, raw2)
        changed = max(results.rerun_changed) if results.rerun_changed else None
        ok = None if rer is None or changed is None else (rer <= RERUN_MAX and changed == 0)
        rows.append((f"1+2 site re-run (changed={'-' if changed is None else changed})", fmt(rerun2),
                     fmt(rer, "x raw"), f"<= {RERUN_MAX}x raw, changed=0", verdict(ok)))
    for n in sets:
        if n == 2:
            continue
        rows.append((f"1+{n} raw procedure", fmt(med(f"raw{n}")), "", "", ""))
        rows.append((f"1+{n} site converge", fmt(med(f"site{n}")), fmt(ratio(med(f"site{n}"), med(f"raw{n}")), "x raw"),
                     "", ""))
        nopkg = med(f"site{n}-nopkg")
        rows.append(("  without the psycopg install", fmt(nopkg), fmt(ratio(nopkg, med(f"raw{n}")), "x raw"), "(info)",
                     ""))
    if 1 in sets and 4 in sets:
        raw_scale = ratio(med("raw4"), med("raw1"))
        site_scale = ratio(med("site4"), med("site1"))
        rows.append(("raw 1+4 / 1+1", "", fmt(raw_scale), "reference", ""))
        ok = None if site_scale is None or raw_scale is None else (site_scale <= SCALING_MAX and site_scale < raw_scale)
        rows.append(("site 1+4 / 1+1", "", fmt(site_scale), f"<= {SCALING_MAX} and < raw {fmt(raw_scale)}",
                     verdict(ok)))
        rows.append(("  without the psycopg install", "", fmt(ratio(med("site4-nopkg"), med("site1-nopkg"))), "(info)",
                     ""))
    return rows


def text_table(rows: list[tuple[str, str, str, str, str]]) -> str:
    head = ("measurement", "seconds", "ratio", "target", "result")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(5)]

    def line(row: tuple[str, ...]) -> str:
        return "  ".join(c.rjust(w) if i in (1, 2) else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths)))

    return "\n".join([line(head), "  ".join("-" * w for w in widths), *(line(r) for r in rows)])


def markdown(rows: list[tuple[str, str, str, str, str]], context: dict[str, str]) -> str:
    lines = [f"Measured {context['date']} on {context['machine']}; {context['details']}.", "",
             "| measurement | seconds | ratio | target | result |", "| --- | ---: | ---: | --- | --- |"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def psycopg_mode() -> str:
    if os.environ.get("PGREPL_BENCH_PSYCOPG", "fresh") == "preinstalled":
        return "preinstalled in the image (both sides)"
    return "installed by the playbook (timed)"


def load() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def main() -> int:
    words = os.environ.get("PGREPL_BENCH_SETS", "2 1 4 clone").replace(",", " ").split()
    clone = "clone" in words
    try:
        sets = [int(s) for s in words if s != "clone"]
        repeat = int(os.environ.get("PGREPL_BENCH_REPEAT", "1"))
        if clone and (clone_rounds() < 1 or clone_megabytes() < 1):
            raise ValueError
    except ValueError:
        print("PGREPL_BENCH_SETS: give standby counts such as '2 1 4' and/or clone; PGREPL_BENCH_REPEAT, "
              "PGREPL_BENCH_CLONE_ROUNDS, PGREPL_BENCH_CLONE_MB: whole numbers >= 1", file=sys.stderr)
        return 2
    if not (sets or clone) or any(n < 1 or n > 9 for n in sets) or len(set(sets)) != len(sets) or repeat < 1:
        print(f"PGREPL_BENCH_SETS={sets!r}: standby counts 1-9, each once; PGREPL_BENCH_REPEAT >= 1", file=sys.stderr)
        return 2
    sides = os.environ.get("PGREPL_BENCH_SIDES", "site raw").replace(",", " ").split()
    if not sides or any(side not in ("site", "raw") for side in sides):
        print(f"PGREPL_BENCH_SIDES={sides!r}: 'site', 'raw' or both", file=sys.stderr)
        return 2
    profile = env_flag("PGREPL_BENCH_PROFILE")
    LOGS.mkdir(parents=True, exist_ok=True)
    leftovers = bench_containers()
    if leftovers:
        say(f"removing leftovers: {' '.join(leftovers)}")
        remove_containers(leftovers)
    ansible_version = subprocess.run(["ansible-playbook", "--version"], capture_output=True, text=True,
                                     check=False).stdout.splitlines()[0]
    load_before = load()
    started = datetime.datetime.now(datetime.timezone.utc)
    names = ' '.join([*(f'1+{n}' for n in sets), *(['clone'] if clone else [])])
    say(f"sets {names}, {repeat} round(s), image {IMAGE} ({image_id(IMAGE)}), "
        f"{ansible_version}; one set at a time")
    results = Results()
    try:
        for round_ in range(1, repeat + 1):
            for n in sets:
                if "site" in sides:
                    bench_site(n, rerun=(n == 2), profile=profile, results=results, round_=round_)
                if "raw" in sides:
                    bench_raw(n, results, round_)
        if clone:
            bench_clone(results)
    finally:
        if not (results.errors and env_flag("PGREPL_BENCH_KEEP")):
            remove_containers(bench_containers())
            docker("network", "rm", NET, check=False)
    rows = table_rows(results, sets) + (clone_rows(results) if clone else [])
    details = (f"{ansible_version}, image {IMAGE} ({image_id(IMAGE)}), sets {names}, "
               f"{repeat} round(s){' (medians)' if repeat > 1 else ''}, raw standbys one after another, psycopg "
               f"{psycopg_mode()}, "
               f"load average {load_before} before and {load()} after")
    context = {
        "date": started.strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.node() or 'this machine'} ({os.cpu_count()} CPUs)",
        "details": details,
    }
    table = text_table(rows)
    print()
    print(table)
    print(f"({details})")
    (OUT / "results.md").write_text(markdown(rows, context))
    (OUT / "results.json").write_text(json.dumps({
        "context": context, "seconds": results.seconds, "rerun_changed": results.rerun_changed,
        "raw_commands": results.raw_commands, "errors": results.errors,
        "profiles": {k: v[:15] for k, v in results.profiles.items()},
        "clone_size": results.clone_size, "clone_progress": results.clone_progress,
    }, indent=2))
    if results.clone_progress:
        print("\nprogress lines of the last reseed:")
        for line in results.clone_progress:
            print(f"  {line}")
    for name, tasks in results.profiles.items():
        print(f"\nslowest tasks, {name} (ansible.posix.profile_tasks):")
        for task, secs in tasks[:15]:
            print(f"  {secs:7.2f}s  {task}")
    say(f"written {(OUT / 'results.md').relative_to(ROOT)} (paste into docs/performance.md), logs in "
        f"{LOGS.relative_to(ROOT)}/")
    return exit_status(results.errors, rows, say)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # main's finally has removed the containers
        say("interrupted")
        sys.exit(130)
