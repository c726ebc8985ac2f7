# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Whether the inventory describes the cluster the hosts run, decided before anything changes: one host in group
primary and none in both groups, usable addresses of one family, every peer's DNS name resolving on each node, and
servers whose roles match their groups (after a switchover the inventory must follow).

The roles ask it once per run (filter pgrepl.streaming.inventory_problems) from the facts every node gathered.
"""

from __future__ import annotations

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

    @property
    def nodes(self) -> list[str]:
        """Every node, primary first, each once."""
        return list(dict.fromkeys((*self.primary, *self.standby)))

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
    unknown = set(value) - {"primary", "standby", "addresses", "servers", "resolved", "resolve_errors"}
    if unknown:
        raise InventoryError(f"unknown keys: {', '.join(sorted(unknown))}")
    return InventoryView(primary=_names(value.get("primary"), "primary"),
                         standby=_names(value.get("standby"), "standby"),
                         addresses=_mapping(value.get("addresses"), "addresses"),
                         servers=_mapping(value.get("servers"), "servers"),
                         resolved=_mapping(value.get("resolved"), "resolved"),
                         resolve_errors=_mapping(value.get("resolve_errors"), "resolve_errors"))


def groups_problem(view: InventoryView) -> str | None:
    """The message when the groups cannot describe one cluster: not exactly one primary, or a host in both."""
    both = [host for host in view.primary if host in view.standby]
    if len(view.primary) == 1 and not both:
        return None
    return (f"the inventory needs exactly one host in group primary (it has {len(view.primary)}: "
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
    """Every reason the inventory cannot be acted on, each naming the host; [] when it matches the cluster.
    ``facts`` false: only the groups (before any node was asked, as the day-2 operations check first)."""
    problem = groups_problem(view)
    if problem:
        return [problem]
    if not facts:
        return []
    nodes = view.nodes
    problems = cluster_problems({host: view.addresses.get(host, "") for host in nodes})
    # Each node's pg_hba lists the addresses its peers' names resolve to there.
    for host in nodes:
        peers = {other: view.addresses.get(other, "") for other in nodes if other != host}
        problems += resolve_problems(peers, _mapping(view.resolved.get(host), f"resolved.{host}"),
                                     _mapping(view.resolve_errors.get(host), f"resolve_errors.{host}"), host)
    return problems + role_problems(view)
