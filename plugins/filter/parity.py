# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of hot standby parity: parity_minimums and parity_raise. The logic is in module_utils/_parity.py; each
filter's documentation is in the sidecar file of its name beside this file.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ansible.errors import AnsibleFilterError

from ansible_collections.pgrepl.streaming.plugins.module_utils._parity import (
    PARITY_SETTINGS,
)
from ansible_collections.pgrepl.streaming.plugins.module_utils._parity import (
    parity_minimums as minimums,
)
from ansible_collections.pgrepl.streaming.plugins.module_utils._parity import (
    parity_raise as to_raise,
)


def _settings(name: str, what: str, value: Any) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise AnsibleFilterError(f"{name}: {what} must be a dict of setting names and values, got {value!r}")
    return value


def parity_minimums(primary_running: Any, primary_wanted: Any = None, own: Any = None,
                    names: Any = None) -> dict[str, int]:
    """Each parity setting at its least value on a standby: the highest of the three sources."""
    if names is None:
        names = PARITY_SETTINGS
    elif isinstance(names, (str, bytes)) or not isinstance(names, (list, tuple)):
        raise AnsibleFilterError(f"parity_minimums: names must be a list of setting names, got {names!r}")
    return minimums(names, _settings("parity_minimums", "the primary's running settings", primary_running),
                    _settings("parity_minimums", "primary_wanted", primary_wanted),
                    _settings("parity_minimums", "own", own))


def parity_raise(own: Any, minimums_: Any) -> list[str]:
    """The settings the standby runs with below their minimum."""
    return to_raise(_settings("parity_raise", "the standby's running settings", own),
                    _settings("parity_raise", "the minimums", minimums_))


class FilterModule:
    """The collection's hot standby parity filters."""

    def filters(self) -> dict[str, Any]:
        return {"parity_minimums": parity_minimums, "parity_raise": parity_raise}
