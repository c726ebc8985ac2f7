# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The replication role: a LOGIN REPLICATION role that is never a superuser, with a client-side SCRAM password.

With replication false the same code manages an ordinary LOGIN role (NOREPLICATION, never a superuser), such as
the role pg_rewind connects to its source as. With promote the role also gets EXECUTE on pg_promote in the database
of the connection, so that it can promote a standby over SQL (handover).

Facts first (pg_authid, pg_shdepend), then a plan (what differs), then at most one DDL statement, and only
outside check mode. The cleartext password never leaves this process: the server gets a SCRAM-SHA-256
verifier, and idempotence is decided by recomputing the stored verifier with its own salt and iterations.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ansible_collections.pgrepl.streaming.plugins.module_utils._changes import ChangeTracker
from ansible_collections.pgrepl.streaming.plugins.module_utils._connection import (
    connect,
    identifier,
    psycopg,
    query_all,
    query_dict,
    sql,
)
from ansible_collections.pgrepl.streaming.plugins.module_utils._errors import PgreplError
from ansible_collections.pgrepl.streaming.plugins.module_utils._grants import PROMOTE_FUNCTIONS, grant, missing_grants
from ansible_collections.pgrepl.streaming.plugins.module_utils._module import ModuleSpec
from ansible_collections.pgrepl.streaming.plugins.module_utils._names import validate_role_name
from ansible_collections.pgrepl.streaming.plugins.module_utils._options import require_bool, require_choice
from ansible_collections.pgrepl.streaming.plugins.module_utils._scram import (
    MAX_PASSWORD_BYTES,
    ScramFormatError,
    build_verifier,
    is_verifier,
    verify_password,
)
from ansible_collections.pgrepl.streaming.plugins.module_utils._server import (
    require_superuser,
    require_writable,
    supported_server_facts,
)

CONN_LIMIT_MAX = 2147483647
UPDATE_PASSWORD_CHOICES = ("always", "on_create")
STATE_CHOICES = ("present", "absent")
SHARED_OBJECTS = "(shared objects: databases, tablespaces)"


def replication_user_argument_spec() -> dict[str, dict[str, Any]]:
    """The module's own options (the connection options are merged in by ModuleSpec)."""
    return {
        "name": {"type": "str", "required": True},
        "password": {"type": "str", "no_log": True},
        "state": {"type": "str", "default": "present", "choices": list(STATE_CHOICES)},
        # no_log False: the name contains "password" but the value is a policy, not a secret.
        "update_password": {"type": "str", "default": "always", "choices": list(UPDATE_PASSWORD_CHOICES),
                            "no_log": False},
        "conn_limit": {"type": "int", "default": -1},
        "replication": {"type": "bool", "default": True},
        "promote": {"type": "bool", "default": False},
    }


REPLICATION_USER_SPEC = ModuleSpec(replication_user_argument_spec())


@dataclass(frozen=True)
class RoleRequest:
    """What the user asked for, validated."""

    name: str
    password: str | None
    state: str
    update_password: str
    conn_limit: int
    replication: bool = True
    promote: bool = False


@dataclass(frozen=True)
class RoleState:
    """A role as pg_authid has it (rolpassword is the stored verifier, never shown)."""

    oid: int
    name: str
    superuser: bool
    login: bool
    replication: bool
    conn_limit: int
    stored_password: str | None = field(repr=False)

    @property
    def password_set(self) -> bool:
        return self.stored_password is not None


def validate_password(password: Any) -> str | None:
    """Refuse passwords PostgreSQL cannot store or check; the message never contains the value."""
    if password is None:
        return None
    if not isinstance(password, str):
        raise PgreplError("password: the value must be a string")
    if password == "":
        raise PgreplError("password: the value is empty; PostgreSQL would clear the password instead of "
                          "setting it (omit password to leave the stored one alone)")
    if "\x00" in password:
        raise PgreplError("password: the value contains a NUL character, which PostgreSQL cannot store")
    try:
        size = len(password.encode("utf-8"))
    except UnicodeEncodeError:
        raise PgreplError("password: the value is not valid UTF-8") from None
    if size > MAX_PASSWORD_BYTES and not is_verifier(password):
        raise PgreplError(f"password: the value is {size} bytes long; PostgreSQL and libpq refuse passwords "
                          f"longer than {MAX_PASSWORD_BYTES} bytes")
    if looks_like_md5(password):
        raise PgreplError("password: the value looks like an md5 hash ('md5' and 32 hex digits), which "
                          "PostgreSQL would store as it is; this module stores SCRAM-SHA-256 verifiers only: "
                          "give the cleartext password or a SCRAM-SHA-256 verifier")
    return password


