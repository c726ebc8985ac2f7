# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The node role's tablespace directory tasks (roles/node/tasks/tablespace_dirs.yml, included from node.yml),
rendered by Ansible: the paths are checked where the file is included, the find looks only into declared
directories that exist (a missing path would be a warning), and the block prepares what the filter decides."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from .rendering import ROOT, render

TASKS = ROOT / "roles" / "node" / "tasks"


def _include() -> dict[str, Any]:
    tasks = yaml.safe_load((TASKS / "node.yml").read_text())
    return next(task for task in tasks if task.get("ansible.builtin.include_tasks") == "tablespace_dirs.yml")


def _tasks() -> list[dict[str, Any]]:
    return yaml.safe_load((TASKS / "tablespace_dirs.yml").read_text())


def _stat(path: str, **stat: Any) -> dict[str, Any]:
    return {"item": path, "stat": {"exists": True, **stat} if stat else {"exists": False}}


def test_the_include_checks_the_paths_before_anything_changes() -> None:
    include = _include()
    variables = {"pgrepl_tablespace_dirs": ["/srv/later/ts2/"], "__pgrepl_layout": {"data_dir": "/pg/main"}}
    assert render(include["vars"]["__pgrepl_tablespace_dirs"], variables) == ["/srv/later/ts2"]
    assert render("{{ " + include["when"] + " }}", {"pgrepl_tablespace_dirs": []}) in (False, "False")
    with pytest.raises(Exception, match="pgrepl_tablespace_dirs: '/pg/main/ts' is inside the data directory"):
        render(include["vars"]["__pgrepl_tablespace_dirs"], dict(variables, pgrepl_tablespace_dirs=["/pg/main/ts"]))


def test_stat_covers_the_directories_and_their_parents_and_find_only_existing_directories() -> None:
    stat, find, block = _tasks()
    declared = ["/srv/later/ts2", "/srv/empty", "/srv/link", "/srv/used"]
    items = render(stat["loop"], {"__pgrepl_tablespace_dirs": declared})
    assert items == [*declared, "/srv/later", "/srv"]
    results = [_stat("/srv/later/ts2"), _stat("/srv/empty", isdir=True, islnk=False),
               _stat("/srv/link", isdir=False, islnk=True), _stat("/srv/used", isdir=True, islnk=False),
               _stat("/srv/later"), _stat("/srv", isdir=True, islnk=False)]
    variables = {"__pgrepl_tablespace_dirs": declared, "__pgrepl_tablespace_dir_stats": {"results": results}}
    assert render(find["vars"]["__existing"], variables) == ["/srv/empty", "/srv/used"]
    variables["__pgrepl_tablespace_dir_contents"] = {"files": [{"path": "/srv/used/PG_18_202506291"}]}
    prepare = render(block["vars"]["__prepare"], variables)
    assert prepare == {"dirs": ["/srv/later/ts2", "/srv/empty"], "parents": ["/srv/later"]}
    parents, dirs = block["block"]
    assert (parents["ansible.builtin.file"]["owner"], parents["ansible.builtin.file"]["mode"]) == ("root", "0755")
    assert dirs["ansible.builtin.file"]["mode"] == "0700"


def test_without_existing_directories_the_find_is_skipped_and_everything_is_prepared() -> None:
    find, block = _tasks()[1:]
    results = [_stat("/data/ts2"), _stat("/data", isdir=True, islnk=False)]
    variables = {"__pgrepl_tablespace_dirs": ["/data/ts2"], "__pgrepl_tablespace_dir_stats": {"results": results}}
    assert render(find["vars"]["__existing"], variables) == []
    assert render(block["vars"]["__prepare"], variables) == {"dirs": ["/data/ts2"], "parents": []}


QUIET = {"__pgrepl_node": {"lease": {}}, "__pgrepl_inventory_checked": True, "pgrepl_tablespace_dirs": [],
         "pgrepl_firewall": False, "pgrepl_tls": False, "pgrepl_archive": False,
         "__pgrepl_archive": {"install_script": False}}


@pytest.mark.parametrize(("changes", "included"), [
    ({}, False),  # a site play after the preflight, no feature on: one skipped task
    ({"__pgrepl_node": None}, True),  # facts not gathered yet in this run (the key is left out below)
    ({"__pgrepl_inventory_checked": False}, True),
    ({"pgrepl_tablespace_dirs": ["/srv/ts"]}, True),
    ({"pgrepl_firewall": True}, True),
    ({"pgrepl_tls": True}, True),
    ({"pgrepl_archive": True, "__pgrepl_archive": {"install_script": True}}, True),
    ({"pgrepl_archive": True}, False),  # archiving by the user's own archive_command: nothing to install
])
def test_main_includes_the_node_steps_whenever_one_of_them_would_run(changes: dict[str, Any], included: bool) -> None:
    """roles/node/tasks/main.yml includes node.yml whenever any task in it would run (its condition is the union of
    theirs), and skips it as one task otherwise."""
    (task,) = yaml.safe_load((TASKS / "main.yml").read_text())
    assert task["ansible.builtin.include_tasks"] == "node.yml"
    variables = {key: value for key, value in {**QUIET, **changes}.items() if value is not None}
    assert render("{{ " + task["when"] + " }}", variables) in ((True, "True") if included else (False, "False"))
