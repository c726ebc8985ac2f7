# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pgrepl_firewall live: the node role's firewall task (roles/node/tasks/firewall.yml, module firewall_allow) run
by ansible-playbook against a systemd host whose firewalld runs (image pgrepl-test/pg15-firewall), then the same
host with ufw instead, then with neither. Asserted on the host itself: the rules firewall-cmd and ufw list, the
zone's other settings unchanged, a cluster member's pg_isready answered while a non-member's is not, check mode
changing nothing, a second run changing nothing, and no firewall started. Last, a whole site run with
pgrepl_firewall on two firewalld hosts: the standby copies and streams through the primary's firewall.

A missing engine or image fails (never a skip): scripts/test.sh firewall builds what it needs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "tests" / "day2"))

from d2_docker import dexec, docker, engine_problem, image_exists, ip_of, remove_prefixed, start_hosts  # noqa: E402

PREFIX = "pgrepl-fw-"
NETWORK = PREFIX + "net"
NODE, MEMBER, OTHER = PREFIX + "node", PREFIX + "member", PREFIX + "other"
NODE_IMAGE = "pgrepl-test/pg15-firewall:current"
CLIENT_IMAGE = "pgrepl-test/pg15:current"
PORT = 5432


@pytest.fixture(scope="module")
def hosts() -> Iterator[dict[str, str]]:
    """The firewalld node, a cluster member and a host outside the cluster, on one network; their addresses."""
    problem = engine_problem()
    absent = [image for image in (NODE_IMAGE, CLIENT_IMAGE) if not problem and not image_exists(image)]
    if problem or absent:
        pytest.fail(f"{problem or 'image(s) not built: ' + ', '.join(absent)}: the firewall test cannot run "
                    "(bash scripts/test.sh firewall builds them)", pytrace=False)
    remove_prefixed(PREFIX)
    try:
        start_hosts([NODE], NODE_IMAGE, NETWORK, net_admin=(NODE,))
        for name in (MEMBER, OTHER):
            docker("run", "-d", "--name", name, "--hostname", name, "--network", NETWORK, CLIENT_IMAGE,
                   "sleep", "infinity")
        # The server listens on every address (the roles' listen_addresses), so only the firewall decides.
        dexec(NODE, "pg_conftool", "15", "main", "set", "listen_addresses", "*")
        dexec(NODE, "systemctl", "restart", "postgresql@15-main")
        wait_for(lambda: docker("exec", NODE, "pg_isready", "-q", check=False).returncode == 0,
                 "the server's restart")
        assert dexec(NODE, "firewall-cmd", "--state") == "running"
        yield {name: ip_of(name, NETWORK) for name in (NODE, MEMBER, OTHER)}
    finally:
        remove_prefixed(PREFIX)


def wait_for(ready: Any, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout} s")
        time.sleep(0.5)


def reaches(client: str, node_ip: str) -> bool:
    """pg_isready from ``client``: 0 accepting; 2 no answer (refused or dropped by the firewall)."""
    rc = docker("exec", client, "pg_isready", "-h", node_ip, "-p", str(PORT), "-t", "3", check=False).returncode
    assert rc in (0, 2), f"pg_isready from {client}: exit code {rc}"
    return rc == 0


