"""Throwaway PostgreSQL clusters on loopback for the module tests: a primary and a streaming standby."""

from __future__ import annotations

import contextlib
import fcntl
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

SUPERUSER_PASSWORD = "bench-superuser-pw-7Qx"  # only for the throwaway test clusters


def wait_for(what: str, probe: Any, timeout: float = 40.0) -> Any:
    """Poll probe() until it returns something truthy, and return that (bounded: an AssertionError naming what)."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.2)


def find_bin_dir() -> Path:
    """The newest installed PostgreSQL server binaries (Debian layout), or PG_BIN_DIR."""
    if os.environ.get("PG_BIN_DIR"):
        return Path(os.environ["PG_BIN_DIR"])
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    if not candidates:
        raise RuntimeError("no PostgreSQL server found under /usr/lib/postgresql: run `make deps` first")
    return candidates[-1].parent


# Ports for the test servers, and the closed ports the unreachable-server cases use, come from a range below the
# kernel's ephemeral ports (32768-60999 by default: an outgoing connection never holds one of ours) and each is
# reserved for the life of this process by an flock on a file all pytest processes share. So parallel workers
# (pytest-xdist), other pytest runs on the machine and this process's own later calls never get the same port,
# and a port handed out as closed stays closed. Each xdist worker starts its search in a block of its own.
PORT_RANGE = (20000, 32000)
PORT_LOCK_DIR = Path(tempfile.gettempdir()) / "pgrepl-test-ports"
_PORT_BLOCK = 500
_reserved_ports: dict[int, int] = {}  # port -> the descriptor holding its lock (closed by the OS at exit)


def _worker_index() -> int:
    """0 outside xdist, N+1 for xdist worker gwN."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    return int(worker[2:]) + 1 if worker.startswith("gw") and worker[2:].isdigit() else 0


def _lock_port(port: int) -> bool:
    """Take the port's lock without waiting; it is held until this process ends."""
    try:
        fd = os.open(PORT_LOCK_DIR / f"{port}.lock", os.O_RDONLY | os.O_CREAT, 0o666)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return False
    _reserved_ports[port] = fd
    return True


