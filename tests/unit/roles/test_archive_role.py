# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The node role's archive tasks (roles/node/tasks/archive.yml) for the cleanup timer, their conditions rendered by
Ansible: with a retention (pgrepl_archive_keep such as 7d) the units are installed and the timer runs; with ""
(keep everything) a timer an earlier run installed is stopped, disabled and its units removed, so nothing goes on
removing archived WAL. The plan itself (cleanup_timer) is decided and tested in module_utils/_archive.py."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from ansible_collections.pgrepl.streaming.plugins.filter.archive import archive_plan

from .rendering import ROOT, render

INSTALL = ("The cleanup's systemd service and timer", "The cleanup timer enabled and running")
REMOVE = ("Whether an earlier run installed the cleanup timer", "The cleanup timer stopped and disabled",
          "The cleanup's systemd service and timer removed")


def tasks() -> dict[str, dict[str, Any]]:
    listed = yaml.safe_load((ROOT / "roles" / "node" / "tasks" / "archive.yml").read_text())
    return {task["name"]: task for task in listed}


def runs(task: dict[str, Any], variables: dict[str, Any]) -> bool:
    when = task.get("when", True)
    return bool(render("{{ " + when + " }}", variables)) if isinstance(when, str) else bool(when)


def by_prefix(prefix: str) -> dict[str, Any]:
    return next(task for name, task in tasks().items() if name.startswith(prefix))


@pytest.mark.parametrize(("keep", "timer"), [("7d", True), ("7d,500", True), ("", False)])
def test_the_timer_is_installed_with_a_retention_and_taken_away_without(keep: str, timer: bool) -> None:
    plan = archive_plan(True, "/srv/archive", keep)
    assert plan["cleanup_timer"] is timer
    variables = {"__pgrepl_archive": plan, "ansible_check_mode": False,
                 "__pgrepl_archive_old_timer": {"stat": {"exists": True}}, "__pgrepl_archive_units": {"changed": True}}
    assert [runs(by_prefix(name), variables) for name in INSTALL] == [timer, timer]
    assert [runs(by_prefix(name), variables) for name in REMOVE] == [not timer] * 3


def test_nothing_to_stop_when_no_timer_was_installed() -> None:
    variables = {"__pgrepl_archive": archive_plan(True, "/srv/archive", ""), "ansible_check_mode": False,
                 "__pgrepl_archive_old_timer": {"stat": {"exists": False}}}
    assert not runs(by_prefix("The cleanup timer stopped and disabled"), variables)


def test_the_removal_names_the_units_the_install_writes() -> None:
    install = by_prefix("The cleanup's systemd service and timer")
    remove = by_prefix("The cleanup's systemd service and timer removed")
    assert remove["loop"] == install["loop"]
    assert remove["ansible.builtin.file"]["path"] == install["ansible.builtin.template"]["dest"]
    assert remove["ansible.builtin.file"]["state"] == "absent"
