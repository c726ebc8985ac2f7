# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Cascading standbys as roles/node/vars/main.yml renders them: each node's slots, a standby's upstream in its
primary_conninfo, and the inventory check's refusal of a pgrepl_upstream."""

from __future__ import annotations

from typing import Any

from .rendering import render, role_vars, task_var

NODES = ["db1", "db2", "db3", "db4"]


def variables(host: str, primary: str = "db1", plan: bool = True, **upstreams: str) -> dict[str, Any]:
    hostvars = {name: {"__pgrepl_slot": f"slot_{name}", "__pgrepl_address": f"10.0.0.{index + 1}",
                       "__pgrepl_layout": {"port": 5432 + index}}
                for index, name in enumerate(NODES)}
    for name, upstream in upstreams.items():
        hostvars[name]["pgrepl_upstream"] = upstream
    result: dict[str, Any] = {"hostvars": hostvars, "inventory_hostname": host, "__pgrepl_primary_name": primary,
                              "__pgrepl_standby_names": [name for name in NODES if name != primary],
                              "__pgrepl_cluster_nodes": NODES}
    if not plan:
        return result
    node_vars = role_vars("node")
    result["__pgrepl_cascade"] = render(node_vars["__pgrepl_cascade"], result)
    result["__pgrepl_upstream_name"] = render(node_vars["__pgrepl_upstream_name"], result)
    return result


def slots(host: str, primary: str = "db1", **upstreams: str) -> list[dict[str, Any]]:
    return render(role_vars("node")["__pgrepl_want_slots"], variables(host, primary, **upstreams))


def test_each_node_keeps_the_slots_of_the_nodes_streaming_from_it() -> None:
    assert [slot["name"] for slot in slots("db1", db3="db2", db4="db3")] == ["slot_db2"]
    assert slots("db2", db3="db2", db4="db3") == [
        {"name": "slot_db3", "immediately_reserve": True, "allow_on_standby": True}]
    assert [slot["name"] for slot in slots("db3", db3="db2", db4="db3")] == ["slot_db4"]
    assert slots("db4", db3="db2", db4="db3") == []
    # Without cascades the primary keeps one per standby, as before.
    assert slots("db1") == [{"name": f"slot_{name}", "immediately_reserve": True, "allow_on_standby": False}
                            for name in ("db2", "db3", "db4")]


def test_after_a_switchover_the_old_primary_keeps_its_cascades_slot() -> None:
    # db4 named db1 (the primary then): with db2 primary, db1 is a standby that still feeds db4.
    assert [slot["name"] for slot in slots("db1", "db2", db4="db1")] == ["slot_db4"]
    assert [slot["name"] for slot in slots("db2", "db2", db4="db1")] == ["slot_db1", "slot_db3"]


def test_a_cascade_streams_from_its_upstreams_address_and_port() -> None:
    values = variables("db3", db3="db2")
    assert values["__pgrepl_upstream_name"] == "db2"
    host = render("{{ hostvars[__pgrepl_upstream_name].__pgrepl_address }}", values)
    port = render("{{ hostvars[__pgrepl_upstream_name].__pgrepl_layout.port }}", values)
    assert (host, str(port)) == ("10.0.0.2", "5433")
    assert variables("db4", db3="db2")["__pgrepl_upstream_name"] == "db1"


def preflight(values: dict[str, Any]) -> list[str]:
    """The preflight's one task (inventory_checks.yml) over the node role's view of these hostvars."""
    values = dict(values, groups={"primary": ["db1"], "standby": NODES[1:]}, ansible_play_hosts_all=NODES)
    values["__pgrepl_inventory_view"] = render(role_vars("node")["__pgrepl_inventory_view"], values)
    return render(task_var("roles/node/tasks/inventory_checks.yml", "Refuse an inventory that does not match",
                           "__problems"), values)


def test_the_inventory_check_refuses_a_bad_upstream() -> None:
    assert preflight(variables("db1", plan=False, db3="db3")) == [
        "db3: pgrepl_upstream: 'db3' is this standby itself; name the node it streams from (empty: the primary db1)"]
    values = variables("db1", plan=False, db3="db2")
    values["hostvars"]["db3"]["pgrepl_sync"] = True
    assert preflight(values)[0].startswith("db3: pgrepl_sync: true with pgrepl_upstream: 'db2' cannot be")
    assert preflight(variables("db1", plan=False, db3="db2")) == []
