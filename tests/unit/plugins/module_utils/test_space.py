# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The free space check before a copy: what it needs, what counts as free, what the refusal says."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ansible_collections.pgrepl.streaming.plugins.module_utils import _clone
from ansible_collections.pgrepl.streaming.plugins.module_utils._clone import CloneRequest, Decision, check_space
from ansible_collections.pgrepl.streaming.plugins.module_utils._errors import PgreplError
from ansible_collections.pgrepl.streaming.plugins.module_utils._space import (
    WAL_MARGIN,
    SpaceFacts,
    gather_space_facts,
    human,
    space_needed,
    space_problem,
    tree_size,
)

GIB = 1024 ** 3


def test_the_copy_needs_its_data_plus_a_tenth_plus_the_wal_margin() -> None:
    assert space_needed(0) == WAL_MARGIN
    assert space_needed(10 * GIB) == 11 * GIB + WAL_MARGIN


def test_enough_free_space_is_no_problem() -> None:
    assert space_problem(SpaceFacts(data_size=10 * GIB, path="/srv", free=11 * GIB + WAL_MARGIN)) is None


def test_too_little_free_space_is_refused_naming_the_sizes_the_path_and_what_to_do() -> None:
    assert space_problem(SpaceFacts(data_size=10 * GIB, path="/srv", free=11 * GIB + WAL_MARGIN - 1)) is not None
    facts = SpaceFacts(data_size=10 * GIB, path="/srv/pg", free=2 * GIB,
                       moved_aside=(("/srv/pg/main.pgrepl-moved-20250101T000000Z", 9 * GIB),))
    problem = space_problem(facts)
    assert problem is not None
    assert "'/srv/pg'" in problem and "11.2 GiB" in problem and "10.0 GiB" in problem and "2.0 GiB free" in problem
    assert "Nothing was stopped" in problem and "space_check: false" in problem
    assert "pgrepl_clone_space_check" in problem
    # The old directory stays: the message says it frees nothing, and names what earlier runs moved aside.
    assert "moved aside, not deleted, so it frees nothing" in problem
    assert "/srv/pg/main.pgrepl-moved-20250101T000000Z (9.0 GiB)" in problem


def test_stale_temporary_copies_count_as_freed() -> None:
    short = SpaceFacts(data_size=10 * GIB, path="/srv", free=6 * GIB)
    assert space_problem(short) is not None
    freed = SpaceFacts(data_size=10 * GIB, path="/srv", free=6 * GIB, reclaimable=6 * GIB)
    assert space_problem(freed) is None


def test_human_sizes() -> None:
    assert (human(512), human(1536), human(3 * GIB), human(5 * 1024 * GIB)) == \
        ("512 B", "1.5 KiB", "3.0 GiB", "5.0 TiB")


def test_tree_size_counts_allocated_bytes_without_following_symlinks(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "file").write_bytes(os.urandom(64 * 1024))
    outside = tmp_path / "outside"
    outside.write_bytes(os.urandom(256 * 1024))
    (tree / "link").symlink_to(outside)
    size = tree_size(str(tree))
    assert 64 * 1024 <= size < 256 * 1024
    assert tree_size(str(tmp_path / "missing")) == 0


def test_gather_measures_moved_aside_directories_only_when_the_copy_does_not_fit(tmp_path: Path) -> None:
    moved = tmp_path / "main.pgrepl-moved-20250101T000000Z"
    moved.mkdir()
    (moved / "f").write_bytes(os.urandom(8192))
    stale = tmp_path / "main.pgrepl-clone-20250101T000000Z"
    stale.mkdir()
    (stale / "f").write_bytes(os.urandom(8192))
    fits = gather_space_facts(1, str(tmp_path), [str(stale)], [str(moved)], free=lambda _path: 10 * GIB)
    assert fits.moved_aside == () and fits.reclaimable >= 8192 and fits.free == 10 * GIB
    short = gather_space_facts(10 * GIB, str(tmp_path), [], [str(moved)], free=lambda _path: 1)
    assert short.reclaimable == 0 and short.moved_aside[0][0] == str(moved) and short.moved_aside[0][1] >= 8192


def request(tmp_path: Path, **overrides: object) -> CloneRequest:
    values: dict = {"data_dir": str(tmp_path / "main"), "primary_host": "db1", "passfile": "/p"}
    values.update(overrides)
    return CloneRequest(**values)


@pytest.fixture
def no_free(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    asked: list[str] = []

    def free(path: str) -> int:
        asked.append(path)
        return 1024

    def gathered(size, target, stale, moved, **more):
        return gather_space_facts(size, target, stale, moved, free=free, **more)

    monkeypatch.setattr(_clone, "gather_space_facts", gathered)
    return asked


def test_check_space_refuses_on_the_parent_filesystem_of_a_sibling_copy(tmp_path: Path, no_free: list[str]) -> None:
    with pytest.raises(PgreplError, match="not enough free space"):
        check_space(request(tmp_path, data_size=GIB), Decision("clone", move_old_aside=True), [])
    assert no_free == [str(tmp_path)]


def test_check_space_of_a_copy_in_place_looks_at_the_data_directory(tmp_path: Path, no_free: list[str]) -> None:
    with pytest.raises(PgreplError):
        check_space(request(tmp_path, data_size=GIB), Decision("clone", in_place=True), [])
    assert no_free == [str(tmp_path / "main")]


def test_check_space_is_skipped_without_a_size_or_when_turned_off(tmp_path: Path, no_free: list[str]) -> None:
    check_space(request(tmp_path), Decision("clone"), [])
    check_space(request(tmp_path, data_size=GIB, space_check=False), Decision("clone"), [])
    assert no_free == []


def test_data_size_and_space_check_options_are_validated(tmp_path: Path) -> None:
    base = {"data_dir": str(tmp_path / "main"), "primary_host": "db1", "passfile": "/p"}
    assert _clone.request_from_params({**base, "data_size": 5}).data_size == 5
    assert _clone.request_from_params(base).data_size is None
    assert _clone.request_from_params(base).space_check is True
    with pytest.raises(PgreplError, match="data_size: -1 is not a number of bytes"):
        _clone.request_from_params({**base, "data_size": -1})
