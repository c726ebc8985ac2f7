"""pgrepl.streaming.rewind through Ansible, as root, on servers of this file's own.

The scenario of a failover: primary A and its streaming standby B (cloned through a slot, wal_log_hints on). B is
promoted with pgrepl.streaming.promote, A keeps writing (so the two diverge) and is stopped cleanly. Then A is
rewound against B as `rewind_user`, a role that is not a superuser and got its grants from
pgrepl.streaming.rewind_grants, configured by hand as a standby of B, started, and must stream from B.

Everything lives in one temporary directory and is stopped and removed at the end; the shared bench servers are
not used.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import stat
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest
from psycopg import sql

from ansible_collections.pgrepl.streaming.plugins.module_utils._rewind_grants import rewind_grant_statements

from ansible_runner import run_module
from cluster import SUPERUSER_PASSWORD, Clusters, PgCluster, find_bin_dir, free_port

MODULE = "pgrepl.streaming.rewind"
ROLE = "rewind_user"
PASSWORD = "rewind-user-pw-8Hv"
NOGRANT_ROLE = "rewind_nogrant"
NOGRANT_PASSWORD = "rewind-nogrant-pw-2Lp"


# ---------------------------------------------------------------------------------------------------- helpers


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise TimeoutError(f"timed out waiting for {what}")


def wait_replayed(primary: PgCluster, standby: PgCluster) -> None:
    lsn = primary.scalar("SELECT pg_current_wal_lsn()::text")
    wait_for(lambda: bool(standby.scalar("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,))),
             f"{standby.name} to replay up to {lsn}")


def chown_postgres(path: Path) -> None:
    entry = pwd.getpwnam("postgres")
    os.chown(path, entry.pw_uid, entry.pw_gid)


def write_passfile(path: Path, lines: list[str], mode: int = 0o600) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    os.chmod(path, mode)
    chown_postgres(path)
    return path


def snapshot(root: Path) -> dict[str, tuple]:
    """Every entry below root: type, mode, owner, size, mtime and a hash of regular files."""
    found: dict[str, tuple] = {}
    if not os.path.lexists(root):
        return found
    for current, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(current) / name
            st = path.lstat()
            digest = hashlib.sha256(path.read_bytes()).hexdigest() if stat.S_ISREG(st.st_mode) else ""
            found[str(path.relative_to(root))] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid,
                                                  st.st_size, st.st_mtime_ns, digest)
    return found


def controldata(data_dir: Path) -> dict[str, str]:
    out = subprocess.run([str(find_bin_dir() / "pg_controldata"), "-D", str(data_dir)], capture_output=True,
                         text=True, env=dict(os.environ, LC_ALL="C"), check=True).stdout
    return {key.strip(): value.strip() for key, _sep, value in (line.partition(":") for line in out.splitlines())}


def history_switch(cluster: PgCluster, timeline: int) -> tuple[int, str]:
    """(parent timeline, switch point) of a timeline's history file on a running server."""
    text = cluster.scalar("SELECT pg_read_file(%s)", (f"pg_wal/{timeline:08X}.history",))
    parent, lsn = text.strip().splitlines()[-1].split("\t")[:2]
    return int(parent), lsn


def rows_by_origin(cluster: PgCluster) -> dict[str, int]:
    return dict(cluster.sql("SELECT origin, count(*)::int FROM rewind_probe GROUP BY origin"))


@dataclass
class Env:
    """A (stopped, diverged old primary), B (promoted new primary) and what the tests need around them."""

    base: Path
    auth: Path
    a: PgCluster
    b: PgCluster
    passfile: Path
    clusters: Clusters

    def args(self, data_dir: Path | str, **overrides: Any) -> dict[str, Any]:
        args: dict[str, Any] = {"data_dir": str(data_dir), "source_host": "127.0.0.1", "source_port": self.b.port,
                                "source_user": ROLE, "passfile": str(self.passfile), "sslmode": "disable"}
        args.update(overrides)
        return args


def build_pair(clusters: Clusters, prefix: str, standby_conf: str = "") -> tuple[PgCluster, PgCluster]:
    """Primary A (wal_log_hints on, WAL kept) with rewind_user and its grants, and B streaming from it."""
    a = clusters.server(f"{prefix}_a", conf="wal_log_hints = on\nwal_keep_size = '512MB'\n")
    a.sql(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(ROLE), sql.Literal(PASSWORD)))
    a.sql("CREATE TABLE rewind_probe (id int, origin text, pad text)")
    a.sql("INSERT INTO rewind_probe SELECT g, 'common', repeat('c', 100) FROM generate_series(1, 1000) g")
    b = clusters.standby(a, f"{prefix}_b", slot=f"{prefix}_b", conf=standby_conf)
    return a, b


