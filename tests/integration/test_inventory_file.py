# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The operations role rewrites pgrepl_inventory_file after a switchover, failover or removal: the file it
replaces is kept beside it (pgrepl_inventory_backup, on by default), so a wrong run never costs the user's only
copy of the groups. Through ansible-playbook, the role's own groups.yml."""

from __future__ import annotations

from pathlib import Path

import yaml

from ansible_runner import run_tasks


def write_groups(path: Path, primary: str, standbys: list[str], **extra: object) -> dict:
    task = {"name": "groups", "ansible.builtin.include_role": {"name": "pgrepl.streaming.operations",
                                                               "tasks_from": "groups.yml"},
            "vars": {"__pgrepl_operation": "switchover", "__pgrepl_primary_name": primary,
                     "__pgrepl_inventory_standbys": standbys, "pgrepl_inventory_file": str(path), **extra}}
    run = run_tasks([task])
    assert run.returncode == 0 and all(not result.get("failed") for result in run.results), run.stdout
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def test_the_previous_inventory_file_is_kept_beside_it(tmp_path: Path) -> None:
    path = tmp_path / "groups.yml"
    users_own = "# the user's own file, with comments\nall:\n  children:\n    primary:\n      hosts:\n        db1: {}\n"
    path.write_text(users_own, encoding="utf-8")
    groups = write_groups(path, "db2", ["db1", "db3"])
    assert list(groups["all"]["children"]["primary"]["hosts"]) == ["db2"]
    assert list(groups["all"]["children"]["standby"]["hosts"]) == ["db1", "db3"]
    backups = [p for p in tmp_path.iterdir() if p.name.startswith("groups.yml.") and p.name.endswith("~")]
    assert len(backups) == 1 and backups[0].read_text(encoding="utf-8") == users_own
    # The same groups again: nothing rewritten, no second backup.
    write_groups(path, "db2", ["db1", "db3"])
    assert len([p for p in tmp_path.iterdir() if p.name.endswith("~")]) == 1


def test_no_backup_when_the_user_says_so(tmp_path: Path) -> None:
    path = tmp_path / "groups.yml"
    path.write_text("all: {}\n", encoding="utf-8")
    write_groups(path, "db2", ["db1"], pgrepl_inventory_backup=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["groups.yml"]
