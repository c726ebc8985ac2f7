# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The host firewall's allowance of the PostgreSQL port to the other nodes (module firewall_allow): which firewall
runs (firewalld, ufw), the rules wanted against those present, the commands that add the missing ones.

Only additions: a rule of the host is never removed or changed, so whatever it admitted (other applications, other
clients) stays admitted, and a firewall that does not run is never started or enabled.

firewalld gets one rich rule per source (``rule family=... source address=... port port=... protocol="tcp"
accept``) in every zone that can handle the traffic (the default zone and every active zone), in the runtime and
in the permanent configuration. Not a zone bound to the sources: binding a source to a zone moves all of that
source's traffic away from the zone that handled it before, so a peer would lose what it reached there (ssh, an
application port). A rich rule admits only its source to its port, in whichever zone the packet lands; in a zone
that never sees the peer it admits nothing. No ``--reload``: a reload drops the runtime-only rules of others.

ufw gets ``ufw allow from SOURCE to any port PORT proto tcp comment ...`` per source (appended: an earlier deny
of the administrator still wins, as a deny rich rule does in firewalld).

The commands run in the C locale; firewalld's state is read from its exit codes, ufw's from its C-locale output.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
import time
from dataclasses import dataclass
from typing import Any, Callable, Union

from ansible_collections.pgrepl.streaming.plugins.module_utils._changes import ChangeTracker, finish
from ansible_collections.pgrepl.streaming.plugins.module_utils._errors import PgreplError
from ansible_collections.pgrepl.streaming.plugins.module_utils._module import ModuleSpec

Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]
# argv -> (rc, stdout, stderr)
Runner = Callable[[list], "tuple[int, str, str]"]

FIREWALLD_RUNNING = 0  # firewall-cmd --state: 0 running, 252 not running (and other codes for errors)
DEFAULT_COMMENT = "pgrepl.streaming"

FIREWALL_SPEC = ModuleSpec(
    {
        "port": {"type": "int", "required": True},
        "sources": {"type": "list", "elements": "str", "required": True},
        "comment": {"type": "str", "default": DEFAULT_COMMENT},
    },
    with_connection=False,
)


# --- Input -----------------------------------------------------------------------------------------------------

def parse_sources(values: list[Any]) -> list[Network]:
    """The sources as networks (an address is its /32 or /128), each once, in order; a bad one names itself."""
    networks: list[Network] = []
    for value in values:
        text = str(value).strip()
        if text.startswith("[") and "]" in text:  # [fd00::2] or [fd00::2]/128, as pg_hba users may write
            text = text[1:].replace("]", "", 1)
        try:
            network = ipaddress.ip_network(text.split("%", 1)[0] if "%" in text and "/" not in text else text)
        except ValueError:
            raise PgreplError(f"sources: {value!r} is not an IP address or network (a DNS name is resolved "
                              "before: the roles pass the addresses pg_hba.conf lists)") from None
        if network not in networks:
            networks.append(network)
    return networks


def check_port(port: Any) -> int:
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        raise PgreplError(f"port: {port!r} is not a TCP port (1-65535)")
    return port


def source_text(network: Network) -> str:
    """A single address without its prefix (as both firewalls print it), a network with it."""
    if network.prefixlen == network.max_prefixlen:
        return str(network.network_address)
    return str(network)


def _family(network: Network) -> str:
    return "ipv4" if network.version == 4 else "ipv6"


def _network(text: str) -> Network | None:
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None


def _port_covers(text: str, port: int) -> bool:
    """'5432' or a range '5400-5499' (firewalld), '5400:5499' (ufw) holding ``port``; a list 'a,b' (ufw)."""
    for part in text.split(","):
        low, sep, high = part.replace(":", "-").partition("-")
        try:
            if (int(low) <= port <= int(high)) if sep else int(low) == port:
                return True
        except ValueError:
            continue
    return False


# --- firewalld -------------------------------------------------------------------------------------------------