def diverge(a: PgCluster, b: PgCluster) -> None:
    """After B's promotion: A writes on its old timeline and stops cleanly; B writes on its new one."""
    a.sql("INSERT INTO rewind_probe SELECT g, 'only on A', repeat('a', 100) FROM generate_series(1, 2000) g")
    a.sql("UPDATE rewind_probe SET pad = 'changed on A' WHERE origin = 'common' AND id % 10 = 0")
    a.stop("fast")
    b.sql("INSERT INTO rewind_probe SELECT g, 'only on B', repeat('b', 100) FROM generate_series(1, 500) g")


@pytest.fixture(scope="module")
def env(throwaway: Clusters) -> Env:
    auth = throwaway.base / "auth"
    auth.mkdir(mode=0o755)
    a, b = build_pair(throwaway, "rewind")
    # The real proof that the role needs no superuser: its grants come from rewind_grants, on A, and reach B by
    # replication.
    granted = run_module("pgrepl.streaming.rewind_grants", {"role": ROLE, **a.login()})
    assert granted.get("failed") is not True and granted["changed"] is True, granted
    assert len(granted["granted"]) == 4
    a.sql("CHECKPOINT")
    a.sql("INSERT INTO rewind_probe SELECT g, 'common', repeat('c', 100) FROM generate_series(1001, 1100) g")
    wait_replayed(a, b)
    promoted = run_module("pgrepl.streaming.promote", b.login())
    assert promoted.get("failed") is not True and promoted["outcome"] == "promoted", promoted
    # A role without the grants, created on the new primary, for the refusal cases.
    b.sql(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
        sql.Identifier(NOGRANT_ROLE), sql.Literal(NOGRANT_PASSWORD)))
    diverge(a, b)
    passfile = write_passfile(auth / "rewind.pgpass", [f"127.0.0.1:{b.port}:postgres:{ROLE}:{PASSWORD}"])
    return Env(base=throwaway.base, auth=auth, a=a, b=b, passfile=passfile, clusters=throwaway)


# ---------------------------------------------------------------------------------------------------- the rejoin


