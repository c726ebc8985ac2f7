"""TLS for replication (pgrepl_tls), as the scenario's inventory asks for it: the pg18 scenario turns it on with the
CA the role makes; the other scenarios leave it off, and this file then asserts nothing TLS-specific (each test
returns at once).

Proven on the servers, not from what a module said: the primary's WAL senders run over TLS (pg_stat_ssl), a
replication connection without TLS from a standby is refused while the same one with TLS is let in, a verify-full
connection to a name the certificate does not carry fails where verify-ca (same CA, name not checked) gets in and
the node's own names get in, and every primary_conninfo says verify-full with the CA on the node. Last, TLS
turned off and on again by site: the pg_hba entries change type both ways (the old ones removed), check mode
predicts the change and makes none, and no server restarts.
"""

from __future__ import annotations

import json
import time

from test_default import _changed_tasks, _site_in_check_mode

CERT_NAMES = ("import json, ssl, sys; "
              "print(json.dumps([v for k, v in ssl._ssl._test_decode_cert(sys.argv[1]).get('subjectAltName', ())]))")


def tls(nodes) -> bool:
    return bool(next(iter(nodes.values())).var("pgrepl_tls", False))


def setting(node, name: str) -> str:
    return node.psql(f"SELECT setting FROM pg_settings WHERE name = '{name}'")  # noqa: S608 (a fixed name)


def address_of(node) -> str:
    """The address the role detected for this node (no pgrepl_address in the scenario): its first global IPv4."""
    out = node.host.run("ip -o -4 addr show scope global").stdout.split()
    return out[3].split("/")[0]


def conninfo(standby) -> dict[str, str]:
    text = standby.psql("SELECT setting FROM pg_settings WHERE name = 'primary_conninfo'")
    return dict(pair.split("=", 1) for pair in text.replace("'", "").split())


