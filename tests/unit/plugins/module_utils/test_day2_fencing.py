# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The day-2 refusals that keep two writable primaries from ever existing: a failover whose old primary cannot be
fenced (it does not answer) goes on only with a fencing hook or the user's word; a switchover interrupted after the
old primary's stop goes on (the handover finds the rest) only when that cannot lose a commit."""

from __future__ import annotations

from typing import Any

import pytest

from ansible_collections.pgrepl.streaming.plugins.filter.day2 import day2_problems
from ansible_collections.pgrepl.streaming.plugins.module_utils._day2 import (
    Day2Error,
    cluster_facts,
    day2_options,
    handover_interrupted,
)


def healthy() -> dict[str, Any]:
    """db1 primary on timeline 1; db2 and db3 streaming from it, caught up."""
    standby = {"role": "standby", "timeline": 1, "receive_lsn": "0/5000100", "replay_lsn": "0/5000100",
               "replay_paused": False, "wal_receiver": {"status": "streaming"}}
    return {
        "primary": "db1",
        "standbys": ["db2", "db3"],
        "down": [],
        "servers": {
            "db1": {"role": "primary", "timeline": 1, "current_lsn": "0/5000100",
                    "replication": [{"application_name": "db2", "state": "streaming"},
                                    {"application_name": "db3", "state": "streaming"}]},
            "db2": dict(standby),
            "db3": dict(standby),
        },
        "data_dirs": {
            "db1": {"cluster_state": "in production", "checkpoint_lsn": "0/4000060", "timeline": 1,
                    "standby_signal": False},
            "db2": {"cluster_state": "in archive recovery", "timeline": 1, "standby_signal": True},
            "db3": {"cluster_state": "in archive recovery", "timeline": 1, "standby_signal": True},
        },
    }


def interrupted() -> dict[str, Any]:
    """What a handover killed between the stop and the promotion leaves: db1 down, shut down cleanly at its
    shutdown checkpoint 0/5000028, fenced; db2 received that checkpoint (its walsender sent it before exiting)."""
    facts = healthy()
    facts["servers"]["db1"] = None
    facts["data_dirs"]["db1"] = {"cluster_state": "shut down", "checkpoint_lsn": "0/5000028", "timeline": 1,
                                 "standby_signal": True}
    for host in ("db2", "db3"):
        facts["servers"][host].update(receive_lsn="0/50000A0", replay_lsn="0/50000A0",
                                      wal_receiver={"status": "waiting"})
    return facts


def problems(operation: str, facts: dict[str, Any], **options: Any) -> list[str]:
    return day2_problems(facts, operation, options)


# ---------------------------------------------------------------------------------------------------- failover


def dead_primary() -> dict[str, Any]:
    facts = healthy()
    facts["down"], facts["play_hosts"] = ["db1"], ["db2", "db3"]
    facts["servers"]["db1"] = {}
    return facts


def test_a_primary_that_does_not_answer_cannot_be_fenced_so_the_failover_is_refused() -> None:
    assert problems("failover", dead_primary()) == [
        "db1 (group primary) does not answer, so the failover cannot fence it: promoting another node while it may "
        "still take writes would split the cluster in two. Give task files that fence it (power it off, cut it off "
        "the network) in pgrepl_fence_tasks, or confirm that it is dead: -e pgrepl_confirm_dead=db1"]


@pytest.mark.parametrize("options", [{"fence_tasks": 1}, {"fence_tasks": "2"}, {"confirm_dead": "db1"},
                                     {"fence_tasks": 1, "confirm_dead": "db1"}])
def test_a_fencing_hook_or_the_users_word_lets_it_go_on(options: dict[str, Any]) -> None:
    assert problems("failover", dead_primary(), **options) == []


def test_the_dead_host_must_be_the_primary() -> None:
    refused = problems("failover", dead_primary(), confirm_dead="db2")
    assert refused == ["pgrepl_confirm_dead: db2 is not the primary (db1): name the host of group primary that you "
                       "know is dead"]
    # Also when the primary answers (the failover would fence it itself): a wrong name is a mistake to point out.
    facts = healthy()
    facts["servers"]["db1"] = None  # crashed, its host answers
    assert problems("failover", facts, confirm_dead="db3") == [refused[0].replace("db2", "db3")]


