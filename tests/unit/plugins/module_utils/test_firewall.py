# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""firewall_allow's decisions over captured firewall-cmd and ufw outputs: which firewall runs, which present rule
already admits a source, what is added where, and the commands (none in check mode)."""

from __future__ import annotations

import ipaddress

import pytest

from ansible_collections.pgrepl.streaming.plugins.module_utils._changes import ChangeTracker
from ansible_collections.pgrepl.streaming.plugins.module_utils._errors import PgreplError
from ansible_collections.pgrepl.streaming.plugins.module_utils._firewall import (
    check_port,
    firewall_allow,
    firewalld_plan,
    firewalld_rule,
    parse_active_zones,
    parse_rich_rule,
    parse_sources,
    parse_ufw_rule,
    ufw_active,
    ufw_plan,
)

# Captured from firewalld 1.3.3 and ufw 0.36.2 (Debian 12, the pg15-firewall test image), LC_ALL=C.
ACTIVE_ZONES = "internal\n  sources: 10.30.0.0/24\npublic\n  interfaces: eth0\n"
ACTIVE_ZONES_NEW = "public (default)\n  interfaces: eth0\n"  # firewalld 2.x marks the default zone
RICH_RULES = (  # firewall-cmd --zone=public --list-rich-rules: each rule as it was given, newest first
    'rule priority="-5" family="ipv4" source address="10.20.0.0/16" port port="5400-5500" protocol="tcp" '
    'log prefix="pg" level="info" limit value="1/m" accept limit value="3/m"\n'
    'rule family="ipv6" source address="fd00::5" port port="5432" protocol="tcp" accept\n'
    'rule family="ipv4" source address="10.20.0.5/32" port port="5432" protocol="tcp" accept\n'
)
UFW_STATUS_ACTIVE = (
    "Status: active\n\n"
    "To                         Action      From\n"
    "--                         ------      ----\n"
    "22/tcp                     ALLOW       Anywhere                  \n"
    "5432/tcp                   ALLOW       10.20.0.5                  # pgrepl.streaming: db2\n"
)
UFW_STATUS_INACTIVE = "Status: inactive\n"
UFW_ADDED = (
    "Added user rules (see 'ufw status' for running firewall):\n"
    "ufw allow 22/tcp\n"
    "ufw allow from 10.20.0.5 to any port 5432 proto tcp comment 'pgrepl.streaming: db2'\n"
    "ufw allow in on eth0 to any port 80 proto tcp\n"
    "ufw deny from 10.20.0.66\n"
    "ufw allow 5000:6000/tcp\n"
    "ufw allow from fd00::5 to any port 5432 proto tcp comment 'x'\n"
)
UFW_ADDED_NONE = "Added user rules (see 'ufw status' for running firewall):\n(None)\n"


def nets(*texts: str) -> list:
    return [ipaddress.ip_network(t) for t in texts]


@pytest.mark.parametrize("values, expected", [
    (["10.20.0.5", "10.20.0.5/32", "10.20.0.6"], ["10.20.0.5/32", "10.20.0.6/32"]),
    (["fd00::2/128", "[fd00::3]"], ["fd00::2/128", "fd00::3/128"]),
    (["10.0.0.0/24"], ["10.0.0.0/24"]),
])
def test_parse_sources(values: list[str], expected: list[str]) -> None:
    assert [str(n) for n in parse_sources(values)] == expected


@pytest.mark.parametrize("value", ["db2.example.com", "10.0.0.1/24", "", "10.0.0.300"])
def test_parse_sources_refuses_naming_the_value(value: str) -> None:
    with pytest.raises(PgreplError, match=r"sources: .*is not an IP address"):
        parse_sources([value])


@pytest.mark.parametrize("port", [0, 65536, -1, True])
def test_check_port(port: object) -> None:
    with pytest.raises(PgreplError, match="port: "):
        check_port(port)


def test_parse_active_zones() -> None:
    assert parse_active_zones(ACTIVE_ZONES) == ["internal", "public"]
    assert parse_active_zones(ACTIVE_ZONES_NEW) == ["public"]
    assert parse_active_zones("") == []


def test_firewalld_rule_text() -> None:
    assert firewalld_rule(ipaddress.ip_network("10.20.0.5/32"), 5432) == \
        'rule family="ipv4" source address="10.20.0.5" port port="5432" protocol="tcp" accept'
    assert firewalld_rule(ipaddress.ip_network("fd00::/64"), 5433) == \
        'rule family="ipv6" source address="fd00::/64" port port="5433" protocol="tcp" accept'


@pytest.mark.parametrize("rule, admitted", [
    ('rule family="ipv4" source address="10.20.0.5" port port="5432" protocol="tcp" accept', True),
    ('rule family="ipv4" source address="10.20.0.5/32" port port="5432" protocol="tcp" accept', True),
    ('rule family="ipv4" source address="10.20.0.0/16" port port="5400-5500" protocol="tcp" accept', True),
    ('rule family="ipv4" port port="5432" protocol="tcp" accept', True),  # any source
    ('rule priority="-10" family="ipv4" source address="10.20.0.5" port port="5432" protocol="tcp" accept', True),
    ('rule family="ipv4" source address="10.20.0.5" port port="5432" protocol="tcp" log prefix="pg" '
     'level="info" limit value="1/m" accept', True),  # the limit is the log's
    ('rule family="ipv4" source address="10.20.0.5" port port="5432" protocol="tcp" accept limit value="5/m"',
     False),  # a rate-limited accept
    ('rule family="ipv4" source NOT address="10.20.0.5" port port="5432" protocol="tcp" accept', False),
    ('rule family="ipv4" source address="10.20.0.5" port port="5432" protocol="udp" accept', False),
    ('rule family="ipv4" source address="10.20.0.5" port port="5433" protocol="tcp" accept', False),
    ('rule family="ipv4" source address="10.20.0.5" port port="5432" protocol="tcp" reject', False),
    ('rule family="ipv4" source address="10.20.0.5" destination address="10.20.0.9" port port="5432" '
     'protocol="tcp" accept', False),
    ('rule family="ipv4" source address="10.20.0.5" service name="postgresql" accept', False),
    ('rule family="ipv6" source address="fd00::/64" port port="5432" protocol="tcp" accept', False),
    ('rule family="ipv4" source ipset="peers" port port="5432" protocol="tcp" accept', False),
])
def test_rich_rule_admits(rule: str, admitted: bool) -> None:
    parsed = parse_rich_rule(rule)
    assert parsed is not None
    assert parsed.admits(ipaddress.ip_network("10.20.0.5/32"), 5432) is admitted


def test_captured_rich_rules() -> None:
    rules = [parse_rich_rule(line) for line in RICH_RULES.splitlines()]
    five, six, v6 = (ipaddress.ip_network(t) for t in ("10.20.0.5/32", "10.20.0.6/32", "fd00::5/128"))
    assert [r is not None and r.admits(five, 5432) for r in rules] == [False, False, True]  # the 1st: rate-limited
    assert [r is not None and r.admits(v6, 5432) for r in rules] == [False, True, False]
    assert not any(r is not None and r.admits(six, 5432) for r in rules)


def test_parse_rich_rule_ignores_other_lines() -> None:
    assert parse_rich_rule("") is None
    assert parse_rich_rule('rule family="ipv4 unbalanced') is None
    assert parse_rich_rule("public (active)") is None


def test_firewalld_plan_only_what_is_missing_per_zone_and_configuration() -> None:
    present = {("public", "runtime"): RICH_RULES.splitlines()[1:], ("public", "permanent"): [],
               ("internal", "runtime"): [], ("internal", "permanent"): []}
    plan = firewalld_plan(present, nets("10.20.0.5/32", "10.20.0.6/32"), 5432)
    six = 'rule family="ipv4" source address="10.20.0.6" port port="5432" protocol="tcp" accept'
    five = 'rule family="ipv4" source address="10.20.0.5" port port="5432" protocol="tcp" accept'
    assert plan == {("public", "runtime"): [six], ("public", "permanent"): [five, six],
                    ("internal", "runtime"): [five, six], ("internal", "permanent"): [five, six]}
    # Converged: nothing.
    done = {where: lines + plan.get(where, []) for where, lines in present.items()}
    assert firewalld_plan(done, nets("10.20.0.5/32", "10.20.0.6/32"), 5432) == {}


def test_ufw_active() -> None:
    assert ufw_active(UFW_STATUS_ACTIVE)
    assert not ufw_active(UFW_STATUS_INACTIVE)
    assert not ufw_active("")


@pytest.mark.parametrize("line, admitted", [
    ("ufw allow from 10.20.0.5 to any port 5432 proto tcp comment 'pgrepl.streaming'", True),
    ("ufw allow from 10.20.0.0/24 to any port 5432", True),  # both protocols
    ("ufw allow 5432/tcp", True),
    ("ufw allow 5432", True),
    ("ufw allow 5000:6000/tcp", True),
    ("ufw allow in 5432/tcp", True),
    ("ufw allow from 10.20.0.5", True),  # every port
    ("ufw allow 22/tcp", False),
    ("ufw allow OpenSSH", False),
    ("ufw allow 5432/udp", False),
    ("ufw deny from 10.20.0.5", False),
    ("ufw limit 5432/tcp", False),
    ("ufw allow in on eth1 to any port 5432 proto tcp", False),
    ("ufw allow from 10.20.0.5 to 10.20.0.9 port 5432 proto tcp", False),
    ("ufw allow out 5432/tcp", False),
    ("ufw route allow from 10.20.0.5", False),
    ("ufw allow from fd00::/64 to any port 5432 proto tcp", False),
])
def test_ufw_rule_admits(line: str, admitted: bool) -> None:
    rule = parse_ufw_rule(line)
    assert rule is not None
    assert rule.admits(ipaddress.ip_network("10.20.0.5/32"), 5432) is admitted


def test_ufw_plan() -> None:
    # 5000:6000/tcp admits everyone to 5432 already; 10.20.0.5 and fd00::5 have their own rules.
    assert ufw_plan(UFW_ADDED, nets("10.20.0.5/32", "10.20.0.6/32", "fd00::5/128"), 5432) == []
    assert ufw_plan(UFW_ADDED, nets("10.20.0.5/32", "10.20.0.6/32", "fd00::5/128", "fd00::6/128"), 22) == []
    assert ufw_plan(UFW_ADDED, nets("10.20.0.5/32", "10.20.0.6/32", "fd00::5/128"), 7000) == \
        nets("10.20.0.5/32", "10.20.0.6/32", "fd00::5/128")
    assert ufw_plan(UFW_ADDED, nets("fd00::5/128"), 80) == nets("fd00::5/128")  # that one is on eth0 only
    assert ufw_plan(UFW_ADDED_NONE, nets("10.20.0.5/32"), 5432) == nets("10.20.0.5/32")


class FakeHost:
    """firewall-cmd and ufw as a host has them: answers by the arguments, records every command."""

    def __init__(self, firewalld: bool, ufw: bool, rich: dict[tuple[str, str], list[str]] | None = None,
                 ufw_added: str = UFW_ADDED_NONE, installed: tuple[str, ...] = ("firewall-cmd", "ufw")) -> None:
        self.firewalld = firewalld
        self.ufw = ufw
        self.rich = rich if rich is not None else {}
        self.ufw_added = ufw_added
        self.installed = installed
        self.commands: list[list[str]] = []

    def which(self, name: str) -> str | None:
        return f"/usr/sbin/{name}" if name in self.installed else None

    def __call__(self, argv: list[str]) -> tuple[int, str, str]:
        self.commands.append(argv)
        args = argv[1:]
        if argv[0].endswith("firewall-cmd"):
            if args == ["--state"]:
                return (0, "running\n", "") if self.firewalld else (252, "", "not running\n")
            if args == ["--get-default-zone"]:
                return 0, "public\n", ""
            if args == ["--get-active-zones"]:
                return 0, "public\n  interfaces: eth0\n", ""
            where = "permanent" if "--permanent" in args else "runtime"
            zone = next(a.split("=", 1)[1] for a in args if a.startswith("--zone="))
            if "--list-rich-rules" in args:
                return 0, "".join(line + "\n" for line in self.rich.get((zone, where), [])), ""
            self.rich.setdefault((zone, where), []).extend(
                a.split("=", 1)[1] for a in args if a.startswith("--add-rich-rule="))
            return 0, "success\n", ""
        if args == ["status"]:
            return 0, UFW_STATUS_ACTIVE if self.ufw else UFW_STATUS_INACTIVE, ""
        if args == ["show", "added"]:
            return 0, self.ufw_added, ""
        return 0, "Rule added\n", ""

    def changing(self) -> list[list[str]]:
        return [c for c in self.commands if any(a.startswith("--add-rich-rule") for a in c) or "allow" in c]


def run_allow(host: FakeHost, check: bool, sources: tuple[str, ...] = ("10.20.0.5", "10.20.0.6")
              ) -> tuple[dict, ChangeTracker]:
    tracker = ChangeTracker(check)
    result = firewall_allow(host, host.which, parse_sources(list(sources)), 5432, "pgrepl.streaming", tracker)
    return result, tracker


def test_no_firewall_running_changes_nothing_and_says_so() -> None:
    for host in (FakeHost(False, False), FakeHost(True, True, installed=())):
        result, tracker = run_allow(host, check=False)
        assert result["firewalls"] == [] and result["rules_added"] == [] and not tracker.changed
        assert "No firewall runs" in result["msg"]
        assert host.changing() == []


def test_firewalld_check_mode_predicts_exactly_then_real_run_then_idempotent() -> None:
    host = FakeHost(True, False)
    predicted, tracker = run_allow(host, check=True)
    assert tracker.changed and host.changing() == []
    assert len(predicted["rules_added"]) == 4  # 2 sources x runtime and permanent of public
    actual, tracker = run_allow(host, check=False)
    assert actual["rules_added"] == predicted["rules_added"] and tracker.changed
    # One call per configuration, every rule of it in that call; never a reload.
    assert len(host.changing()) == 2
    assert not any("--reload" in c for c in host.commands)
    again, tracker = run_allow(host, check=False)
    assert again["rules_added"] == [] and not tracker.changed
    assert tracker.diff()["before"] == tracker.diff()["after"]


def test_ufw_adds_one_command_per_missing_source() -> None:
    host = FakeHost(False, True, ufw_added=UFW_ADDED.replace("ufw allow 5000:6000/tcp\n", ""))
    result, tracker = run_allow(host, check=False)
    assert result["firewalls"] == ["ufw"] and tracker.changed
    assert host.changing() == [["/usr/sbin/ufw", "allow", "from", "10.20.0.6", "to", "any", "port", "5432",
                                "proto", "tcp", "comment", "pgrepl.streaming"]]
    assert tracker.diff()["after"]["ufw"][-1] == \
        "ufw allow from 10.20.0.6 to any port 5432 proto tcp comment 'pgrepl.streaming'"


def test_a_failing_command_names_itself() -> None:
    host = FakeHost(True, False)

    def broken(argv: list[str]) -> tuple[int, str, str]:
        if "--get-active-zones" in argv:
            return 13, "", "Authorization failed.\n"
        return host(argv)

    with pytest.raises(PgreplError, match=r"firewall-cmd --get-active-zones failed \(exit code 13\)"):
        firewall_allow(broken, host.which, parse_sources(["10.20.0.5"]), 5432, "c", ChangeTracker(False))