def test_rewind_check_mode_then_rewind_then_follow_the_new_primary(env: Env) -> None:
    a, b = env.a, env.b
    assert b.scalar("SELECT rolsuper FROM pg_roles WHERE rolname = %s", (ROLE,)) is False
    assert controldata(a.data_dir)["Database cluster state"] == "shut down"
    assert controldata(a.data_dir)["wal_log_hints setting"] == "on"
    parent, switch_lsn = history_switch(b, 2)
    before = snapshot(a.data_dir)

    predicted = run_module(MODULE, env.args(a.data_dir), check=True, diff=True)
    assert predicted.get("failed") is not True, predicted
    assert predicted["changed"] is True and predicted["outcome"] == "would_rewind"
    assert (predicted["divergence_lsn"], predicted["divergence_timeline"]) == (switch_lsn, parent) == \
        (switch_lsn, 1)
    assert predicted["target_timeline"] == 1 and predicted["source_timeline"] == 2
    assert predicted["last_common_checkpoint_lsn"] and predicted["copy_mb"] is not None
    assert predicted["target_state"] == "shut down" and predicted["target_timeline_after"] == 1
    assert predicted["diff"] == {"before": {"target": {"cluster_state": "shut down", "timeline": 1}},
                                 "after": {"target": {"cluster_state": "in archive recovery", "timeline": 2}}}
    assert "postgresql.conf" in predicted["config_files_from_source"]
    assert any("no changes are made" in line or "Done!" in line for line in predicted["log"]), predicted["log"]
    assert "password=" not in predicted["source_conninfo"] and f"user='{ROLE}'" in predicted["source_conninfo"]
    # --dry-run wrote nothing: every file of A (pg_control included) has its bytes, size and mtime.
    assert snapshot(a.data_dir) == before

    own_conf = (a.data_dir / "postgresql.conf").read_bytes()
    rewound = run_module(MODULE, env.args(a.data_dir), diff=True)
    assert rewound.get("failed") is not True, rewound
    assert rewound["changed"] is True and rewound["outcome"] == "rewound"
    assert rewound["divergence_lsn"] == switch_lsn and rewound["target_timeline_after"] == 2
    assert rewound["log"][-1] == "pg_rewind: Done!"
    assert any(line.endswith("kB (100%) copied") for line in rewound["log"]), rewound["log"]
    assert rewound["diff"]["after"] == {"target": {"cluster_state": "in archive recovery", "timeline": 2}}
    assert any("replaced" in warning and "postgresql.conf" in warning for warning in rewound["warnings"])
    # pg_rewind copied B's postgresql.conf (B's port); keep_config put A's own back, and keeps nothing aside.
    assert "postgresql.conf" in rewound["config_files_kept"]
    assert (a.data_dir / "postgresql.conf").read_bytes() == own_conf
    assert not Path(f"{a.data_dir}.pgrepl-own-config").exists()
    control = controldata(a.data_dir)
    assert control["Database cluster state"] == "in archive recovery"
    assert control["Latest checkpoint's TimeLineID"] == "2"
    assert "BACKUP METHOD: pg_rewind" in (a.data_dir / "backup_label").read_text(encoding="utf-8")
    # The module writes no standby configuration (that is standby_config's job).
    assert not (a.data_dir / "standby.signal").exists()

    rewound_once = snapshot(a.data_dir)
    for check in (True, False):
        again = run_module(MODULE, env.args(a.data_dir), check=check)
        assert again.get("failed") is not True, again
        assert again["changed"] is False and again["outcome"] == "already_rewound", again
        assert "standby_config" in again["msg"]
    assert snapshot(a.data_dir) == rewound_once

    # Make A a standby of B by hand: pg_rewind copied B's postgresql.conf (B's port), so A's own lines go last.
    a._write_local_conf()
    b.sql("SELECT pg_create_physical_replication_slot('rewind_a')")
    auto_conf = a.data_dir / "postgresql.auto.conf"
    auto_conf.write_text(f"primary_conninfo = 'host={b.socket_dir} port={b.port} user=postgres "
                         "application_name=rewind_a'\nprimary_slot_name = 'rewind_a'\n", encoding="utf-8")
    (a.data_dir / "standby.signal").write_text("", encoding="utf-8")
    for path in (auto_conf, a.data_dir / "standby.signal"):
        chown_postgres(path)
    a.start()
    a.wait_streaming()
    assert a.scalar("SELECT sender_port FROM pg_stat_wal_receiver") == b.port
    assert a.scalar("SELECT received_tli FROM pg_stat_wal_receiver") == 2
    assert b.scalar("SELECT count(*) FROM pg_stat_replication WHERE application_name = 'rewind_a' "
                    "AND state = 'streaming'") == 1
    b.sql("INSERT INTO rewind_probe VALUES (9999, 'after the rejoin', 'x')")
    wait_replayed(b, a)
    assert rows_by_origin(a) == {"common": 1100, "only on B": 500, "after the rejoin": 1}
    assert a.scalar("SELECT count(*) FROM rewind_probe WHERE pad = 'changed on A'") == 0

    # A stopped cleanly while following B: same timeline, nothing to rewind, pg_rewind not run, nothing touched.
    a.stop("fast")
    assert controldata(a.data_dir)["Database cluster state"] == "shut down in recovery"
    following = snapshot(a.data_dir)
    for check in (True, False):
        again = run_module(MODULE, env.args(a.data_dir), check=check, diff=True)
        assert again.get("failed") is not True, again
        assert again["changed"] is False and again["outcome"] == "repoint", again
        assert again["target_timeline"] == again["source_timeline"] == 2
        assert again["log"] == [] and "both on timeline 2" in again["msg"]
        assert again["diff"]["before"] == again["diff"]["after"]
    assert snapshot(a.data_dir) == following


