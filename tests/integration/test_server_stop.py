"""pgrepl.streaming.server_stop through Ansible, as root, on servers of this file's own (the pg_ctl path).

A primary with a streaming standby, and a lone server for the refusals and the other shutdown modes, all in one
temporary directory, stopped and removed at the end; the shared bench servers are not used. There is no systemd
here: the unit path is covered by the unit tests and, for its refusals, by a unit name that systemctl cannot show.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest

from ansible_runner import run_module, run_tasks
from cluster import Clusters, PgCluster, find_bin_dir

MODULE = "pgrepl.streaming.server_stop"


# ---------------------------------------------------------------------------------------------------- helpers


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise TimeoutError(f"timed out waiting for {what}")


def controldata(data_dir: Path) -> dict[str, str]:
    out = subprocess.run([str(find_bin_dir() / "pg_controldata"), "-D", str(data_dir)], capture_output=True,
                         text=True, env=dict(os.environ, LC_ALL="C"), check=True).stdout
    return {key.strip(): value.strip() for key, _sep, value in (line.partition(":") for line in out.splitlines())}


def pg_ctl_status(cluster: PgCluster) -> int:
    """pg_ctl status as the server's owner: 0 a server runs, 3 none does."""
    cmd = [str(cluster.bin_dir / "pg_ctl"), "status", "-D", str(cluster.data_dir)]
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, check=False).returncode


def postmaster_pid(cluster: PgCluster) -> int | None:
    path = cluster.data_dir / "postmaster.pid"
    return int(path.read_text(encoding="utf-8").splitlines()[0]) if path.exists() else None


def assert_running(cluster: PgCluster, pid: int | None = None) -> None:
    assert pg_ctl_status(cluster) == 0, f"{cluster.name} is not running"
    assert cluster.scalar("SELECT 1") == 1
    if pid is not None:
        assert postmaster_pid(cluster) == pid, f"{cluster.name} was restarted"


def assert_stopped(cluster: PgCluster) -> None:
    assert pg_ctl_status(cluster) == 3, f"{cluster.name} still runs"
    assert not (cluster.data_dir / "postmaster.pid").exists()


def ok(result: dict[str, Any]) -> dict[str, Any]:
    assert result.get("failed") is not True, result
    return result


def control_facts(data_dir: Path) -> dict[str, Any]:
    """What the module must return, as pg_controldata prints it."""
    control = controldata(data_dir)
    return {"cluster_state": control["Database cluster state"],
            "checkpoint_lsn": control["Latest checkpoint location"],
            "redo_lsn": control["Latest checkpoint's REDO location"],
            "timeline": int(control["Latest checkpoint's TimeLineID"]),
            "system_identifier": control["Database system identifier"]}


def returned_facts(result: dict[str, Any]) -> dict[str, Any]:
    return {key: result[key] for key in ("cluster_state", "checkpoint_lsn", "redo_lsn", "timeline",
                                         "system_identifier")}


@dataclass
class Env:
    base: Path
    primary: PgCluster
    standby: PgCluster
    solo: PgCluster


@pytest.fixture(scope="module")
def env(throwaway: Clusters) -> Env:
    primary, standby = throwaway.pair("stop")
    solo = throwaway.server("stop_solo")
    return Env(base=throwaway.base, primary=primary, standby=standby, solo=solo)


# ---------------------------------------------------------------------------------------------------- refusals


