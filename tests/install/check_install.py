"""Stage `install` of scripts/test.sh: scripts/install-packages.sh installs every command the project calls.

1. Scan (scan_commands.py) scripts/, tests/images/, the Makefile, .ci/run and the test harnesses for the external
   commands they run on this machine. Commands the venv provides (pip installs them: ruff, pytest, ansible-*,
   molecule, python) are left out, except python3, from which scripts/deps.sh makes the venv.
2. In a clean Debian bookworm container (the debootstrapped base of the test images, tests/images/build.sh; no
   Docker engine inside: starting one is not what this tests), run the install step three times:
   A. as on a workstation whose engine already runs (a stub `docker` whose `info` answers), through
      scripts/docker-engine.sh as `make demo`/`make bench` reach it: everything but docker.io gets installed
      (debootstrap, git, rsync, PostgreSQL...), docker.io is left alone, the engine is taken as it is;
   B. as on a machine without an engine, where some tools are already there (those of A): docker.io comes;
      then `command -v` finds every scanned command (PostgreSQL's server programs in /usr/lib/postgresql/*/bin),
      `python3 -m venv` works, the test locales are generated and PostgreSQL's Russian messages are there;
   C. with everything present and apt-get made to fail: nothing is installed, apt is not called.
   A command present in the container but absent from install-packages.sh's table must come from a package that
   every Debian system has (Essential, or Priority: required, what debootstrap's minbase installs): so a tool that
   the base image happens to carry (python3-apt, procps, sudo...) cannot hide a missing row.
The container has a fixed name: a leftover of a killed run is removed first, and it is removed at the end.
A missing Docker engine fails the stage (never a skip).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scan_commands import Call, Unresolved, scan_project  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = ROOT / ".venv" / "bin"
INSTALL = ROOT / "scripts" / "install-packages.sh"
CONTAINER = "pgrepl-install-check"
BASE_IMAGE = "pgrepl-test/base-bookworm"
# The two entry points, as the README commands reach them; only these two files go into the container.
ENGINE = ROOT / "scripts" / "docker-engine.sh"
SCRIPTS_IN = "/opt/pgrepl/scripts"
# The interpreter the venv is made from: from the OS, although the venv has a python3 too.
OS_INTERPRETER = "python3"


class CheckFailed(Exception):
    pass


def say(msg: str) -> None:
    print(f"[install-check] {msg}", flush=True)


def docker(*args: str, check: bool = True, timeout: float = 900,
           stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=False,
                          input=stdin)
    if check and proc.returncode != 0:
        raise CheckFailed(f"docker {' '.join(args[:3])} ... failed ({proc.returncode}): "
                          f"{(proc.stderr or proc.stdout).strip()[-2000:]}")
    return proc


@dataclass(frozen=True)
class Row:
    """One row of install-packages.sh's table."""

    what: str
    package: str
    when: str


def table() -> list[Row]:
    out = subprocess.run(["bash", str(INSTALL), "--table"], capture_output=True, text=True, check=True).stdout
    return [Row(*line.split()[:3]) for line in out.splitlines() if line.strip()]


def row_for(what: str, rows: list[Row]) -> Row | None:
    for row in rows:
        if row.what == what or (row.what == "pg:*" and what.startswith("pg:")):
            return row
    return None


def host_locales() -> list[str]:
    """The locales install-packages.sh generates, spelled as `locale -a` lists them (tr_TR.utf8)."""
    out = subprocess.run(["bash", str(INSTALL), "--locales"], capture_output=True, text=True, check=True).stdout
    return [loc.lower().replace("-", "") for loc in out.split()]


def venv_commands() -> set[str]:
    if not VENV_BIN.is_dir():
        raise CheckFailed(f"no venv at {VENV_BIN.parent}: run `make deps` (scripts/deps.sh) first")
    return {p.name for p in VENV_BIN.iterdir()} - {OS_INTERPRETER}


def needed_commands() -> dict[str, list[str]]:
    """Scanned command -> where it is called; fails on what the scan cannot read."""
    found = scan_project(ROOT)
    unresolved = [f for f in found if isinstance(f, Unresolved)]
    if unresolved:
        lines = "\n".join(f"  {u.where}: {u.text}" for u in unresolved)
        raise CheckFailed("the scan cannot tell which program these run (write them so that it can, or teach "
                          f"tests/install/scan_commands.py):\n{lines}")
    venv = venv_commands()
    needed: dict[str, list[str]] = defaultdict(list)
    for f in found:
        if isinstance(f, Call) and f.command not in venv:
            needed[f.command].append(f.where)
    return dict(sorted(needed.items()))


