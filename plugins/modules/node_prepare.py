#!/usr/bin/python
# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""psycopg 3 installed where it is missing, then the node facts: what a fresh host needs, in one call."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: node_prepare
short_description: Install psycopg 3 on a PostgreSQL host when it is missing, then return its node facts
version_added: 0.1.0
author: pgrepl maintainers (@pgrepl)
description:
  - The first call of the pgrepl roles on a host. When psycopg 3 cannot be imported, installs the distribution's
    package (C(python3-psycopg) on the Debian family, C(python3-psycopg3) on the RHEL family) with C(apt-get),
    C(dnf) or C(yum), then returns the facts every later task decides from - where the host keeps PostgreSQL
    (data dir, config dir, binaries, service, socket, port, from its distribution family and installed major,
    every part overridable), what the data directory says (system identifier, timeline, cluster state,
    standby.signal, running postmaster, read without the server) and, when the server runs, the live
    replication facts of M(pgrepl.streaming.replication_info). One round trip instead of three (facts, install,
    facts again).
  - apt's package index is refreshed only when apt does not know the package, or when the install fails on a
    stale index. The package manager is called directly, so no python3-apt is needed or installed.
  - With psycopg already importable it changes nothing. With O(install=false) it only reads, whatever is
    installed (the one read-only entry point, what an C(_info) module would be; the status playbook gathers its
    facts so). Without psycopg the live server facts are then left out.
  - With O(lease=take) it first takes the run's lease of the host (before the install too), so two
    ansible-playbook runs never work on one node at once; see O(lease).