def run_role_task(hosts: dict[str, str], check: bool = False) -> dict[str, Any]:
    """The node role's firewall.yml on the node, through ansible-playbook, with the facts the role's gather would
    set (the member is the only other node of the cluster); the task's result."""
    inventory = {
        "all": {
            "vars": {"ansible_connection": "community.docker.docker", "ansible_python_interpreter": "/usr/bin/python3"},
            "children": {
                "primary": {"hosts": {"node": {"ansible_host": NODE}}},
                "standby": {"hosts": {"member": {"ansible_host": MEMBER}}},
            },
        },
    }
    facts = {"node": hosts[NODE], "member": hosts[MEMBER]}
    for group in inventory["all"]["children"].values():
        for host, values in group["hosts"].items():
            values.update({"__pgrepl_address": facts[host], "__pgrepl_cluster_nodes": ["node", "member"],
                           "__pgrepl_layout": {"port": PORT}, "__pgrepl_node": {"resolved": {}},
                           "pgrepl_firewall": True})
    playbook = [{
        "name": "Firewall of the node", "hosts": "node", "gather_facts": False,
        "tasks": [{"name": "The role's firewall task", "ansible.builtin.include_role": {
            "name": "pgrepl.streaming.node", "tasks_from": "firewall.yml"}}],
    }]
    with tempfile.TemporaryDirectory(prefix="pgrepl-fw-") as tmp:
        (Path(tmp) / "inventory.json").write_text(json.dumps(inventory))
        (Path(tmp) / "play.json").write_text(json.dumps(playbook))
        env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(REPO_ROOT / ".build" / "collections"),
                   ANSIBLE_HOME=str(REPO_ROOT / ".build" / "ansible-home"),
                   ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_NOCOLOR="true",
                   ANSIBLE_DEPRECATION_WARNINGS="false")
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        argv = ["ansible-playbook", "-i", str(Path(tmp) / "inventory.json"), str(Path(tmp) / "play.json"), "--diff"]
        proc = subprocess.run(argv + (["--check"] if check else []), env=env, capture_output=True, text=True,
                              timeout=300, check=False)
    assert proc.returncode == 0, f"ansible-playbook failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}"
    tasks = json.loads(proc.stdout)["plays"][0]["tasks"]
    result = tasks[-1]["hosts"]["node"]
    assert tasks[-1]["task"]["name"].endswith("Open the PostgreSQL port to the other nodes in the host firewall "
                                              "that runs"), tasks[-1]["task"]["name"]
    return result


def rich_rules(permanent: bool) -> list[str]:
    argv = ["firewall-cmd", *(["--permanent"] if permanent else []), "--zone=public", "--list-rich-rules"]
    return [line for line in dexec(NODE, *argv).splitlines() if line.strip()]


def zone_without_rich_rules(permanent: bool) -> list[str]:
    argv = ["firewall-cmd", *(["--permanent"] if permanent else []), "--zone=public", "--list-all"]
    lines = dexec(NODE, *argv).splitlines()
    return [line for line in lines if not line.strip().startswith(("rule ", "rich rules:"))]


def test_firewalld_member_let_in_non_member_not(hosts: dict[str, str]) -> None:
    node = hosts[NODE]
    wanted = f'rule family="ipv4" source address="{hosts[MEMBER]}" port port="{PORT}" protocol="tcp" accept'
    # An application's own opening, which must stay as it is.
    dexec(NODE, "firewall-cmd", "--zone=public", "--add-port=8080/tcp")
    before = {permanent: zone_without_rich_rules(permanent) for permanent in (False, True)}
    assert not reaches(MEMBER, node) and not reaches(OTHER, node)

    predicted = run_role_task(hosts, check=True)
    assert predicted["changed"] and predicted["firewalls"] == ["firewalld"]
    assert predicted["rules_added"] == [f"firewalld zone public (runtime): {wanted}",
                                        f"firewalld zone public (permanent): {wanted}"]
    assert predicted["diff"]["after"]["firewalld zone public (runtime)"] == [wanted]
    assert rich_rules(False) == [] and rich_rules(True) == [] and not reaches(MEMBER, node)

    applied = run_role_task(hosts)
    assert applied["changed"] and applied["rules_added"] == predicted["rules_added"]
    assert rich_rules(False) == [wanted] and rich_rules(True) == [wanted]
    assert {permanent: zone_without_rich_rules(permanent) for permanent in (False, True)} == before
    assert reaches(MEMBER, node), "the cluster member is not let in"
    assert not reaches(OTHER, node), "a host outside the cluster got in"

    again = run_role_task(hosts)
    assert not again["changed"] and again["rules_added"] == []
    assert rich_rules(False) == [wanted]


def test_ufw_member_let_in_then_no_firewall_nothing_started(hosts: dict[str, str]) -> None:
    node = hosts[NODE]
    dexec(NODE, "systemctl", "stop", "firewalld")
    dexec(NODE, "ufw", "--force", "enable")
    dexec(NODE, "ufw", "allow", "22/tcp")
    assert not reaches(MEMBER, node)
    wanted = f"ufw allow from {hosts[MEMBER]} to any port {PORT} proto tcp comment 'pgrepl.streaming'"

    predicted = run_role_task(hosts, check=True)
    assert predicted["changed"] and predicted["firewalls"] == ["ufw"]
    assert predicted["rules_added"] == [f"ufw: {wanted}"]
    assert wanted not in dexec(NODE, "ufw", "show", "added")

    applied = run_role_task(hosts)
    assert applied["changed"] and applied["rules_added"] == predicted["rules_added"]
    added = dexec(NODE, "ufw", "show", "added").splitlines()
    assert added[1:] == ["ufw allow 22/tcp", wanted]
    assert reaches(MEMBER, node), "the cluster member is not let in"
    assert not reaches(OTHER, node), "a host outside the cluster got in"
    assert not run_role_task(hosts)["changed"]

    # Neither runs: nothing needed, nothing started.
    dexec(NODE, "ufw", "disable")
    none = run_role_task(hosts)
    assert not none["changed"] and none["firewalls"] == [] and "No firewall runs" in none["msg"]
    assert dexec(NODE, "systemctl", "is-active", "firewalld", check=False) == "inactive"
    assert dexec(NODE, "ufw", "status", check=False).startswith("Status: inactive")


