# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ledger's arithmetic, without containers: what the chained proof concludes from the records."""

from __future__ import annotations

from pathlib import Path

import pytest
from d2_cluster import PlaybookRun, snapshot_diff
from d2_ledger import (
    Commit,
    first_commit_on,
    max_gap,
    missing,
    not_past,
    parse_events,
    parse_records,
)
from d2_proof import first_message, recap_problems

from ansible_collections.pgrepl.streaming.plugins.module_utils._lsn import parse_lsn


def commits(*rows: tuple[int, float, str, str]) -> list[Commit]:
    return [Commit(i, at, parse_lsn(lsn), server) for i, at, lsn, server in rows]


def test_records_leave_out_a_line_being_written() -> None:
    text = "1\t100.5\t0/10\t10.0.0.2\n2\t100.6\t0/20\t10.0.0.2\n3\t100.7\t0/3"
    assert [c.id for c in parse_records(text)] == [1, 2]
    assert parse_records("") == []


def test_events_parse() -> None:
    events = parse_events("1.0\tconnected\t10.0.0.2\n2.0\tindoubt\t7 OperationalError: server closed\n3.0\tpa")
    want = [("connected", "10.0.0.2"), ("indoubt", "7 OperationalError: server closed")]
    assert [(e.kind, e.detail) for e in events] == want


def test_max_gap_is_between_consecutive_commits_in_the_window() -> None:
    log = commits((1, 10.0, "0/10", "a"), (2, 10.1, "0/20", "a"), (4, 12.6, "0/30", "b"), (5, 12.7, "0/40", "b"),
                  (6, 30.0, "0/50", "b"))
    gap = max_gap(log, 9.0, 13.0)
    assert gap.seconds == pytest.approx(2.5)
    assert (gap.after.id, gap.before.id) == (2, 4)
    assert "#2 on n-a" in gap.describe({"a": "n-a", "b": "n-b"})
    # The commit at 30.0 is outside: its 17.3 s gap does not count.
    assert max_gap(log, 0.0, 31.0).seconds == pytest.approx(17.3)
    assert max_gap([], 0.0, 1.0).seconds == 0.0


def test_first_commit_on_the_new_primary() -> None:
    log = commits((1, 10.0, "0/10", "a"), (3, 11.0, "0/30", "b"), (4, 11.5, "0/40", "b"))
    assert first_commit_on(log, "b", 10.5).id == 3
    assert first_commit_on(log, "b", 11.2).id == 4
    assert first_commit_on(log, "c", 0.0) is None


def test_missing_counts_only_acknowledged_and_not_excused() -> None:
    log = commits((1, 1.0, "0/10", "a"), (2, 2.0, "0/20", "a"), (3, 3.0, "0/30", "a"))
    # Row 9 exists without an acknowledgement (an in-doubt commit that made it): not a loss, not counted.
    assert [c.id for c in missing(log, {1, 9})] == [2, 3]
    assert [c.id for c in missing(log, {1}, frozenset({2}))] == [3]
    assert missing(log, {1, 2, 3}) == []


def test_async_failover_rule() -> None:
    lost = commits((7, 1.0, "0/5000100", "a"), (8, 1.1, "0/5000200", "a"))
    # The promoted node had received up to 0/5000100: commit 7 ended there, so it should have survived.
    assert [c.id for c in not_past(lost, parse_lsn("0/5000100"))] == [7]
    assert not_past(lost, parse_lsn("0/50000FF")) == []


def test_snapshot_diff_names_node_and_key() -> None:
    before = {"n0": {"pg_is_in_recovery": "false", "slot s1": "physical active=true"},
              "n1": {"standby.signal": "present"}}
    after = {"n0": {"pg_is_in_recovery": "false"}, "n1": {"standby.signal": "absent"}}
    assert snapshot_diff(before, after) == ["n0: slot s1: physical active=true -> (absent)",
                                            "n1: standby.signal: present -> absent"]
    assert snapshot_diff(before, before) == []


def run_with(output: str, rc: int = 2) -> PlaybookRun:
    return PlaybookRun("switchover", ["ansible-playbook"], rc, 1.0, 0.0, Path("x.log"), output, None)


def test_a_refusal_must_come_from_a_play() -> None:
    missing_playbook = run_with("ERROR! the playbook: pgrepl.streaming.failover could not be found", rc=1)
    assert recap_problems(missing_playbook)
    unreachable = run_with("PLAY RECAP ***\nn0 : ok=1 changed=0 unreachable=1 failed=0 skipped=0\n")
    assert recap_problems(unreachable) == ["n0 unreachable"]
    refused = run_with('fatal: [n0]: FAILED! => {"changed": false, "msg": "n1 replay is paused. Nothing changed."}\n'
                       "PLAY RECAP ***\nn0 : ok=3 changed=0 unreachable=0 failed=1 skipped=0\n")
    assert recap_problems(refused) == []
    assert first_message(refused) == "n1 replay is paused. Nothing changed."
