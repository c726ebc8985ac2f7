# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter pgrepl.streaming.slot_name: the replication slot name of an inventory host (module_utils/_names.py, the
one derivation the roles and modules share). Its documentation is in slot_name.yml beside this file.
"""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleFilterError

from ansible_collections.pgrepl.streaming.plugins.module_utils._names import slot_name_from_host


def slot_name(inventory_name: Any) -> str:
    """'DB-1.example.com' -> 'db_1_example_com'; longer than 63 characters: cut, with a hash of the whole name."""
    if not isinstance(inventory_name, str) or not inventory_name:
        raise AnsibleFilterError(f"slot_name: {inventory_name!r} is not an inventory host name (a non-empty string)")
    return slot_name_from_host(inventory_name)


class FilterModule:
    """The collection's slot name filter."""

    def filters(self) -> dict[str, Any]:
        return {"slot_name": slot_name}
