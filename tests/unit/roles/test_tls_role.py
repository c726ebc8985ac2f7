# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pgrepl_tls as the roles render it: the preflight refusal over every node's inventory variables (before anything
changes), and the one client option set every connection of a node takes."""

from __future__ import annotations

from typing import Any

from .rendering import render, role_vars, task_var

LAYOUT = {"data_dir": "/var/lib/postgresql/17/main", "config_dir": "/etc/postgresql/17/main", "major": 17,
          "hba_file": "/etc/postgresql/17/main/pg_hba.conf", "port": 5432}


def preflight(hostvars: dict[str, dict[str, Any]]) -> list[str]:
    """The preflight's one task (inventory_checks.yml) over the node role's view of these hostvars."""
    nodes = list(hostvars)
    variables: dict[str, Any] = {"hostvars": hostvars, "groups": {"primary": nodes[:1], "standby": nodes[1:]},
                                 "ansible_play_hosts_all": nodes}
    variables["__pgrepl_inventory_view"] = render(role_vars("node")["__pgrepl_inventory_view"], variables)
    problems = task_var("roles/node/tasks/inventory_checks.yml", "Refuse an inventory that does not match",
                        "__problems")
    # The DNS names of these hosts resolve nowhere here: the inventory's own refusal of that is tested elsewhere.
    return [problem for problem in render(problems, variables) if "does not resolve" not in problem]


def host(address: str, **extra: Any) -> dict[str, Any]:
    return dict({"__pgrepl_address": address, "__pgrepl_layout": LAYOUT,
                 "__pgrepl_node": {"libpq_version": 170004}}, **extra)


def test_the_preflight_passes_a_cluster_whose_tls_can_work_and_one_without_tls() -> None:
    assert preflight({"db1": host("10.0.0.1", pgrepl_tls=True), "db2": host("10.0.0.2", pgrepl_tls=True)}) == []
    # Role defaults are not in hostvars: nothing set means no TLS.
    assert preflight({"db1": host("10.0.0.1"), "db2": host("10.0.0.2", pgrepl_tls_cert="/x.crt")}) == []


def test_the_preflight_refuses_every_bad_tls_option_naming_host_option_and_value() -> None:
    problems = preflight({
        "db1": host("10.0.0.1", pgrepl_tls=True),
        "db2": host("db2.example.com", pgrepl_tls=True, pgrepl_tls_cert="/srv/pki/db2.crt"),
        "db3": host("db3.example.com", pgrepl_tls=True, __pgrepl_node={"libpq_version": 140009},
                    __pgrepl_layout=dict(LAYOUT, major=14)),
    })
    assert problems[0].startswith("db2: pgrepl_tls_cert is set ('/srv/pki/db2.crt') but pgrepl_tls_key is not")
    assert problems[1].startswith("db3 (libpq 14, PostgreSQL 14) would connect to db1 at 10.0.0.1 with "
                                  "sslmode=verify-full")
    assert len(problems) == 2, problems
    assert preflight({"db1": host("10.0.0.1", pgrepl_tls="true"), "db2": host("10.0.0.2")})[0].startswith(
        "pgrepl_tls is true on db1 but false on db2")


def test_every_connection_of_a_node_takes_the_same_tls_options() -> None:
    node = role_vars("node")
    variables = {"pgrepl_tls": True, "inventory_hostname": "db2", "__pgrepl_address": "10.0.0.2",
                 "__pgrepl_layout": LAYOUT, "pgrepl_tls_dir": "", "pgrepl_tls_ca_cert": "", "pgrepl_tls_cert": "",
                 "pgrepl_tls_key": "", "pgrepl_tls_ca_dir": "/srv/ansible/pgrepl-tls",
                 "pgrepl_tls_sslmode": "verify-full"}
    tls = render(node["__pgrepl_tls"], variables)
    assert tls["client"] == {"sslmode": "verify-full", "sslrootcert": "/etc/postgresql/17/main/pgrepl-tls/ca.crt"}
    variables["__pgrepl_tls"] = tls
    config = node["__pgrepl_want_standby_config"]
    assert render({"sslmode": config["sslmode"], "sslrootcert": config["sslrootcert"]}, variables) == tls["client"]
    clone = role_vars("standby")["__pgrepl_standby_checks"]["clone"]["params"]
    assert render({"sslmode": clone["sslmode"], "sslrootcert": clone["sslrootcert"]}, variables) == tls["client"]
    # The CA directory defaults to pgrepl-tls beside the inventory.
    variables.update(pgrepl_tls_ca_dir="", inventory_dir="/srv/inventories/prod")
    assert render(node["__pgrepl_tls"], variables)["sources"]["ca"] == "/srv/inventories/prod/pgrepl-tls/ca.crt"
