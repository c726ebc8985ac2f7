# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter pgrepl.streaming.copy_plan: whether a standby needs a copy of its primary, and whether that copy runs in
the background with its progress printed, from the node facts gathered at the start of the run. The decisions are
_datadir.is_standby_of and _progress.runs_in_background; the documentation is in copy_plan.yml beside this file.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ansible.errors import AnsibleFilterError
from ansible.module_utils.parsing.convert_bool import boolean

from ansible_collections.pgrepl.streaming.plugins.module_utils._datadir import is_standby_of
from ansible_collections.pgrepl.streaming.plugins.module_utils._errors import PgreplError
from ansible_collections.pgrepl.streaming.plugins.module_utils._progress import runs_in_background


def _facts(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise AnsibleFilterError(f"copy_plan: {what} must be node_prepare's result (a dict), "
                                 f"got {type(value).__name__}")
    return value


def copy_plan(node: Any, primary_node: Any, background_min_size: Any, reseed: Any = False,
              check_mode: Any = False) -> dict[str, bool]:
    """{needed, background}: a copy is needed unless the node already is a standby of this primary (same system
    identifier, a signal file) or when a reseed asks for a new one; it runs in the background when it is a real run
    and the primary holds at least background_min_size bytes (pgrepl_clone_progress_min_size: its one default is the
    role's)."""
    own = _facts(node, "the node's facts")
    primary = _facts(primary_node, "the primary's facts")
    system_identifier = ((primary.get("server") or {}).get("system_identifier")
                         or (primary.get("data_dir_facts") or {}).get("system_identifier"))
    try:
        needed = boolean(reseed, strict=True) or not is_standby_of(own.get("data_dir_facts"), system_identifier)
        background = (needed and not boolean(check_mode, strict=True)
                      and runs_in_background(primary.get("data_size"), background_min_size))
    except (PgreplError, TypeError) as exc:  # TypeError: boolean() of a value that is no truth value
        raise AnsibleFilterError(f"copy_plan: {exc}") from None
    return {"needed": bool(needed), "background": bool(background)}


class FilterModule:
    """The standby's copy decision."""

    def filters(self) -> dict[str, Any]:
        return {"copy_plan": copy_plan}