SITE_PRIMARY, SITE_STANDBY = PREFIX + "site-primary", PREFIX + "site-standby"


@pytest.fixture(scope="module")
def site_hosts(hosts: dict[str, str]) -> Iterator[dict[str, str]]:
    """Two more firewalld hosts for a whole site run (the network and the checks of `hosts` come first)."""
    start_hosts([SITE_PRIMARY, SITE_STANDBY], NODE_IMAGE, NETWORK, net_admin=(SITE_PRIMARY, SITE_STANDBY))
    try:
        for name in (SITE_PRIMARY, SITE_STANDBY):
            assert dexec(name, "firewall-cmd", "--state") == "running"
        yield {name: ip_of(name, NETWORK) for name in (SITE_PRIMARY, SITE_STANDBY)}
    finally:
        docker("rm", "-f", SITE_PRIMARY, SITE_STANDBY, check=False, timeout=180)


def run_site(tmp: Path) -> dict[str, Any]:
    inventory = {"all": {
        "vars": {"ansible_connection": "community.docker.docker", "ansible_python_interpreter": "/usr/bin/python3",
                 "ansible_become_method": "ansible.builtin.su", "pgrepl_replication_password": "fw-test-pw-8Rq",
                 "pgrepl_firewall": True},
        "children": {"primary": {"hosts": {SITE_PRIMARY: {}}}, "standby": {"hosts": {SITE_STANDBY: {}}}},
    }}
    (tmp / "inventory.json").write_text(json.dumps(inventory))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(REPO_ROOT / ".build" / "collections"),
               ANSIBLE_HOME=str(REPO_ROOT / ".build" / "ansible-home"),
               ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_NOCOLOR="true",
               ANSIBLE_DEPRECATION_WARNINGS="false")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    proc = subprocess.run(["ansible-playbook", "-i", str(tmp / "inventory.json"), "pgrepl.streaming.site"],
                          env=env, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, f"site failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}"
    return json.loads(proc.stdout)


def firewall_results(run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each host's result of the firewall task in a site run."""
    found: dict[str, dict[str, Any]] = {}
    for play in run["plays"]:
        for task in play["tasks"]:
            if task["task"]["name"].endswith("Open the PostgreSQL port to the other nodes in the host firewall "
                                             "that runs"):
                found.update(task["hosts"])
    return found


def test_site_streams_through_firewalld(site_hosts: dict[str, str], tmp_path: Path) -> None:
    """site with pgrepl_firewall on two firewalld hosts: the primary opens before the standby copies, each
    admits the other, the standby streams (a re-run's firewall task: the role task tests above)."""
    first = firewall_results(run_site(tmp_path))
    assert set(first) == {SITE_PRIMARY, SITE_STANDBY} and all(r["changed"] for r in first.values())
    for host, peer in ((SITE_PRIMARY, SITE_STANDBY), (SITE_STANDBY, SITE_PRIMARY)):
        rule = f'rule family="ipv4" source address="{site_hosts[peer]}" port port="5432" protocol="tcp" accept'
        assert dexec(host, "firewall-cmd", "--zone=public", "--list-rich-rules").splitlines() == [rule]
        assert dexec(host, "firewall-cmd", "--permanent", "--zone=public", "--list-rich-rules").splitlines() == [rule]
    status = dexec(SITE_STANDBY, "runuser", "-u", "postgres", "--", "psql", "-Atqc",
                   "SELECT status || ' ' || sender_host FROM pg_stat_wal_receiver")
    assert status == f"streaming {site_hosts[SITE_PRIMARY]}"
