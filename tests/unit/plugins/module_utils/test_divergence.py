# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The divergence decision: does a stopped node's WAL go past the fork of the source's timeline from its own?"""

from __future__ import annotations

import pytest

from ansible_collections.pgrepl.streaming.plugins.module_utils._divergence import (
    BEHIND_FORK,
    NOT_ANCESTOR,
    PAST_FORK,
    SAME_TIMELINE,
    UNKNOWN,
    NodeWal,
    divergence,
    switch_point,
)
from ansible_collections.pgrepl.streaming.plugins.module_utils._promotion import parse_history

# Timeline 3's history: 1 ended at 0/40108C8, 2 at 0/5000060.
HISTORY_3 = parse_history("1\t0/40108C8\tno recovery target specified\n\n"
                          "2\t0/5000060\tno recovery target specified\n")
HISTORY_2 = parse_history("1\t0/40108C8\tno recovery target specified\n")
FORK = "0/40108C8"


def test_switch_point_of_each_ancestor() -> None:
    assert switch_point(HISTORY_3, 1) == "0/40108C8"
    assert switch_point(HISTORY_3, 2) == "0/5000060"
    assert switch_point(HISTORY_3, 3) is None
    assert switch_point([], 1) is None


def test_same_timeline_needs_no_rewind() -> None:
    verdict = divergence(NodeWal(2, "0/6000060", "0/6000100"), 2, HISTORY_2)
    assert verdict.verdict == SAME_TIMELINE and verdict.rewind_needed is False
    assert verdict.node_end_lsn == "0/6000100" and verdict.fork_lsn is None
    # Timeline 1 has no history file; the same timeline needs none.
    assert divergence(NodeWal(1, "0/3000060"), 1, None).rewind_needed is False


@pytest.mark.parametrize("checkpoint, min_recovery", [
    ("0/3000060", "0/40108C8"),  # a standby whose WAL ends exactly at the switch point
    ("0/3000060", "0/4000000"),  # a standby behind it
    ("0/4010850", "0/40108C8"),  # its restartpoint at the old primary's shutdown checkpoint, which ends at the fork
    ("0/4010850", None),  # a primary whose shutdown checkpoint (its last record) ends at the fork
    ("0/3000060", "0/0"),  # a primary shut down: pg_control's minimum recovery point is 0/0
])
def test_behind_the_fork_on_the_parent_timeline_is_a_repoint(checkpoint: str, min_recovery: str | None) -> None:
    verdict = divergence(NodeWal(1, checkpoint, min_recovery), 2, HISTORY_2)
    assert verdict.verdict == BEHIND_FORK and verdict.rewind_needed is False
    assert (verdict.fork_timeline, verdict.fork_lsn) == (1, FORK)
    assert FORK in verdict.reason and "timeline 2" in verdict.reason


def test_ancestor_further_back_is_compared_with_its_own_switch_point() -> None:
    # The node stayed on timeline 1; the source is on 3 (1 -> 2 -> 3): timeline 1's switch point decides.
    assert divergence(NodeWal(1, "0/3000060", "0/40108C8"), 3, HISTORY_3).verdict == BEHIND_FORK
    assert divergence(NodeWal(1, "0/3000060", "0/4010900"), 3, HISTORY_3).verdict == PAST_FORK
    # On timeline 2, which ended at 0/5000060.
    assert divergence(NodeWal(2, "0/4010900", "0/5000060"), 3, HISTORY_3).verdict == BEHIND_FORK
    assert divergence(NodeWal(2, "0/5000060", None), 3, HISTORY_3).verdict == PAST_FORK


@pytest.mark.parametrize("checkpoint, min_recovery", [
    ("0/3000060", "0/40108D0"),  # replayed one record past the switch point
    ("0/40108C8", None),  # a checkpoint written at the switch point: the old primary went on
    ("0/5000028", "0/0"),  # an old primary shut down far ahead
    ("0/3000060", "1/0"),  # LSNs compared as numbers, not as text
])
def test_ahead_of_the_fork_is_diverged(checkpoint: str, min_recovery: str | None) -> None:
    verdict = divergence(NodeWal(1, checkpoint, min_recovery), 2, HISTORY_2)
    assert verdict.verdict == PAST_FORK and verdict.rewind_needed is True
    assert verdict.fork_lsn == FORK and "past 0/40108C8" in verdict.reason


def test_a_timeline_that_is_not_an_ancestor_is_diverged() -> None:
    # The node was promoted on a timeline of its own (3, forked from 2), the source is on 2.
    verdict = divergence(NodeWal(3, "0/5000100", "0/0"), 2, HISTORY_2)
    assert verdict.verdict == NOT_ANCESTOR and verdict.rewind_needed is True
    # A sibling: node on 2, source on 3 whose history does not hold 2 (it forked from 1).
    sibling = parse_history("1\t0/40108C8\tno recovery target specified\n")
    assert divergence(NodeWal(2, "0/4010900"), 3, sibling).verdict == NOT_ANCESTOR


@pytest.mark.parametrize("node, source_timeline, history", [
    (NodeWal(None, "0/3000060"), 2, HISTORY_2),
    (NodeWal(1, None), 2, HISTORY_2),
    (NodeWal(1, "0/3000060"), None, HISTORY_2),
    (NodeWal(1, "0/3000060"), 2, None),  # the history file could not be read
])
def test_a_missing_fact_leaves_the_decision_to_pg_rewind(node: NodeWal, source_timeline: int | None,
                                                         history: list | None) -> None:
    verdict = divergence(node, source_timeline, history)
    assert verdict.verdict == UNKNOWN and verdict.rewind_needed is None


def test_node_end_is_the_farthest_pg_control_vouches_for() -> None:
    assert NodeWal(1, "0/3000060", "0/40108C8").end_lsn == "0/40108C8"
    assert NodeWal(1, "0/5000028", "0/0").end_lsn == "0/5000028"
    assert NodeWal(1, "0/5000028", None).end_lsn == "0/5000028"
    assert NodeWal(1, None, None).end_lsn is None


def test_a_follower_whose_checkpoint_is_still_on_the_parent_timeline_is_on_the_source_timeline() -> None:
    # It followed timeline 2 from the switch point (minimum recovery point on 2) with no restartpoint there yet.
    follower = NodeWal(2, "0/3000060", "0/5AEAB38", checkpoint_timeline=1)
    verdict = divergence(follower, 2, HISTORY_2)
    assert verdict.verdict == SAME_TIMELINE and verdict.rewind_needed is False
    assert verdict.node_end_lsn == "0/5AEAB38"
    # A checkpoint on timeline 1 at or past where timeline 1 ended cannot belong to a follower: pg_rewind decides.
    odd = divergence(NodeWal(2, "0/40108C8", "0/5AEAB38", checkpoint_timeline=1), 2, HISTORY_2)
    assert odd.verdict == PAST_FORK and odd.rewind_needed is True
    # Without the history, the same timeline is taken as pg_rewind takes it.
    assert divergence(follower, 2, None).verdict == SAME_TIMELINE
