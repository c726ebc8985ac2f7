# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Names: PostgreSQL's case folding of setting names and keywords; replication slot names (what the collection
accepts, and how a host's inventory name becomes one)."""

from __future__ import annotations

import hashlib
import re
from typing import Any

from ansible_collections.pgrepl.streaming.plugins.module_utils._errors import PgreplError

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
