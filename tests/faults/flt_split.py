# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""When did each node accept writes, and did two ever do so at the same instant? Pure: samples in, figures out.

A sampler (flt_sampler_client.py) keeps one connection per node and takes a sample every ~20 ms: it notes the wall
time, sends one `UPDATE flt_probe ... WHERE node = <it>` (autocommit, synchronous_commit=local), and notes the wall
time again when the answer is back. A sample is

  W  the update committed: the node accepted a write at SOME instant of [start, end];
  R  refused with SQLSTATE 25006 (read_only_sql_transaction): the node was in recovery at some instant of it;
  E  anything else (no connection, a timeout): nothing is known; the connection is dropped and made again.

Each connection made is an epoch. The proof that a node accepted writes over a whole stretch of time rests on one
PostgreSQL fact: a server that has left recovery cannot enter it again without a restart of its postmaster, and a
restart ends every connection. So two W samples in a row on the same epoch (no R, no E between them) prove the node
was out of recovery from the end of the first to the start of the second; a run of W samples k..m on one epoch
proves it for the whole of [end_k, start_m] (a *writable span*). A lone W sample proves only a point somewhere in
its [start, end].

A **split-brain instant** is one where two nodes provably accepted writes at once: the conservative rule is
  - span of A and span of B overlap (max of starts < min of ends), or
  - a lone W sample of B lies entirely inside a span of A (A.start <= b.start and b.end <= A.end).
Two W samples of different nodes whose intervals merely overlap prove nothing (each write may have happened at a
different instant of its interval) and are not counted. Overlapping findings are merged: each merged window counts
as one instant. Timestamps come from one clock (every sampler runs in the same container).
"""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Iterable

WRITE, READ_ONLY, ERROR = "W", "R", "E"


@dataclasses.dataclass(frozen=True)
class Sample:
    node: str
    start: float
    end: float
    epoch: int
    state: str  # W, R or E
    detail: str = ""


@dataclasses.dataclass(frozen=True)
class Span:
    """`node` accepted writes throughout [start, end] (proven)."""
    node: str
    start: float
    end: float


@dataclasses.dataclass(frozen=True)
class Split:
    """Nodes `a` and `b` both accepted writes throughout [start, end] (a point inside it when start == end is not
    known: a lone sample's whole interval is given)."""
    start: float
    end: float
    a: str
    b: str

    def describe(self, t0: float = 0.0) -> str:
        return f"{self.a} and {self.b} writable at once in [{self.start - t0:.3f}, {self.end - t0:.3f}] s"


def parse_samples(node: str, text: str) -> list[Sample]:
    """samples-<node>.tsv: start, end, epoch, state, detail; a last line without its newline is left out."""
    samples = []
    for line in text.split("\n")[:-1]:
        parts = line.split("\t", 4)
        if len(parts) < 4:
            continue
        samples.append(Sample(node, float(parts[0]), float(parts[1]), int(parts[2]), parts[3],
                              parts[4] if len(parts) > 4 else ""))
    return samples


def writable_spans(samples: Iterable[Sample]) -> tuple[dict[str, list[Span]], dict[str, list[Sample]]]:
    """Per node: the proven writable spans (sorted, disjoint) and the lone W samples (a run of one)."""
    by_node: dict[str, list[Sample]] = {}
    for s in samples:
        by_node.setdefault(s.node, []).append(s)
    spans: dict[str, list[Span]] = {}
    lone: dict[str, list[Sample]] = {}
    for node, items in by_node.items():
        items.sort(key=lambda s: s.start)
        spans[node], lone[node] = [], []
        run: list[Sample] = []
        for s in [*items, None]:
            if s is not None and s.state == WRITE and run and run[-1].epoch == s.epoch:
                run.append(s)
                continue
            if len(run) > 1 and run[-1].start > run[0].end:
                spans[node].append(Span(node, run[0].end, run[-1].start))
            elif run:
                lone[node].extend(run)
            run = [s] if s is not None and s.state == WRITE else []
    return spans, lone


def merge(splits: list[Split]) -> list[Split]:
    """Overlapping or touching findings merged into one window each (the nodes of the first kept)."""
    out: list[Split] = []
    for s in sorted(splits, key=lambda s: (s.start, s.end)):
        if out and s.start <= out[-1].end:
            last = out[-1]
            out[-1] = Split(last.start, max(last.end, s.end), last.a, last.b)
        else:
            out.append(s)
    return out


def split_instants(samples: Iterable[Sample]) -> list[Split]:
    """Every window where two nodes provably accepted writes at once (merged); empty when there was none."""
    spans, lone = writable_spans(samples)
    nodes = sorted(spans)
    found: list[Split] = []
    for i, a in enumerate(nodes):
        for b in nodes[i + 1:]:
            found += _span_overlaps(spans[a], spans[b])
        for b in nodes:
            if b != a:
                found += _lone_inside(spans[a], lone[b])
    return merge(found)


def _span_overlaps(xs: list[Span], ys: list[Span]) -> list[Split]:
    out, i, j = [], 0, 0
    while i < len(xs) and j < len(ys):
        lo, hi = max(xs[i].start, ys[j].start), min(xs[i].end, ys[j].end)
        if lo < hi:
            out.append(Split(lo, hi, xs[i].node, ys[j].node))
        if xs[i].end < ys[j].end:
            i += 1
        else:
            j += 1
    return out


def _lone_inside(spans: list[Span], points: list[Sample]) -> list[Split]:
    starts = [s.start for s in spans]
    out = []
    for p in points:
        k = bisect.bisect_right(starts, p.start) - 1
        if k >= 0 and p.end <= spans[k].end:
            out.append(Split(p.start, p.end, spans[k].node, p.node))
    return out


def within(samples: Iterable[Sample], start: float, end: float) -> list[Sample]:
    """The samples that began in [start, end]."""
    return [s for s in samples if start <= s.start <= end]


def writers(samples: Iterable[Sample]) -> dict[str, int]:
    """W samples per node (who took writes in a window)."""
    counts: dict[str, int] = {}
    for s in samples:
        if s.state == WRITE:
            counts[s.node] = counts.get(s.node, 0) + 1
    return counts
