# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""server_stop's pure logic: options, the outcome, the predicted state, require_clean, the unit checks, pg_ctl."""

from __future__ import annotations

from typing import Any

import pytest
from samples import CGROUP_V1_RHEL, CGROUP_V2_CONTAINER, CGROUP_V2_DEBIAN, CGROUP_V2_NONE, CGROUP_V2_SESSION

from ansible_collections.pgrepl.streaming.plugins.module_utils._errors import PgreplError
from ansible_collections.pgrepl.streaming.plugins.module_utils._stop import (
    OUTCOME_ALREADY_STOPPED,
    OUTCOME_STOPPED,
    OUTCOME_WOULD_STOP,
    SERVER_STOP_SPEC,
    StopRequest,
    load_state_problem,
    pg_ctl_command,
    plan_outcome,
    predicted_state,
    still_running_message,
    stop_request,
    unclean_problem,
    unit_problem,
)
from ansible_collections.pgrepl.streaming.plugins.module_utils._systemd import unit_file_name

DATA_DIR = "/var/lib/postgresql/15/main"


def params(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"data_dir": DATA_DIR, "bin_dir": None, "service": None, "mode": "fast",
                            "os_user": "postgres", "timeout": 300, "require_clean": True}
    base.update(overrides)
    return base


# ---------------------------------------------------------------------------------------------------- options


def test_defaults() -> None:
    assert stop_request(params()) == StopRequest(data_dir=DATA_DIR)
    assert stop_request({"data_dir": DATA_DIR}) == StopRequest(data_dir=DATA_DIR)


def test_the_spec_matches_the_request_defaults() -> None:
    spec = SERVER_STOP_SPEC.argument_spec()
    assert set(spec) == {"data_dir", "bin_dir", "service", "mode", "os_user", "timeout", "require_clean"}
    assert spec["data_dir"]["required"] is True and spec["mode"]["choices"] == ["fast", "smart", "immediate"]
    defaults = StopRequest(data_dir=DATA_DIR)
    assert (spec["mode"]["default"], spec["os_user"]["default"], spec["timeout"]["default"],
            spec["require_clean"]["default"]) == (defaults.mode, defaults.os_user, defaults.timeout,
                                                  defaults.require_clean)


def test_paths_are_normalised_and_the_unit_kept() -> None:
    request = stop_request(params(data_dir=DATA_DIR + "/", bin_dir="/usr/lib/postgresql/15/bin/",
                                  service="postgresql@15-main"))
    assert request.data_dir == DATA_DIR and request.bin_dir == "/usr/lib/postgresql/15/bin"
    assert request.service == "postgresql@15-main"


@pytest.mark.parametrize("mode", ["fast", "smart"])
def test_pg_ctl_takes_fast_and_smart(mode: str) -> None:
    assert stop_request(params(mode=mode)).mode == mode


def test_immediate_needs_require_clean_off() -> None:
    with pytest.raises(PgreplError, match="mode: 'immediate' stops the server without a shutdown checkpoint.*"
                                          "require_clean: false"):
        stop_request(params(mode="immediate"))
    request = stop_request(params(mode="immediate", require_clean=False))
    assert (request.mode, request.require_clean) == ("immediate", False)


@pytest.mark.parametrize("mode", ["smart", "immediate"])
def test_a_unit_allows_only_fast(mode: str) -> None:
    with pytest.raises(PgreplError, match=f"mode: '{mode}' cannot be used with service 'postgresql@15-main'.*"
                                          f"pg_ctl -m {mode}"):
        stop_request(params(service="postgresql@15-main", mode=mode, require_clean=False))


def test_service_empty_means_pg_ctl() -> None:
    assert stop_request(params(service="")).service is None


@pytest.mark.parametrize("bad, match", [
    ({"data_dir": None}, r"data_dir: None is not a path"),
    ({"data_dir": ""}, r"data_dir: '' is not a path"),
    ({"data_dir": "pgdata"}, r"data_dir: 'pgdata' must be an absolute path"),
    ({"data_dir": "/"}, r"data_dir: '/' is the root directory"),
    ({"data_dir": "/var/lib/postgresql"}, r"data_dir: '/var/lib/postgresql' is a system directory"),
    ({"data_dir": DATA_DIR + "\n"}, r"data_dir: .* contains a control character"),
    ({"bin_dir": "usr/lib/postgresql/15/bin"}, r"bin_dir: 'usr/lib/postgresql/15/bin' must be an absolute path"),
    ({"service": "--now"}, r"service: '--now' is not a systemd unit name"),
    ({"service": "postgresql; rm -rf /"}, r"service: 'postgresql; rm -rf /' is not a systemd unit name"),
    ({"service": "/etc/systemd/system/pg.service"}, r"service: '/etc/systemd/system/pg.service' is not a systemd"),
    ({"service": "a b"}, r"service: 'a b' is not a systemd unit name"),
    ({"service": 15}, r"service: 15 is not a systemd unit name"),
    ({"mode": "hard"}, r"mode: 'hard' is not one of fast, smart, immediate"),
    ({"timeout": 0}, r"timeout: 0 is not a number of seconds \(1-604800\)"),
    ({"timeout": -5}, r"timeout: -5 is not a number of seconds"),
    ({"timeout": 604801}, r"timeout: 604801 is not a number of seconds"),
    ({"timeout": "300"}, r"timeout: '300' is not an integer"),
    ({"timeout": True}, r"timeout: True is not an integer"),
    ({"require_clean": "yes"}, r"require_clean: 'yes' is not a boolean"),
    ({"os_user": 5}, r"os_user: 5 is not a user name"),
])
def test_bad_options_are_refused_naming_the_option(bad: dict[str, Any], match: str) -> None:
    with pytest.raises(PgreplError, match=match):
        stop_request(params(**bad))


