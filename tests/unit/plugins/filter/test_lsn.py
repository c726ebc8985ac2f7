# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The filters pgrepl.streaming.lsn_int and pgrepl.streaming.lsn_diff."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible.errors import AnsibleFilterError

from ansible_collections.pgrepl.streaming.plugins.filter.lsn import FilterModule, lsn_diff, lsn_int

FILTER_DIR = Path(__file__).resolve().parents[4] / "plugins" / "filter"


@pytest.mark.parametrize("value, expected", [
    ("16/B374D848", 0x16 * 2**32 + 0xB374D848),
    ("16/B374D848", 97500059720),
    ("16/b374d848", 97500059720),
    ("0/0", 0),
    ("0/3000060", 0x3000060),
    ("1/0", 2**32),
    ("00000001/00000000", 2**32),
    ("FFFFFFFF/FFFFFFFF", 2**64 - 1),
    (" 0/3000060\n", 0x3000060),  # as a line of command output may carry it
])
def test_lsn_int(value: str, expected: int) -> None:
    assert lsn_int(value) == expected


@pytest.mark.parametrize("value", [None, ""])
def test_lsn_int_of_nothing_is_none(value: Any) -> None:
    assert lsn_int(value) is None


@pytest.mark.parametrize("value", ["nope", "0", "0/", "/0", "G/1", "0x1/0", "-1/0", "123456789/0", "0/123456789",
                                   "0/1/2", "0/1; DROP TABLE x", 3000060, 1.5, True, ["0/1"], {"lsn": "0/1"}])
def test_lsn_int_refuses_what_is_not_an_lsn_naming_it(value: Any) -> None:
    with pytest.raises(AnsibleFilterError) as err:
        lsn_int(value)
    assert str(err.value).startswith(f"lsn_int: {value!r} is not a WAL location")


def test_lsn_diff() -> None:
    assert lsn_diff("0/3000148", "0/3000060") == 0xE8 == 232
    assert lsn_diff("0/3000060", "0/3000148") == -232
    assert lsn_diff("1/0", "0/FFFFFFFF") == 1
    assert lsn_diff("16/B374D848", "16/B374D848") == 0
    assert lsn_diff("FFFFFFFF/FFFFFFFF", "0/0") == 2**64 - 1


@pytest.mark.parametrize("value, other", [(None, "0/1"), ("0/1", None), (None, None), ("", "0/1"), ("0/1", "")])
def test_lsn_diff_is_none_when_either_is_missing(value: Any, other: Any) -> None:
    assert lsn_diff(value, other) is None


@pytest.mark.parametrize("value, other, bad", [("x/1", "0/1", "x/1"), ("0/1", "0/1 0", "0/1 0"), (None, 7, 7)])
def test_lsn_diff_refuses_what_is_not_an_lsn_naming_it(value: Any, other: Any, bad: Any) -> None:
    with pytest.raises(AnsibleFilterError) as err:
        lsn_diff(value, other)
    assert str(err.value).startswith(f"lsn_diff: {bad!r} is not a WAL location")


def test_filter_module_exposes_both() -> None:
    assert FilterModule().filters() == {"lsn_int": lsn_int, "lsn_diff": lsn_diff}


@pytest.mark.parametrize("name, positional", [("lsn_int", "_input"), ("lsn_diff", "_input, other")])
def test_sidecar_documentation(name: str, positional: str) -> None:
    docs = yaml.safe_load((FILTER_DIR / f"{name}.yml").read_text(encoding="utf-8"))
    assert set(docs) == {"DOCUMENTATION", "EXAMPLES", "RETURN"}
    assert docs["DOCUMENTATION"]["name"] == name
    assert docs["DOCUMENTATION"]["positional"] == positional
    assert docs["DOCUMENTATION"]["version_added"] == "0.1.0"
    assert f"pgrepl.streaming.{name}" in docs["EXAMPLES"]
    yaml.safe_load(docs["EXAMPLES"])
    assert docs["RETURN"]["_value"]["type"] == "int"
