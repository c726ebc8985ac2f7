# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A day-2 test cluster: 1 primary + N standbys on systemd containers, a ledger client container, the two-file
inventory the day-2 playbooks read and rewrite, and the checks run after every operation.

Used by tests/day2/test_chain.py and scripts/bench_day2.py. Inventory contract (the lead's playbooks):
  base.yml    all.hosts.<name> (docker connection, su become) and all.vars (replication password); the
              synchronous standby carries `pgrepl_sync: true` as a host variable.
  groups.yml  only all.children.primary.hosts (one) and all.children.standby.hosts; the day-2 playbooks
              rewrite it when given `-e pgrepl_inventory_file=<it>`.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.util
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Optional

import yaml
from d2_docker import dexec, docker, ip_of, start_client, start_hosts
from d2_ledger import CLIENT_DIR, OUT_DIR, LedgerClient

from ansible_collections.pgrepl.streaming.plugins.module_utils._lsn import parse_lsn

ROOT = Path(__file__).resolve().parents[2]
# Names of the chained test's containers and network (scripts/bench_day2.py uses pgrepl-bd2-), and the client image.
# PGREPL_D2_PREFIX gives a run its own names: the session start removes every container with the prefix, so two
# runs at once (two developers' sessions on one engine) must not share it.
TEST_PREFIX = os.environ.get("PGREPL_D2_PREFIX", "pgrepl-d2-")
CLIENT_IMAGE = "pgrepl-test/client:current"
VENV_BIN = Path(sys.executable).parent
# Throwaway secrets for throwaway containers.
REPLICATION_PASSWORD = "day2-only-replication-password"
LEDGER_USER = "ledger"
LEDGER_PASSWORD = "day2-only-ledger-password"
LEDGER_TABLE = "ledger"
# pg_dumpall's \restrict key: fixed, so that dumps of different nodes compare equal (027_stream_regress does so).
RESTRICT_KEY = "pgrepl"
PLAYBOOK_TIMEOUT = 900
CATCH_UP_TIMEOUT = 120


# Runs ansible-playbook in place of subprocess.run: (argv, environment, cwd) -> (exit code, stdout, stderr).
Runner = Callable[[list[str], dict[str, str], Path], tuple[int, str, str]]


class ClusterError(Exception):
    """A step of the test setup (not of the code under test) failed."""


@dataclasses.dataclass(frozen=True)
class HostKind:
    """How a chain's hosts differ from the images' defaults, the way users' hosts do (issue 10): the cluster's
    locale and encoding, the managed host's own locale, and how the nodes address each other."""

    # pg_createcluster options of every node's cluster (PGREPL_CLUSTER_OPTS of the image's first-boot service).
    cluster_opts: str = ""
    # LANG/LC_ALL of the managed hosts: what the modules (run through `docker exec`) see.
    host_locale: str = ""
    # A dual-stack network with this IPv6 subnet (else IPv4 only).
    ipv6_subnet: str = ""
    # pgrepl_address of each node: "auto" (unset: detected on the host), "ipv6" (its IPv6 literal) or "dns"
    # (its name, resolved by each node).
    addressing: str = "auto"
    # Nodes (by index) whose IPv4 address is removed after boot and that leave pgrepl_address unset: the
    # detection must find their IPv6 address.
    ipv4_flushed: tuple[int, ...] = ()

    def describe(self) -> str:
        parts = [f"cluster {self.cluster_opts or 'C.UTF-8 (image default)'}"]
        if self.host_locale:
            parts.append(f"host locale {self.host_locale}")
        parts.append(f"addresses {self.addressing}" + (" on a dual-stack network" if self.ipv6_subnet else ""))
        if self.ipv4_flushed:
            parts.append(f"IPv4 removed on n{', n'.join(map(str, self.ipv4_flushed))} (IPv6 detected)")
        return "; ".join(parts)


def scram_verifier(password: str) -> str:
    """A SCRAM-SHA-256 verifier computed here, so the password itself never reaches the server or a log: the
    collection's own implementation (plugins/module_utils/_scram.py, stdlib only), loaded from the tree."""
    spec = importlib.util.spec_from_file_location("pgrepl_scram", ROOT / "plugins" / "module_utils" / "_scram.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module.build_verifier(password)


def ansible_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "ANSIBLE_COLLECTIONS_PATH": str(ROOT / ".build" / "collections"),
        "ANSIBLE_HOME": str(ROOT / ".build" / "ansible-home"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_RETRY_FILES_ENABLED": "false",
        "ANSIBLE_DEPRECATION_WARNINGS": "false",
    })
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


@dataclasses.dataclass
class PlaybookRun:
    name: str
    argv: list[str]
    returncode: int
    seconds: float
    started: float  # wall time
    log: Path
    output: str
    report: Optional[dict]

    @property
    def command(self) -> str:
        return shlex.join(["ansible-playbook", *self.argv[1:]])

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.output.rstrip().splitlines()[-lines:])

    def describe(self) -> str:
        return (f"$ {self.command}\nexit {self.returncode} after {self.seconds:.1f} s (log: {self.log})\n"
                f"{self.tail()}")


