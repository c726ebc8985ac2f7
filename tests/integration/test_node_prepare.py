"""pgrepl.streaming.node_prepare through Ansible, as root, against a throwaway server of this file's own.

Here psycopg is importable (the test runs the modules with the project's Python), so node_prepare must install
nothing, report no change and return exactly what its read-only form (install: false) returns; its install path (a
host without psycopg) runs in every Molecule scenario, on fresh containers, in check mode first and then for real.
"""

from __future__ import annotations

import ipaddress
import json
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest

from ansible_runner import VENV_BIN, ansible_env, run_module, run_tasks
from cluster import Clusters, PgCluster


@pytest.fixture(scope="module")
def server(throwaway: Clusters) -> PgCluster:
    return throwaway.server("prepare")


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


# The host's addresses come from ip(8), that is from the machine's interfaces, which other processes change at any
# moment (a Docker network created or removed adds or drops a bridge and its address). So the calls that compare
# them run in a network namespace of their own whose interfaces only this test makes: a veth pair with
# documentation addresses, both default routes on one end. The server is reached on its Unix socket, which a
# network namespace does not hide.
OWN_NETWORK = (
    "ip link set lo up && ip link add pgrepl0 type veth peer name pgrepl1 && "
    "ip addr add 203.0.113.10/24 dev pgrepl0 && ip -6 addr add 2001:db8::10/64 dev pgrepl0 nodad && "
    "ip addr add 198.51.100.7/24 dev pgrepl1 && ip -6 addr add 2001:db8:1::7/64 dev pgrepl1 nodad && "
    "ip link set pgrepl0 up && ip link set pgrepl1 up && "
    "ip route add default via 203.0.113.1 && ip -6 route add default via 2001:db8::1 dev pgrepl0")
# Best first: IPv4 then IPv6 on the default routes' interface, then IPv4 and IPv6 on the other one.
OWN_ADDRESSES = ["203.0.113.10", "2001:db8::10", "198.51.100.7", "2001:db8:1::7"]


def test_with_psycopg_it_only_reads_and_installs_nothing(server: PgCluster, tmp_path: Path) -> None:
    args = layout_args(server)
    tasks = [{"name": f"{name} check={check}", "pgrepl.streaming.node_prepare": params, "check_mode": check}
             for check in (True, False)
             for name, params in (("prepared", args), ("facts", {**args, "install": False}))]
    results = run_in_own_namespaces(tasks, tmp_path, "--net", OWN_NETWORK)
    for prepared, facts in (results[0:2], results[2:4]):
        assert facts.get("failed") is not True, facts
        assert facts["changed"] is False and facts["installed"] == [], facts
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
        # The addresses are the namespace's own, all of them, best first: read, not made up or cached.
        assert prepared["addresses"] == OWN_ADDRESSES, prepared["addresses"]


def test_bad_inputs_are_refused_naming_the_option(server: PgCluster) -> None:
    args = layout_args(server)
    cases: list[tuple[dict[str, Any], str]] = [
        ({**args, "install": "maybe"}, "install"),
        ({**args, "port": "many"}, "port"),
        ({**args, "version": "fifteen"}, "version"),
        ({**args, "unknown_option": 1}, "Unsupported parameters"),
        ({**args, "package": "-y"}, "package: '-y' is not a package name"),
        ({**args, "package": "python3-psycopg; reboot"}, "package: 'python3-psycopg; reboot' is not a package name"),
        # Relative, it would name a different file in each call's temporary directory: no run would see another.
        ({**args, "lease": "take", "lease_path": "pgrepl/run.lease"},
         "lease_path: 'pgrepl/run.lease' is not an absolute path"),
        ({"lease": "release", "lease_path": "run.lease"}, "lease_path: 'run.lease' is not an absolute path"),
    ]
    run = run_tasks([{"name": f"case {index}", "pgrepl.streaming.node_prepare": case}
                     for index, (case, _match) in enumerate(cases)])
    assert len(run.results) == len(cases), run.stdout
    for (case, match), result in zip(cases, run.results):
        assert result.get("failed") is True, (case, result)
        assert match in result["msg"], (case, result["msg"])