# Run inside the container: one line per command, tab-separated: what, missing|present, path, package, and the
# package's Essential/Priority.
PROBE = r"""
probe() {
  local what=$1 path cand p pkg=
  case $what in
    pg:*) path=$(compgen -G "/usr/lib/postgresql/*/bin/${what#pg:}" | sort -V | tail -n1) ;;
    *) path=$(command -v -- "$what" || true) ;;
  esac
  if [[ -z $path ]]; then printf '%s\tmissing\n' "$what"; return; fi
  # dpkg knows each file under the path its package ships (/bin/sh, /usr/bin/python3.11): try the merged-/usr twins.
  for cand in "$path" "$(readlink -f "$path")"; do
    for p in "$cand" "${cand#/usr}" "/usr$cand"; do
      pkg=$(dpkg-query -S "$p" 2>/dev/null | grep -v '^diversion' | head -n1 | cut -d: -f1 | cut -d, -f1)
      [[ -n $pkg ]] && break 2
    done
  done
  if [[ -n $pkg ]]; then
    printf '%s\tpresent\t%s\t%s\t%s\n' "$what" "$path" "$pkg" "$(dpkg-query -W -f='${Essential}/${Priority}' "$pkg")"
  else
    printf '%s\tpresent\t%s\t-\t-\n' "$what" "$path"
  fi
}
while read -r what; do [[ -n $what ]] && probe "$what"; done
"""


@dataclass
class Probe:
    present: bool
    path: str = ""
    package: str = ""
    essential: bool = False
    priority: str = ""


def probe(whats: list[str]) -> dict[str, Probe]:
    out = docker("exec", "-i", CONTAINER, "bash", "-c", PROBE, stdin="\n".join(whats) + "\n").stdout
    found: dict[str, Probe] = {}
    for line in out.splitlines():
        fields = line.split("\t")
        if fields[1] == "missing":
            found[fields[0]] = Probe(False)
        else:
            essential, priority = (fields[4].split("/", 1) + [""])[:2]
            found[fields[0]] = Probe(True, fields[2], fields[3], essential == "yes", priority)
    return found


def package_installed(package: str) -> bool:
    proc = docker("exec", CONTAINER, "dpkg-query", "-W", "-f=${Status}", package, check=False)
    return proc.returncode == 0 and proc.stdout.strip() == "install ok installed"


def run_install(label: str, script: Path = INSTALL, env: tuple[str, ...] = ()) -> tuple[str, float]:
    start = time.monotonic()
    opts = [arg for pair in (("-e", e) for e in env) for arg in pair]
    proc = docker("exec", *opts, CONTAINER, "bash", f"{SCRIPTS_IN}/{script.name}", check=False)
    took = time.monotonic() - start
    output = (proc.stdout + proc.stderr).strip()
    print("\n".join("    " + line for line in output.splitlines()), flush=True)
    if proc.returncode != 0:
        raise CheckFailed(f"pass {label}: {script.name} failed ({proc.returncode})")
    say(f"pass {label}: install step took {took:.1f} s")
    return output, took


def remove_container() -> None:
    docker("rm", "-f", CONTAINER, check=False, timeout=120)


def base_image() -> str:
    """The newest debootstrapped bookworm base (tests/images/build.sh makes it, tagged with its recipe hash)."""
    out = docker("images", BASE_IMAGE, "--format", "{{.CreatedAt}}\t{{.Repository}}:{{.Tag}}").stdout
    tags = sorted((line.split("\t") for line in out.splitlines() if line.strip() and "<none>" not in line),
                  reverse=True)
    if not tags:
        raise CheckFailed(f"no {BASE_IMAGE} image: run `bash tests/images/build.sh pg15` (stage images) first")
    return tags[0][1]


STUB_DOCKER = """#!/bin/sh
# A Docker client whose engine answers: what a workstation with a running engine has.
[ "$1" = info ] && exit 0
echo "stub docker: only info answers" >&2
exit 1
"""
NO_APT = """#!/bin/sh
echo "apt must not run when nothing is missing: $0 $*" >&2
exit 99
"""


