# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Hot standby parity (module_utils/_parity.py, filters parity_minimums and parity_raise): raised to the primary's
running or wanted value, never lowered below the standby's own, digit strings read as numbers."""

from __future__ import annotations

from typing import Any

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.pgrepl.streaming.plugins.filter.parity import FilterModule, parity_minimums, parity_raise
from ansible_collections.pgrepl.streaming.plugins.module_utils._parity import PARITY_SETTINGS, whole_number


def test_the_filters_are_exported() -> None:
    assert set(FilterModule().filters()) == {"parity_minimums", "parity_raise"}


def test_the_five_settings_hot_standby_checks() -> None:
    assert PARITY_SETTINGS == ("max_connections", "max_worker_processes", "max_wal_senders",
                               "max_prepared_transactions", "max_locks_per_transaction")


@pytest.mark.parametrize("value, number", [
    (100, 100), (0, 0), ("100", 100), ("0", 0), (100.0, 100),
    (None, None), (True, None), (False, None), ("", None), ("100kB", None), ("-1", None), (" 100", None),
    ("1e3", None), ("١٠٠", None), (100.5, None), ([100], None),
])
def test_whole_number(value: Any, number: int | None) -> None:
    assert whole_number(value) == number


def test_the_primary_running_value_raises_the_standby() -> None:
    assert parity_minimums({"max_connections": 200}, {}, {"max_connections": 100}) == {"max_connections": 200}


def test_the_value_this_run_gives_the_primary_raises_the_standby() -> None:
    # The primary still runs with 100 (its restart comes after the standbys), the run gives it 300.
    assert parity_minimums({"max_connections": 100}, {"max_connections": 300}, {"max_connections": 100}) == {
        "max_connections": 300}


def test_the_higher_of_running_and_wanted_counts() -> None:
    # Lowering it on the primary in this run does not lower the standby while the primary still runs with more.
    assert parity_minimums({"max_connections": 300}, {"max_connections": 100}, {}) == {"max_connections": 300}


def test_never_lowered_below_what_the_standby_runs_with() -> None:
    assert parity_minimums({"max_connections": 100}, {"max_connections": 100}, {"max_connections": 500}) == {
        "max_connections": 500}


@pytest.mark.parametrize("wanted, least", [("250", 250), ("50", 100), ("abc", 100), ("250MB", 100), (None, 100)])
def test_strings_of_digits_count_others_do_not(wanted: Any, least: int) -> None:
    assert parity_minimums({"max_wal_senders": 100}, {"max_wal_senders": wanted}, None) == {"max_wal_senders": least}


def test_every_parity_setting_and_only_those() -> None:
    running = {name: 10 for name in PARITY_SETTINGS}
    running["shared_buffers"] = 16384
    assert parity_minimums(running, {"work_mem": "64MB"}, {}) == {name: 10 for name in PARITY_SETTINGS}


def test_a_setting_nobody_gives_a_value_for_is_left_out() -> None:
    assert parity_minimums(None, None, None) == {}
    assert parity_minimums({}, {"max_connections": "many"}, {}) == {}
    assert parity_minimums(None, {"max_locks_per_transaction": 128}, None) == {"max_locks_per_transaction": 128}


def test_other_names() -> None:
    assert parity_minimums({"a": 1, "b": 5}, {"a": "3"}, {"b": 7}, names=["a", "b", "c"]) == {"a": 3, "b": 7}
    with pytest.raises(AnsibleFilterError, match="parity_minimums: names must be a list"):
        parity_minimums({}, names="max_connections")


@pytest.mark.parametrize("argument", ["running", "wanted", "own"])
def test_settings_that_are_no_dict_are_refused(argument: str) -> None:
    values: dict[str, Any] = {"running": {}, "wanted": {}, "own": {}}
    values[argument] = ["max_connections"]
    with pytest.raises(AnsibleFilterError, match="parity_minimums: .* must be a dict of setting names and values"):
        parity_minimums(values["running"], values["wanted"], values["own"])


def test_raise_the_settings_below_their_minimum() -> None:
    minimums = {"max_connections": 200, "max_wal_senders": 10, "max_worker_processes": 8}
    own = {"max_connections": 100, "max_wal_senders": 10, "max_worker_processes": 16}
    assert parity_raise(own, minimums) == ["max_connections"]


def test_raise_nothing_when_the_own_value_is_unknown() -> None:
    # A standby that is not running (or is to be cloned) gets them with its configuration, without a restart.
    assert parity_raise(None, {"max_connections": 200}) == []
    assert parity_raise({"max_connections": None}, {"max_connections": 200}) == []


def test_raise_keeps_the_order_of_the_minimums() -> None:
    minimums = {"max_wal_senders": 20, "max_connections": 200}
    own = {"max_connections": 1, "max_wal_senders": 1}
    assert parity_raise(own, minimums) == ["max_wal_senders", "max_connections"]


def test_raise_refuses_what_is_no_dict() -> None:
    with pytest.raises(AnsibleFilterError, match="parity_raise: the minimums must be a dict"):
        parity_raise({}, ["max_connections"])
