# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Node addresses (pgrepl_address): parse and normalise, refuse, pg_hba fields, detection, resolution, filters."""

from __future__ import annotations

import re
import socket
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible.errors import AnsibleFilterError

from ansible_collections.pgrepl.streaming.plugins.filter.address import (
    FilterModule,
    address_names,
    address_problems,
    address_resolve_problems,
    hba_entries,
    node_address,
)
from ansible_collections.pgrepl.streaming.plugins.module_utils._address import (
    AddressError,
    cluster_problems,
    default_devices,
    detected_addresses,
    dns_names,
    hba_fields,
    parse_node_address,
    resolve_names,
    resolve_problems,
)
from ansible_collections.pgrepl.streaming.plugins.module_utils._hba import build_entry
from ansible_collections.pgrepl.streaming.plugins.module_utils._passfile import render_entry

FILTER_DIR = Path(__file__).resolve().parents[4] / "plugins" / "filter"


# --- what is accepted, and how it is written -----------------------------------------------------------------

@pytest.mark.parametrize(("value", "kind", "host", "hba"), [
    ("10.0.0.5", "ipv4", "10.0.0.5", "10.0.0.5/32"),
    (" 10.0.0.5\n", "ipv4", "10.0.0.5", "10.0.0.5/32"),
    ("127.0.0.1", "ipv4", "127.0.0.1", "127.0.0.1/32"),  # one machine, several ports: a lab
    ("2001:db8::5", "ipv6", "2001:db8::5", "2001:db8::5/128"),
    ("2001:DB8:0:0::5", "ipv6", "2001:db8::5", "2001:db8::5/128"),  # canonical: what libpq and Docker print
    ("[2001:db8::5]", "ipv6", "2001:db8::5", "2001:db8::5/128"),  # as in a URL
    ("fd00:d2:15::3", "ipv6", "fd00:d2:15::3", "fd00:d2:15::3/128"),
    ("::1", "ipv6", "::1", "::1/128"),
    ("64:ff9b::192.0.2.1", "ipv6", "64:ff9b::c000:201", "64:ff9b::c000:201/128"),
    ("fe80::1%eth0", "ipv6", "fe80::1%eth0", "fe80::1/128"),  # pg_hba matches the address, the zone is libpq's
    ("[fe80::1%ens3]", "ipv6", "fe80::1%ens3", "fe80::1/128"),
    ("db1.example.com", "name", "db1.example.com", None),
    ("db1.example.com.", "name", "db1.example.com.", None),
    ("DB1.Example.com", "name", "DB1.Example.com", None),
    ("pgrepl-addr-n1", "name", "pgrepl-addr-n1", None),
    ("localhost", "name", "localhost", None),
    ("node_1.internal", "name", "node_1.internal", None),
    ("1e100.net", "name", "1e100.net", None),
])
def test_accepted_addresses(value: str, kind: str, host: str, hba: str | None) -> None:
    address = parse_node_address(value)
    assert (address.kind, address.host) == (kind, host)
    assert node_address(value) == host
    assert node_address(host) == host  # normalising twice changes nothing
    if hba is not None:
        assert hba_fields(address) == [hba]
        # What the pg_hba module makes of it: one host.
        info = build_entry({"contype": "host", "databases": ["replication"], "users": ["r"], "address": hba,
                            "method": "scram-sha-256"}).address_info
        assert info is not None and info.kind == "net" and info.network is not None
        assert info.network.num_addresses == 1 and not info.host_bits


