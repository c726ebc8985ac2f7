# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter pgrepl.streaming.synchronous_standby_names: the setting's value for the standbys marked pgrepl_sync
(module_utils/_names.py). Its documentation is in synchronous_standby_names.yml beside this file.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ansible.errors import AnsibleFilterError
from ansible.module_utils.parsing.convert_bool import boolean

from ansible_collections.pgrepl.streaming.plugins.module_utils._errors import PgreplError
from ansible_collections.pgrepl.streaming.plugins.module_utils._names import (
    synchronous_standby_names as value_of,
)


def synchronous_standby_names(standbys: Any, method: str = "ANY", count: Any = 1) -> str:
    """'ANY 1 ("db2", "db3")' for these inventory names (or, from a dict of inventory name: pgrepl_sync, the names
    marked true as Ansible reads a boolean); '' for none."""
    if isinstance(standbys, Mapping):
        try:
            standbys = [name for name, marked in standbys.items() if boolean(marked, strict=True)]
        except TypeError as exc:
            raise AnsibleFilterError(f"synchronous_standby_names: pgrepl_sync: {exc}") from None
    if isinstance(standbys, (str, bytes)) or not isinstance(standbys, (list, tuple)):
        raise AnsibleFilterError(f"synchronous_standby_names: a list of inventory names is expected, got "
                                 f"{type(standbys).__name__}")
    if isinstance(count, str) and count.strip().isdigit():
        count = int(count)
    try:
        return value_of([str(name) for name in standbys], method, count)
    except PgreplError as exc:
        raise AnsibleFilterError(f"synchronous_standby_names: {exc}") from None


class FilterModule:
    """The collection's synchronous_standby_names filter."""

    def filters(self) -> dict[str, Any]:
        return {"synchronous_standby_names": synchronous_standby_names}
