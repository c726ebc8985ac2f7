# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""module_utils/_binaries.py: the installed majors and the one finder of "the binary X of major N"."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest

from ansible_collections.pgrepl.streaming.plugins.module_utils._binaries import (
    find_binary,
    installed_binaries,
    installed_majors,
    major_of_path,
    parse_version_output,
    rank_for_major,
    search_binary,
)
from ansible_collections.pgrepl.streaming.plugins.module_utils._errors import PgreplError


def versions(mapping: dict[str, str]) -> Any:
    return mapping.get


@pytest.mark.parametrize(("text", "major"), [
    ("pg_controldata (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)\n", "15"),
    ("pg_controldata (PostgreSQL) 13.2\n", "13"),
    ("pg_controldata (PostgreSQL) 18beta1\n", "18"),
    ("pg_controldata (PostgreSQL) 17.6 (Postgres Pro standard 17.6.1)\n", "17"),
    ("pg_controldata (PostgreSQL) 9.6.24\n", "9.6"),
    ("something else\n", None),
    ("", None),
])
def test_parse_version_output(text: str, major: str | None) -> None:
    assert parse_version_output(text) == major


@pytest.mark.parametrize(("path", "major"), [
    ("/usr/lib/postgresql/15/bin", "15"),
    ("/usr/pgsql-13/bin", "13"),
    ("/opt/pgpro/std-17/bin", "17"),
    ("/opt/pgpro/ent-16/bin/", "16"),
    ("/usr/local/bin", None),
])
def test_major_of_path(path: str, major: str | None) -> None:
    assert major_of_path(path) == major


def test_candidate_binaries_put_the_matching_major_first_and_path_after_known_layouts() -> None:
    layouts = {
        "/usr/lib/postgresql/*/bin": ["/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/15/bin"],
        "/usr/pgsql-*/bin": ["/usr/pgsql-15/bin"],
        "/opt/pgpro/*/bin": ["/opt/pgpro/std-15/bin"],
    }
    listed = installed_binaries("pg_controldata", globber=lambda pattern: layouts.get(pattern, []),
                                which=lambda name: "/usr/local/bin/pg_controldata")
    found = sorted(listed, key=lambda binary: rank_for_major(binary, "15"))
    assert found == [
        "/usr/lib/postgresql/15/bin/pg_controldata",
        "/usr/pgsql-15/bin/pg_controldata",
        "/opt/pgpro/std-15/bin/pg_controldata",
        "/usr/local/bin/pg_controldata",
        "/usr/lib/postgresql/16/bin/pg_controldata",
    ]


def test_search_binary_without_bin_dir_takes_the_first_matching_version(
        tmp_path: Path, fake_program: Callable[..., Path]) -> None:
    b16 = fake_program(tmp_path / "16", "echo 'pg_controldata (PostgreSQL) 16.4'")
    b15 = fake_program(tmp_path / "15", "echo 'pg_controldata (PostgreSQL) 15.18'")
    binary, tried = search_binary("pg_controldata", "15", None, candidates=lambda: [str(b16), str(b15)])
    assert binary == str(b15)
    assert tried == [str(b16), str(b15)]


def test_search_binary_without_a_match_returns_none_and_what_it_tried(
        tmp_path: Path, fake_program: Callable[..., Path]) -> None:
    b16 = fake_program(tmp_path / "16", "echo 'pg_controldata (PostgreSQL) 16.4'")
    binary, tried = search_binary("pg_controldata", "15", None,
                                  candidates=lambda: [str(b16), str(tmp_path / "missing")])
    assert binary is None
    assert tried == [str(b16)]


def test_search_binary_with_bin_dir_of_another_major_fails_naming_bin_dir(
        tmp_path: Path, fake_program: Callable[..., Path]) -> None:
    fake_program(tmp_path / "bin", "echo 'pg_controldata (PostgreSQL) 16.4'")
    with pytest.raises(PgreplError, match=r"^bin_dir: .* is PostgreSQL 16 but data_dir is PostgreSQL 15"):
        search_binary("pg_controldata", "15", str(tmp_path / "bin"))


def test_search_binary_with_bin_dir_without_the_binary_fails(tmp_path: Path) -> None:
    with pytest.raises(PgreplError, match=r"^bin_dir: '.*' has no executable pg_controldata"):
        search_binary("pg_controldata", "15", str(tmp_path))
    with pytest.raises(PgreplError, match=r"^bin_dir: '.*/nope' is not a directory"):
        search_binary("pg_controldata", "15", str(tmp_path / "nope"))