def firewalld_rule(network: Network, port: int) -> str:
    """The rich rule admitting ``network`` to ``port``/tcp, in the form firewall-cmd lists it."""
    return (f'rule family="{_family(network)}" source address="{source_text(network)}" '
            f'port port="{port}" protocol="tcp" accept')


@dataclass(frozen=True)
class RichRule:
    """What decides whether a present rich rule admits a peer: an unconditional accept of a port."""

    family: str | None
    source: Network | None  # None: any source
    inverted: bool
    port: str | None
    protocol: str | None
    accept: bool
    other: bool  # a destination, service, limit or other element: not counted as admitting the peer

    def admits(self, network: Network, port: int) -> bool:
        if not self.accept or self.other or self.inverted or self.port is None:
            return False
        if self.family is not None and self.family != _family(network):
            return False
        if self.source is not None and (self.source.version != network.version
                                        or not network.subnet_of(self.source)):  # type: ignore[arg-type]
            return False
        return self.protocol == "tcp" and _port_covers(self.port, port)


_RICH_ELEMENTS = frozenset(("source", "destination", "port", "service", "protocol", "icmp-block", "icmp-type",
                            "masquerade", "forward-port", "source-port", "tcp-mss-clamp", "log", "nflog", "audit",
                            "limit", "accept", "reject", "drop", "mark"))
# Elements that narrow what an accept admits (or make it something else than an accept of a port).
_RICH_NARROWING = frozenset(("destination", "service", "protocol", "icmp-block", "icmp-type", "masquerade",
                             "forward-port", "source-port", "tcp-mss-clamp", "mark"))


def parse_rich_rule(text: str) -> RichRule | None:
    """A line of ``firewall-cmd --list-rich-rules``; None for what is not a rule."""
    try:
        tokens = shlex.split(text)
    except ValueError:
        return None
    if not tokens or tokens[0] != "rule":
        return None
    family = source = port = protocol = None
    inverted = accept = other = False
    element = ""
    for token in tokens[1:]:
        key, sep, value = token.partition("=")
        if not sep:
            if token == "NOT" and element == "source":
                inverted = True
            elif token in _RICH_ELEMENTS:
                # A limit right after accept rate-limits the accept (after log it limits the logging).
                other = other or token in _RICH_NARROWING or (token == "limit" and element == "accept")
                accept = accept or token == "accept"
                element = token
            continue
        if element == "" and key == "family":
            family = value
        elif element == "source" and key == "address":
            source = _network(value)
            other = other or source is None
        elif element == "source" and key in ("mac", "ipset"):
            other = True
        elif element == "port" and key == "port":
            port = value
        elif element == "port" and key == "protocol":
            protocol = value
    return RichRule(family, source, inverted, port, protocol, accept, other)


def parse_active_zones(text: str) -> list[str]:
    """The zone names of ``firewall-cmd --get-active-zones`` (a name line, then indented interfaces/sources)."""
    zones = []
    for line in text.splitlines():
        if line.strip() and not line[0].isspace():
            zones.append(line.split()[0])
    return zones


def firewalld_plan(present: dict[tuple[str, str], list[str]], networks: list[Network],
                   port: int) -> dict[tuple[str, str], list[str]]:
    """(zone, runtime|permanent) -> the rich rules to add there: one per source no present rule admits."""
    plan: dict[tuple[str, str], list[str]] = {}
    for where, lines in present.items():
        rules = [rule for rule in (parse_rich_rule(line) for line in lines) if rule is not None]
        missing = [firewalld_rule(network, port) for network in networks
                   if not any(rule.admits(network, port) for rule in rules)]
        if missing:
            plan[where] = missing
    return plan


# --- ufw -------------------------------------------------------------------------------------------------------

def ufw_active(status_output: str) -> bool:
    """``ufw status`` in the C locale: its first line is ``Status: active`` or ``Status: inactive``."""
    first = status_output.strip().splitlines()[0] if status_output.strip() else ""
    return first.replace(" ", "").lower() == "status:active"


