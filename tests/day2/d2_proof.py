# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Proof under load: one operation at a time with the ledger writing, then the checks, with the figures kept.

    proof = Proof(cluster, ledger)
    window = proof.begin("switchover")          # ledger resumed, writing
    run = cluster.playbook("switchover", ...)   # the operation
    proof.end(window, new_primary)              # waits for writes on the new primary, pauses the ledger
    figures = proof.check(window, primary, standbys)   # lost, dumps, gap; raises ProofError when one fails
"""

from __future__ import annotations

import dataclasses
import re
import time
from typing import Optional

from d2_cluster import DayTwoCluster, PlaybookRun, snapshot_diff
from d2_ledger import Commit, Gap, LedgerClient, first_commit_on, max_gap, missing, not_past, on_servers

from ansible_collections.pgrepl.streaming.plugins.module_utils._lsn import format_lsn

# Commits to see before an operation starts, so the gap around it is measured between real commits.
WARMUP_COMMITS = 20
SETTLE = 1.0  # seconds of writes kept after the first commit on the new primary
RECAP = re.compile(r"^(\S+)\s+:\s+ok=\d+\s+changed=\d+\s+unreachable=(\d+)\s+failed=(\d+)", re.MULTILINE)
RECAP_CHANGED = re.compile(r"^(\S+)\s+:\s+ok=\d+\s+changed=(\d+)", re.MULTILINE)


class ProofError(AssertionError):
    """An operation lost acknowledged commits, left nodes that differ, or changed something it refused."""


@dataclasses.dataclass
class Window:
    op: str
    resumed: float
    started: float = 0.0      # wall time the operation started (after the warm-up)
    finished: float = 0.0     # wall time the operation returned
    paused: float = 0.0


@dataclasses.dataclass
class Figures:
    op: str
    seconds: float             # the operation itself (playbook or raw procedure)
    commits: int               # acknowledged in the window
    gap: Gap
    lost: int                  # acknowledged, then missing on the current primary (not excused before)
    first_write: Optional[float] = None   # seconds from the operation's start to the first commit on the new primary
    servers: str = ""
    dumps: str = ""
    note: str = ""

    def row(self, names: dict[str, str]) -> list[str]:
        note = self.note if len(self.note) <= 110 else self.note[:107] + "..."
        return [self.op, f"{self.seconds:.1f}", str(self.commits), self.gap.describe(names), str(self.lost),
                "-" if self.first_write is None else f"{self.first_write:.2f}", note]


HEADERS = ("operation", "seconds", "commits", "largest gap between acknowledged commits", "lost",
           "first write on new primary (s)", "note")


def table(rows: list[list[str]], headers: tuple[str, ...] = HEADERS) -> str:
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    lines = ["  ".join(str(h).ljust(w) for h, w in zip(headers, widths)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join(lines)


def recap_problems(run: PlaybookRun, unreachable_ok: tuple[str, ...] = ()) -> list[str]:
    """Why a run cannot count as a refusal by a check: it never ran a play, or a host was unreachable (other than
    those the caller made unreachable)."""
    if "PLAY RECAP" not in run.output:
        return ["no PLAY RECAP: the playbook did not run (missing, or a syntax or option error)"]
    return [f"{host} unreachable" for host, unreachable, failed in RECAP.findall(run.output)
            if int(unreachable) and host not in unreachable_ok]


class Proof:
    def __init__(self, cluster: DayTwoCluster, ledger: LedgerClient) -> None:
        self.cluster = cluster
        self.ledger = ledger
        self.excused: set[int] = set()  # lost in an async failover, accepted there (past the received LSN)
        self.figures: list[Figures] = []

    # --- a window of writes around one operation ---------------------------------------------------------------

    def begin(self, op: str) -> Window:
        resumed = self.ledger.resume()
        self.ledger.wait_commits(WARMUP_COMMITS, after=resumed, timeout=60)
        return Window(op, resumed, started=time.time())

    def end(self, win: Window, new_primary: str, timeout: float = 60) -> Optional[Commit]:
        """After the operation: wait until the (new) primary acknowledged a commit after the operation returned
        (writes go on), keep writing a moment, pause."""
        if not win.finished:
            win.finished = time.time()
        first = None
        try:
            first = self.ledger.wait_commits(1, server=self.cluster.address[new_primary], after=win.finished,
                                             timeout=timeout)
            time.sleep(SETTLE)
        finally:
            win.paused = self.ledger.pause()
        return first

    # --- the checks ------------------------------------------------------------------------------------------

    def check(self, win: Window, primary: str, standbys: list[str], *, seconds: float,
              received_lsn: Optional[int] = None, sync_failover: bool = True, dumps: bool = True,
              moved: bool = False, note: str = "") -> Figures:
        """Ledger paused. Acknowledged-but-missing on `primary` = 0, or for an async failover (received_lsn
        given, sync_failover False) every missing commit lies past the promoted node's received LSN; then every
        node's dump identical; figures kept (`moved`: the primary changed, so the time to its first write counts).
        Raises ProofError naming what failed."""
        commits = self.ledger.records()
        names = self.cluster.address
        inv = {addr: name for name, addr in names.items()}
        present = self.cluster.present_ids(primary)
        lost = missing(commits, present, frozenset(self.excused))
        first = first_commit_on(commits, names[primary], win.started)
        figures = Figures(
            op=win.op, seconds=seconds, commits=len([c for c in commits if win.resumed <= c.at <= win.paused]),
            gap=max_gap(commits, win.resumed, win.paused), lost=len(lost),
            first_write=(first.at - win.started) if first and moved else None,
            servers=", ".join(f"{inv.get(k, k)}: {v}" for k, v in on_servers(commits, win.resumed, win.paused).items()),
            note=note)
        self.figures.append(figures)
        if lost:
            shown = ", ".join(f"#{c.id} (on {inv.get(c.server, c.server)}, WAL {format_lsn(c.lsn)})" for c in lost[:10])
            if received_lsn is None or sync_failover:
                raise ProofError(f"{win.op}: {len(lost)} acknowledged commit(s) missing on the primary {primary}: "
                                 f"{shown}")
            early = not_past(lost, received_lsn)
            if early:
                raise ProofError(
                    f"{win.op}: {len(early)} lost commit(s) lie at or before the promoted node's received LSN "
                    f"{format_lsn(received_lsn)} (it had them): "
                    + ", ".join(f"#{c.id} WAL {format_lsn(c.lsn)}" for c in early[:10]))
            self.excused.update(c.id for c in lost)
            figures.note = (figures.note + "; " if figures.note else "") + (
                f"async: {len(lost)} lost, all past received {format_lsn(received_lsn)}")
        if dumps:
            result = self.cluster.compare_dumps(primary, standbys)
            figures.dumps = result.detail
            if not result.identical:
                raise ProofError(f"{win.op}: the nodes' dumps differ after catching up:\n{result.detail}")
        return figures

    # --- refusals --------------------------------------------------------------------------------------------

    def dry_run(self, label: str, name: str, *extra: str) -> PlaybookRun:
        """`--check` of an operation: it must succeed, print its summary and change nothing on any node or in
        groups.yml."""
        cluster = self.cluster
        groups_before = cluster.groups_file.read_text()
        before = cluster.snapshots()
        run = cluster.playbook(name, *extra, label=label, check=True)
        after = cluster.snapshots()
        problems = []
        if run.returncode != 0:
            problems.append(f"it failed (exit {run.returncode})")
        if "check mode: nothing is done" not in run.output:
            problems.append("it printed no dry-run summary")
        changes = snapshot_diff(before, after)
        if changes:
            problems.append("it changed: " + "; ".join(changes))
        if cluster.groups_file.read_text() != groups_before:
            problems.append(f"it rewrote {cluster.groups_file.name}")
        if problems:
            raise ProofError(f"check mode '{label}': " + "\n".join(problems) + "\n" + run.describe())
        self.figures.append(Figures(op=f"check mode: {label}", seconds=run.seconds, commits=0,
                                    gap=Gap(0.0, None, None), lost=0, note="summary printed, nothing changed"))
        return run

    def refused(self, label: str, name: str, *extra: str, primary: str, standbys: list[str],
                deferred: Optional[list[str]] = None, unreachable: tuple[str, ...] = ()) -> PlaybookRun:
        """Run an operation that must be refused; prove it exited non-zero from a check (a play ran, every host
        reachable but those in `unreachable`) and that nothing changed on any node or in groups.yml. The caller
        set up the condition.

        A failure that left every node as it was (the playbook missing, say) goes to `deferred` when given, so
        the chain goes on; one that changed something raises at once (what follows would prove nothing)."""
        cluster = self.cluster
        groups_before = cluster.groups_file.read_text()
        before = cluster.snapshots()
        run = cluster.playbook(name, *extra, label=label)
        after = cluster.snapshots()
        problems = []
        if run.returncode == 0:
            problems.append("it was not refused (exit 0)")
        problems += recap_problems(run, unreachable)
        changes = snapshot_diff(before, after)
        if changes:
            problems.append("it changed: " + "; ".join(changes))
        rewrote = cluster.groups_file.read_text() != groups_before
        if rewrote:
            problems.append(f"it rewrote {cluster.groups_file.name}:\n{cluster.groups_file.read_text()}")
        if problems:
            text = f"refusal '{label}': " + "\n".join(problems) + "\n" + run.describe()
            if deferred is None or changes or rewrote or run.returncode == 0:
                raise ProofError(text)
            deferred.append(text)
            self.figures.append(Figures(op=f"NOT PROVEN: {label}", seconds=run.seconds, commits=0,
                                        gap=Gap(0.0, None, None), lost=0, note=problems[0][:160]))
            return run
        self.figures.append(Figures(op=f"refused: {label}", seconds=run.seconds, commits=0, gap=Gap(0.0, None, None),
                                    lost=0, note=first_message(run)))
        return run


def first_message(run: PlaybookRun) -> str:
    """The refusal's own words, short: the first failed task's msg."""
    for match in re.finditer(r'"msg":\s*"((?:[^"\\]|\\.)*)"', run.output):
        text = match.group(1).replace("\\n", " ").replace('\\"', '"')
        if text:
            return " ".join(text.split())[:160]
    for line in run.output.splitlines():
        if line.startswith(("fatal:", "ERROR!", "[ERROR]")):
            return " ".join(line.split())[:160]
    return ""
