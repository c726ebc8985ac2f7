# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Day-2 decisions without a cluster (module_utils/_day2.py, filters in plugins/filter/day2.py): every refusal of
every operation, with a case that triggers it and one that does not; the failover's candidates and choice; what
rejoin, rolling_restart and reseed decide from the facts. The messages are compared whole: the runbooks quote them
and a DBA must keep seeing the same sentences."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.pgrepl.streaming.plugins.filter.day2 import (
    FilterModule,
    day2_problems,
    failover_choice,
    rejoin_needed,
    reseed_slot_action,
    rolling_restart_plan,
    stale_slots,
)
from ansible_collections.pgrepl.streaming.plugins.module_utils._day2 import (
    Day2Error,
    Day2Options,
    cluster_facts,
    day2_options,
    operation_problems,
)

PAUSED = "has its WAL replay paused (resume it with SELECT pg_wal_replay_resume() first)"
RUNNING_PRIMARY = ("db1 (group primary) is running and accepts writes: promoting another node now would split the "
                   "cluster in two. For a planned move use pgrepl.streaming.switchover; to fail over anyway (it is "
                   "stopped first), -e pgrepl_force=true")


def healthy() -> dict[str, Any]:
    """db1 primary, db2 (pgrepl_sync) and db3 streaming from it on timeline 2, replay caught up."""
    standby = {"role": "standby", "timeline": 2, "current_lsn": None, "receive_lsn": "0/3000148",
               "replay_lsn": "0/3000148", "replay_paused": False, "pending_restart": [],
               "wal_receiver": {"status": "streaming", "sender_host": "10.0.0.1"}}
    return {
        "primary": "db1",
        "standbys": ["db2", "db3"],
        "down": [],
        "play_hosts": ["db1", "db2", "db3"],
        "servers": {
            "db1": {"role": "primary", "timeline": 2, "current_lsn": "0/3000148", "receive_lsn": None,
                    "replay_lsn": None, "replay_paused": None, "pending_restart": [],
                    "replication": [{"application_name": "db2", "state": "streaming"},
                                    {"application_name": "db3", "state": "streaming"}],
                    "slots": [{"slot_name": "db2", "slot_type": "physical", "active": True, "active_pid": 4242,
                               "wal_status": "reserved"},
                              {"slot_name": "db3", "slot_type": "physical", "active": False, "active_pid": None,
                               "wal_status": "reserved"}]},
            "db2": copy.deepcopy(standby),
            "db3": copy.deepcopy(standby),
        },
        "slots": {"db1": "db1", "db2": "db2", "db3": "db3"},
        "addresses": {"db1": "10.0.0.1", "db2": "10.0.0.2", "db3": "10.0.0.3"},
        "sync": {"db1": False, "db2": True, "db3": False},
    }


def problems(operation: str, facts: dict[str, Any], **options: Any) -> list[str]:
    return day2_problems(facts, operation, options)


def test_the_filters_are_exported() -> None:
    assert set(FilterModule().filters()) == {"day2_problems", "failover_choice", "rejoin_needed",
                                             "rolling_restart_plan", "reseed_slot_action", "stale_slots"}


@pytest.mark.parametrize("operation, options", [
    ("switchover", {"target": "db3"}), ("failover", {"force": True}), ("rejoin", {"host": "db3"}),
    ("reseed", {"host": "db3"}), ("remove_standby", {"host": "db3"}), ("rolling_restart", {}),
    ("rolling_restart", {"target": "db2"}),
])
def test_a_healthy_cluster_refuses_nothing(operation: str, options: dict[str, Any]) -> None:
    assert problems(operation, healthy(), **options) == []


# --- switchover -----------------------------------------------------------------------------------------------

def test_switchover_needs_a_target() -> None:
    assert problems("switchover", healthy()) == [
        "pgrepl_target: give the standby to promote (-e pgrepl_target=HOST; standbys: db2, db3)"]
    assert problems("switchover", healthy(), target="db2") == []


def test_switchover_to_the_primary() -> None:
    assert problems("switchover", healthy(), target="db1") == ["pgrepl_target: db1 is the primary already"]


def test_switchover_to_a_host_not_in_group_standby() -> None:
    assert problems("switchover", healthy(), target="db9") == [
        "pgrepl_target: db9 is not a host of group standby (db2, db3)"]


