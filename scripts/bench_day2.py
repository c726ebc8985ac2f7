# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""`make bench-day2`: the switchover and failover playbooks against the raw manual procedure, under the write ledger.

Run through scripts/bench-day2.sh (venv, images, Ansible environment, removal of every pgrepl-bd2-* container).
Each side gets a fresh 1+2 cluster built by the site playbook (untimed) and the ledger client writing through libpq
with target_session_attrs=read-write; then, measured with the ledger:
  switchover  n0 -> n1: the playbook, or by hand (docker exec): fast shutdown of the primary, wait until n1
              replayed its shutdown checkpoint, SELECT pg_promote(), repoint n2 and the old primary.
              Figures: the largest gap between acknowledged commits around it, and the lost commits.
  failover    the primary's postmaster gets SIGKILL (systemctl kill), then the playbook, or by hand: SELECT
              pg_promote() on the standby with the highest received LSN, repoint the other. Figures: seconds from
              the operation's start until the first commit acknowledged by the new primary, and the lost commits
              (asynchronous: each one must lie past the promoted node's received LSN).
Targets (issue 11): switchover gap <= 1.5x the raw procedure's; failover writes on the new primary within 2.5 s of
the playbook's start.
Writes .build/bench/day2.md and .build/bench/day2.json; logs under .build/bench/day2/.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import Optional

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "day2"))
# The collection's own slot names and WAL positions (as scripts/deps.sh links it).
sys.path.insert(0, str(ROOT / ".build" / "collections"))

from bench_common import exit_status  # noqa: E402
from d2_cluster import CLIENT_IMAGE, DayTwoCluster, PlaybookRun  # noqa: E402
from d2_docker import DockerError, TimedCommands, env_flag, remove_prefixed  # noqa: E402
from d2_ledger import LedgerError  # noqa: E402
from d2_proof import Figures, Proof, ProofError  # noqa: E402

from ansible_collections.pgrepl.streaming.plugins.module_utils._lsn import format_lsn, parse_lsn  # noqa: E402
from ansible_collections.pgrepl.streaming.plugins.module_utils._names import slot_name_from_host  # noqa: E402

OUT = ROOT / ".build" / "bench"
WORK = OUT / "day2"
PREFIX = "pgrepl-bd2-"
IMAGE = os.environ.get("PGREPL_BENCH_DAY2_IMAGE", "pgrepl-test/pg15:current")
# Targets (issue 11 item 6): the switchover's largest write gap at most 1.5x the manual procedure's gap in the same
# run; the first write on the new primary at most 2.5 s after the failover playbook starts.
SWITCHOVER_GAP_RATIO_MAX = 1.5
FAILOVER_WRITES_MAX = 2.5
REPLAY_TIMEOUT = 60
# The Ansible side's connection, as `make bench` has it (docs/performance.md, "The Ansible side"): docker exec runs as
# root, as the raw side's commands do, so no become, and pipelining (one exec per module call instead of four, which
# the raw side does not pay either). "su": the day-2 chain's inventory (become via su, so no pipelining).
CONNECTIONS = ("root", "su")
CONNECTION = os.environ.get("PGREPL_BENCH_DAY2_CONNECTION", "root")


class BenchError(Exception):
    """A step failed: the measurement it belongs to is not reported."""


def say(msg: str) -> None:
    print(f"[bench-day2] {msg}", flush=True)


# --- the raw manual procedure --------------------------------------------------------------------------------

