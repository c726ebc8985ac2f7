"""community.postgresql's connection conventions (issue 10, item 5), through a real playbook.

A module_defaults block written the way community.postgresql users write theirs (login_user, db, ssl_mode, ca_cert,
connect_params, session_role, trust_input) under group/pgrepl.streaming.connection; tasks that carry the aliases
themselves (host, port, login, database, unix_socket, ssl_cert, ssl_key); all against a throwaway cluster with TLS
and certificate authentication, whose views and log show that each option really reached libpq or the session.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ansible_runner import run_playbook
from cluster import Clusters, PgCluster, _chown_postgres

LOGIN = "opt_login"  # an ordinary role that is a member of SUPER
LOGIN_PASSWORD = "opt-login-pw-4Kd"
SUPER = "opt_super"  # NOLOGIN SUPERUSER: reachable only through session_role
CERT_USER = "opt_cert"  # authenticates with a client certificate only
REPL = "opt_repl"
REWIND = "opt_rewind"
SLOT = "opt_slot"


@dataclass
class Bench:
    cluster: PgCluster
    tls: Path  # ca.crt, client.crt, client.key
    passfile: Path


def _key_and_cert(name: str, issuer: tuple[Any, x509.Name] | None, ca: bool = False,
                  ip: str | None = None) -> tuple[Any, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    signer, issuer_name = issuer if issuer else (key, subject)
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer_name).public_key(key.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
               .not_valid_after(now + datetime.timedelta(days=2))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ip:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]),
                                        critical=False)
    return key, builder.sign(signer, hashes.SHA256())


def _write(path: Path, data: bytes, mode: int, postgres: bool) -> None:
    path.write_bytes(data)
    os.chmod(path, mode)
    if postgres:
        _chown_postgres(path)


def make_tls(directory: Path, cluster: PgCluster) -> None:
    """A CA, a server certificate for 127.0.0.1 (in the data dir) and a client certificate for CERT_USER."""
    ca_key, ca_cert = _key_and_cert("pgrepl test CA", None, ca=True)
    issuer = (ca_key, ca_cert.subject)
    server_key, server_cert = _key_and_cert("127.0.0.1", issuer, ip="127.0.0.1")
    client_key, client_cert = _key_and_cert(CERT_USER, issuer)
    pem = serialization.Encoding.PEM
    private = {"encoding": pem, "format": serialization.PrivateFormat.PKCS8,
               "encryption_algorithm": serialization.NoEncryption()}
    _write(directory / "ca.crt", ca_cert.public_bytes(pem), 0o644, postgres=False)
    _write(directory / "client.crt", client_cert.public_bytes(pem), 0o644, postgres=False)
    _write(directory / "client.key", client_key.private_bytes(**private), 0o600, postgres=False)
    _write(cluster.data_dir / "server.crt", server_cert.public_bytes(pem), 0o644, postgres=True)
    _write(cluster.data_dir / "server.key", server_key.private_bytes(**private), 0o600, postgres=True)
    _write(cluster.data_dir / "root.crt", ca_cert.public_bytes(pem), 0o644, postgres=True)


@pytest.fixture(scope="module")
def bench(throwaway: Clusters) -> Bench:
    tls = throwaway.base / "tls"
    tls.mkdir()
    cluster = throwaway.server("opts", start=False, conf=(
        "ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\nssl_ca_file = 'root.crt'\n"
        "log_connections = on\n"))
    make_tls(tls, cluster)
    cluster.hba_file.write_text(
        "local all all trust\nlocal replication all trust\n"
        f"hostssl all {CERT_USER} 127.0.0.1/32 cert\n"
        "host all all 127.0.0.1/32 scram-sha-256\nhost replication all 127.0.0.1/32 scram-sha-256\n",
        encoding="utf-8")
    cluster.start()
    cluster.sql(f"CREATE ROLE {LOGIN} LOGIN PASSWORD '{LOGIN_PASSWORD}'")
    cluster.sql(f"CREATE ROLE {SUPER} NOLOGIN SUPERUSER")
    cluster.sql(f"GRANT {SUPER} TO {LOGIN}")
    cluster.sql(f"CREATE ROLE {CERT_USER} LOGIN IN ROLE pg_monitor")
    passfile = throwaway.base / "pgpass"
    # The password reaches libpq only through connect_params' passfile: login_password is never given.
    _write(passfile, f"127.0.0.1:{cluster.port}:*:{LOGIN}:{LOGIN_PASSWORD}\n".encode(), 0o600, postgres=False)
    return Bench(cluster, tls, passfile)


def community_block(bench: Bench) -> dict[str, Any]:
    """Keys as a community.postgresql module_defaults block has them."""
    return {"login_host": "127.0.0.1", "login_port": bench.cluster.port, "login_user": LOGIN, "db": "postgres",
            "ssl_mode": "verify-full", "ca_cert": str(bench.tls / "ca.crt"),
            "connect_params": {"passfile": str(bench.passfile), "keepalives_idle": 30},
            "session_role": SUPER, "trust_input": False}


def managing_tasks(suffix: str) -> list[dict[str, Any]]:
    return [
        {"name": f"user{suffix}", "pgrepl.streaming.replication_user": {"name": REPL, "password": "opt-repl-pw-9Xs"}},
        {"name": f"rewind_user{suffix}", "pgrepl.streaming.replication_user": {
            "name": REWIND, "password": "opt-rewind-pw-2Lm", "replication": False}},
        {"name": f"rewind_grants{suffix}", "pgrepl.streaming.rewind_grants": {"role": REWIND}},
        {"name": f"slot{suffix}", "pgrepl.streaming.replication_slot": {"name": SLOT}},
        {"name": f"settings{suffix}", "pgrepl.streaming.server_settings": {"settings": {"wal_keep_size": "48MB"}}},
        {"name": f"hba{suffix}", "pgrepl.streaming.pg_hba": {"contype": "hostssl", "databases": "replication",
                                                             "users": REPL, "address": "127.0.0.3/32",
                                                             "method": "scram-sha-256"}},
        {"name": f"info{suffix}", "pgrepl.streaming.replication_info": {}},
        {"name": f"apply{suffix}", "pgrepl.streaming.node_apply": {"checks": {
            "slot": {"module": "replication_slot", "params": {"name": SLOT}}}}, "check_mode": True},
    ]


def test_a_community_postgresql_module_defaults_block_runs_our_modules(bench: Bench) -> None:
    cluster = bench.cluster
    block = {"group/pgrepl.streaming.connection": community_block(bench)}
    tls = {"ca_cert": str(bench.tls / "ca.crt"), "ssl_cert": str(bench.tls / "client.crt"),
           "ssl_key": str(bench.tls / "client.key")}
    plays = [
        {"hosts": "all", "gather_facts": False, "module_defaults": block, "tasks": managing_tasks("")},
        # The same block again: nothing left to change.
        {"hosts": "all", "gather_facts": False, "module_defaults": block, "tasks": managing_tasks("_again")},
        {"hosts": "all", "gather_facts": False, "tasks": [
            # A task carries community.postgresql's aliases itself: a client certificate and no password at all.
            {"name": "cert", "pgrepl.streaming.replication_info": {
                "host": "127.0.0.1", "port": cluster.port, "login": CERT_USER, "database": "postgres",
                "ssl_mode": "verify-full", **tls}},
            {"name": "socket", "pgrepl.streaming.replication_info": {
                "unix_socket": str(cluster.socket_dir), "port": cluster.port, "login": "postgres"}},
            # Without session_role the same login may not create a replication role.
            {"name": "no_session_role", "pgrepl.streaming.replication_user": {
                **{k: v for k, v in community_block(bench).items() if k != "session_role"},
                "name": "opt_never", "password": "opt-never-pw-1Qa"}},
            {"name": "unknown_session_role", "pgrepl.streaming.replication_slot": {
                **community_block(bench), "session_role": "opt_nobody", "name": "opt_never"}},
            {"name": "secret_in_connect_params", "pgrepl.streaming.replication_slot": {
                **community_block(bench), "connect_params": {"password": "opt-leaked-pw-0Zz"}, "name": "opt_never"}},
            {"name": "port_in_connect_params", "pgrepl.streaming.replication_slot": {
                **community_block(bench), "connect_params": {"port": 1}, "name": "opt_never"}},
            {"name": "unknown_keyword", "pgrepl.streaming.replication_slot": {
                **community_block(bench), "connect_params": {"keepalive": 1}, "name": "opt_never"}},
        ]},
    ]
    results = run_playbook(plays, {"localhost": {}})["localhost"]

    succeeding = ("cert", "socket", "user", "rewind", "slot", "settings", "hba", "info", "apply")
    for name, result in results.items():
        if name.startswith(succeeding):
            assert not result.get("failed"), (name, result.get("msg"), result)
            assert "Unsupported parameters" not in str(result.get("msg"))
    for task in ("user", "rewind_user", "rewind_grants", "slot", "settings", "hba"):
        assert results[task]["changed"] is True, (task, results[task])
        assert results[f"{task}_again"]["changed"] is False, (task, results[f"{task}_again"])
    assert results["apply_again"]["changed_checks"] == {"slot": False}

    # The real state.
    assert cluster.sql("SELECT rolreplication, rolcanlogin, rolsuper FROM pg_roles WHERE rolname = %s", (REPL,)) == [
        (True, True, False)]
    assert cluster.sql("SELECT bool_and(pg_catalog.has_function_privilege(%s, f, 'EXECUTE')) FROM unnest(ARRAY["
                       "'pg_catalog.pg_ls_dir(text, boolean, boolean)', 'pg_catalog.pg_stat_file(text, boolean)',"
                       "'pg_catalog.pg_read_binary_file(text)',"
                       "'pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean)']) AS f", (REWIND,)) == [(True,)]
    assert cluster.sql("SELECT count(*) FROM pg_replication_slots WHERE slot_name = %s", (SLOT,)) == [(1,)]
    assert cluster.sql("SELECT setting FROM pg_file_settings WHERE name = 'wal_keep_size'")[-1] == ("48MB",)
    assert cluster.sql("SELECT count(*) FROM pg_hba_file_rules WHERE error IS NULL AND type = 'hostssl' AND "
                       "user_name = ARRAY[%s] AND address = '127.0.0.3'", (REPL,)) == [(1,)]
    assert cluster.sql("SELECT count(*) FROM pg_roles WHERE rolname = 'opt_never'") == [(0,)]
    assert cluster.sql("SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'opt_never'") == [(0,)]
    log = cluster.log_text()
    # session_role: the modules' sessions switched role; ssl_mode and ca_cert: over verified TLS; connect_params'
    # passfile: opt_login logged in with no login_password; ssl_cert/ssl_key: opt_cert by certificate alone.
    assert f'statement: SET ROLE "{SUPER}"' in log
    assert f"connection authorized: user={LOGIN} database=postgres application_name=pgrepl.streaming SSL enabled" \
        in log
    assert f"connection authorized: user={CERT_USER} database=postgres application_name=pgrepl.streaming SSL " \
           "enabled" in log

    assert f"the role '{LOGIN}' is not a superuser" in results["no_session_role"]["msg"]
    assert results["unknown_session_role"]["msg"].startswith(
        "session_role: cannot SET ROLE 'opt_nobody': there is no such role (SQLSTATE 22023)")
    assert results["secret_in_connect_params"]["msg"].startswith("connect_params: 'password' holds a secret")
    assert "opt-leaked-pw-0Zz" not in results["secret_in_connect_params"]["msg"]
    assert results["port_in_connect_params"]["msg"] == "connect_params: 'port' is not accepted here; use login_port"
    assert results["unknown_keyword"]["msg"].startswith(
        "connect_params: 'keepalive' is not a connection keyword of this host's libpq")
    for name in ("no_session_role", "unknown_session_role", "secret_in_connect_params", "port_in_connect_params",
                 "unknown_keyword"):
        assert results[name]["failed"] is True and results[name]["changed"] is False
