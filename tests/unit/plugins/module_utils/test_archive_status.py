# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The WAL archive in the status (module_utils/_status.py from pg_stat_archiver, read by module_utils/_info.py)."""

from __future__ import annotations

from typing import Any

from ansible_collections.pgrepl.streaming.plugins.module_utils import _info
from ansible_collections.pgrepl.streaming.plugins.module_utils import _status as st

from .test_status import PRIMARY, S1, S2, healthy, status


def archiver(archived: str | None = "000000010000000000000005", archived_at: str | None = "2026-12-07T08:00:00+00:00",
             failed: int = 0, failed_wal: str | None = None, failed_at: str | None = None) -> dict[str, Any]:
    return {"archived_count": 5 if archived else 0, "last_archived_wal": archived, "last_archived_time": archived_at,
            "failed_count": failed, "last_failed_wal": failed_wal, "last_failed_time": failed_at,
            "stats_reset": "2026-12-07T07:00:00+00:00"}


def archiving(nodes: dict[str, Any], primary: dict[str, Any], mode: str = "on") -> dict[str, Any]:
    for host in (PRIMARY, S1, S2):
        server = nodes[host]["server"]
        server["settings"] = dict(server.get("settings") or {}, archive_mode=mode)
        server["archiver"] = primary if host == PRIMARY else archiver(None, None)
    return nodes


def test_no_archive_no_lines_no_key_values() -> None:
    document = status(healthy())
    assert all(entry["archive"] is None for entry in document["nodes"])
    assert st.archive_lines(document) == []
    assert document["ok"]


def test_the_primary_archives_and_says_what_it_archived_last() -> None:
    document = status(archiving(healthy(), archiver(failed=2, failed_wal="000000010000000000000003",
                                                    failed_at="2026-12-07T07:59:00+00:00")))
    head = document["nodes"][0]
    assert head["archive"]["archives"] and head["archive"]["last_archived_wal"] == "000000010000000000000005"
    assert [e["archive"]["archives"] for e in document["nodes"][1:]] == [False, False]  # on: inert in recovery
    assert document["ok"]  # failed before, archived since
    assert st.archive_lines(document) == [
        f"archive of {PRIMARY} (archive_mode=on): last archived 000000010000000000000005 at "
        "2026-12-07T08:00:00+00:00, 2 failed (last 000000010000000000000003 at 2026-12-07T07:59:00+00:00)"]


def test_archiving_that_fails_now_is_a_problem_of_the_primary() -> None:
    document = status(archiving(healthy(), archiver(failed=7, failed_wal="000000010000000000000006",
                                                    failed_at="2026-12-07T08:05:00+00:00")))
    assert not document["ok"]
    assert document["problems"][0].startswith(f"{PRIMARY}: archiving fails: 000000010000000000000006 at "
                                              "2026-12-07T08:05:00+00:00 (7 failures")
    never = status(archiving(healthy(), archiver(None, None, 1, "000000010000000000000001",
                                                 "2026-12-07T08:05:00+00:00")))
    assert "archiving fails" in never["problems"][0]
    assert st.archive_lines(never)[0].endswith("nothing archived yet, 1 failed (last 000000010000000000000001 at "
                                               "2026-12-07T08:05:00+00:00)")


def test_always_archives_on_standbys_too() -> None:
    document = status(archiving(healthy(), archiver(), mode="always"))
    assert [e["archive"]["archives"] for e in document["nodes"]] == [True, True, True]
    assert len(st.archive_lines(document)) == 3


def test_node_facts_read_pg_stat_archiver_and_archive_mode_but_not_the_commands() -> None:
    assert "pg_stat_archiver" in _info.build_info_query(17).as_string(None)
    assert "archive_mode" in _info.SETTINGS_NAMES
    # A user's own tool's command may carry a credential, and nothing decides by it: never returned.
    assert not {"archive_command", "restore_command"} & set(_info.SETTINGS_NAMES)
    assert _info.empty_live_facts()["archiver"] is None


# PostgreSQL's JSON texts of one server in Europe/Berlin around the autumn change (SET TimeZone, row_to_json):
# 00:30 UTC is 02:30+02:00, 01:10 UTC (later) is 02:10+01:00.
BEFORE_FALL_BACK = "2026-10-25T02:30:00+02:00"
AFTER_FALL_BACK = "2026-10-25T02:10:00+01:00"


def test_a_failure_after_the_last_success_across_the_autumn_change_is_a_problem() -> None:
    archive = {"archives": True, "last_archived_time": BEFORE_FALL_BACK, "last_failed_time": AFTER_FALL_BACK,
               "last_failed_wal": "000000010000000000000006", "failed_count": 1}
    assert st.archive_problem(archive) is not None
    assert st.archive_problem(dict(archive, last_archived_time=AFTER_FALL_BACK,
                                   last_failed_time=BEFORE_FALL_BACK)) is None


def test_timestamps_as_postgresql_spells_them() -> None:
    # A fraction of any length (trailing zeros dropped), offsets with minutes or seconds (LMT).
    assert st.timestamp_instant("2026-10-25T07:00:00.1+05:30") == st.timestamp_instant("2026-10-25T01:30:00.1+00:00")
    assert st.timestamp_instant("2026-12-07T14:38:17.952984+05:30") is not None
    assert st.timestamp_instant("1959-12-31T23:15:30-00:44:30") == st.timestamp_instant("1960-01-01T00:00:00+00:00")
    assert st.timestamp_instant("2026-12-07T08:00:00.1234567+00:00") == st.timestamp_instant(
        "2026-12-07T08:00:00.123456+00:00")
    for nothing in (None, "", "yesterday", "2026-12-07T08:00:00", 5):
        assert st.timestamp_instant(nothing) is None