def test_a_just_promoted_source_is_refused_until_it_checkpoints(env: Env) -> None:
    # B2 restarts no points for an hour and has many dirty buffers: after promotion without a CHECKPOINT its
    # pg_control keeps naming timeline 1 for minutes, and pg_rewind 15 would then say "no rewind required".
    a2, b2 = build_pair(env.clusters, "rewind_stale", standby_conf="checkpoint_timeout = '1h'\n")
    for statement in rewind_grant_statements(ROLE):
        a2.sql(statement)
    a2.sql("INSERT INTO rewind_probe SELECT g, 'common', repeat('c', 200) FROM generate_series(1, 100000) g")
    a2.sql("CHECKPOINT")
    wait_replayed(a2, b2)
    promoted = run_module("pgrepl.streaming.promote", {**b2.login(), "checkpoint": False})
    assert promoted.get("failed") is not True and promoted["checkpointed"] is False, promoted
    diverge(a2, b2)
    passfile = write_passfile(env.auth / "stale.pgpass", [f"127.0.0.1:{b2.port}:postgres:{ROLE}:{PASSWORD}"])
    args = {**env.args(a2.data_dir), "source_port": b2.port, "passfile": str(passfile)}
    before = snapshot(a2.data_dir)

    assert b2.scalar("SELECT timeline_id FROM pg_control_checkpoint()") == 1
    refused = run_module(MODULE, args, check=True)
    assert refused.get("failed") is True, refused
    assert "the source is on timeline 2 but its pg_control still names timeline 1" in refused["msg"]
    assert "Run CHECKPOINT on the source" in refused["msg"] and "Nothing was changed" in refused["msg"]
    assert snapshot(a2.data_dir) == before

    b2.sql("CHECKPOINT")
    predicted = run_module(MODULE, args, check=True)
    assert predicted.get("failed") is not True, predicted
    assert predicted["changed"] is True and predicted["outcome"] == "would_rewind"
    assert snapshot(a2.data_dir) == before


# ---------------------------------------------------------------------------------------------------- refusals


@dataclass
class Targets:
    """Data directories the refusal cases point at."""

    follower: PgCluster  # a clean, stopped standby of B: nothing to rewind (same timeline)
    diverged: PgCluster  # a standby of B promoted on a timeline of its own, written on, stopped: pg_rewind must run
    crashed: PgCluster  # stopped with -m immediate: "in production"
    nohints: PgCluster  # wal_log_hints off, no checksums
    empty: Path
    passfiles: dict[str, Path]


@pytest.fixture(scope="module")
def targets(env: Env) -> Targets:
    follower = env.clusters.standby(env.b, "rewind_follower", slot="rewind_follower")
    follower.stop("fast")
    diverged = env.clusters.standby(env.b, "rewind_diverged", slot="rewind_diverged")
    diverged.sql("SELECT pg_promote()")
    wait_for(lambda: diverged.scalar("SELECT NOT pg_is_in_recovery()"), "rewind_diverged's promotion")
    diverged.sql("INSERT INTO rewind_probe VALUES (0, 'only on the diverged copy', 'd')")
    diverged.stop("fast")
    crashed = env.clusters.server("rewind_crashed")
    crashed.stop("immediate")
    nohints = env.clusters.server("rewind_nohints", conf="wal_log_hints = off\n")
    nohints.stop("fast")
    empty = env.base / "rewind_empty"
    empty.mkdir()
    chown_postgres(empty)
    port = env.b.port
    passfiles = {
        "wrong": write_passfile(env.auth / "wrong.pgpass", [f"127.0.0.1:{port}:postgres:{ROLE}:not-the-password"]),
        "otherport": write_passfile(env.auth / "otherport.pgpass", [f"127.0.0.1:1:postgres:{ROLE}:{PASSWORD}"]),
        "superuser": write_passfile(env.auth / "superuser.pgpass",
                                    [f"127.0.0.1:{port}:postgres:postgres:{SUPERUSER_PASSWORD}"]),
        "nogrant": write_passfile(env.auth / "nogrant.pgpass",
                                  [f"127.0.0.1:{port}:postgres:{NOGRANT_ROLE}:{NOGRANT_PASSWORD}"]),
        "open": write_passfile(env.auth / "open.pgpass", [f"127.0.0.1:{port}:postgres:{ROLE}:{PASSWORD}"], 0o644),
        "anywhere": write_passfile(env.auth / "anywhere.pgpass", [f"127.0.0.1:*:*:{ROLE}:{PASSWORD}"]),
    }
    return Targets(follower=follower, diverged=diverged, crashed=crashed, nohints=nohints, empty=empty,
                   passfiles=passfiles)