@pytest.mark.parametrize("server, state", [
    (None, "not running"), ({}, "not running"),
    ({"role": "standby", "timeline": 2}, "in recovery, not a primary (the inventory is out of date)"),
])
def test_switchover_needs_a_running_primary(server: Any, state: str) -> None:
    facts = healthy()
    facts["servers"]["db1"] = server
    assert problems("switchover", facts, target="db2") == [
        f"db1 (group primary) is {state}; a switchover needs a running primary (for a dead one, "
        "pgrepl.streaming.failover)"]


@pytest.mark.parametrize("server, state", [(None, "not running"),
                                           ({"role": "primary"}, "not in recovery (a second primary?)")])
def test_switchover_target_must_run_in_recovery(server: Any, state: str) -> None:
    facts = healthy()
    facts["servers"]["db2"] = server
    found = problems("switchover", facts, target="db2")
    assert found == [f"db2 is {state}"]


@pytest.mark.parametrize("receiver, row_state, shown", [
    (None, "streaming", "none; on the primary: streaming"),
    ({"status": "stopping"}, "streaming", "stopping; on the primary: streaming"),
    ({"status": None}, "streaming", "; on the primary: streaming"),
    ({"status": "streaming"}, "catchup", "streaming; on the primary: catchup"),
    ({"status": "streaming"}, None, "streaming; on the primary: no walsender"),
])
def test_switchover_target_must_stream_from_the_primary(receiver: Any, row_state: Any, shown: str) -> None:
    facts = healthy()
    facts["servers"]["db2"]["wal_receiver"] = receiver
    rows = [{"application_name": "db3", "state": "streaming"}]
    if row_state:
        rows.append({"application_name": "db2", "state": row_state})
    facts["servers"]["db1"]["replication"] = rows
    assert problems("switchover", facts, target="db2") == [f"db2 does not stream from db1 (its WAL receiver: {shown})"]


def test_switchover_finds_the_walsender_of_a_long_name_by_its_first_63_characters() -> None:
    long = "standby-" + "x" * 70
    facts = healthy()
    facts["standbys"].append(long)
    facts["servers"][long] = copy.deepcopy(facts["servers"]["db2"])
    facts["servers"]["db1"]["replication"].append({"application_name": long[:63], "state": "streaming"})
    assert problems("switchover", facts, target=long) == []
    facts["servers"]["db1"]["replication"][-1]["application_name"] = long
    assert problems("switchover", facts, target=long) == [
        f"{long} does not stream from db1 (its WAL receiver: streaming; on the primary: no walsender)"]


def test_switchover_target_on_another_timeline() -> None:
    facts = healthy()
    facts["servers"]["db2"]["timeline"] = 1
    assert problems("switchover", facts, target="db2") == ["db2 is on timeline 1, db1 on 2"]


@pytest.mark.parametrize("max_lag, refused", [(232, False), ("232", False), (231, True), ("0", True), (0, True)])
def test_switchover_target_too_far_behind(max_lag: Any, refused: bool) -> None:
    facts = healthy()
    facts["servers"]["db2"]["replay_lsn"] = "0/3000060"  # 0xE8 = 232 bytes behind 0/3000148
    expected = [f"db2 replayed up to 0/3000060, 232 bytes behind db1 at 0/3000148 "
                f"(pgrepl_switchover_max_lag_bytes={max_lag})"] if refused else []
    assert problems("switchover", facts, target="db2", max_lag_bytes=max_lag) == expected


def test_switchover_lag_that_cannot_be_computed_refuses() -> None:
    facts = healthy()
    facts["servers"]["db2"]["replay_lsn"] = None
    assert problems("switchover", facts, target="db2") == [
        "db2 replayed up to , an unknown number of bytes behind db1 at 0/3000148 "
        "(pgrepl_switchover_max_lag_bytes=16777216)"]


def test_switchover_target_with_replay_paused() -> None:
    facts = healthy()
    facts["servers"]["db2"]["replay_paused"] = True
    assert problems("switchover", facts, target="db2") == [f"db2 {PAUSED}"]
    facts["servers"]["db3"]["replay_paused"] = True  # another standby's pause does not matter
    facts["servers"]["db2"]["replay_paused"] = False
    assert problems("switchover", facts, target="db2") == []


