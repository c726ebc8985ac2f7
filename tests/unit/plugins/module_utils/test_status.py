# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The status of the cluster (module_utils/_status.py): state merge, problems, human units, the table and JSON."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from ansible_collections.pgrepl.streaming.plugins.module_utils import _status as st

PRIMARY, S1, S2 = "db1", "db2", "db3"
SYSID = "7316352834401234567"


# ---------------------------------------------------------------------------------------------------------------
# Node facts as node_prepare returns them
# ---------------------------------------------------------------------------------------------------------------

def files(standby: bool, state: str = "in production", timeline: int = 1) -> dict[str, Any]:
    return {"standby_signal": standby, "recovery_signal": False, "recovery_conf": False, "cluster_state": state,
            "timeline": timeline, "system_identifier": SYSID, "postmaster_running": True}


def node(server: dict[str, Any] | None, standby: bool, running: bool = True, **extra: Any) -> dict[str, Any]:
    facts = files(standby, "in archive recovery" if standby else "in production")
    facts["postmaster_running"] = running
    result = {"changed": False, "psycopg": True, "data_dir_state": "pgdata", "data_dir_facts": facts,
              "running": running, "server": server,
              "layout": {"data_dir": "/var/lib/postgresql/15/main", "service": "postgresql@15-main"}}
    result.update(extra)
    return result


def sender(app: str, state: str = "streaming", lag: int = 0, sync: str = "async", pid: int = 100) -> dict[str, Any]:
    return {"pid": pid, "application_name": app, "state": state, "sync_state": sync, "replay_lag_bytes": lag,
            "replay_lag": 0.01}


def slot(name: str, active: bool = True, wal_status: str = "reserved", retained: int = 0,
         safe: int | None = None, pid: int | None = 100) -> dict[str, Any]:
    return {"slot_name": name, "slot_type": "physical", "active": active, "active_pid": pid if active else None,
            "wal_status": wal_status, "safe_wal_size": safe, "retained_bytes": retained}


def primary_server(replication: list[dict[str, Any]], slots: list[dict[str, Any]],
                   current_lsn: str = "0/5000060") -> dict[str, Any]:
    return {"reachable": True, "role": "primary", "in_recovery": False, "timeline": 1, "current_lsn": current_lsn,
            "system_identifier": SYSID, "replication": replication, "slots": slots, "wal_receiver": None,
            "replay_paused": None, "replay_pause_state": None}


def standby_server(status: str | None = "streaming", replay_lsn: str = "0/5000060", receive_lsn: str = "0/5000060",
                   delay: float | None = 0.0, paused: bool = False, timeline: int = 1,
                   conninfo: str | None = "host=db1 user=replicator") -> dict[str, Any]:
    receiver = None if status is None else {"status": status, "sender_host": "db1", "sender_port": 5432}
    return {"reachable": True, "role": "standby", "in_recovery": True, "timeline": timeline, "current_lsn": None,
            "replay_lsn": replay_lsn, "receive_lsn": receive_lsn, "system_identifier": SYSID,
            "replication": [], "slots": [], "wal_receiver": receiver, "replay_delay_seconds": delay,
            "replay_paused": paused, "replay_pause_state": "paused" if paused else "not paused",
            "settings": {"primary_conninfo": conninfo}}


def healthy() -> dict[str, Any]:
    return {
        PRIMARY: node(primary_server([sender(S1, pid=101), sender(S2, sync="sync", pid=102)],
                                     [slot(S1, pid=101), slot(S2, pid=102)]), standby=False),
        S1: node(standby_server(), standby=True),
        S2: node(standby_server(), standby=True),
    }


