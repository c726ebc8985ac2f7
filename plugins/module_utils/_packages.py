# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Installing what the modules need on a managed host (psycopg 3 from the distribution), in few steps.

The package manager is called directly: ansible.builtin.apt would first install python3-apt (a second index
refresh and a second package) on hosts that lack it, which costs more than psycopg itself. The index is
refreshed only when apt does not know the package, or when the install fails on a stale index.
"""

from __future__ import annotations

import re
from typing import Callable, Optional

from ansible_collections.pgrepl.streaming.plugins.module_utils._errors import PgreplError

# The distribution packages that provide psycopg 3 to the system Python.
DEFAULT_PACKAGES = {"debian": "python3-psycopg", "rhel": "python3-psycopg3"}

# A package name (no options, no spaces: it goes on the package manager's command line).
_PACKAGE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9+._:~-]{0,127}$")

# apt's own words for "the index does not know this package / version", which an index refresh mends.
_STALE_INDEX = ("unable to locate package", "has no installation candidate", "failed to fetch", "404")

APT_ENV = {"DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C"}

# Less work for apt on a small host, same packages: no source package cache (apt then writes neither binary cache,
# 72 MB, and builds what it reads in memory). Measured on bookworm, a fresh host: update + install 2.2 s of CPU
# instead of 2.5 s (keeping the lists compressed, Acquire::GzipIndexes, costs more than it saves).
APT_LEAN = ["-o", "Dir::Cache::srcpkgcache="]

# rc, stdout, stderr of a command run with extra environment variables.
Runner = Callable[[list, dict], "tuple[int, str, str]"]


def psycopg_package(family: str, requested: str | None) -> str:
    """The package to install: the one asked for, else the family's own; refused when neither is known."""
    if requested:
        if not _PACKAGE_NAME.match(requested):
            raise PgreplError(f"package: {requested!r} is not a package name (letters, digits and + . _ : ~ -, "
                              "starting with a letter or digit)")
        return requested
    if family not in DEFAULT_PACKAGES:
        raise PgreplError("package: this host is neither of the Debian nor of the RHEL family, so the package "
                          "that provides psycopg 3 is not known; set package (pgrepl_psycopg_package), or "
                          "install psycopg 3 yourself and set install=false (pgrepl_install_packages: false)")
    return DEFAULT_PACKAGES[family]


def apt_knows(policy_output: str) -> bool:
    """Whether `apt-cache policy <package>` shows an installable candidate (no index, or (none), is false)."""
    for line in policy_output.splitlines():
        name, _sep, value = line.strip().partition(":")
        if name == "Candidate":
            return value.strip() not in ("", "(none)")
    return False


def stale_index(stderr: str) -> bool:
    """Whether a failed apt-get install looks mended by an index refresh."""
    lowered = stderr.lower()
    return any(marker in lowered for marker in _STALE_INDEX)


def _tail(text: str, lines: int = 6) -> str:
    return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:] if line.strip())


def _apt_install(package: str, run: Runner) -> list[str]:
    """The apt-get steps run; an index refresh only when needed."""
    steps: list[str] = []
    rc, out, _err = run(["apt-cache", "policy", package], APT_ENV)
    refreshed = False
    if rc != 0 or not apt_knows(out):
        _apt_update(run)
        steps.append("apt-get update")
        refreshed = True
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "-o", "DPkg::Lock::Timeout=120",
               *APT_LEAN, package]
    rc, _out, err = run(install, APT_ENV)
    if rc != 0 and not refreshed and stale_index(err):
        _apt_update(run)
        steps.append("apt-get update")
        rc, _out, err = run(install, APT_ENV)
    if rc != 0:
        raise PgreplError(f"package: apt-get install {package} failed (rc {rc}): {_tail(err)}")
    steps.append(f"apt-get install {package}")
    return steps


def _apt_update(run: Runner) -> None:
    # Package lists only: the translated descriptions (tens of MB on Debian) are of no use to an install. gzip lists
    # first: a few MB more to fetch than xz, but half a second less CPU per host (measured on bookworm), which is
    # what a small VM runs short of; apt falls back to the other types where a mirror has no gzip list.
    rc, _out, err = run(["apt-get", "update", "-q", "-o", "Acquire::Languages=none",
                         "-o", "Acquire::CompressionTypes::Order::=gz", "-o", "DPkg::Lock::Timeout=120", *APT_LEAN],
                        APT_ENV)
    if rc != 0:
        raise PgreplError(f"package: apt-get update failed (rc {rc}): {_tail(err)}")


def package_tool(family: str, which: Callable[[str], Optional[str]]) -> str:
    """apt-get, dnf or yum: the family's own first, else whichever the host has."""
    order = ["apt-get", "dnf", "yum"] if family != "rhel" else ["dnf", "yum", "apt-get"]
    for tool in order:
        if which(tool):
            return tool
    raise PgreplError("package: none of apt-get, dnf or yum is on this host; install psycopg 3 yourself and set "
                      "install=false (pgrepl_install_packages: false)")


def install_package(tool: str, package: str, run: Runner) -> list[str]:
    """Install the package with apt-get, dnf or yum; the steps run, or PgreplError with the tool's output."""
    if tool == "apt-get":
        return _apt_install(package, run)
    rc, _out, err = run([tool, "install", "-y", "-q", package], {"LC_ALL": "C"})
    if rc != 0:
        raise PgreplError(f"package: {tool} install {package} failed (rc {rc}): {_tail(err)}")
    return [f"{tool} install {package}"]