def looks_like_md5(value: str) -> bool:
    """PostgreSQL's test for an md5 hash given as PASSWORD."""
    digits = value[3:]
    return value.startswith("md5") and len(digits) == 32 and all(c in "0123456789abcdef" for c in digits)


def validate_conn_limit(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise PgreplError(f"conn_limit: {value!r} is not an integer")
    if not -1 <= value <= CONN_LIMIT_MAX:
        raise PgreplError(f"conn_limit: {value} is out of range (-1 for no limit, or 0 to {CONN_LIMIT_MAX} "
                          "connections)")
    return value


def validate_request(params: dict[str, Any]) -> RoleRequest:
    """Everything that can be refused before connecting is refused here."""
    state = require_choice(params, "state", STATE_CHOICES, "present")
    update_password = require_choice(params, "update_password", UPDATE_PASSWORD_CHOICES, "always")
    conn_limit = params.get("conn_limit")
    return RoleRequest(
        name=validate_role_name(params.get("name")),
        password=validate_password(params.get("password")),
        state=state,
        update_password=update_password,
        conn_limit=validate_conn_limit(-1 if conn_limit is None else conn_limit),
        replication=require_bool(params, "replication", True),
        promote=require_bool(params, "promote", False),
    )


def read_role(conn: Any, name: str) -> RoleState | None:
    """The role's row in pg_authid (superuser only), or None."""
    row = query_dict(
        conn,
        "SELECT oid::bigint AS oid, rolname, rolsuper, rolcanlogin, rolreplication, rolconnlimit, rolpassword"
        " FROM pg_catalog.pg_authid WHERE rolname = %s",
        (name,),
    )
    if row is None:
        return None
    return RoleState(
        oid=int(row["oid"]),
        name=str(row["rolname"]),
        superuser=bool(row["rolsuper"]),
        login=bool(row["rolcanlogin"]),
        replication=bool(row["rolreplication"]),
        conn_limit=int(row["rolconnlimit"]),
        stored_password=row["rolpassword"],
    )


def role_dependencies(conn: Any, oid: int) -> list[tuple[str, int]]:
    """(database, count) of what the role owns or holds privileges on: DROP ROLE refuses while any exist."""
    rows = query_all(
        conn,
        "SELECT d.datname, count(*)::bigint AS n"
        " FROM pg_catalog.pg_shdepend s LEFT JOIN pg_catalog.pg_database d ON d.oid = s.dbid"
        " WHERE s.refclassid = 'pg_catalog.pg_authid'::pg_catalog.regclass AND s.refobjid = %s"
        " AND s.deptype <> 'p'"
        " GROUP BY d.datname ORDER BY d.datname NULLS FIRST",
        (oid,),
    )
    return [(str(row["datname"]) if row["datname"] is not None else SHARED_OBJECTS, int(row["n"])) for row in rows]


def password_differs(stored: str | None, password: str) -> bool:
    """Whether setting this password would change what is stored; never sends the password anywhere.

    A SCRAM verifier given as the password is compared as it is. A cleartext password is recomputed with the
    stored verifier's own salt and iterations. md5 hashes, no password, or anything unparsable: it differs
    (the stored value will be replaced by a SCRAM-SHA-256 verifier).
    """
    if is_verifier(password):
        return stored != password
    if stored is None:
        return True
    try:
        return not verify_password(stored, password)
    except ScramFormatError:
        return True


def verifier_for(password: str) -> str:
    """What is sent to the server as PASSWORD: a verifier given by the user as it is, otherwise a new one."""
    return password if is_verifier(password) else build_verifier(password)


def _superuser_refusal(name: str, action: str, replication: bool = True) -> PgreplError:
    managed, kind = (("replication roles", "a replication role") if replication
                     else ("ordinary login roles (replication false)", "an ordinary login role"))
    return PgreplError(
        f"name: the role {name!r} exists and is a SUPERUSER; this module manages {managed}, which are "
        f"never superusers, so it will not {action} it (if it should become {kind}, remove "
        "SUPERUSER yourself first with ALTER ROLE ... NOSUPERUSER)"
    )


def _dependency_refusal(name: str, deps: list[tuple[str, int]]) -> PgreplError:
    where = ", ".join(f"{db if db == SHARED_OBJECTS else repr(db)}: {count}" for db, count in deps)
    return PgreplError(
        f"name: the role {name!r} cannot be dropped: it owns objects or holds privileges ({where}); run "
        "REASSIGN OWNED BY and DROP OWNED BY for it in each of those databases first"
    )


def _attributes(login: bool, replication: bool, conn_limit: int, password_set: bool) -> dict[str, Any]:
    return {"state": "present", "login": login, "replication": replication, "superuser": False,
            "conn_limit": conn_limit, "password_set": password_set}


@dataclass
class Plan:
    """What one run would do: which attributes to add, whether to set the password, create or drop."""

    create: bool = False
    drop: bool = False
    add_login: bool = False
    add_replication: bool = False
    remove_replication: bool = False
    conn_limit: int | None = None  # a new limit, or None to leave it
    set_password: bool = False

    @property
    def alters(self) -> bool:
        return (self.add_login or self.add_replication or self.remove_replication or self.conn_limit is not None
                or self.set_password)


def plan_present(req: RoleRequest, role: RoleState | None, tracker: ChangeTracker) -> Plan:
    """Decide from facts what to change for state=present, and record before/after."""
    if role is None:
        plan = Plan(create=True, set_password=req.password is not None)
        tracker.record("state", "absent", "present")
        tracker.after.update(_attributes(True, req.replication, req.conn_limit, req.password is not None))
        tracker.after["password"] = "changed" if plan.set_password else "unchanged"
        return plan
    if role.superuser:
        raise _superuser_refusal(role.name, "change", req.replication)
    plan = Plan(
        add_login=not role.login,
        add_replication=req.replication and not role.replication,
        remove_replication=role.replication and not req.replication,
        conn_limit=req.conn_limit if role.conn_limit != req.conn_limit else None,
        set_password=(req.password is not None and req.update_password == "always"
                      and password_differs(role.stored_password, req.password)),
    )
    tracker.record("state", "present", "present")
    tracker.record("login", role.login, True)
    tracker.record("replication", role.replication, req.replication)
    tracker.record("superuser", False, False)
    tracker.record("conn_limit", role.conn_limit, req.conn_limit)
    tracker.record("password_set", role.password_set, role.password_set or plan.set_password)
    tracker.record("password", "unchanged", "changed" if plan.set_password else "unchanged")
    return plan


def plan_absent(conn: Any, role: RoleState | None, tracker: ChangeTracker, replication: bool = True) -> Plan:
    """Decide from facts whether to drop, refusing what DROP ROLE would refuse (and superusers)."""
    if role is None:
        tracker.record("state", "absent", "absent")
        return Plan()
    if role.superuser:
        raise _superuser_refusal(role.name, "drop", replication)
    deps = role_dependencies(conn, role.oid)
    if deps:
        raise _dependency_refusal(role.name, deps)
    tracker.before.update(_attributes(role.login, role.replication, role.conn_limit, role.password_set))
    tracker.record("state", "present", "absent")
    return Plan(drop=True)


def _role_statement(req: RoleRequest, plan: Plan) -> tuple[Any, list[Any]]:
    """The one DDL statement for a plan, with its client-side bound parameters (the verifier among them)."""
    ident = identifier(req.name)
    if plan.drop:
        return sql.SQL("DROP ROLE {}").format(ident), []
    args: list[Any] = []
    if plan.create:
        replication = sql.SQL("REPLICATION" if req.replication else "NOREPLICATION")
        parts = [sql.SQL("CREATE ROLE {} WITH LOGIN {} NOSUPERUSER CONNECTION LIMIT %s").format(ident, replication)]
        args.append(req.conn_limit)
    else:
        parts = [sql.SQL("ALTER ROLE {} WITH").format(ident)]
        if plan.add_login:
            parts.append(sql.SQL("LOGIN"))
        if plan.add_replication:
            parts.append(sql.SQL("REPLICATION"))
        if plan.remove_replication:
            parts.append(sql.SQL("NOREPLICATION"))
        if plan.conn_limit is not None:
            parts.append(sql.SQL("CONNECTION LIMIT %s"))
            args.append(plan.conn_limit)
    if plan.set_password and req.password is not None:
        parts.append(sql.SQL("PASSWORD %s"))
        args.append(verifier_for(req.password))
    return sql.SQL(" ").join(parts), args


# What would record a statement's text, set for the one transaction that sends a verifier, so that it reaches no
# log, no statistics view and no audit trail: the server log (log_statement ddl/mod/all, log_min_duration_statement,
# a failed statement under log_min_error_statement), pg_stat_statements (utility statements) and pgaudit. Setting
# a parameter of an extension that is not loaded only makes a placeholder: harmless.
QUIET_SETTINGS = (
    ("log_statement", "none"),
    ("log_min_duration_statement", "-1"),
    ("log_min_error_statement", "panic"),
    ("pg_stat_statements.track_utility", "off"),
    ("pgaudit.log", "none"),
)


def send_quietly(conn: Any, query: Any, args: list[Any]) -> None:
    """The statement in a transaction of its own, after SET LOCAL of QUIET_SETTINGS (login_user is a superuser,
    which the module requires, so it may set them). Client-side binding: utility statements take no server-side
    parameters."""
    with conn.transaction():
        with psycopg.ClientCursor(conn) as cur:
            for name, value in QUIET_SETTINGS:
                cur.execute(sql.SQL("SET LOCAL {} = {}").format(sql.SQL(name), sql.Literal(value)))
            cur.execute(query, args)


def apply_plan(conn: Any, req: RoleRequest, plan: Plan) -> None:
    """Send the statement; one that holds a verifier only where no log or view can record its text."""
    query, args = _role_statement(req, plan)
    action = "drop" if plan.drop else "create" if plan.create else "alter"
    try:
        if plan.set_password and req.password is not None:
            send_quietly(conn, query, args)
        else:
            with psycopg.ClientCursor(conn) as cur:
                cur.execute(query, args)
    except psycopg.Error as exc:
        diag = exc.diag
        primary = diag.message_primary or type(exc).__name__
        detail = f" ({diag.message_detail})" if diag.message_detail else ""
        if diag.sqlstate == "2BP01":
            raise PgreplError(f"name: the role {req.name!r} cannot be dropped: it owns objects or holds "
                              f"privileges: {primary}{detail}; run REASSIGN OWNED BY and DROP OWNED BY for "
                              "it in each database first") from None
        # The message never carries the statement text, so not even the verifier reaches the result.
        raise PgreplError(f"name: could not {action} the role {req.name!r}: {primary}{detail}") from None


def role_result(tracker: ChangeTracker, name: str) -> dict[str, Any]:
    after = tracker.after
    return {
        "name": name,
        "login": bool(after.get("login")),
        "replication": bool(after.get("replication")),
        "superuser": False,
        "conn_limit": after.get("conn_limit"),
        "password_set": bool(after.get("password_set")),
    }


def ensure_replication_user(module: Any) -> dict[str, Any]:
    """Module body: validate, gather facts, plan, apply outside check mode, report."""
    req = validate_request(module.params)
    conn = connect(module.params)
    try:
        warnings: list[str] = []
        facts = supported_server_facts(conn, warnings)
        for warning in warnings:
            module.warn(warning)
        require_writable(facts, "creating, changing or dropping a replication role" if req.replication
                         else "creating, changing or dropping a login role")
        require_superuser(facts, "reading pg_authid (where the password verifier is stored, so that it can be "
                                 "compared without sending the password)")
        role = read_role(conn, req.name)
        tracker = ChangeTracker(module.check_mode)
        if req.state == "present":
            plan = plan_present(req, role, tracker)
        else:
            plan = plan_absent(conn, role, tracker, req.replication)
        # A role still to be created has no privileges yet: everything asked for is missing.
        missing = (list(PROMOTE_FUNCTIONS) if role is None else missing_grants(conn, req.name, PROMOTE_FUNCTIONS)[1]
                   ) if req.state == "present" and req.promote else []
        if req.state == "present" and req.promote:
            tracker.record("may_promote", not missing, True)
        if tracker.apply and (plan.create or plan.drop or plan.alters):
            apply_plan(conn, req, plan)
        if tracker.apply and missing:
            grant(conn, req.name, missing)
    finally:
        conn.close()
    result: dict[str, Any] = {"changed": tracker.changed}
    if req.state == "present":
        result["role"] = role_result(tracker, req.name)
        if req.promote:
            result["role"]["may_promote"] = True
    if module._diff:
        result["diff"] = tracker.diff()
    return result