def test_switchover_with_another_standby_running_as_a_primary() -> None:
    facts = healthy()
    facts["servers"]["db3"]["role"] = "primary"
    assert problems("switchover", facts, target="db2") == [
        "db3 (group standby) is a primary too: the inventory does not match the cluster"]


def test_switchover_lists_every_reason_at_once() -> None:
    facts = healthy()
    target = facts["servers"]["db2"]
    target.update(timeline=1, replay_paused=True, replay_lsn="0/3000000", wal_receiver=None)
    facts["servers"]["db3"]["role"] = "primary"
    assert problems("switchover", facts, target="db2", max_lag_bytes=0) == [
        "db2 does not stream from db1 (its WAL receiver: none; on the primary: streaming)",
        "db2 is on timeline 1, db1 on 2",
        "db2 replayed up to 0/3000000, 328 bytes behind db1 at 0/3000148 (pgrepl_switchover_max_lag_bytes=0)",
        f"db2 {PAUSED}",
        "db3 (group standby) is a primary too: the inventory does not match the cluster",
    ]


# --- failover: candidates and choice --------------------------------------------------------------------------

def choice(facts: dict[str, Any], target: str = "") -> dict[str, Any]:
    return failover_choice(facts, target)


def test_failover_promotes_the_standby_that_received_most() -> None:
    facts = healthy()
    facts["servers"]["db3"]["receive_lsn"] = "0/3000150"
    assert choice(facts) == {"candidates": ["db2", "db3"], "target": "db3"}


def test_failover_reads_the_replay_lsn_of_a_standby_that_received_nothing() -> None:
    facts = healthy()
    facts["servers"]["db2"]["receive_lsn"] = None
    facts["servers"]["db3"].update(receive_lsn=None, replay_lsn="0/3000150")
    assert choice(facts)["target"] == "db3"


def test_failover_tie_goes_to_the_synchronous_standby() -> None:
    facts = healthy()
    facts["sync"] = {"db2": False, "db3": "yes"}  # pgrepl_sync as the inventory may spell it
    assert choice(facts)["target"] == "db3"


@pytest.mark.parametrize("sync", [{}, {"db2": True, "db3": True}])
def test_failover_tie_then_goes_to_the_first_in_inventory_order(sync: dict[str, bool]) -> None:
    facts = healthy()
    facts["sync"] = sync
    assert choice(facts)["target"] == "db2"
    facts["standbys"] = ["db3", "db2"]
    assert choice(facts) == {"candidates": ["db3", "db2"], "target": "db3"}


def test_failover_sync_does_not_beat_more_wal() -> None:
    facts = healthy()
    facts["servers"]["db3"]["receive_lsn"] = "0/3000149"
    assert choice(facts)["target"] == "db3"  # db2 is the synchronous one, db3 received one byte more


def test_failover_candidates_leave_out_what_cannot_be_promoted() -> None:
    facts = healthy()
    for name in ("db4", "db5", "db6", "db7"):
        facts["standbys"].append(name)
        facts["servers"][name] = copy.deepcopy(facts["servers"]["db2"])
        facts["play_hosts"].append(name)
    facts["down"] = ["db4"]  # did not answer
    facts["play_hosts"].remove("db5")  # failed earlier in the play
    facts["servers"]["db6"] = None  # server stopped
    facts["servers"]["db7"]["role"] = "primary"
    assert choice(facts)["candidates"] == ["db2", "db3"]


def test_failover_names_the_target_it_was_given() -> None:
    assert choice(healthy(), "db3")["target"] == "db3"
    assert choice(healthy(), "db9") == {"candidates": ["db2", "db3"], "target": "db9"}


def test_failover_without_candidates_chooses_nothing() -> None:
    facts = healthy()
    facts["servers"]["db2"] = facts["servers"]["db3"] = None
    assert choice(facts) == {"candidates": [], "target": ""}


# --- failover: refusals ---------------------------------------------------------------------------------------

def test_failover_refuses_a_primary_that_accepts_writes() -> None:
    assert problems("failover", healthy()) == [RUNNING_PRIMARY]
    assert problems("failover", healthy(), force=True) == []
    assert problems("failover", healthy(), force="true") == []


