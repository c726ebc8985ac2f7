# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Hot standby parity: the settings a standby must have at least as high as its primary, or it stops replaying
(max_connections, max_worker_processes, max_wal_senders, max_prepared_transactions, max_locks_per_transaction).

The least value of each is the highest of the primary's running value, the value this run gives the primary and
the standby's own running value: raised to the primary's, never lowered. The filters in plugins/filter/parity.py
expose these to the node and standby roles (standby_config's min_settings, the standbys to restart first).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

PARITY_SETTINGS = ("max_connections", "max_worker_processes", "max_wal_senders", "max_prepared_transactions",
                   "max_locks_per_transaction")

_WHOLE_NUMBER_RE = re.compile(r"[0-9]+")


def whole_number(value: Any) -> int | None:
    """A setting's value as a whole number: an int, an integral float or a string of ASCII digits ('100', as YAML or
    -e gives it); None for anything else (no value, a boolean, text with a unit or a sign)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    if isinstance(value, str) and _WHOLE_NUMBER_RE.fullmatch(value):
        return int(value)
    return None


def _settings(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return value or {}


def parity_minimums(names: Iterable[str], primary_running: Mapping[str, Any] | None,
                    primary_wanted: Mapping[str, Any] | None, own: Mapping[str, Any] | None) -> dict[str, int]:
    """Each setting of names at its least value on the standby (see the module docstring); a setting none of the
    three gives a whole number for is left out."""
    least: dict[str, int] = {}
    for name in names:
        values = [whole_number(_settings(source).get(name)) for source in (primary_running, primary_wanted, own)]
        known = [value for value in values if value is not None]
        if known:
            least[name] = max(known)
    return least


def parity_raise(own: Mapping[str, Any] | None, minimums: Mapping[str, Any]) -> list[str]:
    """The settings a running standby has below its minimum (its own value known): they must be raised on it,
    and take effect at its restart."""
    raise_names = []
    for name, least in minimums.items():
        value, wanted = whole_number(_settings(own).get(name)), whole_number(least)
        if value is not None and wanted is not None and value < wanted:
            raise_names.append(name)
    return raise_names