def _nothing_bound(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A loopback TCP port that nothing listens on, reserved for this process (see PORT_RANGE)."""
    if not PORT_LOCK_DIR.is_dir():
        PORT_LOCK_DIR.mkdir(exist_ok=True)
        with contextlib.suppress(OSError):
            os.chmod(PORT_LOCK_DIR, 0o1777)  # shared by every user's test runs
    low, high = PORT_RANGE
    size = high - low
    start = (_worker_index() * _PORT_BLOCK) % size
    for step in range(size):
        port = low + (start + step) % size
        if port in _reserved_ports or not _lock_port(port):
            continue
        if _nothing_bound(port):
            return port
        # Bound by something else: keep the lock (so no one here tries it again) and look further.
    raise RuntimeError(f"no free loopback port in {low}-{high - 1} (locks in {PORT_LOCK_DIR})")


def _as_postgres(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess:
    """initdb and the server refuse to run as root: drop to the postgres OS user when we are root."""
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kwargs)


def _chown_postgres(path: Path) -> None:
    if os.geteuid() == 0:
        entry = pwd.getpwnam("postgres")
        os.chown(path, entry.pw_uid, entry.pw_gid)


@dataclass
class PgCluster:
    """One server: data dir, private socket dir, log file, loopback port."""

    base: Path
    name: str
    bin_dir: Path = field(default_factory=find_bin_dir)
    port: int = field(default_factory=free_port)
    # Listen on ::1 too (IPv6 loopback), for tests of IPv6 addresses in pg_hba, passfile and primary_conninfo.
    listen_ipv6: bool = False
    # initdb's encoding and locale (SQL_ASCII, tr_TR.UTF-8...) and the server's lc_messages (ru_RU.UTF-8...): the
    # locales must exist on the host (the install step generates them).
    encoding: str = "UTF8"
    locale: str = "C"
    lc_messages: str | None = None

    @property
    def data_dir(self) -> Path:
        return self.base / self.name / "data"

    @property
    def socket_dir(self) -> Path:
        return self.base / self.name / "sock"

    @property
    def log_file(self) -> Path:
        return self.base / self.name / "server.log"

    @property
    def hba_file(self) -> Path:
        return self.data_dir / "pg_hba.conf"

    def _prepare_dirs(self) -> None:
        for path in (self.base, self.base / self.name, self.socket_dir):
            path.mkdir(parents=True, exist_ok=True)
            _chown_postgres(path)

    def _write_local_conf(self) -> None:
        with open(self.data_dir / "postgresql.conf", "a", encoding="utf-8") as conf:
            conf.write(
                f"\n# pgrepl test bench\nport = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{self.socket_dir}'\nlog_statement = 'all'\n"
                "log_line_prefix = '%m [%p] %q%u@%d '\nwal_level = replica\nmax_wal_senders = 10\n"
                "max_replication_slots = 10\nhot_standby = on\nwal_log_hints = on\n"
                "shared_buffers = 16MB\nfsync = off\n"
            )
            if self.listen_ipv6:
                conf.write("listen_addresses = '127.0.0.1,::1'\n")

    def init(self) -> None:
        """initdb with a scram password for TCP and trust on the private socket."""
        self._prepare_dirs()
        pwfile = self.base / self.name / "pwfile"
        pwfile.write_text(SUPERUSER_PASSWORD + "\n", encoding="utf-8")
        _chown_postgres(pwfile)
        _as_postgres([str(self.bin_dir / "initdb"), "-D", str(self.data_dir), "-U", "postgres",
                      f"--pwfile={pwfile}", "--auth-local=trust", "--auth-host=scram-sha-256",
                      "--no-sync", "-E", self.encoding, f"--locale={self.locale}",
                      *([f"--lc-messages={self.lc_messages}"] if self.lc_messages else [])])
        pwfile.unlink()
        self._write_local_conf()

    def clone_from(self, primary: PgCluster, slot: str | None = None) -> None:
        """A real streaming standby: pg_basebackup -R over the primary's private socket."""
        self._prepare_dirs()
        cmd = [str(self.bin_dir / "pg_basebackup"), "-D", str(self.data_dir), "-h", str(primary.socket_dir),
               "-p", str(primary.port), "-U", "postgres", "-R", "-X", "stream", "--checkpoint=fast", "--no-sync"]
        if slot:
            cmd += ["-S", slot, "-C"]
        _as_postgres(cmd)
        # Same config lines as the primary but our own port and socket (they come last, so they win).
        self._write_local_conf()

    def append_conf(self, lines: str) -> None:
        """Lines at the end of postgresql.conf (the last setting of a name wins)."""
        if lines:
            with open(self.data_dir / "postgresql.conf", "a", encoding="utf-8") as conf:
                conf.write(lines if lines.endswith("\n") else lines + "\n")

    def start(self) -> None:
        _as_postgres([str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-l", str(self.log_file),
                      "-w", "-t", "60", "start"])

    def stop(self, mode: str = "fast") -> None:
        if (self.data_dir / "postmaster.pid").exists():
            _as_postgres([str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", mode, "-w", "stop"])

    def restart(self) -> None:
        _as_postgres([str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-l", str(self.log_file),
                      "-w", "-t", "60", "-m", "fast", "restart"])

    def connect(self, **kwargs: Any) -> psycopg.Connection:
        """Superuser connection over the private socket (trust), autocommit."""
        params: dict[str, Any] = {"host": str(self.socket_dir), "port": self.port, "user": "postgres",
                                  "dbname": "postgres", "autocommit": True}
        params.update(kwargs)
        return psycopg.connect(**params)

    def sql(self, query: Any, args: Any = None) -> list[tuple]:
        """Run one statement and return all rows (empty for statements without a result)."""
        with self.connect() as conn, conn.cursor() as cur:
            cur.execute(query, args)
            return cur.fetchall() if cur.description else []

    def scalar(self, query: Any, args: Any = None) -> Any:
        rows = self.sql(query, args)
        return rows[0][0] if rows else None

    def reload(self) -> None:
        """SIGHUP through pg_ctl: needs no connection, so it also works when the rules on disk refuse ours."""
        _as_postgres([str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "reload"])

    def login(self, **overrides: Any) -> dict[str, Any]:
        """Module connection options for this server over TCP with the superuser password."""
        args: dict[str, Any] = {"login_host": "127.0.0.1", "login_port": self.port,
                                "login_user": "postgres", "login_password": SUPERUSER_PASSWORD,
                                "ssl_mode": "disable"}
        args.update(overrides)
        return args

    def log_text(self) -> str:
        return self.log_file.read_text(encoding="utf-8", errors="replace") if self.log_file.exists() else ""

    def wait_streaming(self, timeout: float = 30.0) -> None:
        """Until this standby's WAL receiver streams."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.scalar("SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming'") == 1:
                return
            time.sleep(0.2)
        raise TimeoutError(f"{self.name} did not start streaming within {timeout}s:\n{self.log_text()[-2000:]}")

    def destroy(self) -> None:
        try:
            self.stop("immediate")
        finally:
            shutil.rmtree(self.base / self.name, ignore_errors=True)


class Clusters:
    """The throwaway clusters of one fixture under one base directory: a primary, its streaming standbys (or plain
    copies), other lone servers; destroy() removes them all, whatever state a test left them in."""

    def __init__(self, prefix: str, base: Path | None = None) -> None:
        if base is None:
            base = Path(tempfile.mkdtemp(prefix=f"pgrepl-{prefix}-"))
            os.chmod(base, 0o755)  # the postgres OS user walks into it
        self.base = base
        self.made: list[PgCluster] = []

    def server(self, name: str, conf: str = "", start: bool = True, **options: Any) -> PgCluster:
        """initdb (options: encoding, locale, lc_messages, listen_ipv6), extra postgresql.conf lines, started."""
        cluster = PgCluster(self.base, name, **options)
        self.made.append(cluster)
        cluster.init()
        cluster.append_conf(conf)
        if start:
            cluster.start()
        return cluster

    def standby(self, primary: PgCluster, name: str, slot: str | None = None, conf: str = "",
                start: bool = True) -> PgCluster:
        """pg_basebackup -R of the primary (through its own slot when named); started, it streams."""
        cluster = PgCluster(self.base, name)
        self.made.append(cluster)
        cluster.clone_from(primary, slot=slot)
        cluster.append_conf(conf)
        if start:
            cluster.start()
            cluster.wait_streaming()
        return cluster

    def pair(self, prefix: str, slot: bool = True, primary_conf: str = "", standby_conf: str = "",
             start_standby: bool = True, **options: Any) -> tuple[PgCluster, PgCluster]:
        """A primary <prefix>_primary and its standby <prefix>_standby (slot <prefix>_standby unless slot=False)."""
        primary = self.server(f"{prefix}_primary", conf=primary_conf, **options)
        standby = self.standby(primary, f"{prefix}_standby", slot=f"{prefix}_standby" if slot else None,
                               conf=standby_conf, start=start_standby)
        return primary, standby

    def destroy(self) -> None:
        for cluster in reversed(self.made):
            with contextlib.suppress(subprocess.CalledProcessError):
                cluster.destroy()
        shutil.rmtree(self.base, ignore_errors=True)


@dataclass
class CloneBench:
    """A primary with a replication role and a passfile the postgres OS user reads, for standby_clone tests that
    copy into fresh data directories of their own (test_clone_faults, test_clone_guards)."""

    primary: PgCluster
    clusters: Clusters
    passfile: Path
    role: str
    counter: int = 0

    def target(self, prefix: str) -> PgCluster:
        """A fresh, not yet existing data directory whose parent exists (destroyed with the module's clusters)."""
        self.counter += 1
        cluster = PgCluster(self.clusters.base, f"{prefix}{self.counter}")
        cluster._prepare_dirs()
        self.clusters.made.append(cluster)
        return cluster

    def args(self, data_dir: Path, **overrides: Any) -> dict[str, Any]:
        return {"data_dir": str(data_dir), "primary_host": "127.0.0.1", "primary_port": self.primary.port,
                "replication_user": self.role, "passfile": str(self.passfile), "sslmode": "disable", **overrides}


def clone_bench(clusters: Clusters, role: str, password: str, conf: str = "") -> CloneBench:
    """clusters' primary (with conf), the replication role and its passfile line."""
    primary = clusters.server("primary", conf=conf) if conf else clusters.server("primary")
    primary.sql(sql.SQL("CREATE ROLE {} LOGIN REPLICATION PASSWORD {}").format(
        sql.Identifier(role), sql.Literal(password)))
    passfile = clusters.base / "auth.pgpass"
    passfile.write_text(f"127.0.0.1:{primary.port}:replication:{role}:{password}\n", encoding="utf-8")
    os.chmod(passfile, 0o600)
    entry = pwd.getpwnam("postgres")
    os.chown(passfile, entry.pw_uid, entry.pw_gid)
    return CloneBench(primary=primary, clusters=clusters, passfile=passfile, role=role)


def moved_siblings(data_dir: Path) -> list[str]:
    """What standby_clone left beside a data directory (<name>.pgrepl-*)."""
    return sorted(name for name in os.listdir(data_dir.parent) if name.startswith(data_dir.name + ".pgrepl-"))