def status(nodes: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    return st.build_status([PRIMARY], [S1, S2], nodes, {S1: S1, S2: S2}, **kwargs)


def entry(document: dict[str, Any], host: str) -> dict[str, Any]:
    return next(item for item in document["nodes"] if item["host"] == host)


# ---------------------------------------------------------------------------------------------------------------
# Human units
# ---------------------------------------------------------------------------------------------------------------

# Each value with what PostgreSQL 15's SELECT pg_size_pretty(value::bigint) prints (the integration test
# tests/integration/test_status.py compares the same function with a live server over many more values).
@pytest.mark.parametrize("size, expected", [
    (0, "0 bytes"), (1, "1 bytes"), (10239, "10239 bytes"), (10240, "10 kB"), (10751, "10 kB"),
    (10752, "11 kB"), (20479 * 512 - 1, "10239 kB"), (20479 * 512, "10 MB"), (16 * 1024 ** 2, "16 MB"),
    (1024 ** 3, "1024 MB"), (10 * 1024 ** 3, "10 GB"), (10754195360, "10 GB"), (10359 * 1024 ** 2, "10 GB"),
    (9879 * 1024 ** 2, "9879 MB"), (5 * 1024 ** 4, "5120 GB"), (3 * 1024 ** 5, "3072 TB"),
    (40 * 1024 ** 5, "40 PB"), (2 ** 63 - 1, "8192 PB"), (-10240, "-10 kB"), (-1, "-1 bytes"),
])
def test_size_pretty_is_pg_size_pretty(size: int, expected: str) -> None:
    assert st.size_pretty(size) == expected


def test_size_pretty_of_nothing() -> None:
    assert st.size_pretty(None) is None


@pytest.mark.parametrize("seconds, expected", [
    (0, "0 s"), (0.0, "0 s"), (0.04, "0 s"), (0.25, "0.2 s"), (2.5, "2.5 s"), (9.96, "10 s"), (12.4, "12 s"),
    (59.6, "1 min 00 s"), (245, "4 min 05 s"), (3600, "1 h 00 min"), (3 * 3600 + 7 * 60 + 29, "3 h 07 min"),
    (2 * 86400 + 4 * 3600, "2 d 04 h"), (-3, "0 s"),
])
def test_duration_pretty(seconds: float, expected: str) -> None:
    assert st.duration_pretty(seconds) == expected


# ---------------------------------------------------------------------------------------------------------------
# The state of a standby from both ends
# ---------------------------------------------------------------------------------------------------------------

def test_a_healthy_cluster() -> None:
    document = status(healthy())
    assert document["ok"] is True and document["problems"] == []
    assert [item["host"] for item in document["nodes"]] == [PRIMARY, S1, S2]
    head = entry(document, PRIMARY)
    assert (head["role"], head["state"], head["lsn"], head["lsn_kind"], head["timeline"]) == \
        ("primary", None, "0/5000060", "current", 1)
    one = entry(document, S1)
    assert (one["state"], one["state_source"], one["upstream_state"], one["receiver_status"]) == \
        ("streaming", "upstream", "streaming", "streaming")
    assert (one["lag_bytes"], one["lag"], one["replay_delay"], one["sync_state"]) == (0, "0 bytes", "0 s", "async")
    assert one["slot"]["wal_status"] == "reserved" and one["slot"]["present"] is True
    assert entry(document, S2)["sync_state"] == "sync"
    assert (document["primary"], document["timeline"], document["current_lsn"]) == (PRIMARY, 1, "0/5000060")


def test_catchup_comes_from_the_sender_and_is_not_a_problem() -> None:
    # Both look alike from the standby (its receiver streams); only the primary's WAL sender knows.
    nodes = healthy()
    nodes[PRIMARY]["server"]["replication"][0].update(state="catchup", replay_lag_bytes=397285184)
    nodes[S1]["server"].update(replay_lsn="0/1CFFFFF0", receive_lsn="0/2D000000", replay_delay_seconds=None)
    document = status(nodes)
    one = entry(document, S1)
    assert (one["state"], one["receiver_status"], one["lag_bytes"], one["lag"]) == \
        ("catchup", "streaming", 397285184, "379 MB")
    assert one["problems"] == [] and document["ok"] is True
    assert st.table_rows(document)[2][8] == "unknown"  # behind, no transaction replayed since it started


@pytest.mark.parametrize("state", ["startup", "backup", "stopping"])
def test_other_sender_states_are_shown_and_are_problems(state: str) -> None:
    nodes = healthy()
    nodes[PRIMARY]["server"]["replication"][0]["state"] = state
    one = entry(status(nodes), S1)
    assert one["state"] == state
    assert one["problems"] == [f"not streaming: its WAL sender is in state {state}"]


def test_a_stopped_standby_is_stopped_whatever_a_lingering_sender_says() -> None:
    nodes = healthy()
    nodes[S1] = node(None, standby=True, running=False)
    nodes[S1]["data_dir_facts"]["cluster_state"] = "shut down in recovery"
    nodes[PRIMARY]["server"]["slots"][0].update(active=False, active_pid=None, retained_bytes=2 * 1024 ** 2)
    document = status(nodes)
    one = entry(document, S1)
    assert (one["role"], one["state"], one["server_status"], one["lsn"], one["timeline"]) == \
        ("standby", "stopped", "stopped", None, 1)
    assert one["problems"] == ["server not running (pg_control: shut down in recovery), start it with "
                               "systemctl start postgresql@15-main"]
    # Its inactive slot is no second problem: the slot column says it, with the WAL it holds.
    assert st.slot_cell(one["slot"]) == f"{S1} (reserved, inactive, holds 2048 kB)"
    assert document["problems"] == [f"{S1}: {one['problems'][0]}"]


def test_a_crashed_standby_says_so() -> None:
    nodes = healthy()
    nodes[S1] = node(None, standby=True, running=False)  # pg_control still says in archive recovery
    assert "not shut down cleanly (pg_control: in archive recovery: it crashed or was killed)" in \
        entry(status(nodes), S1)["problems"][0]


def test_no_receiver_with_an_empty_primary_conninfo() -> None:
    nodes = healthy()
    nodes[PRIMARY]["server"]["replication"].pop(0)
    nodes[S1]["server"] = standby_server(status=None, conninfo="")
    one = entry(status(nodes), S1)
    assert (one["state"], one["state_source"]) == ("no receiver", "receiver")
    assert one["problems"] == ["no WAL receiver: primary_conninfo is empty"]


def test_no_receiver_with_a_conninfo_points_to_the_log() -> None:
    nodes = healthy()
    nodes[PRIMARY]["server"]["replication"].pop(0)
    nodes[S1]["server"] = standby_server(status=None)
    assert entry(status(nodes), S1)["problems"][0].startswith("no WAL receiver (it retries")


@pytest.mark.parametrize("receiver, problem", [
    ("waiting", "WAL receiver waiting from db1:5432: not streaming from the primary"),
    ("starting", "WAL receiver starting from db1:5432: not streaming from the primary"),
    ("streaming", "its WAL receiver streams from db1:5432, but the primary has no WAL sender for it"),
])
def test_disconnected_when_the_primary_has_no_sender(receiver: str, problem: str) -> None:
    nodes = healthy()
    nodes[PRIMARY]["server"]["replication"].pop(0)
    nodes[PRIMARY]["server"]["slots"][0].update(active=False, active_pid=None)
    nodes[S1]["server"] = standby_server(status=receiver, replay_lsn="0/4000000")
    one = entry(status(nodes), S1)
    assert (one["state"], one["receiver_status"]) == ("disconnected", receiver)
    assert one["problems"] == [problem]
    # Lag from both ends' positions when there is no sender row.
    assert one["lag_bytes"] == 0x1000060 and one["lag"] == "16 MB"


def test_without_the_primarys_facts_the_receiver_is_taken_at_its_word() -> None:
    nodes = healthy()
    nodes[PRIMARY] = {"failed": True, "msg": "boom", "module_stderr": "Error response from daemon: not running\n"}
    document = status(nodes)
    head, one = entry(document, PRIMARY), entry(document, S1)
    assert (head["role"], head["state"]) == ("unknown", "unknown")
    assert head["problems"] == ["facts could not be gathered: Error response from daemon: not running"]
    assert (one["state"], one["state_source"], one["slot"], one["lag_bytes"]) == \
        ("streaming", "receiver", None, None)
    assert one["problems"] == []
    nodes[S1]["server"]["wal_receiver"]["status"] = "waiting"
    assert entry(status(nodes), S1)["state"] == "disconnected"


def test_a_standby_without_facts_takes_the_senders_state_and_says_why() -> None:
    nodes = healthy()
    nodes[S1] = {"unreachable": True, "msg": "Failed to connect to the host via ssh: timeout\nmore"}
    one = entry(status(nodes), S1)
    assert (one["role"], one["state"], one["state_source"], one["lag_bytes"]) == \
        ("unknown", "streaming", "upstream", 0)
    assert one["problems"] == ["host unreachable: Failed to connect to the host via ssh: timeout"]
    nodes[PRIMARY]["server"]["replication"].pop(0)
    assert entry(status(nodes), S1)["state"] == "disconnected"


def test_psycopg_missing_is_a_problem_but_the_sender_still_speaks() -> None:
    nodes = healthy()
    nodes[S1] = node(None, standby=True)
    nodes[S1]["psycopg"] = False
    one = entry(status(nodes), S1)
    assert (one["state"], one["server_status"]) == ("streaming", "no live facts")
    assert one["problems"] == ["psycopg is not installed on the host (status installs nothing)"]


def test_a_host_left_out_of_the_run() -> None:
    nodes = healthy()
    del nodes[S2]
    document = status(nodes, play_hosts=[PRIMARY, S1])
    assert entry(document, S2)["problems"][0] == "no facts gathered (the host is not in this run: --limit?)"


def test_a_server_that_refuses_the_connection() -> None:
    nodes = healthy()
    nodes[S1]["server"] = {"reachable": False, "role": "unknown", "error": "FATAL:  the database system is starting up"}
    one = entry(status(nodes), S1)
    assert one["server_status"] == "not reachable" and one["state"] == "streaming"
    assert one["problems"] == ["server runs but refuses the connection: FATAL:  the database system is starting up"]


def test_no_data_directory() -> None:
    nodes = healthy()
    nodes[S1] = {"psycopg": True, "data_dir_state": "missing", "data_dir_facts": None, "running": False,
                 "server": None, "layout": {"data_dir": "/srv/pg"}}
    one = entry(status(nodes), S1)
    assert (one["role"], one["state"]) == ("-", "no cluster")
    assert one["problems"] == ["no data directory at /srv/pg (missing): not set up (run pgrepl.streaming.site)"]


# ---------------------------------------------------------------------------------------------------------------
# Other problems
# ---------------------------------------------------------------------------------------------------------------

def test_replay_paused_with_its_delay() -> None:
    nodes = healthy()
    nodes[S1]["server"] = standby_server(paused=True, replay_lsn="0/5000000", delay=31.4)
    nodes[PRIMARY]["server"]["replication"][0]["replay_lag_bytes"] = 0x60
    document = status(nodes)
    one = entry(document, S1)
    assert (one["state"], one["replay_delay_seconds"], one["replay_delay"], one["lag"]) == \
        ("streaming", 31.4, "31 s", "96 bytes")
    assert one["problems"] == ["replay paused (pg_wal_replay_resume() resumes it)"]


def test_roles_that_are_not_their_groups() -> None:
    nodes = healthy()
    nodes[PRIMARY]["server"].update(in_recovery=True, role="standby", replay_lsn="0/4000000")
    nodes[S1]["server"] = dict(primary_server([], []), current_lsn="0/6000000")
    document = status(nodes)
    assert entry(document, PRIMARY)["problems"] == ["in group primary but in recovery (a standby)"]
    assert entry(document, PRIMARY)["lsn_kind"] == "replay"
    one = entry(document, S1)
    assert one["role"] == "primary" and one["state"] == "-"
    assert one["problems"][0].startswith("in group standby but not in recovery")


def test_another_cluster_and_another_timeline() -> None:
    nodes = healthy()
    nodes[S1]["server"]["system_identifier"] = "1"
    assert entry(status(nodes), S1)["problems"][0].startswith("another cluster than the primary's")
    nodes = healthy()
    nodes[PRIMARY]["server"]["replication"].pop(0)
    nodes[S1]["server"] = standby_server(status="waiting", timeline=2)
    nodes[PRIMARY]["server"]["timeline"] = 3
    assert "on timeline 2, the primary on 3" in entry(status(nodes), S1)["problems"]
    # While it streams, a timeline behind is only the moment before the switch: no problem.
    nodes = healthy()
    nodes[S1]["server"]["timeline"] = 2
    assert entry(status(nodes), S1)["problems"] == []


def test_slot_problems() -> None:
    nodes = healthy()
    nodes[PRIMARY]["server"]["slots"][0]["wal_status"] = "lost"
    nodes[PRIMARY]["server"]["slots"][1].update(wal_status="unreserved", safe_wal_size=-1024)
    nodes[PRIMARY]["server"]["slots"].append(slot("leftover", active=False, retained=64 * 1024 ** 2))
    document = status(nodes)
    assert entry(document, S1)["problems"] == [
        f"slot {S1} lost: the WAL it held was removed (reseed the standby: pgrepl.streaming.reseed)"]
    assert entry(document, S2)["problems"][0].startswith(f"slot {S2} unreserved")
    assert entry(document, PRIMARY)["problems"] == [
        "slot leftover inactive, holds 64 MB of WAL and no standby of the inventory uses it"]


def test_a_lost_slot_on_a_standby_itself() -> None:
    nodes = healthy()
    nodes[S1]["server"]["slots"] = [slot("old", active=False, wal_status="lost"), slot("fine", active=False)]
    assert entry(status(nodes), S1)["problems"] == ["slot old on this standby lost"]


def test_missing_slot_and_a_stream_without_its_slot() -> None:
    nodes = healthy()
    nodes[PRIMARY]["server"]["slots"].pop(0)
    one = entry(status(nodes), S1)
    assert one["problems"] == [f"no slot {S1} on the primary"]
    assert st.slot_cell(one["slot"]) == f"{S1} (missing)"
    nodes = healthy()
    nodes[PRIMARY]["server"]["slots"][0].update(active=False, active_pid=None)
    assert entry(status(nodes), S1)["problems"] == [f"streams without its slot {S1} (primary_slot_name?)"]


def test_the_sender_holding_the_slot_wins_among_several() -> None:
    rows = [sender(S1, state="startup", pid=7), sender(S1, state="streaming", pid=8), sender(S1, "catchup", pid=9)]
    assert st.pick_sender(rows, S1, slot(S1, pid=9))["pid"] == 9
    assert st.pick_sender(rows, S1, None)["pid"] == 8
    assert st.pick_sender(rows[:1], S1, None)["pid"] == 7
    assert st.pick_sender(rows, "other", None) is None


def test_long_inventory_names_match_the_cut_application_name() -> None:
    host = "s" * 70
    nodes = healthy()
    nodes[PRIMARY]["server"]["replication"][0]["application_name"] = host[:63]
    nodes[host] = nodes.pop(S1)
    document = st.build_status([PRIMARY], [host, S2], nodes, {host: S1, S2: S2})
    assert entry(document, host)["state"] == "streaming"


def test_no_primary_and_two_primaries() -> None:
    document = st.build_status([], [S1], {S1: healthy()[S1]}, {S1: S1})
    assert document["cluster_problems"] == ["the inventory has no host in group primary"]
    assert document["ok"] is False and document["primary"] is None
    assert entry(document, S1)["state"] == "streaming"  # the receiver's word: no primary to ask
    nodes = healthy()
    nodes[S2] = copy.deepcopy(nodes[PRIMARY])
    document = st.build_status([PRIMARY, S2], [S1], nodes, {S1: S1})
    assert entry(document, S2)["problems"][0] == f"group primary has 2 hosts; {PRIMARY} is taken as the primary"


# ---------------------------------------------------------------------------------------------------------------
# Table and JSON
# ---------------------------------------------------------------------------------------------------------------

def test_the_table_reads_at_a_glance() -> None:
    nodes = healthy()
    nodes[S2] = node(None, standby=True, running=False)
    nodes[S2]["data_dir_facts"]["cluster_state"] = "shut down in recovery"
    nodes[PRIMARY]["server"]["replication"].pop(1)
    nodes[PRIMARY]["server"]["slots"][1].update(active=False, active_pid=None, safe_wal_size=10754195360)
    lines = st.render_table(status(nodes))
    assert lines[0].split() == ["host", "role", "state", "sync", "tl", "lsn", "lag_bytes", "lag", "delay", "slot",
                                "(wal_status)", "problems"]
    assert lines[1].split() == [PRIMARY, "primary", "-", "-", "1", "0/5000060", "-", "-", "-", "-", "ok"]
    assert lines[2].split() == [S1, "standby", "streaming", "async", "1", "0/5000060", "0", "0", "bytes", "0", "s",
                                S1, "(reserved)", "ok"]
    assert lines[3].split()[:3] == [S2, "standby", "stopped"]
    assert "db3 (reserved, inactive, holds 0 bytes, 10 GB safe)  server not running" in lines[3]
    # Columns line up: every row has its state where the header has it, numbers end where their header ends.
    state_at = lines[0].index("state")
    assert [line[state_at:].split()[0] for line in lines[1:]] == ["-", "streaming", "stopped"]
    lag_end = lines[0].index("lag_bytes") + len("lag_bytes")
    assert lines[2][:lag_end].endswith(" 0") and lines[1][:lag_end].endswith(" -")
    # Plain text: no quoting, escapes or list punctuation around the rows.
    for line in lines:
        assert not line.startswith(('"', "'", "[")) and not line.endswith((",", '"')) and "\\" not in line


def test_json_is_the_same_document_and_one_object() -> None:
    document = status(healthy())
    text = st.render_json(document)
    assert json.loads(text) == json.loads(json.dumps(document))
    lines = text.splitlines()
    assert lines[0] == "{" and lines[-1] == "}"
    assert all(line.startswith("  ") for line in lines[1:-1])  # so sed -n '/^{$/,/^}$/p' takes exactly it


def test_strict_message_is_one_line() -> None:
    nodes = healthy()
    nodes[S1]["server"] = standby_server(paused=True)
    nodes[S2]["server"] = standby_server(paused=True)
    message = st.strict_message(status(nodes))
    assert "\n" not in message
    assert message.startswith("pgrepl_status_strict: 2 problems: db2: replay paused")


# ---------------------------------------------------------------------------------------------------------------
# The action's own helpers
# ---------------------------------------------------------------------------------------------------------------

def test_host_variables_become_plain_data() -> None:
    from collections import OrderedDict

    from ansible_collections.pgrepl.streaming.plugins.action.cluster_status import plain

    class Text(str):
        pass

    value = OrderedDict(a=(1, Text("x")), b={"c": [True, None, 1.5]})
    result = plain(value)
    assert result == {"a": [1, "x"], "b": {"c": [True, None, 1.5]}}
    assert result.__class__ is dict and result["a"][1].__class__ is str  # not the subclasses
    json.dumps(result)


@pytest.mark.parametrize("name, machine", [
    ("ansible.posix.json", True), ("ansible.posix.jsonl", True), ("json", True), ("default", False),
    ("ansible.builtin.default", False), ("community.general.yaml", False), ("ansible.builtin.minimal", False),
])
def test_a_json_stdout_callback_gets_no_text(monkeypatch: pytest.MonkeyPatch, name: str, machine: bool) -> None:
    from ansible_collections.pgrepl.streaming.plugins.action import cluster_status

    monkeypatch.setattr(cluster_status.C.config, "get_config_value", lambda key: name)
    assert cluster_status.machine_readable_callback() is machine
