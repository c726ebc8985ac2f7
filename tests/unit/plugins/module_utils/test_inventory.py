# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The inventory check (module_utils/_inventory.py, filter inventory_problems): groups, addresses, peers' names
resolving on each node, servers' roles against their groups."""

from __future__ import annotations

from typing import Any

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.pgrepl.streaming.plugins.filter.inventory import FilterModule, inventory_problems
from ansible_collections.pgrepl.streaming.plugins.module_utils._inventory import (
    InventoryError,
    groups_problem,
    inventory_view,
    role_problems,
)

PRIMARY = {"role": "primary", "walsenders_count": 2, "active_slots_count": 2}
STANDBY = {"role": "standby"}


def view(**changes: Any) -> dict[str, Any]:
    """db1 primary, db2 and db3 streaming standbys, IPv4 addresses, nothing to resolve."""
    base: dict[str, Any] = {
        "primary": ["db1"], "standby": ["db2", "db3"],
        "addresses": {"db1": "10.0.0.1", "db2": "10.0.0.2", "db3": "10.0.0.3"},
        "servers": {"db1": PRIMARY, "db2": STANDBY, "db3": STANDBY},
        "resolved": {"db1": {}, "db2": {}, "db3": {}}, "resolve_errors": {"db1": {}, "db2": {}, "db3": {}},
    }
    base.update(changes)
    return base


def test_a_cluster_as_the_inventory_says_has_no_problem() -> None:
    assert inventory_problems(view()) == []


def test_servers_that_are_not_running_are_not_a_problem() -> None:
    assert inventory_problems(view(servers={"db1": None, "db2": {}, "db3": None})) == []


@pytest.mark.parametrize(("primary", "standby", "shown"), [
    ([], ["db2"], "(it has 0: )"),
    (["db1", "db2"], ["db3"], "(it has 2: db1, db2)"),
])
def test_not_exactly_one_primary(primary: list[str], standby: list[str], shown: str) -> None:
    problems = inventory_problems(view(primary=primary, standby=standby))
    assert problems == [f"the inventory needs exactly one host in group primary {shown} and no host in both primary "
                        "and standby (both: none)"]


def test_a_host_in_both_groups_is_named_and_stops_the_other_checks() -> None:
    # The other checks assume one cluster shape: with the groups wrong only that is said.
    problems = inventory_problems(view(standby=["db1", "db2"], addresses={"db1": "bad address"}))
    assert problems == ["the inventory needs exactly one host in group primary (it has 1: db1) and no host in both "
                        "primary and standby (both: db1)"]


def test_only_the_groups_before_any_node_was_asked() -> None:
    groups = {"primary": ["db1"], "standby": ["db2"]}
    assert inventory_problems(groups, facts=False) == []
    assert inventory_problems({"primary": [], "standby": ["db2"]}, facts=False)[0].startswith(
        "the inventory needs exactly one host in group primary (it has 0")


def test_unusable_and_mixed_addresses_name_the_node() -> None:
    problems = inventory_problems(view(addresses={"db1": "10.0.0.1", "db2": "10.0.0.0/24", "db3": ""}))
    assert problems[0].startswith("db2: pgrepl_address ")
    assert problems[1].startswith("db3: no pgrepl_address, and the host has no global IPv4 or IPv6 address")
    mixed = inventory_problems(view(addresses={"db1": "10.0.0.1", "db2": "fd00::2", "db3": "10.0.0.3"}))
    assert len(mixed) == 1 and mixed[0].startswith("the nodes' addresses mix IPv4 (db1 (10.0.0.1), db3 (10.0.0.3))")


def test_a_peer_name_that_does_not_resolve_is_named_for_the_node_where_it_failed() -> None:
    problems = inventory_problems(view(
        addresses={"db1": "db1.example", "db2": "10.0.0.2", "db3": "10.0.0.3"},
        resolved={"db1": {}, "db2": {"db1.example": ["10.0.0.1"]}, "db3": {"db1.example": []}},
        resolve_errors={"db1": {}, "db2": {}, "db3": {"db1.example": "Name or service not known"}}))
    # db1 does not resolve its own name (it is not its own peer); db2 resolved it; db3 did not.
    assert problems == ["db1: pgrepl_address 'db1.example' does not resolve on db3 (Name or service not known): "
                        "db3's pg_hba.conf needs the addresses it connects from; fix DNS or /etc/hosts there, or "
                        "set an IP address"]


def test_a_primary_in_recovery_names_the_standby_that_is_primary_now() -> None:
    problems = inventory_problems(view(servers={"db1": STANDBY, "db2": {"role": "primary"}, "db3": STANDBY}))
    assert problems == [
        "db1 is in group primary but its server is in recovery (a standby). The primary now is db2 (group standby): "
        "after a switchover or failover put it in group primary (the playbook printed the new groups, and wrote "
        "them to pgrepl_inventory_file if set)"]
    alone = inventory_problems(view(servers={"db1": STANDBY, "db2": STANDBY, "db3": None}))
    assert alone == ["db1 is in group primary but its server is in recovery (a standby). No host of group standby "
                     "is a primary either"]


def test_a_standby_host_that_serves_standbys_looks_like_the_real_primary() -> None:
    problems = inventory_problems(view(servers={"db1": PRIMARY, "db2": PRIMARY, "db3": STANDBY}))
    assert problems == ["db2 is in group standby but its server is a primary serving 2 walsender(s) and 2 active "
                        "slot(s): it looks like the real primary"]
    # A primary without walsenders or active slots on a standby host (a package's own cluster, say) is the
    # standby role's to replace, not a wrong inventory.
    idle = {"role": "primary", "walsenders_count": 0, "active_slots_count": 0}
    assert inventory_problems(view(servers={"db1": PRIMARY, "db2": idle, "db3": STANDBY})) == []


def test_every_reason_at_once() -> None:
    problems = inventory_problems(view(addresses={"db1": "10.0.0.1", "db2": "x y", "db3": "10.0.0.3"},
                                       servers={"db1": STANDBY, "db2": STANDBY, "db3": PRIMARY}))
    assert [p.split(" ")[0] for p in problems] == ["db2:", "db1", "db3"]


def test_the_parts_alone() -> None:
    v = inventory_view(view())
    assert v.nodes == ["db1", "db2", "db3"]
    assert groups_problem(v) is None and role_problems(v) == []
    assert inventory_view({"primary": ["a"], "standby": ["a", "b"]}).nodes == ["a", "b"]


@pytest.mark.parametrize(("value", "said"), [
    ("text", "expected a dict, got str"),
    ({"primary": "db1"}, "primary: expected a list of inventory names, got str"),
    ({"primary": ["db1"], "servers": ["db1"]}, "servers: expected a dict keyed by inventory name, got list"),
    ({"primary": ["db1"], "hosts": {}}, "unknown keys: hosts"),
])
def test_malformed_input_is_a_clear_error(value: Any, said: str) -> None:
    with pytest.raises(InventoryError, match=said):
        inventory_view(value)
    with pytest.raises(AnsibleFilterError, match=f"inventory_problems: {said}"):
        inventory_problems(value)


def test_the_filter_is_registered() -> None:
    assert FilterModule().filters() == {"inventory_problems": inventory_problems}