@dataclass(frozen=True)
class UfwRule:
    """A line of ``ufw show added`` as far as it decides whether a peer is admitted."""

    action: str
    source: Network | None  # None: any
    to_any: bool
    port: str | None  # None: every port
    proto: str | None  # None: every protocol
    other: bool  # route, out, an interface, an app profile...: not counted

    def admits(self, network: Network, port: int) -> bool:
        if self.action != "allow" or self.other or not self.to_any:
            return False
        if self.source is not None and (self.source.version != network.version
                                        or not network.subnet_of(self.source)):  # type: ignore[arg-type]
            return False
        return (self.port is None or _port_covers(self.port, port)) and self.proto in (None, "tcp")


def parse_ufw_rule(text: str) -> UfwRule | None:
    """``ufw allow from 10.0.0.2 to any port 5432 proto tcp``, ``ufw allow 5432/tcp``...; None for other lines."""
    try:
        tokens = shlex.split(text)
    except ValueError:
        return None
    if len(tokens) < 3 or tokens[0] != "ufw" or tokens[1] not in ("allow", "deny", "reject", "limit"):
        if len(tokens) >= 3 and tokens[0] == "ufw":
            return UfwRule(tokens[1], None, False, None, None, True)
        return None
    action, rest = tokens[1], tokens[2:]
    if "comment" in rest:
        rest = rest[:rest.index("comment")]
    if rest and rest[0] in ("in", "out"):
        if rest[0] == "out" or (len(rest) > 1 and rest[1] == "on"):
            return UfwRule(action, None, False, None, None, True)
        rest = rest[1:]
    if len(rest) == 1:  # simple syntax: PORT[/PROTO], or an application profile (not counted)
        port, proto = (rest[0].split("/", 1) + [""])[:2]
        if not re.fullmatch(r"[0-9][0-9,:]*", port):
            return UfwRule(action, None, True, None, None, True)
        return UfwRule(action, None, True, port, proto or None, False)
    source: Network | None = None
    to_any = True  # no 'to': any destination
    port_text: str | None = None
    proto: str | None = None
    other = False
    words = iter(rest)
    for word in words:
        value = next(words, "")
        if word == "from":
            source = None if value == "any" else _network(value)
            other = other or (value != "any" and source is None)
        elif word == "to":
            to_any = value == "any"
        elif word == "port":
            port_text = value
        elif word == "proto":
            proto = value
        else:
            other = True  # app profiles, a source port ('from X port N'), ...
    return UfwRule(action, source, to_any, port_text, proto, other)


def ufw_plan(added_output: str, networks: list[Network], port: int) -> list[Network]:
    """The sources no rule of ``ufw show added`` admits yet to ``port``/tcp."""
    rules = [rule for rule in (parse_ufw_rule(line) for line in added_output.splitlines()) if rule is not None]
    return [network for network in networks if not any(rule.admits(network, port) for rule in rules)]


def ufw_command(network: Network, port: int, comment: str) -> list[str]:
    """The arguments after ``ufw`` that add the rule (the rule's text as ``ufw show added`` lists it)."""
    return ["allow", "from", source_text(network), "to", "any", "port", str(port), "proto", "tcp",
            "comment", comment]


def ufw_rule_text(network: Network, port: int, comment: str) -> str:
    """The rule as ``ufw show added`` lists it (the comment always in single quotes)."""
    return "ufw " + " ".join(ufw_command(network, port, comment)[:-1]) + f" '{comment}'"


# --- The module ------------------------------------------------------------------------------------------------

def _run_checked(run: Runner, argv: list[str]) -> str:
    rc, out, err = run(argv)
    if rc != 0:
        raise PgreplError(f"{' '.join(shlex.quote(a) for a in argv)} failed (exit code {rc}): "
                          f"{(err or out).strip()[:500]}")
    return out


