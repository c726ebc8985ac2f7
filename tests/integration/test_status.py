"""pgrepl.streaming.status, the real playbook in the default callback, against real PostgreSQL servers on loopback.

A primary of this file's own with two standbys: one streams, one is stopped. The table must read as a table (no
quotes, escapes or list commas), say `streaming` and `stopped` with why, agree with what the servers themselves
say, give the same facts as JSON, and fail under pgrepl_status_strict until the stopped standby streams again.
The human units are compared with the server's own pg_size_pretty.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from ansible_collections.pgrepl.streaming.plugins.module_utils._status import size_pretty

from ansible_runner import VENV_BIN, ansible_env
from cluster import Clusters, PgCluster

PRIMARY, STREAMING, STOPPED = "status-p", "status-s1", "status-s2"
HEADER = ["host", "role", "state", "sync", "tl", "lsn", "lag_bytes", "lag", "delay", "slot", "(wal_status)", "problems"]


@pytest.fixture(scope="module")
def cluster(throwaway: Clusters) -> dict[str, PgCluster]:
    """A primary, a standby that streams through its slot and one that was stopped (application_name = the
    inventory name, through cluster_name, as the roles set it)."""
    nodes = {PRIMARY: throwaway.server("p")}
    for name, dirname in ((STREAMING, "s1"), (STOPPED, "s2")):
        nodes[name] = throwaway.standby(nodes[PRIMARY], dirname, slot=name.replace("-", "_"),
                                        conf=f"cluster_name = '{name}'\n")
    nodes[STOPPED].stop()
    return nodes


def write_inventory(nodes: dict[str, PgCluster], directory: Path) -> Path:
    def host(node: PgCluster) -> dict[str, Any]:
        return {"pgrepl_data_dir": str(node.data_dir), "pgrepl_config_dir": str(node.data_dir),
                "pgrepl_socket_dir": str(node.socket_dir), "pgrepl_port": node.port,
                "pgrepl_service": f"pgrepl-test-{node.name}"}
    major = int(nodes[PRIMARY].bin_dir.parent.name)
    inventory = {"all": {
        "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable, "ansible_become": False,
                 "pgrepl_version": major, "pgrepl_bin_dir": str(nodes[PRIMARY].bin_dir),
                 "pgrepl_install_packages": False},
        "children": {
            "primary": {"hosts": {PRIMARY: host(nodes[PRIMARY])}},
            "standby": {"hosts": {STREAMING: host(nodes[STREAMING]), STOPPED: host(nodes[STOPPED])}},
        }}}
    path = directory / "inventory.yml"
    path.write_text(yaml.safe_dump(inventory), encoding="utf-8")
    return path


def status(inventory: Path, *extra: str, callback: str = "ansible.builtin.default") -> subprocess.CompletedProcess:
    """`ansible-playbook -i inventory pgrepl.streaming.status -e ...` in the default callback, as users run it."""
    argv = [str(VENV_BIN / "ansible-playbook"), "-i", str(inventory), "pgrepl.streaming.status"]
    for item in extra:
        argv += ["-e", item]
    return subprocess.run(argv, capture_output=True, text=True, env=ansible_env(callback), timeout=300, check=False)


def table(stdout: str) -> list[str]:
    """The header line of the table and the rows after it."""
    lines = stdout.splitlines()
    start = next(index for index, line in enumerate(lines) if line.split()[:3] == ["host", "role", "state"])
    return lines[start:start + 4]


@pytest.fixture(scope="module")
def inventory(cluster: dict[str, PgCluster]) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="pgrepl-status-inv-") as tmp:
        yield write_inventory(cluster, Path(tmp))


def test_the_table_reads_as_a_table_and_says_what_the_servers_say(
        cluster: dict[str, PgCluster], inventory: Path) -> None:
    run = status(inventory)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    header, *rows = table(run.stdout)
    assert header.split() == HEADER
    for line in [header, *rows]:
        # What a debug message of a list looks like in the default callback, and must not.
        assert not line.lstrip().startswith(('"', "'", "[", "{")), line
        assert not line.rstrip().endswith((",", '"')) and "\\n" not in line and '\\"' not in line, line
    cells = {row.split()[0]: row.split() for row in rows}
    assert sorted(cells) == sorted([PRIMARY, STREAMING, STOPPED])

    primary = cluster[PRIMARY]
    timeline = str(primary.scalar("SELECT timeline_id FROM pg_control_checkpoint()"))
    assert cells[PRIMARY][:5] == [PRIMARY, "primary", "-", "-", timeline]
    assert cells[PRIMARY][-1] == "ok"

    real_state = primary.scalar("SELECT state FROM pg_stat_replication WHERE application_name = %s", (STREAMING,))
    assert real_state == "streaming"
    assert cells[STREAMING][:5] == [STREAMING, "standby", real_state, "async", timeline]
    assert cells[STREAMING][-1] == "ok"
    assert "status_s1 (reserved)" in rows[[r.split()[0] for r in rows].index(STREAMING)]

    stopped_row = rows[[r.split()[0] for r in rows].index(STOPPED)]
    assert cells[STOPPED][:3] == [STOPPED, "standby", "stopped"]
    assert primary.scalar("SELECT count(*) FROM pg_stat_replication WHERE application_name = %s", (STOPPED,)) == 0
    assert "server not running (pg_control: shut down in recovery), start it with systemctl start " \
           "pgrepl-test-s2" in stopped_row
    assert re.search(r"status_s2 \(reserved, inactive, holds \d+ (bytes|kB|MB)\)", stopped_row), stopped_row


def test_json_gives_the_same_facts_as_one_document(cluster: dict[str, PgCluster], inventory: Path) -> None:
    run = status(inventory, "pgrepl_status_format=json")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    found = re.findall(r"^\{$.*?^\}$", run.stdout, re.MULTILINE | re.DOTALL)
    assert len(found) == 1, run.stdout[-3000:]
    document = json.loads(found[0])
    assert document["primary"] == PRIMARY and document["ok"] is False
    nodes = {entry["host"]: entry for entry in document["nodes"]}
    streaming, stopped = nodes[STREAMING], nodes[STOPPED]
    assert (streaming["state"], streaming["upstream_state"], streaming["receiver_status"]) == \
        ("streaming", "streaming", "streaming")
    assert isinstance(streaming["lag_bytes"], int) and streaming["lag"] == size_pretty(streaming["lag_bytes"])
    assert streaming["slot"]["name"] == "status_s1" and streaming["slot"]["wal_status"] == "reserved"
    assert (stopped["state"], stopped["server_status"], stopped["cluster_state"]) == \
        ("stopped", "stopped", "shut down in recovery")
    assert document["problems"] == [f"{STOPPED}: {problem}" for problem in stopped["problems"]]
    real_sysid = str(cluster[PRIMARY].scalar("SELECT system_identifier FROM pg_control_system()"))
    assert {entry["system_identifier"] for entry in document["nodes"]} == {real_sysid}
    # No table in JSON mode.
    assert not any(line.split()[:3] == ["host", "role", "state"] for line in run.stdout.splitlines() if line.split())


def test_a_json_stdout_callback_gets_the_document_in_the_result_and_no_text(inventory: Path) -> None:
    run = status(inventory, callback="ansible.posix.json")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    output = json.loads(run.stdout)  # printing the table would have broken this document
    # The status play follows the play that selects the clusters (playbooks/status.yml).
    task = next(task for play in output["plays"] for task in play["tasks"]
                if task["task"]["name"].endswith(": The status of the cluster"))
    (looped,) = task["hosts"].values()
    (result,) = looped["results"]  # one item per cluster of the inventory (pgrepl_cluster_id): one here
    states = {entry["host"]: entry["state"] for entry in result["status"]["nodes"]}
    assert states == {PRIMARY: None, STREAMING: "streaming", STOPPED: "stopped"}
    assert result["ok"] is False


def test_a_bad_format_is_refused_naming_the_variable_and_value(inventory: Path) -> None:
    run = status(inventory, "pgrepl_status_format=yaml")
    assert run.returncode != 0
    assert "pgrepl_status_format" in run.stdout and "yaml" in run.stdout


def test_strict_fails_while_a_standby_is_stopped_and_passes_once_it_streams(cluster: dict[str, PgCluster],
                                                                            inventory: Path) -> None:
    run = status(inventory, "pgrepl_status_strict=true")
    assert run.returncode == 2, run.stdout[-3000:]
    assert f"pgrepl_status_strict: 1 problem: {STOPPED}: server not running" in run.stdout
    assert table(run.stdout)[0].split() == HEADER  # printed before it fails
    cluster[STOPPED].start()
    cluster[STOPPED].wait_streaming()
    run = status(inventory, "pgrepl_status_strict=true")
    assert run.returncode == 0, run.stdout[-3000:]
    assert [row.split()[2] for row in table(run.stdout)[1:]] == ["-", "streaming", "streaming"]


def test_human_units_are_the_servers_pg_size_pretty(cluster: dict[str, PgCluster]) -> None:
    # Around every unit boundary (10240 bytes, then 20479 half-units of each unit) and a few plain sizes.
    bases = [0, 10240, 16 * 1024 ** 2, 10 * 1024 ** 3, 2 ** 62] + [20479 * 512 * 1024 ** n for n in range(4)]
    deltas = (-513, -512, -511, -1, 0, 1, 511, 512, 513)
    values = sorted({sign * (base + delta) for base in bases for delta in deltas for sign in (1, -1)
                     if base + delta >= 0} | {2 ** 63 - 1, -(2 ** 63) + 1})
    rows = cluster[PRIMARY].sql("SELECT v, pg_size_pretty(v) FROM unnest(%s::bigint[]) AS v", (values,))
    assert len(rows) == len(values)
    assert [(value, size_pretty(value)) for value, _pretty in rows] == rows
