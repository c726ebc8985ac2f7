# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""synchronous_standby_names: the value the primary gets for the standbys marked pgrepl_sync."""

from __future__ import annotations

from typing import Any

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.pgrepl.streaming.plugins.filter.sync import FilterModule, synchronous_standby_names
from ansible_collections.pgrepl.streaming.plugins.module_utils._names import application_name_of


def test_names_are_double_quoted_after_method_and_count() -> None:
    assert synchronous_standby_names(["db2", "db-3.example"]) == 'ANY 1 ("db2", "db-3.example")'
    assert synchronous_standby_names(["db2", "db3"], "first", "2") == 'FIRST 2 ("db2", "db3")'


def test_the_count_is_never_more_than_the_standbys_named() -> None:
    # As after a failover promoted one of two synchronous standbys with pgrepl_sync_count 2: 'FIRST 2 ("db3")'
    # would make every commit on the new primary wait for ever.
    assert synchronous_standby_names(["db3"], "first", 2) == 'FIRST 1 ("db3")'
    assert synchronous_standby_names(["db3"], "any", "3") == 'ANY 1 ("db3")'


def test_no_standby_is_an_empty_value() -> None:
    assert synchronous_standby_names([]) == ""
    assert synchronous_standby_names({"db2": False, "db3": "no"}) == ""


def test_a_dict_names_the_standbys_marked_true_in_order() -> None:
    marks = {"db2": "yes", "db3": False, "db4": True, "db5": "false", "db6": 1}
    assert synchronous_standby_names(marks) == 'ANY 1 ("db2", "db4", "db6")'


def test_a_long_name_is_cut_as_the_server_keeps_application_name_and_quotes_are_doubled() -> None:
    long = "n" * 70
    assert application_name_of(long) == "n" * 63
    assert synchronous_standby_names([long, 'odd"name']) == f'ANY 1 ("{"n" * 63}", "odd""name")'


@pytest.mark.parametrize(("args", "said"), [
    (("db2",), "a list of inventory names is expected, got str"),
    ((["db2"], "SOME"), "pgrepl_sync_method: 'SOME' is not one of ANY, FIRST"),
    ((["db2"], "ANY", 0), "pgrepl_sync_count: 0 is not a whole number >= 1"),
    ((["db2"], "ANY", True), "pgrepl_sync_count: True is not a whole number >= 1"),
    (({"db2": "maybe"},), "pgrepl_sync: "),
])
def test_bad_input_is_a_clear_error(args: tuple[Any, ...], said: str) -> None:
    with pytest.raises(AnsibleFilterError, match=f"synchronous_standby_names: {said}"):
        synchronous_standby_names(*args)


def test_the_filter_is_registered() -> None:
    assert FilterModule().filters() == {"synchronous_standby_names": synchronous_standby_names}
