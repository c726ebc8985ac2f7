# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The facts of one PostgreSQL host that every role decides from: layout, data directory, live server, addresses.

node_prepare returns them (after installing psycopg where it is missing, unless install is false: then it only
reads, like an _info module).
"""

from __future__ import annotations

import os

from ansible_collections.pgrepl.streaming.plugins.module_utils._address import (
    default_devices,
    detected_addresses,
    resolve_names,
)
from ansible_collections.pgrepl.streaming.plugins.module_utils._binaries import installed_majors
from ansible_collections.pgrepl.streaming.plugins.module_utils._connection import PSYCOPG_IMPORT_ERROR
from ansible_collections.pgrepl.streaming.plugins.module_utils._datadir import read_data_dir
from ansible_collections.pgrepl.streaming.plugins.module_utils._info import data_size, replication_info, tablespaces
from ansible_collections.pgrepl.streaming.plugins.module_utils._layout import (
    derive_layout,
    os_family,
)
from ansible_collections.pgrepl.streaming.plugins.module_utils._lease import LEASE_PATH
from ansible_collections.pgrepl.streaming.plugins.module_utils._module import ModuleSpec
from ansible_collections.pgrepl.streaming.plugins.module_utils._osuser import lookup_os_user
from ansible_collections.pgrepl.streaming.plugins.module_utils._systemd import unit_enabled
from ansible_collections.pgrepl.streaming.plugins.module_utils._tls import libpq_version

# node_prepare's options: where the layout is (documented in doc_fragments/node_layout.py), what to resolve, and
# whether to install psycopg first.
NODE_PREPARE_SPEC = ModuleSpec({
    "version": {"type": "int"},
    "cluster_name": {"type": "str", "default": "main"},
    "data_dir": {"type": "path"},
    "config_dir": {"type": "path"},
    "bin_dir": {"type": "path"},
    "service": {"type": "str"},
    "socket_dir": {"type": "path"},
    "port": {"type": "int"},
    "os_user": {"type": "str", "default": "postgres"},
    # The peers' DNS names: resolved here, where their connections arrive.
    "resolve": {"type": "list", "elements": "str", "default": []},
    "install": {"type": "bool", "default": True},
    "package": {"type": "str"},
    # The run's lease on this node (module_utils/_lease.py): taken before anything else, psycopg's install included.
    "lease": {"type": "str", "choices": ["none", "take", "release"], "default": "none"},
    "lease_path": {"type": "path", "default": LEASE_PATH},
    "lease_seconds": {"type": "int", "default": 10800},
    "lease_run": {"type": "dict"},
    "lease_break": {"type": "str"},
}, with_connection=False)


def host_family() -> str:
    """'debian', 'rhel' or 'other', from /etc/os-release."""
    try:
        with open("/etc/os-release", encoding="utf-8") as handle:
            return os_family(handle.read())
    except OSError:
        return "other"


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


def host_addresses(module) -> list[str]:
    """The host's usable global addresses, best first (see _address.detected_addresses); read with ip(8), no
    traffic is sent. Empty without ip(8)."""
    ip = module.get_bin_path("ip")
    if not ip:
        return []
    rc, out, _err = module.run_command([ip, "-o", "addr", "show", "scope", "global"])
    if rc != 0:
        return []
    defaults = {}
    for family in ("-4", "-6"):
        rc, routes, _err = module.run_command([ip, family, "route", "show", "default"])
        defaults[family] = default_devices(routes) if rc == 0 else []
    return detected_addresses(out, defaults["-4"], defaults["-6"])


def gather(module) -> dict:
    """Layout, data directory facts and (with psycopg and a running server) the live replication facts."""
    params = module.params
    layout = derive_layout(host_family(), installed_majors(), params)
    layout["os_user"] = params["os_user"]
    layout["os_user_home"] = lookup_os_user(params["os_user"]).home
    state = data_dir_state(layout["data_dir"])
    result = {"changed": False, "layout": layout, "psycopg": PSYCOPG_IMPORT_ERROR is None,
              "data_dir_state": state, "data_dir_facts": None, "running": False, "server": None,
              "data_size": None, "tablespaces": None,
              "addresses": host_addresses(module),
              # pgrepl_tls: whether this host's connections can verify an IP address against a certificate.
              "libpq_version": libpq_version(),
              # Whether systemd starts the service at boot: lets the roles skip a no-op task.
              "service_enabled": unit_enabled(layout["service"]) if layout["service"] else None}
    result["resolved"], result["resolve_errors"] = resolve_names(params.get("resolve") or [])
    if state == "pgdata":
        facts, warnings = read_data_dir(layout["data_dir"], layout["bin_dir"])
        result["data_dir_facts"] = facts
        result["running"] = bool(facts.get("postmaster_running"))
        for warning in warnings:
            module.warn(warning)
    if result["running"] and result["psycopg"]:
        login = {
            "login_user": params["os_user"], "login_unix_socket": layout["socket_dir"], "login_host": "",
            "login_port": layout["port"], "login_db": "postgres", "connect_timeout": 5,
            # Peer authentication as the server's OS user, also when the module runs as root.
            "login_os_user": params["os_user"]}
        info, warnings = replication_info(login)
        for warning in warnings:
            module.warn(warning)
        info.pop("changed", None)
        result["server"] = info
        if info.get("role") == "primary":
            # What a standby's copy of it needs on disk (standby_clone's free space check); a primary only, since
            # pg_database_size reads every file of every database.
            result["data_size"], warnings = data_size(login)
            # Where a standby's copy must place each tablespace (standby_clone's tablespaces).
            result["tablespaces"], more = tablespaces(login)
            for warning in warnings + more:
                module.warn(warning)
    return result
