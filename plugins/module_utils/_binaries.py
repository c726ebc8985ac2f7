# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PostgreSQL's programs on this host: which majors are installed, and the one finder of "the binary X of major N".

A client or server program of another major refuses the data directory (pg_controldata, pg_ctl, pg_rewind) or the
server (pg_basebackup), so each is asked its own version (``X --version`` in the C locale); the directories whose
path names the major are asked first, the one on PATH after the distribution layouts.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
from typing import Callable

from ansible_collections.pgrepl.streaming.plugins.module_utils._errors import PgreplError

# Where distributions put the server binaries, tried in this order after an explicit bin_dir.
BIN_DIR_GLOBS = ("/usr/lib/postgresql/*/bin", "/usr/pgsql-*/bin", "/opt/pgpro/*/bin")
# How long `X --version` may take.
VERSION_TIMEOUT = 30

_VERSION_RE = re.compile(r"\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?")
_PATH_MAJOR_RES = (
    re.compile(r"/usr/lib/postgresql/(\d+(?:\.\d+)?)/bin/?$"),
    re.compile(r"/usr/pgsql-(\d+(?:\.\d+)?)/bin/?$"),
    re.compile(r"/opt/pgpro/[a-z0-9]+-(\d+(?:\.\d+)?)/bin/?$"),
)

Finder = Callable[[str], "str | None"]


def c_locale_env() -> dict[str, str]:
    """This process's environment with the C locale (so a program's labels are the English ones) and no PGDATA."""
    env = dict(os.environ)
    env.update({"LC_ALL": "C", "LANG": "C", "LANGUAGE": "C"})
    env.pop("PGDATA", None)
    return env


def parse_version_output(text: str) -> str | None:
    """'pg_controldata (PostgreSQL) 15.18 (Debian ...)' -> '15'; '... 9.6.24' -> '9.6'."""
    match = _VERSION_RE.search(text or "")
    if not match:
        return None
    first = int(match.group(1))
    if first >= 10 or match.group(2) is None:
        return str(first)
    return f"{first}.{match.group(2)}"


def major_of_path(bin_dir: str) -> str | None:
    """The major a distribution layout encodes in the path (/usr/lib/postgresql/15/bin -> '15')."""
    for pattern in _PATH_MAJOR_RES:
        match = pattern.search(bin_dir)
        if match:
            return match.group(1)
    return None


def binary_version(binary: str) -> str | None:
    """Major version a PostgreSQL program reports with --version (None: it cannot run or says no version)."""
    try:
        proc = subprocess.run([binary, "--version"], capture_output=True, text=True, env=c_locale_env(),
                              timeout=VERSION_TIMEOUT, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if proc.returncode != 0:
        return None
    return parse_version_output(proc.stdout)


def installed_binaries(name: str, globber: Callable[[str], list[str]] = glob.glob,
                       which: Finder = shutil.which) -> list[str]:
    """Every binary called name in the usual layouts (in BIN_DIR_GLOBS order), then the one on PATH."""
    found: list[str] = []
    for pattern in BIN_DIR_GLOBS:
        for bin_dir in sorted(globber(pattern)):
            binary = os.path.join(bin_dir, name)
            if binary not in found:
                found.append(binary)
    on_path = which(name)
    if on_path and on_path not in found:
        found.append(on_path)
    return found


def installed_majors(globber: Callable[[str], list[str]] = glob.glob) -> dict[int, str]:
    """{major: bin_dir} of every server installation (a postgres binary) in the usual layouts; the first wins."""
    found: dict[int, str] = {}
    for pattern in BIN_DIR_GLOBS:
        for server in sorted(globber(os.path.join(pattern, "postgres"))):
            bin_dir = os.path.dirname(server)
            major = major_of_path(bin_dir)
            if major is not None and major.isdigit():
                found.setdefault(int(major), bin_dir)
    return found


def rank_for_major(binary: str, major: str) -> int:
    """Sort key: paths naming this major first, paths naming no major next, other majors last."""
    path_major = major_of_path(os.path.dirname(binary))
    if path_major == major:
        return 0
    return 1 if path_major is None else 2


def is_executable_file(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def search_binary(name: str, major: str, bin_dir: str | None, of: str = "data_dir",
                  version_of: Finder = binary_version, candidates: Callable[[], list[str]] | None = None,
                  is_executable: Callable[[str], bool] = is_executable_file) -> tuple[str | None, list[str]]:
    """(the program ``name`` of PostgreSQL ``major``, or None; the executable candidates asked on the way).

    An explicit bin_dir must hold it, of that major, or PgreplError names bin_dir (``of`` says whose major it must
    be: "data_dir", "the primary"). Without one, the installed ones are asked, those whose path names the major
    first (``candidates`` stands in for installed_binaries in tests)."""
    if bin_dir:
        binary = os.path.join(bin_dir, name)
        if not is_executable(binary):
            if not os.path.isdir(bin_dir):
                raise PgreplError(f"bin_dir: {bin_dir!r} is not a directory")
            raise PgreplError(f"bin_dir: {bin_dir!r} has no executable {name}")
        version = version_of(binary)
        if version is None:
            raise PgreplError(f"bin_dir: {binary!r} does not run or does not print a PostgreSQL version")
        if version != major:
            raise PgreplError(f"bin_dir: {binary!r} is PostgreSQL {version} but {of} is PostgreSQL {major}: point "
                              f"bin_dir at the {major} binaries")
        return binary, [binary]
    listed = candidates() if candidates is not None else installed_binaries(name)
    tried: list[str] = []
    for binary in sorted(listed, key=lambda path: rank_for_major(path, major)):
        if not is_executable(binary):
            continue
        tried.append(binary)
        if version_of(binary) == major:
            return binary, tried
    return None, tried


def looked_in(tried: list[str]) -> str:
    """What a search tried, for a message."""
    return ", ".join(tried) if tried else "nothing in " + ", ".join(BIN_DIR_GLOBS) + " or PATH"


def find_binary(name: str, major: str, bin_dir: str | None, of: str = "data_dir",
                advice: str = "install the PostgreSQL {major} server package or set bin_dir",
                version_of: Finder = binary_version, candidates: Callable[[], list[str]] | None = None,
                is_executable: Callable[[str], bool] = is_executable_file) -> str:
    """search_binary, refusing when there is none (``advice`` says what to do; {major} is filled in)."""
    found, tried = search_binary(name, major, bin_dir, of, version_of, candidates, is_executable)
    if found is None:
        raise PgreplError(f"bin_dir: no {name} of PostgreSQL {major} ({of}'s major) is installed (tried: "
                          f"{looked_in(tried)}): {advice.format(major=major)}")
    return found
