# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Checks of module options that the module bodies also receive from callers other than AnsibleModule
(node_apply, unit tests), with messages that name the option and the value."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from ansible_collections.pgrepl.streaming.plugins.module_utils._errors import PgreplError

# Directories that are never a data directory; refusing them keeps a typo from renaming a system tree aside.
SYSTEM_DIRS = frozenset((
    "/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib64", "/media", "/mnt", "/opt", "/proc", "/root",
    "/run", "/sbin", "/srv", "/sys", "/tmp", "/usr", "/usr/lib", "/usr/local", "/var", "/var/lib", "/var/tmp",
    "/var/lib/postgresql", "/var/lib/pgsql", "/etc/postgresql",
))


def require_bool(params: dict[str, Any], option: str, default: bool = False) -> bool:
    value = params.get(option)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise PgreplError(f"{option}: {value!r} is not a boolean (true or false)")
    return value


def require_int(params: dict[str, Any], option: str, default: int, low: int, high: int, what: str) -> int:
    value = params.get(option)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise PgreplError(f"{option}: {value!r} is not an integer")
    if not low <= value <= high:
        raise PgreplError(f"{option}: {value} is not {what} ({low}-{high})")
    return value


def require_choice(params: dict[str, Any], option: str, choices: Sequence[str], default: str) -> str:
    """The option's value when it is one of the choices (unset or empty: the default)."""
    value = params.get(option) or default
    if value not in choices:
        raise PgreplError(f"{option}: {value!r} is not one of {', '.join(choices)}")
    return value


def _no_control_chars(option: str, value: str) -> None:
    if any(ord(char) < 32 or ord(char) == 127 for char in value):
        raise PgreplError(f"{option}: {value!r} contains a control character (a newline, a tab or NUL)")


def validate_abs_path(option: str, value: Any) -> str:
    """An absolute path without control characters, normalised (no trailing slash, no '..')."""
    if not isinstance(value, str) or value == "":
        raise PgreplError(f"{option}: {value!r} is not a path (it must be a non-empty absolute path)")
    _no_control_chars(option, value)
    if not os.path.isabs(value):
        raise PgreplError(f"{option}: {value!r} must be an absolute path")
    return os.path.normpath(value)


def validate_data_dir_path(value: Any) -> str:
    """data_dir as a path: absolute, not '/', not a system directory."""
    path = validate_abs_path("data_dir", value)
    if path == "/" or path.startswith("//"):
        raise PgreplError(f"data_dir: {value!r} is the root directory, never a data directory")
    if path in SYSTEM_DIRS:
        raise PgreplError(f"data_dir: {value!r} is a system directory, never a data directory: give the "
                          "cluster's own directory (for example /var/lib/postgresql/15/main)")
    return path


def outside_dir(option: str, path: str, directory: str, why: str) -> None:
    """Refuse a path inside directory (``why`` says what would happen to it there)."""
    if path == directory or path.startswith(directory.rstrip("/") + "/"):
        raise PgreplError(f"{option}: {path!r} is inside data_dir {directory!r}: {why}; keep it outside (for "
                          "example in the postgres user's home)")
