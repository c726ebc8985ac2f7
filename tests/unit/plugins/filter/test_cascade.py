# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The cascade_plan and cascade_problems filters: input checks and the errors Ansible shows."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.pgrepl.streaming.plugins.filter.cascade import (
    FilterModule,
    cascade_plan,
    cascade_problems,
)


def test_both_filters_are_registered() -> None:
    assert set(FilterModule().filters()) == {"cascade_plan", "cascade_problems"}


def test_plan_of_a_cascade() -> None:
    plan = cascade_plan(["db1", "db2", "db3"], "db1", {"db3": "db2"})
    assert plan["db3"] == {"upstream": "db2", "level": 2, "cascades": []}
    assert plan["db2"]["cascades"] == ["db3"]


def test_plan_loop_is_a_filter_error_naming_the_option() -> None:
    with pytest.raises(AnsibleFilterError, match="cascade_plan: pgrepl_upstream: .*loop"):
        cascade_plan(["db1", "db2", "db3"], "db2", {"db1": "db3", "db3": "db1"})


def test_bad_input_is_a_filter_error() -> None:
    with pytest.raises(AnsibleFilterError, match="nodes: a list of inventory names is expected"):
        cascade_plan("db1", "db1", {})
    with pytest.raises(AnsibleFilterError, match="upstreams: a dict"):
        cascade_problems(["db1"], "db1", ["db2"])


def test_sync_marks_are_read_as_ansible_booleans() -> None:
    problems = cascade_problems(["db1", "db2", "db3"], "db1", {"db3": "db2"}, {"db3": "yes", "db2": "no"})
    assert len(problems) == 1 and problems[0].startswith("db3: pgrepl_sync: true")
    assert cascade_problems(["db1", "db2", "db3"], "db1", {"db3": "db2"}, {"db3": "false"}) == []
