# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter inventory_problems: whether the inventory describes the cluster the hosts run. The logic is in
module_utils/_inventory.py; the documentation is in the sidecar file inventory_problems.yml beside this file.
"""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleFilterError

from ansible_collections.pgrepl.streaming.plugins.module_utils._inventory import (
    InventoryError,
    inventory_view,
)
from ansible_collections.pgrepl.streaming.plugins.module_utils._inventory import (
    inventory_problems as problems_of,
)


def inventory_problems(view: Any, facts: bool = True) -> list[str]:
    """Every reason the inventory cannot be acted on, each naming the host ([] when it matches the cluster)."""
    try:
        return problems_of(inventory_view(view), bool(facts))
    except InventoryError as exc:
        raise AnsibleFilterError(f"inventory_problems: {exc}") from None


class FilterModule:
    """The collection's inventory check."""

    def filters(self) -> dict[str, Any]:
        return {"inventory_problems": inventory_problems}
