"""pgrepl.streaming.node_prepare through Ansible, as root, against a throwaway server of this file's own.

Here psycopg is importable (the test runs the modules with the project's Python), so node_prepare must be
node_facts exactly, install nothing and report no change; its install path (a host without psycopg) runs in every
Molecule scenario, on fresh containers, in check mode first and then for real.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ansible_runner import run_module, run_tasks
from cluster import PgCluster


@pytest.fixture(scope="module")
def server() -> Iterator[PgCluster]:
    base = Path(tempfile.mkdtemp(prefix="pgrepl-prepare-"))
    os.chmod(base, 0o755)
    cluster = PgCluster(base, "prepare")
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()
        shutil.rmtree(base, ignore_errors=True)


def layout_args(cluster: PgCluster) -> dict[str, Any]:
    return {"data_dir": str(cluster.data_dir), "config_dir": str(cluster.data_dir), "bin_dir": str(cluster.bin_dir),
            "socket_dir": str(cluster.socket_dir), "port": cluster.port, "service": "pgrepl-test-none"}


# Facts that move between two calls (LSNs, times); everything else must match.
MOVING = {"current_lsn", "insert_lsn", "flush_lsn", "now", "checkpoint_time", "uptime_seconds"}


def stable(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: stable(item) for key, item in value.items() if key not in MOVING}
    if isinstance(value, list):
        return [stable(item) for item in value]
    return value


def test_with_psycopg_it_is_node_facts_and_installs_nothing(server: PgCluster) -> None:
    args = layout_args(server)
    for check in (True, False):
        prepared = run_module("pgrepl.streaming.node_prepare", args, check=check)
        facts = run_module("pgrepl.streaming.node_facts", args, check=check)
        assert prepared.get("failed") is not True, prepared
        assert prepared["changed"] is False
        assert (prepared["installed"], prepared["install_steps"], prepared["install_seconds"]) == ([], [], 0.0)
        assert prepared["psycopg"] is True and prepared["running"] is True
        # The live facts come from the server itself.
        assert prepared["server"]["system_identifier"] == facts["server"]["system_identifier"]
        assert str(prepared["server"]["system_identifier"]) == str(server.scalar(
            "SELECT system_identifier FROM pg_control_system()"))
        for key in ("layout", "data_dir_state", "addresses", "running", "service_enabled"):
            assert stable(prepared[key]) == stable(facts[key]), key


def test_bad_inputs_are_refused_naming_the_option(server: PgCluster) -> None:
    args = layout_args(server)
    cases: list[tuple[dict[str, Any], str]] = [
        ({**args, "install": "maybe"}, "install"),
        ({**args, "port": "many"}, "port"),
        ({**args, "version": "fifteen"}, "version"),
        ({**args, "unknown_option": 1}, "Unsupported parameters"),
        ({**args, "package": "-y"}, "package: '-y' is not a package name"),
        ({**args, "package": "python3-psycopg; reboot"}, "package: 'python3-psycopg; reboot' is not a package name"),
    ]
    run = run_tasks([{"name": f"case {index}", "pgrepl.streaming.node_prepare": case}
                     for index, (case, _match) in enumerate(cases)])
    assert len(run.results) == len(cases), run.stdout
    for (case, match), result in zip(cases, run.results):
        assert result.get("failed") is True, (case, result)
        assert match in result["msg"], (case, result["msg"])
