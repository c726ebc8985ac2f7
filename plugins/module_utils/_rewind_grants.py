# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rewind_grants module: the EXECUTE privileges PostgreSQL's pg_rewind documentation lists for a non-superuser
role on the source, granted where the role lacks them (function privileges are per database: grant them in the
database pg_rewind connects to)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ansible_collections.pgrepl.streaming.plugins.module_utils._changes import ChangeTracker
from ansible_collections.pgrepl.streaming.plugins.module_utils._connection import connect, describe_target, query_dict
from ansible_collections.pgrepl.streaming.plugins.module_utils._errors import PgreplError
from ansible_collections.pgrepl.streaming.plugins.module_utils._grants import (
    grant,
    grant_statements,
    missing_grants,
    own_grants,
    quote_identifier,
    revoke,
)
from ansible_collections.pgrepl.streaming.plugins.module_utils._grants import grant_query as function_grant_query
from ansible_collections.pgrepl.streaming.plugins.module_utils._module import ModuleSpec
from ansible_collections.pgrepl.streaming.plugins.module_utils._names import validate_role_name
from ansible_collections.pgrepl.streaming.plugins.module_utils._server import (
    require_superuser,
    require_writable,
    supported_server_facts,
)

# The EXECUTE privileges PostgreSQL's pg_rewind documentation lists for a non-superuser role ("Notes").
REWIND_FUNCTIONS = (
    "pg_catalog.pg_ls_dir(text, boolean, boolean)",
    "pg_catalog.pg_stat_file(text, boolean)",
    "pg_catalog.pg_read_binary_file(text)",
    "pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean)",
)

# quote_identifier is also this module's (the tests and reports use it from here).
__all__ = ["REWIND_FUNCTIONS", "REWIND_GRANTS_SPEC", "GrantOutcome", "ensure_rewind_grants", "grant_query",
           "missing_rewind_grants", "quote_identifier", "rewind_grant_statements", "run_rewind_grants"]

REWIND_GRANTS_SPEC = ModuleSpec({
    "role": {"type": "str", "required": True},
    "state": {"type": "str", "default": "present", "choices": ["present", "absent"]},
})


def rewind_grant_statements(role: str, functions: tuple[str, ...] = REWIND_FUNCTIONS) -> list[str]:
    """The GRANT statements PostgreSQL's pg_rewind documentation lists, for this role (as text, for reports)."""
    return grant_statements(role, functions)


def grant_query(signature: str, role: str) -> Any:
    """The composed GRANT for one of REWIND_FUNCTIONS (the signature is a constant of this file, the role quoted)."""
    if signature not in REWIND_FUNCTIONS:
        raise PgreplError(f"{signature!r} is not one of the functions pg_rewind needs")
    return function_grant_query(signature, role)


@dataclass(frozen=True)
class GrantOutcome:
    """Which of the functions the role could execute before, and which were (or would be) granted."""

    present: list[str]
    missing: list[str]
    statements: list[str]
    applied: bool

    @property
    def changed(self) -> bool:
        return bool(self.missing)


def missing_rewind_grants(conn: Any, role: str) -> tuple[list[str], list[str]]:
    """(functions the role may execute, functions it may not), in REWIND_FUNCTIONS order."""
    return missing_grants(conn, role, REWIND_FUNCTIONS)


def ensure_rewind_grants(conn: Any, role: str, check_mode: bool) -> GrantOutcome:
    """Grant the role whichever of pg_rewind's functions it may not execute yet (nothing is sent in check mode),
    in one transaction (see _grants.py)."""
    present, missing = missing_rewind_grants(conn, role)
    statements = rewind_grant_statements(role, tuple(missing))
    if missing and not check_mode:
        grant(conn, role, missing)
    return GrantOutcome(present=present, missing=missing, statements=statements,
                        applied=bool(missing) and not check_mode)