def test_search_binary_with_bin_dir_whose_binary_does_not_run_fails(
        tmp_path: Path, fake_program: Callable[..., Path]) -> None:
    fake_program(tmp_path / "bin", "exit 3")
    with pytest.raises(PgreplError, match=r"^bin_dir: .* does not run or does not print a PostgreSQL version"):
        search_binary("pg_controldata", "15", str(tmp_path / "bin"))


def test_installed_majors_from_every_family_layout() -> None:
    paths = {
        "/usr/lib/postgresql/*/bin/postgres": ["/usr/lib/postgresql/15/bin/postgres",
                                               "/usr/lib/postgresql/17/bin/postgres"],
        "/usr/pgsql-*/bin/postgres": ["/usr/pgsql-16/bin/postgres"],
        "/opt/pgpro/*/bin/postgres": ["/opt/pgpro/1c-16/bin/postgres", "/opt/pgpro/std-14/bin/postgres"],
    }
    majors = installed_majors(lambda pattern: paths.get(pattern, []))
    assert majors[15] == "/usr/lib/postgresql/15/bin"
    assert majors[17] == "/usr/lib/postgresql/17/bin"
    assert majors[16] == "/usr/pgsql-16/bin"  # the first found wins for a major
    assert majors[14] == "/opt/pgpro/std-14/bin"  # the major of the path, not the first digits of "1c-16"
    assert sorted(majors) == [14, 15, 16, 17]


# The finder every module uses (pg_ctl for server_start/server_stop, pg_rewind, pg_basebackup, pg_controldata).

def test_find_binary_prefers_the_major_of_its_path() -> None:
    paths = ["/usr/lib/postgresql/16/bin/pg_basebackup", "/usr/lib/postgresql/15/bin/pg_basebackup",
             "/usr/bin/pg_basebackup"]
    asked: list[str] = []

    def version_of(path: str) -> str | None:
        asked.append(path)
        return {paths[0]: "16", paths[1]: "15", paths[2]: "16"}[path]
    assert find_binary("pg_basebackup", "15", None, version_of=version_of, candidates=lambda: paths,
                       is_executable=lambda path: True) == paths[1]
    assert asked == [paths[1]]


def test_find_binary_refuses_without_one_of_the_major() -> None:
    with pytest.raises(PgreplError, match=r"^bin_dir: no pg_ctl of PostgreSQL 15 \(data_dir's major\) is installed "
                                          r"\(tried: /usr/lib/postgresql/16/bin/pg_ctl\): install the PostgreSQL 15 "
                                          r"server package, set bin_dir, or give service$"):
        find_binary("pg_ctl", "15", None, advice="install the PostgreSQL {major} server package, set bin_dir, or "
                                                 "give service",
                    version_of=versions({"/usr/lib/postgresql/16/bin/pg_ctl": "16"}),
                    candidates=lambda: ["/usr/lib/postgresql/16/bin/pg_ctl"], is_executable=lambda path: True)
    with pytest.raises(PgreplError, match=r"^bin_dir: no pg_basebackup of PostgreSQL 17 \(the primary's major\) "
                                          r"is installed \(tried: nothing in /usr/lib/postgresql/\*/bin"):
        find_binary("pg_basebackup", "17", None, of="the primary", candidates=list)


def test_find_binary_checks_an_explicit_bin_dir(tmp_path: Path) -> None:
    with pytest.raises(PgreplError, match=f"^bin_dir: '{tmp_path}' has no executable pg_rewind$"):
        find_binary("pg_rewind", "15", str(tmp_path), is_executable=lambda path: False)
    with pytest.raises(PgreplError, match="^bin_dir: '/opt/nope' is not a directory$"):
        find_binary("pg_rewind", "15", "/opt/nope", is_executable=lambda path: False)
    with pytest.raises(PgreplError, match="^bin_dir: '/opt/pg/pg_rewind' is PostgreSQL 16 but data_dir is "
                                          "PostgreSQL 15: point bin_dir at the 15 binaries$"):
        find_binary("pg_rewind", "15", "/opt/pg", version_of=versions({"/opt/pg/pg_rewind": "16"}),
                    is_executable=lambda path: True)
    with pytest.raises(PgreplError, match="but the primary is PostgreSQL 16"):
        find_binary("pg_basebackup", "16", "/usr/lib/postgresql/15/bin", of="the primary", version_of=lambda p: "15",
                    is_executable=lambda path: True)
    assert find_binary("pg_ctl", "15", "/opt/pg", version_of=versions({"/opt/pg/pg_ctl": "15"}),
                       is_executable=lambda path: True) == "/opt/pg/pg_ctl"