CLOSED_PORT = free_port()
Case = tuple[str, Callable[[Env, Targets], dict[str, Any]], list[str]]
BAD_INPUTS: list[Case] = [
    ("running_target", lambda e, t: e.args(e.b.data_dir),
     ["a server is running on", "postmaster.pid names the live process", "Nothing was changed"]),
    ("crashed_target", lambda e, t: e.args(t.crashed.data_dir),
     ["was not shut down cleanly", "'Database cluster state: in production'", "Start the server once",
      "--no-ensure-shutdown"]),
    ("no_hints_no_checksums", lambda e, t: e.args(t.nohints.data_dir),
     ["has wal_log_hints off and no data checksums", "cannot be rewound safely", "force_reclone"]),
    ("missing_data_dir", lambda e, t: e.args(e.base / "rewind_nowhere"),
     ["data_dir: ", "rewind_nowhere' does not exist"]),
    ("not_a_data_dir", lambda e, t: e.args(t.empty),
     ["rewind_empty' is not a PostgreSQL data directory (no PG_VERSION"]),
    ("relative_data_dir", lambda e, t: e.args("rewind_a/data"), ["data_dir: 'rewind_a/data' must be an absolute path"]),
    ("wrong_password", lambda e, t: e.args(t.follower.data_dir, passfile=str(t.passfiles["wrong"])),
     ["pg_rewind --dry-run against the source", f"the password for {ROLE} in passfile", "is wrong",
      "nothing was changed", "pg_rewind said: pg_rewind: error: connection to server at",
      f'password authentication failed for user "{ROLE}"']),
    ("no_passfile_line", lambda e, t: e.args(t.follower.data_dir, passfile=str(t.passfiles["otherport"])),
     ["has no line matching", "fe_sendauth: no password supplied"]),
    ("closed_port", lambda e, t: e.args(t.follower.data_dir, source_port=CLOSED_PORT,
                                        passfile=str(t.passfiles["anywhere"])),
     [f'pg_rewind: error: connection to server at "127.0.0.1", port {CLOSED_PORT} failed: Connection refused']),
    ("superuser_source_user", lambda e, t: e.args(t.follower.data_dir, source_user="postgres",
                                                  passfile=str(t.passfiles["superuser"])),
     ["source_user: the role 'postgres' is a superuser on the source", "rewind_grants"]),
    ("role_without_grants", lambda e, t: e.args(t.diverged.data_dir, source_user=NOGRANT_ROLE,
                                                passfile=str(t.passfiles["nogrant"])),
     ["permission denied for function", "pgrepl.streaming.rewind_grants"]),
    ("missing_database", lambda e, t: e.args(t.follower.data_dir, source_dbname="rewind_nodb",
                                             passfile=str(t.passfiles["anywhere"])),
     ['database "rewind_nodb" does not exist']),
    ("host_injection", lambda e, t: e.args(t.follower.data_dir, source_host="127.0.0.1 user=postgres"),
     ["source_host: '127.0.0.1 user=postgres' is not one host name"]),
    ("user_injection", lambda e, t: e.args(t.follower.data_dir, source_user="rewind_user' password='x"),
     ["source_user: \"rewind_user' password='x\" is not accepted"]),
    ("dbname_injection", lambda e, t: e.args(t.follower.data_dir, source_dbname="postgres' host='10.9.9.9"),
     ["source_dbname: \"postgres' host='10.9.9.9\" is not accepted"]),
    ("port_out_of_range", lambda e, t: e.args(t.follower.data_dir, source_port=70000),
     ["source_port: 70000 is not a TCP port (1-65535)"]),
    ("port_not_int", lambda e, t: e.args(t.follower.data_dir, source_port="fifty"), ["source_port", "fifty"]),
    ("timeout_zero", lambda e, t: e.args(t.follower.data_dir, timeout=0), ["timeout: 0 is not a number of seconds"]),
    ("os_user_root", lambda e, t: e.args(t.follower.data_dir, os_user="root"), ["os_user: 'root' cannot own"]),
    ("os_user_unknown", lambda e, t: e.args(t.follower.data_dir, os_user="rewind_nosuchuser"),
     ["os_user: 'rewind_nosuchuser' is not a user on this host"]),
    ("passfile_mode", lambda e, t: e.args(t.follower.data_dir, passfile=str(t.passfiles["open"])),
     ["has mode 0644", "chmod 0600"]),
    ("passfile_missing", lambda e, t: e.args(t.follower.data_dir, passfile=str(e.auth / "none.pgpass")),
     ["none.pgpass' does not exist"]),
    ("passfile_in_data_dir", lambda e, t: e.args(t.follower.data_dir, passfile=str(t.follower.data_dir / ".pgpass")),
     ["is inside data_dir"]),
    # (Ansible echoes unknown options in its invocation, so the value here is no real password.)
    ("password_option", lambda e, t: {**e.args(t.follower.data_dir), "source_password": "placeholder"},
     ["Unsupported parameters", "source_password"]),
    ("bin_dir_without_binaries", lambda e, t: e.args(t.follower.data_dir, bin_dir=str(e.auth)),
     ["bin_dir: ", "has no executable pg_controldata"]),
]


