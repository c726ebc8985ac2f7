# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters for node addresses (pgrepl_address): node_address, address_names, address_problems,
address_resolve_problems and hba_entries. The logic is in module_utils/_address.py; each filter's documentation
is in the sidecar file of its name beside this file.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ansible.errors import AnsibleFilterError

from ansible_collections.pgrepl.streaming.plugins.module_utils._address import (
    AddressError,
    cluster_problems,
    dns_names,
    hba_fields,
    normalize,
    parse_node_address,
    resolve_problems,
)


def _mapping(name: str, what: str, value: Any) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise AnsibleFilterError(f"{name}: {what} must be a dict, got {type(value).__name__}")
    return value


def node_address(value: Any) -> str:
    """The address as libpq's host and the passfile's host field (IP literals in canonical form)."""
    return normalize(value)


def address_names(values: Any) -> list[str]:
    """The distinct DNS names among the addresses (IP literals, empty and unusable values left out)."""
    if isinstance(values, Mapping):
        values = list(values.values())
    if isinstance(values, (str, bytes)) or not isinstance(values, (list, tuple)):
        raise AnsibleFilterError(f"address_names: a list of addresses is expected, got {type(values).__name__}")
    return dns_names(values)


def address_problems(nodes: Any, allow_empty: bool = False) -> list[str]:
    """Messages naming each node whose address cannot be used (and a mix of IPv4 and IPv6 literals)."""
    return cluster_problems(_mapping("address_problems", "the input (inventory name: address)", nodes),
                            bool(allow_empty))


def address_resolve_problems(nodes: Any, resolved: Any, errors: Any = None, where: str = "this host") -> list[str]:
    """Messages naming each node whose DNS name did not resolve on ``where``."""
    return resolve_problems(_mapping("address_resolve_problems", "the input (inventory name: address)", nodes),
                            _mapping("address_resolve_problems", "resolved", resolved),
                            _mapping("address_resolve_problems", "errors", errors), str(where))


def hba_entries(nodes: Any, resolved: Any = None, entry: Any = None, comment: str = "pgrepl.streaming: ",
                hostnames: bool = False, strict: bool = True) -> list[dict[str, Any]]:
    """One pg_hba entry (``entry`` with its address and comment) per address field of each node, in order.

    A name that did not resolve fails (``strict``) or gives no entry (removals: nothing to find then)."""
    nodes = _mapping("hba_entries", "the input (inventory name: address)", nodes)
    resolved = _mapping("hba_entries", "resolved", resolved)
    entry = _mapping("hba_entries", "entry", entry)
    # Nodes sharing an address (several servers on one machine, names resolving alike) share its one entry: two
    # entries with one address and different comments would rewrite each other on every run.
    by_field: dict[str, list[str]] = {}
    for name, value in nodes.items():
        try:
            address = parse_node_address(value)
        except AddressError as exc:
            raise AnsibleFilterError(f"hba_entries: {name}: pgrepl_address {exc}") from None
        fields = hba_fields(address, resolved.get(address.host), bool(hostnames))
        if not fields and strict:
            raise AnsibleFilterError(f"hba_entries: {name}: pgrepl_address {address.host!r} did not resolve to any "
                                     "address here (resolved holds none for it)")
        for field in fields:
            by_field.setdefault(field, []).append(str(name))
    return [{**entry, "address": field, "comment": comment + ", ".join(names)} for field, names in by_field.items()]


class FilterModule:
    """The collection's address filters."""

    def filters(self) -> dict[str, Any]:
        return {"node_address": node_address, "address_names": address_names, "address_problems": address_problems,
                "address_resolve_problems": address_resolve_problems, "hba_entries": hba_entries}