def test_bad_inputs_change_nothing(env: Env) -> None:
    solo = env.solo
    pid = postmaster_pid(solo)
    before = controldata(solo.data_dir)
    not_data = env.base / "not-a-data-dir"
    not_data.mkdir()
    (not_data / "postgresql.conf").write_text("port = 5432\n", encoding="utf-8")
    data_dir = str(solo.data_dir)
    cases: list[tuple[dict[str, Any], str]] = [
        ({}, "missing required arguments: data_dir"),
        ({"data_dir": str(not_data)}, f"data_dir: '{not_data}' is not a PostgreSQL data directory"),
        ({"data_dir": str(env.base / "missing")}, "does not exist"),
        ({"data_dir": "relative/pgdata"}, "data_dir: 'relative/pgdata' must be an absolute path"),
        ({"data_dir": "/etc"}, "data_dir: '/etc' is a system directory"),
        ({"data_dir": data_dir, "service": "--now"}, "service: '--now' is not a systemd unit name"),
        ({"data_dir": data_dir, "service": "postgresql; rm -rf /"}, "service: 'postgresql; rm -rf /' is not a systemd"),
        ({"data_dir": data_dir, "service": "/etc/systemd/system/pg.service"}, "is not a systemd unit name"),
        # A well-formed unit on a host where systemd does not run: systemctl cannot show it, nothing is stopped.
        ({"data_dir": data_dir, "service": "postgresql@15-main"}, "service: "),
        ({"data_dir": data_dir, "mode": "hard"}, "value of mode must be one of: fast, smart, immediate, got: hard"),
        ({"data_dir": data_dir, "service": "postgresql@15-main", "mode": "smart"},
         "mode: 'smart' cannot be used with service 'postgresql@15-main'"),
        ({"data_dir": data_dir, "service": "postgresql@15-main", "mode": "immediate", "require_clean": False},
         "mode: 'immediate' cannot be used with service"),
        ({"data_dir": data_dir, "mode": "immediate"}, "mode: 'immediate' stops the server without a shutdown"),
        ({"data_dir": data_dir, "timeout": -1}, "timeout: -1 is not a number of seconds (1-604800)"),
        ({"data_dir": data_dir, "timeout": 0}, "timeout: 0 is not a number of seconds"),
        ({"data_dir": data_dir, "os_user": "pgrepl_no_such_user"}, "os_user: 'pgrepl_no_such_user' is not a user"),
        ({"data_dir": data_dir, "os_user": "root"}, "os_user: 'root' has uid 0"),
        ({"data_dir": data_dir, "os_user": "nobody"}, f"os_user: data_dir '{data_dir}' belongs to uid"),
        ({"data_dir": data_dir, "bin_dir": str(env.base / "no-bin")}, "is not a directory"),
        ({"data_dir": data_dir, "bin_dir": str(not_data)}, "has no executable pg_controldata"),
        ({"data_dir": data_dir, "require_clean": "maybe"}, "require_clean"),
    ]
    run = run_tasks([{"name": f"case {index}", MODULE: args} for index, (args, _match) in enumerate(cases)])
    assert len(run.results) == len(cases), run.stdout
    for (args, match), result in zip(cases, run.results):
        assert result.get("failed") is True, (args, result)
        assert match in result["msg"], (args, result["msg"])
        assert result.get("changed") is not True, (args, result)
    for args, result in zip([case[0] for case in cases], run.results):
        if args.get("service") == "postgresql@15-main" and "mode" not in args:
            assert "nothing was stopped" in result["msg"].lower(), result["msg"]
    # Nothing changed: the same postmaster serves, pg_control says what it said, the other directory is as it was.
    assert_running(solo, pid)
    assert controldata(solo.data_dir) == before
    assert sorted(os.listdir(not_data)) == ["postgresql.conf"]


# ---------------------------------------------------------------------------------------------------- the stop


def test_check_mode_then_stop_then_rerun(env: Env) -> None:
    primary, standby = env.primary, env.standby
    primary.sql("CREATE TABLE stop_probe AS SELECT g AS id FROM generate_series(1, 1000) g")
    pid = postmaster_pid(primary)
    args = {"data_dir": str(primary.data_dir)}

    predicted = ok(run_module(MODULE, args, check=True, diff=True))
    assert predicted["changed"] is True and predicted["outcome"] == "would_stop"
    assert predicted["was_running"] is True and predicted["stopped"] is False
    assert predicted["cluster_state"] == "in production"
    assert predicted["diff"] == {"before": {"running": True, "cluster_state": "in production"},
                                 "after": {"running": False, "cluster_state": "shut down"}}
    assert predicted["command"].split()[1:] == ["stop", "-D", str(primary.data_dir), "-m", "fast", "-w", "-t", "300"]
    assert returned_facts(predicted) == control_facts(primary.data_dir)
    assert_running(primary, pid)

    stopped = ok(run_module(MODULE, args, diff=True))
    assert stopped["changed"] is True and stopped["outcome"] == "stopped"
    assert stopped["was_running"] is True and stopped["stopped"] is True
    assert_stopped(primary)
    facts = control_facts(primary.data_dir)
    assert facts["cluster_state"] == "shut down"
    assert returned_facts(stopped) == facts
    assert stopped["checkpoint_lsn"] != predicted["checkpoint_lsn"]  # the shutdown checkpoint, not the older one
    assert stopped["redo_lsn"] == stopped["checkpoint_lsn"]  # a shutdown checkpoint's redo starts at itself
    assert stopped["diff"] == predicted["diff"]
    assert "server stopped" in stopped["log"]
    # What a switchover relies on: the fast shutdown waited until the standby had received the shutdown checkpoint.
    assert standby.scalar("SELECT pg_last_wal_receive_lsn() > %s::pg_lsn", (stopped["checkpoint_lsn"],)) is True

    for check in (True, False):
        again = ok(run_module(MODULE, args, check=check, diff=True))
        assert again["changed"] is False and again["outcome"] == "already_stopped", again
        assert again["was_running"] is False and again["stopped"] is True
        assert returned_facts(again) == facts
        assert again["diff"] == {"before": {"running": False, "cluster_state": "shut down"},
                                 "after": {"running": False, "cluster_state": "shut down"}}
    assert control_facts(primary.data_dir) == facts
    assert_stopped(primary)


