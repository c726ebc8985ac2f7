"""Shared by the verifiers of every Molecule scenario: the cluster's nodes, as Molecule's inventory describes them.

Paths, port and service come from the inventory's layout variables (pgrepl_data_dir, pgrepl_config_dir,
pgrepl_bin_dir, pgrepl_socket_dir, pgrepl_port, pgrepl_service), with Debian's own layout where they are unset,
the same way the scenarios' prepare does (default/vars/layout.yml). Hosts reached as a non-root user (the ssh
scenario) run the checks through sudo, as the roles do.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

# Every scenario names its hosts pgrepl-<scenario>-primary, -standby1, -standby2 (Molecule sets
# MOLECULE_SCENARIO_NAME for the verifier).
SCENARIO = os.environ.get("MOLECULE_SCENARIO_NAME", "default")


@dataclass
class Node:
    """One inventory host and where its PostgreSQL lives."""

    name: str
    host: Any  # testinfra Host
    variables: dict[str, Any] = field(repr=False)

    def var(self, name: str, default: Any) -> Any:
        value = self.variables.get(name)
        return default if value in (None, "") else value

    @property
    def major(self) -> int:
        return int(self.variables["pgrepl_test_major"])

    @property
    def data_dir(self) -> str:
        return str(self.var("pgrepl_data_dir", f"/var/lib/postgresql/{self.major}/main"))

    @property
    def config_dir(self) -> str:
        return str(self.var("pgrepl_config_dir", f"/etc/postgresql/{self.major}/main"))

    @property
    def bin_dir(self) -> str:
        return str(self.var("pgrepl_bin_dir", f"/usr/lib/postgresql/{self.major}/bin"))

    @property
    def socket_dir(self) -> str:
        return str(self.var("pgrepl_socket_dir", "/var/run/postgresql"))

    @property
    def port(self) -> int:
        return int(self.var("pgrepl_port", 5432))

    @property
    def service(self) -> str:
        return str(self.var("pgrepl_service", f"postgresql@{self.major}-main"))

    def psql(self, query: str) -> str:
        """One query as the postgres OS user over the server's unix socket; testinfra quotes the arguments."""
        result = self.host.run(
            "runuser -u postgres -- %s -XAt -v ON_ERROR_STOP=1 -h %s -p %s -d postgres -c %s",
            f"{self.bin_dir}/psql", self.socket_dir, str(self.port), query)
        assert result.rc == 0, f"{self.name}: {result.stderr}"
        return result.stdout.strip()

    def server_logs(self) -> str:
        """Everything the server logged: Debian's log files, a logging_collector's files and the unit's journal."""
        files = " ".join(shlex.quote(p) for p in (f"{self.data_dir}/log", "/var/log/postgresql"))
        unit = shlex.quote(self.service)
        result = self.host.run(f"find {files} -type f -exec cat {{}} + 2>/dev/null; journalctl -q --no-pager -u {unit}")
        return result.stdout


@pytest.fixture(scope="session")
def nodes(request) -> dict[str, Node]:
    """Every host of the inventory by name, the primary first."""
    import testinfra

    inventory = request.config.option.ansible_inventory
    found: dict[str, Node] = {}
    for name in [f"pgrepl-{SCENARIO}-primary", f"pgrepl-{SCENARIO}-standby1", f"pgrepl-{SCENARIO}-standby2"]:
        variables = testinfra.get_host(f"ansible://{name}", ansible_inventory=inventory).ansible.get_variables()
        as_root = variables.get("ansible_user", "root") == "root"
        host = testinfra.get_host(f"ansible://{name}", ansible_inventory=inventory, sudo=not as_root)
        found[name] = Node(name, host, variables)
    return found


@pytest.fixture(scope="session")
def primary(nodes: dict[str, Node]) -> Node:
    return next(node for node in nodes.values() if "primary" in node.variables["group_names"])


@pytest.fixture(scope="session")
def standbys(nodes: dict[str, Node]) -> list[Node]:
    return [node for node in nodes.values() if "standby" in node.variables["group_names"]]


def _wait_for(what: str, probe: Callable[[], Any], timeout: float = 60.0) -> Any:
    """probe() until it returns something true (returned), every 0.5 s; fails naming `what` at the timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


@pytest.fixture(scope="session")
def wait_for() -> Callable[..., Any]:
    """wait_for(what, probe, timeout=60): the verifiers' one wait."""
    return _wait_for


@pytest.fixture(scope="session")
def playbook(request) -> Callable[..., subprocess.CompletedProcess]:
    """playbook(name, *extra): `ansible-playbook -i <Molecule's inventory> pgrepl.streaming.<name> -e ...`, as
    users run it, with the default text output."""
    inventory = request.config.option.ansible_inventory

    def run(name: str, *extra: str) -> subprocess.CompletedProcess:
        program = shutil.which("ansible-playbook", path=str(Path(sys.executable).parent)) or "ansible-playbook"
        env = dict(os.environ, ANSIBLE_STDOUT_CALLBACK="ansible.builtin.default", ANSIBLE_NOCOLOR="true")
        argv = [program, "-i", inventory, f"pgrepl.streaming.{name}"]
        for item in extra:
            argv += ["-e", item]
        return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=900, check=False)
    return run
