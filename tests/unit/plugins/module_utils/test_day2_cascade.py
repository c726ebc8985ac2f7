# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Day-2 decisions with cascading standbys (pgrepl_upstream, module_utils/_day2.py): a re-seed of a cascade acts on
its slot on its upstream and needs that upstream running in recovery; remove_standby refuses a node that feeds
cascades, naming them and what to do, and reads a cascade's slot on its upstream. A direct standby's decisions
stay those of tests/unit/plugins/module_utils/test_day2.py."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.pgrepl.streaming.plugins.filter.day2 import day2_problems, rejoin_needed, reseed_slot_action


def cascaded() -> dict[str, Any]:
    """db1 primary; db2 streams from it and feeds db3 (pgrepl_upstream: db2), whose slot is on db2."""
    standby = {"role": "standby", "timeline": 1, "receive_lsn": "0/3000148", "replay_lsn": "0/3000148",
               "replay_paused": False, "pending_restart": [], "slots": [],
               "wal_receiver": {"status": "streaming", "sender_host": "10.0.0.1"}}
    db2 = copy.deepcopy(standby)
    db2["slots"] = [{"slot_name": "db3", "slot_type": "physical", "active": True, "active_pid": 77,
                     "wal_status": "reserved"}]
    db3 = copy.deepcopy(standby)
    db3["wal_receiver"]["sender_host"] = "10.0.0.2"
    return {
        "primary": "db1",
        "standbys": ["db2", "db3"],
        "servers": {
            "db1": {"role": "primary", "timeline": 1, "current_lsn": "0/3000148",
                    "slots": [{"slot_name": "db2", "slot_type": "physical", "active": False, "active_pid": None,
                               "wal_status": "reserved"}]},
            "db2": db2,
            "db3": db3,
        },
        "slots": {"db1": "db1", "db2": "db2", "db3": "db3"},
        "addresses": {"db1": "10.0.0.1", "db2": "10.0.0.2", "db3": "10.0.0.3"},
        "upstreams": {"db1": "", "db2": "db1", "db3": "db2"},
    }


def test_reseed_slot_action_reads_a_cascades_slot_on_its_upstream() -> None:
    facts = cascaded()
    assert reseed_slot_action(facts, "db3") == "keep"  # on db2; the primary has none for it
    facts["servers"]["db2"]["slots"][0]["wal_status"] = "lost"
    assert reseed_slot_action(facts, "db3") == "recreate"
    facts["servers"]["db2"]["slots"] = []
    facts["servers"]["db1"]["slots"].append({"slot_name": "db3", "slot_type": "physical", "wal_status": "lost"})
    assert reseed_slot_action(facts, "db3") == "create"  # one left on the primary is not its slot
    # A direct standby: on the primary, as before (an empty or absent upstream is the primary).
    assert reseed_slot_action(facts, "db2") == "keep"
    del facts["upstreams"]
    assert reseed_slot_action(facts, "db3") == "recreate"


def test_reseed_of_a_cascade_needs_its_upstream_in_recovery() -> None:
    facts = cascaded()
    assert day2_problems(facts, "reseed", {"host": "db3"}) == []
    facts["servers"]["db2"] = None
    assert day2_problems(facts, "reseed", {"host": "db3"}) == [
        "db3 streams from db2 (its pgrepl_upstream), which is not running: a re-seed copies it from there, through "
        "its slot there. Start db2 (rejoin or re-seed it), or set pgrepl_upstream of db3 to a running node and run "
        "site"]
    facts["servers"]["db2"] = {"role": "primary"}
    assert day2_problems(facts, "reseed", {"host": "db3"})[0].startswith(
        "db3 streams from db2 (its pgrepl_upstream), which is not in recovery (a second primary?): ")
    assert day2_problems(facts, "reseed", {"host": "db2"}) == [
        "db2 runs as a primary: a re-seed would throw its writes away (for a former primary use "
        "pgrepl.streaming.rejoin)"]


