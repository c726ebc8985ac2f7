# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The write ledger: control of the client (ledger_client.py in the client container) and what its records prove.

The analysis functions are pure (lists of Commit in, figures out) so they are tested without containers.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Optional

from d2_docker import dexec, docker

from ansible_collections.pgrepl.streaming.plugins.module_utils._lsn import parse_lsn

CLIENT_DIR = "/ledger-bin"  # tests/day2, read-only in the client container
OUT_DIR = "/ledger-out"     # the ledger's files, a directory of the host


@dataclasses.dataclass(frozen=True)
class Commit:
    """One acknowledged commit: row id, wall time of the acknowledgement, WAL position after it, server address."""
    id: int
    at: float
    lsn: int
    server: str


@dataclasses.dataclass(frozen=True)
class Event:
    at: float
    kind: str
    detail: str


def parse_records(text: str) -> list[Commit]:
    """records.tsv; a last line without its newline (being written) is left out."""
    commits = []
    for line in text.split("\n")[:-1]:
        if not line.strip():
            continue
        row_id, at, lsn, server = line.split("\t")
        commits.append(Commit(int(row_id), float(at), parse_lsn(lsn), server))
    return commits


def parse_events(text: str) -> list[Event]:
    events = []
    for line in text.split("\n")[:-1]:
        parts = line.split("\t", 2)
        if len(parts) == 3:
            events.append(Event(float(parts[0]), parts[1], parts[2]))
    return events


# --- what the records prove ----------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Gap:
    seconds: float
    after: Optional[Commit]
    before: Optional[Commit]

    def describe(self, names: Optional[dict[str, str]] = None) -> str:
        if self.after is None or self.before is None:
            return f"{self.seconds:.3f} s"
        names = names or {}
        return (f"{self.seconds:.3f} s (between #{self.after.id} on {names.get(self.after.server, self.after.server)}"
                f" and #{self.before.id} on {names.get(self.before.server, self.before.server)})")


def window(commits: list[Commit], start: float, end: float) -> list[Commit]:
    return sorted((c for c in commits if start <= c.at <= end), key=lambda c: (c.at, c.id))


def max_gap(commits: list[Commit], start: float, end: float) -> Gap:
    """The largest time between consecutive acknowledged commits acknowledged within [start, end]."""
    inside = window(commits, start, end)
    best = Gap(0.0, None, None)
    for before, after in zip(inside, inside[1:]):
        if after.at - before.at > best.seconds:
            best = Gap(after.at - before.at, before, after)
    return best


def first_commit_on(commits: list[Commit], server: str, after: float) -> Optional[Commit]:
    """The first commit acknowledged by `server` at or after `after`."""
    found = [c for c in commits if c.server == server and c.at >= after]
    return min(found, key=lambda c: c.at) if found else None


def missing(commits: list[Commit], present_ids: set[int], excused: frozenset[int] = frozenset()) -> list[Commit]:
    """Acknowledged commits whose row is not there (the ones in `excused` were accepted as lost earlier)."""
    return [c for c in commits if c.id not in present_ids and c.id not in excused]


def not_past(lost: list[Commit], received_lsn: int) -> list[Commit]:
    """Async failover: lost commits that the promoted node had received (position after them <= its received
    LSN). Each one is a commit the promotion should have kept: the list must be empty."""
    return [c for c in lost if c.lsn <= received_lsn]


def on_servers(commits: list[Commit], start: float, end: float) -> dict[str, int]:
    counts: dict[str, int] = {}
    for c in window(commits, start, end):
        counts[c.server] = counts.get(c.server, 0) + 1
    return counts


# --- the client ----------------------------------------------------------------------------------------------

class LedgerError(Exception):
    """The ledger client did not do what it was told."""


class LedgerClient:
    """ledger_client.py in `container`, its files in `host_dir` (mounted at OUT_DIR there)."""

    def __init__(self, container: str, host_dir: Path, conninfo: str, interval: float = 0.01) -> None:
        self.container = container
        self.host_dir = host_dir
        self.conninfo = conninfo
        self.interval = interval

    def _state(self) -> str:
        try:
            return (self.host_dir / "state").read_text().strip()
        except FileNotFoundError:
            return ""

    def _wait_state(self, word: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self._state().startswith(word):
            if time.monotonic() > deadline:
                raise LedgerError(f"the ledger client did not report '{word}' within {timeout:.0f} s "
                                  f"(state: {self._state() or 'none'}; last events: {self.last_events()})")
            time.sleep(0.02)

    def start(self) -> None:
        self.host_dir.mkdir(parents=True, exist_ok=True)
        for name in ("records.tsv", "events.tsv", "state", "pause", "pid"):
            (self.host_dir / name).unlink(missing_ok=True)
        docker("exec", "-d", self.container, "python3", f"{CLIENT_DIR}/ledger_client.py",
               "--conninfo", self.conninfo, "--out", OUT_DIR, "--interval", str(self.interval))
        self._wait_state("running", 30)

    def wait_commits(self, count: int = 1, server: Optional[str] = None, after: Optional[float] = None,
                     timeout: float = 60) -> Commit:
        """Block until `count` commits (on `server`, acknowledged after `after`) are recorded; returns the last."""
        deadline = time.monotonic() + timeout
        while True:
            found = [c for c in self.records()
                     if (server is None or c.server == server) and (after is None or c.at >= after)]
            if len(found) >= count:
                return found[count - 1]
            if time.monotonic() > deadline:
                raise LedgerError(f"fewer than {count} commit(s){' on ' + server if server else ''} within "
                                  f"{timeout:.0f} s; last events: {self.last_events()}")
            time.sleep(0.05)

    def pause(self, timeout: float = 120) -> float:
        """No commit in flight from here on; returns when the client confirmed it."""
        (self.host_dir / "pause").touch()
        self._wait_state("paused", timeout)
        return time.time()

    def resume(self) -> float:
        (self.host_dir / "pause").unlink(missing_ok=True)
        self._wait_state("running", 30)
        return time.time()

    def stop(self) -> None:
        pid = (self.host_dir / "pid").read_text().strip() if (self.host_dir / "pid").exists() else ""
        if not pid:
            return
        dexec(self.container, "kill", "-TERM", pid, check=False)
        try:
            self._wait_state("stopped", 30)
        except LedgerError:
            dexec(self.container, "kill", "-KILL", pid, check=False)

    def records(self) -> list[Commit]:
        try:
            return parse_records((self.host_dir / "records.tsv").read_text())
        except FileNotFoundError:
            return []

    def events(self) -> list[Event]:
        try:
            return parse_events((self.host_dir / "events.tsv").read_text())
        except FileNotFoundError:
            return []

    def last_events(self, count: int = 3) -> str:
        return " | ".join(f"{e.kind} {e.detail}"[:200] for e in self.events()[-count:]) or "none"
