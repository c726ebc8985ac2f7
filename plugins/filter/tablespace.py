# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters pgrepl.streaming.tablespace_dirs and tablespace_dirs_to_prepare: the directories pgrepl_tablespace_dirs
declares for tablespaces created later, and which of them the node role prepares. Replay of CREATE TABLESPACE
writes to the primary's path on every standby and stops a standby's recovery when that directory is missing, so
they must exist on every node before the DBA creates the tablespace. The path checks are _tablespaces.py's.
Their documentation is in tablespace_dirs.yml and tablespace_dirs_to_prepare.yml beside this file.
"""

from __future__ import annotations

import os
from typing import Any

from ansible.errors import AnsibleFilterError

from ansible_collections.pgrepl.streaming.plugins.module_utils._errors import PgreplError
from ansible_collections.pgrepl.streaming.plugins.module_utils._tablespaces import inside, validate_target_path

OPTION = "pgrepl_tablespace_dirs"


def tablespace_dirs(value: Any, data_dir: Any) -> list[str]:
    """The declared directories, absolute and normalised, in order, each once; refused (naming the option and
    the value) when one is not an absolute path, a system directory, inside data_dir or holding it, or inside
    another declared one (a tablespace directory must be empty when the tablespace is created)."""
    if value is None or value == "":
        return []
    if not isinstance(value, list):
        raise AnsibleFilterError(f"{OPTION}: {value!r} is not a list of absolute paths (for example ['/srv/ts2'])")
    try:
        paths: list[str] = []
        for index, item in enumerate(value):
            path = validate_target_path(f"{OPTION}[{index}]", item)
            if path not in paths:
                paths.append(path)
    except PgreplError as exc:
        raise AnsibleFilterError(str(exc)) from None
    home = os.path.normpath(str(data_dir))
    for path in paths:
        if inside(path, home):
            raise AnsibleFilterError(f"{OPTION}: {path!r} is inside the data directory {home!r} (a tablespace "
                                     "there would be copied and moved aside with it): declare one outside")
        if inside(home, path):
            raise AnsibleFilterError(f"{OPTION}: {path!r} holds the data directory {home!r}: declare a directory "
                                     "of its own")
        for other in paths:
            if other != path and inside(path, other):
                raise AnsibleFilterError(f"{OPTION}: {path!r} is inside {other!r}, also declared: each tablespace "
                                         "needs its own directory")
    return paths


def tablespace_dirs_to_prepare(stats: Any, declared: Any, contents: Any = None) -> dict[str, list[str]]:
    """{dirs, parents}: of the declared directories (from tablespace_dirs), those the role creates or makes the OS
    user's with mode 0700 - missing ones and empty directories - and the missing parents of those it creates (made
    root's 0755 with whatever is missing above them). A non-empty directory (a tablespace already, or the DBA's
    files) and a symlink are left as they are; anything else at the path is refused.

    stats: the results of a stat loop (not following links) over the declared directories and their parents;
    contents: the files a find without recursion listed in the declared directories that exist."""
    found: dict[str, dict[str, Any]] = {}
    for result in stats or []:
        path = result.get("item") if isinstance(result, dict) else None
        if not isinstance(path, str):
            raise AnsibleFilterError(f"tablespace_dirs_to_prepare: {result!r} is not the result of a stat loop")
        found[path] = result.get("stat") or {}
    occupied = {os.path.dirname(os.path.normpath(entry["path"])) for entry in contents or []
                if isinstance(entry, dict) and isinstance(entry.get("path"), str)}
    dirs: list[str] = []
    parents: list[str] = []
    for path in declared or []:
        if path not in found:
            raise AnsibleFilterError(f"tablespace_dirs_to_prepare: no stat result for {path!r}")
        stat = found[path]
        if not stat.get("exists"):
            dirs.append(path)
            parent = os.path.dirname(path)
            if not found.get(parent, {}).get("exists") and parent not in parents:
                parents.append(parent)
        elif stat.get("islnk"):
            continue
        elif not stat.get("isdir"):
            raise AnsibleFilterError(f"{OPTION}: {path!r} exists and is not a directory: declare another path or "
                                     "remove it")
        elif path not in occupied:
            dirs.append(path)
    return {"dirs": dirs, "parents": parents}


class FilterModule:
    """The collection's tablespace directory filters."""

    def filters(self) -> dict[str, Any]:
        return {"tablespace_dirs": tablespace_dirs, "tablespace_dirs_to_prepare": tablespace_dirs_to_prepare}
