# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""module_utils/_systemd.py: unit names, systemctl show output, the unit whose cgroup holds a process."""

from __future__ import annotations

import pytest
from samples import CGROUP_V1_RHEL, CGROUP_V2_CONTAINER, CGROUP_V2_NONE, CGROUP_V2_SESSION

from ansible_collections.pgrepl.streaming.plugins.module_utils._errors import PgreplError
from ansible_collections.pgrepl.streaming.plugins.module_utils._systemd import (
    cgroup_units,
    parse_systemctl_show,
    service_of,
    unit_file_name,
    validate_unit_name,
)


@pytest.mark.parametrize("unit", ["postgresql@15-main", "postgresql-16.service", "postgrespro-1c-16",
                                  "pgcustom\\x2d15.service"])
def test_unit_name_accepts_unit_names(unit: str) -> None:
    assert validate_unit_name(unit, "stop_service") == unit


@pytest.mark.parametrize("unit", ["--now", "postgresql; rm -rf /", "a b", "/etc/x.service", "x\n"])
def test_unit_name_refuses_what_is_not_a_unit_name(unit: str) -> None:
    with pytest.raises(PgreplError, match="stop_service: .* is not a systemd unit name"):
        validate_unit_name(unit, "stop_service")


def test_unit_name_empty_means_none() -> None:
    assert validate_unit_name("") is None and validate_unit_name(None) is None


@pytest.mark.parametrize("unit, expected", [
    ("postgresql@15-main", "postgresql@15-main.service"),
    ("postgresql@15-main.service", "postgresql@15-main.service"),
    ("postgresql-16", "postgresql-16.service"),
    ("pg.16", "pg.16.service"),
    ("postgresql.target", "postgresql.target"),
])
def test_unit_file_name(unit: str, expected: str) -> None:
    assert unit_file_name(unit) == expected


def test_parse_systemctl_show() -> None:
    assert parse_systemctl_show("LoadState=loaded\nActiveState=active\n\nnoise\n") == \
        {"LoadState": "loaded", "ActiveState": "active"}


def test_cgroup_units() -> None:
    assert cgroup_units(CGROUP_V2_CONTAINER) == ["docker-4f1c2e.scope", "postgresql@15-main.service"]
    assert cgroup_units(CGROUP_V1_RHEL) == ["postgresql-16.service"]
    assert cgroup_units(CGROUP_V2_NONE) == [] and cgroup_units("") == []


def test_service_of_a_process() -> None:
    assert service_of(CGROUP_V2_CONTAINER) == "postgresql@15-main.service"
    assert service_of(CGROUP_V1_RHEL) == "postgresql-16.service"
    assert service_of(CGROUP_V2_SESSION) is None and service_of(CGROUP_V2_NONE) is None
    assert service_of(None) is None
