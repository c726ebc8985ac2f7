# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Another cluster in a standby's data directory: a fresh package cluster is replaced, one that holds data or is
a standby of another primary only with the user's consent (replace_existing_data)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ansible_collections.pgrepl.streaming.plugins.module_utils import _clone
from ansible_collections.pgrepl.streaming.plugins.module_utils._clone import (
    STATE_OTHER_CLUSTER,
    STATE_STANDBY,
    Decision,
    DirFacts,
    DirState,
    cluster_holdings,
    decide,
)
from ansible_collections.pgrepl.streaming.plugins.module_utils._errors import PgreplError


def fresh_cluster(root: Path, template0: int = 4, postgres: int = 5) -> Path:
    """The files initdb makes that the decision reads: base/<oid> with catalog relfilenodes below 16384."""
    for oid in (1, template0, postgres):
        db = root / "base" / str(oid)
        db.mkdir(parents=True)
        for name in ("1259", "1259_fsm", "1259_vm", "2619", "2619.1", "13418", "PG_VERSION", "pg_filenode.map",
                     "pg_internal.init"):
            (db / name).write_bytes(b"")
    for name in ("pg_tblspc", "pg_replslot", "global"):
        (root / name).mkdir()
    (root / "PG_VERSION").write_text("15\n", encoding="utf-8")
    return root


def test_a_fresh_package_cluster_holds_nothing(tmp_path: Path) -> None:
    assert cluster_holdings(str(fresh_cluster(tmp_path))) == []


def test_a_fresh_cluster_before_postgresql_15_too(tmp_path: Path) -> None:
    # template0 and postgres got OIDs like 13394 and 13395 before PostgreSQL 15: still initdb's, below 16384.
    assert cluster_holdings(str(fresh_cluster(tmp_path, 13394, 13395))) == []


def test_a_temporary_relation_file_is_no_user_data(tmp_path: Path) -> None:
    root = fresh_cluster(tmp_path)
    (root / "base" / "5" / "t3_16400").write_bytes(b"")
    assert cluster_holdings(str(root)) == []


def test_a_user_database_is_held(tmp_path: Path) -> None:
    root = fresh_cluster(tmp_path)
    (root / "base" / "16384").mkdir()
    (root / "base" / "16401").mkdir()
    assert cluster_holdings(str(root)) == ["2 database(s) besides template0, template1 and postgres"]


@pytest.mark.parametrize("name", ["16385", "16385_fsm", "16390.2", "24576_init"])
def test_a_table_in_postgres_is_held(tmp_path: Path, name: str) -> None:
    root = fresh_cluster(tmp_path)
    (root / "base" / "5" / name).write_bytes(b"")
    assert cluster_holdings(str(root)) == ["tables or other relations created in template1 or postgres"]


def test_tablespaces_slots_and_a_standbys_signal_are_held(tmp_path: Path) -> None:
    root = fresh_cluster(tmp_path)
    (root / "pg_tblspc" / "16500").symlink_to(tmp_path)
    (root / "pg_replslot" / "db3").mkdir()
    (root / "standby.signal").write_bytes(b"")
    held = cluster_holdings(str(root))
    assert held == ["1 tablespace(s) (pg_tblspc)", "replication slot(s) db3 (standbys of its own stream from it)",
                    "standby.signal: it is a standby (or in recovery) of another primary"]


def test_an_unreadable_or_missing_layout_holds_nothing(tmp_path: Path) -> None:
    assert cluster_holdings(str(tmp_path / "missing")) == []


OTHER = DirState(STATE_OTHER_CLUSTER, "7000000000000000001", "15")


def facts(tmp_path: Path, holdings: list[str], running: bool = False) -> DirFacts:
    return DirFacts(path=str(tmp_path / "main"), exists=True, is_dir=True, entries=["PG_VERSION"], pg_version="15",
                    has_pg_control=True, postmaster_running=running, postmaster_pid=4242 if running else None,
                    holdings=holdings)


def test_a_fresh_other_cluster_is_moved_aside_without_consent(tmp_path: Path) -> None:
    assert decide(OTHER, facts(tmp_path, []), True, False, ignore_running=True) == \
        Decision("clone", move_old_aside=True)


def test_a_cluster_with_data_is_refused_without_consent_naming_what_it_holds(tmp_path: Path) -> None:
    held = ["1 database(s) besides template0, template1 and postgres"]
    with pytest.raises(PgreplError) as refused:
        decide(OTHER, facts(tmp_path, held, running=True), True, False, ignore_running=True)
    message = str(refused.value)
    assert repr(str(tmp_path / "main")) in message and "system identifier 7000000000000000001" in message
    assert held[0] in message and "its server is running (pid 4242)" in message
    assert "replace_existing_data: true" in message and "pgrepl_replace_existing_data" in message
    assert "Nothing was stopped or changed" in message and "never deleted" in message


def test_consent_replaces_it_moved_aside(tmp_path: Path) -> None:
    held = ["standby.signal: it is a standby (or in recovery) of another primary"]
    assert decide(OTHER, facts(tmp_path, held, running=True), True, False, ignore_running=True,
                  replace_existing_data=True) == Decision("clone", move_old_aside=True)


def test_a_running_server_without_stop_service_is_still_refused_first(tmp_path: Path) -> None:
    with pytest.raises(PgreplError, match="stop the server first"):
        decide(OTHER, facts(tmp_path, ["x"], running=True), True, False, replace_existing_data=True)


def test_a_copy_of_this_primary_needs_no_consent(tmp_path: Path) -> None:
    # A standby of this very primary (reseed: force_reclone) is this cluster, not another one.
    state = DirState(STATE_STANDBY, "7000000000000000002", "15")
    held = ["standby.signal: it is a standby (or in recovery) of another primary"]
    assert decide(state, facts(tmp_path, held), True, True) == Decision("clone", move_old_aside=True)
    assert decide(state, facts(tmp_path, held), True, False) == Decision("kept")


def test_the_option_is_validated(tmp_path: Path) -> None:
    base = {"data_dir": str(tmp_path / "main"), "primary_host": "db1", "passfile": "/p"}
    assert _clone.request_from_params(base).replace_existing_data is False
    assert _clone.request_from_params({**base, "replace_existing_data": True}).replace_existing_data is True
    with pytest.raises(PgreplError, match="replace_existing_data"):
        _clone.request_from_params({**base, "replace_existing_data": "maybe"})
