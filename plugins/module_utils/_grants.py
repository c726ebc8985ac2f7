# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""EXECUTE privileges on functions of pg_catalog: which ones a role may not execute yet, and the GRANT for each.

Function privileges belong to one database (pg_proc is per database; a standby gets them with the WAL): they are
read and granted in the database the connection is to. has_function_privilege counts grants to PUBLIC and to the
roles this one inherits from, so a role that already may execute a function through them gets no grant of its own.
"""

from __future__ import annotations

from typing import Any

from ansible_collections.pgrepl.streaming.plugins.module_utils._connection import identifier, query_all, sql
from ansible_collections.pgrepl.streaming.plugins.module_utils._promotion import PROMOTE_SIGNATURE

# What a role needs to promote a standby over SQL (handover, as the replication user).
PROMOTE_FUNCTIONS = (PROMOTE_SIGNATURE,)


def quote_identifier(name: str) -> str:
    """A role name as a double-quoted SQL identifier, for statements shown to people (never executed as text)."""
    return '"' + name.replace('"', '""') + '"'


def grant_statements(role: str, signatures: tuple[str, ...]) -> list[str]:
    """The GRANT statements as text, for reports."""
    return [f"GRANT EXECUTE ON FUNCTION {signature} TO {quote_identifier(role)}" for signature in signatures]


def grant_query(signature: str, role: str) -> Any:
    """The composed GRANT (the signature is one of the callers' constants, the role quoted)."""
    return sql.SQL("GRANT EXECUTE ON FUNCTION {} TO {}").format(sql.SQL(signature), identifier(role))


def missing_grants(conn: Any, role: str, signatures: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """(functions the role may execute, functions it may not), in the order given."""
    rows = query_all(
        conn,
        "SELECT f.signature, pg_catalog.has_function_privilege(%s::name, f.signature, 'EXECUTE') AS granted"
        " FROM unnest(%s::text[]) WITH ORDINALITY AS f(signature, position) ORDER BY f.position",
        (role, list(signatures)),
    )
    present = [row["signature"] for row in rows if row["granted"]]
    missing = [row["signature"] for row in rows if not row["granted"]]
    return present, missing


def grant(conn: Any, role: str, signatures: list[str]) -> None:
    """The GRANTs, in one transaction."""
    if not signatures:
        return
    with conn.transaction():
        with conn.cursor() as cur:
            for signature in signatures:
                cur.execute(grant_query(signature, role))


def revoke_query(signature: str, role: str) -> Any:
    """The composed REVOKE (the signature is one of the callers' constants, the role quoted)."""
    return sql.SQL("REVOKE EXECUTE ON FUNCTION {} FROM {}").format(sql.SQL(signature), identifier(role))


def own_grants(conn: Any, role: str, signatures: tuple[str, ...]) -> list[str]:
    """The functions the role was granted EXECUTE on itself (not through PUBLIC or a role it inherits from), in the
    order given: what a REVOKE from it takes away."""
    rows = query_all(
        conn,
        "SELECT f.signature FROM unnest(%s::text[]) WITH ORDINALITY AS f(signature, position)"
        " WHERE EXISTS (SELECT FROM pg_catalog.pg_proc p, pg_catalog.aclexplode(p.proacl) AS a"
        "               WHERE p.oid = f.signature::pg_catalog.regprocedure"
        "                 AND a.grantee = (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = %s)"
        "                 AND a.privilege_type = 'EXECUTE')"
        " ORDER BY f.position",
        (list(signatures), role),
    )
    return [row["signature"] for row in rows]


def revoke(conn: Any, role: str, signatures: list[str]) -> None:
    """The REVOKEs, in one transaction."""
    if not signatures:
        return
    with conn.transaction():
        with conn.cursor() as cur:
            for signature in signatures:
                cur.execute(revoke_query(signature, role))
