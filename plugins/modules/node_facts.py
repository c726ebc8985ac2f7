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
extends_documentation_fragment:
  - pgrepl.streaming.node_layout
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

- name: The addresses the other nodes' names resolve to on this host (for its pg_hba.conf)
  pgrepl.streaming.node_facts:
    resolve: [db2.example.com, db3.example.com]
  register: node
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
  description:
    - The host's global IPv4 and IPv6 addresses (from C(ip -o addr show scope global)), best first; the roles
      use the first for C(pgrepl_address) when it is not set.
    - Never a link-local address (fe80::/10, 169.254.0.0/16) and never an IPv6 address that is temporary
      (privacy extensions), deprecated, tentative or failed duplicate address detection.
    - In this order, IPv4 on the interface of the IPv4 default route, IPv6 on the interface of the IPv6 default
      route, then the other IPv4 and IPv6 addresses. So a dual-stack host gives its IPv4 address first, a host
      whose only global address is IPv6 gives that. Empty without C(ip) (iproute2).
  returned: always
  type: list
  elements: str
  sample: [192.0.2.10, "2001:db8::10"]
resolved:
  description: Each name of O(resolve) with the addresses it resolves to on this host (IPv4 first, each once,
    without zone); an empty list for a name that did not resolve.
  returned: always
  type: dict
  sample: {db2.example.com: [192.0.2.11, "2001:db8::11"]}
resolve_errors:
  description: The names of O(resolve) that gave no address, with the resolver's reason (its own words, for
    people to read).
  returned: always
  type: dict
  sample: {db9.example.com: Name or service not known}
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

from ansible_collections.pgrepl.streaming.plugins.module_utils._module import build_module, run
from ansible_collections.pgrepl.streaming.plugins.module_utils._node import NODE_FACTS_OPTIONS, gather


def main() -> None:
    module = build_module(NODE_FACTS_OPTIONS, with_connection=False)
    run(module, gather, needs_psycopg=False)


if __name__ == "__main__":
    main()