class Raw(TimedCommands):
    """The manual steps, each one `docker exec`, timed and logged one after another."""

    def __init__(self, cluster: DayTwoCluster, log: Path) -> None:
        super().__init__(log, "a")
        self.cluster = cluster

    def sql(self, node: str, query: str) -> str:
        return self.run(node, ["psql", "-X", "-A", "-t", "-q", "-c", query], user="postgres")

    def note(self, text: str) -> None:
        self.log.write(f"# {text}\n")

    def conninfo(self, primary: str, standby: str) -> str:
        c = self.cluster
        return (f"host={c.address[primary]} port=5432 user=replicator passfile=/var/lib/postgresql/.pgpass "
                f"application_name={standby}")

    def follow(self, new: str, standby: str, running: bool) -> None:
        """Point `standby` at `new`: its slot there, primary_conninfo and primary_slot_name (a running standby
        by ALTER SYSTEM and a reload; a stopped former primary by the files, then a start)."""
        c = self.cluster
        slot = slot_name_from_host(standby)
        # A former primary still has the slots of its own standbys: one left there is taken over as it is.
        self.sql(new, f"SELECT pg_create_physical_replication_slot('{slot}', true) WHERE NOT EXISTS "  # noqa: S608
                      f"(SELECT 1 FROM pg_replication_slots WHERE slot_name = '{slot}')")
        conninfo = self.conninfo(new, standby)
        if running:
            self.sql(standby, f"ALTER SYSTEM SET primary_conninfo = '{conninfo}'")
            self.sql(standby, f"ALTER SYSTEM SET primary_slot_name = '{slot}'")
            self.sql(standby, "SELECT pg_reload_conf()")
            return
        lines = f"primary_conninfo = '{conninfo}'\nprimary_slot_name = '{slot}'\n"
        self.run(standby, ["sh", "-c", f"printf %s {shlex.quote(lines)} >> {c.data_dir}/postgresql.auto.conf && "
                                       f"touch {c.data_dir}/standby.signal"], user="postgres")
        self.run(standby, ["systemctl", "start", c.unit])

    def switchover(self, old: str, new: str, others: list[str]) -> float:
        c = self.cluster
        start = time.monotonic()
        self.note(f"switchover {old} -> {new}")
        self.run(old, ["systemctl", "stop", c.unit])  # Debian's unit: pg_ctlcluster -m fast stop
        control = self.run(old, [f"{c.bin_dir}/pg_controldata", "-D", c.data_dir], user="postgres")
        checkpoint = next(line.split(":", 1)[1].strip() for line in control.splitlines()
                          if line.startswith("Latest checkpoint location:"))
        deadline = time.monotonic() + REPLAY_TIMEOUT
        while True:  # what the person checks again and again: has the standby replayed the shutdown checkpoint?
            replayed = self.sql(new, "SELECT pg_last_wal_replay_lsn()")
            if parse_lsn(replayed) > parse_lsn(checkpoint):
                break
            if time.monotonic() > deadline:
                raise BenchError(f"raw switchover: {new} replayed {replayed}, not past the shutdown checkpoint "
                                 f"{checkpoint}, after {REPLAY_TIMEOUT} s")
            time.sleep(0.05)
        if self.sql(new, "SELECT pg_promote()") != "t":
            raise BenchError(f"raw switchover: pg_promote() on {new} did not complete")
        for other in others:
            self.follow(new, other, running=True)
        self.follow(new, old, running=False)
        return time.monotonic() - start

    def failover(self, standbys: list[str]) -> tuple[str, int, float]:
        """pg_promote() on the standby with the highest received LSN; returns (it, its received LSN, seconds)."""
        start = time.monotonic()
        received = {s: parse_lsn(self.sql(s, "SELECT pg_last_wal_receive_lsn()")) for s in standbys}
        best = max(standbys, key=lambda s: received[s])
        self.note(f"failover: received {', '.join(f'{s}={format_lsn(v)}' for s, v in received.items())}; "
                  f"promoting {best}")
        if self.sql(best, "SELECT pg_promote()") != "t":
            raise BenchError(f"raw failover: pg_promote() on {best} did not complete")
        for other in standbys:
            if other != best:
                self.follow(best, other, running=True)
        return best, received[best], time.monotonic() - start


# --- one side: a fresh cluster, switchover then failover ----------------------------------------------------

@dataclasses.dataclass
class SideResult:
    side: str
    switchover: Optional[Figures] = None
    failover: Optional[Figures] = None
    failover_from_kill: Optional[float] = None
    errors: list[str] = dataclasses.field(default_factory=list)


def require(run: PlaybookRun, what: str) -> PlaybookRun:
    if run.returncode != 0:
        raise BenchError(f"{what} failed:\n{run.describe()}")
    return run


def use_bench_connection(cluster: DayTwoCluster) -> None:
    """base.yml with CONNECTION's variables (the chain's inventory as it is for "su")."""
    if CONNECTION == "su":
        return
    base = yaml.safe_load(cluster.base_file.read_text())
    variables = base["all"]["vars"]
    variables.pop("ansible_become_method", None)
    variables.update(ansible_become=False, ansible_pipelining=True)
    cluster.base_file.write_text(yaml.safe_dump(base, default_flow_style=False, sort_keys=False))