def check(needed: dict[str, list[str]], rows: list[Row]) -> None:
    whats = sorted(set(needed) | {r.what for r in rows if not r.what.startswith(("pg:*", "py:"))})
    engine_whats = {r.what for r in rows if r.when == "no-engine"}
    problems: list[str] = []

    # Rows that nothing calls: the table says why each package is there, so an unused row is a stale one.
    for row in rows:
        if row.what.startswith("py:"):
            continue
        if row.what == "pg:*":
            if not any(w.startswith("pg:") for w in needed):
                problems.append("row pg:*: nothing scanned calls a PostgreSQL server program")
        elif row.what not in needed:
            problems.append(f"row {row.what} ({row.package}): nothing scanned calls {row.what}")

    image = base_image()
    say(f"clean container {CONTAINER} from {image}")
    remove_container()
    docker("run", "-d", "--name", CONTAINER, "-v", f"{INSTALL}:{SCRIPTS_IN}/{INSTALL.name}:ro",
           "-v", f"{ENGINE}:{SCRIPTS_IN}/{ENGINE.name}:ro", image, "sleep", "infinity")
    before = probe(whats)

    say("pass A: an engine already runs (stub docker whose info answers); nothing else of the table is there; "
        "through docker-engine.sh, as make demo, make bench and the image builds reach it")
    docker("exec", "-i", CONTAINER, "sh", "-c", "cat >/usr/local/bin/docker && chmod 755 /usr/local/bin/docker",
           stdin=STUB_DOCKER)
    if "[docker] engine running" not in run_install("A", ENGINE)[0]:
        problems.append("pass A: docker-engine.sh did not take the running engine as it is")
    after_a = probe(whats)
    installed = [w for w in whats if not before[w].present and after_a[w].present and w not in engine_whats]
    say(f"pass A installed: {' '.join(installed)}")
    for what in whats:
        if what in engine_whats:
            continue
        if not after_a[what].present:
            problems.append(f"pass A (engine running): {what} is missing after the install step")
    if package_installed("docker.io") or after_a.get("dockerd", Probe(False)).present:
        problems.append("pass A: docker.io was installed although an engine answers")

    say("pass B: no engine and no Docker at all; the tools of pass A are there")
    docker("exec", CONTAINER, "rm", "/usr/local/bin/docker")
    run_install("B")
    after_b = probe(whats)
    for what in whats:
        found = after_b[what]
        row = row_for(what, rows)
        where = ", ".join(needed.get(what, ["install-packages.sh's table"])[:3])
        if not found.present:
            problems.append(f"{what} (called at {where}) is missing after the install step: "
                            "add a row to scripts/install-packages.sh")
        elif row is None and not (found.essential or found.priority == "required"):
            problems.append(f"{what} (called at {where}) is there only because the test image has "
                            f"{found.package} (Priority: {found.priority or '?'}): add a row to "
                            "scripts/install-packages.sh")
    for row in rows:
        if not package_installed(row.package):
            problems.append(f"row {row.what}: package {row.package} is not installed after pass B")
    extra = docker("exec", CONTAINER, "bash", "-c",
                   "python3 -m venv /tmp/venv-check && /tmp/venv-check/bin/python -c 'import pip' && echo venv-ok; "
                   "locale -a; ls /usr/share/locale/ru/LC_MESSAGES/ | grep -x 'postgres-[0-9]*.mo' || true",
                   check=False).stdout.split()
    if "venv-ok" not in extra:
        problems.append("python3 -m venv does not work after the install step")
    generated = {loc.lower().replace("-", "") for loc in extra}
    for loc in host_locales():
        if loc not in generated:
            problems.append(f"locale {loc} is not generated after the install step")
    if not any(w.startswith("postgres-") for w in extra):
        problems.append("PostgreSQL's Russian messages (/usr/share/locale/ru/LC_MESSAGES/postgres-N.mo) are missing")

    say("pass C: everything present, apt-get made to fail: nothing may be installed")
    docker("exec", "-i", CONTAINER, "sh", "-c",
           "mkdir -p /opt/no-apt && cat >/opt/no-apt/apt-get && chmod 755 /opt/no-apt/apt-get", stdin=NO_APT)
    no_apt_path = "PATH=/opt/no-apt:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    output, took = run_install("C", env=(no_apt_path,))
    if "installing" in output or "generating" in output:
        problems.append("pass C: the install step installed something although everything was present")
    if took > 10:
        problems.append(f"pass C: the install step took {took:.1f} s with nothing to do")

    print("\n  command                 package (how)                      called at", flush=True)
    for what in whats:
        found = after_b[what]
        row = row_for(what, rows)
        origin = "Essential" if found.essential else found.priority
        how = f"{row.package} (row)" if row else f"{found.package} ({origin})"
        print(f"  {what:22}  {how:33}  {(needed.get(what) or ['-'])[0]}", flush=True)
    if problems:
        raise CheckFailed("\n".join(problems))


def main() -> int:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that the container is removed
    start = time.monotonic()
    try:
        needed = needed_commands()
        rows = table()
        say(f"scan: {len(needed)} commands that this machine runs for the project "
            f"(venv commands left out: pip installs them)")
        if docker("info", check=False, timeout=60).returncode != 0:
            raise CheckFailed("no Docker engine answers (scripts/docker-engine.sh starts one): this check needs it")
        try:
            check(needed, rows)
        finally:
            remove_container()
    except CheckFailed as exc:
        say("FAILED:\n" + str(exc))
        return 1
    say(f"passed in {time.monotonic() - start:.0f} s")
    return 0


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())
