"""The ssh scenario's own checks (the shared ones in default/tests run too): the roles reached every host over
ssh as deploy at its address on the scenario's network, and became root through sudo."""

from __future__ import annotations

import ipaddress
import json
import subprocess


def test_the_inventory_connects_like_a_real_one(nodes) -> None:
    for node in nodes.values():
        variables = node.variables
        assert variables["ansible_connection"] == "ssh"
        assert variables["ansible_user"] == "deploy"
        assert variables["ansible_become_method"] == "ansible.builtin.sudo"
        assert variables["ansible_private_key_file"].endswith("/ssh_key")
        # The address is the container's own on the scenario's network, as Docker reports it.
        inspect = subprocess.run(["docker", "inspect", node.name], capture_output=True, text=True, check=True)
        networks = json.loads(inspect.stdout)[0]["NetworkSettings"]["Networks"]
        assert list(networks) == ["pgrepl-ssh"]
        assert variables["ansible_host"] == networks["pgrepl-ssh"]["IPAddress"]
        assert ipaddress.ip_address(variables["ansible_host"]).is_private


def test_the_roles_came_over_ssh_as_deploy_and_used_sudo(nodes) -> None:
    for node in nodes.values():
        sshd = node.host.run("journalctl -q --no-pager -u ssh.service")
        assert "Accepted publickey for deploy" in sshd.stdout, node.name
        assert "Accepted publickey for root" not in sshd.stdout
        sudo = node.host.run("journalctl -q --no-pager _COMM=sudo")
        assert "deploy : PWD=" in sudo.stdout and "USER=root" in sudo.stdout, node.name