def test_remove_standby_refuses_a_node_that_feeds_cascades() -> None:
    facts = cascaded()
    facts["standbys"].append("db4")
    facts["servers"]["db4"] = None  # a stopped cascade counts too: its pgrepl_upstream still names db2
    facts["upstreams"]["db4"] = "db2"
    refusal = [
        "db2 feeds the cascading standbys db3, db4 (their pgrepl_upstream is db2): removing it would leave them "
        "without an upstream. Set their pgrepl_upstream to another node (empty: the primary db1) and run site, "
        "which creates their slots there and repoints them, then remove db2"]
    assert day2_problems(facts, "remove_standby", {"host": "db2"}) == refusal
    assert day2_problems(facts, "remove_standby", {"host": "db2", "force": True}) == refusal
    facts["upstreams"]["db3"] = facts["upstreams"]["db4"] = "db1"
    assert day2_problems(facts, "remove_standby", {"host": "db2"}) == []


def test_remove_standby_reads_a_cascades_slot_on_its_upstream() -> None:
    facts = cascaded()
    assert day2_problems(facts, "remove_standby", {"host": "db3"}) == [
        "db3 still streams (its slot db3 on db2 is in use by walsender 77): stop it first, or -e pgrepl_force=true "
        "to cut it off and drop the slot"]
    assert day2_problems(facts, "remove_standby", {"host": "db3", "force": True}) == []
    facts["servers"]["db2"]["slots"][0]["active"] = False
    assert day2_problems(facts, "remove_standby", {"host": "db3"}) == []


def test_upstreams_of_the_wrong_shape_are_named() -> None:
    facts = cascaded()
    facts["upstreams"] = ["db2"]
    with pytest.raises(AnsibleFilterError, match=r"facts.upstreams: a dict keyed by inventory name is expected"):
        reseed_slot_action(facts, "db3")


def test_rejoin_of_a_cascade_streaming_from_its_upstream_has_nothing_to_do() -> None:
    facts = cascaded()
    assert rejoin_needed(facts, "db3") is False  # streams from db2's address, on the primary's timeline
    facts["servers"]["db3"]["wal_receiver"]["sender_host"] = "10.0.0.1"  # from the primary: not where it belongs
    assert rejoin_needed(facts, "db3") is True
    assert rejoin_needed(facts, "db2") is False  # a direct standby, from the primary's address, as before
    facts["upstreams"] = {}
    assert rejoin_needed(facts, "db3") is False


def test_rejoin_of_a_cascade_needs_its_upstream_in_recovery() -> None:
    facts = cascaded()
    facts["servers"]["db3"] = None
    assert day2_problems(facts, "rejoin", {"host": "db3"}) == []
    facts["servers"]["db2"] = None
    assert day2_problems(facts, "rejoin", {"host": "db3"}) == [
        "db3 streams from db2 (its pgrepl_upstream), which is not running: a rejoin makes it stream from there, "
        "through its slot there. Start db2 (rejoin or re-seed it), or set pgrepl_upstream of db3 to a running node "
        "and run site"]
    assert day2_problems(facts, "rejoin", {"host": "db2"}) == []  # a direct standby: the primary runs


def test_a_switchover_that_would_make_a_chain_too_long_is_refused() -> None:
    """db1 -> db2 -> db3 -> db4 (levels 1-3): a switchover to db2 keeps every chain within 3 (db1 becomes its
    direct standby); one to db5, a direct standby, would put db4 four standbys away (db5 <- db1 <- db2 <- db3 <-
    db4), refused naming the chain."""
    facts = cascaded()
    streaming = copy.deepcopy(facts["servers"]["db2"])
    streaming["slots"] = []
    facts["standbys"] = ["db2", "db3", "db4", "db5"]
    facts["servers"].update(db4=copy.deepcopy(streaming), db5=copy.deepcopy(streaming))
    facts["servers"]["db1"]["replication"] = [
        {"application_name": name, "state": "streaming"} for name in ("db2", "db5")]
    facts["slots"].update(db4="db4", db5="db5")
    facts["addresses"].update(db4="10.0.0.4", db5="10.0.0.5")
    facts["upstreams"].update(db4="db3", db5="")
    assert day2_problems(facts, "switchover", {"target": "db2"}) == []
    assert day2_problems(facts, "switchover", {"target": "db5"}) == [
        "after a switchover to db5, db4 would be 4 standbys away from db5 (db4 -> db3 -> db2 -> db1 -> db5), at most 3 "
        "are supported: set its pgrepl_upstream (or one above it) nearer to db5 and run site first, or choose "
        "another standby"]
