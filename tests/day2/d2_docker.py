# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Docker for the day-2 proof (tests/day2), `make bench` and `make bench-day2`: systemd host containers, the client,
cleanup, the timed commands of the raw procedures.

Only containers and networks whose names start with the caller's prefix are ever removed.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import time
from pathlib import Path
from typing import Optional

# systemd as PID 1 in the container, as on a real host (scripts/demo.sh's flags).
SYSTEMD_FLAGS = [
    "--cap-add", "SYS_ADMIN", "--security-opt", "seccomp=unconfined", "--cgroupns=host",
    "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "--tmpfs", "/run", "--tmpfs", "/run/lock",
]
BOOT_TIMEOUT = 180


class DockerError(Exception):
    """A docker command failed."""


def docker(*args: str, check: bool = True, timeout: float = 600,
           stdin: Optional[str] = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=False,
                          input=stdin)
    if check and proc.returncode != 0:
        raise DockerError(f"docker {' '.join(args[:4])} ... failed ({proc.returncode}): "
                          f"{(proc.stderr or proc.stdout).strip()[-800:]}")
    return proc


def dexec(container: str, *argv: str, user: Optional[str] = None, check: bool = True, timeout: float = 300,
          stdin: Optional[str] = None) -> str:
    """One `docker exec` (root unless `user`); returns stdout without the trailing newline."""
    opts = ["-u", user] if user else []
    if stdin is not None:
        opts.append("-i")
    return docker("exec", *opts, container, *argv, check=check, timeout=timeout, stdin=stdin).stdout.rstrip("\n")


def engine_problem() -> Optional[str]:
    """Why no Docker engine can be used here, or None when one answers."""
    if shutil.which("docker") is None:
        return "the docker client is not installed"
    proc = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True,
                          timeout=60, check=False)
    if proc.returncode != 0:
        return f"no Docker engine answers: {(proc.stderr or proc.stdout).strip()[-300:]}"
    return None


def env_flag(name: str) -> bool:
    """Whether an environment variable is set to 1, true or yes."""
    return os.environ.get(name, "0").strip().lower() in ("1", "true", "yes")


def in_ci() -> bool:
    return env_flag("CI")


def prefixed_containers(prefix: str) -> list[str]:
    out = docker("ps", "-a", "--filter", f"name=^{prefix}", "--format", "{{.Names}}", check=False).stdout
    return [name for name in out.split() if name.startswith(prefix)]


def prefixed_networks(prefix: str) -> list[str]:
    out = docker("network", "ls", "--filter", f"name=^{prefix}", "--format", "{{.Name}}", check=False).stdout
    return [name for name in out.split() if name.startswith(prefix)]


def remove_prefixed(prefix: str) -> list[str]:
    """Remove every container and network named `prefix*` (leftovers of earlier runs); returns what was removed."""
    gone = prefixed_containers(prefix)
    if gone:
        docker("rm", "-f", *gone, check=False, timeout=180)
    nets = prefixed_networks(prefix)
    for net in nets:
        docker("network", "rm", net, check=False)
    return gone + nets


def image_exists(image: str) -> bool:
    return docker("image", "inspect", image, check=False).returncode == 0


def ip_of(container: str, network: str, family: int = 4) -> str:
    """The container's IPv4 (family 4) or global IPv6 (family 6) address on `network`."""
    field = "IPAddress" if family == 4 else "GlobalIPv6Address"
    return docker("inspect", "-f", "{{(index .NetworkSettings.Networks \"" + network + "\")." + field + "}}",
                  container).stdout.strip()


def create_network(network: str, ipv6_subnet: Optional[str] = None) -> None:
    """A user-defined network (containers reach each other by name); dual-stack with `ipv6_subnet`
    (this engine cannot make IPv6-only networks)."""
    if docker("network", "inspect", network, check=False).returncode == 0:
        return
    docker("network", "create", *(["--ipv6", "--subnet", ipv6_subnet] if ipv6_subnet else []), network)


def start_hosts(names: list[str], image: str, network: str, env: Optional[dict[str, str]] = None,
                ipv6_subnet: Optional[str] = None, net_admin: tuple[str, ...] = ()) -> None:
    """Fresh systemd host containers on `network`; returns once PostgreSQL answers in each and boot finished.
    `env` reaches the first-boot cluster service (PGREPL_CLUSTER_OPTS: its locale and encoding) and every
    `docker exec` (LANG/LC_ALL: the managed host's own locale); hosts in `net_admin` may change their addresses."""
    for name in names:
        docker("rm", "-f", name, check=False)
    create_network(network, ipv6_subnet)
    env_flags = [flag for key, value in (env or {}).items() for flag in ("-e", f"{key}={value}")]
    for name in names:
        caps = ["--cap-add", "NET_ADMIN"] if name in net_admin else []
        docker("run", "-d", "--name", name, "--hostname", name, "--network", network, *SYSTEMD_FLAGS, *caps,
               *env_flags, image)
    deadline = time.monotonic() + BOOT_TIMEOUT
    for name in names:
        while docker("exec", name, "pg_isready", "-q", check=False).returncode != 0:
            if time.monotonic() > deadline:
                raise DockerError(f"{name}: PostgreSQL did not answer within {BOOT_TIMEOUT} s of the start")
            time.sleep(0.5)
    for name in names:
        docker("exec", name, "timeout", "60", "systemctl", "is-system-running", "--wait", check=False, timeout=90)


def start_client(name: str, image: str, network: str, mounts: dict[str, str]) -> None:
    """The ledger client's container (no systemd, no server): idles until the client is started in it."""
    docker("rm", "-f", name, check=False)
    volumes: list[str] = []
    for host_path, container_path in mounts.items():
        volumes += ["-v", f"{host_path}:{container_path}"]
    docker("run", "-d", "--name", name, "--hostname", name, "--network", network, *volumes, image)


class TimedCommands:
    """Commands typed by hand, each one `docker exec` run after the other and timed into a log (the raw manual
    procedures `make bench` and `make bench-day2` measure against); ``secret`` never reaches the log."""

    def __init__(self, log: Path, mode: str = "w", secret: Optional[str] = None, timeout: float = 300) -> None:
        self.log = log.open(mode)
        self.secret = secret
        self.timeout = timeout
        self.commands = 0

    def run(self, container: str, argv: list[str], user: Optional[str] = None) -> str:
        start = time.monotonic()
        try:
            return dexec(container, *argv, user=user, timeout=self.timeout)
        finally:
            self.commands += 1
            shown = shlex.join(argv)
            if self.secret:
                shown = shown.replace(self.secret, "********")
            self.log.write(f"{time.monotonic() - start:6.2f}s  {user or 'root'}@{container}$ {shown}\n")
            self.log.flush()

    def close(self) -> None:
        self.log.close()
