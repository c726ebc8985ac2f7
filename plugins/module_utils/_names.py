# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Names: PostgreSQL's case folding of setting names and keywords; role names (what PostgreSQL accepts, and the
plainer ones that travel unquoted through a conninfo, a .pgpass line and pg_hba.conf); replication slot names (what
the collection accepts, and how a host's inventory name becomes one)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from typing import Any

from ansible_collections.pgrepl.streaming.plugins.module_utils._errors import PgreplError

NAME_MAX_BYTES = 63  # NAMEDATALEN - 1: the server truncates a longer name silently
RESERVED_ROLE_NAMES = ("public", "none")  # refused by PostgreSQL even when quoted
# Role names carried in a conninfo, a .pgpass line and pg_hba.conf: a conservative set, so that no quoting mistake
# anywhere along that path can turn a name into extra keywords. Letters and digits of any script (\w on str): a
# role named in Cyrillic needs no quoting in any of them.
PLAIN_ROLE_RE = re.compile(r"\w[\w.@$-]*")
PLAIN_ROLE_CHARS = "letters, digits (of any script) and _ . @ $ - (starting with a letter, digit or _)"
# Database and application names that need no quoting anywhere (synchronous_standby_names included).
PLAIN_NAME_RE = re.compile(r"[A-Za-z0-9_.-]{1,63}")
PLAIN_NAME_CHARS = "letters, digits and _ . -"

# PostgreSQL itself allows lower-case letters, digits and underscores in slot names, and NAMEDATALEN - 1 bytes.
SLOT_NAME_PATTERN = "^[a-z0-9_]{1,63}$"
SLOT_NAME_MAX_LENGTH = 63
# Length of the hex digest that ends a shortened slot name (after an underscore).
HASH_SUFFIX_LENGTH = 8

_SLOT_NAME_RE = re.compile(r"[a-z0-9_]{1,63}")
_NOT_ALLOWED_RE = re.compile(r"[^a-z0-9_]")
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def ascii_lower(text: str) -> str:
    """Lower-case A-Z only, as PostgreSQL folds setting names and keyword values (guc_name_compare,
    pg_strcasecmp) whatever the locale: str.lower() also folds other letters (the Kelvin sign to k, the
    dotted capital I of Turkish to i plus a combining dot), and SQL lower() follows the database's LC_CTYPE
    (under tr_TR, lower('I') is a dotless i)."""
    return text.translate(_ASCII_LOWER)


def validate_role_name(value: Any, option: str = "name", new: bool = True) -> str:
    """A role name PostgreSQL takes whole (quoted as an identifier wherever it is used); ``new``: one this collection
    may create, so names PostgreSQL reserves ('pg_*', public, none) are refused too."""
    def refuse(why: str) -> PgreplError:
        return PgreplError(f"{option}: {value!r} is not a valid role name ({why})")
    if not isinstance(value, str):
        raise refuse("it must be a string")
    if value == "":
        raise refuse("it must not be empty")
    if "\x00" in value:
        raise refuse("it contains a NUL character")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise refuse("it is not valid UTF-8") from None
    if size > NAME_MAX_BYTES:
        raise refuse(f"it is {size} bytes long in UTF-8; PostgreSQL's limit is {NAME_MAX_BYTES} bytes and it would "
                     "truncate the name")
    if new and value.startswith("pg_"):
        raise refuse("names starting with 'pg_' are reserved by PostgreSQL")
    if new and value in RESERVED_ROLE_NAMES:
        raise refuse("it is reserved by PostgreSQL")
    return value


def validate_plain_name(option: str, value: Any, pattern: re.Pattern[str] = PLAIN_ROLE_RE,
                        allowed: str = PLAIN_ROLE_CHARS, what: str = "role name") -> str:
    """A name that travels unquoted and unchanged through a conninfo string and a .pgpass line."""
    if not isinstance(value, str) or value == "":
        raise PgreplError(f"{option}: {value!r} is not a {what} (it must be a non-empty string)")
    size = len(value.encode("utf-8", errors="replace"))
    if size > NAME_MAX_BYTES:
        raise PgreplError(f"{option}: {value!r} is {size} bytes long; PostgreSQL's limit is {NAME_MAX_BYTES} bytes")
    if pattern.fullmatch(value) is None:
        raise PgreplError(f"{option}: {value!r} is not accepted: use {allowed}; quotes, spaces, '=', ':' and "
                          "backslashes are refused because the value travels through a conninfo string and a "
                          ".pgpass line")
    return value


def is_valid_slot_name(value: Any) -> bool:
    """Whether a value is a string PostgreSQL and this collection accept as a slot name."""
    # fullmatch, not match with ^...$: "$" would also accept a trailing newline.
    return isinstance(value, str) and _SLOT_NAME_RE.fullmatch(value) is not None


def validate_slot_name(value: Any, option: str = "name") -> str:
    """The value itself, or a PgreplError that names the option and the value."""
    if is_valid_slot_name(value):
        return str(value)
    detail = ""
    if isinstance(value, str) and len(value) > SLOT_NAME_MAX_LENGTH:
        detail = f", it has {len(value)} characters and at most {SLOT_NAME_MAX_LENGTH} are allowed"
    elif isinstance(value, str) and value == "":
        detail = ", it is empty"
    raise PgreplError(f"{option}: {value!r} is not a valid slot name ({SLOT_NAME_PATTERN}{detail})")


def slot_name_from_host(inventory_name: str) -> str:
    """A valid slot name derived from an inventory host name, the same on every run.

    Lower-cased, every character outside [a-z0-9_] replaced by an underscore. A result longer than
    63 characters is cut and ends with an underscore and a short hash of the whole inventory name, so
    two long names that share their first characters still get different slots.
    """
    if not isinstance(inventory_name, str) or inventory_name == "":
        raise PgreplError(f"inventory name: {inventory_name!r} cannot be turned into a slot name (it is empty)")
    name = _NOT_ALLOWED_RE.sub("_", inventory_name.lower())
    if len(name) <= SLOT_NAME_MAX_LENGTH:
        return name
    digest = hashlib.sha256(inventory_name.encode("utf-8")).hexdigest()[:HASH_SUFFIX_LENGTH]
    keep = SLOT_NAME_MAX_LENGTH - HASH_SUFFIX_LENGTH - 1
    return f"{name[:keep]}_{digest}"


# PostgreSQL keeps application_name to NAMEDATALEN - 1 bytes; the roles set it to the inventory name cut there.
APPLICATION_NAME_MAX_LENGTH = 63
SYNC_METHODS = ("ANY", "FIRST")


def application_name_of(inventory_name: str) -> str:
    """The application_name a node's WAL receiver uses: its inventory name, cut to what the server keeps."""
    return inventory_name[:APPLICATION_NAME_MAX_LENGTH]


def synchronous_standby_names(standbys: Iterable[str], method: str = "ANY", count: int = 1) -> str:
    """The value of synchronous_standby_names naming these standbys (inventory names, in order) by their
    application_name, each double-quoted (a name with a dash or dot is no plain identifier): 'ANY 1 ("db2",
    "db3")'; '' for no standby (no commit waits)."""
    method_text = str(method).upper()
    if method_text not in SYNC_METHODS:
        raise PgreplError(f"pgrepl_sync_method: {method!r} is not one of {', '.join(SYNC_METHODS)}")
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise PgreplError(f"pgrepl_sync_count: {count!r} is not a whole number >= 1")
    quoted = ['"' + application_name_of(str(name)).replace('"', '""') + '"' for name in standbys]
    # Never more than the standbys named: a count none of them together could meet makes every commit wait for
    # ever (as when a failover promoted one of the synchronous standbys). site refuses such an inventory first
    # (sync_count_problem); a day-2 operation that left fewer standbys gets the count they can meet.
    return f"{method_text} {min(count, len(quoted))} ({', '.join(quoted)})" if quoted else ""


def sync_count_problem(marked: Iterable[str], count: Any) -> str | None:
    """Why pgrepl_sync_count cannot be met by the standbys marked pgrepl_sync (None: it can, or none is marked)."""
    names = list(marked)
    if isinstance(count, str) and count.strip().isdigit():
        count = int(count)
    if not names or isinstance(count, bool) or not isinstance(count, int) or count <= len(names):
        return None  # none marked: no commit waits; a bad count is synchronous_standby_names' to name
    return (f"pgrepl_sync_count: {count} is more than the standbys marked pgrepl_sync ({len(names)}: "
            f"{', '.join(names)}): no commit could be confirmed by that many, so every commit would wait for ever; "
            "mark more direct standbys pgrepl_sync: true, or lower pgrepl_sync_count")