@pytest.mark.parametrize(("value", "says"), [
    ("", "is empty"),
    ("   ", "is empty"),
    (None, "is empty"),
    ("2001:db8::/32", "is a network, not one host's address"),
    ("10.0.0.0/24", "is a network, not one host's address"),
    ("10.0.0.5/24", "has a /24 prefix: write the address alone, 10.0.0.5"),
    ("10.0.0.5/32", "has a /32 prefix: write the address alone, 10.0.0.5"),
    ("2001:db8::5/128", "has a /128 prefix: write the address alone, 2001:db8::5"),
    ("[2001:db8::5]/64", "has a /64 prefix: write the address alone, 2001:db8::5"),
    ("db1/32", "is not an IP address or a DNS name"),
    ("fe80::1", "is a link-local address (fe80::/10)"),
    ("[fe80::1]", "is a link-local address"),
    ("fd00::1%eth0", "a zone (%eth0) only goes with a link-local address"),
    ("fe80::1%", "the zone after '%' must be"),
    ("fe80::1%eth 0", "the zone after '%' must be"),
    ("2001:db8::g", "is not a valid IPv6 address"),
    ("2001:db8:::5", "is not a valid IPv6 address"),
    ("::ffff:10.0.0.5", "write the IPv4 address 10.0.0.5"),
    ("::", "unspecified"),
    ("0.0.0.0", "unspecified"),
    ("255.255.255.255", "broadcast"),
    ("ff02::1", "multicast"),
    ("224.0.0.1", "multicast"),
    ("10.0.0.256", "is not a valid IPv4 address"),
    ("10.1", "is not a valid IPv4 address"),
    ("010.0.0.1", "is not a valid IPv4 address"),
    ("10.0.0.1.5", "is not a valid IPv4 address"),
    ("db.123", "its last label is a number"),
    ("db 1", "is not an IP address or a DNS name"),
    ("db1,db2", "is not an IP address or a DNS name"),
    ("-db1.example.com", "is not an IP address or a DNS name"),
    ("db1..example.com", "is not an IP address or a DNS name"),
    ("host=evil", "is not an IP address or a DNS name"),
    ("db1.example.com:5432", "looks like host:port: write the address alone (the port is pgrepl_port)"),
    ("10.0.0.5:5432", "looks like host:port"),
    ("a" * 64 + ".example.com", "is not an IP address or a DNS name"),
    (".".join(["a" * 60] * 5), "is not an IP address or a DNS name"),
    ("dbé.example.com", "is not an IP address or a DNS name"),
    (["10.0.0.5"], "is a list"),
    (True, "is a bool"),
])
def test_refused_addresses_say_why(value: Any, says: str) -> None:
    with pytest.raises(AddressError, match=re.escape(says)):
        parse_node_address(value)


def test_a_refused_value_is_quoted_as_written_and_normalize_leaves_it_alone() -> None:
    assert node_address(" 10.0.0.5/24 ") == "10.0.0.5/24"
    assert node_address(None) == "" and node_address("") == ""
    problems = address_problems({"n1": "10.0.0.5/24"})
    assert problems == ["n1: pgrepl_address '10.0.0.5/24' has a /24 prefix: write the address alone, 10.0.0.5 "
                        "(the roles add /32 for pg_hba)"]


# --- the checks of the preflight ----------------------------------------------------------------------------

def test_cluster_problems_name_each_node_and_its_value() -> None:
    problems = cluster_problems({"n1": "10.0.0.1", "n2": "", "n3": "2001:db8::/32", "n4": "db4.example.com"})
    assert problems[0].startswith("n2: no pgrepl_address, and the host has no global IPv4 or IPv6 address")
    assert problems[1].startswith("n3: pgrepl_address '2001:db8::/32' is a network")
    assert len(problems) == 2


def test_before_detection_an_empty_address_is_not_a_problem_yet() -> None:
    nodes = {"n1": "", "n2": None, "n3": "2001:db8::/32", "n4": "10.0.0.4"}
    assert address_problems(nodes, allow_empty=True) == [
        "n3: pgrepl_address '2001:db8::/32' is a network, not one host's address: write the node's own address "
        "(the roles add /128 for pg_hba)"]
    assert len(address_problems(nodes)) == 3


