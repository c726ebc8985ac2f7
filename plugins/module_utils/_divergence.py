# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Did a stopped node's WAL go past the point where the new primary's timeline forked off? Decided from facts alone.

A failover cut off right after the promotion leaves standbys that were never repointed: on the parent timeline, with
WAL that ends at or before the switch point of the new primary's timeline. Such a node holds nothing the new primary
lacks, so it needs no pg_rewind: pointed at the new primary (recovery_target_timeline 'latest'), it follows the new
timeline by itself. A node that already followed the new timeline a little (its minimum recovery point on it) but
made no restartpoint there yet (its latest checkpoint still on the parent timeline) is on the source's timeline
too. pg_rewind of PostgreSQL 15 and older takes such a node's timeline from its checkpoint alone, finds its end of
WAL past the switch point, and fails reading the parent timeline's WAL there ("could not find previous WAL record
at <switch point>: invalid record length"): it is the timeline of the minimum recovery point that counts.

The facts: the new primary's current timeline and its timeline history file (each ancestor with the LSN at which it
ended), and the node's pg_control, read with pg_controldata. The node's WAL ends where pg_rewind itself puts it: at
its minimum recovery point (a standby), or at the end of its latest checkpoint record (a primary shut down cleanly,
whose shutdown checkpoint is its last record). The switch point is a record boundary of the history both share, so a
checkpoint record that starts before it also ends at or before it: a node is behind the fork when its checkpoint
starts before the switch point and its minimum recovery point is not past it.
"""

from __future__ import annotations

from dataclasses import dataclass

from ansible_collections.pgrepl.streaming.plugins.module_utils._lsn import format_lsn, lsn_or_none
from ansible_collections.pgrepl.streaming.plugins.module_utils._promotion import HistoryEntry

# The verdicts. SAME_TIMELINE and BEHIND_FORK need no rewind; PAST_FORK and NOT_ANCESTOR do; UNKNOWN leaves the
# decision to pg_rewind (a fact is missing).
SAME_TIMELINE = "same_timeline"
BEHIND_FORK = "behind_fork"
PAST_FORK = "past_fork"
NOT_ANCESTOR = "not_ancestor"
UNKNOWN = "unknown"


@dataclass(frozen=True)
class NodeWal:
    """Where a stopped node's WAL is, from its pg_control."""

    timeline: int | None
    checkpoint_lsn: str | None
    min_recovery_lsn: str | None = None
    # The latest checkpoint's own timeline, when older than `timeline` (a standby that followed a new timeline
    # and has not made a restartpoint on it yet: PostgreSQL 15's pg_rewind reads only this one and then fails).
    checkpoint_timeline: int | None = None

    @property
    def end_lsn(self) -> str | None:
        """The farthest position pg_control vouches for: the minimum recovery point when it is past the latest
        checkpoint's start, else that start (a primary's WAL ends with that checkpoint record)."""
        known = [pos for pos in (lsn_or_none(self.checkpoint_lsn), lsn_or_none(self.min_recovery_lsn)) if pos]
        return format_lsn(max(known)) if known else None


@dataclass(frozen=True)
class Divergence:
    """The verdict and the facts it rests on."""

    verdict: str
    reason: str
    fork_timeline: int | None = None
    fork_lsn: str | None = None
    node_end_lsn: str | None = None

    @property
    def rewind_needed(self) -> bool | None:
        """False: follow the source as it is (no pg_rewind); True: rewind; None: not decided here."""
        if self.verdict in (SAME_TIMELINE, BEHIND_FORK):
            return False
        if self.verdict in (PAST_FORK, NOT_ANCESTOR):
            return True
        return None


def switch_point(history: list[HistoryEntry], timeline: int) -> str | None:
    """The LSN at which `timeline` ended in a history file's ancestry; None when it is not an ancestor there."""
    for entry in history:
        if entry.parent_timeline == timeline:
            return entry.switch_lsn
    return None


def _checkpoint_before_fork(node: NodeWal, checkpoint: int, history: list[HistoryEntry] | None) -> bool | None:
    """For a node whose latest checkpoint is on an older timeline than its minimum recovery point: whether that
    checkpoint lies before the point where its timeline ended in the source's history (None: nothing to check)."""
    if not node.checkpoint_timeline or node.checkpoint_timeline == node.timeline or history is None:
        return None
    fork = lsn_or_none(switch_point(history, node.checkpoint_timeline))
    return None if fork is None else checkpoint < fork


def divergence(node: NodeWal, source_timeline: int | None, history: list[HistoryEntry] | None) -> Divergence:
    """Whether the node's WAL went past the source's fork from the node's timeline (the pure comparison).

    ``history`` is the parsed history file of ``source_timeline`` (None: it could not be read; timeline 1 has none).
    """
    checkpoint = lsn_or_none(node.checkpoint_lsn)
    if not node.timeline or not source_timeline or checkpoint is None:
        return Divergence(UNKNOWN, "the node's or the source's timeline, or the node's checkpoint, is not known")
    if node.timeline == source_timeline:
        behind = _checkpoint_before_fork(node, checkpoint, history)
        if behind is False:
            return Divergence(PAST_FORK, f"the node's latest checkpoint {node.checkpoint_lsn} on timeline "
                                         f"{node.checkpoint_timeline} is past the point where timeline "
                                         f"{node.checkpoint_timeline} ended in the source's history",
                              node_end_lsn=node.end_lsn)
        return Divergence(SAME_TIMELINE, f"the node and the source are both on timeline {source_timeline}",
                          node_end_lsn=node.end_lsn)
    if history is None:
        return Divergence(UNKNOWN, f"the history of the source's timeline {source_timeline} is not known")
    fork = switch_point(history, node.timeline)
    if fork is None:
        return Divergence(NOT_ANCESTOR, f"the node's timeline {node.timeline} is not in the history of the source's "
                                        f"timeline {source_timeline}", node_end_lsn=node.end_lsn)
    fork_pos = lsn_or_none(fork)
    min_recovery = lsn_or_none(node.min_recovery_lsn) or 0
    end = node.end_lsn
    facts = {"fork_timeline": node.timeline, "fork_lsn": fork, "node_end_lsn": end}
    if fork_pos is None:
        return Divergence(UNKNOWN, f"the switch point {fork!r} of timeline {node.timeline} is not an LSN")
    if checkpoint < fork_pos and min_recovery <= fork_pos:
        return Divergence(BEHIND_FORK, f"the node's WAL on timeline {node.timeline} ends at or before {fork}, where "
                                       f"the source's timeline {source_timeline} forked off it (its latest checkpoint "
                                       f"is at {node.checkpoint_lsn}, its minimum recovery point at "
                                       f"{node.min_recovery_lsn or '0/0'})", **facts)
    return Divergence(PAST_FORK, f"the node's WAL on timeline {node.timeline} reaches {end}, past {fork} where the "
                                 f"source's timeline {source_timeline} forked off it", **facts)
