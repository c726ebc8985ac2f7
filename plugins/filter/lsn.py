# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters pgrepl.streaming.lsn_int and pgrepl.streaming.lsn_diff: WAL locations (pg_lsn text) as byte positions.

Their documentation is in the sidecar files lsn_int.yml and lsn_diff.yml beside this file.
"""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleFilterError

from ansible_collections.pgrepl.streaming.plugins.module_utils._lsn import parse_lsn


def lsn_int(value: Any) -> int | None:
    """'16/B374D848' -> 97500059720 (the 64-bit byte position); None and '' -> None."""
    if value is None or value == "":
        return None
    try:
        return parse_lsn(value)
    except ValueError:
        raise AnsibleFilterError(f"lsn_int: {value!r} is not a WAL location (two groups of 1 to 8 hexadecimal digits "
                                 "separated by '/', like 16/B374D848)") from None


def lsn_diff(value: Any, other: Any) -> int | None:
    """Bytes from other to value (value - other, negative when value is behind); None when either is None or ''."""
    try:
        minuend, subtrahend = lsn_int(value), lsn_int(other)
    except AnsibleFilterError as exc:
        raise AnsibleFilterError(str(exc).replace("lsn_int: ", "lsn_diff: ", 1)) from None
    if minuend is None or subtrahend is None:
        return None
    return minuend - subtrahend


class FilterModule:
    """The collection's LSN filters."""

    def filters(self) -> dict[str, Any]:
        return {"lsn_int": lsn_int, "lsn_diff": lsn_diff}
