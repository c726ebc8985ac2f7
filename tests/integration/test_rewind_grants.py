"""pgrepl.streaming.rewind_grants through Ansible, on a server of this file's own.

The grants are checked in the catalog (has_function_privilege, pg_proc.proacl). That pg_rewind really works with a
role granted by this module, and fails without the grants, is shown in test_rewind.py. Only the standby refusal
uses the shared `standby` fixture, read-only.
"""

from __future__ import annotations

from typing import Any, Callable

import pytest
from psycopg import sql

from ansible_collections.pgrepl.streaming.plugins.module_utils._rewind_grants import (
    REWIND_FUNCTIONS,
    rewind_grant_statements,
)

from ansible_runner import run_module
from cluster import SUPERUSER_PASSWORD, Clusters, PgCluster, free_port

MODULE = "pgrepl.streaming.rewind_grants"
LOGIN_ROLE = "rg_login"
LOGIN_PASSWORD = "rg-login-pw-5Tn"
CANARY_ROLE = "rg_canary"
CANARY_TABLE = "rg_canary_table"


def privileges(cluster: PgCluster, role: str, dbname: str = "postgres") -> list[bool]:
    """has_function_privilege of the role on each of pg_rewind's functions, in REWIND_FUNCTIONS order."""
    with cluster.connect(dbname=dbname) as conn, conn.cursor() as cur:
        cur.execute("SELECT has_function_privilege(%s::name, f, 'EXECUTE') FROM unnest(%s::text[]) "
                    "WITH ORDINALITY AS x(f, n) ORDER BY n", (role, list(REWIND_FUNCTIONS)))
        return [row[0] for row in cur.fetchall()]


def own_acl_entries(cluster: PgCluster, role: str) -> int:
    """How many of pg_rewind's functions carry an ACL entry naming the role itself."""
    return int(cluster.scalar(
        "SELECT count(*) FROM pg_proc p, aclexplode(p.proacl) a WHERE p.oid = ANY(%s::regprocedure[]) "
        "AND a.grantee = %s::regrole AND a.privilege_type = 'EXECUTE'", (list(REWIND_FUNCTIONS), role)))


def create_role(cluster: PgCluster, name: str, options: str = "LOGIN") -> None:
    cluster.sql(sql.SQL("CREATE ROLE {} " + options).format(sql.Identifier(name)))


@pytest.fixture(scope="module")
def server(throwaway: Clusters) -> PgCluster:
    cluster = throwaway.server("rewind_grants_pg")
    cluster.sql(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(LOGIN_ROLE),
                                                                   sql.Literal(LOGIN_PASSWORD)))
    create_role(cluster, CANARY_ROLE)
    cluster.sql(sql.SQL("CREATE TABLE {} (id int)").format(sql.Identifier(CANARY_TABLE)))
    return cluster


def test_check_mode_then_grant_then_rerun(server: PgCluster) -> None:
    role = "rg_fresh"
    create_role(server, role)
    assert privileges(server, role) == [False] * 4
    offset = len(server.log_text())

    predicted = run_module(MODULE, {"role": role, **server.login()}, check=True, diff=True)
    assert predicted.get("failed") is not True, predicted
    assert predicted["changed"] is True and predicted["granted"] == list(REWIND_FUNCTIONS)
    assert predicted["already_granted"] == [] and predicted["database"] == "postgres"
    assert predicted["statements"] == rewind_grant_statements(role)
    assert predicted["statements"][0] == \
        'GRANT EXECUTE ON FUNCTION pg_catalog.pg_ls_dir(text, boolean, boolean) TO "rg_fresh"'
    assert predicted["diff"] == {"before": {"executable_functions": []},
                                 "after": {"executable_functions": list(REWIND_FUNCTIONS)}}
    assert privileges(server, role) == [False] * 4
    assert "GRANT" not in server.log_text()[offset:]

    granted = run_module(MODULE, {"role": role, **server.login()}, diff=True)
    assert granted.get("failed") is not True, granted
    assert granted["changed"] is True and granted["granted"] == list(REWIND_FUNCTIONS)
    assert granted["msg"] == "granted 4 of pg_rewind's functions to 'rg_fresh' in database 'postgres'"
    assert privileges(server, role) == [True] * 4 and own_acl_entries(server, role) == 4
    assert server.scalar("SELECT rolsuper FROM pg_roles WHERE rolname = %s", (role,)) is False

    offset = len(server.log_text())
    for check in (True, False):
        again = run_module(MODULE, {"role": role, **server.login()}, check=check, diff=True)
        assert again.get("failed") is not True, again
        assert again["changed"] is False and again["granted"] == [] and again["statements"] == []
        assert again["already_granted"] == list(REWIND_FUNCTIONS)
        assert again["diff"]["before"] == again["diff"]["after"]
    assert "GRANT" not in server.log_text()[offset:]


