# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The status of a cluster with a cascading standby (pgrepl_upstream): its state, slot and lag from its upstream,
the tree below the table, and the problems of a cascade."""

from __future__ import annotations

from typing import Any

from ansible_collections.pgrepl.streaming.plugins.module_utils import _status as st

from .test_status import PRIMARY, S1, S2, node, primary_server, sender, slot, standby_server


def cascaded(db3_state: str = "streaming", db3_slot_on_db2: bool = True,
             stale_on_primary: bool = False) -> dict[str, Any]:
    """db1 -> db2 -> db3: db2's pg_stat_replication lists db3, and db2 keeps its slot."""
    upstream = standby_server(replay_lsn="0/5000060")
    upstream["replication"] = [sender(S2, state=db3_state, pid=201, lag=16)] if db3_state else []
    upstream["slots"] = [slot(S2, pid=201, active=bool(db3_state))] if db3_slot_on_db2 else []
    primary_slots = [slot(S1, pid=101)] + ([slot(S2, active=False, retained=8192)] if stale_on_primary else [])
    return {
        PRIMARY: node(primary_server([sender(S1, pid=101)], primary_slots, current_lsn="0/5000100"), standby=False),
        S1: node(upstream, standby=True),
        S2: node(standby_server(replay_lsn="0/5000000", status="streaming" if db3_state else None), standby=True),
    }


def status(nodes: dict[str, Any]) -> dict[str, Any]:
    return st.build_status([PRIMARY], [S1, S2], nodes, {S1: S1, S2: S2}, upstreams={S2: S1})


def by_host(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entry["host"]: entry for entry in document["nodes"]}


def test_a_cascade_is_read_from_its_upstream() -> None:
    document = status(cascaded())
    assert document["ok"], document["problems"]
    db3 = by_host(document)[S2]
    assert (db3["upstream"], db3["level"], db3["state"], db3["state_source"]) == (S1, 2, "streaming", "upstream")
    assert db3["slot"]["present"] and db3["slot"]["active"]
    # Its lag from its WAL sender on the upstream.
    assert db3["lag_bytes"] == 16
    db2 = by_host(document)[S1]
    assert (db2["upstream"], db2["level"]) == (None, 1)


def test_the_tree_is_printed_below_the_table_only_with_a_cascade() -> None:
    assert st.tree_lines(status(cascaded())) == [
        "replication tree (pgrepl_upstream):",
        f"{PRIMARY} (primary)",
        f"  {S1} <- {PRIMARY}: streaming, slot {S1} on {PRIMARY}",
        f"    {S2} <- {S1}: streaming, slot {S2} on {S1}",
    ]
    plain = st.build_status([PRIMARY], [S1], {PRIMARY: cascaded()[PRIMARY], S1: cascaded()[S1]}, {S1: S1})
    assert st.tree_lines(plain) == []


def test_a_missing_slot_and_no_sender_are_said_of_the_upstream() -> None:
    document = status(cascaded(db3_state="", db3_slot_on_db2=False))
    problems = by_host(document)[S2]["problems"]
    assert f"no slot {S2} on its upstream {S1}" in problems
    assert any("no WAL receiver" in problem for problem in problems), problems


def test_the_cascades_old_slot_on_the_primary_is_a_problem() -> None:
    document = status(cascaded(stale_on_primary=True))
    assert f"{PRIMARY}: slot {S2} inactive, holds 8192 bytes of WAL and no standby of the inventory uses it" \
        in document["problems"]


def test_a_bad_upstream_is_a_cluster_problem() -> None:
    document = st.build_status([PRIMARY], [S1, S2], cascaded(), {S1: S1, S2: S2}, upstreams={S2: "db9"})
    assert any("pgrepl_upstream: 'db9' is not a node of this cluster" in problem
               for problem in document["cluster_problems"])