# ---------------------------------------------------------------------------------------------------- decisions


@pytest.mark.parametrize("running, check_mode, expected", [
    (True, False, (OUTCOME_STOPPED, True)),
    (True, True, (OUTCOME_WOULD_STOP, True)),
    (False, False, (OUTCOME_ALREADY_STOPPED, False)),
    (False, True, (OUTCOME_ALREADY_STOPPED, False)),
])
def test_outcome(running: bool, check_mode: bool, expected: tuple[str, bool]) -> None:
    assert plan_outcome(running, check_mode) == expected


@pytest.mark.parametrize("state, mode, expected", [
    ("in production", "fast", "shut down"),
    ("in production", "smart", "shut down"),
    ("in archive recovery", "fast", "shut down in recovery"),
    ("in archive recovery", "smart", "shut down in recovery"),
    ("in production", "immediate", "in production"),
    ("in archive recovery", "immediate", "in archive recovery"),
])
def test_predicted_state(state: str, mode: str, expected: str) -> None:
    assert predicted_state(state, mode) == expected


@pytest.mark.parametrize("state", ["shut down", "shut down in recovery"])
def test_clean_states_pass(state: str) -> None:
    assert unclean_problem(DATA_DIR, state, stopped_now=True) is None
    assert unclean_problem(DATA_DIR, state, stopped_now=False) is None


@pytest.mark.parametrize("state", ["in production", "in archive recovery", "in crash recovery", "shutting down",
                                   None])
def test_unclean_states_are_named(state: str | None) -> None:
    after_stop = unclean_problem(DATA_DIR, state, stopped_now=True)
    assert after_stop is not None
    assert after_stop.startswith(f"require_clean: data_dir '{DATA_DIR}' was stopped")
    assert f"'Database cluster state: {state}'" in after_stop and "left as it is" in after_stop
    found = unclean_problem(DATA_DIR, state, stopped_now=False)
    assert found is not None and "has no running server" in found


def test_still_running_messages() -> None:
    unit = still_running_message(StopRequest(data_dir=DATA_DIR, service="pg-other"), 4242)
    assert "'pg-other' is stopped but a server still runs" in unit and "postmaster pid 4242" in unit
    assert "does not run this data directory" in unit
    smart = still_running_message(StopRequest(data_dir=DATA_DIR, mode="smart"), 7)
    assert "smart shutdown" in smart and "mode: fast" in smart
    fast = still_running_message(StopRequest(data_dir=DATA_DIR), 7)
    assert "may still be in progress" in fast


# ---------------------------------------------------------------------------------------------------- the unit


@pytest.mark.parametrize("state", ["not-found", "bad-setting", "error"])
def test_unknown_units_are_refused(state: str) -> None:
    problem = load_state_problem("postgresql@15-mian", {"LoadState": state, "ActiveState": "inactive"})
    assert problem is not None
    assert problem.startswith("service: systemd has no usable unit 'postgresql@15-mian'") and state in problem


@pytest.mark.parametrize("state", ["loaded", "masked", ""])
def test_known_units_pass(state: str) -> None:
    assert load_state_problem("postgresql@15-main", {"LoadState": state}) is None


@pytest.mark.parametrize("unit, text", [
    ("postgresql@15-main", CGROUP_V2_DEBIAN),
    ("postgresql@15-main.service", CGROUP_V2_DEBIAN),
    ("postgresql@15-main", CGROUP_V2_CONTAINER),
    ("postgresql-16", CGROUP_V1_RHEL),
    ("anything", CGROUP_V2_NONE),  # no unit on the path: cannot tell, the check after the stop decides
    ("anything", None),  # /proc not readable
])
def test_unit_running_the_postmaster_passes(unit: str, text: str | None) -> None:
    assert unit_problem(unit, DATA_DIR, 4242, text) is None


@pytest.mark.parametrize("unit, text, found", [
    ("postgresql@16-main", CGROUP_V2_DEBIAN, "postgresql@15-main.service"),
    ("postgresql", CGROUP_V2_DEBIAN, "postgresql@15-main.service"),  # Debian's umbrella unit stops every cluster
    ("postgresql@15-main", CGROUP_V2_SESSION, "session-3.scope"),  # started by hand, outside the unit
    ("postgresql-15", CGROUP_V1_RHEL, "postgresql-16.service"),
])
def test_a_unit_that_does_not_run_the_postmaster_is_refused(unit: str, text: str, found: str) -> None:
    problem = unit_problem(unit, DATA_DIR, 4242, text)
    assert problem is not None
    assert problem.startswith(f"service: the server on data_dir '{DATA_DIR}' (postmaster pid 4242) runs in {found}")
    assert f"not in {unit_file_name(unit)}" in problem and "Nothing was stopped" in problem


# ---------------------------------------------------------------------------------------------------- pg_ctl


def test_pg_ctl_command() -> None:
    request = StopRequest(data_dir=DATA_DIR, mode="smart", timeout=42)
    assert pg_ctl_command("/usr/lib/postgresql/15/bin/pg_ctl", request) == [
        "/usr/lib/postgresql/15/bin/pg_ctl", "stop", "-D", DATA_DIR, "-m", "smart", "-w", "-t", "42"]