options:
  install:
    description: Install the package when psycopg 3 is missing. V(false) only reports the facts and never
      changes anything.
    type: bool
    default: true
  package:
    description:
      - Package that provides psycopg 3 to the Python that runs the modules. Default by family
        (C(python3-psycopg) on Debian/Ubuntu/Astra, C(python3-psycopg3) on RHEL and its rebuilds, from EPEL or
        PGDG). Required on other families.
    type: str
  resolve:
    description:
      - DNS names to resolve on this host (the other nodes' C(pgrepl_address) when it is a name). Each gives
        every A and AAAA address this host's resolver (C(/etc/hosts), DNS, whatever nsswitch says) returns, in
        RV(resolved); a name that gives none is in RV(resolve_errors) with the resolver's reason. The module
        never fails on a name (the roles' preflight refuses it, naming the node).
      - Resolved here, where the connections arrive, because pg_hba.conf of this host must list the addresses
        the peers connect from as this host sees them. The names are resolved in parallel.
    type: list
    elements: str
    default: []
  lease:
    description:
      - V(take) takes this ansible-playbook run's lease of the host (the file O(lease_path)) before anything else,
        or renews it when the run holds it already. Another run's live lease fails the task with nothing
        changed, naming that run (controller, user, PID, playbook, since) in the message and in RV(lease_holder).
        A lease is free when it was released, when its expiry passed, when its run was started on this same
        controller and its ansible-playbook process has ended (checked on the controller, then taken over with a
        warning), or when O(lease_break) names its run.
      - V(release) lets go of this run's lease and does nothing else (it returns only RV(lease)); a lease of
        another run is left alone, with a warning.
      - V(none) leaves the lease alone.
      - The run is one ansible-playbook process; the action plugin fills in its identity on the controller
        (controller host name, the PID of ansible-playbook and that process's start). Taking, renewing and
        releasing the lease are never reported as a change. In check mode the lease is only read, and another run's
        live lease is a warning there.
    type: str
    choices: [none, take, release]
    default: none
  lease_path:
    description: The lease file on the host.
    type: path
    default: /var/lib/pgrepl/run.lease
  lease_seconds:
    description: How long a lease taken or renewed now lasts (at least 60). A run of another controller can take
      it over only after that. The node role passes C(pgrepl_clone_timeout + pgrepl_rewind_timeout + 3600).
    type: int
    default: 10800
  lease_run:
    description: The identity of the run (C(run_id), C(controller), C(user), C(pid), C(pid_start), C(playbook)).
      Filled in by the action plugin; not to be set.
    type: dict
  lease_break:
    description: The run id of a lease to take over although it is live (a run that is gone on another
      controller). The action plugin fills it from the variable C(pgrepl_break_lease).
    type: str
extends_documentation_fragment:
  - pgrepl.streaming.node_layout
attributes:
  check_mode:
    description: Installs nothing; reports the install a real run would make as a change (RV(installed)), with
      the facts that can be read without psycopg.
    support: full
  diff_mode:
    description: Nothing to show beyond RV(installed).
    support: none
notes:
  - Needs root (C(become=true)) when it installs.
  - Needs root (C(become=true)) for the lease file under C(/var/lib/pgrepl).
  - After the install the module runs again in a new Python process (as M(ansible.builtin.apt) does after
    installing python3-apt), so the facts it returns are read with psycopg.
seealso:
  - module: pgrepl.streaming.replication_info
"""

EXAMPLES = r"""
- name: psycopg where it is missing, and the facts every later task decides from
  pgrepl.streaming.node_prepare:
  become: true
  register: node

- name: A host whose psycopg comes from another package
  pgrepl.streaming.node_prepare:
    package: python3.11-psycopg3
    version: 16
    data_dir: /var/lib/pgpro/1c-16/data
    bin_dir: /opt/pgpro/1c-16/bin
    service: postgrespro-1c-16
  become: true

- name: Facts of a node, under this run's lease (refused while another run works on it)
  pgrepl.streaming.node_prepare:
    lease: take
  become: true
  register: node

- name: At the end of the playbook, let go of the lease
  pgrepl.streaming.node_prepare:
    lease: release
    lease_path: "{{ node.lease.path }}"
  become: true
  when: node.lease.state | default('') in ['taken', 'renewed']

- name: Only read (installs nothing, changes nothing), the other nodes' names resolved here
  pgrepl.streaming.node_prepare:
    install: false
    resolve: [db2.example.com, db3.example.com]
  register: node
"""

RETURN = r"""
lease:
  description: With O(lease) take or release, the lease file's C(path), its C(state) (C(taken), C(renewed),
    C(checked) in check mode, C(released), C(free), C(other)), what was found (C(decision) - C(free), C(same),
    C(expired), C(broken), C(held)) and the C(holder) record (run_id, controller, user, pid, pid_start, playbook,
    since, renewed, expires); C(replaced) is the record of a run whose lease was taken over. Null with
    O(lease=none).
  returned: always
  type: dict
lease_holder:
  description: When the task fails because another run holds the lease, that run's record.
  returned: failure
  type: dict
installed:
  description: The package installed by this call (in check mode, the one a real run would install); empty
    when psycopg was already there or O(install=false).
  returned: unless O(lease=release)
  type: list
  elements: str
  sample: [python3-psycopg]
install_steps:
  description: The package manager commands run (C(apt-get update) only when it was needed).
  returned: unless O(lease=release)
  type: list
  elements: str
install_seconds:
  description: How long the install took (0 when nothing was installed).
  returned: unless O(lease=release)
  type: float

layout:
  description: family, major, cluster_name, data_dir, config_dir, conf_file, hba_file, bin_dir, service,
    socket_dir, port, os_user, os_user_home.
  returned: unless O(lease=release)
  type: dict
psycopg:
  description: Whether psycopg 3 can be imported on the host.
  returned: unless O(lease=release)
  type: bool
data_dir_state:
  description: C(missing), C(empty), C(pgdata) (a PostgreSQL data directory), C(config) (looks like a config
    directory), C(other) (anything else).
  returned: unless O(lease=release)
  type: str
data_dir_facts:
  description: What the data directory says (see M(pgrepl.streaming.replication_info)); null unless pgdata.
  returned: unless O(lease=release)
  type: dict
addresses:
  description:
    - The host's global IPv4 and IPv6 addresses (from C(ip -o addr show scope global)), best first; the roles
      use the first for C(pgrepl_address) when it is not set.
    - Never a link-local address (fe80::/10, 169.254.0.0/16) and never an IPv6 address that is temporary
      (privacy extensions), deprecated, tentative or failed duplicate address detection.
    - In this order, IPv4 on the interface of the IPv4 default route, IPv6 on the interface of the IPv6 default
      route, then the other IPv4 and IPv6 addresses. So a dual-stack host gives its IPv4 address first, a host
      whose only global address is IPv6 gives that. Empty without C(ip) (iproute2).
  returned: unless O(lease=release)
  type: list
  elements: str
  sample: [192.0.2.10, "2001:db8::10"]
resolved:
  description: Each name of O(resolve) with the addresses it resolves to on this host (IPv4 first, each once,
    without zone); an empty list for a name that did not resolve.
  returned: unless O(lease=release)
  type: dict
  sample: {db2.example.com: [192.0.2.11, "2001:db8::11"]}
resolve_errors:
  description: The names of O(resolve) that gave no address, with the resolver's reason (its own words, for
    people to read).
  returned: unless O(lease=release)
  type: dict
  sample: {db9.example.com: Name or service not known}
libpq_version:
  description:
    - What PQlibVersion returns for the libpq the host's dynamic loader finds (the one its WAL receiver,
      pg_basebackup and pg_rewind use on Debian), such as V(170004); null when there is none. The roles refuse
      C(pgrepl_tls) with C(sslmode=verify-full) to a node addressed by IP from a host whose libpq is older than 15.
  returned: unless O(lease=release)
  type: int
service_enabled:
  description: Whether C(systemctl is-enabled) says the service starts at boot; null without systemctl.
  returned: unless O(lease=release)
  type: bool
running:
  description: Whether a live postmaster owns the data directory.
  returned: unless O(lease=release)
  type: bool
server:
  description: The live facts of M(pgrepl.streaming.replication_info); null when psycopg is missing or the
    server is not running.
  returned: unless O(lease=release)
  type: dict