@pytest.mark.parametrize("server", [None, {"role": "standby"}])
def test_failover_goes_ahead_when_the_primary_is_down_or_in_recovery(server: Any) -> None:
    facts = healthy()
    facts["servers"]["db1"] = server
    assert problems("failover", facts) == []


def test_failover_with_the_primary_not_answering() -> None:
    facts = healthy()
    facts["down"], facts["play_hosts"] = ["db1"], ["db2", "db3"]
    facts["servers"]["db1"] = {}  # what the role passes for a host without server facts
    # It cannot be fenced: only a fencing hook or the user's word lets the failover go on (more in
    # test_day2_fencing.py).
    assert problems("failover", facts, fence_tasks=1) == []
    assert problems("failover", facts, confirm_dead="db1") == []
    assert "db1 (group primary) does not answer, so the failover cannot fence it" in problems("failover", facts)[0]


def test_failover_refuses_a_standby_that_already_is_a_primary() -> None:
    facts = healthy()
    facts["servers"]["db1"] = None
    facts["servers"]["db3"]["role"] = "primary"
    assert problems("failover", facts) == [
        "db3 (group standby) is a primary already: was the failover done? Put it in group primary"]
    facts["down"] = ["db3"]  # a host that does not answer is not looked at
    assert problems("failover", facts) == []


def test_failover_refuses_without_candidates() -> None:
    facts = healthy()
    facts["servers"]["db1"] = facts["servers"]["db2"] = None
    facts["down"], facts["play_hosts"] = ["db3"], ["db1", "db2"]
    assert problems("failover", facts) == [
        "no standby can be promoted: none is running in recovery (db2, db3; not answering: db3)"]
    facts["down"] = []
    facts["servers"]["db3"] = None
    assert problems("failover", facts) == ["no standby can be promoted: none is running in recovery (db2, db3)"]


def test_failover_refuses_a_target_that_is_no_candidate() -> None:
    facts = healthy()
    facts["servers"]["db1"] = None
    facts["servers"]["db3"] = None
    assert problems("failover", facts, target="db3") == [
        "pgrepl_target: db3 is not a running standby of this cluster (candidates: db2)"]
    # A name that is in no group at all: refused the same way (it has no facts to read).
    assert problems("failover", facts, target="nohost") == [
        "pgrepl_target: nohost is not a running standby of this cluster (candidates: db2)"]


def test_failover_refuses_a_target_that_received_less() -> None:
    facts = healthy()
    facts["servers"]["db1"] = None
    facts["servers"]["db3"]["receive_lsn"] = "0/3000060"
    assert problems("failover", facts, target="db3") == [
        "pgrepl_target: db2 received 232 bytes more than db3: promoting db3 would lose them and leave db2 unable to "
        "follow (omit pgrepl_target to promote the most advanced standby, or -e pgrepl_force=true)"]
    assert problems("failover", facts, target="db3", force=True) == []
    assert problems("failover", facts, target="db2") == []


def test_failover_refuses_a_chosen_standby_whose_replay_is_paused() -> None:
    facts = healthy()
    facts["servers"]["db1"] = None
    facts["servers"]["db2"]["replay_paused"] = True
    assert problems("failover", facts) == [f"db2 {PAUSED}"]  # db2 is chosen (a tie, synchronous)
    assert problems("failover", facts, target="db3") == []


def test_failover_lists_every_reason_at_once() -> None:
    facts = healthy()
    facts["servers"]["db3"]["receive_lsn"] = "0/3000150"
    facts["servers"]["db2"]["replay_paused"] = True
    assert problems("failover", facts, target="db2") == [
        RUNNING_PRIMARY,
        "pgrepl_target: db3 received 8 bytes more than db2: promoting db2 would lose them and leave db3 unable to "
        "follow (omit pgrepl_target to promote the most advanced standby, or -e pgrepl_force=true)",
        f"db2 {PAUSED}",
    ]


# --- rejoin, reseed, remove_standby -----------------------------------------------------------------------------

