# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Whether the inventory describes the cluster the hosts run, decided before anything changes: one host in group
primary and none in both groups, usable addresses of one family, every peer's DNS name resolving on each node, and
servers whose roles match their groups (after a switchover the inventory must follow).

The roles ask it once per run (filter pgrepl.streaming.inventory_problems) from the facts every node gathered.

Many clusters per inventory: each host belongs to the cluster its pgrepl_cluster_id names (DEFAULT_CLUSTER_ID when
unset); the groups primary and standby then hold the nodes of several clusters, and every check above holds per
cluster. The plays act on every cluster or on those named by the extra variable pgrepl_clusters (a comma string or
a list); a day-2 operation on the cluster of its target or host.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.pgrepl.streaming.plugins.module_utils._address import cluster_problems, resolve_problems


class InventoryError(ValueError):
    """The input of the check is malformed (a bug of the caller, not a problem of the inventory)."""


@dataclass(frozen=True)
class InventoryView:
    """What the check reads: the two groups, and per node (inventory name) its address, its live server facts (None:
    no server answered), and what its peers' DNS names resolved to on it (with the resolver's errors)."""
    primary: tuple[str, ...]
    standby: tuple[str, ...]
    addresses: Mapping[str, Any] = field(default_factory=dict)
    servers: Mapping[str, Any] = field(default_factory=dict)
    resolved: Mapping[str, Any] = field(default_factory=dict)
    resolve_errors: Mapping[str, Any] = field(default_factory=dict)
    # Inventory name -> its cluster id (a node not named: DEFAULT_CLUSTER_ID).
    clusters: Mapping[str, str] = field(default_factory=dict)

    @property
    def nodes(self) -> list[str]:
        """Every node, primary first, each once."""
        return list(dict.fromkeys((*self.primary, *self.standby)))

    def cluster(self, host: str) -> str:
        return str(self.clusters.get(host) or DEFAULT_CLUSTER_ID)

    def per_cluster(self) -> list[tuple[str, InventoryView]]:
        """(cluster id, the view of that cluster alone), in the order the clusters first appear."""
        ids = list(dict.fromkeys(self.cluster(host) for host in self.nodes)) or [DEFAULT_CLUSTER_ID]
        return [(cid, InventoryView(
            primary=tuple(h for h in self.primary if self.cluster(h) == cid),
            standby=tuple(h for h in self.standby if self.cluster(h) == cid),
            addresses=self.addresses, servers=self.servers, resolved=self.resolved,
            resolve_errors=self.resolve_errors, clusters={})) for cid in ids]

    def server(self, host: str) -> Mapping[str, Any]:
        value = self.servers.get(host)
        return value if isinstance(value, Mapping) else {}


