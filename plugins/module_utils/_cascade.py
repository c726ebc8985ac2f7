# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Cascading standbys (pgrepl_upstream): which node each standby streams from, how far it is from the primary,
which slots each node keeps, and why an inventory's upstreams cannot be used.

The node that is primary right now ignores its own pgrepl_upstream (a day-2 operation may promote a standby that
names one). A standby with an empty pgrepl_upstream, or one naming the primary, streams from the primary. A node
known to be gone (a failover's dead nodes) is skipped: its cascades stream from its own upstream instead, up to
the primary.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ansible_collections.pgrepl.streaming.plugins.module_utils._errors import PgreplError

# How far from the primary a standby may be: site copies each level in a play of its own (level 1 streams from the
# primary, level 2 from a level-1 standby, ...), after its upstream streams; playbooks/site.yml has a play per level.
MAX_LEVEL = 3


def _wanted(upstreams: Mapping[str, Any], host: str) -> str:
    value = upstreams.get(host)
    return "" if value is None else str(value).strip()


def upstream_problems(nodes: Iterable[str], primary: str, upstreams: Mapping[str, Any],
                      sync: Mapping[str, bool] | None = None) -> list[str]:
    """Every reason the standbys' pgrepl_upstream cannot be used, each naming its host, option and value: an
    upstream that is not a node of this cluster, the standby itself, a loop (the chain must reach the primary), a
    chain longer than MAX_LEVEL, a cascaded standby marked pgrepl_sync."""
    nodes = [str(node) for node in nodes]
    members = set(nodes)
    problems: list[str] = []
    valid: dict[str, str] = {}
    for host in nodes:
        raw = upstreams.get(host)
        if host == primary and isinstance(raw, str) and raw.strip() in members and raw.strip() != host:
            valid[host] = raw.strip()  # checked only for a loop once another node is primary
        if host == primary or raw is None or raw == "":
            continue
        if not isinstance(raw, str):
            problems.append(f"{host}: pgrepl_upstream: {raw!r} is not an inventory host name")
            continue
        wanted = raw.strip()
        if wanted == host:
            problems.append(f"{host}: pgrepl_upstream: {wanted!r} is this standby itself; name the node it streams "
                            f"from (empty: the primary {primary})")
        elif wanted not in members:
            problems.append(f"{host}: pgrepl_upstream: {wanted!r} is not a node of this cluster (its nodes: "
                            f"{', '.join(nodes)})")
        else:
            valid[host] = wanted
    for host in nodes:
        if host not in valid or host == primary:
            continue
        chain = [host]
        current = host
        while current in valid and valid[current] != primary:
            current = valid[current]
            if current in chain:
                loop = " -> ".join(chain[chain.index(current):] + [current])
                problems.append(f"{host}: pgrepl_upstream: {valid[host]!r} makes a loop ({loop}): the chain of "
                                f"upstreams must end at the primary {primary}")
                break
            chain.append(current)
        else:
            level = len(chain)
            if level > MAX_LEVEL:
                problems.append(f"{host}: pgrepl_upstream: {valid[host]!r} puts it {level} standbys away from the "
                                f"primary ({' -> '.join(chain + [primary])}); at most {MAX_LEVEL} are supported")
            elif level > 1 and (sync or {}).get(host):
                problems.append(f"{host}: pgrepl_sync: true with pgrepl_upstream: {valid[host]!r} cannot be: "
                                "synchronous replication counts the acknowledgements of the primary's direct "
                                "standbys only, so no commit would ever wait for a cascaded one; drop pgrepl_sync "
                                "or pgrepl_upstream")
    if not problems:
        # The primary ignores its own pgrepl_upstream, until a switchover or failover makes another node primary:
        # refused now, not in the middle of that operation.
        for other in nodes:
            if other == primary:
                continue
            try:
                effective_upstreams(nodes, other, valid)
            except PgreplError as exc:
                problems.append(f"{primary}: {exc} (after a switchover or failover to {other}; the primary's own "
                                f"pgrepl_upstream is {valid.get(primary, upstreams.get(primary))!r})")
                break
    return problems


def effective_upstreams(nodes: Iterable[str], primary: str, upstreams: Mapping[str, Any],
                        gone: Iterable[str] = ()) -> dict[str, str]:
    """Each node's upstream now: '' for the primary, the primary for a direct standby, else the node its
    pgrepl_upstream names, or, when that one is gone, the next one up its chain (the primary at the end).

    A loop among the nodes (possible once another node is primary) is refused naming the option."""
    nodes = [str(node) for node in nodes]
    members = set(nodes)
    dead = set(gone)
    result: dict[str, str] = {}
    for host in nodes:
        if host == primary:
            result[host] = ""
            continue
        seen = [host]
        current = _wanted(upstreams, host) or primary
        while current != primary and (current in dead or current not in members):
            if current in seen:
                break
            seen.append(current)
            current = _wanted(upstreams, current) or primary
        result[host] = current
    for host in nodes:
        chain = [host]
        current = result[host]
        while current and current != primary:
            if current in chain:
                loop = " -> ".join(chain[chain.index(current):] + [current])
                raise PgreplError(f"pgrepl_upstream: with {primary} as the primary the upstreams make a loop "
                                  f"({loop}): the chain of upstreams must end at the primary")
            chain.append(current)
            current = result.get(current, primary)
    return result


def cascade_plan(nodes: Iterable[str], primary: str, upstreams: Mapping[str, Any],
                 gone: Iterable[str] = ()) -> dict[str, dict[str, Any]]:
    """host -> {'upstream': its upstream now ('' for the primary), 'level': 0 for the primary, 1 for a direct
    standby, 2 for a standby of one, ..., 'cascades': the nodes streaming from it, in the nodes' order}."""
    nodes = [str(node) for node in nodes]
    upstream_of = effective_upstreams(nodes, primary, upstreams, gone)
    levels: dict[str, int] = {}

    def level(host: str) -> int:
        if host not in levels:
            above = upstream_of.get(host, "")
            levels[host] = 0 if not above else level(above) + 1
        return levels[host]

    return {host: {"upstream": upstream_of[host], "level": level(host),
                   "cascades": [other for other in nodes if upstream_of[other] == host]}
            for host in nodes}


def too_deep_after(nodes: Iterable[str], new_primary: str, upstreams: Mapping[str, Any]) -> list[str]:
    """The standbys that would be more than MAX_LEVEL standbys away from new_primary once it is the primary (a
    switchover to it: the old primary becomes its direct standby and the cascades that name it move one level
    down), each named with its chain; [] when none, or when the upstreams make a loop (site's check names that)."""
    try:
        plan = cascade_plan(nodes, new_primary, upstreams)
    except PgreplError:
        return []
    problems = []
    for host, entry in plan.items():
        if entry["level"] <= MAX_LEVEL:
            continue
        chain = [host]
        while plan[chain[-1]]["upstream"]:
            chain.append(plan[chain[-1]]["upstream"])
        problems.append(f"{host} would be {entry['level']} standbys away from {new_primary} ({' -> '.join(chain)}), "
                        f"at most {MAX_LEVEL} are supported: set its pgrepl_upstream (or one above it) nearer to "
                        f"{new_primary} and run site first, or choose another standby")
    return problems


def wanted_slot_names(plan: Mapping[str, Mapping[str, Any]], host: str, slot_names: Mapping[str, str]) -> list[str]:
    """The slots a node keeps: one for each node streaming from it."""
    return [slot_names[other] for other in (plan.get(host) or {}).get("cascades") or [] if slot_names.get(other)]