HOST_CHECKS = {
    "rejoin": ("pgrepl_host: give the former primary to bring back (-e pgrepl_host=HOST)",
               "pgrepl_host: db1 is the primary (group primary); rejoin brings a former primary back as a standby of "
               "it",
               "pgrepl_host: db9 is not a host of group standby (put the former primary there, as the failover's "
               "printed groups do)"),
    "reseed": ("pgrepl_host: give the standby to copy again (-e pgrepl_host=HOST)",
               "pgrepl_host: db1 is the primary (group primary); only a standby is copied again",
               "pgrepl_host: db9 is not a host of group standby (db2, db3)"),
    "remove_standby": ("pgrepl_host: give the standby to remove (-e pgrepl_host=HOST)",
                       "pgrepl_host: db1 is the primary (group primary); move the primary first "
                       "(pgrepl.streaming.switchover)",
                       "pgrepl_host: db9 is not a host of group standby (db2, db3)"),
}


@pytest.mark.parametrize("operation", sorted(HOST_CHECKS))
def test_the_host_must_be_a_standby_of_the_inventory(operation: str) -> None:
    missing, primary, unknown = HOST_CHECKS[operation]
    assert problems(operation, healthy()) == [missing]
    assert problems(operation, healthy(), host="db1") == [primary]
    assert problems(operation, healthy(), host="db9") == [unknown]
    assert problems(operation, healthy(), host="db3") == []


@pytest.mark.parametrize("operation", [*sorted(HOST_CHECKS), "rolling_restart"])
@pytest.mark.parametrize("server, state", [
    (None, "not running"), ({"role": "standby"}, "in recovery, not a primary (the inventory is out of date)")])
def test_the_primary_must_run_as_a_primary(operation: str, server: Any, state: str) -> None:
    facts = healthy()
    facts["servers"]["db1"] = server
    assert problems(operation, facts, host="db3") == [f"db1 (group primary) is {state}"]


def test_rejoin_refuses_a_host_that_accepts_writes() -> None:
    facts = healthy()
    facts["servers"]["db3"] = {"role": "primary", "timeline": 1}
    assert problems("rejoin", facts, host="db3") == [
        "db3 runs as a primary and accepts writes: what was written there since it stopped being the primary would "
        "be thrown away by the rewind. Stop it yourself, or -e pgrepl_force=true to have it stopped and rewound"]
    assert problems("rejoin", facts, host="db3", force=True) == []
    facts["servers"]["db3"] = None  # stopped (or crashed): rewound as it is
    assert problems("rejoin", facts, host="db3") == []


def test_reseed_needs_move_aside() -> None:
    assert problems("reseed", healthy(), host="db3", move_aside=False) == [
        "pgrepl_standby_move_aside is false: a re-seed replaces the data directory of db3, which is only done by "
        "moving it aside"]
    assert problems("reseed", healthy(), host="db3", move_aside="false") != []
    assert problems("reseed", healthy(), host="db3", move_aside=True) == []


def test_reseed_refuses_a_host_running_as_a_primary() -> None:
    facts = healthy()
    facts["servers"]["db3"]["role"] = "primary"
    assert problems("reseed", facts, host="db3") == [
        "db3 runs as a primary: a re-seed would throw its writes away (for a former primary use "
        "pgrepl.streaming.rejoin)"]
    assert problems("reseed", facts, host="db3", force=True) != []  # force does not override this one


def test_remove_standby_refuses_a_standby_whose_slot_is_in_use() -> None:
    facts = healthy()
    assert problems("remove_standby", facts, host="db2") == [
        "db2 still streams (its slot db2 is in use by walsender 4242): stop it first, or -e pgrepl_force=true to "
        "cut it off and drop the slot"]
    assert problems("remove_standby", facts, host="db2", force=True) == []
    assert problems("remove_standby", facts, host="db3") == []  # its slot is not active
    facts["servers"]["db1"]["slots"] = None  # no slot at all
    assert problems("remove_standby", facts, host="db2") == []


def test_remove_standby_goes_on_without_the_standby_itself() -> None:
    facts = healthy()
    facts["down"], facts["play_hosts"] = ["db3"], ["db1", "db2"]
    facts["servers"]["db3"] = {}
    assert problems("remove_standby", facts, host="db3") == []


# --- rolling_restart -------------------------------------------------------------------------------------------

def test_rolling_restart_target_must_be_a_standby() -> None:
    assert problems("rolling_restart", healthy(), target="db1") == [
        "pgrepl_target: db1 is not a host of group standby (the switchover that replaces the primary's restart goes "
        "to a standby)"]
    assert problems("rolling_restart", healthy(), target="db3") == []


