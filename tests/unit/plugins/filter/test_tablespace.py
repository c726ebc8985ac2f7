# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pgrepl_tablespace_dirs: which directories are declared, and which of them the node role prepares."""

from __future__ import annotations

from typing import Any

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.pgrepl.streaming.plugins.filter.tablespace import (
    FilterModule,
    tablespace_dirs,
    tablespace_dirs_to_prepare,
)

DATA = "/var/lib/postgresql/18/main"


def test_paths_are_normalised_kept_in_order_and_given_once() -> None:
    assert tablespace_dirs(["/srv/ts2/", "/data//ts3", "/srv/ts2"], DATA) == ["/srv/ts2", "/data/ts3"]


def test_nothing_declared_is_an_empty_list() -> None:
    assert tablespace_dirs([], DATA) == []
    assert tablespace_dirs(None, DATA) == []
    assert tablespace_dirs("", DATA) == []


@pytest.mark.parametrize(("value", "says"), [
    ("/srv/ts2", "'/srv/ts2' is not a list"),
    ({"/srv/ts2": 1}, "is not a list"),
    (["srv/ts2"], "pgrepl_tablespace_dirs[0]: 'srv/ts2' must be an absolute path"),
    (["/srv/ts2", ""], "pgrepl_tablespace_dirs[1]: '' is not a path"),
    (["/srv/ts2", 7], "pgrepl_tablespace_dirs[1]: 7 is not a path"),
    (["/"], "'/' is a system directory"),
    (["/usr/"], "'/usr/' is a system directory"),
    (["/srv/ts\n2"], "pgrepl_tablespace_dirs[0]"),
    ([DATA + "/ts"], f"'{DATA}/ts' is inside the data directory '{DATA}'"),
    ([DATA], f"'{DATA}' is inside the data directory"),
    (["/var/lib/postgresql/18"], f"'/var/lib/postgresql/18' holds the data directory '{DATA}'"),
    (["/srv/ts", "/srv/ts/a"], "'/srv/ts/a' is inside '/srv/ts', also declared"),
])
def test_a_bad_declaration_is_refused_naming_the_option_and_the_value(value: Any, says: str) -> None:
    with pytest.raises(AnsibleFilterError, match="pgrepl_tablespace_dirs") as caught:
        tablespace_dirs(value, DATA)
    assert says in str(caught.value)


def test_a_sibling_with_a_common_prefix_is_not_inside() -> None:
    assert tablespace_dirs(["/srv/ts", "/srv/ts2", DATA + "-ts"], DATA) == ["/srv/ts", "/srv/ts2", DATA + "-ts"]


def _stat(path: str, **stat: Any) -> dict[str, Any]:
    return {"item": path, "stat": {"exists": True, **stat} if stat else {"exists": False}}


DIR = {"isdir": True, "islnk": False}


def test_missing_and_empty_directories_are_prepared_non_empty_ones_and_links_left_alone() -> None:
    declared = ["/srv/missing", "/srv/empty", "/srv/used", "/srv/hidden", "/srv/link"]
    stats = [_stat("/srv/missing"), _stat("/srv/empty", **DIR), _stat("/srv/used", **DIR),
             _stat("/srv/hidden", **DIR), _stat("/srv/link", isdir=False, islnk=True), _stat("/srv", **DIR)]
    contents = [{"path": "/srv/used/PG_18_202506291"}, {"path": "/srv/hidden/.keep"}]
    assert tablespace_dirs_to_prepare(stats, declared, contents) == {"dirs": ["/srv/missing", "/srv/empty"],
                                                                     "parents": []}


def test_the_missing_parents_of_missing_directories_are_named_once() -> None:
    declared = ["/data/a/ts1", "/data/a/ts2", "/srv/ts3"]
    stats = [_stat("/data/a/ts1"), _stat("/data/a/ts2"), _stat("/srv/ts3"), _stat("/data/a"), _stat("/srv", **DIR)]
    assert tablespace_dirs_to_prepare(stats, declared) == {"dirs": declared, "parents": ["/data/a"]}


def test_an_existing_directory_needs_no_parent() -> None:
    stats = [_stat("/srv/a", **DIR)]
    assert tablespace_dirs_to_prepare(stats, ["/srv/a"]) == {"dirs": ["/srv/a"], "parents": []}
    assert tablespace_dirs_to_prepare(stats, ["/srv/a"], None) == {"dirs": ["/srv/a"], "parents": []}
    assert tablespace_dirs_to_prepare([], []) == {"dirs": [], "parents": []}


def test_a_file_in_a_directory_of_the_same_prefix_does_not_count() -> None:
    stats = [_stat("/srv/ts", **DIR), _stat("/srv", **DIR)]
    result = tablespace_dirs_to_prepare(stats, ["/srv/ts"], [{"path": "/srv/ts2/x"}, {"path": "/srv/ts"}])
    assert result["dirs"] == ["/srv/ts"]


def test_a_path_that_is_not_a_directory_is_refused_naming_it() -> None:
    with pytest.raises(AnsibleFilterError, match=r"pgrepl_tablespace_dirs: '/srv/ts2' exists and is not a direc"):
        tablespace_dirs_to_prepare([_stat("/srv/ts2", isdir=False, islnk=False)], ["/srv/ts2"])


def test_what_is_not_a_stat_loop_result_is_refused() -> None:
    with pytest.raises(AnsibleFilterError, match="not the result of a stat loop"):
        tablespace_dirs_to_prepare([{"stat": {"exists": False}}], [])
    with pytest.raises(AnsibleFilterError, match="no stat result for '/srv/ts2'"):
        tablespace_dirs_to_prepare([], ["/srv/ts2"])


def test_the_filters_are_registered() -> None:
    assert FilterModule().filters() == {"tablespace_dirs": tablespace_dirs,
                                        "tablespace_dirs_to_prepare": tablespace_dirs_to_prepare}
