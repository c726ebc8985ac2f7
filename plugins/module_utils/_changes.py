# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Check mode and diff support: record what differs, then act only when not in check mode; a body's result
finished the same way by every module (its duration, its diff, its warnings)."""

from __future__ import annotations

import time
from typing import Any


class ChangeTracker:
    """Collects before/after values of what a module manages.

    A module decides from facts what would change, records it here, and mutates only when
    ``apply`` is true, so check mode reports exactly what a real run would, with no DDL sent.
    """

    def __init__(self, check_mode: bool) -> None:
        self.check_mode = check_mode
        self.before: dict[str, Any] = {}
        self.after: dict[str, Any] = {}
        self.changed = False

    @property
    def apply(self) -> bool:
        """Whether mutations may run (false in check mode)."""
        return not self.check_mode

    def record(self, key: str, before: Any, after: Any) -> bool:
        """Track one value; returns whether it differs."""
        self.before[key] = before
        self.after[key] = after
        if before != after:
            self.changed = True
            return True
        return False

    def diff(self) -> dict[str, Any]:
        """The structure Ansible's diff callback renders."""
        return {"before": self.before, "after": self.after}


def finish(module: Any, result: dict[str, Any], tracker: ChangeTracker, warnings: list[str],
           started: float) -> dict[str, Any]:
    """The result with duration_seconds (since ``started``, a time.monotonic()), the diff in diff mode, and the
    warnings passed to the module."""
    result["duration_seconds"] = round(time.monotonic() - started, 1)
    if getattr(module, "_diff", False):
        result["diff"] = tracker.diff()
    for warning in warnings:
        module.warn(warning)
    return result
