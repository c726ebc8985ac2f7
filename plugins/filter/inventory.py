# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the inventory: inventory_problems (whether the inventory describes the clusters the hosts run) and the
clusters of an inventory (pgrepl_cluster_id): cluster_members, cluster_nodes, cluster_selected,
cluster_lease_path, lease_release, cluster_regroup. The logic is in module_utils/_inventory.py and _lease.py; the
documentation is in the sidecar files beside this file.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ansible.errors import AnsibleFilterError
from ansible.module_utils.parsing.convert_bool import boolean

from ansible_collections.pgrepl.streaming.plugins.filter.cascade import cascade_problems
from ansible_collections.pgrepl.streaming.plugins.filter.tls import tls_problems
from ansible_collections.pgrepl.streaming.plugins.module_utils._archive import shared_archive_problems
from ansible_collections.pgrepl.streaming.plugins.module_utils._inventory import (
    DEFAULT_CLUSTER_ID,
    Clusters,
    InventoryError,
    cluster_id,
    day2_cluster,
    groups_problem,
    inventory_clusters,
    inventory_view,
    previous_entries,
    regroup,
    selected_clusters,
)
from ansible_collections.pgrepl.streaming.plugins.module_utils._inventory import (
    inventory_problems as problems_of,
)
from ansible_collections.pgrepl.streaming.plugins.module_utils._lease import cluster_lease_path as lease_path_of
from ansible_collections.pgrepl.streaming.plugins.module_utils._lease import release_with_last_call
from ansible_collections.pgrepl.streaming.plugins.module_utils._names import sync_count_problem

# The preflight's per-node options besides the inventory view (inventory name -> value): cascades, the synchronous
# standbys and TLS checked per cluster (pgrepl_sync_count: the primary's value), the archive directory across
# clusters.
NODE_OPTIONS = ("upstreams", "sync", "sync_count", "tls", "archive")


def inventory_problems(view: Any, facts: bool = True) -> list[str]:
    """Every reason the inventory cannot be acted on, each naming the host ([] when it matches the cluster).
    With the optional keys ``upstreams``, ``sync`` and ``tls`` (inventory name -> pgrepl_upstream, pgrepl_sync,
    the node's TLS options as tls_problems reads them), also every cluster's cascade and TLS problems: the whole
    preflight in one task."""
    if not isinstance(view, Mapping):
        raise AnsibleFilterError(f"inventory_problems: expected a dict, got {type(view).__name__}")
    options = {key: view.get(key) or {} for key in NODE_OPTIONS}
    try:
        parsed = inventory_view({key: value for key, value in view.items() if key not in NODE_OPTIONS})
        problems = problems_of(parsed, bool(facts))
    except InventoryError as exc:
        raise AnsibleFilterError(f"inventory_problems: {exc}") from None
    if not facts:
        return problems
    for _cid, one in parsed.per_cluster():
        # A cluster without exactly one primary has no root to check upstreams against: its groups problem says so.
        if groups_problem(one) is not None:
            continue
        nodes = one.nodes
        if options["upstreams"]:
            problems += cascade_problems(nodes, one.primary[0],
                                         {host: options["upstreams"].get(host, "") for host in nodes},
                                         {host: options["sync"].get(host, False) for host in nodes})
        if options["sync_count"]:
            marked = [host for host in one.standby if boolean(options["sync"].get(host, False), strict=False)]
            problem = sync_count_problem(marked, options["sync_count"].get(one.primary[0], 1))
            if problem:
                problems.append(problem)
        if options["tls"]:
            problems += tls_problems({host: options["tls"].get(host) or {} for host in nodes})
    if options["archive"]:
        archives = {str(host): dict(node, enabled=boolean(node.get("enabled"), strict=False))
                    for host, node in options["archive"].items() if isinstance(node, Mapping)}
        problems += shared_archive_problems(archives, {host: parsed.cluster(host) for host in archives})
    return problems


def _clusters(groups: Any, hostvars: Any) -> Clusters:
    """The inventory's clusters from Ansible's groups and hostvars (each host's pgrepl_cluster_id)."""
    if not isinstance(groups, Mapping):
        raise InventoryError(f"groups: expected Ansible's groups, got {type(groups).__name__}")
    primary, standby = groups.get("primary") or [], groups.get("standby") or []
    ids: dict[str, Any] = {}
    for host in [*primary, *standby]:
        variables = hostvars[host] if host in hostvars else {}
        ids[host] = variables.get("pgrepl_cluster_id")
    return inventory_clusters(primary, standby, ids)