@pytest.mark.parametrize("case", BAD_INPUTS, ids=[case[0] for case in BAD_INPUTS])
def test_bad_input_fails_cleanly_and_changes_nothing(env: Env, targets: Targets, case: Case) -> None:
    watched = [targets.follower.data_dir, targets.diverged.data_dir, targets.crashed.data_dir,
               targets.nohints.data_dir, targets.empty]
    before = {path: snapshot(path) for path in watched}
    pid_before = (env.b.data_dir / "postmaster.pid").read_text(encoding="utf-8")
    result = run_module(MODULE, case[1](env, targets))
    assert result.get("failed") is True, result
    for text in case[2]:
        assert text in result["msg"], result["msg"]
    assert "Traceback" not in result["msg"]
    for secret in (PASSWORD, SUPERUSER_PASSWORD, NOGRANT_PASSWORD, "not-the-password"):
        assert secret not in str(result)
    assert {path: snapshot(path) for path in watched} == before
    assert not (env.base / "rewind_nowhere").exists()
    assert (env.b.data_dir / "postmaster.pid").read_text(encoding="utf-8") == pid_before
    assert env.b.scalar("SELECT pg_is_in_recovery()") is False


# ---------------------------------------------------------------------------------------------------- no divergence


@dataclass
class Fork:
    """A failover cut off right after the promotion: standby A of primary P promoted, P's other standby B stopped
    before it saw anything of A's timeline (never repointed), A writing on its new timeline; P, which went on writing
    after the promotion and was then stopped, diverged (it needs a real rewind)."""

    p: PgCluster
    a: PgCluster
    b: PgCluster
    passfile: Path

    def args(self, data_dir: Path, **overrides: Any) -> dict[str, Any]:
        return {"data_dir": str(data_dir), "source_host": "127.0.0.1", "source_port": self.a.port,
                "source_user": ROLE, "passfile": str(self.passfile), "sslmode": "disable", **overrides}


@pytest.fixture(scope="module")
def fork(env: Env) -> Fork:
    p = env.clusters.server("fork_p", conf="wal_log_hints = on\nwal_keep_size = '512MB'\n")
    p.sql(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(ROLE), sql.Literal(PASSWORD)))
    for statement in rewind_grant_statements(ROLE):
        p.sql(statement)
    p.sql("CREATE TABLE rewind_probe (id int, origin text, pad text)")
    a = env.clusters.standby(p, "fork_a", slot="fork_a")
    b = env.clusters.standby(p, "fork_b", slot="fork_b")
    p.sql("INSERT INTO rewind_probe SELECT g, 'common', repeat('c', 100) FROM generate_series(1, 1000) g")
    wait_replayed(p, a)
    wait_replayed(p, b)
    # B stops before A's promotion, so it cannot see anything A writes on its new timeline, nor what P writes after.
    b.stop("fast")
    promoted = run_module("pgrepl.streaming.promote", a.login())
    assert promoted.get("failed") is not True and promoted["outcome"] == "promoted", promoted
    p.sql("INSERT INTO rewind_probe SELECT g, 'only on P', repeat('p', 100) FROM generate_series(1, 300) g")
    p.stop("fast")
    a.sql("INSERT INTO rewind_probe SELECT g, 'only on A', repeat('a', 100) FROM generate_series(1, 500) g")
    passfile = write_passfile(env.auth / "fork.pgpass", [f"127.0.0.1:{a.port}:postgres:{ROLE}:{PASSWORD}"])
    return Fork(p=p, a=a, b=b, passfile=passfile)


def repoint_and_stream(standby: PgCluster, primary: PgCluster, name: str, slot: str) -> None:
    """The repoint a rejoin does without a rewind: standby_config towards the new primary (recovery_target_timeline
    'latest' by default), a start; then it must stream from it on timeline 2, and a row written there arrive."""
    configured = run_module("pgrepl.streaming.standby_config", {
        "data_dir": str(standby.data_dir), "primary_host": str(primary.socket_dir), "primary_port": primary.port,
        "replication_user": "postgres", "application_name": name, "primary_slot_name": slot, "sslmode": "disable"})
    assert configured.get("failed") is not True, configured
    standby.start()
    standby.wait_streaming()
    assert standby.scalar("SELECT sender_port FROM pg_stat_wal_receiver") == primary.port
    assert standby.scalar("SELECT received_tli FROM pg_stat_wal_receiver") == 2
    assert primary.scalar("SELECT count(*) FROM pg_stat_replication WHERE application_name = %s "
                          "AND state = 'streaming'", (name,)) == 1
    primary.sql("INSERT INTO rewind_probe VALUES (9999, 'after the repoint', 'x')")
    wait_replayed(primary, standby)