def connect(node, target: str, *, hostaddr: str = "", sslmode: str, database: str = "postgres",
            query: str = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"):
    """psql from ``node`` as the replication role, with the password in the environment (a name the passfile does
    not list would find none there), the CA on ``node``; testinfra quotes every argument."""
    user = node.var("pgrepl_replication_user", "replicator")
    password = node.var("pgrepl_replication_password", "")
    ca = setting(node, "ssl_ca_file")
    parts = [f"host={target}", f"port={node.port}", f"user={user}", f"dbname={database}", f"sslmode={sslmode}",
             f"sslrootcert={ca}", "connect_timeout=10"]
    if hostaddr:
        parts.append(f"hostaddr={hostaddr}")
    if database == "replication":
        parts.append("replication=true")
    return node.host.run("runuser -u postgres -- env PGPASSWORD=%s %s -XAtq %s -c %s", password,
                         f"{node.bin_dir}/psql", " ".join(parts), query)


def test_every_node_serves_its_own_certificate_naming_it(nodes) -> None:
    if not tls(nodes):
        return
    for name, node in nodes.items():
        assert setting(node, "ssl") == "on", name
        cert, key, ca = (setting(node, f"ssl_{kind}_file") for kind in ("cert", "key", "ca"))
        folder = f"{node.config_dir}/pgrepl-tls"
        assert (cert, key, ca) == (f"{folder}/server.crt", f"{folder}/server.key", f"{folder}/ca.crt"), name
        for path, mode in ((cert, 0o644), (key, 0o600), (ca, 0o644)):
            item = node.host.file(path)
            assert item.user == "postgres" and item.mode == mode, (name, path, item.mode)
        names = json.loads(node.host.run("python3 -c %s %s", CERT_NAMES, cert).stdout)
        assert name in names and address_of(node) in names, (name, names)
        # Turned on with a reload: nothing waits for a restart.
        assert node.psql("SELECT count(*) FROM pg_settings WHERE pending_restart") == "0", name


def test_the_primarys_wal_senders_run_over_tls(nodes, primary, standbys) -> None:
    if not tls(nodes):
        return
    rows = wait_walsenders_tls(primary, standbys, timeout=0)
    assert rows == sorted(f"{standby.name}:true" for standby in standbys), rows


def test_pg_hba_admits_the_other_nodes_over_tls_only(nodes) -> None:
    if not tls(nodes):
        return
    for name, node in nodes.items():
        assert hba_types(node) == "hostssl", name


def test_every_primary_conninfo_verifies_the_primarys_name_with_the_nodes_ca(nodes, standbys) -> None:
    if not tls(nodes):
        return
    for standby in standbys:
        pairs = conninfo(standby)
        assert pairs["sslmode"] == "verify-full", pairs
        assert pairs["sslrootcert"] == setting(standby, "ssl_ca_file"), pairs
        assert "password" not in pairs, pairs


def test_a_replication_connection_without_tls_is_refused(nodes, primary, standbys) -> None:
    if not tls(nodes):
        return
    standby = standbys[0]
    target = conninfo(standby)["host"]
    # The same connection, only TLS differs: with TLS it is let in, without it is refused (pg_hba: hostssl only).
    good = connect(standby, target, sslmode="verify-full", database="replication", query="IDENTIFY_SYSTEM")
    assert good.rc == 0, good.stderr
    plain = connect(standby, target, sslmode="disable", database="replication", query="IDENTIFY_SYSTEM")
    assert plain.rc != 0, plain.stdout
    # Not even to database postgres (the switchover's handover connection).
    assert connect(standby, target, sslmode="disable").rc != 0


def test_verify_full_checks_the_certificates_name(nodes, primary, standbys) -> None:
    if not tls(nodes):
        return
    standby = standbys[0]
    address = conninfo(standby)["host"]
    # The primary's inventory name (Docker's DNS) and its address are in its certificate.
    for target in (primary.name, address):
        run = connect(standby, target, sslmode="verify-full")
        assert run.rc == 0 and run.stdout.strip() == "t", (target, run.stderr)
    # A name the certificate does not carry, at the primary's very address: verify-ca (the CA only) gets in, so
    # verify-full failing there is the name check.
    wrong = standbys[-1].name
    assert connect(standby, wrong, hostaddr=address, sslmode="verify-ca").rc == 0
    refused = connect(standby, wrong, hostaddr=address, sslmode="verify-full")
    assert refused.rc != 0, refused.stdout


def hba_types(node) -> str:
    return node.psql("SELECT string_agg(DISTINCT type, ',') FROM pg_hba_file_rules WHERE 'replicator' = ANY(user_name)")


def wait_walsenders_tls(primary, standbys, want: str = "true", timeout: float = 90.0) -> list[str]:
    expected = sorted(f"{standby.name}:{want}" for standby in standbys)
    deadline = time.monotonic() + timeout
    while True:
        rows = primary.psql("SELECT r.application_name || ':' || s.ssl FROM pg_stat_replication r "
                            "JOIN pg_stat_ssl s USING (pid) ORDER BY 1").splitlines()
        if rows == expected or time.monotonic() > deadline:
            return rows
        time.sleep(1)


def test_tls_turned_off_and_on_again_replaces_the_entries_both_ways(
        request, playbook, nodes, primary, standbys) -> None:
    if not tls(nodes):
        return
    inventory = request.config.option.ansible_inventory
    started = {name: node.psql("SELECT pg_postmaster_start_time()") for name, node in nodes.items()}
    standby = standbys[0]
    target = conninfo(standby)["host"]

    off = playbook("site", json.dumps({"pgrepl_tls": False}))
    assert off.returncode == 0, off.stdout[-4000:] + off.stderr[-2000:]
    for name, node in nodes.items():
        assert hba_types(node) == "host", name
    for each in standbys:
        pairs = conninfo(each)
        assert pairs["sslmode"] == "prefer" and "sslrootcert" not in pairs, pairs
    # Without TLS a plain connection is let in again.
    assert connect(standby, target, sslmode="disable", database="replication", query="IDENTIFY_SYSTEM").rc == 0

    # Check mode predicts turning it on (the entries and primary_conninfo) on every node and changes nothing.
    check = _site_in_check_mode(inventory)
    assert check["rc"] == 0, check["stderr"][-3000:]
    assert sorted(_changed_tasks(check)) == sorted(nodes), _changed_tasks(check)
    for name, node in nodes.items():
        assert hba_types(node) == "host", name

    on = playbook("site")
    assert on.returncode == 0, on.stdout[-4000:] + on.stderr[-2000:]
    for name, node in nodes.items():
        assert hba_types(node) == "hostssl", name
    assert conninfo(standby)["sslmode"] == "verify-full"
    assert connect(standby, target, sslmode="disable", database="replication", query="IDENTIFY_SYSTEM").rc != 0
    assert wait_walsenders_tls(primary, standbys) == sorted(f"{s.name}:true" for s in standbys)
    # ssl, pg_hba and primary_conninfo are all reloaded: no server restarted.
    assert {name: node.psql("SELECT pg_postmaster_start_time()") for name, node in nodes.items()} == started