def test_a_mix_of_ipv4_and_ipv6_literals_is_refused() -> None:
    problems = cluster_problems({"n1": "10.0.0.1", "n2": "2001:db8::2", "n3": "10.0.0.3", "n4": "db4"})
    assert problems == ["the nodes' addresses mix IPv4 (n1 (10.0.0.1), n3 (10.0.0.3)) and IPv6 (n2 (2001:db8::2)): "
                        "a node connects to an IPv6 peer from its own IPv6 address, which that peer's pg_hba does "
                        "not list; give every node an address of one family (or DNS names that resolve to both)"]
    assert cluster_problems({"n1": "2001:db8::1", "n2": "2001:DB8::2", "n3": "db3"}) == []
    assert cluster_problems({"n1": "10.0.0.1", "n2": "db2.example.com"}) == []


def test_resolve_problems_name_the_node_the_value_and_where() -> None:
    nodes = {"n2": "db2.example.com", "n3": "db3.example.com", "n4": "10.0.0.4", "n5": "bad value"}
    resolved = {"db2.example.com": ["10.0.0.2"], "db3.example.com": []}
    errors = {"db3.example.com": "Name or service not known"}
    assert resolve_problems(nodes, resolved, errors, "n1") == [
        "n3: pgrepl_address 'db3.example.com' does not resolve on n1 (Name or service not known): n1's pg_hba.conf "
        "needs the addresses it connects from; fix DNS or /etc/hosts there, or set an IP address"]
    # A name the module was not asked about counts as unresolved.
    assert "n2: pgrepl_address 'db2.example.com' does not resolve on n1 (no address)" in \
        address_resolve_problems(nodes, {}, None, "n1")[0]
    assert address_resolve_problems({"n4": "10.0.0.4"}, None) == []


def test_dns_names_are_what_a_node_resolves() -> None:
    values = ["10.0.0.1", "db2.example.com", "", "2001:db8::3", " db2.example.com ", "db4", "bad value", None,
              "fe80::1%eth0"]
    assert dns_names(values) == ["db2.example.com", "db4"]
    assert address_names(values) == ["db2.example.com", "db4"]
    assert address_names({"n2": "db2", "n3": "10.0.0.3"}) == ["db2"]
    with pytest.raises(AnsibleFilterError, match="a list of addresses is expected"):
        address_names("db2")


# --- pg_hba entries -----------------------------------------------------------------------------------------

ENTRY = {"path": "/etc/postgresql/15/main/pg_hba.conf", "contype": "host", "databases": ["replication"],
         "users": ["replicator"], "method": "scram-sha-256", "reload": True}


def test_hba_entries_for_every_kind_of_address() -> None:
    nodes = {"n2": "10.0.0.2", "n3": "2001:DB8::3", "n4": "db4.example.com"}
    resolved = {"db4.example.com": ["2001:db8::4", "10.0.0.4", "10.0.0.4", "fe80::4%eth0"]}
    entries = hba_entries(nodes, resolved, ENTRY)
    assert [(e["address"], e["comment"]) for e in entries] == [
        ("10.0.0.2/32", "pgrepl.streaming: n2"),
        ("2001:db8::3/128", "pgrepl.streaming: n3"),
        # A name: every address it resolves to here, once each, IPv4 first, without a zone.
        ("10.0.0.4/32", "pgrepl.streaming: n4"),
        ("2001:db8::4/128", "pgrepl.streaming: n4"),
        ("fe80::4/128", "pgrepl.streaming: n4"),
    ]
    assert all({k: v for k, v in e.items() if k not in ("address", "comment")} == ENTRY for e in entries)
    for item in entries:  # every one is an entry the pg_hba module accepts as is
        build_entry(item)


def test_hba_entries_keep_the_ipv4_entries_of_earlier_releases() -> None:
    # An IPv4 node keeps exactly the entry it had (address/32, same comment): a converged cluster stays changed=0.
    assert hba_entries({"db2": "192.0.2.12"}, {}, ENTRY) == [
        {**ENTRY, "address": "192.0.2.12/32", "comment": "pgrepl.streaming: db2"}]


