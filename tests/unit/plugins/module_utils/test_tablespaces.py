# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where a standby keeps each tablespace of its primary (_tablespaces): the map, the targets, the links."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ansible_collections.pgrepl.streaming.plugins.module_utils._clone import TablespaceRun, swap_tablespaces
from ansible_collections.pgrepl.streaming.plugins.module_utils._errors import PgreplError
from ansible_collections.pgrepl.streaming.plugins.module_utils._space import SpaceNeed, group_by_filesystem
from ansible_collections.pgrepl.streaming.plugins.module_utils._tablespaces import (
    IN_PLACE,
    SWAP,
    Tablespace,
    Target,
    TargetFacts,
    decide_target,
    mapped,
    mapping_argument,
    path_problems,
    read_target_facts,
    relink,
    tablespace_links,
    unused_keys,
    validate_tablespace_map,
    validate_tablespaces,
)

TS = Tablespace("/srv/ts1", 100, "ts1")


def test_the_map_is_normalised() -> None:
    assert validate_tablespace_map({"/srv/ts1/": "/data//ts1"}) == {"/srv/ts1": "/data/ts1"}
    assert validate_tablespace_map(None) == {} and validate_tablespace_map({}) == {}


@pytest.mark.parametrize(("value", "message"), [
    (["/srv/ts1"], "is not a mapping"),
    ({"ts1": "/data/ts1"}, "tablespace_map key: 'ts1' must be an absolute path"),
    ({"/srv/ts1": "data"}, "tablespace_map['/srv/ts1']: 'data' must be an absolute path"),
    ({"/srv/ts1": "/"}, "is a system directory"),
    ({"/srv/ts1": "/usr"}, "is a system directory"),
    ({"/srv/ts1": "/d", "/srv/ts2": "/d/"}, "'/srv/ts1' and '/srv/ts2' both map to '/d'"),
    ({"/srv/ts1": "/d", "/srv//ts1": "/e"}, "is given twice"),
])
def test_a_bad_map_is_refused_naming_the_option_and_value(value: object, message: str) -> None:
    with pytest.raises(PgreplError, match=None) as raised:
        validate_tablespace_map(value)
    assert message in str(raised.value)


def test_the_primarys_tablespaces_from_facts_or_paths() -> None:
    assert validate_tablespaces(None) is None
    facts = [{"name": "ts1", "location": "/srv/ts1/", "size": 100}, {"name": "inplace", "location": "pg_tblspc/1"},
             "/srv/ts2"]
    assert validate_tablespaces(facts) == (TS, Tablespace("/srv/ts2"))
    for bad, message in (("/srv", "is not a list"), ([{"size": 1}], "has no location"),
                         ([{"location": "/a", "size": -1}], "not a number of bytes"),
                         ([{"location": "/a", "size": True}], "not a number of bytes")):
        with pytest.raises(PgreplError) as raised:
            validate_tablespaces(bad)
        assert message in str(raised.value)


def test_a_tablespace_keeps_the_primarys_path_unless_mapped() -> None:
    spaces = (TS, Tablespace("/srv/ts2"))
    assert mapped(spaces, {"/srv/ts1": "/data/ts1"}) == [(TS, "/data/ts1"), (spaces[1], "/srv/ts2")]
    assert unused_keys(spaces, {"/srv/ts1": "/x", "/srv/gone": "/y"}) == ["/srv/gone"]


def test_targets_inside_or_holding_the_data_directory_or_each_other_are_problems() -> None:
    other = Tablespace("/srv/ts2")
    assert path_problems([(TS, "/data/ts1"), (other, "/data/ts2")], "/var/lib/postgresql/17/main") == []
    inside = path_problems([(TS, "/var/lib/postgresql/17/main/ts1")], "/var/lib/postgresql/17/main")
    assert len(inside) == 1 and "inside data_dir" in inside[0] and "(ts1)" in inside[0]
    assert "which holds data_dir" in path_problems([(TS, "/var/lib")], "/var/lib/postgresql/17/main")[0]
    nested = path_problems([(TS, "/data/ts"), (other, "/data/ts/two")], "/pg")
    assert len(nested) == 1 and "'/srv/ts2'" in nested[0] and "inside (or the same as)" in nested[0]
    assert len(path_problems([(TS, "/data/ts"), (other, "/data/ts")], "/pg")) == 1


def facts(**values: object) -> TargetFacts:
    return TargetFacts(**{"path": "/data/ts1", "anchor": "/data", **values})  # type: ignore[arg-type]


def test_a_missing_or_empty_target_is_written_in_place() -> None:
    assert decide_target(TS, facts(), False, False).how == IN_PLACE
    assert decide_target(TS, facts(), False, False).create is True
    done = decide_target(TS, facts(exists=True, is_dir=True, empty=True, owned=True), True, True)
    assert (done.how, done.create, done.size) == (IN_PLACE, False, 100)


def test_the_replaced_data_directorys_own_tablespace_is_swapped(tmp_path: Path) -> None:
    path = tmp_path / "ts1"
    path.mkdir()
    target = decide_target(TS, facts(path=str(path), exists=True, is_dir=True), True, True)
    assert (target.how, target.path) == (SWAP, str(path))