@dataclasses.dataclass
class DumpResult:
    nodes: list[str]
    identical: bool
    detail: str


class DayTwoCluster:
    """Containers `<prefix><tag>-n0..nN` (n0 the first primary) and `<prefix><tag>-client` on network
    `<prefix><tag>`; files under `workdir`."""

    def __init__(self, prefix: str, tag: str, image: str, client_image: str, workdir: Path, standbys: int = 2,
                 sync: tuple[int, ...] = (2,), kind: HostKind = HostKind(),
                 host_vars: Optional[dict[int, dict[str, object]]] = None,
                 group_vars: Optional[dict[str, object]] = None) -> None:
        self.prefix = prefix
        # Inventory variables a test adds: per node (by index) and for all nodes.
        self.extra_host_vars = host_vars or {}
        self.extra_group_vars = group_vars or {}
        self.tag = tag
        self.image = image
        self.client_image = client_image
        self.workdir = workdir
        self.names = [f"{prefix}{tag}-n{i}" for i in range(standbys + 1)]
        self.client = f"{prefix}{tag}-client"
        self.network = f"{prefix}{tag}"
        # Nodes carrying pgrepl_sync: true (by index); sync_host is the last of them.
        self.sync_hosts = [self.names[i] for i in sync]
        self.sync_host = self.sync_hosts[-1] if self.sync_hosts else None
        self.base_file = workdir / "base.yml"
        self.groups_file = workdir / "groups.yml"
        self.report_file = workdir / "report.json"
        self.logdir = workdir / "logs"
        self.ledger_dir = workdir / "ledger"
        self.kind = kind
        self.flushed = [self.names[i] for i in kind.ipv4_flushed]
        # The address the ledger client connects to and each server reports (inet_server_addr()), by container.
        self.address: dict[str, str] = {}
        # What each node's peers connect to (pg_stat_wal_receiver.sender_host on its standbys): its
        # pgrepl_address, or the address the roles detect when it has none.
        self.peer_host: dict[str, str] = {}
        self.version = ""
        self.runs: list[PlaybookRun] = []
        self._dump_opts: Optional[list[str]] = None

    # --- containers ------------------------------------------------------------------------------------------

    def start(self) -> None:
        if self.workdir.exists():
            for path in sorted(self.workdir.rglob("*"), reverse=True):
                if path.is_file() or path.is_symlink():
                    path.unlink()
        self.logdir.mkdir(parents=True, exist_ok=True)
        self.ledger_dir.mkdir(parents=True, exist_ok=True)
        kind = self.kind
        env = {"PGREPL_CLUSTER_OPTS": kind.cluster_opts} if kind.cluster_opts else {}
        if kind.host_locale:
            env.update({"LANG": kind.host_locale, "LC_ALL": kind.host_locale})
        start_hosts(self.names, self.image, self.network, env=env, ipv6_subnet=kind.ipv6_subnet or None,
                    net_admin=tuple(self.flushed))
        start_client(self.client, self.client_image, self.network,
                     {str(Path(__file__).resolve().parent): f"{CLIENT_DIR}:ro", str(self.ledger_dir): OUT_DIR})
        for name in self.flushed:
            # Without IPv4 it cannot reach the package mirror (this machine has no IPv6 route out): psycopg comes
            # first, as an IPv6-only host has it from its own mirror; the roles then install nothing there.
            dexec(name, "sh", "-c", "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "
                                    "--no-install-recommends python3-psycopg >/dev/null", timeout=600)
            dexec(name, "ip", "-4", "addr", "flush", "dev", "eth0")
        family = 6 if kind.addressing == "ipv6" else 4
        for name in [*self.names, self.client]:
            self.address[name] = ip_of(name, self.network, 6 if name in self.flushed else family)
            if not self.address[name]:
                raise ClusterError(f"{name} has no IPv{family} address on {self.network}")
        for name in self.names:
            self.peer_host[name] = name if kind.addressing == "dns" and name not in self.flushed else self.address[name]
        self.version = dexec(self.names[0], "sh", "-c", "ls /usr/lib/postgresql | sort -n | tail -1")

    def destroy(self) -> None:
        docker("rm", "-f", *self.names, self.client, check=False, timeout=180)
        docker("network", "rm", self.network, check=False)

    @property
    def unit(self) -> str:
        return f"postgresql@{self.version}-main"

    @property
    def data_dir(self) -> str:
        return f"/var/lib/postgresql/{self.version}/main"

    @property
    def conf_dir(self) -> str:
        return f"/etc/postgresql/{self.version}/main"

    @property
    def bin_dir(self) -> str:
        return f"/usr/lib/postgresql/{self.version}/bin"

    def name_of(self, address: str) -> str:
        for name, addr in self.address.items():
            if addr == address:
                return name
        return address

    # --- SQL and services --------------------------------------------------------------------------------------

    def psql(self, node: str, query: str, db: str = "postgres", check: bool = True, timeout: float = 120) -> str:
        return dexec(node, "psql", "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-d", db, "-c", query,
                     user="postgres", check=check, timeout=timeout)

    def accepting(self, node: str) -> bool:
        return docker("exec", "-u", "postgres", node, "pg_isready", "-q", check=False).returncode == 0

    def systemctl(self, node: str, *argv: str) -> str:
        return dexec(node, "systemctl", *argv, self.unit, check=False)

    def stop_server(self, node: str) -> None:
        dexec(node, "systemctl", "stop", self.unit)

    def start_server(self, node: str) -> None:
        dexec(node, "systemctl", "start", self.unit)

    def kill_server(self, node: str) -> None:
        """SIGKILL to the postmaster and every backend (systemd kills the whole unit); the container stays up."""
        dexec(node, "systemctl", "kill", "--signal=SIGKILL", self.unit)
        deadline = time.monotonic() + 30
        while self.accepting(node) or self.systemctl(node, "is-active") == "active":
            if time.monotonic() > deadline:
                raise ClusterError(f"{node}: the server still runs 30 s after SIGKILL")
            time.sleep(0.1)

    # --- inventory ---------------------------------------------------------------------------------------------

    def write_inventory(self) -> None:
        hosts = {}
        for index, name in enumerate(self.names):
            host: dict[str, object] = {"pgrepl_sync": True} if name in self.sync_hosts else {}
            if self.kind.addressing != "auto" and name not in self.flushed:
                host["pgrepl_address"] = self.peer_host[name]
            host.update(self.extra_host_vars.get(index, {}))
            hosts[name] = host or None
        base = {"all": {
            "hosts": hosts,
            "vars": {
                "ansible_connection": "community.docker.docker",
                "ansible_python_interpreter": "/usr/bin/python3",
                "ansible_become_method": "ansible.builtin.su",
                "pgrepl_replication_password": REPLICATION_PASSWORD,
                **self.extra_group_vars,
            },
        }}
        self.base_file.write_text(yaml.safe_dump(base, default_flow_style=False, sort_keys=False))
        self.set_groups(self.names[0], self.names[1:])

    def set_groups(self, primary: str, standbys: list[str], unreachable: tuple[str, ...] = ()) -> None:
        """groups.yml; the hosts in `unreachable` get an ansible_host that names no container, so Ansible cannot
        reach them (their servers run on as they are)."""
        def host(name: str) -> Optional[dict[str, str]]:
            return {"ansible_host": f"{self.prefix}no-such-container"} if name in unreachable else None

        groups = {"all": {"children": {
            "primary": {"hosts": {primary: host(primary)}},
            "standby": {"hosts": {name: host(name) for name in standbys}},
        }}}
        self.groups_file.write_text(yaml.safe_dump(groups, default_flow_style=False, sort_keys=False))

    def groups(self) -> tuple[str, list[str]]:
        """(primary, standbys) as groups.yml says now."""
        data = yaml.safe_load(self.groups_file.read_text()) or {}
        children = (data.get("all") or {}).get("children") or {}
        primary = list(((children.get("primary") or {}).get("hosts") or {}).keys())
        standbys = list(((children.get("standby") or {}).get("hosts") or {}).keys())
        if len(primary) != 1:
            raise ClusterError(f"{self.groups_file} names {len(primary)} primaries: {primary}")
        return primary[0], standbys

    # --- playbooks ---------------------------------------------------------------------------------------------

    def playbook(self, name: str, *extra: str, label: str = "", check: bool = False,
                 runner: Optional[Runner] = None) -> PlaybookRun:
        """`ansible-playbook -i base.yml -i groups.yml pgrepl.streaming.<name> -e ...` through the collection path;
        day-2 operations get pgrepl_inventory_file (groups.yml) and pgrepl_report_file. `runner(argv, env, cwd)`
        runs it instead of subprocess.run and returns (exit code, stdout, stderr): tests/faults interrupts it."""
        argv = [str(VENV_BIN / "ansible-playbook"), "-i", str(self.base_file), "-i", str(self.groups_file),
                f"pgrepl.streaming.{name}"]
        day2 = name not in ("site", "status")
        if day2:
            self.report_file.unlink(missing_ok=True)
            argv += ["-e", f"pgrepl_inventory_file={self.groups_file}", "-e", f"pgrepl_report_file={self.report_file}"]
        for item in extra:
            argv += ["-e", item]
        if check:
            argv.append("--check")
        log = self.logdir / f"{len(self.runs) + 1:02d}-{name}{'-' + label if label else ''}.log"
        started = time.time()
        start = time.monotonic()
        if runner is None:
            proc = subprocess.run(argv, capture_output=True, text=True, env=ansible_env(), cwd=self.workdir,
                                  timeout=PLAYBOOK_TIMEOUT, check=False)
            returncode, stdout, stderr = proc.returncode, proc.stdout, proc.stderr
        else:
            returncode, stdout, stderr = runner(argv, ansible_env(), self.workdir)
        seconds = time.monotonic() - start
        output = stdout + (("\n[stderr]\n" + stderr) if stderr.strip() else "")
        log.write_text(f"$ {shlex.join(argv)}\n{output}\n[exit {returncode} after {seconds:.1f} s]\n")
        report = None
        if day2 and self.report_file.exists():
            try:
                report = json.loads(self.report_file.read_text())
            except json.JSONDecodeError:
                report = {"unreadable": self.report_file.read_text()[:2000]}
        run = PlaybookRun(name, argv, returncode, seconds, started, log, output, report)
        self.runs.append(run)
        return run

    # --- ledger ------------------------------------------------------------------------------------------------

    def prepare_ledger(self) -> None:
        """Before site: the ledger's login role (SCRAM) and table on the first primary, and on every node the
        pg_hba line for the client (in /etc/postgresql, so clones keep it); the client's passfile."""
        primary = self.names[0]
        verifier = scram_verifier(LEDGER_PASSWORD)
        self.psql(primary, f"CREATE ROLE {LEDGER_USER} LOGIN PASSWORD '{verifier}'")
        self.psql(primary, f"CREATE TABLE {LEDGER_TABLE} (id bigint PRIMARY KEY, "
                           "seq bigint GENERATED ALWAYS AS IDENTITY, "
                           "committed_at timestamptz NOT NULL DEFAULT clock_timestamp(), "
                           "server inet DEFAULT inet_server_addr())")
        self.psql(primary, f"GRANT SELECT, INSERT ON {LEDGER_TABLE} TO {LEDGER_USER}")
        client = self.address[self.client]
        line = f"host postgres {LEDGER_USER} {client}/{128 if ':' in client else 32} scram-sha-256"
        for node in self.names:
            dexec(node, "sh", "-c", f"echo {shlex.quote(line)} >> {self.conf_dir}/pg_hba.conf", user="postgres")
            self.psql(node, "SELECT pg_reload_conf()")
        dexec(self.client, "sh", "-c", "umask 077 && cat > /root/.pgpass",
              stdin=f"*:*:postgres:{LEDGER_USER}:{LEDGER_PASSWORD}\n")

    def conninfo(self) -> str:
        hosts = ",".join(self.address[name] for name in self.names)
        return (f"host={hosts} port=5432 dbname=postgres user={LEDGER_USER} passfile=/root/.pgpass "
                "target_session_attrs=read-write connect_timeout=2 application_name=ledger client_encoding=UTF8 "
                "keepalives=1 keepalives_idle=2 keepalives_interval=1 keepalives_count=3")

    def ledger(self, interval: float = 0.01) -> LedgerClient:
        return LedgerClient(self.client, self.ledger_dir, self.conninfo(), interval)

    def present_ids(self, node: str) -> set[int]:
        out = self.psql(node, f"SELECT id FROM {LEDGER_TABLE}", timeout=300)  # noqa: S608 (a constant)
        return {int(line) for line in out.split()}

    # --- replication state -------------------------------------------------------------------------------------

    def wal_position(self, node: str) -> int:
        return parse_lsn(self.psql(node, "SELECT pg_current_wal_lsn()"))

    def replay_position(self, node: str) -> Optional[int]:
        out = self.psql(node, "SELECT pg_last_wal_replay_lsn()", check=False)
        return parse_lsn(out) if "/" in out else None

    def receive_position(self, node: str) -> Optional[int]:
        out = self.psql(node, "SELECT pg_last_wal_receive_lsn()", check=False)
        return parse_lsn(out) if "/" in out else None

    def wait_replayed(self, standbys: list[str], target: int, timeout: float = CATCH_UP_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        for node in standbys:
            while True:
                pos = self.replay_position(node)
                if pos is not None and pos >= target:
                    break
                if time.monotonic() > deadline:
                    raise ClusterError(f"{node} replayed {pos} < {target} after {timeout:.0f} s "
                                       f"(wal receiver: {self.receiver(node)})")
                time.sleep(0.1)

    def receiver(self, node: str) -> str:
        return self.psql(node, "SELECT status || ' from ' || sender_host FROM pg_stat_wal_receiver", check=False)

    def streaming_problems(self, primary: str, standbys: list[str]) -> list[str]:
        """Empty when every standby is in recovery and streams from `primary`."""
        problems = []
        want = self.peer_host[primary]
        for node in standbys:
            row = self.psql(node, "SELECT pg_is_in_recovery()::text || '|' || coalesce((SELECT status || '|' || "
                                  "sender_host FROM pg_stat_wal_receiver), 'none')", check=False)
            if row != f"true|streaming|{want}":
                problems.append(f"{node}: recovery|receiver|sender = {row or 'no answer'} (want true|streaming|{want})")
        return problems

    def wait_streaming(self, primary: str, standbys: list[str], timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        problems = self.streaming_problems(primary, standbys)
        while problems:
            if time.monotonic() > deadline:
                raise ClusterError("not every standby streams: " + "; ".join(problems))
            time.sleep(0.3)
            problems = self.streaming_problems(primary, standbys)

    # --- dumps, compared the way src/test/recovery/t/027_stream_regress.pl compares them ----------------------

    def dump_options(self, node: str) -> list[str]:
        """--no-sync and a fixed --restrict-key where pg_dumpall has it; --no-statistics where it has that."""
        if self._dump_opts is None:
            helptext = dexec(node, "pg_dumpall", "--help", user="postgres")
            opts = ["--no-sync"]
            if "--restrict-key" in helptext:
                opts.append(f"--restrict-key={RESTRICT_KEY}")
            if "--no-statistics" in helptext:
                opts.append("--no-statistics")
            self._dump_opts = opts
        return self._dump_opts

    def advance_sequences(self, primary: str) -> None:
        """Every sequence set to its next value, so that the standbys' copies (WAL-logged ahead of use) match."""
        for db in self.psql(primary, "SELECT datname FROM pg_database WHERE datallowconn ORDER BY 1").split():
            self.psql(primary, "SELECT setval(seqrelid, nextval(seqrelid)) FROM pg_sequence", db=db)

    def dump(self, node: str, primary: bool) -> str:
        opts = self.dump_options(node) + (["--no-unlogged-table-data"] if primary else [])
        return dexec(node, "pg_dumpall", *opts, user="postgres", timeout=300)

    def compare_dumps(self, primary: str, standbys: list[str]) -> DumpResult:
        """Writes must be stopped (ledger paused). Sequences advanced on the primary, every standby waited for
        until it replayed the primary's WAL position, then pg_dumpall of each, compared with the primary's."""
        self.advance_sequences(primary)
        self.wait_replayed(standbys, self.wal_position(primary))
        reference = self.dump(primary, primary=True)
        details = []
        for node in standbys:
            text = self.dump(node, primary=False)
            if text != reference:
                (self.workdir / f"dump-{primary}.sql").write_text(reference)
                (self.workdir / f"dump-{node}.sql").write_text(text)
                diff = list(difflib.unified_diff(reference.splitlines(), text.splitlines(), primary, node,
                                                 lineterm="", n=1))
                details.append("\n".join(diff[:40]))
        nodes = [primary, *standbys]
        if details:
            return DumpResult(nodes, False, "\n".join(details))
        return DumpResult(nodes, True, f"{len(nodes)} dumps identical ({len(reference)} bytes, "
                                       f"{' '.join(self.dump_options(primary))})")

    # --- "nothing changed": one snapshot per node --------------------------------------------------------------

    def snapshot(self, node: str) -> dict[str, str]:
        """What a refused operation must leave as it was on this node."""
        script = (
            'export LC_ALL=C; D=$1; C=$2; B=$3\n'
            '"$B/pg_controldata" -D "$D" | grep -E "^(Database cluster state|Latest checkpoint location|'
            'Latest checkpoint.s TimeLineID|Latest checkpoint.s REDO location):"\n'
            'echo "postgresql.auto.conf sha256: $(sha256sum "$D/postgresql.auto.conf" | cut -c1-64)"\n'
            'echo "pg_hba.conf sha256: $(sha256sum "$C/pg_hba.conf" | cut -c1-64)"\n'
            'if [ -e "$D/standby.signal" ]; then echo "standby.signal: present"\n'
            'else echo "standby.signal: absent"; fi\n'
            'if pg_isready -q; then\n'
            '  psql -X -A -t -q -c "SELECT \'postmaster start time: \' || pg_postmaster_start_time()" '
            '-c "SELECT \'pg_is_in_recovery: \' || pg_is_in_recovery()" '
            '-c "SELECT \'synchronous_standby_names: \' || current_setting(\'synchronous_standby_names\')" '
            '-c "SELECT \'slot \' || slot_name || \': \' || slot_type || \' active=\' || active '
            'FROM pg_replication_slots ORDER BY slot_name"\n'
            'else echo "server: not accepting connections"; fi\n'
        )
        out = dexec(node, "sh", "-c", script, "snapshot", self.data_dir, self.conf_dir, self.bin_dir, user="postgres")
        state = {}
        for line in out.splitlines():
            key, sep, value = line.partition(":")
            if sep:
                state[key.strip()] = value.strip()
        return state

    def snapshots(self, nodes: Optional[list[str]] = None) -> dict[str, dict[str, str]]:
        return {node: self.snapshot(node) for node in (nodes or self.names)}

    def quiesce_checkpoints(self, primary: str, standbys: list[str]) -> None:
        """A checkpoint on the primary, then a restartpoint on each standby once it replayed it: the next
        time-driven one is checkpoint_timeout away, so none falls inside a refusal's before/after snapshots."""
        self.psql(primary, "CHECKPOINT")
        target = self.wal_position(primary)
        live = [node for node in standbys if self.accepting(node)]
        self.wait_replayed(live, target)
        for node in live:
            self.psql(node, "CHECKPOINT")


def snapshot_diff(before: dict[str, dict[str, str]], after: dict[str, dict[str, str]]) -> list[str]:
    changes = []
    for node in before:
        keys = sorted(set(before[node]) | set(after.get(node, {})))
        for key in keys:
            old = before[node].get(key, "(absent)")
            new = after.get(node, {}).get(key, "(absent)")
            if old != new:
                changes.append(f"{node}: {key}: {old} -> {new}")
    return changes
