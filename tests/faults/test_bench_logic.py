# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The bench's own pure parts (flt_bench): the boundary faults, the faulted run's message, what fails the bench."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from d2_cluster import PlaybookRun
from flt_bench import (
    FAULTS,
    FRESH_SITE,
    HANDOVER_SW,
    Fault,
    Outcome,
    boundary_faults,
    failure_message,
    failures,
    keep_part,
    markdown,
    merge_parts,
    parse_when,
    totals,
)


def playbook_run(code: int, output: str) -> PlaybookRun:
    return PlaybookRun("switchover", ["ansible-playbook"], code, 1.0, 0.0, Path("x.log"), output, None)


def test_every_task_boundary_gets_sigkill_and_sigint() -> None:
    faults = boundary_faults("reseed", 3)
    assert [(f.when, f.action) for f in faults] == [
        ("task#1", "sigkill"), ("task#1", "sigint"), ("task#2", "sigkill"), ("task#2", "sigint"),
        ("task#3", "sigkill"), ("task#3", "sigint")]
    assert {f.op for f in faults} == {"reseed"}
    stepped = [f.when for f in boundary_faults("reseed", 5, step=2)]
    assert stepped == ["task#1", "task#1", "task#3", "task#3", "task#5", "task#5"]
    # The other half: step 2 from the 2nd; the two parts together are every boundary once.
    other = [f.when for f in boundary_faults("reseed", 5, step=2, offset=2)]
    assert other == ["task#2", "task#2", "task#4", "task#4"]
    assert sorted(set(stepped + other)) == [f"task#{n}" for n in range(1, 6)]


def test_parts_are_merged_under_one_total(tmp_path: Path) -> None:
    for name, tried, lost in (("switchover", 58, 0), ("failover-1", 30, 1)):
        (tmp_path / f"results-part-{name}.json").write_text(json.dumps(
            {"context": f"part {name}", "totals": {"faults tried": tried, "commits lost": lost}}))
        (tmp_path / f"table-part-{name}.md").write_text(f"table of {name}\n")
    text = merge_parts(tmp_path, kept=tmp_path / "none")
    assert "| 88 | 1 |" in text and "## Part failover-1" in text and "table of switchover" in text
    assert (tmp_path / "table-merged.md").read_text() == text


def test_kept_parts_count_and_a_part_run_again_replaces_its_kept_copy(tmp_path: Path) -> None:
    here, kept = tmp_path / "build", tmp_path / "kept"
    here.mkdir()
    for name, tried in (("named", 20), ("switchover", 58)):
        (here / f"results-part-{name}.json").write_text(json.dumps(
            {"context": f"old {name}", "totals": {"faults tried": tried, "commits lost": 0}}))
        (here / f"table-part-{name}.md").write_text(f"old table of {name}\n")
    assert [p.name for p in keep_part("named", here, kept)] == ["results-part-named.json", "table-part-named.md"]
    keep_part("switchover", here, kept)
    (here / "results-part-named.json").unlink()  # another machine: only what was kept
    (here / "table-part-named.md").unlink()
    (here / "results-part-switchover.json").write_text(json.dumps(
        {"context": "new", "totals": {"faults tried": 60, "commits lost": 0}}))
    (here / "table-part-switchover.md").write_text("new table of switchover\n")
    text = merge_parts(here, kept)
    assert "| 80 | 0 |" in text and "old table of named" in text
    assert "new table of switchover" in text and "old table of switchover" not in text
    with pytest.raises(SystemExit, match="missing"):
        keep_part("missing", here, kept)


def test_the_ci_subset_covers_the_state_changes_of_switchover_failover_and_reseed() -> None:
    ci = [f for f in FAULTS if f.ci]
    # Fresh hosts are the full matrix's: new containers for every fault cost CI minutes.
    assert FRESH_SITE in {f.op for f in FAULTS} and FRESH_SITE not in {f.op for f in ci}
    assert {f.op for f in ci} == {"switchover", "failover", "reseed"}
    assert len({f.name for f in FAULTS}) == len(FAULTS)


def test_the_failed_tasks_message_not_one_printed_before() -> None:
    output = ('ok: [a] => {"msg": "switchover: b promoted"}\n'
              'fatal: [a]: FAILED! => {"changed": false, "msg": "cannot reach b: \\"refused\\""}\n')
    assert failure_message(playbook_run(2, output)) == 'cannot reach b: "refused"'
    assert failure_message(playbook_run(-9, output)) == "killed by signal 9"
    assert failure_message(playbook_run(99, "[ERROR]: User interrupted execution\n")) == (
        "[ERROR]: User interrupted execution")


def test_what_fails_the_bench() -> None:
    fault = Fault("switchover: x", "switchover", "task#1", "sigkill")
    good = Outcome(fault, converged=True)
    split = Outcome(fault, converged=True, splits=1)
    lost = Outcome(fault, converged=True, lost=2)
    stuck = Outcome(fault, converged=False)
    known = Outcome(fault, converged=False, expected_failure="a bug, reported")
    assert failures([good], "seen: 1 split-brain instant(s)") == []
    assert len(failures([good, split, lost, stuck, known], "seen: 1")) == 3
    assert failures([good], "FAILED: blind") == ["control: FAILED: blind"]
    assert totals([good, split, lost])["split-brain instants"] == 1
    assert "| 3 | 3 | 1 | 2 |" in markdown([good, split, lost], "context")
    # Fresh hosts have no ledger or samplers: their rows say so rather than a 0 nobody measured.
    fresh = Outcome(Fault("site on fresh hosts: x", FRESH_SITE, "task#1", "sigint"), converged=True)
    row = markdown([fresh], "context").splitlines()[-1]
    assert "| not measured | not measured |" in row


def test_when_a_fault_fires() -> None:
    assert parse_when("task#7") == ("task#", "", 7)
    assert parse_when(HANDOVER_SW) == ("task", "Hand over from the old primary - switchover", 2)
    assert parse_when("task:Standby configuration pointing at the new primary") == (
        "task", "Standby configuration pointing at the new primary", 1)
    assert parse_when("state:copying") == ("state", "copying", 0)
    assert parse_when("never") == ("never", "", 0)
    kinds = {parse_when(f.when)[0] for f in FAULTS}
    assert kinds <= {"task", "task#", "state", "never"}
