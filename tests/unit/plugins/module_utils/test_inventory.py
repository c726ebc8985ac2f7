# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The inventory check (module_utils/_inventory.py, filter inventory_problems): groups, addresses, peers' names
resolving on each node, servers' roles against their groups; the clusters of an inventory (pgrepl_cluster_id) and
the selector pgrepl_clusters."""

from __future__ import annotations

from typing import Any

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.pgrepl.streaming.plugins.filter import inventory as inventory_filters
from ansible_collections.pgrepl.streaming.plugins.filter.inventory import FilterModule, inventory_problems
from ansible_collections.pgrepl.streaming.plugins.module_utils._inventory import (
    InventoryError,
    cluster_id,
    day2_cluster,
    groups_problem,
    inventory_clusters,
    inventory_view,
    regroup,
    role_problems,
    selected_clusters,
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
    assert FilterModule().filters()["inventory_problems"] is inventory_problems


# --- Many clusters per inventory (pgrepl_cluster_id) ---------------------------------------------------------------

TWO = {"primary": ["a0", "b0"], "standby": ["a1", "b1", "b2"]}
TWO_IDS = {"a0": {"pgrepl_cluster_id": "a"}, "a1": {"pgrepl_cluster_id": "a"},
           "b0": {"pgrepl_cluster_id": "b"}, "b1": {"pgrepl_cluster_id": "b"}, "b2": {"pgrepl_cluster_id": "b"}}


def two_clusters() -> Any:
    return inventory_clusters(TWO["primary"], TWO["standby"], {h: v["pgrepl_cluster_id"] for h, v in TWO_IDS.items()})


@pytest.mark.parametrize(("value", "expected"), [
    (None, "default"), ("", "default"), ("a", "a"), ("prod-eu.1_x", "prod-eu.1_x"), (7, "7"), ("A" * 63, "A" * 63)])
def test_a_cluster_id_is_checked_and_defaults_to_default(value: Any, expected: str) -> None:
    assert cluster_id(value) == expected


@pytest.mark.parametrize("value", ["a,b", "a b", "-a", "é", "A" * 64, True, ["a"], 1.5, "../x"])
def test_a_bad_cluster_id_is_refused_naming_the_option_the_host_and_the_value(value: Any) -> None:
    with pytest.raises(InventoryError, match=r"^pgrepl_cluster_id of db1: .* is not a cluster id \(1 to 63"):
        cluster_id(value, "db1")
    with pytest.raises(AnsibleFilterError, match="cluster_members: pgrepl_cluster_id of db1: "):
        inventory_filters.cluster_members({"primary": ["db1"]}, {"db1": {"pgrepl_cluster_id": value}})


def test_the_clusters_of_an_inventory_in_inventory_order() -> None:
    clusters = two_clusters()
    assert clusters.ids == ["a", "b"]
    assert clusters.nodes(["b"]) == ["b0", "b1", "b2"] and clusters.nodes() == ["a0", "b0", "a1", "b1", "b2"]
    assert clusters.members(["a"]) == {"primary": ["a0"], "standby": ["a1"], "clusters": {"a0": "a", "a1": "a"}}
    # Without any pgrepl_cluster_id: one cluster, "default".
    one = inventory_clusters(["db1"], ["db2"], {})
    assert one.ids == ["default"] and one.nodes() == ["db1", "db2"]


@pytest.mark.parametrize(("selector", "expected"), [
    ("", ["a", "b"]), (None, ["a", "b"]), ([], ["a", "b"]), ("b", ["b"]), ("b,a", ["a", "b"]), (" a , b ", ["a", "b"]),
    (["b"], ["b"])])
def test_the_selector_names_clusters_by_comma_string_or_list(selector: Any, expected: list[str]) -> None:
    assert selected_clusters(two_clusters(), selector) == expected


@pytest.mark.parametrize(("selector", "said"), [
    ("c", r"pgrepl_clusters: 'c' names no cluster of the inventory \(its clusters, by pgrepl_cluster_id: a, b\)"),
    ("a,zz", r"pgrepl_clusters: 'zz' names no cluster"),
    ({"a": 1}, r"pgrepl_clusters: expected cluster ids as a comma-separated string or a list, got dict"),
])
def test_a_selector_naming_no_cluster_is_refused_naming_the_value(selector: Any, said: str) -> None:
    with pytest.raises(InventoryError, match=said):
        selected_clusters(two_clusters(), selector)
    with pytest.raises(AnsibleFilterError, match="cluster_selected: " + said):
        inventory_filters.cluster_selected(TWO, TWO_IDS, "a0", selector)


def test_only_the_selected_clusters_hosts_are_in_the_run() -> None:
    chosen = [h for h in ["a0", "a1", "b0", "b1", "b2"] if inventory_filters.cluster_selected(TWO, TWO_IDS, h, "b")]
    assert chosen == ["b0", "b1", "b2"]
    assert all(inventory_filters.cluster_selected(TWO, TWO_IDS, h) for h in ["a0", "b2"])


def test_a_day2_operation_acts_on_the_cluster_of_its_target_or_host() -> None:
    clusters = two_clusters()
    assert day2_cluster(clusters, target="a1") == "a"
    assert day2_cluster(clusters, host="b2") == "b"
    assert day2_cluster(clusters, selector="b") == "b"
    assert day2_cluster(clusters, target="b1", selector="b") == "b"
    assert day2_cluster(inventory_clusters(["db1"], ["db2"], {})) == "default"
    # One cluster: an unknown target is the operation's own refusal, naming that cluster's standbys.
    assert day2_cluster(inventory_clusters(["db1"], ["db2"], {}), target="zz") == "default"
    chosen = [h for h in ["a0", "a1", "b0"]
              if inventory_filters.cluster_selected(TWO, TWO_IDS, h, target="a1", day2=True)]
    assert chosen == ["a0", "a1"]


@pytest.mark.parametrize(("options", "said"), [
    ({}, r"the inventory holds several clusters \(a, b\): name the cluster by pgrepl_target or pgrepl_host"),
    ({"target": "a1", "host": "b1"}, r"name different clusters \(pgrepl_target=a1 is in cluster 'a', "
                                     r"pgrepl_host=b1 is in cluster 'b'\)"),
    ({"target": "a1", "selector": "b"}, r"pgrepl_target=a1 is in cluster 'a', pgrepl_clusters='b'"),
    ({"selector": "a,b"}, r"pgrepl_clusters: a day-2 operation acts on one cluster; 'a,b' names 2 \(a, b\)"),
    ({"target": "zz"}, r"pgrepl_target: zz is not a node of the inventory \(groups primary and standby\), so its "
                       r"cluster cannot be told"),
])
def test_a_day2_operation_whose_cluster_cannot_be_told_is_refused(options: dict[str, Any], said: str) -> None:
    with pytest.raises(InventoryError, match=said):
        day2_cluster(two_clusters(), **options)


def test_each_cluster_needs_one_primary_named_in_the_refusal() -> None:
    groups = {"primary": ["a0", "a9", "b0"], "standby": ["a1", "b1"],
              "clusters": {"a0": "a", "a9": "a", "a1": "a", "b0": "b", "b1": "b"}}
    assert inventory_problems(groups, facts=False) == [
        "cluster 'a' (pgrepl_cluster_id) needs exactly one host in group primary (it has 2: a0, a9) and no host in "
        "both primary and standby (both: none)"]
    no_primary = {"primary": ["a0"], "standby": ["a1", "b1"], "clusters": {"a0": "a", "a1": "a", "b1": "b"}}
    assert inventory_problems(no_primary, facts=False) == [
        "cluster 'b' (pgrepl_cluster_id) needs exactly one host in group primary (it has 0: ) and no host in both "
        "primary and standby (both: none)"]
    # Two primaries, each of its own cluster: right.
    assert inventory_problems({"primary": ["a0", "b0"], "standby": ["a1", "b1"],
                               "clusters": {"a0": "a", "a1": "a", "b0": "b", "b1": "b"}}, facts=False) == []


def test_the_fact_checks_hold_per_cluster() -> None:
    # Cluster a on IPv4, cluster b on IPv6: no mix within a cluster. b's old primary is in recovery and its
    # standby is the primary now: the message names b's standby, never a's.
    problems = inventory_problems({
        "primary": ["a0", "b0"], "standby": ["a1", "b1"],
        "clusters": {"a0": "a", "a1": "a", "b0": "b", "b1": "b"},
        "addresses": {"a0": "10.0.0.1", "a1": "10.0.0.2", "b0": "fd00::1", "b1": "fd00::2"},
        "servers": {"a0": PRIMARY, "a1": STANDBY, "b0": STANDBY, "b1": {"role": "primary"}}})
    assert problems == [
        "b0 is in group primary but its server is in recovery (a standby). The primary now is b1 (group standby): "
        "after a switchover or failover put it in group primary (the playbook printed the new groups, and wrote "
        "them to pgrepl_inventory_file if set)"]
    mixed = inventory_problems({"primary": ["a0"], "standby": ["a1"], "clusters": {"a0": "a", "a1": "a"},
                                "addresses": {"a0": "10.0.0.1", "a1": "fd00::2"}})
    assert len(mixed) == 1 and mixed[0].startswith("cluster 'a': the nodes' addresses mix IPv4")


def test_the_members_the_nodes_and_the_lease_of_a_cluster() -> None:
    assert inventory_filters.cluster_members(TWO, TWO_IDS, ["b1"]) == {
        "primary": ["b0"], "standby": ["b1", "b2"], "clusters": {"b0": "b", "b1": "b", "b2": "b"}}
    assert inventory_filters.cluster_members(TWO, TWO_IDS)["primary"] == ["a0", "b0"]
    assert inventory_filters.cluster_members(TWO, TWO_IDS, ["b1", "a0"], split=True) == [
        {"id": "a", "title": "a", "primary": ["a0"], "standby": ["a1"]},
        {"id": "b", "title": "b", "primary": ["b0"], "standby": ["b1", "b2"]}]
    assert inventory_filters.cluster_members({"primary": ["db1"], "standby": ["db2"]}, {}, split=True) == [
        {"id": "default", "title": "", "primary": ["db1"], "standby": ["db2"]}]
    assert inventory_filters.cluster_nodes(TWO, TWO_IDS, "a1") == ["a0", "a1"]
    assert inventory_filters.cluster_nodes({"primary": ["db1"], "standby": ["db2"]}, {}, "db2") == ["db1", "db2"]
    assert inventory_filters.cluster_lease_path(None) == "/var/lib/pgrepl/run.lease"
    assert inventory_filters.cluster_lease_path("default") == "/var/lib/pgrepl/run.lease"
    assert inventory_filters.cluster_lease_path("b") == "/var/lib/pgrepl/run.b.lease"


def test_the_lease_release_filter_takes_a_list_of_later_steps_only() -> None:
    lease = {"path": "/var/lib/pgrepl/run.lease", "state": "renewed", "holder": {"run_id": "ctl:1:2"}}
    assert inventory_filters.lease_release(lease, []) == {"path": "/var/lib/pgrepl/run.lease", "run_id": "ctl:1:2"}
    assert inventory_filters.lease_release(lease, ["stale slots"]) is None
    with pytest.raises(AnsibleFilterError, match="later_calls must be a list"):
        inventory_filters.lease_release(lease, "stale slots")
    with pytest.raises(AnsibleFilterError, match="cluster_lease_path: pgrepl_cluster_id: '../x' is not"):
        inventory_filters.cluster_lease_path("../x")


def test_the_groups_after_an_operation_move_only_that_clusters_hosts() -> None:
    clusters = two_clusters()
    # Switchover of a to a1: b's entries stay exactly, in their places and order.
    assert regroup(clusters, "a", "a1", ["a0"]) == {"primary": ["a1", "b0"], "standby": ["a0", "b1", "b2"]}
    assert regroup(clusters, "b", "b2", ["b1", "b0"]) == {"primary": ["a0", "b2"], "standby": ["a1", "b1", "b0"]}
    # A standby removed from b.
    assert regroup(clusters, "b", "b0", ["b1"]) == {"primary": ["a0", "b0"], "standby": ["a1", "b1"]}
    assert inventory_filters.cluster_regroup(TWO, TWO_IDS, "a1", ["a0"])["standby"] == ["a0", "b1", "b2"]
    # No groups at all (the role called alone): the new groups only.
    assert inventory_filters.cluster_regroup({}, {}, "db2", ["db1"]) == {"primary": ["db2"], "standby": ["db1"],
                                                                         "entries": {}}
    # The other clusters' entries keep their values from the file; this cluster's moved hosts get none.
    previous = {"all": {"children": {"primary": {"hosts": {"a0": {"x": 1}, "b0": {"ansible_host": "10.9.0.1"}}},
                                     "standby": {"hosts": {"a1": None, "b1": None, "b2": {"note": "kept"}}}}}}
    assert inventory_filters.cluster_regroup(TWO, TWO_IDS, "a1", ["a0"], previous)["entries"] == {
        "b0": {"ansible_host": "10.9.0.1"}, "b2": {"note": "kept"}}
    assert inventory_filters.cluster_regroup(TWO, TWO_IDS, "a1", ["a0"], "not yaml of groups")["entries"] == {}
    assert inventory_filters.cluster_regroup(TWO, TWO_IDS, "a1", ["a0"], {"all": None})["entries"] == {}


def test_the_preflight_names_cascade_and_tls_problems_with_the_inventory_ones() -> None:
    # One task refuses them all at once: a wrong address, a cascade loop and TLS on one node only.
    problems = inventory_problems(view(
        addresses={"db1": "10.0.0.1", "db2": "fe80::zz", "db3": "10.0.0.3"},
        upstreams={"db2": "db3", "db3": "db2"}, sync={"db2": "no"},
        tls={"db1": {"tls": True}, "db2": {"tls": False}, "db3": {"tls": "no"}}))
    assert any("db2" in problem and "fe80::zz" in problem for problem in problems)
    assert any("pgrepl_upstream" in problem and "loop" in problem for problem in problems)
    assert any(problem.startswith("pgrepl_tls is true on db1 but false on db2, db3") for problem in problems)


def test_the_preflight_options_are_checked_per_cluster() -> None:
    # Cluster b's loop is named; a's upstream of a node of b is not a node of a's cluster.
    two = view(primary=["a1", "b1"], standby=["a2", "b2", "b3"],
               addresses={"a1": "10.0.0.1", "a2": "10.0.0.2", "b1": "10.0.1.1", "b2": "10.0.1.2", "b3": "10.0.1.3"},
               servers={}, resolved={}, resolve_errors={},
               clusters={"a1": "a", "a2": "a", "b1": "b", "b2": "b", "b3": "b"},
               upstreams={"a2": "b2", "b2": "b3", "b3": "b2"})
    problems = inventory_problems(two)
    assert any("a2" in problem and "b2" in problem and "not a node" in problem for problem in problems), problems
    assert any("loop" in problem and "b3" in problem for problem in problems), problems


def test_a_cluster_without_one_primary_is_not_checked_for_cascades() -> None:
    problems = inventory_problems(view(primary=[], standby=["db2", "db3"], upstreams={"db3": "db9"}))
    assert len(problems) == 1 and problems[0].startswith("the inventory needs exactly one host in group primary")


def test_without_facts_the_node_options_wait() -> None:
    assert inventory_problems(view(upstreams={"db3": "db9"}), facts=False) == []


def test_the_preflight_refuses_one_archive_directory_for_two_clusters() -> None:
    two = view(primary=["a1", "b1"], standby=["a2", "b2"],
               addresses={"a1": "10.0.0.1", "a2": "10.0.0.2", "b1": "10.0.1.1", "b2": "10.0.1.2"},
               servers={}, resolved={}, resolve_errors={}, clusters={"a1": "a", "a2": "a", "b1": "b", "b2": "b"},
               archive={host: {"enabled": "true", "dir": "/mnt/wal", "command": ""} for host in ("a1", "a2", "b1")})
    assert [problem for problem in inventory_problems(two) if "pgrepl_archive_dir" in problem] == [
        "pgrepl_archive_dir: '/mnt/wal' is set for the clusters a, b (pgrepl_cluster_id): each cluster needs an "
        "archive directory of its own - two clusters' WAL files have the same names, so the archive program would "
        "refuse one cluster's segments and one cluster's cleanup would remove the other's; set it in each cluster's "
        "group vars"]
    two["archive"]["b1"]["dir"] = "/mnt/wal-b"
    assert inventory_problems(two) == []


def test_the_preflight_refuses_a_sync_count_the_marked_standbys_cannot_meet() -> None:
    marked = view(sync={"db2": True, "db3": "no"}, sync_count={"db1": 2, "db2": 1, "db3": 1})
    assert inventory_problems(marked) == [
        "pgrepl_sync_count: 2 is more than the standbys marked pgrepl_sync (1: db2): no commit could be confirmed by "
        "that many, so every commit would wait for ever; mark more direct standbys pgrepl_sync: true, or lower "
        "pgrepl_sync_count"]
    # The primary's value counts; two marked meet 2; none marked means no commit waits at all.
    assert inventory_problems(dict(marked, sync={"db2": True, "db3": "yes"})) == []
    assert inventory_problems(dict(marked, sync_count={"db1": 1, "db2": 5})) == []
    assert inventory_problems(dict(marked, sync={})) == []