def test_a_standby_stops_shut_down_in_recovery(env: Env) -> None:
    standby = env.standby
    assert standby.scalar("SELECT pg_is_in_recovery()") is True
    args = {"data_dir": str(standby.data_dir), "bin_dir": str(standby.bin_dir)}
    predicted = ok(run_module(MODULE, args, check=True, diff=True))
    assert predicted["diff"]["after"] == {"running": False, "cluster_state": "shut down in recovery"}
    assert predicted["diff"]["before"] == {"running": True, "cluster_state": "in archive recovery"}
    assert_running(standby)

    stopped = ok(run_module(MODULE, args))
    assert stopped["changed"] is True and stopped["outcome"] == "stopped"
    assert_stopped(standby)
    facts = control_facts(standby.data_dir)
    assert facts["cluster_state"] == "shut down in recovery"
    assert returned_facts(stopped) == facts
    again = ok(run_module(MODULE, args))
    assert again["changed"] is False and again["outcome"] == "already_stopped"
    assert returned_facts(again) == facts


def test_smart_waits_for_sessions_and_fails_at_the_timeout(env: Env) -> None:
    solo = env.solo
    pid = postmaster_pid(solo)
    with solo.connect() as session:
        started = time.monotonic()
        result = run_module(MODULE, {"data_dir": str(solo.data_dir), "mode": "smart", "timeout": 2})
        assert result.get("failed") is True, result
        assert "pg_ctl stop -m smart failed" in result["msg"] and "timeout=2s" in result["msg"]
        assert "server does not shut down" in result["msg"]
        assert f"a server still runs on data_dir '{solo.data_dir}' (postmaster pid {pid})" in result["msg"]
        assert "smart shutdown" in result["msg"]
        assert time.monotonic() - started < 60
        # Still running, in smart shutdown: the open session works, new ones are refused.
        assert pg_ctl_status(solo) == 0 and postmaster_pid(solo) == pid
        assert session.execute("SELECT 1").fetchone() == (1,)
    # The last session ended: the smart shutdown finishes by itself.
    wait_for(lambda: pg_ctl_status(solo) == 3, "the smart shutdown to finish")
    assert controldata(solo.data_dir)["Database cluster state"] == "shut down"
    solo.start()


def test_immediate_is_unclean_and_require_clean_refuses_it_later(env: Env) -> None:
    solo = env.solo
    assert_running(solo)
    args = {"data_dir": str(solo.data_dir), "mode": "immediate", "require_clean": False}
    stopped = ok(run_module(MODULE, args, diff=True))
    assert stopped["changed"] is True and stopped["outcome"] == "stopped"
    assert stopped["cluster_state"] == "in production"  # no shutdown checkpoint
    assert stopped["diff"]["after"] == {"running": False, "cluster_state": "in production"}
    assert returned_facts(stopped) == control_facts(solo.data_dir)
    assert pg_ctl_status(solo) == 3

    # Found stopped but not clean: with require_clean (the default) it fails naming the state, changing nothing.
    before = controldata(solo.data_dir)
    for check in (True, False):
        refused = run_module(MODULE, {"data_dir": str(solo.data_dir)}, check=check)
        assert refused.get("failed") is True, refused
        assert "require_clean" in refused["msg"] and "'Database cluster state: in production'" in refused["msg"]
        assert "left as it is" in refused["msg"]
    assert controldata(solo.data_dir) == before
    accepted = ok(run_module(MODULE, {"data_dir": str(solo.data_dir), "require_clean": False}))
    assert accepted["changed"] is False and accepted["outcome"] == "already_stopped"
    assert accepted["cluster_state"] == "in production"