def test_nodes_sharing_an_address_share_its_entry() -> None:
    # Three servers on one machine (ports differ): one entry, naming them all, so no run rewrites another's.
    entries = hba_entries({"n2": "127.0.0.1", "n3": "127.0.0.1", "n4": "db4"}, {"db4": ["127.0.0.1", "::1"]}, ENTRY)
    assert [(e["address"], e["comment"]) for e in entries] == [
        ("127.0.0.1/32", "pgrepl.streaming: n2, n3, n4"), ("::1/128", "pgrepl.streaming: n4")]


def test_hba_entries_with_hostnames_write_the_name() -> None:
    entries = hba_entries({"n4": "db4.example.com", "n2": "10.0.0.2"}, {}, ENTRY, hostnames=True)
    assert [e["address"] for e in entries] == ["db4.example.com", "10.0.0.2/32"]
    build_entry(entries[0])


def test_hba_entries_refuse_what_the_preflight_refuses() -> None:
    with pytest.raises(AnsibleFilterError, match=r"hba_entries: n2: pgrepl_address '2001:db8::/32' is a network"):
        hba_entries({"n2": "2001:db8::/32"}, {}, ENTRY)
    with pytest.raises(AnsibleFilterError, match=r"n4: pgrepl_address 'db4' did not resolve to any address here"):
        hba_entries({"n4": "db4"}, {"db4": []}, ENTRY)
    # A removal finds nothing for a name that no longer resolves.
    assert hba_entries({"n4": "db4"}, {}, {**ENTRY, "state": "absent"}, strict=False) == []
    with pytest.raises(AnsibleFilterError, match="resolved must be a dict"):
        hba_entries({"n4": "db4"}, ["db4"], ENTRY)


def test_passfile_and_conninfo_host_of_an_ipv6_node() -> None:
    # The passfile's host field is the conninfo host with ':' escaped (libpq compares the unescaped text).
    host = node_address("2001:DB8::5")
    key = ((host, False), ("5432", False), ("replication", False), ("replicator", False))
    assert render_entry(key, "pw") == "2001\\:db8\\:\\:5:5432:replication:replicator:pw"


# --- detection on the host ----------------------------------------------------------------------------------

DUAL_STACK = """\
1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever
2: eth0    inet 172.18.0.2/16 brd 172.18.255.255 scope global eth0\\       valid_lft forever preferred_lft forever
2: eth0    inet6 2001:db8::1234/64 scope global temporary dynamic \\       valid_lft 86000sec preferred_lft 14000sec
2: eth0    inet6 2001:db8::5/64 scope global dynamic mngtmpaddr \\       valid_lft 86000sec preferred_lft 14000sec
2: eth0    inet6 2001:db8::99/64 scope global deprecated dynamic \\       valid_lft 86000sec preferred_lft 0sec
2: eth0    inet6 2001:db8::77/64 scope global tentative \\       valid_lft forever preferred_lft forever
2: eth0    inet6 2001:db8::66/64 scope global tentative dadfailed \\       valid_lft forever preferred_lft forever
2: eth0    inet6 fe80::42:acff:fe12:2/64 scope link \\       valid_lft forever preferred_lft forever
3: docker0    inet 172.17.0.1/16 brd 172.17.255.255 scope global docker0\\       valid_lft forever preferred_lft forever
"""
IPV6_ONLY = """\
2: eth0    inet6 fd00:d2:15::4/64 scope global nodad \\       valid_lft forever preferred_lft forever
2: eth0    inet6 fe80::42:acff:fe12:4/64 scope link \\       valid_lft forever preferred_lft forever
"""


