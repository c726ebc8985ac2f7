# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A node's address as users give it (IPv4, IPv6 or a DNS name), and what the roles derive from it.

Pure functions (no I/O except :func:`resolve_names`, whose resolver is injectable): read and normalise a
``pgrepl_address``, say what is wrong with one, turn it into pg_hba address fields, pick a host's own address from
``ip -o addr`` output, and resolve names. The filters in plugins/filter/address.py (on the controller) and the
node facts modules (on the managed host) share them, so the preflight check, the pg_hba entries and the
passfile/conninfo host cannot disagree.

- The conninfo ``host`` and the passfile's host field are the same string (libpq finds the passfile line by
  comparing that text), so both come from :attr:`NodeAddress.host`: an IP literal in its canonical form
  (``2001:DB8:0::1`` becomes ``2001:db8::1``), a DNS name as given.
- pg_hba gets ``/32`` for IPv4 and ``/128`` for IPv6; a DNS name gets one entry per address the name resolves to
  on the node whose pg_hba it is (PostgreSQL's own host name entries need the client's reverse lookup to give
  that very name back, which most networks do not: only on request, see ``hostnames``).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Union

IP = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]

# One DNS label (RFC 1123, underscores tolerated as resolvers do) and a whole name (253 characters at most).
_LABEL_RE = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")
_ZONE_RE = re.compile(r"[A-Za-z0-9_.-]+")
# ip -o addr flags of addresses a peer must never be told to use: privacy (temporary) addresses change, the
# others are not (or no longer) usable.
UNUSABLE_FLAGS = frozenset({"temporary", "deprecated", "tentative", "dadfailed"})


class AddressError(ValueError):
    """A value that is not one host's address; the message says why and what to write instead."""


@dataclass(frozen=True)
class NodeAddress:
    """A checked pgrepl_address."""

    kind: str  # 'ipv4', 'ipv6' or 'name'
    host: str  # libpq's host and the passfile's host field
    ip: IP | None = None

    @property
    def is_name(self) -> bool:
        return self.kind == "name"


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise AddressError(f"{value!r} is a {type(value).__name__}, not an IP address or a DNS name")
    return str(value).strip()


def _check_ip(ip: IP, zone: str, shown: str) -> None:
    if ip.is_unspecified:
        raise AddressError(f"{shown} is the unspecified address, not one host's address")
    if ip.is_multicast:
        raise AddressError(f"{shown} is a multicast address, not one host's address")
    if isinstance(ip, ipaddress.IPv4Address):
        if ip == ipaddress.IPv4Address("255.255.255.255"):
            raise AddressError(f"{shown} is the broadcast address, not one host's address")
        return
    if ip.ipv4_mapped is not None:
        raise AddressError(f"{shown} is an IPv4-mapped IPv6 address: write the IPv4 address {ip.ipv4_mapped}")
    if ip.is_link_local and not zone:
        raise AddressError(f"{shown} is a link-local address (fe80::/10), which needs the interface of the host "
                           f"that connects ({ip}%eth0) and never leaves one link: give a global or unique-local "
                           "address, or a DNS name")


