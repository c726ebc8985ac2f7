# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What kind of server we are talking to: version, recovery state, our privileges."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ansible_collections.pgrepl.streaming.plugins.module_utils._connection import query_dict
from ansible_collections.pgrepl.streaming.plugins.module_utils._errors import PgreplError

SUPPORTED_MAJORS = range(13, 19)


@dataclass(frozen=True)
class ServerFacts:
    """Facts every module needs before it decides anything."""

    version_num: int  # server_version_num, e.g. 150018
    in_recovery: bool
    is_superuser: bool
    current_user: str
    read_only: bool  # default_transaction_read_only or a standby

    @property
    def major(self) -> int:
        return self.version_num // 10000


def major_from_version_num(version_num: int) -> int:
    """150018 -> 15 (PostgreSQL 10 and later number their majors by the first two digits)."""
    return version_num // 10000


def server_facts(conn: Any) -> ServerFacts:
    """One round trip: version, recovery state, privileges."""
    row = query_dict(
        conn,
        "SELECT current_setting('server_version_num')::int AS version_num,"
        " pg_is_in_recovery() AS in_recovery,"
        " (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AS is_superuser,"
        " current_user AS current_user,"
        " current_setting('default_transaction_read_only') = 'on' AS read_only",
    )
    if row is None:
        raise PgreplError("the server returned no row for its own facts")
    return ServerFacts(
        version_num=int(row["version_num"]),
        in_recovery=bool(row["in_recovery"]),
        is_superuser=bool(row["is_superuser"]),
        current_user=str(row["current_user"]),
        read_only=bool(row["read_only"]) or bool(row["in_recovery"]),
    )


def require_superuser(facts: ServerFacts, what: str) -> None:
    """Refuse with a message that says which role lacks what, for what."""
    if not facts.is_superuser:
        raise PgreplError(
            f"login_user: the role {facts.current_user!r} is not a superuser, and {what} needs one "
            "(connect as postgres or another superuser)"
        )


def require_writable(facts: ServerFacts, what: str) -> None:
    """Refuse on a standby (or a read-only server) with a clear message rather than a SQL error."""
    if facts.in_recovery:
        raise PgreplError(
            f"the server is a standby (pg_is_in_recovery() is true): {what} can only be done on the primary"
        )
    if facts.read_only:
        raise PgreplError(f"the server is read-only (default_transaction_read_only is on): cannot {what}")


def supported_server_facts(conn: Any, warnings: list[str]) -> ServerFacts:
    """server_facts, with a warning added when the server is outside the versions this collection supports."""
    facts = server_facts(conn)
    unsupported = check_supported(facts)
    if unsupported:
        warnings.append(unsupported)
    return facts


def check_supported(facts: ServerFacts) -> str | None:
    """A warning when the server is outside the versions this collection is tested with."""
    if facts.major not in SUPPORTED_MAJORS:
        return (f"PostgreSQL {facts.major} is outside the versions pgrepl.streaming supports "
                f"({SUPPORTED_MAJORS.start} to {SUPPORTED_MAJORS.stop - 1})")
    return None