def test_an_answering_host_is_fenced_by_the_failover_itself() -> None:
    facts = healthy()
    facts["servers"]["db1"] = None  # its server crashed, its host answers: the handover fences it
    assert problems("failover", facts) == []
    assert problems("failover", facts, confirm_dead="db1") == []


def test_the_fencing_options_are_read_strictly() -> None:
    for bad in (True, -1, "x", 1.5, None, ["a.yml"]):
        with pytest.raises(Day2Error, match="fence_tasks: the number of pgrepl_fence_tasks files"):
            day2_options({"fence_tasks": bad})
    assert day2_options({}).fence_tasks == 0 and day2_options({}).confirm_dead == ""
    assert day2_options({"confirm_dead": None}).confirm_dead == ""


# ---------------------------------------------------------------------------------------------------- switchover


def test_an_interrupted_switchover_is_recognised_from_the_data_directory() -> None:
    assert handover_interrupted(cluster_facts(interrupted()))
    assert not handover_interrupted(cluster_facts(healthy()))
    for change in ({"standby_signal": False}, {"cluster_state": "in production"},
                   {"cluster_state": "shut down in recovery"}):
        facts = interrupted()
        facts["data_dirs"]["db1"].update(change)
        assert not handover_interrupted(cluster_facts(facts)), change
    facts = interrupted()
    facts["down"] = ["db1"]
    assert not handover_interrupted(cluster_facts(facts))


def test_an_interrupted_switchover_goes_on() -> None:
    assert problems("switchover", interrupted(), target="db2") == []


def test_a_switchover_after_a_promotion_by_the_interrupted_run_goes_on() -> None:
    facts = interrupted()
    facts["servers"]["db2"] = {"role": "primary", "timeline": 2, "current_lsn": "0/6000000", "replication": []}
    assert problems("switchover", facts, target="db2") == []
    facts["servers"]["db2"]["timeline"] = 1
    assert problems("switchover", facts, target="db2") == [
        "db2 is not in recovery (a second primary?) while db1 is stopped; start db1 again as the primary (remove the "
        "standby.signal the interrupted switchover put in its data directory first) and run the switchover again"]


def test_a_target_short_of_the_shutdown_checkpoint_is_refused() -> None:
    facts = interrupted()
    facts["servers"]["db2"].update(receive_lsn="0/5000028", replay_lsn="0/5000000")
    refused = problems("switchover", facts, target="db2")
    assert len(refused) == 1
    assert refused[0].startswith("db2 received WAL up to 0/5000028, not past db1's shutdown checkpoint 0/5000028: "
                                 "promoting it would lose commits; start db1 again as the primary")


def test_an_interrupted_switchover_to_a_stopped_or_paused_target() -> None:
    facts = interrupted()
    facts["servers"]["db2"] = None
    assert problems("switchover", facts, target="db2") == [
        "db2 is not running (db1 is stopped and fenced by an interrupted switchover)"]
    facts = interrupted()
    facts["servers"]["db2"]["replay_paused"] = True
    assert problems("switchover", facts, target="db2") == [
        "db2 has its WAL replay paused (resume it with SELECT pg_wal_replay_resume() first)"]


def test_a_primary_stopped_without_the_fence_is_refused_as_before() -> None:
    facts = interrupted()
    facts["data_dirs"]["db1"]["standby_signal"] = False
    assert problems("switchover", facts, target="db2")[0].startswith("db1 (group primary) is not running")


def test_data_dirs_of_the_wrong_shape_are_refused() -> None:
    facts = healthy()
    facts["data_dirs"] = {"db1": "shut down"}
    with pytest.raises(Day2Error, match="facts.data_dirs.db1: the data directory facts"):
        cluster_facts(facts)
    facts["data_dirs"] = ["db1"]
    with pytest.raises(Day2Error, match="facts.data_dirs"):
        cluster_facts(facts)