def rewind_statements(cluster: PgCluster, since: int) -> list[str]:
    """Statements pg_rewind itself sends (its file functions, full_page_writes) logged by the source since an offset
    of its log (log_statement = all); the module's own probe sends none of them."""
    text = cluster.log_text()[since:]
    return [line for line in text.splitlines()
            if "statement:" in line and ("full_page_writes" in line or "pg_read_binary_file" in line
                                         or "pg_ls_dir" in line)]


def test_a_standby_that_never_diverged_is_repointed_without_pg_rewind(fork: Fork) -> None:
    a, b = fork.a, fork.b
    parent, switch_lsn = history_switch(a, 2)
    control = controldata(b.data_dir)
    assert parent == 1 and control["Database cluster state"] == "shut down in recovery"
    assert control["Min recovery ending loc's timeline"] == "1"
    b_end = control["Minimum recovery ending location"]
    assert a.scalar("SELECT %s::pg_lsn <= %s::pg_lsn", (b_end, switch_lsn)) is True
    before = snapshot(b.data_dir)
    log_mark = len(a.log_text())

    for check in (True, False):
        result = run_module(MODULE, fork.args(b.data_dir), check=check, diff=True)
        assert result.get("failed") is not True, result
        assert result["changed"] is False and result["outcome"] == "repoint", result
        assert result["target_timeline"] == 1 and result["source_timeline"] == 2
        assert result["divergence_lsn"] == switch_lsn and result["divergence_timeline"] == 1
        assert result["target_wal_end_lsn"] == b_end
        assert result["log"] == [] and result["last_common_checkpoint_lsn"] is None
        assert "without pg_rewind" in result["msg"] and "standby_config" in result["msg"]
        assert result["diff"]["before"] == result["diff"]["after"]
    # pg_rewind never ran (not even --dry-run): the source logged none of its statements, and B is untouched.
    assert rewind_statements(a, log_mark) == []
    assert snapshot(b.data_dir) == before

    # The repoint: B a standby of A (recovery_target_timeline is 'latest' by default), started, streaming from A.
    a.sql("SELECT pg_create_physical_replication_slot('fork_b_on_a')")
    repoint_and_stream(b, a, "fork_b", "fork_b_on_a")
    assert rows_by_origin(b) == {"common": 1000, "only on A": 500, "after the repoint": 1}


def test_a_node_past_the_fork_is_still_rewound(fork: Fork) -> None:
    # P wrote on timeline 1 after A's promotion: pg_control puts its WAL past the switch point, so pg_rewind decides.
    _parent, switch_lsn = history_switch(fork.a, 2)
    control = controldata(fork.p.data_dir)
    assert control["Database cluster state"] == "shut down"
    assert fork.a.scalar("SELECT %s::pg_lsn > %s::pg_lsn", (control["Latest checkpoint location"], switch_lsn))
    before = snapshot(fork.p.data_dir)
    log_mark = len(fork.a.log_text())
    predicted = run_module(MODULE, fork.args(fork.p.data_dir), check=True)
    assert predicted.get("failed") is not True, predicted
    assert predicted["changed"] is True and predicted["outcome"] == "would_rewind", predicted
    assert predicted["divergence_lsn"] == switch_lsn and predicted["target_wal_end_lsn"] == \
        control["Latest checkpoint location"]
    # pg_rewind --dry-run did run against A this time.
    assert rewind_statements(fork.a, log_mark) != []
    assert snapshot(fork.p.data_dir) == before


def pg_rewind_dry_run(target: PgCluster, source: PgCluster) -> subprocess.CompletedProcess:
    """pg_rewind --dry-run as the bench's binaries run it, over the source's private socket as its superuser."""
    return subprocess.run(["runuser", "-u", "postgres", "--", str(find_bin_dir() / "pg_rewind"), "--target-pgdata",
                           str(target.data_dir), "--source-server",
                           f"host={source.socket_dir} port={source.port} user=postgres dbname=postgres",
                           "--dry-run", "--no-ensure-shutdown"],
                          capture_output=True, text=True, env=dict(os.environ, LC_ALL="C"), check=False)


