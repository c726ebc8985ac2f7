# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pgrepl.streaming.pg_hba through Ansible against the primary's LIVE pg_hba.conf (restored after each test)."""

from __future__ import annotations

import os
import shutil
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from ansible_collections.pgrepl.streaming.plugins.module_utils._hba_file import parse_document

from ansible_runner import run_module, run_tasks
from cluster import PgCluster

FIXTURES = Path(__file__).resolve().parents[1] / "unit" / "fixtures" / "hba"
REPLICATOR = "hba_replicator"
REPLICATOR_PW = "pg-hba-repl-pw-4Kd"
APP = "hba_app"  # not a superuser; admitted over TCP by the scenario's `a,b` line
APP_PW = "pg-hba-app-pw-9Zt"
LDAP_SECRET = "pg-hba-ldap-bind-Secret-77"

REPL_ENTRY = {"contype": "host", "databases": "replication", "users": REPLICATOR, "address": "127.0.0.1/32",
              "method": "scram-sha-256"}
NEW_LINE = "host    replication     hba_replicator  127.0.0.1/32            scram-sha-256\n"


def scenario_text(major: int) -> str:
    """A hand-maintained file: comments, blank lines, a legacy line, an `a,b` list, quoted names, a netmask
    column, an include (on 16+, where the server knows the directive), and a final default deny."""
    include = "include_if_exists pg_hba_local.conf\n" if major >= 16 else ""
    return (
        "# pgrepl test bench: a hand-maintained pg_hba.conf\n"
        "# TYPE  DATABASE        USER            ADDRESS                 METHOD\n"
        "\n"
        "# Superuser and the standby over the private unix socket.\n"
        "local   all             all                                     trust\n"
        "local   replication     all                                     trust\n"
        "\n"
        "# Modules and applications log in over TCP with a password.\n"
        "host    all             postgres        127.0.0.1/32            scram-sha-256\n"
        f"host    all             {APP},hba_batch 127.0.0.1/32 scram-sha-256\n"
        "host\tall\tall\t10.1.2.3/8\tmd5\t# legacy: host bits set\n"
        "   \n"
        'host    "pg hba db"     "Pg Hba User"   192.168.1.0 255.255.255.0 md5\n'
        f"{include}"
        "\n"
        "# Default deny, replication included.\n"
        "host    replication     all             0.0.0.0/0               reject\n"
        "host    all             all             0.0.0.0/0               reject\n"
    )


def sighups(cluster: PgCluster) -> int:
    return cluster.log_text().count("received SIGHUP")


def reload_and_wait(cluster: PgCluster, timeout: float = 20.0) -> None:
    """pg_reload_conf() only signals the postmaster: wait until it has logged the reload, so that a later file
    edit or SIGHUP count of a test cannot race with it."""
    before = sighups(cluster)
    cluster.reload()
    deadline = time.monotonic() + timeout
    while sighups(cluster) <= before:
        assert time.monotonic() < deadline, "the server did not process the reload"
        time.sleep(0.05)


def server_errors(cluster: PgCluster) -> list[tuple]:
    return cluster.sql("SELECT line_number, error FROM pg_hba_file_rules WHERE error IS NOT NULL")


def replication_connect(cluster: PgCluster, user: str = REPLICATOR, password: str = REPLICATOR_PW) -> str:
    """A real physical replication connection over TCP 127.0.0.1; returns IDENTIFY_SYSTEM's system id."""
    with psycopg.connect(host="127.0.0.1", port=cluster.port, user=user, password=password, dbname="postgres",
                         replication="true", sslmode="disable", connect_timeout=5, autocommit=True) as conn:
        res = conn.pgconn.exec_(b"IDENTIFY_SYSTEM")
        assert res.status == psycopg.pq.ExecStatus.TUPLES_OK, res.error_message
        return (res.get_value(0, 0) or b"").decode()


