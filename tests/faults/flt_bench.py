# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fault-injection bench (issue 12 item 4): day-2 operations cut off or disturbed at their state changes, then
re-run, on ONE 1+2 cluster of systemd containers with the write ledger and one write sampler per node running.

For each fault, in sequence on the same cluster (each fault's re-run leaves it healthy for the next):
  1. the ledger resumes (the window of the fault starts);
  2. the operation's playbook runs in its own process group while a trigger watches it: a `TASK [...]` line of its
     output (a task boundary, by name or by index), or a state of the nodes (the old primary stopped or fenced, the
     target promoted, pg_basebackup running or done on the copied standby);
  3. at the trigger the action: SIGKILL or SIGINT to ansible-playbook's process group, SIGKILL of the module (and
     pg_basebackup) on the node, SIGKILL of the target's postmaster, its server frozen (SIGSTOP) or the node cut
     off (`docker network disconnect`) for a few seconds, its filesystem filled, a lock held that site needs;
     the faulted run's outcome is kept (exit code, its first message);
  4. the same command again (after what the runbook says to do first), for a failover the rejoin of the old
     primary, then `status -e pgrepl_status_strict=true`: passing is "converged". A re-run that is refused because
     the interrupted run had already finished the job (docs/runbooks.md, "What a re-run does after an
     interruption") is followed by the runbook's step (the real primary put in group primary, a former primary
     rejoined) and counted as converged by the runbook;
  5. the figures: split-brain instants from the samplers (flt_split.py: must be 0) and acknowledged commits lost
     on the primary (must be 0; a failover may lose only commits past the promoted node's received LSN).

Faults: FAULTS below; `ci` marks the deterministic subset of `make test` (stage faults); `make faults` adds every
task boundary of site on fresh hosts, switchover, failover, reseed and rejoin (counted from a clean run of each),
SIGKILL and SIGINT. Site on fresh hosts (operation `site-fresh`, FreshSiteBench) gets new containers for every
fault, as a first run meets them: the image's own cluster on every node, nothing replicated yet; it has no ledger
or samplers (until the standbys are copied, each node's server is an unrelated cluster, writable by design), so its
figures are convergence (the same site again, then status strict, exactly one primary) and the data kept.
Writes .build/faults/table.md and results.json; playbook logs under .build/faults/<tag>/logs.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Optional

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
for _path in (HERE, ROOT / "tests" / "day2", ROOT / ".build" / "collections"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from d2_cluster import CLIENT_IMAGE, PLAYBOOK_TIMEOUT, DayTwoCluster, PlaybookRun  # noqa: E402
from d2_docker import dexec, docker, remove_prefixed  # noqa: E402
from d2_ledger import OUT_DIR, missing, not_past  # noqa: E402
from d2_proof import Proof, first_message  # noqa: E402
from flt_split import Sample, parse_samples, split_instants, within, writers  # noqa: E402

from ansible_collections.pgrepl.streaming.plugins.module_utils._clone import MOVED_INFIX  # noqa: E402
from ansible_collections.pgrepl.streaming.plugins.module_utils._lsn import format_lsn  # noqa: E402

PREFIX = "pgrepl-flt-"
IMAGE = os.environ.get("PGREPL_FAULTS_IMAGE", "pgrepl-test/pg15:current")
OUT = ROOT / ".build" / "faults"
# Finished parts of the full matrix, kept in the repository (scripts/faults.sh keep NAME): a part takes up to an
# hour, the matrix several sittings, and .build/ does not outlive a machine.
KEPT = HERE / "parts"
# The bench's network has a subnet of its own, so a node cut off (docker network disconnect) comes back on its
# address (docker network connect --ip).
SUBNETS = {"ci": os.environ.get("PGREPL_FAULTS_SUBNET", "10.213.57.0/24"), "full": "10.213.58.0/24",
           "fresh": "10.213.59.0/24"}
SAMPLE_INTERVAL = 0.02
DISTURB_SECONDS = 8.0     # how long a node stays paused or cut off
SIGINT_GRACE = 90.0       # after SIGINT, ansible-playbook's time to stop before SIGKILL
# ~70 MB, so that a copy lasts long enough to be cut.
FILLER = "CREATE TABLE flt_filler AS SELECT g, repeat('x', 200) AS pad FROM generate_series(1, 300000) g"
SAMPLER = "/flt_sampler.py"


def say(msg: str) -> None:
    print(f"[faults] {msg}", flush=True)


class BenchError(Exception):
    """A step of the bench itself (not of the code under test) failed: the bench cannot go on."""


# --- the catalogue ---------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Fault:
    """`when`: "task:<text>" (the first TASK line containing text; "task:<text>#2" the second), "task#<n>" (the
    n-th TASK line), or "state:<stopped|fenced|promoted|copying|copied>". `action`: sigkill, sigint, kill-module
    (the module and its pg_basebackup on `node`, then SIGKILL of the run: the host and the controller die),
    kill-basebackup (pg_basebackup alone), kill-postmaster, pause, disconnect, fill (the filesystem of the data
    directory's parent, a small tmpfs on one standby, filled up), none (with when "never": a clean run).
    `node`: old (primary), target."""
    name: str
    op: str
    when: str
    action: str
    node: str = "old"
    ci: bool = False
    recovery: str = ""   # what the runbook says to do before the re-run: "start-target"
    setup: str = ""      # "role-lock": a transaction holds the replication role's row while the run goes


# The operation `site` on new containers for every fault (FreshSiteBench).
FRESH_SITE = "site-fresh"
HANDOVER_SW = "task:Hand over from the old primary - switchover#2"  # the first is the check-mode call
FAULTS = [
    Fault("switchover: module killed on the old primary at its stop", "switchover", "state:stopped", "kill-module",
          ci=True),
    Fault("switchover: SIGKILL of the run at the fence", "switchover", "state:fenced", "sigkill", ci=True),
    Fault("switchover: SIGKILL of the run at the promotion", "switchover", "state:promoted", "sigkill", ci=True),
    Fault("switchover: SIGINT at the repoint of the followers", "switchover",
          "task:Standby configuration pointing at the new primary", "sigint", ci=True),
    Fault("switchover: target's postmaster killed at the handover", "switchover", HANDOVER_SW, "kill-postmaster",
          node="target", ci=True, recovery="start-target"),
    Fault("switchover: target's server frozen at the handover", "switchover", HANDOVER_SW, "pause", node="target"),
    Fault("switchover: target cut off at the handover", "switchover", HANDOVER_SW, "disconnect", node="target"),
    Fault("switchover: SIGKILL at the new primary's slots", "switchover",
          "task:Slots for the followers, standby configuration removed", "sigkill"),
    Fault("failover: SIGKILL of the run at the fence and promotion", "failover",
          "task:Hand over from the old primary - failover", "sigkill", ci=True),
    Fault("failover: SIGINT at the promotion", "failover", "state:promoted", "sigint"),
    Fault("failover: SIGKILL at the repoint of the followers", "failover",
          "task:Standby configuration pointing at the new primary", "sigkill", ci=True),
    Fault("reseed: pg_basebackup killed mid-copy", "reseed", "state:copying", "kill-basebackup", node="target",
          ci=True),
    Fault("reseed: module and run killed mid-copy", "reseed", "state:copying", "kill-module", node="target"),
    Fault("reseed: module and run killed at the swap", "reseed", "state:copied", "kill-module", node="target",
          ci=True),
    Fault("reseed: standby cut off mid-copy", "reseed", "state:copying", "disconnect", node="target"),
    Fault("reseed: primary's server frozen mid-copy", "reseed", "state:copying", "pause", node="old"),
    Fault("reseed: the standby's filesystem filled mid-copy", "reseed", "state:copying", "fill", node="target"),
    Fault("site on fresh hosts: SIGKILL of the run mid-copy of a standby", FRESH_SITE, "state:copying", "sigkill",
          node="target"),
    Fault("site on fresh hosts: SIGINT mid-copy of a standby", FRESH_SITE, "state:copying", "sigint",
          node="target"),
    Fault("site: a transaction holds the replication role (ALTER ROLE waits)", "site", "never", "none",
          setup="role-lock"),
]
TMPFS_SIZE = "800m"       # the filesystem of one standby's data directory parent in the full matrix
LOCK_APP = "flt-role-lock"


def parse_when(when: str) -> tuple[str, str, int]:
    """A fault's `when` as (kind, text, number): "task#7" -> ("task#", "", 7); "task:Stop it#2" -> ("task",
    "Stop it", 2) (the 2nd TASK line naming it; 1 when no #); "state:fenced" -> ("state", "fenced", 0);
    "never" -> ("never", "", 0)."""
    kind, what = (when.split(":", 1) + [""])[:2]
    if kind.startswith("task#"):
        return "task#", "", int(kind[5:])
    if kind == "task":
        text, count = (what.split("#", 1) + [""])[:2]
        return "task", text, int(count or 1)
    return kind, what, 0


def boundary_faults(op: str, tasks: int, step: int = 1, offset: int = 1) -> list[Fault]:
    """Every task boundary of `op` (its TASK lines in a clean run; every `step`-th one from the `offset`-th), with
    SIGKILL and SIGINT. Runs with step n and offsets 1..n together cover every boundary once."""
    return [Fault(f"{op}: {action.upper()} at task {n} of {tasks}", op, f"task#{n}", action)
            for n in range(max(1, offset), tasks + 1, max(1, step)) for action in ("sigkill", "sigint")]


# --- the samplers ----------------------------------------------------------------------------------------------

class Samplers:
    """flt_sampler_client.py once per node in the ledger client's container, files in the ledger's directory."""

    def __init__(self, cluster: DayTwoCluster) -> None:
        self.cluster = cluster
        self.offsets: dict[str, int] = {}
        self.samples: dict[str, list[Sample]] = {name: [] for name in cluster.names}

    def file(self, node: str) -> Path:
        return self.cluster.ledger_dir / f"samples-{node}.tsv"

    def start(self) -> None:
        c = self.cluster
        docker("cp", str(HERE / "flt_sampler_client.py"), f"{c.client}:{SAMPLER}")
        for node in c.names:
            self.file(node).unlink(missing_ok=True)
            conninfo = (f"host={c.address[node]} port=5432 dbname=postgres user=ledger passfile=/root/.pgpass "
                        "connect_timeout=1 keepalives=1 keepalives_idle=1 keepalives_interval=1 keepalives_count=2 "
                        "tcp_user_timeout=2000 application_name=flt-sampler client_encoding=UTF8")
            docker("exec", "-d", c.client, "python3", SAMPLER, "--conninfo", conninfo, "--node", node,
                   "--out", f"{OUT_DIR}/samples-{node}.tsv", "--interval", str(SAMPLE_INTERVAL))
        deadline = time.monotonic() + 30
        while not all(self.read(node) for node in c.names):
            if time.monotonic() > deadline:
                raise BenchError("the samplers wrote no sample within 30 s")
            time.sleep(0.1)

    def stop(self) -> None:
        pids = dexec(self.cluster.client, "pgrep", "-f", SAMPLER, check=False).split()
        if pids:
            dexec(self.cluster.client, "kill", "-TERM", *pids, check=False)

    def read(self, node: str) -> list[Sample]:
        """Every sample of `node` so far (read on from where the last call stopped)."""
        try:
            with self.file(node).open("rb") as handle:
                handle.seek(self.offsets.get(node, 0))
                data = handle.read()
        except FileNotFoundError:
            return []
        cut = data.rfind(b"\n") + 1
        if cut:
            self.samples[node] += parse_samples(node, data[:cut].decode())
            self.offsets[node] = self.offsets.get(node, 0) + cut
        return self.samples[node]

    def all(self) -> list[Sample]:
        return [s for node in self.cluster.names for s in self.read(node)]

    def seen(self, node: str, state: str, since: float) -> bool:
        return any(s.state == state and s.start >= since for s in reversed(self.read(node)[-200:]))


# --- a playbook run that a trigger interrupts ------------------------------------------------------------------

class Interrupter:
    """cluster.playbook's runner: ansible-playbook in its own process group; `fire` runs once, when a TASK line
    matches `task` or when `poll()` says so (polled every 20 ms while the run lasts)."""

    def __init__(self, fire: Callable[[Interrupter], str], task: Optional[Callable[[int, str], bool]] = None,
                 poll: Optional[Callable[[], bool]] = None, log: Optional[Path] = None) -> None:
        self.fire_action = fire
        self.task = task
        self.poll = poll
        self.live_log = log
        self.proc: Optional[subprocess.Popen[str]] = None
        self.fired_at: Optional[float] = None
        self.fired_task = ""
        self.what = ""
        self.tasks_seen = 0
        self._lock = threading.Lock()

    def fire(self, why: str) -> None:
        with self._lock:
            if self.fired_at is not None:
                return
            self.fired_at = time.time()
            self.fired_task = why
        try:
            self.what = self.fire_action(self)
        except Exception as exc:  # noqa: BLE001 - the fault's own failure is a finding of the bench, shown
            self.what = f"the fault's action failed: {exc}"

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass

    def __call__(self, argv: list[str], env: dict[str, str], cwd: Path) -> tuple[int, str, str]:
        env = {**env, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, text=True, start_new_session=True)
        lines: list[str] = []
        poller = None
        if self.poll is not None:
            poller = threading.Thread(target=self._poll, daemon=True)
            poller.start()
        live = self.live_log.open("w") if self.live_log else None
        assert self.proc.stdout is not None
        last_task = ""
        for line in self.proc.stdout:
            lines.append(line)
            if live:
                live.write(line)
                live.flush()
            if line.startswith("TASK ["):
                self.tasks_seen += 1
                last_task = line.split("]")[0][6:]
                if self.task is not None and self.fired_at is None and self.task(self.tasks_seen, line):
                    self.fire(f"task {self.tasks_seen}: {last_task}")
        try:
            code = self.proc.wait(timeout=PLAYBOOK_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            code = self.proc.wait()
        if poller is not None:
            poller.join(timeout=5)
        if live:
            live.close()
        note = f"\n[fault fired at {self.fired_task or 'never'}: {self.what}]\n"
        return code, "".join(lines) + note, ""

    def _poll(self) -> None:
        assert self.proc is not None and self.poll is not None
        while self.proc.poll() is None and self.fired_at is None:
            try:
                if self.poll():
                    self.fire("state")
                    return
            except Exception:  # noqa: BLE001,S110 - a failed look is looked again
                pass
            time.sleep(0.02)


# What the loop of InContainerWait does on the node the moment its condition holds (no docker exec round trip in
# between): the module's processes ([A] so that the pattern does not match the loop's own command line) and
# pg_basebackup get SIGKILL. Prints what it killed. $COPY: the pattern of the copy's own pg_basebackup (not the
# module's `pg_basebackup --version`).
IN_CONTAINER_ACTIONS = {
    "kill-basebackup": 'p=$(pgrep -f "$COPY"); kill -KILL $p; echo "pg_basebackup $p"',
    "kill-module": 'p="$(pgrep -f "[A]nsiballZ") $(pgrep -f "$COPY")"; kill -KILL $p; echo "module $p"',
    # All but 64 kB of the filesystem of the data directory's parent taken by one file ({parent}: that path).
    "fill": 'f={parent}/flt-fill; a=$(df --output=avail -B1 {parent} | tail -1); '
            'fallocate -l $((a - 65536)) $f && echo "filled $((a - 65536)) bytes: $f"',
}


class InContainerWait:
    """A condition watched inside a node by one long `docker exec` (a shell loop every 20 ms), not one exec per
    look; `then` runs there as soon as it holds; `done()` is true once the loop ended on the condition. close()
    ends the loop by its stop file."""

    def __init__(self, node: str, condition: str, then: str = "", seconds: float = 600) -> None:
        self.node = node
        self.then = then
        self.stop_file = f"/run/flt-stop-{os.getpid()}-{time.monotonic_ns()}"
        # $M: a marker file the condition may use to remember something it saw.
        script = (f"M={self.stop_file}.mark; COPY='[p]g_basebackup -D'; end=$(( $(date +%s) + {int(seconds)} )); "
                  f"while [ ! -e {self.stop_file} ] && [ $(date +%s) -lt $end ]; do "
                  f"if {condition}; then {then or 'true'}; echo hit; exit 0; fi; sleep 0.02; done; exit 1")
        self.proc = subprocess.Popen(["docker", "exec", node, "sh", "-c", script], stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True)

    def done(self) -> bool:
        return self.proc.poll() == 0

    def said(self) -> str:
        """What the loop printed once it ended (the action's pids)."""
        if self.proc.poll() is None or self.proc.stdout is None:
            return ""
        return " ".join(self.proc.stdout.read().split()[:-1])

    def close(self) -> None:
        if self.proc.poll() is None:
            docker("exec", self.node, "touch", self.stop_file, check=False)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        docker("exec", self.node, "rm", "-f", self.stop_file, f"{self.stop_file}.mark", check=False)


# --- one fault -------------------------------------------------------------------------------------------------

@dataclasses.dataclass
class Outcome:
    fault: Fault
    fired: str = ""              # where the trigger fired, and what the action did
    faulted: str = ""            # exit of the faulted run and its first message
    rerun: str = ""              # exit of the re-run (and what followed)
    converged: bool = False
    path: str = ""               # how it converged: re-run, or the runbook's step after a refusal
    splits: int = 0
    split_detail: str = ""
    lost: int = 0                # acknowledged and missing, not excused (failover: at or before the received LSN)
    lost_past: int = 0           # failover: lost past the promoted node's received LSN (allowed, reported)
    seconds: float = 0.0
    writers: str = ""
    expected_failure: str = ""
    error: str = ""
    note: str = ""
    logs: list[str] = dataclasses.field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.converged and not self.splits and not self.lost and not self.error


# Faults that find a bug in the collection, recorded with the reason (and what was seen) until it is fixed.
KNOWN: dict[str, str] = {}


class Bench:
    def __init__(self, tag: str, workdir: Path) -> None:
        self.tag = tag
        self.cluster = DayTwoCluster(PREFIX, tag, IMAGE, CLIENT_IMAGE, workdir, standbys=2, sync=())
        self.samplers = Samplers(self.cluster)
        self.ledger = None
        self.proof: Optional[Proof] = None
        self.excused: set[int] = set()
        self.outcomes: list[Outcome] = []
        self.reference: dict[str, int] = {}   # TASK lines of a clean run, by operation
        self.broken = ""                       # set when the cluster could not be made healthy again
        self.tmpfs_node = ""                   # the standby whose data directory's parent is a small tmpfs

    # --- the cluster -----------------------------------------------------------------------------------------

    def start(self, small_filesystem: bool = False) -> None:
        c = self.cluster
        docker("network", "create", "--subnet", SUBNETS.get(self.tag, SUBNETS["ci"]), c.network)
        c.start()
        if small_filesystem:
            # Only for the fault that fills it: kept for the whole run, the small filesystem itself fills up with
            # WAL over dozens of operations (a standby's receiver then dies with ENOSPC, which is the bench's doing).
            self.small_filesystem(c.names[-1])
        c.prepare_ledger()
        c.write_inventory()
        run = c.playbook("site", label="build")
        if run.returncode != 0:
            raise BenchError(f"site failed:\n{run.describe()}")
        c.wait_streaming(c.names[0], c.names[1:])
        primary = c.names[0]
        rows = ", ".join(f"('{n}')" for n in c.names)
        c.psql(primary, "CREATE TABLE flt_probe (node text PRIMARY KEY, n bigint NOT NULL DEFAULT 0, at timestamptz)")
        c.psql(primary, f"INSERT INTO flt_probe (node) VALUES {rows}")  # noqa: S608 (container names)
        c.psql(primary, "GRANT SELECT, UPDATE ON flt_probe TO ledger")
        c.psql(primary, FILLER)
        c.wait_replayed(c.names[1:], c.wal_position(primary))
        self.samplers.start()
        self.ledger = c.ledger()
        self.ledger.start()
        self.proof = Proof(c, self.ledger)
        self.ledger.pause()

    def small_filesystem(self, node: str) -> None:
        """The node's data directory moves onto a tmpfs of TMPFS_SIZE mounted as its parent (before site: the
        fresh cluster of the image), so that the fault 'fill' can fill it."""
        c = self.cluster
        parent = str(Path(c.data_dir).parent)
        script = (f"set -e; systemctl stop {c.unit}; mv {parent} {parent}.disk; mkdir {parent}; "
                  f"mount -t tmpfs -o size={TMPFS_SIZE},mode=0755 flt-small {parent}; "
                  f"cp -a {parent}.disk/. {parent}/; chown postgres:postgres {parent}; rm -rf {parent}.disk; "
                  f"systemctl start {c.unit}")
        dexec(node, "sh", "-c", script, timeout=300)
        self.tmpfs_node = node

    def hold_role_lock(self, primary: str) -> None:
        """The replication role loses REPLICATION (committed: site must put it back with ALTER ROLE), then a
        session holds the role's row (an uncommitted ALTER ROLE) for as long as the fault lasts."""
        c = self.cluster
        c.psql(primary, "ALTER ROLE replicator NOREPLICATION")
        docker("exec", "-d", "-u", "postgres", "-e", f"PGAPPNAME={LOCK_APP}", primary, "psql", "-X", "-c",
               "BEGIN; ALTER ROLE replicator CONNECTION LIMIT -1; SELECT pg_sleep(900); COMMIT;")
        deadline = time.monotonic() + 30
        query = ("SELECT count(*) FROM pg_stat_activity WHERE application_name = '" + LOCK_APP  # noqa: S608
                 + "' AND wait_event = 'PgSleep'")
        while c.psql(primary, query) != "1":
            if time.monotonic() > deadline:
                raise BenchError("the session holding the replication role's row did not start")
            time.sleep(0.2)

    def release_role_lock(self, primary: str) -> None:
        query = ("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '"  # noqa: S608
                 + LOCK_APP + "'")
        self.cluster.psql(primary, query, check=False)

    def stop(self) -> None:
        try:
            if self.ledger is not None:
                self.ledger.stop()
            self.samplers.stop()
        finally:
            self.cluster.destroy()

    def unpause_all(self) -> None:
        for node in self.cluster.names:
            self.thaw(node)
            self.reconnect(node)

    def thaw(self, node: str) -> None:
        dexec(node, "systemctl", "kill", "--signal=SIGCONT", self.cluster.unit, check=False)

    def reconnect(self, node: str) -> None:
        c = self.cluster
        nets = docker("inspect", "-f", "{{json .NetworkSettings.Networks}}", node, check=False).stdout
        if c.network not in nets:
            docker("network", "connect", "--ip", c.address[node], c.network, node, check=False)

    def primaries(self) -> list[str]:
        """The nodes that answer and are not in recovery."""
        return [n for n in self.cluster.names
                if self.cluster.psql(n, "SELECT pg_is_in_recovery()", check=False, timeout=30) == "f"]

    # --- the fault's trigger and action ----------------------------------------------------------------------

    def interrupter(self, fault: Fault, old: str, target: Optional[str], t0: float, log: Path) -> Interrupter:
        c = self.cluster
        node = old if fault.node == "old" else target
        waits: list[InContainerWait] = []

        def act(it: Interrupter) -> str:
            if fault.action == "none":
                return "nothing"
            acted = [w for w in waits if w.then]
            if fault.action in IN_CONTAINER_ACTIONS and acted:
                # Done on the node by the loop that saw the condition.
                if fault.action == "kill-module":
                    it.signal(signal.SIGKILL)
                verb = "filesystem filled" if fault.action == "fill" else "SIGKILL"
                return f"{verb} on {node}: {acted[0].said() or 'nothing'}" + (
                    " and to ansible-playbook's process group" if fault.action == "kill-module" else "")
            if fault.action == "sigkill":
                it.signal(signal.SIGKILL)
                return "SIGKILL to ansible-playbook's process group"
            if fault.action == "sigint":
                it.signal(signal.SIGINT)
                threading.Thread(target=self._sigkill_later, args=(it,), daemon=True).start()
                return "SIGINT to ansible-playbook's process group"
            if node is None:
                return f"no {fault.node} node known: nothing done"
            if fault.action in ("kill-module", "kill-basebackup"):
                pattern = "pg_basebackup" if fault.action == "kill-basebackup" else "AnsiballZ|pg_basebackup"
                pids = dexec(node, "pgrep", "-f", pattern, check=False).split()
                if pids:
                    dexec(node, "kill", "-KILL", *pids, check=False)
                if fault.action == "kill-module":
                    it.signal(signal.SIGKILL)
                return f"SIGKILL to {pattern} on {node} (pids {' '.join(pids) or 'none'})" + (
                    " and to ansible-playbook's process group" if fault.action == "kill-module" else "")
            if fault.action == "kill-postmaster":
                c.kill_server(node)
                return f"SIGKILL to {node}'s postmaster and backends"
            if fault.action == "pause":
                # `docker pause` cannot freeze these systemd containers here (the engine's freezer fails:
                # "unable to freeze"): every process of the server's unit gets SIGSTOP instead, then SIGCONT.
                dexec(node, "systemctl", "kill", "--signal=SIGSTOP", c.unit)
                threading.Timer(DISTURB_SECONDS, self.thaw, args=(node,)).start()
                return f"{node}'s server frozen (SIGSTOP of its unit) for {DISTURB_SECONDS:g} s"
            if fault.action == "disconnect":
                docker("network", "disconnect", c.network, node)
                threading.Timer(DISTURB_SECONDS, self.reconnect, args=(node,)).start()
                return f"docker network disconnect {node} for {DISTURB_SECONDS:g} s"
            raise BenchError(f"unknown action {fault.action}")

        kind, what, number = parse_when(fault.when)
        if kind == "never":
            return Interrupter(act, task=lambda n, line: False, log=log)
        if kind == "task#":
            return Interrupter(act, task=lambda n, line: n == number, log=log)
        if kind == "task":
            text, want = what, number
            seen = [0]

            def match(n: int, line: str) -> bool:
                if text in line:
                    seen[0] += 1
                return seen[0] == want and text in line
            return Interrupter(act, task=match, log=log)
        data_dir = c.data_dir
        then = IN_CONTAINER_ACTIONS.get(fault.action, "").replace("{parent}", str(Path(data_dir).parent))
        if what == "stopped":
            # The old primary's postmaster no longer accepts connections: its shutdown has begun.
            waits.append(InContainerWait(old, "! pg_isready -q", then if node == old else ""))
            poll = waits[-1].done
        elif what == "promoted":
            others = [n for n in c.names if n != old]

            def poll() -> bool:
                return any(self.samplers.seen(n, "W", t0) for n in others)
        elif what == "fenced":
            waits.append(InContainerWait(old, f"[ -e {data_dir}/standby.signal ]", then if node == old else ""))
            poll = waits[-1].done
        elif what == "copying":
            # Watched where pg_basebackup runs (the copied standby); the action may be for another node.
            waits.append(InContainerWait(target or node, 'pgrep -f "$COPY" >/dev/null', then if node == target else ""))
            poll = waits[-1].done
        elif what == "copied":
            # pg_basebackup ran and has ended: the module is at the swap.
            waits.append(InContainerWait(target or node, '{ pgrep -f "$COPY" >/dev/null && touch "$M"; } '
                                         '|| [ -e "$M" ] && ! pgrep -f "$COPY" >/dev/null',
                                         then if node == target else ""))
            poll = waits[-1].done
        else:
            raise BenchError(f"unknown trigger {fault.when}")
        it = Interrupter(act, poll=poll, log=log)
        it.waits = waits  # type: ignore[attr-defined]
        return it

    @staticmethod
    def _sigkill_later(it: Interrupter) -> None:
        deadline = time.monotonic() + SIGINT_GRACE
        while it.proc is not None and it.proc.poll() is None:
            if time.monotonic() > deadline:
                it.signal(signal.SIGKILL)
                return
            time.sleep(0.2)

    # --- one fault, start to end -----------------------------------------------------------------------------

    def run_fault(self, fault: Fault) -> Outcome:
        out = Outcome(fault, expected_failure=KNOWN.get(fault.name, ""))
        if self.broken:
            out.error = f"not run: {self.broken}"
            return out
        c = self.cluster
        assert self.proof is not None and self.ledger is not None
        primary, standbys = c.groups()
        target = standbys[0] if fault.op in ("switchover", "reseed") else None
        if fault.action == "fill":
            if self.tmpfs_node not in standbys:
                out.error = f"not run: the node with the small filesystem ({self.tmpfs_node or 'none'}) is no standby"
                return out
            target = self.tmpfs_node
        extra = {"switchover": [f"pgrepl_target={target}"], "reseed": [f"pgrepl_host={target}"],
                 "failover": [], "rejoin": [f"pgrepl_host={primary}"], "site": []}[fault.op]
        began = time.monotonic()
        win = self.proof.begin(fault.name)
        t0 = time.time()
        received: dict[str, int] = {}
        slug = re.sub(r"[^a-z0-9]+", "-", fault.name.lower()).strip("-")[:60]
        try:
            if fault.op in ("failover", "rejoin"):
                c.kill_server(primary)
                for s in standbys:
                    lsn = c.receive_position(s)
                    if lsn is not None:
                        received[s] = lsn
            if fault.op == "rejoin":
                # The rejoin is what is faulted: a clean failover first, then the rejoin of its old primary.
                run = c.playbook("failover", label=f"{slug}-failover")
                if run.returncode != 0:
                    raise BenchError(f"failover before the rejoin failed:\n{run.describe()}")
                extra = [f"pgrepl_host={primary}"]
                primary, standbys = c.groups()
            old = primary
            if fault.setup == "role-lock":
                self.hold_role_lock(primary)
            it = self.interrupter(fault, old, target, t0, c.logdir / f"live-{slug}.log")
            try:
                faulted = c.playbook(fault.op, *extra, label=slug, runner=it)
            finally:
                for w in getattr(it, "waits", []):
                    w.close()
                if fault.setup == "role-lock":
                    self.release_role_lock(primary)
                if fault.action == "fill" and target is not None:
                    dexec(target, "rm", "-f", f"{Path(c.data_dir).parent}/flt-fill", check=False)
            if fault.setup == "role-lock":
                # It must fail by lock_timeout with a message that says so, not hang.
                if faulted.returncode == 0 or "lock_timeout" not in faulted.output or faulted.seconds > 180:
                    named = "named" if "lock_timeout" in faulted.output else "not named"
                    out.error = (f"site with the role's row locked: exit {faulted.returncode} after "
                                 f"{faulted.seconds:.0f} s, lock_timeout {named} (want a failure by lock_timeout "
                                 "that says so)")
            out.logs.append(str(faulted.log))
            out.fired = f"{it.fired_task or 'never fired'}: {it.what or '-'}"
            out.faulted = f"exit {faulted.returncode}" + (f": {failure_message(faulted)}" if faulted.returncode else "")
            time.sleep(0.5)
            self.unpause_all()
            if fault.recovery == "start-target" and target is not None:
                dexec(target, "systemctl", "start", c.unit, check=False)
            self.converge(fault, out, extra, old, slug)
        except BenchError as exc:
            out.error = str(exc)
        except Exception as exc:  # noqa: BLE001 - shown in the table; the cluster is checked below
            out.error = f"{type(exc).__name__}: {exc}"
        finally:
            self.unpause_all()
            try:
                now_primary = c.groups()[0]
                self.proof.end(win, now_primary, timeout=60)
            except Exception as exc:  # noqa: BLE001
                out.error = out.error or f"no commit on the primary after the fault: {exc}"
                try:
                    self.ledger.pause()
                except Exception:  # noqa: BLE001,S110
                    pass
        out.seconds = time.monotonic() - began
        self.figures(out, win.resumed, time.time(), received)
        if self.tmpfs_node and out.converged:
            # What a successful re-seed moved aside is the operator's to remove (docs/runbooks.md): on the small
            # filesystem it is removed, so that later copies there have room.
            dexec(self.tmpfs_node, "sh", "-c", f"rm -rf {c.data_dir}{MOVED_INFIX}*", check=False)
        if not out.converged and not self.healthy():
            # What an operator does next so that the following faults have a healthy cluster (not counted).
            try:
                self.runbook_steps(f"{slug}-repair")
            except Exception as exc:  # noqa: BLE001
                out.note = (out.note + "; " if out.note else "") + f"repair failed: {exc}"
            if not self.healthy():
                self.broken = f"the cluster was left unhealthy by '{fault.name}'"
        return out

    def converge(self, fault: Fault, out: Outcome, extra: list[str], old: str, slug: str) -> None:
        """The same command again; a failover's old primary rejoined; the runbook's steps where a re-run refuses
        because the interrupted run had finished the job; then status strict."""
        c = self.cluster
        if c.runs[-1].returncode == 0:
            rerun = c.runs[-1]  # the faulted run completed (a disturbance it rode out): nothing to re-run
            out.path = "completed"
        else:
            rerun = c.playbook(fault.op, *extra, label=f"{slug}-rerun")
            out.logs.append(str(rerun.log))
        out.rerun = f"exit {rerun.returncode}" + (f": {failure_message(rerun)}" if rerun.returncode else "")
        out.path = out.path or "re-run"
        if rerun.returncode != 0:
            steps = self.runbook_steps(slug)
            if not steps or (steps == "nothing to do" and not self.done(fault, old, extra)):
                # Refused or failed, and the job is not done: not converged, whatever the cluster looks like.
                out.path = "re-run failed" + (" (the cluster as before, the operation not done)" if steps else "")
                return
            out.path = "re-run refused; runbook: " + steps
        if fault.op == "failover":
            primary, standbys = c.groups()
            if old not in standbys:
                c.set_groups(primary, [*standbys, old])
            ok, what = self.rejoin(old, slug, out)
            out.path += f"; {what}"
            if not ok:
                return
        status = c.playbook("status", "pgrepl_status_strict=true", label=f"{slug}-status")
        out.logs.append(str(status.log))
        if status.returncode != 0:
            out.path += f"; status strict failed: {first_message(status)}"
            out.logs.extend(self.keep_server_logs(slug))
            return
        out.converged = True

    def keep_server_logs(self, slug: str) -> list[str]:
        """Each node's PostgreSQL log and unit journal (their last lines), kept beside the run logs: why a node was
        found not streaming is in its own server log, not in what the playbook printed."""
        c = self.cluster
        kept = []
        script = ('journalctl -u "$1" --no-pager -n 200 2>&1; '
                  'for f in /var/log/postgresql/*.log "$2"/log/* "$2"/pg_log/*; do '
                  '[ -f "$f" ] && { echo "== $f"; tail -n 400 "$f"; }; done; true')
        for node in c.names:
            path = c.logdir / f"{slug}-server-{node}.log"
            try:
                path.write_text(dexec(node, "sh", "-c", script, "logs", c.unit, c.data_dir, check=False,
                                      timeout=60))
                kept.append(str(path))
            except Exception as exc:  # noqa: BLE001 - a log not kept is said, never fatal to the bench
                say(f"server log of {node} not kept: {exc}")
        return kept

    def runbook_steps(self, slug: str) -> str:
        """docs/runbooks.md: a re-run refused because the job was done (a standby is a primary already, or the
        inventory is out of date): put the real primary in group primary; a node that does not stream from it
        is rejoined. Returns what was done, or "" when the cluster does not have exactly one primary."""
        c = self.cluster
        found = self.primaries()
        if len(found) != 1:
            return ""
        primary = found[0]
        steps = []
        listed, standbys = c.groups()
        if listed != primary:
            c.set_groups(primary, [n for n in c.names if n != primary])
            steps.append(f"{primary} put in group primary")
        for node in [n for n in c.names if n != primary]:
            if c.streaming_problems(primary, [node]):
                steps.append(self.rejoin(node, slug)[1])
        return ", ".join(steps) or "nothing to do"

    def rejoin(self, node: str, slug: str, out: Optional[Outcome] = None) -> tuple[bool, str]:
        """rejoin of `node`; when it fails, what its message says to do next: the same with
        pgrepl_rejoin_reseed=true (a new copy of the primary instead of pg_rewind)."""
        c = self.cluster
        run = c.playbook("rejoin", f"pgrepl_host={node}", label=f"{slug}-rejoin")
        if out is not None:
            out.logs.append(str(run.log))
        if run.returncode == 0:
            return True, f"rejoin of {node}"
        why = failure_message(run)
        again = c.playbook("rejoin", f"pgrepl_host={node}", "pgrepl_rejoin_reseed=true", label=f"{slug}-rejoin-reseed")
        if out is not None:
            out.logs.append(str(again.log))
            out.note = (out.note + "; " if out.note else "") + f"rejoin of {node} failed: {why}"
        if again.returncode == 0:
            return True, f"rejoin of {node} FAILED ({why[:120]}), then rejoin with pgrepl_rejoin_reseed=true"
        return False, f"rejoin of {node} failed, also with pgrepl_rejoin_reseed=true: {failure_message(again)}"

    def done(self, fault: Fault, old: str, extra: list[str]) -> bool:
        """Whether the operation's own goal is reached (after a re-run refused with nothing left to do): the
        target is the primary (switchover), the old primary is not (failover). Unknown for the others: no."""
        primary = self.cluster.groups()[0]
        if fault.op == "switchover":
            return f"pgrepl_target={primary}" in extra and self.primaries() == [primary]
        if fault.op == "failover":
            return primary != old and self.primaries() == [primary]
        return False

    def healthy(self) -> bool:
        c = self.cluster
        try:
            primary, standbys = c.groups()
            return self.primaries() == [primary] and not c.streaming_problems(primary, standbys)
        except Exception:  # noqa: BLE001
            return False

    def figures(self, out: Outcome, start: float, end: float, received: dict[str, int]) -> None:
        c = self.cluster
        samples = within(self.samplers.all(), start, end)
        silent = [n for n in c.names if not any(x.node == n for x in samples)]
        if silent:
            out.error = out.error or f"no sample of {', '.join(silent)} in the window: the samplers are blind"
        splits = split_instants(samples)
        out.splits = len(splits)
        out.split_detail = "; ".join(s.describe(start) for s in splits[:3])
        out.writers = ", ".join(f"{n.rsplit('-', 1)[-1]}: {k}" for n, k in sorted(writers(samples).items()))
        try:
            primary = c.groups()[0]
            commits = self.ledger.records()
            lost = missing([x for x in commits if x.at <= end], c.present_ids(primary), frozenset(self.excused))
        except Exception as exc:  # noqa: BLE001
            out.error = out.error or f"lost commits not counted: {exc}"
            return
        if out.fault.op in ("failover", "rejoin") and lost:
            promoted = primary
            limit = received.get(promoted)
            early = not_past(lost, limit) if limit is not None else lost
            out.lost = len(early)
            out.lost_past = len(lost) - len(early)
            had = format_lsn(limit) if limit is not None else "unknown"
            out.note = (out.note + "; " if out.note else "") + f"{promoted} had received {had}"
        else:
            out.lost = len(lost)
        self.excused.update(x.id for x in lost)

    def control(self) -> str:
        """The instrument proven: a standby promoted by hand while the primary runs (the cluster is thrown away
        after it) must show as at least one split-brain instant. Returns what was seen."""
        c = self.cluster
        primary, standbys = c.groups()
        live = [s for s in standbys if c.psql(s, "SELECT pg_is_in_recovery()", check=False) == "t"]
        if not live:
            raise BenchError("no standby runs: the control cannot be made")
        start = time.time()
        time.sleep(1.0)
        c.psql(live[0], "SELECT pg_promote()")
        time.sleep(2.0)
        splits = split_instants(within(self.samplers.all(), start, time.time()))
        if not splits:
            raise BenchError(f"the samplers saw no split-brain instant while {primary} and {live[0]} both "
                             "took writes (a standby promoted by hand): the instrument is blind")
        return f"seen: {len(splits)} split-brain instant(s), {splits[0].describe(start)}"

    # --- the matrix ------------------------------------------------------------------------------------------

    def count_tasks(self, op: str) -> int:
        """TASK lines of a clean run of `op` (which also leaves the cluster healthy)."""
        fault = Fault(f"{op}: clean run (reference)", op, "never", "none")
        out = self.run_fault(fault)
        log = Path(out.logs[0]) if out.logs else None
        tasks = log.read_text().count("\nTASK [") if log and log.exists() else 0
        self.outcomes.append(out)
        self.reference[op] = tasks
        return tasks


class FreshSiteBench(Bench):
    """Site on fresh hosts: every fault gets new containers (the image's own cluster on each node, nothing
    replicated yet) and its own directory of logs; no ledger or samplers (see the module's docstring)."""

    def __init__(self, workdir: Path) -> None:
        super().__init__("fresh", workdir)
        self.root = workdir
        self.runs_made = 0

    def start(self) -> None:
        """New hosts for the next fault (the earlier ones removed)."""
        remove_prefixed(f"{PREFIX}{self.tag}")
        self.runs_made += 1
        self.cluster = DayTwoCluster(PREFIX, self.tag, IMAGE, CLIENT_IMAGE, self.root / f"{self.runs_made:03d}",
                                     standbys=2, sync=())
        self.samplers = Samplers(self.cluster)
        docker("network", "create", "--subnet", SUBNETS[self.tag], self.cluster.network)
        self.cluster.start()
        self.cluster.write_inventory()

    def stop(self) -> None:
        remove_prefixed(f"{PREFIX}{self.tag}")

    def run_fault(self, fault: Fault) -> Outcome:
        out = Outcome(fault, expected_failure=KNOWN.get(fault.name, ""),
                      note="fresh hosts: no ledger or samplers (unrelated clusters until the copies)")
        began = time.monotonic()
        slug = re.sub(r"[^a-z0-9]+", "-", fault.name.lower()).strip("-")[:60]
        try:
            self.start()
            c = self.cluster
            primary = c.names[0]
            it = self.interrupter(fault, primary, c.names[1], time.time(), c.logdir / f"live-{slug}.log")
            try:
                faulted = c.playbook("site", label=slug, runner=it)
            finally:
                for w in getattr(it, "waits", []):
                    w.close()
            out.logs.append(str(faulted.log))
            out.fired = f"{it.fired_task or 'never fired'}: {it.what or '-'}"
            out.faulted = f"exit {faulted.returncode}" + (f": {failure_message(faulted)}" if faulted.returncode else "")
            if faulted.returncode == 0:
                out.path, rerun = "completed", faulted
            else:
                rerun = c.playbook("site", label=f"{slug}-rerun")
                out.logs.append(str(rerun.log))
                out.path = "re-run"
            out.rerun = f"exit {rerun.returncode}" + (f": {failure_message(rerun)}" if rerun.returncode else "")
            if rerun.returncode != 0:
                return out
            status = c.playbook("status", "pgrepl_status_strict=true", label=f"{slug}-status")
            out.logs.append(str(status.log))
            found = self.primaries()
            if status.returncode != 0:
                out.path += f"; status strict failed: {first_message(status)}"
                out.logs.extend(self.keep_server_logs(slug))
            elif found != [primary]:
                out.path += f"; out of recovery: {', '.join(found) or 'none'} (want {primary} alone)"
            else:
                out.converged = True
        except Exception as exc:  # noqa: BLE001 - shown in the table
            out.error = f"{type(exc).__name__}: {exc}"
        finally:
            out.seconds = time.monotonic() - began
        return out


def failure_message(run: PlaybookRun) -> str:
    """The first failed task's message (not a message printed before it), or the last error line; nothing for a
    run killed by a signal (it printed no error of its own)."""
    if run.returncode < 0:
        return f"killed by signal {-run.returncode}"
    at = run.output.find("fatal: [")
    if at >= 0:
        return first_message(dataclasses.replace(run, output=run.output[at:]))
    errors = [line for line in run.output.splitlines() if line.startswith(("[ERROR]", "ERROR!"))]
    return " ".join(errors[-1].split())[:160] if errors else first_message(run)


# --- the table -------------------------------------------------------------------------------------------------

HEADERS = ["fault", "trigger: action", "faulted run", "re-run and after", "converged", "split-brain instants",
           "commits lost", "s", "note"]


def cell(text: str, width: int = 90) -> str:
    text = " ".join(str(text).split()).replace("|", "\\|")
    return text if len(text) <= width else text[:width - 3] + "..."


def table_rows(outcomes: list[Outcome]) -> list[list[str]]:
    rows = []
    for o in outcomes:
        conv = "yes" if o.converged else ("EXPECTED FAILURE: " + o.expected_failure if o.expected_failure else "NO")
        lost = str(o.lost) + (f" (+{o.lost_past} past the received LSN)" if o.lost_past else "")
        rerun = o.error or f"{o.rerun} ({o.path})"
        splits = str(o.splits) + (f": {o.split_detail}" if o.splits else "")
        if o.fault.op == FRESH_SITE:
            splits = lost = "not measured"  # no ledger or samplers on fresh hosts (FreshSiteBench)
        rows.append([cell(o.fault.name, 70), cell(o.fired, 80), cell(o.faulted, 80), cell(rerun, 240), conv,
                     splits, lost, f"{o.seconds:.0f}", cell(o.note, 200)])
    return rows


def totals(outcomes: list[Outcome]) -> dict[str, int]:
    return {"faults tried": len(outcomes), "converged": sum(o.converged for o in outcomes),
            "split-brain instants": sum(o.splits for o in outcomes),
            "commits lost": sum(o.lost for o in outcomes),
            "commits lost past a failover's received LSN": sum(o.lost_past for o in outcomes),
            "expected failures": sum(bool(o.expected_failure) for o in outcomes)}


def markdown(outcomes: list[Outcome], context: str) -> str:
    t = totals(outcomes)
    lines = [context, "", "| " + " | ".join(t) + " |", "|" + "---|" * len(t), "| " + " | ".join(map(str, t.values()))
             + " |", "", "| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    lines += ["| " + " | ".join(r) + " |" for r in table_rows(outcomes)]
    return "\n".join(lines) + "\n"


def run_fresh_site(bench: Bench, named: list[Fault], boundaries: bool, step: int, limit: int,
                   offset: int = 1) -> None:
    """Site on fresh hosts (FreshSiteBench): the named faults, then (`boundaries`) every `step`-th task boundary
    of a clean run, SIGKILL and SIGINT; outcomes join the bench's table."""
    fresh = FreshSiteBench(OUT / "fresh")
    try:
        faults = list(named)
        if boundaries:
            say("site on fresh hosts: counting its task boundaries with a clean run")
            faults += boundary_faults(FRESH_SITE, fresh.count_tasks(FRESH_SITE), step, offset)
        for fault in faults:
            if limit and len(bench.outcomes) + len(fresh.outcomes) >= limit:
                break
            say(f"{len(bench.outcomes) + len(fresh.outcomes) + 1}. {fault.name}")
            out = fresh.run_fault(fault)
            fresh.outcomes.append(out)
            say(f"  fired {out.fired}; faulted {out.faulted}; re-run {out.rerun} ({out.path}); converged "
                f"{out.converged}; {out.seconds:.0f} s" + (f"; ERROR {out.error}" if out.error else ""))
    finally:
        fresh.stop()
        bench.outcomes.extend(fresh.outcomes)


def run(matrix: str) -> tuple[list[Outcome], str]:
    """The bench: `ci` (the FAULTS marked ci) or `full` (every FAULT, then every task boundary)."""
    tag = matrix
    part_name()  # a bad name is refused now, not after hours of faults
    OUT.mkdir(parents=True, exist_ok=True)
    remove_prefixed(f"{PREFIX}{tag}")
    bench = Bench(tag, OUT / tag)
    started = datetime.datetime.now(datetime.timezone.utc)
    began = time.monotonic()
    code = commit()  # what the run tests: the commit checked out when it starts, not when it ends
    limit = int(os.environ.get("PGREPL_FAULTS_LIMIT", "0"))
    only = os.environ.get("PGREPL_FAULTS_ONLY", "")
    control = "not run"
    try:
        chosen = [f for f in FAULTS if (f.ci or matrix == "full") and (not only or re.search(only, f.name))]
        faults = [f for f in chosen if f.op != FRESH_SITE]
        # The filled filesystem first, while its node (the last) is surely a standby.
        faults.sort(key=lambda f: f.action != "fill")
        boundaries = (os.environ.get("PGREPL_FAULTS_BOUNDARIES", "site switchover failover reseed rejoin").split()
                      if matrix == "full" else [])
        step = max(1, int(os.environ.get("PGREPL_FAULTS_STEP", "1")))
        offset = max(1, int(os.environ.get("PGREPL_FAULTS_OFFSET", "1")))
        fresh = [f for f in chosen if f.op == FRESH_SITE]
        if fresh or "site" in boundaries:
            run_fresh_site(bench, fresh, "site" in boundaries, step, limit, offset)
        boundaries = [op for op in boundaries if op != "site"]
        say(f"{matrix}: 1+2 cluster ({IMAGE}) built by site, samplers and ledger started")
        bench.start(small_filesystem=matrix == "full" and any(f.action == "fill" for f in faults))
        while faults or boundaries:
            if not faults:
                # The next operation's task boundaries, counted from a clean run of it (a reference row).
                op = boundaries.pop(0)
                if bench.broken:
                    continue
                say(f"{op}: counting its task boundaries with a clean run")
                faults = boundary_faults(op, bench.count_tasks(op), step, offset)
                continue
            if limit and len(bench.outcomes) >= limit:
                break
            fault = faults.pop(0)
            say(f"{len(bench.outcomes) + 1}. {fault.name}")
            out = bench.run_fault(fault)
            bench.outcomes.append(out)
            say(f"  fired {out.fired}; faulted {out.faulted}; re-run {out.rerun} ({out.path}); converged "
                f"{out.converged}; splits {out.splits}; lost {out.lost}; {out.seconds:.0f} s"
                + (f"; ERROR {out.error}" if out.error else ""))
        say("control: a standby promoted by hand while the primary runs must be seen as a split")
        try:
            control = bench.control()
        except Exception as exc:  # noqa: BLE001 - shown, and it fails the bench
            control = f"FAILED: {exc}"
        say(f"  {control}")
    finally:
        bench.stop()
        remove_prefixed(f"{PREFIX}{tag}")
    seconds = time.monotonic() - began
    part = part_name()
    context = (f"`{'make faults' if matrix == 'full' else 'scripts/test.sh faults'}` ({matrix}"
               f"{f', part {part!r}: ' + part_options() if part else ''}), commit {code}, "
               f"{started:%Y-%m-%d %H:%M} UTC on {platform.node()} ({os.cpu_count()} CPUs), image {IMAGE}, "
               f"1 primary + 2 asynchronous standbys, ledger every 10 ms, samplers every "
               f"{SAMPLE_INTERVAL * 1000:.0f} ms per node; {seconds:.0f} s in all. Control (a standby promoted "
               f"by hand while the primary runs, at the end): {control}")
    text = markdown(bench.outcomes, context)
    label = f"part-{part}" if part else matrix
    table = OUT / ("table.md" if label == "full" else f"table-{label}.md")
    table.write_text(text)
    (OUT / f"results-{label}.json").write_text(json.dumps(
        {"context": context, "control": control, "totals": totals(bench.outcomes), "reference_tasks": bench.reference,
         "outcomes": [{**dataclasses.asdict(o), "fault": dataclasses.asdict(o.fault)} for o in bench.outcomes]},
        indent=2))
    print(text)
    say(f"written {table.relative_to(ROOT)}; logs in {(OUT / tag / 'logs').relative_to(ROOT)}/")
    return bench.outcomes, control


# A full matrix takes longer than one sitting: PGREPL_FAULTS_PART names a part of it (run with its own
# PGREPL_FAULTS_ONLY / _BOUNDARIES / _STEP / _OFFSET), written to table-part-<name>.md and results-part-<name>.json;
# `flt_bench.py merge` puts every part's table into table-merged.md under one total.
PART_OPTIONS = ("PGREPL_FAULTS_ONLY", "PGREPL_FAULTS_BOUNDARIES", "PGREPL_FAULTS_STEP", "PGREPL_FAULTS_OFFSET",
                "PGREPL_FAULTS_LIMIT")


def part_name() -> str:
    name = os.environ.get("PGREPL_FAULTS_PART", "").strip()
    if name and not re.fullmatch(r"[A-Za-z0-9_.-]{1,40}", name):
        raise SystemExit(f"PGREPL_FAULTS_PART: {name!r} is not a name of letters, digits, '_', '.', '-' (1-40)")
    return name


def part_options() -> str:
    return ", ".join(f"{key}={os.environ[key]!r}" for key in PART_OPTIONS if key in os.environ) or "defaults"


def commit() -> str:
    proc = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                          check=False)
    return proc.stdout.strip() or "unknown"


def part_files(folders: tuple[Path, ...]) -> dict[str, Path]:
    """Each part's results file by part name; a later folder's part of the same name wins (a part run here again
    replaces the kept one)."""
    found: dict[str, Path] = {}
    for folder in folders:
        for path in sorted(folder.glob("results-part-*.json")):
            found[path.stem[len("results-part-"):]] = path
    return dict(sorted(found.items()))


def merge_parts(folder: Path = OUT, kept: Path = KEPT) -> str:
    """Every part's table under one total, written to `folder`/table-merged.md: the parts kept in the repository
    (`kept`: parts of earlier sittings, whose machines are gone) and those run here (`folder`)."""
    parts = part_files((kept, folder))
    if not parts:
        raise SystemExit(f"no results-part-*.json in {kept} or {folder}: run parts with PGREPL_FAULTS_PART first")
    total: dict[str, int] = {}
    sections = []
    for name, path in parts.items():
        result = json.loads(path.read_text())
        for key, value in result["totals"].items():
            total[key] = total.get(key, 0) + int(value)
        table = path.parent / f"table-part-{name}.md"
        sections += [f"## Part {name}", "", table.read_text() if table.exists() else result["context"], ""]
    head = [f"The fault matrix in {len(parts)} parts (each part's own line says how and on which commit it ran).",
            "", "| " + " | ".join(total) + " |", "|" + "---|" * len(total),
            "| " + " | ".join(map(str, total.values())) + " |", ""]
    text = "\n".join(head + sections)
    (folder / "table-merged.md").write_text(text)
    return text


def keep_part(name: str, folder: Path = OUT, kept: Path = KEPT) -> list[Path]:
    """Copy a finished part's table and results into the repository (`kept`), so that the merge of a later sitting,
    on another machine, still counts it."""
    files = [folder / f"results-part-{name}.json", folder / f"table-part-{name}.md"]
    missing = [str(f) for f in files if not f.exists()]
    if missing:
        raise SystemExit(f"part {name!r}: not found: {', '.join(missing)}")
    kept.mkdir(parents=True, exist_ok=True)
    copies = []
    for path in files:
        copy = kept / path.name
        copy.write_text(path.read_text())
        copies.append(copy)
    return copies


def failures(outcomes: list[Outcome], control: str) -> list[str]:
    """What fails the bench: a fault that did not converge, a split, a lost commit, unless recorded in KNOWN; a
    control that saw no split (the instrument is blind)."""
    bad = [] if control.startswith("seen: ") else [f"control: {control}"]
    for o in outcomes:
        if not o.passed and not o.expected_failure:
            bad.append(f"{o.fault.name}: converged={o.converged} splits={o.splits} lost={o.lost} {o.error} "
                       f"(logs: {', '.join(o.logs[-2:])})")
    return bad


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("matrix", choices=("ci", "full", "merge", "keep"), nargs="?", default="full")
    parser.add_argument("part", nargs="?", default="", help="with keep: the part's name (PGREPL_FAULTS_PART)")
    args = parser.parse_args()
    if args.matrix == "merge":
        print(merge_parts())
        return 0
    if args.matrix == "keep":
        if not args.part:
            parser.error("keep: name the part (PGREPL_FAULTS_PART of its run)")
        for copy in keep_part(args.part):
            say(f"kept {copy.relative_to(ROOT)}")
        return 0
    outcomes, control = run(args.matrix)
    bad = failures(outcomes, control)
    for line in bad:
        say(f"FAILED {line}")
    return 1 if bad else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        say("interrupted")
        sys.exit(130)
