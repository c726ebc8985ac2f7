# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The sources of the node role's firewall task (roles/node/tasks/firewall.yml), rendered by Ansible over hostvars as
a play has them: the address fields of this node's pg_hba entries for its peers, a DNS name as the addresses it
resolved to on this node (even with pgrepl_hba_hostnames: a firewall matches addresses), never this node itself."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from .rendering import ROOT, render, role_vars


def firewall_task() -> dict[str, Any]:
    tasks = yaml.safe_load((ROOT / "roles" / "node" / "tasks" / "firewall.yml").read_text())
    assert len(tasks) == 1, "one task: the module call"
    return tasks[0]


@pytest.mark.parametrize("hostnames", [False, True])
def test_sources_are_the_peers_hba_addresses(hostnames: bool) -> None:
    nodes = ["db1", "db2", "db3", "db4"]
    addresses = {"db1": "10.0.0.1", "db2": "10.0.0.2", "db3": "db3.example.com", "db4": "10.0.0.2"}
    hostvars = {name: {"inventory_hostname": name, "__pgrepl_address": addresses[name]} for name in nodes}
    variables: dict[str, Any] = {
        "inventory_hostname": "db1", "hostvars": hostvars, "__pgrepl_cluster_nodes": nodes,
        "__pgrepl_node": {"resolved": {"db3.example.com": ["10.0.0.7", "fd00::7"]}},
        "__pgrepl_layout": {"port": 5433}, "pgrepl_hba_hostnames": hostnames,
    }
    variables["__pgrepl_peer_addresses"] = render(role_vars("node")["__pgrepl_peer_addresses"], variables)
    args = render(firewall_task()["pgrepl.streaming.firewall_allow"], variables)
    # db2 and db4 share one address: one source; db3's name gives what it resolved to here.
    assert args["sources"] == ["10.0.0.2/32", "10.0.0.7/32", "fd00::7/128"]
    assert int(args["port"]) == 5433
