# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Cascading standbys: each node's upstream, level and cascades, and the refusals of pgrepl_upstream."""

from __future__ import annotations

import pytest

from ansible_collections.pgrepl.streaming.plugins.module_utils._cascade import (
    MAX_LEVEL,
    cascade_plan,
    effective_upstreams,
    upstream_problems,
    wanted_slot_names,
)
from ansible_collections.pgrepl.streaming.plugins.module_utils._errors import PgreplError

NODES = ["db1", "db2", "db3", "db4"]


def test_without_upstreams_every_standby_streams_from_the_primary() -> None:
    plan = cascade_plan(NODES, "db1", {})
    assert plan["db1"] == {"upstream": "", "level": 0, "cascades": ["db2", "db3", "db4"]}
    assert plan["db3"] == {"upstream": "db1", "level": 1, "cascades": []}


def test_a_cascade_streams_from_its_upstream_which_keeps_its_slot() -> None:
    plan = cascade_plan(NODES, "db1", {"db3": "db2", "db4": "db3", "db2": ""})
    assert plan["db1"]["cascades"] == ["db2"]
    assert plan["db2"] == {"upstream": "db1", "level": 1, "cascades": ["db3"]}
    assert plan["db3"] == {"upstream": "db2", "level": 2, "cascades": ["db4"]}
    assert plan["db4"] == {"upstream": "db3", "level": 3, "cascades": []}
    slots = {host: f"s_{host}" for host in NODES}
    assert wanted_slot_names(plan, "db2", slots) == ["s_db3"]
    assert wanted_slot_names(plan, "db1", slots) == ["s_db2"]
    assert wanted_slot_names(plan, "db4", slots) == []


def test_naming_the_primary_is_a_direct_standby() -> None:
    assert cascade_plan(NODES, "db1", {"db3": "db1"})["db3"]["level"] == 1


def test_the_primary_now_ignores_its_own_upstream() -> None:
    # db2 cascaded from db3 and was promoted: it is the root, db3 now streams from it.
    plan = cascade_plan(NODES, "db2", {"db2": "db3", "db4": "db1"})
    assert plan["db2"]["upstream"] == ""
    assert plan["db3"]["upstream"] == "db2"
    # The old primary db1 is a direct standby of the new one and keeps feeding its cascade db4.
    assert plan["db1"] == {"upstream": "db2", "level": 1, "cascades": ["db4"]}
    assert plan["db4"]["level"] == 2


def test_a_gone_upstream_is_skipped_up_the_chain() -> None:
    # Failover: db1 dead, db2 promoted; db4 streamed from db1 -> the new primary.
    assert effective_upstreams(NODES, "db2", {"db4": "db1"}, gone=["db1"])["db4"] == "db2"
    # db3's upstream db4 died: its cascade goes to db4's upstream (db2), not further.
    upstreams = {"db3": "db4", "db4": "db2"}
    assert effective_upstreams(NODES, "db1", upstreams, gone=["db4"])["db3"] == "db2"
    # A node left out of the nodes (removed) counts as gone.
    assert effective_upstreams(["db1", "db2", "db3"], "db1", {"db3": "db4"})["db3"] == "db1"


def test_a_loop_once_another_node_is_primary_is_refused_naming_the_option() -> None:
    # db1 named db3 while it was primary (ignored then); with db2 primary db1 -> db3 -> db1.
    with pytest.raises(PgreplError, match=r"pgrepl_upstream: .*loop \(db1 -> db3 -> db1\)"):
        cascade_plan(NODES, "db2", {"db1": "db3", "db3": "db1"})


def test_refusals_name_the_host_the_option_and_the_value() -> None:
    problems = upstream_problems(NODES, "db1", {"db2": "db9", "db3": "db3", "db4": 5})
    assert problems == [
        "db2: pgrepl_upstream: 'db9' is not a node of this cluster (its nodes: db1, db2, db3, db4)",
        "db3: pgrepl_upstream: 'db3' is this standby itself; name the node it streams from (empty: the primary db1)",
        "db4: pgrepl_upstream: 5 is not an inventory host name",
    ]


def test_a_loop_is_refused() -> None:
    problems = upstream_problems(NODES, "db1", {"db2": "db3", "db3": "db2"})
    assert problems == [
        "db2: pgrepl_upstream: 'db3' makes a loop (db2 -> db3 -> db2): the chain of upstreams must end at the "
        "primary db1",
        "db3: pgrepl_upstream: 'db2' makes a loop (db3 -> db2 -> db3): the chain of upstreams must end at the "
        "primary db1",
    ]


def test_a_cascaded_synchronous_standby_is_refused_saying_why() -> None:
    problems = upstream_problems(NODES, "db1", {"db3": "db2"}, {"db3": True, "db2": True})
    assert len(problems) == 1
    assert problems[0].startswith("db3: pgrepl_sync: true with pgrepl_upstream: 'db2' cannot be: synchronous "
                                  "replication counts the acknowledgements of the primary's direct standbys only")
    # Naming the primary keeps it direct: synchronous is fine.
    assert upstream_problems(NODES, "db1", {"db3": "db1"}, {"db3": True}) == []


def test_a_chain_longer_than_supported_is_refused() -> None:
    nodes = [f"db{index}" for index in range(1, MAX_LEVEL + 3)]
    upstreams = {nodes[index]: nodes[index - 1] for index in range(2, len(nodes))}
    problems = upstream_problems(nodes, "db1", upstreams)
    last = nodes[-1]
    assert problems == [f"{last}: pgrepl_upstream: {nodes[-2]!r} puts it {MAX_LEVEL + 1} standbys away from the "
                        f"primary ({' -> '.join(reversed(nodes))}); at most {MAX_LEVEL} are supported"]


def test_the_primary_and_empty_values_are_never_refused() -> None:
    assert upstream_problems(NODES, "db1", {"db1": "db9", "db2": "", "db3": None}) == []


def test_a_loop_through_the_primarys_own_upstream_is_refused_before_any_switchover() -> None:
    # db1 (primary) names db3, db3 names db1: fine while db1 is primary, a loop once db2 is.
    problems = upstream_problems(NODES, "db1", {"db1": "db3", "db3": "db1"})
    assert len(problems) == 1
    assert problems[0].startswith("db1: pgrepl_upstream: with db2 as the primary the upstreams make a loop "
                                  "(db1 -> db3 -> db1)")
    assert "the primary's own pgrepl_upstream is 'db3'" in problems[0]
    # A primary naming a standby that does not lead back to it is fine (it cascades after a switchover).
    assert upstream_problems(NODES, "db1", {"db1": "db3"}) == []