def test_detection_on_a_dual_stack_host_gives_ipv4_first_never_temporary_or_link_local() -> None:
    assert detected_addresses(DUAL_STACK, ["eth0"], ["eth0"]) == ["172.18.0.2", "2001:db8::5", "172.17.0.1"]


def test_detection_prefers_the_default_route_interface() -> None:
    # docker0 is listed first by ip(8) here, but eth0 carries the default route.
    lines = DUAL_STACK.splitlines()
    reordered = "\n".join([lines[-1], *lines[:-1]])
    assert detected_addresses(reordered, ["eth0"], ["eth0"])[0] == "172.18.0.2"
    # Without an IPv4 default route the IPv6 address of the IPv6 default route's interface comes first.
    assert detected_addresses(reordered, [], ["eth0"])[0] == "2001:db8::5"
    # Without any default route: IPv4 first, in the order ip(8) lists them.
    assert detected_addresses(reordered, [], []) == ["172.17.0.1", "172.18.0.2", "2001:db8::5"]


def test_detection_on_a_host_whose_only_global_address_is_ipv6() -> None:
    assert detected_addresses(IPV6_ONLY, [], ["eth0"]) == ["fd00:d2:15::4"]
    assert detected_addresses(IPV6_ONLY, [], []) == ["fd00:d2:15::4"]
    assert detected_addresses("", [], []) == []
    # A link-local or loopback address is never detected, even if ip(8) called it global.
    assert detected_addresses("2: eth0    inet6 fe80::1/64 scope global \\\n"
                              "2: eth0    inet 169.254.1.1/16 scope global eth0\\\n", ["eth0"], ["eth0"]) == []


def test_default_devices() -> None:
    assert default_devices("default via 192.0.2.1 dev eth0 \n") == ["eth0"]
    assert default_devices("default via fd00::1 dev eth0 metric 1024 pref medium\n") == ["eth0"]
    multipath = ("default proto ra metric 1024 expires 1790sec pref medium\n"
                 "\tnexthop via fe80::1 dev eth0 weight 1\n\tnexthop via fe80::2 dev eth1 weight 1\n")
    assert default_devices(multipath) == ["eth0", "eth1"]
    assert default_devices("") == []


# --- resolving ----------------------------------------------------------------------------------------------

def fake_resolver(table: dict[str, list[str]]):
    def resolve(name: str, port: Any, family: int = 0, kind: int = 0) -> list:
        assert port is None and family == 0 and kind == socket.SOCK_STREAM
        if name not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, kind, 6, "",
                 (a, 0, 0, 0) if ":" in a else (a, 0)) for a in table[name]]
    return resolve


def test_resolve_names_gives_every_a_and_aaaa_address_and_the_reasons() -> None:
    resolver = fake_resolver({"db2": ["2001:db8::2", "10.0.0.2", "10.0.0.2"], "db3": ["fe80::3%eth0"]})
    resolved, errors = resolve_names(["db2", "db3", "db9", "db2"], resolver)
    assert resolved == {"db2": ["10.0.0.2", "2001:db8::2"], "db3": ["fe80::3"], "db9": []}
    assert errors == {"db9": "Name or service not known"}
    assert resolve_names([], resolver) == ({}, {})


def test_resolve_names_uses_the_real_resolver_for_localhost() -> None:
    resolved, errors = resolve_names(["localhost"])
    assert "127.0.0.1" in resolved["localhost"] and errors == {}


# --- the filter plugin and its documentation -----------------------------------------------------------------

def test_filters_are_registered_and_documented() -> None:
    names = set(FilterModule().filters())
    assert names == {"node_address", "address_names", "address_problems", "address_resolve_problems", "hba_entries"}
    for name in names:
        doc = yaml.safe_load((FILTER_DIR / f"{name}.yml").read_text(encoding="utf-8"))
        assert doc["DOCUMENTATION"]["name"] == name
        assert doc["EXAMPLES"] and doc["RETURN"]["_value"]