def parse_node_address(value: Any) -> NodeAddress:
    """A pgrepl_address checked and normalised; AddressError (naming the value) when it is not usable.

    Accepted: an IPv4 address, an IPv6 address (in brackets or not; a link-local one only with its zone,
    ``fe80::1%eth0``), a DNS name. Refused: anything with a ``/prefix`` (one host's address is wanted: the
    roles add ``/32`` or ``/128`` for pg_hba), the unspecified, broadcast and multicast addresses, IPv4-mapped
    IPv6, text that is neither an address nor a well-formed name.
    """
    text = _text(value)
    shown = repr(text)
    if text == "":
        raise AddressError("is empty (an IP address or a DNS name is needed)")
    if "/" in text:
        addr_text, _slash, prefix = text.partition("/")
        try:
            iface = ipaddress.ip_interface(f"{addr_text.strip().removeprefix('[').removesuffix(']')}/{prefix}")
        except ValueError:
            raise AddressError(f"{shown} is not an IP address or a DNS name (a '/' belongs to neither)") from None
        if iface.ip == iface.network.network_address and iface.network.num_addresses > 1:
            raise AddressError(f"{shown} is a network, not one host's address: write the node's own address (the "
                               f"roles add /{iface.max_prefixlen} for pg_hba)")
        raise AddressError(f"{shown} has a /{prefix} prefix: write the address alone, {iface.ip} (the "
                           f"roles add /{iface.max_prefixlen} for pg_hba)")
    bracketed = text.startswith("[") and text.endswith("]")
    inner = text[1:-1] if bracketed else text
    addr_text, percent, zone = inner.partition("%")
    if text.count(":") == 1 and text.rpartition(":")[2].isdigit():
        raise AddressError(f"{shown} looks like host:port: write the address alone (the port is pgrepl_port)")
    if ":" in addr_text or bracketed or percent:
        try:
            ip: IP = ipaddress.IPv6Address(addr_text)
        except ValueError:
            raise AddressError(f"{shown} is not a valid IPv6 address") from None
        if percent and not _ZONE_RE.fullmatch(zone):
            raise AddressError(f"{shown}: the zone after '%' must be an interface name or index")
        _check_ip(ip, zone, shown)
        if zone and not ip.is_link_local:
            raise AddressError(f"{shown}: a zone (%{zone}) only goes with a link-local address (fe80::/10)")
        return NodeAddress("ipv6", f"{ip}%{zone}" if zone else str(ip), ip)
    labels = text.rstrip(".").split(".")
    if all(label.isdigit() for label in labels):
        try:
            ip = ipaddress.IPv4Address(text)
        except ValueError:
            raise AddressError(f"{shown} is not a valid IPv4 address (four numbers from 0 to 255)") from None
        _check_ip(ip, "", shown)
        return NodeAddress("ipv4", str(ip), ip)
    if len(text.rstrip(".")) > 253 or not all(_LABEL_RE.fullmatch(label) for label in labels):
        raise AddressError(f"{shown} is not an IP address or a DNS name (a name is made of labels of letters, "
                           "digits and '-', separated by dots)")
    if labels[-1].isdigit():
        raise AddressError(f"{shown} is not an IP address, and not a DNS name either (its last label is a number)")
    return NodeAddress("name", text)


def normalize(value: Any) -> str:
    """The host string of a usable address; anything else comes back stripped but unchanged (so that the check
    that refuses it can quote what the user wrote)."""
    try:
        return parse_node_address(value).host
    except AddressError:
        return value.strip() if isinstance(value, str) else ("" if value is None else str(value))


def address_problem(value: Any) -> str:
    """Why a node's address (pgrepl_address, or the detected one) cannot be used; '' when it can."""
    try:
        parse_node_address(value)
    except AddressError as exc:
        return str(exc)
    return ""


def dns_names(values: Iterable[Any]) -> list[str]:
    """The distinct usable DNS names among the values, in order (what a node resolves for its pg_hba)."""
    names: list[str] = []
    for value in values:
        try:
            address = parse_node_address(value)
        except AddressError:
            continue
        if address.is_name and address.host not in names:
            names.append(address.host)
    return names


def _hba_field(ip: IP) -> str:
    return f"{ip}/{ip.max_prefixlen}"


def _resolved_ips(addresses: Iterable[str]) -> list[IP]:
    ips: set[IP] = set()
    for text in addresses:
        try:
            ips.add(ipaddress.ip_address(str(text).partition("%")[0]))
        except ValueError:
            continue
    return sorted(ips, key=lambda ip: (ip.version, int(ip)))


def hba_fields(address: NodeAddress, resolved: Iterable[str] | None = None, hostnames: bool = False) -> list[str]:
    """The pg_hba address fields that admit a node: /32 or /128 for an IP, one per resolved address for a name
    (or the name itself with ``hostnames``). A name with no resolved address gives an empty list."""
    if address.ip is not None:
        return [_hba_field(address.ip)]
    if hostnames:
        return [address.host]
    return [_hba_field(ip) for ip in _resolved_ips(resolved or [])]


# ------------------------------------------------------------------------------------------------- the checks

def cluster_problems(nodes: Mapping[str, Any], allow_empty: bool = False) -> list[str]:
    """What is wrong with the nodes' addresses (inventory name -> address), each message naming the node and its
    value: an unusable address, or IP literals of both families (a node then connects from an address of the
    other family, which its peer's pg_hba does not list). ``allow_empty``: an empty address is not a problem
    (checking the given pgrepl_address values before the hosts are asked for theirs)."""
    problems: list[str] = []
    families: dict[str, list[str]] = {"ipv4": [], "ipv6": []}
    for name, value in nodes.items():
        if _text_or_none(value) == "":
            if allow_empty:
                continue
            problems.append(f"{name}: no pgrepl_address, and the host has no global IPv4 or IPv6 address to use "
                            "(link-local, temporary, deprecated and tentative addresses are never used): set "
                            "pgrepl_address")
            continue
        try:
            address = parse_node_address(value)
        except AddressError as exc:
            problems.append(f"{name}: pgrepl_address {exc}")
            continue
        if address.kind in families:
            families[address.kind].append(f"{name} ({address.host})")
    if families["ipv4"] and families["ipv6"]:
        problems.append("the nodes' addresses mix IPv4 (" + ", ".join(families["ipv4"]) + ") and IPv6 ("
                        + ", ".join(families["ipv6"]) + "): a node connects to an IPv6 peer from its own IPv6 "
                        "address, which that peer's pg_hba does not list; give every node an address of one family "
                        "(or DNS names that resolve to both)")
    return problems