@pytest.fixture(scope="module")
def roles(primary: PgCluster) -> Iterator[None]:
    """Test setup over the socket: a replication role and a plain role, both with passwords."""
    for name, password, extra in ((REPLICATOR, REPLICATOR_PW, "REPLICATION"), (APP, APP_PW, "")):
        primary.sql(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))
        primary.sql(sql.SQL("SET password_encryption = 'scram-sha-256'; CREATE ROLE {} LOGIN {} PASSWORD {}").format(
            sql.Identifier(name), sql.SQL(extra), sql.Literal(password)))
    yield
    for name in (REPLICATOR, APP):
        primary.sql(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


@pytest.fixture
def live(primary: PgCluster, roles: None) -> Iterator[PgCluster]:
    """The primary with the scenario as its live pg_hba.conf; the original bytes, mode and owner come back after."""
    path = primary.hba_file
    original = path.read_bytes()
    st = path.stat()
    path.write_text(scenario_text(int(primary.scalar("SHOW server_version_num")) // 10000), encoding="utf-8")
    reload_and_wait(primary)
    yield primary
    path.write_bytes(original)
    os.chown(path, st.st_uid, st.st_gid)
    os.chmod(path, stat.S_IMODE(st.st_mode))
    for leftover in path.parent.glob("pg_hba.conf.*~"):
        leftover.unlink()
    reload_and_wait(primary)


def args(cluster: PgCluster, **extra: Any) -> dict[str, Any]:
    return {**cluster.login(), **REPL_ENTRY, **extra}


# --- the scenario of the issue ----------------------------------------------------------------------------------

def test_replication_entry_lands_before_the_reject_and_a_real_standby_connection_works(live: PgCluster) -> None:
    path = live.hba_file
    original = path.read_bytes()
    mode_owner = (stat.S_IMODE(path.stat().st_mode), path.stat().st_uid, path.stat().st_gid)
    assert server_errors(live) == []
    with pytest.raises(psycopg.OperationalError, match="rejects replication connection"):
        replication_connect(live)

    reloads = sighups(live)
    check = run_module("pg_hba", args(live), check=True, diff=True)
    assert check["changed"] is True and check.get("failed") is not True, check
    assert check["validation"] == "syntax" and check["reloaded"] is False and check["outcome"] == "added"
    assert path.read_bytes() == original, "check mode wrote the file"
    assert sighups(live) == reloads, "check mode reloaded the server"
    assert check["diff"]["before"] == original.decode() and NEW_LINE in check["diff"]["after"]
    assert check["diff"]["before_header"] == str(path)

    real = run_module("pg_hba", args(live), diff=True)
    assert real["changed"] is True and real["validation"] == "server" and real["reloaded"] is True, real
    assert real["path"] == str(path) and real["entry"] == NEW_LINE.rstrip("\n") and real["shadowed_by"] == []
    assert real["diff"]["after"] == path.read_text()
    new = path.read_bytes().decode()
    assert new.replace(NEW_LINE, "", 1).encode() == original  # every other byte, in order
    lines = new.splitlines()
    assert lines[real["line_number"] - 1] + "\n" == NEW_LINE
    assert lines[real["line_number"]].startswith("host    replication     all             0.0.0.0/0")
    assert (stat.S_IMODE(path.stat().st_mode), path.stat().st_uid, path.stat().st_gid) == mode_owner
    assert not list(path.parent.glob(".pg_hba.conf.*.tmp"))
    assert sighups(live) == reloads + 1
    assert server_errors(live) == []
    assert live.scalar("SELECT count(*) FROM pg_hba_file_rules WHERE %s = ANY(user_name) AND line_number = %s",
                       (REPLICATOR, real["line_number"])) == 1
    assert replication_connect(live) == str(live.scalar("SELECT system_identifier FROM pg_control_system()"))

    again = run_module("pg_hba", args(live), diff=True)
    assert again["changed"] is False and again["outcome"] == "unchanged" and again["validation"] == "none", again
    assert again["line_number"] == real["line_number"] and path.read_bytes().decode() == new
    assert sighups(live) == reloads + 1


def test_state_absent_removes_exactly_that_line(live: PgCluster) -> None:
    path = live.hba_file
    original = path.read_bytes()
    assert run_module("pg_hba", args(live))["changed"] is True
    with_entry = path.read_bytes()

    check = run_module("pg_hba", args(live, state="absent"), check=True, diff=True)
    assert check["changed"] is True and check["outcome"] == "removed" and path.read_bytes() == with_entry
    assert NEW_LINE in check["diff"]["before"] and NEW_LINE not in check["diff"]["after"]
    real = run_module("pg_hba", args(live, state="absent"))
    assert real["changed"] is True and real["validation"] == "server" and real["reloaded"] is True, real
    assert path.read_bytes() == original
    with pytest.raises(psycopg.OperationalError, match="rejects replication connection"):
        replication_connect(live)
    again = run_module("pg_hba", args(live, state="absent"))
    assert again["changed"] is False and again["outcome"] == "absent" and path.read_bytes() == original


def test_update_in_place_keeps_position_legacy_text_and_comment(live: PgCluster) -> None:
    path = live.hba_file
    original = path.read_text()
    legacy = "host\tall\tall\t10.1.2.3/8\tmd5\t# legacy: host bits set"
    number = original.splitlines().index(legacy) + 1
    update = {**live.login(), "contype": "host", "databases": "all", "users": "all", "address": "10.0.0.0/8",
              "method": "scram-sha-256"}
    check = run_module("pg_hba", update, check=True, diff=True)
    assert check["changed"] is True and check["outcome"] == "updated" and check["line_number"] == number
    assert path.read_text() == original
    real = run_module("pg_hba", update)
    assert real["changed"] is True and real["validation"] == "server" and real["line_number"] == number, real
    lines = path.read_text().splitlines()
    assert lines[number - 1] == "host\tall\tall\t10.1.2.3/8\tscram-sha-256\t# legacy: host bits set"
    assert [i for i, (a, b) in enumerate(zip(original.splitlines(), lines)) if a != b] == [number - 1]
    assert live.scalar("SELECT auth_method FROM pg_hba_file_rules WHERE line_number = %s", (number,)) == \
        "scram-sha-256"
    assert run_module("pg_hba", update)["changed"] is False


def test_a_list_line_and_quoted_names_survive_and_are_found(live: PgCluster) -> None:
    path = live.hba_file
    original = path.read_bytes()
    same = {**live.login(), "contype": "host", "databases": ["all"], "users": ["hba_batch", APP],
            "address": "127.0.0.1/32", "method": "scram-sha-256"}
    assert run_module("pg_hba", same)["outcome"] == "unchanged"
    quoted = {**live.login(), "contype": "host", "databases": '"pg hba db"', "users": ['"Pg Hba User"'],
              "address": "192.168.1.0/24", "method": "md5"}
    result = run_module("pg_hba", quoted)
    assert result["changed"] is False and result["outcome"] == "unchanged", result
    assert path.read_bytes() == original


def test_insert_after_a_reject_warns_that_the_entry_is_shadowed(live: PgCluster) -> None:
    path = live.hba_file
    result = run_module("pg_hba", args(live, insert_after=r"^host\s+replication\s+all\s+0\.0\.0\.0/0"))
    assert result["changed"] is True and result["validation"] == "server", result
    reject_line = [i + 1 for i, line in enumerate(path.read_text().splitlines())
                   if line.startswith("host    replication     all             0.0.0.0/0")][0]
    assert result["line_number"] == reject_line + 1
    assert [s["line_number"] for s in result["shadowed_by"]] == [reject_line]
    assert any("shadowed" in w for w in result.get("warnings", [])), result
    with pytest.raises(psycopg.OperationalError, match="rejects replication connection"):
        replication_connect(live)  # the server agrees: the reject still wins


def test_server_validation_refuses_what_our_syntax_allows_and_restores_the_file(live: PgCluster) -> None:
    path = live.hba_file
    original = path.read_bytes()
    reloads = sighups(live)
    result = run_module("pg_hba", args(live, contype="hostssl", backup=True))
    assert result.get("failed") is True, result
    assert "the server rejects the new" in result["msg"] and "SSL is disabled" in result["msg"], result["msg"]
    assert "restored" in result["msg"] and "not reloaded" in result["msg"]
    assert path.read_bytes() == original
    assert sighups(live) == reloads
    assert server_errors(live) == []
    assert not list(path.parent.glob("pg_hba.conf.*~")), "the backup of a change that was undone was left behind"


@pytest.mark.parametrize(("extra", "server_says"), [
    ({"method": "ldap"}, 'requires argument "ldapbasedn", "ldapprefix", or "ldapsuffix"'),
    ({"method": "md5", "options": {"pg_hba_bogus": "1"}}, 'unrecognized authentication option name: "pg_hba_bogus"'),
    ({"method": "oauth"}, "oauth needs PostgreSQL 18"),
])
def test_entries_the_server_would_refuse_leave_file_and_server_alone(
        live: PgCluster, extra: dict[str, Any], server_says: str) -> None:
    original = live.hba_file.read_bytes()
    reloads = sighups(live)
    result = run_module("pg_hba", args(live, **extra))
    assert result.get("failed") is True and server_says in result["msg"], result
    assert live.hba_file.read_bytes() == original and sighups(live) == reloads


def test_errors_already_in_the_file_block_the_reload_but_not_the_edit(live: PgCluster) -> None:
    path = live.hba_file
    broken = path.read_text() + "hostssl all             pg_hba_nobody   10.99.0.0/16            scram-sha-256\n"
    path.write_text(broken)
    assert len(server_errors(live)) == 1
    reloads = sighups(live)
    result = run_module("pg_hba", args(live))
    assert result["changed"] is True and result["validation"] == "server" and result["reloaded"] is False, result
    assert any("did not add" in w and "not reloaded" in w for w in result["warnings"])
    assert sighups(live) == reloads and NEW_LINE in path.read_text()


def test_a_symlink_to_the_live_file_is_validated_by_the_server(live: PgCluster, tmp_path: Path) -> None:
    link = tmp_path / "hba-link.conf"
    link.symlink_to(live.hba_file)
    result = run_module("pg_hba", args(live, path=str(link)))
    assert result["validation"] == "server" and result["reloaded"] is True, result
    assert link.is_symlink() and NEW_LINE in live.hba_file.read_text()
    assert replication_connect(live)


def test_a_file_that_is_not_live_gets_the_syntax_check_only(live: PgCluster, tmp_path: Path) -> None:
    target = tmp_path / "pg_hba.conf"
    shutil.copy(FIXTURES / "legacy_mixed.conf", target)
    original = target.read_bytes()
    reloads = sighups(live)
    common = args(live, path=str(target), address="192.0.2.0/24")
    check = run_module("pg_hba", common, check=True, diff=True)
    assert check["changed"] is True and check["validation"] == "syntax" and target.read_bytes() == original
    result = run_module("pg_hba", {**common, "backup": True})
    assert result["validation"] == "syntax" and result["reloaded"] is False, result
    assert not any("could not ask" in w for w in result.get("warnings", []))
    assert Path(result["backup_file"]).read_bytes() == original
    new = target.read_bytes()
    # The file had no final line break: the separator is added, and the file ends on the entry without one.
    assert new == original + b"\nhost    replication     hba_replicator  192.0.2.0/24            scram-sha-256"
    assert sighups(live) == reloads
    assert run_module("pg_hba", common)["changed"] is False


def test_without_a_server_a_file_is_still_edited_with_a_warning(tmp_path: Path) -> None:
    target = tmp_path / "pg_hba.conf"
    shutil.copy(FIXTURES / "debian_default.conf", target)
    closed = {"login_host": "127.0.0.1", "login_port": 1, "login_password": "hba-unused-pw", "ssl_mode": "disable"}
    result = run_module("pg_hba", {**closed, **REPL_ENTRY, "path": str(target)})
    assert result["changed"] is True and result["validation"] == "syntax", result
    assert any("could not ask a server" in w for w in result["warnings"])
    text = target.read_text()
    assert text.replace(NEW_LINE, "", 1) == (FIXTURES / "debian_default.conf").read_text()
    # Debian's own `host replication all 127.0.0.1/32` line would match first: the entry goes right before it.
    assert NEW_LINE + "host    replication     all             127.0.0.1/32" in text


# --- secrets ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("where", ["options", "secret_options"])
def test_ldap_bind_password_never_reaches_the_output(live: PgCluster, where: str) -> None:
    options: dict[str, Any] = {"ldapserver": "ldap.invalid", "ldapbasedn": "dc=example,dc=com"}
    secret = {"ldapbindpasswd": LDAP_SECRET}
    task_args = {**live.login(), "contype": "host", "databases": "all", "users": "pg_hba_ldap_user",
                 "address": "198.51.100.0/24", "method": "ldap",
                 "options": {**options, **secret} if where == "options" else options}
    if where == "secret_options":
        task_args["secret_options"] = secret
    check = run_tasks([{"name": "ldap entry", "pgrepl.streaming.pg_hba": task_args}], check=True, diff=True,
                      verbosity=3, json_output=False)
    real = run_tasks([{"name": "ldap entry", "pgrepl.streaming.pg_hba": task_args}], diff=True, verbosity=3,
                     json_output=False)
    for run in (check, real):
        assert LDAP_SECRET not in run.stdout + run.stderr
        assert "ldapbindpasswd=********" in run.stdout
    assert "changed" in real.stdout and "FAILED" not in real.stdout, real.stdout
    assert f"ldapbindpasswd={LDAP_SECRET}" in live.hba_file.read_text()
    assert LDAP_SECRET not in live.log_text()
    assert live.scalar("SELECT count(*) FROM pg_hba_file_rules WHERE error IS NULL AND auth_method = 'ldap'") == 1
    if where == "options":
        assert "prefer secret_options" in real.stdout + real.stderr
    else:
        assert "prefer secret_options" not in real.stdout + real.stderr


# --- bad input --------------------------------------------------------------------------------------------------

CLOSED_PORT = 1


@pytest.mark.parametrize(("extra", "message"), [
    ({"users": "pg_hba_x\nhost all all 0.0.0.0/0 trust"}, "users: 'pg_hba_x\\nhost all all 0.0.0.0/0 trust' "
                                                          "contains a line break"),
    ({"databases": '"pg_hba_unbalanced'}, "databases: '\"pg_hba_unbalanced' has an unbalanced double quote"),
    ({"users": "pg_hba#x"}, "users: 'pg_hba#x' contains '#'"),
    ({"address": "10.0.0.0/33"}, "address: '10.0.0.0/33' is not valid: invalid CIDR mask"),
    ({"users": APP, "address": "10.1.2.3/8", "method": "md5"},
     "address: '10.1.2.3/8' has host bits set, so it really means 10.0.0.0/8"),
    ({"method": "krb5"}, "value of method must be one of"),
    ({"contype": "local", "address": "127.0.0.1/32"},
     "address: '127.0.0.1/32' must not be set when contype is local"),
    ({"address": None}, "address: required when contype is host"),
    ({"insert_before": "[unclosed"}, "insert_before: '[unclosed' is not a valid regular expression"),
    ({"insert_after": "^pg_hba_no_such_line"}, "insert_after: the regular expression '^pg_hba_no_such_line' "
                                               "matches no line"),
    ({"insert_before": "^#", "insert_after": "^#"}, "parameters are mutually exclusive: insert_before|insert_after"),
    ({"backup": "maybe"}, "argument 'backup' is of type"),
    ({"databases": {"pg_hba": 1}}, "databases: expected a list of names or a comma-separated string, got dict"),
    ({"options": {"ldapserver": "a\nb"}, "method": "ldap"}, "options: the value of ldapserver: 'a\\nb' contains a "
                                                            "line break"),
    ({"method": "cert"}, "method: cert works only with contype hostssl, not host"),
    ({"login_port": CLOSED_PORT}, f"path is not set, so the module asks the server for its hba_file, and that "
                                  f"failed: cannot reach PostgreSQL at postgres@127.0.0.1:{CLOSED_PORT}"),
    ({"login_password": "pg-hba-wrong-password"}, "authentication failed for postgres@127.0.0.1"),
    ({"login_user": APP, "login_password": APP_PW}, "login_user: the role may not read the hba_file setting"),
], ids=["newline-in-users", "unbalanced-quote", "hash-in-name", "cidr-33", "host-bits", "unknown-method",
        "address-with-local", "missing-address", "bad-regex", "regex-matches-nothing", "both-placements",
        "wrong-type-bool", "wrong-type-databases", "newline-in-option", "cert-without-hostssl", "unreachable",
        "wrong-password", "not-superuser"])
def test_bad_input_fails_clearly_and_changes_nothing(live: PgCluster, extra: dict[str, Any], message: str) -> None:
    original = live.hba_file.read_bytes()
    reloads = sighups(live)
    task_args = {k: v for k, v in args(live, **extra).items() if v is not None}
    result = run_module("pg_hba", task_args)
    assert result.get("failed") is True, result
    assert message in result["msg"], result["msg"]
    assert "Traceback" not in result["msg"]
    assert live.hba_file.read_bytes() == original and sighups(live) == reloads


# --- the parser agrees with the server --------------------------------------------------------------------------

@pytest.mark.parametrize("fixture", sorted(p.name for p in FIXTURES.glob("*.conf")))
def test_every_fixture_reads_the_same_for_us_and_for_the_server(live: PgCluster, fixture: str) -> None:
    """pg_hba_file_rules reads the file on disk: same entry lines, and every line we refuse the server refuses."""
    data = (FIXTURES / fixture).read_bytes()
    # The session is opened before the fixture lands on disk, so whatever rules the server loads meanwhile
    # (a reload from elsewhere), this query still runs; pg_hba_file_rules reads the file on disk.
    with live.connect() as conn:
        live.hba_file.write_bytes(data)  # no reload: the running server keeps its rules
        rows = dict(conn.execute("SELECT line_number, error FROM pg_hba_file_rules").fetchall())
    doc = parse_document(data.decode())
    ours = {r.number: r.error for r in doc.records if r.kind in ("rule", "invalid", "include")}
    assert set(ours) == set(rows)
    for number, error in ours.items():
        if error is not None:
            assert rows[number] is not None, f"line {number}: we refuse it ({error}), the server accepts it"
        elif rows[number] is not None:
            kind = doc.record_at_line(number).kind  # type: ignore[union-attr]
            # What only the server can know: SSL off here, @files absent, includes before PostgreSQL 16.
            assert ("SSL is disabled" in rows[number] or "secondary authentication file" in rows[number]
                    or (kind == "include" and "invalid connection type" in rows[number])), (number, rows[number])


# --- addresses as users have them (IPv6, DNS names), from the roles' filter ---------------------------------------

V6_PEERS = {"n2": "::1", "n3": "FD00:D2:15:0::3", "n4": "pgrepl-addr-n4.example"}


def apply_peer_entries(cluster: PgCluster, peers: dict[str, str], resolved: dict[str, list[str]],
                       hostnames: bool = False, state: str = "present", check: bool = False) -> dict[str, Any]:
    """The roles' way: hba_entries (the filter) gives the entries, node_apply applies them in one call."""
    entry = {"path": str(cluster.hba_file), "contype": "host", "databases": ["replication"], "users": [REPLICATOR],
             "reload": True, "state": state}
    if state == "present":
        entry["method"] = "scram-sha-256"
    task = {"name": "peer entries", "vars": {"peers": peers, "resolved": resolved, "entry": entry,
                                             "hostnames": hostnames},
            "pgrepl.streaming.node_apply": {
                **cluster.login(),
                "checks": {"hba": {"module": "pg_hba", "params": "{{ peers | pgrepl.streaming.hba_entries(resolved, "
                                                                 "entry, hostnames=hostnames, strict=false) }}"}}}}
    run = run_tasks([task], check=check)
    assert run.results, f"no result:\n{run.stdout}\n{run.stderr}"
    return run.results[0]


def rules_of(cluster: PgCluster) -> list[tuple]:
    return cluster.sql("SELECT address, netmask, error FROM pg_hba_file_rules WHERE %s = ANY(user_name) "
                       "ORDER BY line_number", (REPLICATOR,))


def test_ipv6_and_dns_entries_are_validated_by_the_server_and_applied_once(live: PgCluster) -> None:
    path = live.hba_file
    original = path.read_bytes()
    resolved = {"pgrepl-addr-n4.example": ["2001:db8::4", "192.0.2.4"]}
    result = apply_peer_entries(live, V6_PEERS, resolved)
    assert result.get("failed") is not True and result["changed"] is True, result
    text = path.read_text()
    for address, node in (("::1/128                ", "n2"), ("fd00:d2:15::3/128      ", "n3"),
                          ("192.0.2.4/32           ", "n4"), ("2001:db8::4/128        ", "n4")):
        line = f"host    replication     hba_replicator  {address} scram-sha-256  # pgrepl.streaming: {node}"
        assert line + "\n" in text, text
    # The server reads every entry as one host: the address and an all-ones netmask, no error. (The IPv4 entry
    # went before the file's IPv4 reject, the IPv6 ones after it: the order of the lines differs.)
    all_ones = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
    assert sorted(rules_of(live)) == sorted([("::1", all_ones, None), ("fd00:d2:15::3", all_ones, None),
                                             ("192.0.2.4", "255.255.255.255", None), ("2001:db8::4", all_ones, None)])
    assert server_errors(live) == []
    again = apply_peer_entries(live, V6_PEERS, resolved)
    assert again.get("failed") is not True and again["changed"] is False, again
    # The removal (remove_standby's way) gives back the very bytes.
    removed = apply_peer_entries(live, V6_PEERS, resolved, state="absent")
    assert removed["changed"] is True and path.read_bytes() == original


def test_the_opt_in_hostname_entry_is_the_name_and_the_server_accepts_it(live: PgCluster) -> None:
    original = live.hba_file.read_bytes()
    result = apply_peer_entries(live, {"n4": "pgrepl-addr-n4.example"}, {}, hostnames=True)
    assert result.get("failed") is not True and result["changed"] is True, result
    assert rules_of(live) == [("pgrepl-addr-n4.example", None, None)]
    assert apply_peer_entries(live, {"n4": "pgrepl-addr-n4.example"}, {}, hostnames=True, state="absent")["changed"]
    assert live.hba_file.read_bytes() == original


# --- byte for byte (issue 10, item 7) ------------------------------------------------------------------------------

@pytest.mark.parametrize("ending", ["lf", "lf-no-final-newline", "crlf", "crlf-no-final-newline"])
def test_adding_then_removing_gives_back_the_original_bytes(live: PgCluster, ending: str) -> None:
    """The live file in four endings: the module adds an entry (validated by the server, reloaded) and removes it,
    and the file is the original, byte for byte."""
    text = scenario_text(int(live.scalar("SHOW server_version_num")) // 10000)
    if ending.startswith("crlf"):
        text = text.replace("\n", "\r\n")
    if ending.endswith("no-final-newline"):
        text = text.rstrip("\r\n")
        text = text + "\n" + "host    replication     all             ::/0                    reject" \
            if ending == "lf-no-final-newline" else text  # a last line that is a rule, and one that is the reject
    original = text.encode()
    live.hba_file.write_bytes(original)
    reload_and_wait(live)
    assert server_errors(live) == []
    for entry_args in (args(live), args(live, address="::1/128", contype="hostnossl", databases="app")):
        added = run_module("pg_hba", entry_args)
        assert added["changed"] is True and added["validation"] == "server" and added["reloaded"] is True, added
        assert live.hba_file.read_bytes() != original and server_errors(live) == []
        if ending.endswith("no-final-newline"):
            assert not live.hba_file.read_bytes().endswith(b"\n")
        removed = run_module("pg_hba", {**entry_args, "state": "absent"})
        assert removed["changed"] is True and removed["validation"] == "server", removed
        assert live.hba_file.read_bytes() == original
