# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""WAL positions: an LSN as PostgreSQL prints it (pg_lsn, pg_controldata, pg_rewind: two groups of 1 to 8
hexadecimal digits around '/'), its 64-bit byte position, and the timeline a WAL segment file name starts with.

The one parser of both for the collection: the modules, the status table and the lsn_int/lsn_diff filters.
"""

from __future__ import annotations

import re
from typing import Any

# An LSN inside a longer text (pg_rewind's output, a history file line); capture it with (...) where needed.
LSN_PATTERN = r"[0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8}"

_LSN_RE = re.compile(r"([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})")
_WAL_FILE_RE = re.compile(r"[0-9A-Fa-f]{24}")


def is_lsn(text: Any) -> bool:
    """Whether the value is exactly an LSN (no surrounding blanks)."""
    return isinstance(text, str) and _LSN_RE.fullmatch(text) is not None


def parse_lsn(text: Any) -> int:
    """'16/B374D848' -> its byte position in the WAL stream (blanks around it are ignored); ValueError otherwise."""
    match = _LSN_RE.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"{text!r} is not a WAL location (like 16/B374D848)")
    return (int(match.group(1), 16) << 32) | int(match.group(2), 16)


def lsn_or_none(text: Any) -> int | None:
    """parse_lsn, or None for a value that is not an LSN (None, '', NULL columns, anything else)."""
    try:
        return parse_lsn(text)
    except ValueError:
        return None


def format_lsn(position: int) -> str:
    """A byte position as pg_lsn prints it: upper case, no leading zeros ('0/3000060')."""
    return f"{position >> 32:X}/{position & 0xFFFFFFFF:X}"


def normalize_lsn(text: str) -> str:
    """An LSN in pg_lsn's own spelling ('00000000/0300006a' -> '0/300006A'); ValueError for what is none."""
    return format_lsn(parse_lsn(text))


def lsn_distance(ahead: Any, behind: Any) -> int | None:
    """Bytes from behind to ahead (negative when 'behind' is in fact ahead); None when either is not an LSN."""
    first, second = lsn_or_none(ahead), lsn_or_none(behind)
    if first is None or second is None:
        return None
    return first - second


def timeline_of_wal_file(name: Any) -> int | None:
    """'000000020000000000000003' -> 2 (the first 8 hex digits of a WAL segment name are its timeline); None for
    anything that is not a segment name, and for timeline 0 (there is none)."""
    if not isinstance(name, str) or _WAL_FILE_RE.fullmatch(name) is None:
        return None
    return int(name[:8], 16) or None
