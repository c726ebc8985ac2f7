# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""node_prepare's install logic: the package name, apt's candidate, when the index is refreshed, the errors."""

from __future__ import annotations

import pytest

from ansible_collections.pgrepl.streaming.plugins.module_utils._errors import PgreplError
from ansible_collections.pgrepl.streaming.plugins.module_utils._packages import (
    apt_knows,
    install_package,
    package_tool,
    psycopg_package,
    stale_index,
)

POLICY_KNOWN = """python3-psycopg:
  Installed: (none)
  Candidate: 3.1.7-4
  Version table:
     3.1.7-4 500
"""
POLICY_NO_INDEX = "N: Unable to locate package python3-psycopg\n"
POLICY_NONE = "python3-psycopg:\n  Installed: (none)\n  Candidate: (none)\n"


class FakeRunner:
    """Answers each command by its first two words; records every command run."""

    def __init__(self, answers: dict[str, list[tuple[int, str, str]]]) -> None:
        self.answers = answers
        self.commands: list[list[str]] = []

    def __call__(self, cmd: list, env: dict) -> tuple[int, str, str]:
        self.commands.append(list(cmd))
        key = " ".join(cmd[:2])
        queue = self.answers.get(key) or [(0, "", "")]
        return queue.pop(0) if len(queue) > 1 else queue[0]

    def words(self) -> list[str]:
        return [" ".join(cmd[:2]) for cmd in self.commands]


def test_default_package_by_family():
    assert psycopg_package("debian", None) == "python3-psycopg"
    assert psycopg_package("rhel", "") == "python3-psycopg3"
    assert psycopg_package("other", "py3-psycopg") == "py3-psycopg"


@pytest.mark.parametrize("bad", ["-y", "python3 psycopg", "pkg;rm", "a" * 200, "$(id)"])
def test_bad_package_names_are_refused_naming_the_option(bad):
    with pytest.raises(PgreplError, match=r"^package: .* is not a package name"):
        psycopg_package("debian", bad)


def test_unknown_family_without_a_package_is_refused():
    with pytest.raises(PgreplError, match="package: .*neither of the Debian nor of the RHEL family"):
        psycopg_package("other", None)


@pytest.mark.parametrize("output, known", [(POLICY_KNOWN, True), (POLICY_NO_INDEX, False), (POLICY_NONE, False),
                                           ("", False)])
def test_apt_candidate(output, known):
    assert apt_knows(output) is known


@pytest.mark.parametrize("stderr, stale", [
    ("E: Unable to locate package python3-psycopg", True),
    ("E: Failed to fetch http://deb.debian.org/debian/pool/main/p/psycopg3/x.deb  404  Not Found", True),
    ("E: Package 'python3-psycopg' has no installation candidate", True),
    ("E: Could not get lock /var/lib/dpkg/lock-frontend", False),
    ("E: You don't have enough free space in /var/cache/apt/archives/.", False),
])
def test_stale_index(stderr, stale):
    assert stale_index(stderr) is stale


def test_a_known_package_is_installed_without_an_index_refresh():
    run = FakeRunner({"apt-cache policy": [(0, POLICY_KNOWN, "")]})
    assert install_package("apt-get", "python3-psycopg", run) == ["apt-get install python3-psycopg"]
    assert run.words() == ["apt-cache policy", "apt-get install"]
    install = run.commands[-1]
    assert "--no-install-recommends" in install and install[-1] == "python3-psycopg"


def test_an_empty_index_is_refreshed_first_without_translations():
    run = FakeRunner({"apt-cache policy": [(0, POLICY_NO_INDEX, "")]})
    assert install_package("apt-get", "python3-psycopg", run) == ["apt-get update", "apt-get install python3-psycopg"]
    assert run.words() == ["apt-cache policy", "apt-get update", "apt-get install"]
    assert "Acquire::Languages=none" in run.commands[1]
    # No source package cache: on the refresh and on the install that reads it.
    for command in run.commands[1:]:
        assert "Dir::Cache::srcpkgcache=" in command


def test_a_stale_index_is_refreshed_once_and_the_install_retried():
    run = FakeRunner({"apt-cache policy": [(0, POLICY_KNOWN, "")],
                      "apt-get install": [(100, "", "E: Failed to fetch http://x/y.deb 404 Not Found"), (0, "", "")]})
    assert install_package("apt-get", "python3-psycopg", run) == ["apt-get update", "apt-get install python3-psycopg"]
    assert run.words() == ["apt-cache policy", "apt-get install", "apt-get update", "apt-get install"]


def test_a_failed_install_names_the_option_and_quotes_apt():
    run = FakeRunner({"apt-cache policy": [(0, POLICY_KNOWN, "")],
                      "apt-get install": [(100, "", "E: Could not get lock /var/lib/dpkg/lock-frontend")]})
    with pytest.raises(PgreplError, match=r"^package: apt-get install python3-psycopg failed \(rc 100\): .*lock"):
        install_package("apt-get", "python3-psycopg", run)
    assert "apt-get update" not in run.words()


def test_a_failed_index_refresh_is_an_error():
    run = FakeRunner({"apt-cache policy": [(0, POLICY_NONE, "")],
                      "apt-get update": [(100, "", "E: The repository 'http://x bookworm Release' does not have a "
                                                   "Release file.")]})
    with pytest.raises(PgreplError, match=r"^package: apt-get update failed \(rc 100\): .*Release file"):
        install_package("apt-get", "python3-psycopg", run)


def test_dnf_installs_in_one_command():
    run = FakeRunner({})
    assert install_package("dnf", "python3-psycopg3", run) == ["dnf install python3-psycopg3"]
    assert run.commands == [["dnf", "install", "-y", "-q", "python3-psycopg3"]]
    failing = FakeRunner({"dnf install": [(1, "", "Error: Unable to find a match: python3-psycopg3")]})
    with pytest.raises(PgreplError, match=r"^package: dnf install python3-psycopg3 failed \(rc 1\): .*Unable to find"):
        install_package("dnf", "python3-psycopg3", failing)


def test_package_tool_prefers_the_family_then_what_exists():
    assert package_tool("debian", {"apt-get": "/usr/bin/apt-get", "dnf": "/usr/bin/dnf"}.get) == "apt-get"
    assert package_tool("rhel", {"apt-get": "/usr/bin/apt-get", "dnf": "/usr/bin/dnf"}.get) == "dnf"
    assert package_tool("rhel", {"yum": "/usr/bin/yum"}.get) == "yum"
    assert package_tool("other", {"dnf": "/usr/bin/dnf"}.get) == "dnf"
    with pytest.raises(PgreplError, match="^package: none of apt-get, dnf or yum"):
        package_tool("other", {}.get)
