#!/usr/bin/python
# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one call per host that the roles decide from: layout, data directory, server facts."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: node_facts
short_description: Everything the pgrepl roles need to know about one PostgreSQL host, in one call
version_added: 0.1.0
author: pgrepl maintainers (@pgrepl)
description:
  - Finds where the host keeps PostgreSQL (data dir, config dir, binaries, service, socket, port) from its
    distribution family and installed major, with every part overridable; reads the data directory (system
    identifier, timeline, cluster state, standby.signal, running postmaster) without needing the server; and,
    when psycopg is present and the server runs, adds the live replication facts of
    M(pgrepl.streaming.replication_info).
  - Works before psycopg is installed (the live facts are then left out), so check mode on a fresh host can
    predict what a run would do.
  - Read-only, it never reports a change.
options:
  version:
    description: PostgreSQL major to manage. Default is the newest installed.
    type: int
  cluster_name:
    description: Debian cluster name (the C(main) of C(/etc/postgresql/15/main)).
    type: str
    default: main
  data_dir:
    description: Data directory. Default from the layout (Debian reads C(data_directory) from postgresql.conf).
    type: path
  config_dir:
    description: Directory of postgresql.conf and pg_hba.conf. Default C(/etc/postgresql/N/cluster) on Debian,
      the data directory elsewhere.
    type: path
  bin_dir:
    description: Directory of the server binaries.
    type: path
  service:
    description: systemd unit of the server. Default C(postgresql@N-cluster) on Debian, C(postgresql-N) elsewhere.
    type: str
  socket_dir:
    description: Unix socket directory of the server.
    type: path
  port:
    description: Port of the server. Default from postgresql.auto.conf, then postgresql.conf, then 5432.
    type: int
  os_user:
    description: OS user the server runs as.
    type: str
    default: postgres
attributes:
  check_mode:
    description: Runs the same in check mode (it only reads).
    support: full
  diff_mode:
    description: Nothing to show; it never changes anything.
    support: none
requirements:
  - psycopg >= 3.1 for the live facts (optional)
"""

EXAMPLES = r"""
- name: Gather the facts every later task decides from
  pgrepl.streaming.node_facts:
  become: true
  register: node

- name: A custom layout (Postgres Pro 1C)
  pgrepl.streaming.node_facts:
    version: 16
    data_dir: /var/lib/pgpro/1c-16/data
    bin_dir: /opt/pgpro/1c-16/bin
    service: postgrespro-1c-16
"""

RETURN = r"""
layout:
  description: family, major, cluster_name, data_dir, config_dir, conf_file, hba_file, bin_dir, service,
    socket_dir, port, os_user, os_user_home.
  returned: always
  type: dict
psycopg:
  description: Whether psycopg 3 can be imported on the host.
  returned: always
  type: bool
data_dir_state:
  description: C(missing), C(empty), C(pgdata) (a PostgreSQL data directory), C(config) (looks like a config
    directory), C(other) (anything else).
  returned: always
  type: str
data_dir_facts:
  description: What the data directory says (see M(pgrepl.streaming.replication_info)); null unless pgdata.
  returned: always
  type: dict
addresses:
  description: The host's global IPv4 addresses; the first is on the interface of the default route (what
    the roles use for C(pgrepl_address) when it is not set).
  returned: always
  type: list
  elements: str
service_enabled:
  description: Whether C(systemctl is-enabled) says the service starts at boot; null without systemctl.
  returned: always
  type: bool
running:
  description: Whether a live postmaster owns the data directory.
  returned: always
  type: bool
server:
  description: The live facts of M(pgrepl.streaming.replication_info); null when psycopg is missing or the
    server is not running.
  returned: always
  type: dict