# --- the host's own addresses, and the peers' names resolved here -------------------------------------------------

def ip_output(*args: str) -> str:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=True).stdout


def machine_network() -> tuple[list[str], list[str]]:
    """This machine's global addresses (ip -o addr, without the lifetimes that count down) and default routes."""
    addresses = [re.sub(r"(valid|preferred)_lft \S+", "", line)
                 for line in ip_output("-o", "addr", "show", "scope", "global").splitlines()]
    return addresses, ip_output("-4", "route", "show", "default").splitlines() + ip_output(
        "-6", "route", "show", "default").splitlines()


def test_addresses_are_the_hosts_global_ones_default_route_first(server: PgCluster) -> None:
    """What ip(8) says on this very machine: only usable global addresses, never link-local; those on the default
    routes' interfaces first, IPv4 before IPv6. Other processes add and remove interfaces at any time (Docker
    networks), so the module's answer is compared with the machine's state only when that state was the same
    before and after the call."""
    for _attempt in range(30):
        before = machine_network()
        addresses = run_module("pgrepl.streaming.node_prepare", layout_args(server))["addresses"]
        if machine_network() == before:
            break
    else:
        raise AssertionError("the machine's addresses changed during each of 30 calls")
    address_lines, routes = before
    assert addresses, "this machine has global addresses: none was detected"
    device_of: dict[str, str] = {}
    for line in address_lines:
        fields = line.split()
        if not {"temporary", "deprecated", "tentative", "dadfailed"} & set(fields):
            device_of[fields[3].split("/")[0]] = fields[1]
    assert set(addresses) == set(device_of) - {a for a in device_of if ipaddress.ip_address(a).is_link_local}
    assert not any(ipaddress.ip_address(a).is_link_local for a in addresses)
    default_devices = set()
    for line in routes:
        fields = line.split()
        if "dev" in fields:
            default_devices.add(fields[fields.index("dev") + 1])
    on_default = [a for a in addresses if device_of[a] in default_devices]
    assert addresses[:len(on_default)] == on_default
    versions = [ipaddress.ip_address(a).version for a in on_default]
    assert versions == sorted(versions)


# A private /etc/hosts and /etc/resolv.conf for one ansible-playbook run, in a mount namespace of its own (the
# machine's files are never touched): names resolve from this hosts file, and any other name asks a DNS server
# on loopback, where none listens (so it fails at once, and no query leaves the machine).
HOSTS = """\
127.0.0.1 localhost
::1 localhost
127.0.0.2 pgrepl-addr-dual.test
fd00:d2::2 pgrepl-addr-dual.test
fd00:d2::6 pgrepl-addr-v6only.test
"""
RESOLV = "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n"


def run_in_own_resolver(tasks: list[dict[str, Any]], tmp: Path) -> list[dict[str, Any]]:
    (tmp / "hosts").write_text(HOSTS, encoding="utf-8")
    (tmp / "resolv.conf").write_text(RESOLV, encoding="utf-8")
    return run_in_own_namespaces(tasks, tmp, "--mount", "--propagation", "private",
                                 f"mount --bind {shlex.quote(str(tmp / 'hosts'))} /etc/hosts && "
                                 f"mount --bind {shlex.quote(str(tmp / 'resolv.conf'))} /etc/resolv.conf")


def run_in_own_namespaces(tasks: list[dict[str, Any]], tmp: Path, *unshare: str) -> list[dict[str, Any]]:
    """The tasks as one ansible-playbook run on localhost under `unshare <flags>`, after the setup command (the last
    of unshare); each task's result."""
    *flags, setup = unshare
    play = [{"hosts": "localhost", "gather_facts": False, "connection": "local",
             "tasks": [{**task, "ignore_errors": True} for task in tasks]}]
    (tmp / "play.yml").write_text(json.dumps(play), encoding="utf-8")
    script = (f"{setup} && exec {shlex.quote(str(VENV_BIN / 'ansible-playbook'))} -i localhost, "
              f"{shlex.quote(str(tmp / 'play.yml'))}")
    proc = subprocess.run(["unshare", *flags, "sh", "-c", script],
                          capture_output=True, text=True, env=ansible_env(), timeout=300, check=False)
    try:
        data = json.loads(proc.stdout)
    except json.JSONDecodeError:
        raise AssertionError(f"ansible-playbook did not print JSON:\n{proc.stdout}\n{proc.stderr}") from None
    return [task["hosts"]["localhost"] for task in data["plays"][0]["tasks"]]