def _call(name: str, function: Any, *args: Any) -> Any:
    try:
        return function(*args)
    except InventoryError as exc:
        raise AnsibleFilterError(f"{name}: {exc}") from None


def cluster_members(groups: Any, hostvars: Any, hosts: Any = None, split: bool = False) -> Any:
    """The groups primary and standby and each node's cluster id, of the clusters that have a host among ``hosts``
    (None: every cluster of the inventory): what the inventory check reads. ``split``: a list, one dict per
    cluster with its ``id``, ``primary`` and ``standby`` (the status playbook's table per cluster)."""
    def run() -> Any:
        clusters = _clusters(groups, hostvars)
        ids = clusters.ids if hosts is None else [
            cid for cid in clusters.ids if any(clusters.of.get(host) == cid for host in hosts)]
        if split:
            # title: the id, unless the inventory holds only the default cluster (whose tables show no name).
            named = clusters.ids not in ([DEFAULT_CLUSTER_ID], [])
            return [{"id": cid, "title": cid if named else "", "primary": clusters.members([cid])["primary"],
                     "standby": clusters.members([cid])["standby"]} for cid in ids]
        return clusters.members(ids)
    return _call("cluster_members", run)


def cluster_nodes(groups: Any, hostvars: Any, host: str) -> list[str]:
    """Every node of ``host``'s cluster, its primaries first, in inventory order."""
    def run() -> list[str]:
        clusters = _clusters(groups, hostvars)
        return clusters.nodes([clusters.of.get(host, DEFAULT_CLUSTER_ID)])
    return _call("cluster_nodes", run)


def cluster_selected(groups: Any, hostvars: Any, host: str, selector: Any = "", target: Any = "",
                     day2_host: Any = "", day2: bool = False) -> bool:
    """Whether this run acts on ``host``: its cluster is among those pgrepl_clusters names (empty: every one), or
    with ``day2`` it is the one cluster of the operation's target or host. A selector that names no cluster, or a
    day-2 run whose cluster cannot be told, is refused."""
    def run() -> bool:
        clusters = _clusters(groups, hostvars)
        mine = clusters.of.get(host, DEFAULT_CLUSTER_ID)
        if day2:
            return mine == day2_cluster(clusters, target, day2_host, selector)
        return mine in selected_clusters(clusters, selector)
    return _call("cluster_selected", run)


def cluster_lease_path(value: Any) -> str:
    """The lease file of a node of the cluster ``value`` (its pgrepl_cluster_id)."""
    return _call("cluster_lease_path", lambda: lease_path_of(cluster_id(value), DEFAULT_CLUSTER_ID))


def lease_release(lease: Any, later_calls: Any = ()) -> dict[str, str] | None:
    """node_apply's release_lease for a node's last module call of the run (none when a later step calls one)."""
    if isinstance(later_calls, (str, bytes)) or not isinstance(later_calls, (list, tuple)):
        raise AnsibleFilterError(f"lease_release: later_calls must be a list of step names, got "
                                 f"{type(later_calls).__name__}")
    return _call("lease_release", lambda: release_with_last_call(lease, later_calls))


def cluster_regroup(groups: Any, hostvars: Any, primary: str, standbys: Any, previous: Any = None) -> dict[str, Any]:
    """The groups primary and standby after a day-2 operation made ``primary`` and ``standbys`` the nodes of
    ``primary``'s cluster; the other clusters' entries stay as they are - with ``previous`` (the groups file's YAML
    before), their values there too (key ``entries``: host -> its value)."""
    def run() -> dict[str, Any]:
        clusters = _clusters(groups, hostvars)
        variables = hostvars[primary] if primary in hostvars else {}
        cluster = clusters.of.get(primary) or cluster_id(variables.get("pgrepl_cluster_id"), primary)
        return {**regroup(clusters, cluster, primary, list(standbys)),
                "entries": previous_entries(previous, clusters, cluster)}
    return _call("cluster_regroup", run)


class FilterModule:
    """The collection's inventory check and the clusters of an inventory."""

    def filters(self) -> dict[str, Any]:
        return {"inventory_problems": inventory_problems, "cluster_members": cluster_members,
                "cluster_nodes": cluster_nodes, "cluster_selected": cluster_selected,
                "cluster_lease_path": cluster_lease_path, "lease_release": lease_release,
                "cluster_regroup": cluster_regroup}