"""

import os

from ansible_collections.pgrepl.streaming.plugins.module_utils._connection import PSYCOPG_IMPORT_ERROR
from ansible_collections.pgrepl.streaming.plugins.module_utils._datadir import read_data_dir
from ansible_collections.pgrepl.streaming.plugins.module_utils._info import replication_info
from ansible_collections.pgrepl.streaming.plugins.module_utils._layout import (
    derive_layout,
    installed_majors,
    os_family,
    os_user_home,
)
from ansible_collections.pgrepl.streaming.plugins.module_utils._module import build_module, run

ARGUMENT_SPEC = {
    "version": {"type": "int"},
    "cluster_name": {"type": "str", "default": "main"},
    "data_dir": {"type": "path"},
    "config_dir": {"type": "path"},
    "bin_dir": {"type": "path"},
    "service": {"type": "str"},
    "socket_dir": {"type": "path"},
    "port": {"type": "int"},
    "os_user": {"type": "str", "default": "postgres"},
}


def data_dir_state(path: str) -> str:
    """How the data directory looks from the outside."""
    if not os.path.exists(path):
        return "missing"
    if not os.path.isdir(path):
        return "other"
    names = set(os.listdir(path))
    if not names:
        return "empty"
    if "PG_VERSION" in names and "global" in names:
        return "pgdata"
    if names & {"postgresql.conf", "pg_hba.conf"}:
        return "config"
    return "other"


def ipv4_addresses(module) -> list:
    """Global IPv4 addresses, the default route's interface first (read with ip(8); no traffic is sent)."""
    rc, routes, _err = module.run_command(["ip", "-4", "route", "show", "default"])
    default_dev = ""
    if rc == 0 and " dev " in routes:
        default_dev = routes.split(" dev ", 1)[1].split()[0]
    rc, out, _err = module.run_command(["ip", "-4", "-o", "addr", "show", "scope", "global"])
    found = []
    for line in out.splitlines() if rc == 0 else []:
        fields = line.split()
        if "inet" in fields:
            address = fields[fields.index("inet") + 1].split("/")[0]
            found.append((fields[1] != default_dev, address))
    return [address for _not_default, address in sorted(found, key=lambda item: item[0])]


def service_enabled(module, service: str) -> bool | None:
    """Whether systemd starts the service at boot (None without systemctl): lets the roles skip a no-op task."""
    systemctl = module.get_bin_path("systemctl")
    if not systemctl or not service:
        return None
    rc, _out, _err = module.run_command([systemctl, "is-enabled", service])
    return rc == 0


def gather(module) -> dict:
    params = module.params
    try:
        with open("/etc/os-release", encoding="utf-8") as handle:
            family = os_family(handle.read())
    except OSError:
        family = "other"
    layout = derive_layout(family, installed_majors(), params)
    layout["os_user"] = params["os_user"]
    layout["os_user_home"] = os_user_home(params["os_user"])
    state = data_dir_state(layout["data_dir"])
    result = {"changed": False, "layout": layout, "psycopg": PSYCOPG_IMPORT_ERROR is None,
              "data_dir_state": state, "data_dir_facts": None, "running": False, "server": None,
              "addresses": ipv4_addresses(module), "service_enabled": service_enabled(module, layout["service"])}
    if state == "pgdata":
        facts, warnings = read_data_dir(layout["data_dir"], layout["bin_dir"])
        result["data_dir_facts"] = facts
        result["running"] = bool(facts.get("postmaster_running"))
        for warning in warnings:
            module.warn(warning)
    if result["running"] and result["psycopg"]:
        info, warnings = replication_info({
            "login_user": params["os_user"], "login_unix_socket": layout["socket_dir"], "login_host": "",
            "login_port": layout["port"], "login_db": "postgres", "connect_timeout": 5,
            # Peer authentication as the server's OS user, also when the module runs as root.
            "login_os_user": params["os_user"]})
        for warning in warnings:
            module.warn(warning)
        info.pop("changed", None)
        result["server"] = info
    return result


def main() -> None:
    module = build_module(ARGUMENT_SPEC, with_connection=False)
    run(module, gather, needs_psycopg=False)


if __name__ == "__main__":
    main()