def test_state_absent_revokes_the_roles_own_grants_then_the_role_can_be_dropped(server: PgCluster) -> None:
    role = "rg_after_rejoin"
    create_role(server, role)
    assert run_module(MODULE, {"role": role, **server.login()})["changed"] is True
    assert own_acl_entries(server, role) == 4
    offset = len(server.log_text())

    predicted = run_module(MODULE, {"role": role, "state": "absent", **server.login()}, check=True, diff=True)
    assert predicted.get("failed") is not True, predicted
    assert predicted["changed"] is True and predicted["revoked"] == list(REWIND_FUNCTIONS)
    assert predicted["diff"] == {"before": {"granted_to_role": list(REWIND_FUNCTIONS)},
                                 "after": {"granted_to_role": []}}
    assert own_acl_entries(server, role) == 4 and "REVOKE" not in server.log_text()[offset:]

    revoked = run_module(MODULE, {"role": role, "state": "absent", **server.login()})
    assert revoked.get("failed") is not True, revoked
    assert revoked["changed"] is True and revoked["revoked"] == list(REWIND_FUNCTIONS)
    assert privileges(server, role) == [False] * 4 and own_acl_entries(server, role) == 0
    again = run_module(MODULE, {"role": role, "state": "absent", **server.login()})
    assert (again["changed"], again["revoked"]) == (False, [])
    # Nothing depends on the role any more: it can go.
    server.sql(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
    gone = run_module(MODULE, {"role": role, "state": "absent", **server.login()})
    assert gone.get("failed") is not True and gone["changed"] is False, gone


def test_state_absent_leaves_grants_the_role_does_not_hold_itself(server: PgCluster) -> None:
    create_role(server, "rg_group2", "NOLOGIN")
    run_module(MODULE, {"role": "rg_group2", **server.login()})
    create_role(server, "rg_member2", "LOGIN IN ROLE rg_group2")
    result = run_module(MODULE, {"role": "rg_member2", "state": "absent", **server.login()})
    assert result.get("failed") is not True and result["changed"] is False, result
    assert privileges(server, "rg_member2") == [True] * 4  # through the group, which keeps its grants
    assert own_acl_entries(server, "rg_group2") == 4


def test_only_missing_grants_are_made(server: PgCluster) -> None:
    role = "rg_partial"
    create_role(server, role)
    server.sql(sql.SQL("GRANT EXECUTE ON FUNCTION pg_catalog.pg_stat_file(text, boolean) TO {}").format(
        sql.Identifier(role)))
    result = run_module(MODULE, {"role": role, **server.login()})
    assert result.get("failed") is not True, result
    assert result["already_granted"] == ["pg_catalog.pg_stat_file(text, boolean)"]
    assert result["granted"] == [name for name in REWIND_FUNCTIONS if "pg_stat_file" not in name]
    assert len(result["statements"]) == 3 and all("pg_stat_file" not in text for text in result["statements"])
    assert privileges(server, role) == [True] * 4


def test_grants_through_a_group_role_count(server: PgCluster) -> None:
    create_role(server, "rg_group", "NOLOGIN")
    group = run_module(MODULE, {"role": "rg_group", **server.login()})
    assert group.get("failed") is not True and group["changed"] is True, group
    assert any("NOLOGIN" in warning for warning in group["warnings"])
    create_role(server, "rg_member", "LOGIN IN ROLE rg_group")
    member = run_module(MODULE, {"role": "rg_member", **server.login()})
    assert member.get("failed") is not True, member
    assert member["changed"] is False and member["already_granted"] == list(REWIND_FUNCTIONS)
    assert own_acl_entries(server, "rg_member") == 0


def test_grants_are_made_in_login_db(server: PgCluster) -> None:
    role = "rg_otherdb"
    create_role(server, role)
    server.sql("CREATE DATABASE rg_other")
    result = run_module(MODULE, {"role": role, **server.login(login_db="rg_other")})
    assert result.get("failed") is not True, result
    assert result["changed"] is True and result["database"] == "rg_other"
    assert privileges(server, role, "rg_other") == [True] * 4
    assert privileges(server, role, "postgres") == [False] * 4


# ---------------------------------------------------------------------------------------------------- bad inputs

CLOSED_PORT = free_port()
Case = tuple[str, Callable[[PgCluster, PgCluster], dict[str, Any]], list[str]]
BAD_INPUTS: list[Case] = [
    ("role_missing", lambda p, s: p.login(), ["missing required arguments: role"]),
    ("role_empty", lambda p, s: {"role": "", **p.login()}, ["role: '' is not a valid role name"]),
    ("role_too_long", lambda p, s: {"role": "r" * 64, **p.login()}, ["is 64 bytes long", "63 bytes"]),
    ("role_unknown", lambda p, s: {"role": "rg_nobody", **p.login()},
     ["role: 'rg_nobody' does not exist on postgres@127.0.0.1", "create it first"]),
    ("role_injection", lambda p, s: {"role": f'{CANARY_ROLE}"; DROP TABLE {CANARY_TABLE}; --', **p.login()},
     [f"role: '{CANARY_ROLE}\"; DROP TABLE {CANARY_TABLE}; --' does not exist"]),
    ("role_superuser", lambda p, s: {"role": "postgres", **p.login()},
     ["role: 'postgres' is a superuser", "give a role without SUPERUSER"]),
    ("login_not_superuser", lambda p, s: {"role": CANARY_ROLE,
                                          **p.login(login_user=LOGIN_ROLE, login_password=LOGIN_PASSWORD)},
     [f"login_user: the role '{LOGIN_ROLE}' is not a superuser", "granting EXECUTE on pg_catalog functions"]),
    ("wrong_password", lambda p, s: {"role": CANARY_ROLE, **p.login(login_password="not-the-password")},
     ["authentication failed for postgres@127.0.0.1"]),
    ("closed_port", lambda p, s: {"role": CANARY_ROLE, **p.login(login_port=CLOSED_PORT)},
     ["cannot reach PostgreSQL", str(CLOSED_PORT)]),
    ("login_db_unknown", lambda p, s: {"role": CANARY_ROLE, **p.login(login_db="rg_nodb")},
     ["login_db: the database does not exist"]),
    ("on_a_standby", lambda p, s: {"role": CANARY_ROLE, **s.login()},
     ["the server is a standby (pg_is_in_recovery() is true)", "only be done on the primary"]),
]


@pytest.mark.parametrize("case", BAD_INPUTS, ids=[case[0] for case in BAD_INPUTS])
def test_bad_input_fails_cleanly_and_grants_nothing(server: PgCluster, standby: PgCluster, case: Case) -> None:
    offset, standby_offset = len(server.log_text()), len(standby.log_text())
    result = run_module(MODULE, case[1](server, standby))
    assert result.get("failed") is True, result
    for text in case[2]:
        assert text in result["msg"], result["msg"]
    assert "Traceback" not in result["msg"]
    for secret in (SUPERUSER_PASSWORD, LOGIN_PASSWORD, "not-the-password"):
        assert secret not in str(result)
    assert "GRANT" not in server.log_text()[offset:] and "GRANT" not in standby.log_text()[standby_offset:]
    assert privileges(server, CANARY_ROLE) == [False] * 4
    assert server.scalar("SELECT to_regclass(%s) IS NOT NULL", (CANARY_TABLE,)) is True
