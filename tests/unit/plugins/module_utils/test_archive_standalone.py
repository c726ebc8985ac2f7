# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_archive.py is also the program the server runs for every WAL segment (/usr/local/bin/pgrepl-archive-wal), on
hosts where the collection is not installed: it imports only the standard library and so carries its own WAL-name
rules. These tests keep both promises: no import outside the standard library (psycopg only inside a function,
for the cleanup), and its WAL names read the same as _lsn.py's, the collection's one parser, so the two cannot
drift apart."""

from __future__ import annotations

import ast
import errno
import os
import sys
from pathlib import Path

import pytest

from ansible_collections.pgrepl.streaming.plugins.module_utils import _archive, _files, _lsn

SOURCE = Path(_archive.__file__)
SEGMENT_BYTES = 16 * 1024 * 1024  # the default wal_segment_size


def _imported(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name.split(".")[0] for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        return [(node.module or "").split(".")[0]] if node.level == 0 else ["<relative>"]
    return []


def test_the_installed_program_imports_only_the_standard_library_at_its_top_level() -> None:
    tree = ast.parse(SOURCE.read_text(encoding="utf-8"))
    top = [name for node in tree.body for name in _imported(node)]
    assert top, "no imports found: the test reads the wrong file"
    outside = [name for name in top if name != "__future__" and name not in sys.stdlib_module_names]
    assert outside == [], f"{SOURCE.name} must run without the collection (installed as a lone program): {outside}"


def test_psycopg_is_imported_only_inside_the_cleanup_and_nothing_else_from_outside() -> None:
    tree = ast.parse(SOURCE.read_text(encoding="utf-8"))
    everywhere = {name for node in ast.walk(tree) for name in _imported(node)}
    assert everywhere - set(sys.stdlib_module_names) - {"__future__"} == {"psycopg"}
    (holder,) = [fn for fn in ast.walk(tree) if isinstance(fn, ast.FunctionDef)
                 and any("psycopg" in _imported(node) for node in ast.walk(fn))]
    assert holder.name == "ask_oldest_needed"


def segment_name(timeline: int, lsn: str) -> str:
    """The segment holding an LSN as the server names it (pg_walfile_name, 16 MiB segments), from _lsn's parser."""
    position = _lsn.parse_lsn(lsn)
    per_log = 0x100000000 // SEGMENT_BYTES
    segment = position // SEGMENT_BYTES
    return f"{timeline:08X}{segment // per_log:08X}{segment % per_log:08X}"


# LSNs in the order of the WAL stream, across a log boundary (xxxxxxFF -> next log) and high logs.
ORDERED_LSNS = ["0/1000000", "0/3000060", "0/FF000000", "0/FFFFFFFF", "1/0", "1/1A2B3C4D", "16/B374D848",
                "FF/FF000000", "100/0", "FFFFFFFF/FF000000"]


def test_the_known_name_of_a_position() -> None:
    # 16/B374D848 on timeline 1 is in log 0x16, segment 0xB3.
    assert segment_name(1, "16/B374D848") == "0000000100000016000000B3"


@pytest.mark.parametrize("timeline", [1, 2, 0x1F, 0xFFFFFFFF])
@pytest.mark.parametrize("lsn", ORDERED_LSNS)
def test_archive_and_lsn_agree_on_what_a_segment_name_is_and_its_timeline(timeline: int, lsn: str) -> None:
    name = segment_name(timeline, lsn)
    assert _archive.check_name(name) == name
    assert _archive._SEGMENT_RE.fullmatch(name)  # pylint: disable=protected-access
    assert _lsn.timeline_of_wal_file(name) == timeline
    # A segment's .partial tail (after a promotion) and a backup history file are at the segment's place.
    for archived in (name, f"{name}.partial", f"{name}.00000028.backup"):
        assert _archive.segment_position(archived) == name[8:24]
    assert _archive.segment_position(f"{timeline:08X}.history") is None


def test_the_position_order_of_archived_names_is_the_order_of_their_lsns() -> None:
    names = [segment_name(1, lsn) for lsn in ORDERED_LSNS]
    positions = [_archive.segment_position(name) for name in names]
    assert positions == sorted(positions)
    # 0/FF000000 and 0/FFFFFFFF share a segment; every other step moves to a later one.
    assert len(set(positions)) == len(positions) - 1
    # The timeline does not take part: a later timeline's segment at an earlier place sorts earlier.
    assert _archive.segment_position(segment_name(7, "0/3000060")) < _archive.segment_position(names[-1])


@pytest.mark.parametrize("name", [
    "", "00000001000000000000000", "0000000100000000000000001", "00000001000000000000000G", "000000010000000000000001 ",
    "../000000010000000000000001", "000000010000000000000001/x",
])
def test_what_is_no_segment_name_for_lsn_is_none_for_archive_either(name: str) -> None:
    assert _lsn.timeline_of_wal_file(name) is None
    assert _archive._SEGMENT_RE.fullmatch(name) is None  # pylint: disable=protected-access
    with pytest.raises(_archive.ArchiveError):
        _archive.check_name(name)


def test_lower_case_names_are_refused_by_the_archive_although_lsn_reads_them() -> None:
    # The server names its files in upper case; a lower-case name is nothing it would hand over or ask for.
    name = "0000000100000016000000b3"
    assert _lsn.timeline_of_wal_file(name) == 1
    with pytest.raises(_archive.ArchiveError):
        _archive.check_name(name)


# ---------------------------------------------------------------------------------------------- fsync

def _refusing_directory_fsync(monkeypatch: pytest.MonkeyPatch, module: object, code: int) -> list[str]:
    """os.fsync of `module` failing with `code` on directories (as some network filesystems do), real on files."""
    refused: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        if os.path.isdir(os.readlink(f"/proc/self/fd/{fd}")):
            refused.append(os.readlink(f"/proc/self/fd/{fd}"))
            raise OSError(code, os.strerror(code))
        real_fsync(fd)

    monkeypatch.setattr(module.os, "fsync", fsync)  # type: ignore[attr-defined]
    return refused


@pytest.mark.parametrize("code", [errno.EINVAL, errno.EBADF])
def test_a_directory_that_refuses_fsync_is_tolerated_as_by_files_fsync_dir(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int) -> None:
    # The same rule as the collection's own helper (and PostgreSQL's fsync_fname): not a failure of the archive.
    _refusing_directory_fsync(monkeypatch, _files, code)
    _files.fsync_dir(str(tmp_path))
    refused = _refusing_directory_fsync(monkeypatch, _archive, code)
    source = tmp_path / "000000010000000000000001"
    source.write_bytes(b"wal" * 100)
    archive = tmp_path / "archive"
    archive.mkdir()
    assert _archive.archive_file(str(source), str(archive), source.name) == "archived"
    assert refused == [str(archive)]
    assert (archive / source.name).read_bytes() == source.read_bytes()


def test_other_fsync_errors_still_fail_the_archive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _refusing_directory_fsync(monkeypatch, _archive, errno.EIO)
    source = tmp_path / "000000010000000000000001"
    source.write_bytes(b"wal")
    archive = tmp_path / "archive"
    archive.mkdir()
    assert _archive.main(["archive", str(archive), str(source), source.name]) == 1