def firewalld_present(run: Runner, cmd: str) -> dict[tuple[str, str], list[str]]:
    """(zone, runtime|permanent) -> its rich rules, for the default zone and every active zone."""
    zones = [_run_checked(run, [cmd, "--get-default-zone"]).strip()]
    for zone in parse_active_zones(_run_checked(run, [cmd, "--get-active-zones"])):
        if zone not in zones:
            zones.append(zone)
    present: dict[tuple[str, str], list[str]] = {}
    for zone in zones:
        for where, flags in (("runtime", []), ("permanent", ["--permanent"])):
            out = _run_checked(run, [cmd, *flags, f"--zone={zone}", "--list-rich-rules"])
            present[(zone, where)] = [line.strip() for line in out.splitlines() if line.strip()]
    return present


def firewall_allow(run: Runner, which: Callable[[str], str | None], networks: list[Network], port: int,
                   comment: str, tracker: ChangeTracker) -> dict[str, Any]:
    """Add what is missing on every firewall that runs (nothing when none does); returns the result's facts."""
    firewalls: list[str] = []
    added: list[str] = []
    firewall_cmd = which("firewall-cmd")
    if firewall_cmd and run([firewall_cmd, "--state"])[0] == FIREWALLD_RUNNING:
        firewalls.append("firewalld")
        present = firewalld_present(run, firewall_cmd)
        plan = firewalld_plan(present, networks, port)
        for where, lines in present.items():
            label = f"firewalld zone {where[0]} ({where[1]})"
            tracker.record(label, lines, lines + plan.get(where, []))
        for (zone, where), rules in plan.items():
            added.extend(f"firewalld zone {zone} ({where}): {rule}" for rule in rules)
            if tracker.apply:
                flags = ["--permanent"] if where == "permanent" else []
                _run_checked(run, [firewall_cmd, *flags, f"--zone={zone}",
                                   *(f"--add-rich-rule={rule}" for rule in rules)])
    ufw = which("ufw")
    if ufw and ufw_active(_run_checked(run, [ufw, "status"])):
        firewalls.append("ufw")
        listed = _run_checked(run, [ufw, "show", "added"])
        lines = [line.strip() for line in listed.splitlines() if line.strip().startswith("ufw ")]
        missing = ufw_plan(listed, networks, port)
        tracker.record("ufw", lines, lines + [ufw_rule_text(network, port, comment) for network in missing])
        for network in missing:
            added.append(f"ufw: {ufw_rule_text(network, port, comment)}")
            if tracker.apply:
                _run_checked(run, [ufw, *ufw_command(network, port, comment)])
    if not firewalls:
        msg = "No firewall runs on this host (neither firewalld nor ufw is active): nothing to open."
    elif added:
        msg = f"{len(added)} rule(s) {'would be ' if tracker.check_mode else ''}added for port {port}/tcp."
    else:
        msg = f"Every source is already admitted to port {port}/tcp."
    return {"firewalls": firewalls, "rules_added": added, "msg": msg}


def run_firewall_allow(module: Any) -> dict[str, Any]:
    started = time.monotonic()
    port = check_port(module.params["port"])
    networks = parse_sources(module.params["sources"])
    comment = module.params["comment"]
    if not comment or any(ch in comment for ch in "\n\r\0'"):
        raise PgreplError(f"comment: {comment!r} must be a non-empty line without a quote (')")
    tracker = ChangeTracker(module.check_mode)

    def run(argv: list[str]) -> tuple[int, str, str]:
        rc, out, err = module.run_command(argv, environ_update={"LC_ALL": "C", "LANG": "C", "LANGUAGE": "C"})
        return rc, out, err

    result: dict[str, Any] = {"port": port, "sources": [source_text(n) for n in networks]}
    if networks:
        result.update(firewall_allow(run, module.get_bin_path, networks, port, comment,
                                     tracker))
    else:
        result.update({"firewalls": [], "rules_added": [], "msg": "No sources: nothing to open."})
    result["changed"] = tracker.changed
    return finish(module, result, tracker, [], started)
