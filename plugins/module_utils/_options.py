# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Type checks of module options that the module bodies also receive from callers other than AnsibleModule
(node_plan/node_apply, unit tests), with messages that name the option and the value."""

from __future__ import annotations

from typing import Any

from ansible_collections.pgrepl.streaming.plugins.module_utils._errors import PgreplError


def require_bool(params: dict[str, Any], option: str, default: bool = False) -> bool:
    value = params.get(option)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise PgreplError(f"{option}: {value!r} is not a boolean (true or false)")
    return value


def require_int(params: dict[str, Any], option: str, default: int, low: int, high: int, what: str) -> int:
    value = params.get(option)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise PgreplError(f"{option}: {value!r} is not an integer")
    if not low <= value <= high:
        raise PgreplError(f"{option}: {value} is not {what} ({low}-{high})")
    return value
