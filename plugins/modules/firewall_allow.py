#!/usr/bin/python
# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module pgrepl.streaming.firewall_allow."""

from __future__ import annotations

DOCUMENTATION = r'''
---
module: firewall_allow
short_description: Admit addresses to a TCP port in the host firewall that runs (firewalld or ufw), only adding rules
version_added: 0.1.0
author: pgrepl maintainers (@pgrepl)
description:
  - Makes sure every address of O(sources) may reach O(port) over TCP through the host firewall that runs,
    firewalld (C(firewall-cmd --state) says running) and/or ufw (C(ufw status) says active). The roles use it
    with O(sources) set to the other nodes' addresses and O(port) to the node's PostgreSQL port
    (C(pgrepl_firewall)).
  - Only adds. No rule of the host is removed or changed, so whatever the firewall admitted before (other
    applications, other clients) stays admitted; a source that no rule admits to the port stays refused.
  - A firewall that does not run is left alone, never started nor enabled. When none runs, the module reports
    that nothing is needed (C(changed=false), RV(firewalls) empty).
  - B(firewalld) gets one rich rule per source, C(rule family="ipv4" source address="10.0.0.2" port port="5432"
    protocol="tcp" accept), in the default zone and in every active zone (a zone with interfaces or sources), in
    the runtime and in the permanent configuration. A rich rule admits only its source to its port, so a zone
    that never sees the peer's traffic admits no one more; the default zone alone would miss a peer whose
    interface or source is bound to another zone. Sources are not bound to a zone of their own, since a source
    bound to a zone leaves the zone that handled its traffic before, and would lose what it reached there (ssh,
    other ports). The module never reloads firewalld (a reload drops the runtime-only rules of others).
  - B(ufw) gets C(ufw allow from SOURCE to any port PORT proto tcp comment COMMENT) per source, appended after
    the existing rules.
  - A source is already admitted where an existing rule of the same kind accepts it (or a network holding it, or
    any source) to the port (or a range holding it) over TCP, without a rate limit, destination or interface;
    then nothing is added for it there.
  - An explicit refusal of the administrator that comes first still wins (firewalld applies deny rich rules
    before accept rules; ufw's first matching rule decides).
  - The commands run in the C locale; firewalld's state is read from its exit code.
options:
  port:
    description:
      - The TCP port to open (1-65535), such as the PostgreSQL server's port.
    type: int
    required: true
  sources:
    description:
      - The addresses to admit, IPv4 or IPv6, each an address or a network (V(10.0.0.2), V(10.0.0.2/32),
        V(fd00::2/128), V(10.0.0.0/24)). A DNS name is refused, resolve it first (the roles pass the addresses
        the node's pg_hba.conf lists, names resolved on the node).
      - An empty list changes nothing.
    type: list
    elements: str
    required: true
  comment:
    description:
      - The comment of the ufw rules added (firewalld's rich rules carry none). One line without C(').
    type: str
    default: pgrepl.streaming
attributes:
  check_mode:
    support: full
    description: Reads the firewall's rules and reports exactly the rules a real run would add; adds nothing.
  diff_mode:
    support: full
    description: Before and after of the rules of each zone (runtime and permanent) and of ufw's added rules;
      the after holds the rules added.
notes:
  - Run it as root (C(become)); it needs C(firewall-cmd) or C(ufw) on the host only where they run.
  - The rules stay when a node leaves the cluster; remove them with C(firewall-cmd --remove-rich-rule) or
    C(ufw delete) (the roles do not remove them).
seealso:
  - name: firewalld rich language
    description: The rich rule syntax.
    link: https://firewalld.org/documentation/man-pages/firewalld.richlanguage.html
  - name: ufw
    description: Ubuntu's uncomplicated firewall.
    link: https://manpages.debian.org/stable/ufw/ufw.8.en.html
'''

EXAMPLES = r'''
- name: Let the other nodes reach this node's PostgreSQL port
  pgrepl.streaming.firewall_allow:
    port: 5432
    sources:
      - 10.20.0.5
      - 10.20.0.6
  become: true

- name: A whole subnet, IPv6
  pgrepl.streaming.firewall_allow:
    port: 5433
    sources: ["fd00:20::/64"]
    comment: replication subnet
  become: true
'''

RETURN = r'''
firewalls:
  description: The firewalls found running and handled (V(firewalld), V(ufw)); empty when none runs.
  returned: always
  type: list
  elements: str
  sample: [firewalld]
rules_added:
  description: The rules added (in check mode, that would be), each with where it went.
  returned: always
  type: list
  elements: str
  sample: ['firewalld zone public (runtime): rule family="ipv4" source address="10.20.0.5" port port="5432"
    protocol="tcp" accept']
sources:
  description: The sources as networks, an address without its C(/32) or C(/128), each once.
  returned: always
  type: list
  elements: str
  sample: [10.20.0.5, 10.20.0.6]
port:
  description: The port.
  returned: always
  type: int
  sample: 5432
msg:
  description: What was found and done, in a sentence.
  returned: always
  type: str
  sample: No firewall runs on this host (neither firewalld nor ufw is active)
duration_seconds:
  description: How long the module took.
  returned: always
  type: float
  sample: 0.4
'''

from ansible_collections.pgrepl.streaming.plugins.module_utils._firewall import FIREWALL_SPEC, run_firewall_allow
from ansible_collections.pgrepl.streaming.plugins.module_utils._module import module_from_spec, run


def main() -> None:
    module = module_from_spec(FIREWALL_SPEC)
    run(module, run_firewall_allow, needs_psycopg=False)


if __name__ == '__main__':
    main()