def test_a_standby_that_followed_the_new_timeline_before_its_first_restartpoint_there_is_repointed(
        env: Env) -> None:
    # What a failover cut off at the promotion leaves (the fault bench): the primary P dies, standby A is promoted
    # and has no checkpoint on its new timeline yet; standby B follows A for a while (here repointed by hand; in the
    # bench, through a cascade) and is stopped before A's first checkpoint on timeline 2 reaches it. B's pg_control
    # then has its latest checkpoint on timeline 1 and its minimum recovery point on timeline 2.
    p = env.clusters.server("follow_p", conf="wal_log_hints = on\nwal_keep_size = '512MB'\n")
    p.sql(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(ROLE), sql.Literal(PASSWORD)))
    for statement in rewind_grant_statements(ROLE):
        p.sql(statement)
    p.sql("CREATE TABLE rewind_probe (id int, origin text, pad text)")
    # A keeps its dirty buffers (no restartpoint for an hour, no background writer), so that the checkpoint its
    # promotion requests is spread over many minutes and writes no checkpoint record on timeline 2 meanwhile.
    a = env.clusters.standby(p, "follow_a", slot="follow_a",
                             conf="checkpoint_timeout = '1h'\nbgwriter_lru_maxpages = 0\n")
    b = env.clusters.standby(p, "follow_b", slot="follow_b")
    p.sql("INSERT INTO rewind_probe SELECT g, 'common', repeat('c', 200) FROM generate_series(1, 100000) g")
    p.sql("CHECKPOINT")
    wait_replayed(p, a)
    wait_replayed(p, b)
    p.stop("immediate")
    promoted = run_module("pgrepl.streaming.promote", {**a.login(), "checkpoint": False})
    assert promoted.get("failed") is not True and promoted["checkpointed"] is False, promoted
    _parent, switch_lsn = history_switch(a, 2)
    a.sql("SELECT pg_create_physical_replication_slot('follow_b')")
    a.sql("INSERT INTO rewind_probe SELECT g, 'only on A', repeat('a', 100) FROM generate_series(1, 500) g")
    b.sql(sql.SQL("ALTER SYSTEM SET primary_conninfo = {}").format(
        sql.Literal(f"host={a.socket_dir} port={a.port} user=postgres application_name=follow_b")))
    b.sql("SELECT pg_reload_conf()")
    wait_replayed(a, b)
    assert a.scalar("SELECT timeline_id FROM pg_control_checkpoint()") == 1, "A checkpointed on timeline 2 already"
    b.stop("fast")
    a.sql("CHECKPOINT")  # A's pg_control on timeline 2 now, as it is by the time a rejoin runs
    control = controldata(b.data_dir)
    assert control["Database cluster state"] == "shut down in recovery"
    assert (control["Latest checkpoint's TimeLineID"], control["Min recovery ending loc's timeline"]) == ("1", "2")
    if int(a.scalar("SHOW server_version_num")) < 160000:
        # pg_rewind 15 takes B's timeline from its checkpoint, puts its end of WAL past the switch point, and fails
        # reading timeline 1 there: the failure the bench saw. B never diverged.
        raw = pg_rewind_dry_run(b, a)
        assert raw.returncode == 1, raw
        assert f"could not find previous WAL record at {switch_lsn}: invalid record length" in raw.stderr, raw

    passfile = write_passfile(env.auth / "follow.pgpass", [f"127.0.0.1:{a.port}:postgres:{ROLE}:{PASSWORD}"])
    args = {**env.args(b.data_dir), "source_port": a.port, "passfile": str(passfile)}
    before = snapshot(b.data_dir)
    log_mark = len(a.log_text())
    for check in (True, False):
        result = run_module(MODULE, args, check=check)
        assert result.get("failed") is not True, result
        assert result["changed"] is False and result["outcome"] == "repoint", result
        assert result["target_timeline"] == result["source_timeline"] == 2
        assert result["target_wal_end_lsn"] == control["Minimum recovery ending location"]
        assert result["log"] == [] and "both on timeline 2" in result["msg"]
    assert rewind_statements(a, log_mark) == []
    assert snapshot(b.data_dir) == before

    repoint_and_stream(b, a, "follow_b", "follow_b")
    assert rows_by_origin(b) == {"common": 100000, "only on A": 500, "after the repoint": 1}