def _names(value: Any, key: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise InventoryError(f"{key}: expected a list of inventory names, got {type(value).__name__}")
    return tuple(str(item) for item in value)


def _mapping(value: Any, key: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InventoryError(f"{key}: expected a dict keyed by inventory name, got {type(value).__name__}")
    return value


def inventory_view(value: Any) -> InventoryView:
    """The view from a plain dict (keys primary, standby, addresses, servers, resolved, resolve_errors)."""
    if not isinstance(value, Mapping):
        raise InventoryError(f"expected a dict, got {type(value).__name__}")
    unknown = set(value) - {"primary", "standby", "addresses", "servers", "resolved", "resolve_errors", "clusters"}
    if unknown:
        raise InventoryError(f"unknown keys: {', '.join(sorted(unknown))}")
    return InventoryView(primary=_names(value.get("primary"), "primary"),
                         standby=_names(value.get("standby"), "standby"),
                         addresses=_mapping(value.get("addresses"), "addresses"),
                         servers=_mapping(value.get("servers"), "servers"),
                         resolved=_mapping(value.get("resolved"), "resolved"),
                         resolve_errors=_mapping(value.get("resolve_errors"), "resolve_errors"),
                         clusters={str(host): cluster_id(cid, str(host))
                                   for host, cid in _mapping(value.get("clusters"), "clusters").items()})


def groups_problem(view: InventoryView, cluster: str | None = None) -> str | None:
    """The message when the groups cannot describe one cluster: not exactly one primary, or a host in both.
    ``cluster``: the cluster the view holds, named in the message (None: the inventory's only, default one)."""
    both = [host for host in view.primary if host in view.standby]
    if len(view.primary) == 1 and not both:
        return None
    who = "the inventory" if cluster is None else f"cluster {cluster!r} (pgrepl_cluster_id)"
    return (f"{who} needs exactly one host in group primary (it has {len(view.primary)}: "
            f"{', '.join(view.primary)}) and no host in both primary and standby (both: {', '.join(both) or 'none'})")


def role_problems(view: InventoryView) -> list[str]:
    """A primary host whose server is in recovery, or a standby host whose server is a primary with standbys of
    its own: the inventory does not match the cluster (typically not updated after a switchover or failover)."""
    problems = []
    real_primaries = [host for host in view.standby if view.server(host).get("role") == "primary"]
    for host in view.primary:
        if view.server(host).get("role") == "standby":
            where = (f"The primary now is {' and '.join(real_primaries)} (group standby): after a switchover or "
                     "failover put it in group primary (the playbook printed the new groups, and wrote them to "
                     "pgrepl_inventory_file if set)" if real_primaries
                     else "No host of group standby is a primary either")
            problems.append(f"{host} is in group primary but its server is in recovery (a standby). {where}")
    for host in view.standby:
        server = view.server(host)
        senders, slots = int(server.get("walsenders_count") or 0), int(server.get("active_slots_count") or 0)
        if server.get("role") == "primary" and (senders or slots):
            problems.append(f"{host} is in group standby but its server is a primary serving {senders} walsender(s) "
                            f"and {slots} active slot(s): it looks like the real primary")
    return problems


def inventory_problems(view: InventoryView, facts: bool = True) -> list[str]:
    """Every reason the inventory cannot be acted on, each naming the host (and its cluster when the inventory
    holds several); [] when it matches the clusters. ``facts`` false: only the groups (before any node was asked,
    as the day-2 operations check first)."""
    clusters = view.per_cluster()
    named = len(clusters) > 1 or clusters[0][0] != DEFAULT_CLUSTER_ID
    problems: list[str] = []
    for cid, one in clusters:
        problem = groups_problem(one, cid if named else None)
        if problem:
            problems.append(problem)
        elif facts:
            problems += cluster_problems_of(one, cid if named else None)
    return problems


def cluster_problems_of(view: InventoryView, cluster: str | None = None) -> list[str]:
    """The checks that need the facts, for the nodes of one cluster (its groups right)."""
    nodes = view.nodes
    problems = cluster_problems({host: view.addresses.get(host, "") for host in nodes})
    if cluster is not None:
        problems = [f"cluster {cluster!r}: {problem}" for problem in problems]
    # Each node's pg_hba lists the addresses its peers' names resolve to there.
    for host in nodes:
        peers = {other: view.addresses.get(other, "") for other in nodes if other != host}
        problems += resolve_problems(peers, _mapping(view.resolved.get(host), f"resolved.{host}"),
                                     _mapping(view.resolve_errors.get(host), f"resolve_errors.{host}"), host)
    return problems + role_problems(view)


# ---------------------------------------------------------------------------------------------------------------
# Many clusters per inventory
# ---------------------------------------------------------------------------------------------------------------

# The cluster of a host without pgrepl_cluster_id: an inventory of one cluster never has to name it.
DEFAULT_CLUSTER_ID = "default"
# Letters, digits, '_', '-', '.', starting with a letter or digit: no comma (the selector's separator), no space,
# and safe in a file name (the lease file of a non-default cluster carries it).
_CLUSTER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
ID_RULE = "1 to 63 letters, digits, '_', '-' or '.', starting with a letter or digit"


def cluster_id(value: Any, host: str | None = None) -> str:
    """A host's pgrepl_cluster_id, checked (None or '': the default cluster); an integer is taken as its digits."""
    if value is None or value == "":
        return DEFAULT_CLUSTER_ID
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    where = f" of {host}" if host else ""
    if not isinstance(value, str) or not _CLUSTER_ID.fullmatch(value):
        raise InventoryError(f"pgrepl_cluster_id{where}: {value!r} is not a cluster id ({ID_RULE})")
    return value


@dataclass(frozen=True)
class Clusters:
    """The clusters of an inventory: each cluster id (in the order they first appear, primaries first) with its
    primaries and standbys in inventory order, and every node's cluster."""
    primary: tuple[str, ...]
    standby: tuple[str, ...]
    of: Mapping[str, str]

    @property
    def ids(self) -> list[str]:
        return list(dict.fromkeys(self.of[host] for host in (*self.primary, *self.standby)))

    def nodes(self, ids: Sequence[str] | None = None) -> list[str]:
        """The nodes of the clusters ``ids`` (None: all), primaries first, each once."""
        return [host for host in dict.fromkeys((*self.primary, *self.standby)) if ids is None or self.of[host] in ids]

    def members(self, ids: Sequence[str] | None = None) -> dict[str, Any]:
        """The groups and cluster ids of the clusters ``ids`` (None: all): the inventory check's view of them."""
        return {"primary": [h for h in self.primary if ids is None or self.of[h] in ids],
                "standby": [h for h in self.standby if ids is None or self.of[h] in ids],
                "clusters": {host: self.of[host] for host in self.nodes(ids)}}


def inventory_clusters(primary: Any, standby: Any, ids: Mapping[str, Any]) -> Clusters:
    """The clusters from the two groups and the hosts' pgrepl_cluster_id values (a host missing: the default);
    a bad id is refused naming the host and the option."""
    primary_names, standby_names = _names(primary, "primary"), _names(standby, "standby")
    of = {host: cluster_id(ids.get(host), host) for host in dict.fromkeys((*primary_names, *standby_names))}
    return Clusters(primary_names, standby_names, of)


def selected_clusters(clusters: Clusters, selector: Any) -> list[str]:
    """The cluster ids the extra variable pgrepl_clusters names (a comma string or a list; empty: every cluster);
    a name that is no cluster of the inventory is refused, naming it and the inventory's clusters."""
    if selector is None or selector == "" or selector == []:
        return clusters.ids
    if isinstance(selector, str):
        names = [part.strip() for part in selector.split(",")]
    elif isinstance(selector, Sequence) and not isinstance(selector, bytes):
        names = [str(part).strip() for part in selector]
    else:
        raise InventoryError(f"pgrepl_clusters: expected cluster ids as a comma-separated string or a list, "
                             f"got {type(selector).__name__}")
    unknown = [name for name in names if name not in clusters.ids]
    if unknown or not names:
        raise InventoryError(f"pgrepl_clusters: {', '.join(repr(n) for n in unknown) or repr(selector)} names no "
                             f"cluster of the inventory (its clusters, by pgrepl_cluster_id: "
                             f"{', '.join(clusters.ids) or 'none'}). Nothing was changed")
    return [cid for cid in clusters.ids if cid in names]


def day2_cluster(clusters: Clusters, target: Any = "", host: Any = "", selector: Any = "") -> str:
    """The one cluster a day-2 operation acts on: that of its target (pgrepl_target) or host (pgrepl_host), else
    the one pgrepl_clusters names, else the inventory's only cluster. Refused when it cannot be told, or when
    they name different clusters."""
    named = {option: str(value) for option, value in (("pgrepl_target", target), ("pgrepl_host", host))
             if value not in (None, "")}
    from_hosts = {}
    for option, name in named.items():
        if name in clusters.of:
            from_hosts[option] = clusters.of[name]
        elif len(clusters.ids) > 1:
            # One cluster: the operation's own check names the unknown host among that cluster's nodes.
            raise InventoryError(f"{option}: {name} is not a node of the inventory (groups primary and standby), "
                                 "so its cluster cannot be told. Nothing was changed")
    chosen = selected_clusters(clusters, selector) if selector not in (None, "", []) else None
    if chosen is not None and len(chosen) != 1:
        raise InventoryError(f"pgrepl_clusters: a day-2 operation acts on one cluster; {selector!r} names "
                             f"{len(chosen)} ({', '.join(chosen)}). Nothing was changed")
    candidates = set(from_hosts.values()) | set(chosen or [])
    if len(candidates) > 1:
        said = ", ".join([f"{option}={named[option]} is in cluster {cid!r}" for option, cid in from_hosts.items()]
                         + ([f"pgrepl_clusters={chosen[0]!r}"] if chosen else []))
        raise InventoryError(f"the operation's options name different clusters ({said}): a day-2 operation acts "
                             "on one cluster. Nothing was changed")
    if candidates:
        return candidates.pop()
    if len(clusters.ids) == 1:
        return clusters.ids[0]
    raise InventoryError(f"the inventory holds several clusters ({', '.join(clusters.ids)}): name the cluster by "
                         "pgrepl_target or pgrepl_host (one of its nodes), or by -e pgrepl_clusters=ID. "
                         "Nothing was changed")


def previous_entries(previous: Any, clusters: Clusters, cluster: str) -> dict[str, Any]:
    """The entries (host -> its value there) the groups file held for the hosts of every cluster but ``cluster``
    (``previous``: the file's YAML, None when there was none), so that they are written back exactly; a value
    that is not a mapping is written as {}."""
    entries: dict[str, Any] = {}
    children = ((previous or {}).get("all") or {}).get("children") if isinstance(previous, Mapping) else None
    if not isinstance(children, Mapping):
        return entries
    for group in ("primary", "standby"):
        hosts = (children.get(group) or {}).get("hosts") if isinstance(children.get(group), Mapping) else None
        for host, value in (hosts or {}).items() if isinstance(hosts, Mapping) else ():
            if clusters.of.get(str(host), DEFAULT_CLUSTER_ID) != cluster and isinstance(value, Mapping):
                entries[str(host)] = dict(value)
    return entries


def regroup(clusters: Clusters, cluster: str, primary: str, standbys: Sequence[str]) -> dict[str, list[str]]:
    """The groups primary and standby after a day-2 operation on ``cluster``: its nodes leave both groups and come
    back as ``primary`` and ``standbys``, where the cluster's first entry of each group was (at the end if it had
    none); every other cluster's entries stay exactly as they are, in their order."""
    def place(group: Sequence[str], new: list[str]) -> list[str]:
        out: list[str] = []
        placed = False
        for host in group:
            if clusters.of.get(host, DEFAULT_CLUSTER_ID) != cluster:
                out.append(host)
            elif not placed:
                out += new
                placed = True
        return out if placed else out + new

    return {"primary": place(clusters.primary, [primary]), "standby": place(clusters.standby, list(standbys))}
