# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the day-2 decisions: day2_problems, failover_choice, rejoin_needed, rolling_restart_plan,
reseed_slot_action and stale_slots. The logic is in module_utils/_day2.py; each filter's documentation is in the
sidecar file of its name beside this file.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ansible.errors import AnsibleFilterError

from ansible_collections.pgrepl.streaming.plugins.module_utils._day2 import (
    Day2Error,
    cluster_facts,
    day2_options,
    operation_problems,
    truthy,
)
from ansible_collections.pgrepl.streaming.plugins.module_utils._day2 import (
    failover_choice as choose,
)
from ansible_collections.pgrepl.streaming.plugins.module_utils._day2 import (
    rejoin_needed as needs_rejoin,
)
from ansible_collections.pgrepl.streaming.plugins.module_utils._day2 import (
    reseed_slot_action as slot_action,
)
from ansible_collections.pgrepl.streaming.plugins.module_utils._day2 import (
    rolling_restart_plan as restart_plan,
)
from ansible_collections.pgrepl.streaming.plugins.module_utils._day2 import (
    stale_slots as stale,
)


def _filter_error(name: str, exc: Exception) -> AnsibleFilterError:
    return AnsibleFilterError(f"{name}: {exc}")


def day2_problems(facts: Any, operation: str, options: Any = None) -> list[str]:
    """Why the day-2 operation must not start, one message per reason; [] when it may."""
    try:
        return operation_problems(operation, cluster_facts(facts), day2_options(options))
    except Day2Error as exc:
        raise _filter_error("day2_problems", exc) from None


def failover_choice(facts: Any, target: Any = "") -> dict[str, Any]:
    """{'candidates': the standbys a failover may promote, 'target': the one it promotes ('' when none)}."""
    try:
        choice = choose(cluster_facts(facts), str(target or ""))
    except Day2Error as exc:
        raise _filter_error("failover_choice", exc) from None
    return {"candidates": list(choice.candidates), "target": choice.target}


def rejoin_needed(facts: Any, host: Any) -> bool:
    """False when the host already streams from the primary on its timeline."""
    try:
        return needs_rejoin(cluster_facts(facts), str(host or ""))
    except Day2Error as exc:
        raise _filter_error("rejoin_needed", exc) from None


def rolling_restart_plan(facts: Any, pending_only: Any = False) -> dict[str, Any]:
    """{'standbys': to restart one by one, 'running_standbys': to wait for, 'primary': whether it restarts}."""
    try:
        plan = restart_plan(cluster_facts(facts), truthy(pending_only))
    except Day2Error as exc:
        raise _filter_error("rolling_restart_plan", exc) from None
    return {"standbys": list(plan.standbys), "running_standbys": list(plan.running_standbys), "primary": plan.primary}


def reseed_slot_action(facts: Any, host: Any) -> str:
    """What a re-seed of host does with its slot on the primary: recreate (a lost one), keep or create."""
    try:
        return slot_action(cluster_facts(facts), str(host or ""))
    except Day2Error as exc:
        raise _filter_error("reseed_slot_action", exc) from None


def stale_slots(server: Any, cluster_slots: Any, keep: Any = None) -> list[str]:
    """The physical slots on a node named for a node of the cluster (kept from its time as a primary), but for the
    slots it keeps for its cascades."""
    if server is not None and not isinstance(server, Mapping):
        raise AnsibleFilterError(f"stale_slots: the node's server facts (a dict) are expected, got {server!r}")
    if isinstance(cluster_slots, (str, bytes)) or not isinstance(cluster_slots, (list, tuple)):
        raise AnsibleFilterError(f"stale_slots: a list of slot names is expected, got {cluster_slots!r}")
    if keep is not None and (isinstance(keep, (str, bytes)) or not isinstance(keep, (list, tuple))):
        raise AnsibleFilterError(f"stale_slots: keep: a list of slot names is expected, got {keep!r}")
    return stale(server, cluster_slots, keep or ())


class FilterModule:
    """The collection's day-2 decision filters."""

    def filters(self) -> dict[str, Any]:
        return {
            "day2_problems": day2_problems,
            "failover_choice": failover_choice,
            "rejoin_needed": rejoin_needed,
            "rolling_restart_plan": rolling_restart_plan,
            "reseed_slot_action": reseed_slot_action,
            "stale_slots": stale_slots,
        }