def revoke_rewind_grants(conn: Any, role: str, check_mode: bool) -> list[str]:
    """Revoke the grants of pg_rewind's functions the role holds itself (what state=present gave it); the ones
    revoked (or that would be)."""
    held = own_grants(conn, role, REWIND_FUNCTIONS)
    if held and not check_mode:
        revoke(conn, role, held)
    return held


def run_rewind_grants(module: Any) -> dict[str, Any]:
    """The rewind_grants module's body."""
    role = validate_role_name(module.params.get("role"), "role", new=False)
    state = module.params.get("state") or "present"
    warnings: list[str] = []
    conn = connect(module.params)
    try:
        facts = supported_server_facts(conn, warnings)
        require_superuser(facts, "granting EXECUTE on pg_catalog functions")
        require_writable(facts, "grant EXECUTE on pg_rewind's functions")
        row = query_dict(conn, "SELECT rolsuper, rolcanlogin, current_database() AS database"
                               " FROM pg_catalog.pg_roles WHERE rolname = %s", (role,))
        if state == "absent":
            revoked = revoke_rewind_grants(conn, role, module.check_mode) if row is not None else []
            return revoked_result(module, role, revoked, row, warnings)
        if row is None:
            raise PgreplError(f"role: {role!r} does not exist on {describe_target(module.params)}: create it first "
                              "(an ordinary LOGIN role, not a superuser)")
        if row["rolsuper"]:
            raise PgreplError(f"role: {role!r} is a superuser: pg_rewind should connect as an ordinary login role "
                              "that has only the grants it needs (and a superuser needs none); give a role without "
                              "SUPERUSER")
        if not row["rolcanlogin"]:
            warnings.append(f"role {role!r} has NOLOGIN: pg_rewind cannot connect as it (grants to a group role reach "
                            "only its members that inherit)")
        outcome = ensure_rewind_grants(conn, role, module.check_mode)
    finally:
        conn.close()
    tracker = ChangeTracker(module.check_mode)
    tracker.record("executable_functions", outcome.present, list(REWIND_FUNCTIONS))
    result: dict[str, Any] = {
        "changed": outcome.changed,
        "role": role,
        "database": row["database"],
        "granted": outcome.missing,
        "already_granted": outcome.present,
        "statements": outcome.statements,
        "msg": (f"granted {len(outcome.missing)} of pg_rewind's functions to {role!r} in database "
                f"{row['database']!r}" if outcome.applied else
                f"would grant {len(outcome.missing)} of pg_rewind's functions to {role!r} in database "
                f"{row['database']!r}" if outcome.missing else
                f"{role!r} may already execute every function pg_rewind needs in database {row['database']!r}"),
    }
    if getattr(module, "_diff", False):
        result["diff"] = tracker.diff()
    for warning in warnings:
        module.warn(warning)
    return result


def revoked_result(module: Any, role: str, revoked: list[str], row: dict[str, Any] | None,
                   warnings: list[str]) -> dict[str, Any]:
    """The result of state=absent (a role that does not exist holds no grant: nothing to do)."""
    tracker = ChangeTracker(module.check_mode)
    tracker.record("granted_to_role", revoked, [])
    database = row["database"] if row is not None else None
    verb = "revoked" if revoked and not module.check_mode else "would revoke" if revoked else "nothing to revoke:"
    result: dict[str, Any] = {
        "changed": bool(revoked),
        "role": role,
        "database": database,
        "revoked": revoked,
        "granted": [],
        "already_granted": [],
        "statements": [f"REVOKE EXECUTE ON FUNCTION {signature} FROM {quote_identifier(role)}"
                       for signature in revoked],
        "msg": (f"{verb} {len(revoked)} of pg_rewind's functions from {role!r}" if revoked else
                f"nothing to revoke: {role!r} holds no grant of pg_rewind's functions"
                + ("" if row is not None else " (the role does not exist)")),
    }
    if getattr(module, "_diff", False):
        result["diff"] = tracker.diff()
    for warning in warnings:
        module.warn(warning)
    return result