def bench_side(side: str, round_: int, sync: bool) -> SideResult:
    result = SideResult(side)
    tag = f"{side}{round_}"
    cluster = DayTwoCluster(PREFIX, tag, IMAGE, CLIENT_IMAGE, WORK / tag, standbys=2, sync=(2,) if sync else ())
    n0, n1, n2 = cluster.names
    failed = True
    ledger = None
    try:
        say(f"{side}: fresh 1+2 cluster ({IMAGE}), built by the site playbook (not timed)")
        cluster.start()
        cluster.prepare_ledger()
        cluster.write_inventory()
        use_bench_connection(cluster)
        require(cluster.playbook("site", label="build"), "site")
        cluster.wait_streaming(n0, [n1, n2])
        ledger = cluster.ledger()
        ledger.start()
        proof = Proof(cluster, ledger)
        ledger.pause()
        raw = Raw(cluster, cluster.logdir / "raw-commands.log")
        try:
            # Switchover n0 -> n1.
            win = proof.begin("switchover")
            if side == "playbook":
                run = require(cluster.playbook("switchover", f"pgrepl_target={n1}"), "switchover playbook")
                seconds = run.seconds
                primary, standbys = cluster.groups()
                if primary != n1:
                    raise BenchError(f"switchover playbook: groups.yml names {primary} as primary, not {n1}")
            else:
                seconds = raw.switchover(n0, n1, [n2])
                cluster.set_groups(n1, [n0, n2])
            win.finished = time.time()
            proof.end(win, n1)
            result.switchover = proof.check(win, n1, [n0, n2], seconds=seconds, moved=True)
            cluster.wait_streaming(n1, [n0, n2])
            say(f"{side} switchover: {seconds:.1f} s, largest write gap {result.switchover.gap.seconds:.2f} s, "
                f"lost {result.switchover.lost}")

            # Failover: SIGKILL to n1's postmaster, then promote the most advanced of n0, n2.
            win = proof.begin("failover")
            killed = time.time()
            cluster.kill_server(n1)
            win.started = time.time()
            if side == "playbook":
                run = require(cluster.playbook("failover"), "failover playbook")
                seconds = run.seconds
                report = run.report or {}
                new = report.get("new_primary")
                received = parse_lsn(str((report.get("promoted") or {}).get("received_lsn", "0/0")))
                if new not in (n0, n2):
                    raise BenchError(f"failover playbook: report names new primary {new!r} ({report})")
            else:
                new, received, seconds = raw.failover([n0, n2])
            win.finished = time.time()
            others = [s for s in (n0, n2) if s != new]
            proof.end(win, new)
            result.failover = proof.check(win, new, others, seconds=seconds, received_lsn=received,
                                          sync_failover=sync, moved=True)
            first = result.failover.first_write
            result.failover_from_kill = None if first is None else first + (win.started - killed)
            say(f"{side} failover: {seconds:.1f} s, first write on {new} {first if first is None else round(first, 2)}"
                f" s after the start, lost {result.failover.lost}")
        finally:
            raw.close()
            ledger.stop()
        failed = False
    except (BenchError, ProofError, LedgerError, DockerError) as exc:
        result.errors.append(f"{side}: {exc}")
        say(f"ERROR {side}: {exc}")
    finally:
        if not (failed and env_flag("PGREPL_BENCH_KEEP")):
            cluster.destroy()
    return result


# --- the table -----------------------------------------------------------------------------------------------

def median(values: list[Optional[float]]) -> Optional[float]:
    kept = [v for v in values if v is not None]
    return statistics.median(kept) if kept else None


