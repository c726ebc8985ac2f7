# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action pgrepl.streaming.cluster_status: the replication status of the inventory's cluster, printed as a table
(or one JSON document) on the controller, from the node facts every host already registered.

It runs nothing on any host. The text goes through Ansible's Display, so the default callback shows it as it is
(no quoting, escaping or list commas, which a debug message gets); every decision is in module_utils/_status.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ansible import constants as C
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.pgrepl.streaming.plugins.module_utils._status import (
    ARGUMENT_SPEC,
    archive_lines,
    build_status,
    render_json,
    render_table,
    strict_message,
    tree_lines,
)

display = Display()

# The host variables the node role registers (facts.yml / gather.yml).
NODE_FACTS_VAR = "__pgrepl_node"
SLOT_VAR = "__pgrepl_slot"
# The inventory's cascading standbys: the node each streams from.
UPSTREAM_VAR = "pgrepl_upstream"


def plain(value: Any) -> Any:
    """Host variables as plain dicts, lists and scalars (what JSON and the status functions expect)."""
    if isinstance(value, Mapping):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    return str(value)


def machine_readable_callback() -> bool:
    """Whether the stdout callback writes one JSON document (ansible.posix.json, jsonl): printing would break it,
    and the task result carries the status anyway."""
    try:
        name = C.config.get_config_value("DEFAULT_STDOUT_CALLBACK")
    except Exception:  # pylint: disable=broad-except  # an unknown config layout: print as usual
        return False
    return str(name).rsplit(".", 1)[-1] in ("json", "jsonl")


class ActionModule(ActionBase):
    """Print the status of the cluster; fail with strict when something looks wrong."""

    TRANSFERS_FILES = False
    _requires_connection = False
    _VALID_ARGS = frozenset(ARGUMENT_SPEC)

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        del tmp
        _validation, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        task_vars = task_vars or {}
        groups = task_vars.get("groups") or {}
        primaries = list(args["primary"] if args["primary"] is not None else groups.get("primary") or [])
        standbys = list(args["standbys"] if args["standbys"] is not None else groups.get("standby") or [])
        hostvars = task_vars.get("hostvars") or {}
        nodes: dict[str, Any] = {}
        slots: dict[str, str] = {}
        upstreams: dict[str, Any] = {}
        for host in primaries + standbys:
            variables = hostvars.get(host) if host in hostvars else None
            if variables is None:
                continue
            nodes[host] = plain(variables.get(NODE_FACTS_VAR))
            if variables.get(UPSTREAM_VAR):
                upstreams[host] = plain(variables.get(UPSTREAM_VAR))
            slot = variables.get(SLOT_VAR)
            if slot:
                slots[host] = str(slot)
        play_hosts = task_vars.get("ansible_play_hosts_all")
        document: dict[str, Any] = build_status(primaries, standbys, nodes, slots,
                                                list(play_hosts) if play_hosts is not None else None, upstreams)
        if args["cluster"]:
            # One table per cluster of the inventory (the status playbook loops): say whose.
            document["cluster"] = args["cluster"]

        if machine_readable_callback():
            pass
        elif args["format"] == "json":
            display.display(render_json(document))
        else:
            lines = render_table(document)
            if args["cluster"]:
                display.display(f"cluster {args['cluster']} (pgrepl_cluster_id):")
            display.display(lines[0])
            for line, entry in zip(lines[1:], document["nodes"]):
                display.display(line, color=C.COLOR_ERROR if entry["problems"] else None)
            for problem in document["cluster_problems"]:
                display.display(problem, color=C.COLOR_ERROR)
            for line in tree_lines(document):
                display.display(line)
            for line in archive_lines(document):
                display.display(line)

        result.update(changed=False, ok=document["ok"])
        if args["strict"] and not document["ok"]:
            # The document was printed already; the callback would dump it once more as escaped JSON.
            result.update(failed=True, msg=strict_message(document))
        else:
            result["status"] = document
        return result
