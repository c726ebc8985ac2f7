# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The failover's time to the first write: nothing runs between its refusal and the handover that fences the old
primary and promotes the chosen standby (roles/operations/tasks/failover.yml). Every task costs a round of the
strategy, so the choice is rendered where it is read, and the shape, the summary and the report follow the
promotion; check mode still prints the summary right after the refusal and stops."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
import yaml

ROOT = Path(__file__).resolve().parents[3]
TASKS = ROOT / "roles" / "operations" / "tasks"


def load(name: str) -> list[dict[str, Any]]:
    return yaml.safe_load((TASKS / name).read_text())


def imported(task: dict[str, Any]) -> str:
    return str(task.get("ansible.builtin.import_tasks", ""))


def failover_block() -> dict[str, Any]:
    return next(task for task in load("failover.yml") if task["name"].startswith("Refuse, or fail over"))


def test_the_handover_comes_right_after_the_refusal() -> None:
    tasks = load("failover.yml")
    assert [imported(task) for task in tasks[:1]] == ["facts.yml"]
    outer = failover_block()
    assert tasks.index(outer) == 1
    refuse, real = outer["block"]
    assert imported(refuse) == "refuse.yml"
    assert refuse["vars"]["__pgrepl_summary_after"] == "{{ not ansible_check_mode }}"
    assert real["when"] == "not ansible_check_mode" and real["any_errors_fatal"] is True
    assert imported(real["block"][0]) == "handover.yml"
    assert real["block"][0]["vars"]["__pgrepl_handover_target"] == "{{ __pgrepl_failover_target }}"


def test_the_choice_is_kept_as_facts_after_the_handover_then_shape_and_summary() -> None:
    real = failover_block()["block"][1]["block"]
    pin, shape, summary = real[1:4]
    assert pin["ansible.builtin.set_fact"] == {
        "__pgrepl_candidates": "{{ __pgrepl_failover_choice.candidates }}",
        "__pgrepl_failover_target": "{{ __pgrepl_failover_choice.target }}"}
    assert pin["run_once"] is True
    assert imported(shape) == "shape.yml" and imported(summary) == "summary.yml"
    # The fencing task files of an old primary that does not answer still run before its promotion on the target.
    names = [imported(task) or task["name"] for task in real]
    assert names.index("fence.yml") < names.index(
        "The old primary does not answer - promote the chosen standby on its own host")


def test_the_choice_vars_and_the_summary_of_other_operations() -> None:
    variables = failover_block()["vars"]
    assert variables["__pgrepl_failover_choice"] == (
        "{{ __pgrepl_day2_facts | pgrepl.streaming.failover_choice(pgrepl_target) }}")
    assert variables["__pgrepl_failover_target"] == "{{ __pgrepl_failover_choice.target }}"
    # Every other operation prints its summary right after its refusal, as before.
    summary = load("refuse.yml")[1]
    assert imported(summary) == "summary.yml"
    assert summary["when"] == "not __pgrepl_summary_after | default(false) | bool"
    assert load("summary.yml")[0]["changed_when"] == (
        "ansible_check_mode and __pgrepl_changes_expected | default(true) | bool")


def steps(down: list[str]) -> list[str]:
    """failover_steps.j2 as the summary renders it (the template lookup's trim_blocks), split into its lines."""
    env = jinja2.Environment(trim_blocks=True, autoescape=False)  # noqa: S701 - text for a debug message, no HTML
    template = env.from_string((ROOT / "roles" / "operations" / "templates" / "failover_steps.j2").read_text())
    text = template.render(
        __pgrepl_inventory_primary="db1", __pgrepl_down_nodes=down, __pgrepl_candidates=["db2", "db3"],
        __pgrepl_failover_target="db3", ansible_check_mode=False, pgrepl_fence_tasks=[], pgrepl_cutover_post_tasks=[],
        hostvars={"db1": {"__pgrepl_node": {"server": None}},
                  "db3": {"__pgrepl_node": {"server": {"receive_lsn": "0/7000000"}}}})
    return text.strip().split("\n")


def test_the_summary_has_one_line_per_step() -> None:
    answers = steps([])
    assert [line[:3] for line in answers] == ["fai", "1. ", "2. ", "3. ", "4. "]
    assert answers[1].endswith("then promote db3 (received up to 0/7000000)")
    down = steps(["db1"])
    assert [line[:3] for line in down] == ["fai", "1. ", "2. ", "3. ", "4. "]
    assert down[1].startswith("1. db1: does not answer") and down[1].endswith("(received up to 0/7000000)")