def test_rolling_restart_refuses_a_standby_running_as_a_primary() -> None:
    facts = healthy()
    facts["servers"]["db2"]["role"] = "primary"
    assert problems("rolling_restart", facts) == [
        "db2 (group standby) is a primary: the inventory does not match the cluster"]


def test_rolling_restart_lists_every_reason_at_once() -> None:
    facts = healthy()
    facts["servers"]["db1"] = None
    facts["servers"]["db2"]["role"] = "primary"
    assert problems("rolling_restart", facts, target="db9") == [
        "db1 (group primary) is not running",
        "pgrepl_target: db9 is not a host of group standby (the switchover that replaces the primary's restart goes "
        "to a standby)",
        "db2 (group standby) is a primary: the inventory does not match the cluster"]


# --- what the operations decide -------------------------------------------------------------------------------

def test_rejoin_needed() -> None:
    facts = healthy()
    assert rejoin_needed(facts, "db3") is False  # streams from db1's address on its timeline
    for change in ({"timeline": 1}, {"role": "primary"}, {"wal_receiver": None},
                   {"wal_receiver": {"status": "streaming", "sender_host": "10.0.0.9"}},
                   {"wal_receiver": {"status": "stopping", "sender_host": "10.0.0.1"}}):
        changed = healthy()
        changed["servers"]["db3"].update(change)
        assert rejoin_needed(changed, "db3") is True, change
    facts["play_hosts"] = ["db1", "db2"]  # it did not answer
    assert rejoin_needed(facts, "db3") is True


def test_rolling_restart_plan() -> None:
    facts = healthy()
    facts["standbys"].append("db4")
    facts["servers"]["db4"] = None  # a stopped standby is not restarted, nor waited for
    assert rolling_restart_plan(facts) == {"standbys": ["db2", "db3"], "running_standbys": ["db2", "db3"],
                                           "primary": True}
    assert rolling_restart_plan(facts, True) == {"standbys": [], "running_standbys": ["db2", "db3"],
                                                 "primary": False}
    facts["servers"]["db3"]["pending_restart"] = ["max_connections"]
    facts["servers"]["db1"]["pending_restart"] = ["shared_buffers"]
    assert rolling_restart_plan(facts, "true") == {"standbys": ["db3"], "running_standbys": ["db2", "db3"],
                                                   "primary": True}


def test_reseed_slot_action() -> None:
    facts = healthy()
    assert reseed_slot_action(facts, "db3") == "keep"
    facts["servers"]["db1"]["slots"][1]["wal_status"] = "lost"
    assert reseed_slot_action(facts, "db3") == "recreate"
    facts["servers"]["db1"]["slots"] = []
    assert reseed_slot_action(facts, "db3") == "create"


def test_stale_slots() -> None:
    server = {"slots": [{"slot_name": "db2", "slot_type": "physical"}, {"slot_name": "db3", "slot_type": "logical"},
                        {"slot_name": "backup", "slot_type": "physical"},
                        {"slot_name": "db1", "slot_type": "physical"}]}
    assert stale_slots(server, ["db1", "db2", "db3"]) == ["db2", "db1"]
    # A cascade streaming from the node keeps its slot there.
    assert stale_slots(server, ["db1", "db2", "db3"], ["db2"]) == ["db1"]
    assert stale_slots({"slots": None}, ["db1"]) == []
    assert stale_slots(None, ["db1"]) == []
    with pytest.raises(AnsibleFilterError, match="stale_slots: a list of slot names"):
        stale_slots(server, "db1")


# --- shapes and errors ---------------------------------------------------------------------------------------

def test_an_unknown_operation_is_refused_naming_it() -> None:
    with pytest.raises(AnsibleFilterError, match="day2_problems: operation: 'promote' is not a day-2 operation "
                                                 r"\(switchover, failover, rejoin, reseed, remove_standby, "
                                                 r"rolling_restart\)"):
        problems("promote", healthy())
    with pytest.raises(Day2Error):
        operation_problems("promote", cluster_facts(healthy()), Day2Options())


