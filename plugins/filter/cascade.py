# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters pgrepl.streaming.cascade_plan and cascade_problems: cascading standbys (pgrepl_upstream). The logic is
in module_utils/_cascade.py; each filter's documentation is in the YAML file of its name beside this file.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ansible.errors import AnsibleFilterError
from ansible.module_utils.parsing.convert_bool import boolean

from ansible_collections.pgrepl.streaming.plugins.module_utils._cascade import (
    cascade_plan as plan_of,
)
from ansible_collections.pgrepl.streaming.plugins.module_utils._cascade import (
    upstream_problems,
)
from ansible_collections.pgrepl.streaming.plugins.module_utils._errors import PgreplError


def _names(filter_name: str, what: str, value: Any) -> list[str]:
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise AnsibleFilterError(f"{filter_name}: {what}: a list of inventory names is expected, got {value!r}")
    return [str(item) for item in value]


def _mapping(filter_name: str, what: str, value: Any) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise AnsibleFilterError(f"{filter_name}: {what}: a dict of inventory name to value is expected, got "
                                 f"{value!r}")
    return value


def cascade_plan(nodes: Any, primary: Any, upstreams: Any, gone: Any = None) -> dict[str, dict[str, Any]]:
    """host -> {upstream, level, cascades} for the nodes of one cluster, the node named primary at the root."""
    try:
        return plan_of(_names("cascade_plan", "nodes", nodes), str(primary),
                       _mapping("cascade_plan", "upstreams", upstreams),
                       _names("cascade_plan", "gone", gone or []))
    except PgreplError as exc:
        raise AnsibleFilterError(f"cascade_plan: {exc}") from None


def cascade_problems(nodes: Any, primary: Any, upstreams: Any, sync: Any = None) -> list[str]:
    """Every reason the standbys' pgrepl_upstream cannot be used (empty: none)."""
    marked: dict[str, bool] = {}
    for host, value in _mapping("cascade_problems", "sync", sync).items():
        try:
            marked[str(host)] = boolean(value, strict=True)
        except TypeError:
            marked[str(host)] = False  # a bad pgrepl_sync is the inventory check's to name
    return upstream_problems(_names("cascade_problems", "nodes", nodes), str(primary),
                             _mapping("cascade_problems", "upstreams", upstreams), marked)


class FilterModule:
    """The collection's cascading-standby filters."""

    def filters(self) -> dict[str, Any]:
        return {"cascade_plan": cascade_plan, "cascade_problems": cascade_problems}
