# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""module_utils/_lsn.py: the one parser of WAL locations and WAL segment names."""

from __future__ import annotations

import re
from typing import Any

import pytest

from ansible_collections.pgrepl.streaming.plugins.module_utils._lsn import (
    LSN_PATTERN,
    format_lsn,
    is_lsn,
    lsn_distance,
    lsn_or_none,
    normalize_lsn,
    parse_lsn,
    timeline_of_wal_file,
)


@pytest.mark.parametrize(("text", "value"), [
    ("0/0", 0),
    ("0/3000148", 0x3000148),
    ("16/B374D848", (0x16 << 32) | 0xB374D848),
    ("16/b374d848", (0x16 << 32) | 0xB374D848),
    ("1/0", 1 << 32),
    ("FFFFFFFF/FFFFFFFF", 2**64 - 1),
    (" 1/0 ", 1 << 32),
])
def test_parse_lsn(text: str, value: int) -> None:
    assert parse_lsn(text) == value
    assert lsn_or_none(text) == value


@pytest.mark.parametrize("text", ["", "0", "0/", "/0", "0/0/0", "G/0", "1/123456789", "0x1/0", "+1/0", "1_0/0", "1/ 0",
                                  "nonsense", None, 5])
def test_parse_lsn_refuses_garbage(text: Any) -> None:
    with pytest.raises(ValueError, match="is not a WAL location"):
        parse_lsn(text)
    assert lsn_or_none(text) is None


@pytest.mark.parametrize(("text", "expected"), [
    ("0/3000060", True), ("16/b374d848", True), ("FFFFFFFF/FFFFFFFF", True),
    # Exactly an LSN: an option or a pg_controldata value with blanks around it is not one.
    ("0/3000060 ", False), (" 0/3000060", False), ("0/3000060\n", False), ("", False), ("0x0/1", False),
    ("-1/0", False), (None, False), (3, False),
])
def test_is_lsn(text: Any, expected: bool) -> None:
    assert is_lsn(text) is expected


@pytest.mark.parametrize(("text", "normal"), [
    ("0/3000060", "0/3000060"), ("0/300006a", "0/300006A"), ("00000000/03000060", "0/3000060"),
    ("16/b374d848", "16/B374D848"), ("FFFFFFFF/FFFFFFFF", "FFFFFFFF/FFFFFFFF"), ("0/0", "0/0"),
])
def test_normalize_lsn_is_how_pg_lsn_prints_it(text: str, normal: str) -> None:
    assert normalize_lsn(text) == normal
    assert format_lsn(parse_lsn(text)) == normal


def test_lsn_pattern_finds_an_lsn_in_a_line() -> None:
    found = re.search(rf"diverged at WAL location ({LSN_PATTERN}) on", "servers diverged at WAL location 0/3000060 on")
    assert found is not None and found.group(1) == "0/3000060"


def test_lsn_distance() -> None:
    assert lsn_distance("0/5000060", "0/5000000") == 0x60
    assert lsn_distance("1/0", "0/FFFFFFFF") == 1
    assert lsn_distance("0/0", "0/10") == -16
    assert lsn_distance(None, "0/10") is None
    assert lsn_distance("garbage", "0/10") is None


@pytest.mark.parametrize("name, timeline", [
    ("000000020000000000000003", 2),
    ("00000002000000000000000A", 2),
    ("0000001F0000000100000003", 31),
    ("000000010000000000000001", 1),
    ("0000000A00000001000000FF", 10),
    ("0000000a00000001000000ff", 10),
    ("FFFFFFFF0000000000000001", 0xFFFFFFFF),
])
def test_timeline_of_wal_file(name: str, timeline: int) -> None:
    assert timeline_of_wal_file(name) == timeline


@pytest.mark.parametrize("name", [None, "", "short", "00000002.history", "0000000200000000000000",
                                  "00000002000000000000000G", "000000000000000000000001", 3])
def test_timeline_of_wal_file_rejects_what_is_not_a_segment_name(name: Any) -> None:
    assert timeline_of_wal_file(name) is None