data_size:
  description:
    - Bytes of data of a running primary, what a copy of it with pg_basebackup needs before its WAL, near
      enough - the sum of C(pg_database_size) over every database (every tablespace included) and the size of
      the shared catalogs (C(pg_tablespace_size) of C(pg_global)). The WAL the primary keeps in C(pg_wal) is not
      counted (a copy brings only what is written while it runs).
    - The standby role passes it to M(pgrepl.streaming.standby_clone)
      (O(pgrepl.streaming.standby_clone#module:data_size)), which checks the free space before it stops anything.
    - Null on a standby, without psycopg, or when the server is not running.
  returned: unless O(lease=release)
  type: int
  sample: 1073741824
tablespaces:
  description:
    - The tablespaces of a running primary other than C(pg_default) and C(pg_global) - C(name), C(location)
      (C(pg_tablespace_location), a relative C(pg_tblspc/<oid>) for an in-place tablespace) and C(size) in bytes
      (C(pg_tablespace_size)).
    - The standby role passes them to M(pgrepl.streaming.standby_clone)
      (O(pgrepl.streaming.standby_clone#module:tablespaces)), which prepares a directory for each before the copy.
    - Null on a standby, without psycopg, or when the server is not running.
  returned: unless O(lease=release)
  type: list
  elements: dict
  sample: [{"name": "ts1", "location": "/srv/ts1", "size": 8192}]
"""

import json
import os
import sys
import time

from ansible.module_utils.common.respawn import has_respawned, respawn_module

from ansible_collections.pgrepl.streaming.plugins.module_utils._connection import PSYCOPG_IMPORT_ERROR
from ansible_collections.pgrepl.streaming.plugins.module_utils._errors import PgreplError
from ansible_collections.pgrepl.streaming.plugins.module_utils._lease import LeaseHeld, path_problem, release, take
from ansible_collections.pgrepl.streaming.plugins.module_utils._module import module_from_spec, run
from ansible_collections.pgrepl.streaming.plugins.module_utils._node import NODE_PREPARE_SPEC, gather, host_family
from ansible_collections.pgrepl.streaming.plugins.module_utils._packages import (
    install_package,
    package_tool,
    psycopg_package,
)

# Tells the process started after the install what the first one installed (it inherits the environment).
INSTALLED_MARK = "PGREPL_NODE_PREPARE_INSTALLED"


def lease_step(module, done: dict) -> tuple[dict | None, list[str]]:
    """The run's lease on this node, taken (or renewed) before anything changes; None without one. A live holder
    of another run fails the task here, naming it (lease_holder), with nothing changed."""
    params = module.params
    if params["lease"] == "none":
        return None, []
    run_id = (params["lease_run"] or {}).get("run_id") or ""
    if params["lease"] == "release":
        lease, warnings = release(params["lease_path"], run_id, module.check_mode)
    else:
        try:
            lease, warnings = take(params["lease_path"], params["lease_run"] or {}, params["lease_seconds"],
                                   params["lease_break"], module.check_mode)
        except LeaseHeld as exc:
            module.fail_json(msg=str(exc), lease_holder=exc.holder)
        # Said once: the process started after an install renews what the first one took.
        warnings = warnings or done.get("lease_warnings", [])
    for warning in warnings:
        module.warn(warning)
    return lease, warnings


def body(module) -> dict:
    params = module.params
    done = json.loads(os.environ.get(INSTALLED_MARK) or "{}")
    if params["package"]:
        psycopg_package(host_family(), params["package"])  # a bad name is refused even when nothing is installed
    if params["lease_seconds"] < 60:
        raise PgreplError(f"lease_seconds: {params['lease_seconds']} is too short (at least 60)")
    problem = path_problem(params["lease_path"]) if params["lease"] != "none" else None
    if problem:
        raise PgreplError(f"{problem} (the lease file)")
    lease, lease_warnings = lease_step(module, done)
    if params["lease"] == "release":
        return {"changed": False, "lease": lease}  # bookkeeping of the run, not a change of the node
    if PSYCOPG_IMPORT_ERROR is None or not params["install"]:
        result = gather(module)
        result.update(changed=bool(done), installed=done.get("installed", []), install_steps=done.get("steps", []),
                      install_seconds=done.get("seconds", 0.0), lease=lease)
        return result
    package = psycopg_package(host_family(), params["package"])
    if module.check_mode:
        result = gather(module)
        result.update(changed=True, installed=[package], install_steps=[], install_seconds=0.0, lease=lease)
        return result
    if has_respawned():
        raise PgreplError(f"package: {package} is installed, but {sys.executable} still cannot import psycopg 3; "
                          "set ansible_python_interpreter to the Python it was installed for, or package "
                          "(pgrepl_psycopg_package) to the one for this Python")
    started = time.monotonic()
    tool = package_tool(host_family(), module.get_bin_path)
    steps = install_package(tool, package, lambda cmd, env: module.run_command(cmd, environ_update=env))
    os.environ[INSTALLED_MARK] = json.dumps({"installed": [package], "steps": steps,
                                             "seconds": round(time.monotonic() - started, 2),
                                             "lease_warnings": lease_warnings})
    respawn_module(sys.executable)
    return {}  # not reached: respawn_module exits with the new process's result


def main() -> None:
    module = module_from_spec(NODE_PREPARE_SPEC)
    run(module, body, needs_psycopg=False)


if __name__ == "__main__":
    main()