def test_peer_names_resolve_on_this_host_to_every_a_and_aaaa_address(server: PgCluster, tmp_path: Path) -> None:
    names = ["pgrepl-addr-dual.test", "pgrepl-addr-v6only.test", "localhost", "pgrepl-addr-missing.invalid"]
    peers = {"n2": "pgrepl-addr-dual.test", "n3": "pgrepl-addr-v6only.test", "n4": "localhost",
             "n5": "pgrepl-addr-missing.invalid", "n6": "10.0.0.6"}
    tasks = [
        {"name": "facts", "pgrepl.streaming.node_prepare": {**layout_args(server), "resolve": names},
         "register": "node"},
        {"name": "facts in check mode", "pgrepl.streaming.node_prepare": {**layout_args(server), "resolve": names,
                                                                          "install": False},
         "check_mode": True},
        # The roles' two uses: the preflight check, and the pg_hba entries.
        {"name": "problems", "ansible.builtin.set_fact": {"problems": "{{ peers | pgrepl.streaming."
                                                          "address_resolve_problems(node.resolved, "
                                                          "node.resolve_errors, 'n1') }}"},
         "vars": {"peers": peers}},
        {"name": "entries", "ansible.builtin.set_fact": {"entries": "{{ peers | dict2items | rejectattr('key', 'eq', "
                                                         "'n5') | items2dict | pgrepl.streaming.hba_entries("
                                                         "node.resolved, {'contype': 'host'}) }}"},
         "vars": {"peers": peers}},
    ]
    prepared, facts, problems, entries = run_in_own_resolver(tasks, tmp_path)
    for result in (prepared, facts):
        assert result.get("failed") is not True and result["changed"] is False, result
        assert result["resolved"] == {"pgrepl-addr-dual.test": ["127.0.0.2", "fd00:d2::2"],
                                      "pgrepl-addr-v6only.test": ["fd00:d2::6"],
                                      "localhost": ["127.0.0.1", "::1"],
                                      "pgrepl-addr-missing.invalid": []}
        assert list(result["resolve_errors"]) == ["pgrepl-addr-missing.invalid"]
        assert result["resolve_errors"]["pgrepl-addr-missing.invalid"]  # the resolver's own words
    assert problems["ansible_facts"]["problems"] == [
        "n5: pgrepl_address 'pgrepl-addr-missing.invalid' does not resolve on n1 ("
        + prepared["resolve_errors"]["pgrepl-addr-missing.invalid"] + "): n1's pg_hba.conf needs the addresses it "
        "connects from; fix DNS or /etc/hosts there, or set an IP address"]
    assert [(e["address"], e["comment"]) for e in entries["ansible_facts"]["entries"]] == [
        ("127.0.0.2/32", "pgrepl.streaming: n2"), ("fd00:d2::2/128", "pgrepl.streaming: n2"),
        ("fd00:d2::6/128", "pgrepl.streaming: n3"),
        ("127.0.0.1/32", "pgrepl.streaming: n4"), ("::1/128", "pgrepl.streaming: n4"),
        ("10.0.0.6/32", "pgrepl.streaming: n6")]
    # The machine's own files were never touched.
    assert "pgrepl-addr" not in Path("/etc/hosts").read_text(encoding="utf-8")


def test_resolve_must_be_a_list_of_names(server: PgCluster) -> None:
    result = run_module("pgrepl.streaming.node_prepare", {**layout_args(server), "resolve": {"a": 1}})
    assert result.get("failed") is True and "resolve" in result["msg"], result