@pytest.mark.parametrize(("values", "ours", "message"), [
    ({"exists": True, "is_dir": True}, False, "is not empty and holds no tablespace of this standby's data"),
    ({"exists": True, "is_symlink": True}, False, "is a symlink"),
    ({"exists": True}, False, "exists and is not a directory"),
    ({"anchor_writable": False}, False, "cannot be created: '/data' is not writable"),
    ({"exists": True, "is_dir": True, "is_mount": True}, True, "is a mount point"),
])
def test_a_target_without_use_is_refused_saying_nothing_stopped(values: dict, ours: bool, message: str) -> None:
    with pytest.raises(PgreplError) as raised:
        decide_target(TS, facts(**values), ours, True)
    assert message in str(raised.value) and "Nothing was stopped or changed" in str(raised.value)
    assert "'/srv/ts1' (ts1)" in str(raised.value)


def test_a_tablespace_is_never_swapped_unless_its_data_directory_is_replaced() -> None:
    with pytest.raises(PgreplError, match="is not empty"):
        decide_target(TS, facts(exists=True, is_dir=True), True, False)


def test_target_facts_are_read_from_disk(tmp_path: Path) -> None:
    missing = read_target_facts(str(tmp_path / "a" / "b"), os.getuid())
    assert (missing.exists, missing.anchor, missing.anchor_writable) == (False, str(tmp_path), True)
    empty = tmp_path / "empty"
    empty.mkdir(mode=0o700)
    os.chmod(empty, 0o700)
    found = read_target_facts(str(empty), os.getuid())
    assert (found.exists, found.is_dir, found.empty, found.owned, found.is_mount) == (True, True, True, True, False)
    assert read_target_facts(str(empty), os.getuid() + 1).owned is False
    (empty / "x").write_text("x", encoding="utf-8")
    assert read_target_facts(str(empty), os.getuid()).empty is False
    (tmp_path / "link").symlink_to(empty)
    assert read_target_facts(str(tmp_path / "link"), os.getuid()).is_symlink is True
    assert read_target_facts(str(tmp_path / "n"), 0, writable=lambda _path: False).anchor_writable is False


def test_relink_points_the_links_at_the_renamed_directories(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "pg_tblspc").mkdir(parents=True)
    (data / "pg_tblspc" / "16400").symlink_to("/data/ts1.pgrepl-clone-X")
    (data / "pg_tblspc" / "16401").symlink_to("/data/ts2")
    (data / "pg_tblspc" / "16402").mkdir()  # an in-place tablespace: not a link, left alone
    assert relink(str(data), {"/data/ts1.pgrepl-clone-X": "/data/ts1"}) == ["16400"]
    assert tablespace_links(str(data)) == {"16400": "/data/ts1", "16401": "/data/ts2"}
    assert tablespace_links(str(tmp_path / "none")) == {}


def test_the_mapping_argument_escapes_equal_signs() -> None:
    assert mapping_argument("/srv/a=b", "/data/c") == "--tablespace-mapping=/srv/a\\=b=/data/c"


def test_needs_on_one_filesystem_are_added_up(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    groups = group_by_filesystem([SpaceNeed(str(tmp_path), 10, True, [], ["s"], ["m"]),
                                  SpaceNeed(str(tmp_path / "a"), 5, False, ["/t"], [], ["m2"]),
                                  SpaceNeed("/nonexistent/x", 7, False, ["/u"])])
    assert [(g.data_size, g.wal, g.tablespaces, g.stale, g.moved_aside) for g in groups] == [
        (15, True, ["/t"], ["s"], ["m", "m2"]), (7, False, ["/u"], [], [])]
    assert groups[0].path == str(tmp_path)


def test_a_swap_moves_the_old_tablespace_aside_with_its_link_and_undo_puts_both_back(tmp_path: Path) -> None:
    target, written, data = tmp_path / "ts1", tmp_path / "ts1.pgrepl-clone-S", tmp_path / "data"
    for path, content in ((target, "old"), (written, "new")):
        path.mkdir()
        (path / "PG_X").write_text(content, encoding="utf-8")
    (data / "pg_tblspc").mkdir(parents=True)
    (data / "pg_tblspc" / "16400").symlink_to(target)
    run = TablespaceRun([Target("/srv/ts1", str(target), SWAP)], write={str(target): str(written)},
                        made=[str(written)])
    swap_tablespaces(run, "S", str(data))
    moved = tmp_path / "ts1.pgrepl-moved-S"
    assert (target / "PG_X").read_text(encoding="utf-8") == "new" and not written.exists()
    assert (moved / "PG_X").read_text(encoding="utf-8") == "old"
    # The old data directory names its own tablespace, beside the target, from the moment it moved.
    assert tablespace_links(str(data)) == {"16400": str(moved)}
    run.undo()
    assert (target / "PG_X").read_text(encoding="utf-8") == "old" and not moved.exists() and not written.exists()
    assert tablespace_links(str(data)) == {"16400": str(target)}
