# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""systemd units of PostgreSQL servers: unit names, one systemctl call for start, stop, restart and enable, what
systemd knows of a unit, and which unit's cgroup holds a process.

The unit is always passed after ``--``, and its name is checked first, so it can never be read as an option.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from typing import Any

from ansible_collections.pgrepl.streaming.plugins.module_utils._errors import PgreplError

# How long `systemctl show` and `systemctl is-enabled` may take.
QUERY_TIMEOUT = 30
# Unit types systemctl knows by their suffix; a name without one means <name>.service (as systemctl reads it).
UNIT_SUFFIXES = (".service", ".socket", ".device", ".mount", ".automount", ".swap", ".target", ".path", ".timer",
                 ".slice", ".scope")
_UNIT_NAME_RE = re.compile(r"[A-Za-z0-9:_.@\\-]+")


def validate_unit_name(value: Any, option: str = "service") -> str | None:
    """A systemd unit name (never an option or a path); None for none; the refusal names ``option``."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or _UNIT_NAME_RE.fullmatch(value) is None or value.startswith("-"):
        raise PgreplError(f"{option}: {value!r} is not a systemd unit name")
    return value


def unit_file_name(unit: str) -> str:
    """The full unit name systemctl reads a name as (postgresql@15-main -> postgresql@15-main.service)."""
    return unit if unit.endswith(UNIT_SUFFIXES) else unit + ".service"


def find_systemctl(option: str, unit: str, advice: str) -> str:
    """The path of systemctl, or a refusal naming the option and the unit (``advice`` says what to do instead)."""
    systemctl = shutil.which("systemctl")
    if systemctl is None:
        raise PgreplError(f"{option}: systemctl is not on this host, so {unit!r} cannot be managed; {advice}")
    return systemctl


def systemctl(action: str, unit: str, option: str, timeout: int | None = None, advice: str = "") -> None:
    """``systemctl <action> -- <unit>`` (start, stop, restart, enable, disable), which waits for the unit's job (at most
    timeout seconds when given); a failure names the option, the command and what systemctl said."""
    binary = find_systemctl(option, unit, advice)
    try:
        proc = subprocess.run([binary, action, "--", unit], capture_output=True, text=True, check=False,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        raise PgreplError(f"{option}: systemctl {action} {unit} did not finish within {timeout}s (systemd goes on "
                          "with the job)") from None
    if proc.returncode != 0:
        raise PgreplError(f"{option}: systemctl {action} {unit} failed: {(proc.stderr or proc.stdout).strip()} "
                          f"(see journalctl -u {unit})")


def unit_enabled(unit: str) -> bool | None:
    """Whether systemd starts the unit at boot (None without systemctl)."""
    binary = shutil.which("systemctl")
    if binary is None:
        return None
    return subprocess.run([binary, "is-enabled", "--quiet", "--", unit], capture_output=True, check=False,
                          timeout=QUERY_TIMEOUT).returncode == 0


def unit_enablement(unit: str) -> str | None:
    """What `systemctl is-enabled` says of the unit (enabled, disabled, enabled-runtime, generated, static, masked,
    ...); None without systemctl or when it says nothing. Only "enabled" comes from the unit's own [Install] links,
    which `systemctl disable` removes; "enabled-runtime" and "generated" come from /run (a generator: Debian's
    postgresql@ units follow the cluster's start.conf) and a disable does not change them."""
    binary = shutil.which("systemctl")
    if binary is None:
        return None
    proc = subprocess.run([binary, "is-enabled", "--", unit], capture_output=True, text=True, check=False,
                          timeout=QUERY_TIMEOUT)
    return proc.stdout.strip().splitlines()[0] if proc.stdout.strip() else None


def parse_systemctl_show(text: str) -> dict[str, str]:
    """`systemctl show --property=...` output (Key=value lines) -> a dict."""
    props: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip():
            props[key.strip()] = value.strip()
    return props


def show_unit(systemctl_path: str, unit: str, option: str) -> dict[str, str]:
    """LoadState and ActiveState of a unit, as systemd knows it."""
    proc = subprocess.run([systemctl_path, "show", "--property=LoadState", "--property=ActiveState", "--", unit],
                          capture_output=True, text=True, check=False, timeout=QUERY_TIMEOUT)
    if proc.returncode != 0:
        raise PgreplError(f"{option}: systemctl show {unit} failed: {(proc.stderr or proc.stdout).strip()}")
    return parse_systemctl_show(proc.stdout)


def cgroup_units(text: str) -> list[str]:
    """The systemd services and scopes on the cgroup paths of /proc/<pid>/cgroup (v1 or v2), outermost first."""
    units: list[str] = []
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        for segment in parts[2].strip().split("/"):
            if segment.endswith((".service", ".scope")) and segment not in units:
                units.append(segment)
    return units


def read_cgroup(pid: int | None) -> str | None:
    """/proc/<pid>/cgroup (None without a pid or when it cannot be read)."""
    if not pid:
        return None
    try:
        with open(f"/proc/{abs(pid)}/cgroup", encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except OSError:
        return None


def service_of(cgroup_text: str | None) -> str | None:
    """The systemd service whose cgroup holds the process (the innermost one), None when there is none."""
    services = [unit for unit in cgroup_units(cgroup_text or "") if unit.endswith(".service")]
    return services[-1] if services else None
