# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Slot name validation and the slot name derived from an inventory host name."""

from __future__ import annotations

import re
from typing import Any

import pytest

from ansible_collections.pgrepl.streaming.plugins.module_utils._errors import PgreplError
from ansible_collections.pgrepl.streaming.plugins.module_utils._names import (
    SLOT_NAME_MAX_LENGTH,
    is_valid_slot_name,
    slot_name_from_host,
    validate_slot_name,
)

VALID_RE = re.compile(r"\A[a-z0-9_]{1,63}\Z")


@pytest.mark.parametrize("name", ["a", "db2", "standby_1", "_", "0", "a" * 63, "pg_15_replica_eu_west_1"])
def test_valid_names(name: str) -> None:
    assert is_valid_slot_name(name)
    assert validate_slot_name(name) == name


@pytest.mark.parametrize("name", [
    "", "A", "Standby1", "a" * 64, "a-b", "a.b", "a b", "a'; DROP TABLE x;--", 'a"b', "slot\n", "\nslot",
    "sl\x00ot", "été", "slot$", "a\tb",
])
def test_invalid_names(name: str) -> None:
    assert not is_valid_slot_name(name)
    with pytest.raises(PgreplError) as err:
        validate_slot_name(name)
    message = str(err.value)
    assert message.startswith(f"name: {name!r} is not a valid slot name")
    assert "^[a-z0-9_]{1,63}$" in message


@pytest.mark.parametrize("value", [None, 12, ["a"], b"slot"])
def test_non_strings_are_invalid(value: Any) -> None:
    assert not is_valid_slot_name(value)
    with pytest.raises(PgreplError, match=r"^slot: "):
        validate_slot_name(value, option="slot")


def test_message_names_the_option_given() -> None:
    with pytest.raises(PgreplError, match=r"^primary_slot_name: 'Bad' is not a valid slot name"):
        validate_slot_name("Bad", option="primary_slot_name")


def test_too_long_and_empty_say_why() -> None:
    with pytest.raises(PgreplError, match="it has 64 characters and at most 63 are allowed"):
        validate_slot_name("a" * 64)
    with pytest.raises(PgreplError, match="it is empty"):
        validate_slot_name("")


@pytest.mark.parametrize(("host", "slot"), [
    ("db2", "db2"),
    ("DB2", "db2"),
    ("db2.example.com", "db2_example_com"),
    ("pg-replica-01", "pg_replica_01"),
    ("10.0.0.12", "10_0_0_12"),
    ("host name", "host_name"),
    ("Stand.By-1_x", "stand_by_1_x"),
    ("ünïcode", "_n_code"),
])
def test_slot_name_from_short_host(host: str, slot: str) -> None:
    assert slot_name_from_host(host) == slot
    assert is_valid_slot_name(slot_name_from_host(host))


def test_63_characters_are_kept_as_they_are() -> None:
    host = "h" * 63
    assert slot_name_from_host(host) == host


def test_long_host_is_cut_with_a_stable_hash_suffix() -> None:
    host = "replica-" + "x" * 70 + ".datacenter.example.com"
    slot = slot_name_from_host(host)
    assert len(slot) == SLOT_NAME_MAX_LENGTH
    assert VALID_RE.match(slot)
    assert slot.startswith("replica_xxxx")
    assert re.search(r"_[0-9a-f]{8}\Z", slot)
    # Stable: the same input gives the same name on every run (sha256, not Python's salted hash()).
    assert slot_name_from_host(host) == slot
    assert slot == "replica_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx_" + slot[-8:]


def test_64_characters_get_the_suffix() -> None:
    slot = slot_name_from_host("h" * 64)
    assert len(slot) == 63 and slot != "h" * 63 and slot.startswith("h" * 54 + "_")


def test_long_hosts_that_differ_only_at_the_end_get_different_slots() -> None:
    first = slot_name_from_host("a" * 80 + "1")
    second = slot_name_from_host("a" * 80 + "2")
    assert first != second
    assert first[:54] == second[:54]


def test_long_hosts_that_differ_only_in_punctuation_get_different_slots() -> None:
    assert slot_name_from_host("a" * 70 + ".b") != slot_name_from_host("a" * 70 + "-b")


@pytest.mark.parametrize("host", ["", None])
def test_empty_host_is_refused(host: Any) -> None:
    with pytest.raises(PgreplError, match="inventory name"):
        slot_name_from_host(host)