@pytest.mark.parametrize("value", ["16M", True, 1.5, None, [1]])
def test_a_max_lag_that_is_no_whole_number_is_refused_naming_it(value: Any) -> None:
    with pytest.raises(AnsibleFilterError, match=f"day2_problems: pgrepl_switchover_max_lag_bytes: "
                                                 f"{value!r}".replace("[", r"\[").replace("]", r"\]")):
        problems("switchover", healthy(), target="db2", max_lag_bytes=value)


@pytest.mark.parametrize("facts, key", [
    ("db1", "facts"), ({"standbys": []}, "facts.primary"), ({"primary": "db1", "standbys": "db2"}, "facts.standbys"),
    ({"primary": "db1", "servers": ["db1"]}, "facts.servers"),
    ({"primary": "db1", "servers": {"db1": "up"}}, "facts.servers.db1"),
])
def test_facts_of_the_wrong_shape_are_refused_naming_the_key(facts: Any, key: str) -> None:
    with pytest.raises(AnsibleFilterError, match=f"day2_problems: {key}: "):
        problems("switchover", facts)


def test_options_default_to_the_role_defaults() -> None:
    assert day2_options(None) == Day2Options()
    assert day2_options({"max_lag_bytes": "0", "force": "yes", "move_aside": "no"}) == Day2Options(
        force=True, max_lag_bytes=0, max_lag_text="0", move_aside=False)


def test_non_ascii_and_long_host_names_appear_as_written() -> None:
    facts = healthy()
    name = "узел-" + "ж" * 70
    facts["standbys"].append(name)
    facts["servers"][name] = None
    assert problems("switchover", facts, target=name) == [f"{name} is not running"]
    assert problems("reseed", facts, host="İstanbul") == [
        "pgrepl_host: İstanbul is not a host of group standby (db2, db3, " + name + ")"]


def test_options_of_the_wrong_shape_are_refused() -> None:
    with pytest.raises(AnsibleFilterError, match="day2_problems: options: a dict of the operation's variables "
                                                 r"\(target, host, force, ...\) is expected, got 'db2'"):
        day2_problems(healthy(), "switchover", "db2")


# --- delayed standbys (recovery_min_apply_delay) -------------------------------------------------------------

def delayed(facts: dict[str, Any], host: str, millis: Any = 300_000) -> dict[str, Any]:
    facts["servers"][host]["settings"] = {"recovery_min_apply_delay": millis}
    return facts


def test_failover_leaves_a_delayed_standby_out_unless_named() -> None:
    facts = delayed(healthy(), "db3")
    facts["servers"]["db1"] = None
    facts["servers"]["db3"]["receive_lsn"] = "0/3000150"  # received more, but it is delayed
    assert choice(facts) == {"candidates": ["db2"], "target": "db2"}
    assert problems("failover", facts) == []
    assert choice(facts, "db3") == {"candidates": ["db2", "db3"], "target": "db3"}
    assert problems("failover", facts, target="db3") == []


@pytest.mark.parametrize("millis", [0, None, True, "300000"])
def test_no_delay_or_an_unknown_one_is_no_delay(millis: Any) -> None:
    facts = delayed(healthy(), "db3", millis)
    facts["servers"]["db3"]["receive_lsn"] = "0/3000150"
    assert choice(facts)["target"] == "db3"


def test_failover_with_only_delayed_standbys_says_to_name_one() -> None:
    facts = delayed(delayed(healthy(), "db2"), "db3")
    facts["servers"]["db1"] = None
    assert problems("failover", facts) == [
        "no standby can be promoted without a choice: the only ones running in recovery are delayed (db2, db3: "
        "recovery_min_apply_delay), which a failover promotes only when pgrepl_target names one "
        "(-e pgrepl_target=db2)"]
    assert problems("failover", facts, target="db2") == []


def test_switchover_to_a_delayed_standby_is_refused() -> None:
    facts = delayed(healthy(), "db2")
    assert problems("switchover", facts, target="db2") == [
        "db2 is a delayed standby (recovery_min_apply_delay = 300000 ms): it has not applied the newest commits yet, "
        "so the switchover would wait out the delay with writes stopped: set pgrepl_apply_delay: 0 for db2 and run "
        "site first, or switch over to another standby"]
    assert problems("switchover", facts, target="db3") == []  # another standby's delay does not matter
