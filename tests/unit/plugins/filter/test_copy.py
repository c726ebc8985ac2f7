# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""copy_plan: whether a standby needs a copy of its primary, and whether the copy runs in the background."""

from __future__ import annotations

from typing import Any

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.pgrepl.streaming.plugins.filter.copy import FilterModule, copy_plan
from ansible_collections.pgrepl.streaming.plugins.module_utils._datadir import is_standby_of
from ansible_collections.pgrepl.streaming.plugins.module_utils._errors import PgreplError
from ansible_collections.pgrepl.streaming.plugins.module_utils._progress import runs_in_background

SYSID = 7436219038471234567
GIB = 1073741824


def node(sysid: Any = SYSID, standby_signal: bool = True, recovery_signal: bool = False) -> dict[str, Any]:
    return {"data_dir_facts": {"system_identifier": sysid, "standby_signal": standby_signal,
                               "recovery_signal": recovery_signal}}


def primary(sysid: Any = SYSID, running: bool = True, size: Any = 30 * 1024 * 1024) -> dict[str, Any]:
    return {"server": {"system_identifier": sysid} if running else None,
            "data_dir_facts": {"system_identifier": sysid, "standby_signal": False}, "data_size": size}


@pytest.mark.parametrize("own, sysid, expected", [
    (node(), SYSID, True),
    (node(standby_signal=False, recovery_signal=True), SYSID, True),
    (node(sysid=str(SYSID)), SYSID, True),  # JSON may carry it as text
    (node(standby_signal=False), SYSID, False),  # the same cluster, out of recovery: a second primary, not a copy
    (node(sysid=SYSID + 1), SYSID, False),  # a standby of another primary
    (node(sysid=None), None, False),  # no identifier on either side is never the same cluster
    ({"data_dir_facts": None}, SYSID, False),  # no data directory
    (None, SYSID, False),
    (node(), None, False),
])
def test_is_standby_of(own: Any, sysid: Any, expected: bool) -> None:
    assert is_standby_of((own or {}).get("data_dir_facts"), sysid) is expected


@pytest.mark.parametrize("size, least, expected", [
    (GIB, GIB, True), (GIB - 1, GIB, False), (str(2 * GIB), str(GIB), True), (None, GIB, False), ("", GIB, False),
    (5, 0, True), ("many", GIB, False),
])
def test_runs_in_background(size: Any, least: Any, expected: bool) -> None:
    assert runs_in_background(size, least) is expected


@pytest.mark.parametrize("least", [-1, "1 GiB", None, 1.5, True, "-5"])
def test_a_minimum_size_that_is_no_number_of_bytes_is_refused_naming_the_variable(least: Any) -> None:
    with pytest.raises(PgreplError, match=r"^pgrepl_clone_progress_min_size: .* is not a number of bytes"):
        runs_in_background(GIB, least)


@pytest.mark.parametrize("own, prim, kwargs, expected", [
    # Already a standby of this primary: configured and started, never copied again.
    (node(), primary(), {}, {"needed": False, "background": False}),
    # ... the primary stopped: its identifier from pg_control.
    (node(), primary(running=False), {}, {"needed": False, "background": False}),
    # ... unless a reseed asks for a new copy; a large primary's copy then runs in the background.
    (node(), primary(size=2 * GIB), {"reseed": True}, {"needed": True, "background": True}),
    (node(), primary(), {"reseed": "yes"}, {"needed": True, "background": False}),
    # Empty host, a standby of another primary, a former primary of this cluster: a copy.
    ({"data_dir_facts": None}, primary(), {}, {"needed": True, "background": False}),
    (node(sysid=1), primary(size=GIB), {}, {"needed": True, "background": True}),
    (node(standby_signal=False), primary(), {}, {"needed": True, "background": False}),
    # Check mode copies nothing, so nothing runs in the background; the threshold is the caller's.
    ({"data_dir_facts": None}, primary(size=2 * GIB), {"check_mode": True}, {"needed": True, "background": False}),
    ({"data_dir_facts": None}, primary(size=100), {"background_min_size": 100}, {"needed": True, "background": True}),
    # The primary's size unknown: the copy stays in the one call.
    ({"data_dir_facts": None}, primary(size=None), {}, {"needed": True, "background": False}),
])
def test_copy_plan(own: Any, prim: Any, kwargs: dict[str, Any], expected: dict[str, bool]) -> None:
    assert copy_plan(own, prim, **{"background_min_size": GIB, **kwargs}) == expected


@pytest.mark.parametrize("own, prim, kwargs, match", [
    (None, primary(), {}, "copy_plan: the node's facts must be node_prepare's result"),
    (node(), "db1", {}, "copy_plan: the primary's facts must be node_prepare's result"),
    ({"data_dir_facts": None}, primary(), {"background_min_size": "1G"},
     "copy_plan: pgrepl_clone_progress_min_size: '1G' is not a number of bytes"),
    (node(), primary(), {"reseed": "perhaps"}, "copy_plan: "),
])
def test_bad_input_is_refused_naming_it(own: Any, prim: Any, kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(AnsibleFilterError, match=match):
        copy_plan(own, prim, **{"background_min_size": GIB, **kwargs})


def test_the_filter_is_registered() -> None:
    assert FilterModule().filters()["copy_plan"] is copy_plan