def fmt(value: Optional[float], digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def verdict(value: Optional[float], limit: float) -> str:
    return "n/a" if value is None else ("PASS" if value <= limit else "MISS")


def ratio(value: Optional[float], raw: Optional[float]) -> Optional[float]:
    """value / raw, or None when either is unknown (or raw is 0)."""
    return None if value is None or not raw else value / raw


def rows_of(results: dict[str, list[SideResult]]) -> list[list[str]]:
    def pick(side: str, attr: str, field: str) -> Optional[float]:
        values = []
        for r in results.get(side, []):
            fig = getattr(r, attr)
            if fig is None:
                continue
            values.append(fig.gap.seconds if field == "gap" else getattr(fig, field))
        return median(values)

    def from_kill(side: str) -> Optional[float]:
        return median([r.failover_from_kill for r in results.get(side, [])])

    rows = [
        ["switchover: largest write gap (s)", fmt(pick("playbook", "switchover", "gap")),
         fmt(pick("raw", "switchover", "gap")), f"<= {SWITCHOVER_GAP_RATIO_MAX:g}x raw",
         verdict(ratio(pick("playbook", "switchover", "gap"), pick("raw", "switchover", "gap")),
                 SWITCHOVER_GAP_RATIO_MAX)],
        ["switchover: acknowledged commits lost", fmt(pick("playbook", "switchover", "lost"), 0),
         fmt(pick("raw", "switchover", "lost"), 0), "0", verdict(pick("playbook", "switchover", "lost"), 0)],
        ["switchover: duration of the operation (s)", fmt(pick("playbook", "switchover", "seconds"), 1),
         fmt(pick("raw", "switchover", "seconds"), 1), "(info)", ""],
        ["failover: first write on the new primary after the start (s)",
         fmt(pick("playbook", "failover", "first_write")), fmt(pick("raw", "failover", "first_write")),
         f"<= {FAILOVER_WRITES_MAX:g} s",
         verdict(pick("playbook", "failover", "first_write"), FAILOVER_WRITES_MAX)],
        ["  the same, from the SIGKILL (s)", fmt(from_kill("playbook")), fmt(from_kill("raw")), "(info)", ""],
        ["failover: largest write gap (s)", fmt(pick("playbook", "failover", "gap")),
         fmt(pick("raw", "failover", "gap")), "(info)", ""],
        ["failover: acknowledged commits lost", fmt(pick("playbook", "failover", "lost"), 0),
         fmt(pick("raw", "failover", "lost"), 0), "each past the received LSN", ""],
        ["failover: duration of the operation (s)", fmt(pick("playbook", "failover", "seconds"), 1),
         fmt(pick("raw", "failover", "seconds"), 1), "(info)", ""],
    ]
    return rows


HEADERS = ["measurement", "playbook", "raw", "target", "result"]


def text_table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [HEADERS, *rows]) for i in range(len(HEADERS))]
    out = ["  ".join(h.ljust(w) for h, w in zip(HEADERS, widths)), "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join(out)


def markdown(rows: list[list[str]], context: dict[str, str]) -> str:
    lines = [f"Measured {context['date']} on {context['machine']}: {context['details']}.", "",
             "| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def figures_json(fig: Optional[Figures]) -> Optional[dict]:
    if fig is None:
        return None
    return {"seconds": fig.seconds, "commits": fig.commits, "gap": fig.gap.seconds, "lost": fig.lost,
            "first_write": fig.first_write, "servers": fig.servers, "note": fig.note, "dumps": fig.dumps}


def main() -> int:
    sides = os.environ.get("PGREPL_BENCH_DAY2_SIDES", "playbook raw").split()
    repeat = int(os.environ.get("PGREPL_BENCH_DAY2_REPEAT", "1"))
    sync = env_flag("PGREPL_BENCH_DAY2_SYNC")
    if CONNECTION not in CONNECTIONS:
        raise SystemExit(f"PGREPL_BENCH_DAY2_CONNECTION: {CONNECTION!r} is not one of {', '.join(CONNECTIONS)}")
    started = datetime.datetime.now(datetime.timezone.utc)
    WORK.mkdir(parents=True, exist_ok=True)
    remove_prefixed(PREFIX)
    results: dict[str, list[SideResult]] = {side: [] for side in sides}
    try:
        for round_ in range(1, repeat + 1):
            for side in sides:
                results[side].append(bench_side(side, round_, sync))
    finally:
        if not env_flag("PGREPL_BENCH_KEEP"):
            remove_prefixed(PREFIX)
    rows = rows_of(results)
    details = (f"image {IMAGE}, 1 primary + 2 {'standbys (one synchronous)' if sync else 'asynchronous standbys'}, "
               f"ledger client committing every 10 ms through libpq (target_session_attrs=read-write), "
               f"{repeat} round(s){' (medians)' if repeat > 1 else ''}, sides {' '.join(sides)}, Ansible connection "
               f"{'as root with pipelining' if CONNECTION == 'root' else 'with become via su, no pipelining'}")
    context = {"date": started.strftime("%Y-%m-%d %H:%M UTC"),
               "machine": f"{platform.node() or 'this machine'} ({os.cpu_count()} CPUs)", "details": details}
    print()
    print(text_table(rows))
    print(f"({details})")
    errors = [e for side in results.values() for r in side for e in r.errors]
    (OUT / "day2.md").write_text(markdown(rows, context))
    (OUT / "day2.json").write_text(json.dumps({
        "context": context,
        "rounds": {side: [{"switchover": figures_json(r.switchover), "failover": figures_json(r.failover),
                           "failover_from_kill": r.failover_from_kill, "errors": r.errors} for r in rs]
                   for side, rs in results.items()},
        "errors": errors,
    }, indent=2))
    say(f"written {(OUT / 'day2.md').relative_to(ROOT)} and day2.json; logs in {WORK.relative_to(ROOT)}/")
    return exit_status(errors, rows, say)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        say("interrupted")
        sys.exit(130)