def _text_or_none(value: Any) -> str | None:
    try:
        return _text(value)
    except AddressError:
        return None


def resolve_problems(nodes: Mapping[str, Any], resolved: Mapping[str, Any] | None, errors: Mapping[str, Any] | None,
                     where: str) -> list[str]:
    """The nodes whose address is a DNS name that did not resolve on ``where`` (its pg_hba needs the addresses)."""
    problems: list[str] = []
    resolved = resolved or {}
    errors = errors or {}
    for name, value in nodes.items():
        try:
            address = parse_node_address(value)
        except AddressError:
            continue  # cluster_problems names it
        if not address.is_name or _resolved_ips(resolved.get(address.host) or []):
            continue
        reason = errors.get(address.host) or "no address"
        problems.append(f"{name}: pgrepl_address {address.host!r} does not resolve on {where} ({reason}): {where}'s "
                        "pg_hba.conf needs the addresses it connects from; fix DNS or /etc/hosts there, or set an IP "
                        "address")
    return problems


# --------------------------------------------------------------------------------------------- the host itself

def default_devices(route_output: str) -> list[str]:
    """The interfaces of the default routes in ``ip route show default`` output, in order."""
    devices: list[str] = []
    for line in route_output.splitlines():
        fields = line.split()
        if "dev" in fields[:-1]:
            device = fields[fields.index("dev") + 1]
            if device not in devices:
                devices.append(device)
    return devices


def detected_addresses(addr_output: str, default_v4: Iterable[str] = (), default_v6: Iterable[str] = ()) -> list[str]:
    """The host's usable global addresses from ``ip -o addr show scope global`` output, best first.

    Never link-local (fe80::/10, 169.254/16), never a temporary (privacy), deprecated, tentative or
    DAD-failed address. Order: IPv4 on an interface of the IPv4 default route, IPv6 on one of the IPv6 default
    route, then the other IPv4 and IPv6 addresses, each group in the order ip(8) lists them.
    """
    defaults = {4: set(default_v4), 6: set(default_v6)}
    found: list[tuple[int, int, int, str]] = []
    for position, line in enumerate(addr_output.splitlines()):
        fields = line.replace("\\", " ").split()
        family = "inet" if "inet" in fields else "inet6" if "inet6" in fields else ""
        if not family or len(fields) < 2:
            continue
        text = fields[fields.index(family) + 1].split("/")[0]
        try:
            ip = ipaddress.ip_address(text.partition("%")[0])
        except ValueError:
            continue
        if ip.is_link_local or ip.is_loopback or ip.is_multicast or ip.is_unspecified:
            continue
        if UNUSABLE_FLAGS.intersection(fields):
            continue
        device = fields[1].split("@")[0]
        found.append((0 if device in defaults[ip.version] else 1, ip.version, position, str(ip)))
    seen: list[str] = []
    for _rank, _version, _position, text in sorted(found):
        if text not in seen:
            seen.append(text)
    return seen


# --------------------------------------------------------------------------------------------------- resolving

Resolver = Callable[..., list]


def _resolve_one(name: str, resolver: Resolver) -> tuple[list[str], str]:
    try:
        infos = resolver(name, None, 0, socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        # gaierror's text is the resolver's own (possibly translated) words: quoted, never decided on.
        return [], (exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)) or type(exc).__name__
    ips = _resolved_ips(info[4][0] for info in infos if info and len(info) > 4 and info[4])
    return [str(ip) for ip in ips], ("" if ips else "no A or AAAA address")


def resolve_names(names: Iterable[str], resolver: Resolver = socket.getaddrinfo,
                  workers: int = 8) -> tuple[dict[str, list[str]], dict[str, str]]:
    """Every A and AAAA address of each name, as this host's resolver (nsswitch: /etc/hosts, DNS...) gives
    them, IPv4 first; and, for the names that gave none, the resolver's reason. Names resolve in parallel, so
    one slow DNS answer costs its own timeout once."""
    unique = list(dict.fromkeys(str(name) for name in names))
    if not unique:
        return {}, {}
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(unique)))) as pool:
        answers = list(pool.map(lambda name: _resolve_one(name, resolver), unique))
    resolved = {name: addresses for name, (addresses, _error) in zip(unique, answers)}
    errors = {name: error for name, (addresses, error) in zip(unique, answers) if not addresses}
    return resolved, errors
