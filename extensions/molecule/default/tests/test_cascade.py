"""Cascading standbys (pgrepl_upstream), as the scenario's inventory asks for them: the pg17 scenario makes standby1
stream from standby2; the other scenarios have none, and this file proves that every standby then streams from the
primary.

Runs after test_archive.py (which stops standby2 for a while: the cascade reconnects by itself) and before
test_default.py (file order); it changes nothing it does not put back.
"""

from __future__ import annotations

import time


def upstream_of(standby, primary, nodes):
    name = standby.var("pgrepl_upstream", "")
    return nodes[name] if name and name != primary.name else primary


def addresses(node) -> set[str]:
    return set(node.host.run("hostname -I").stdout.split())


def slot_of(node) -> str:
    return node.name.replace("-", "_")  # the inventory name's slot: letters, digits and _ only


def receiver(standby) -> tuple[str, str]:
    return tuple(standby.psql("SELECT status || '|' || coalesce(sender_host, '') FROM pg_stat_wal_receiver")
                 .split("|"))


def test_each_standby_streams_from_its_upstream_through_its_slot_there(nodes, primary, standbys, wait_for) -> None:
    """The WAL receiver's sender is the upstream (the primary for a direct standby), whose pg_stat_replication
    lists the standby streaming through its slot, active there; a cascade has no slot on the primary."""
    primary_slots = primary.psql("SELECT slot_name FROM pg_replication_slots").split()
    for standby in standbys:
        upstream = upstream_of(standby, primary, nodes)
        _status, sender = wait_for(
            f"{standby.name} streaming", lambda s=standby: receiver(s) if receiver(s)[0] == "streaming" else None)
        assert sender in addresses(upstream), (standby.name, sender, upstream.name)
        query = ("SELECT r.state || '|' || s.active FROM pg_stat_replication AS r "  # noqa: S608 (our names)
                 "JOIN pg_replication_slots AS s ON s.active_pid = r.pid "
                 f"WHERE r.application_name = '{standby.name}' AND s.slot_name = '{slot_of(standby)}'")
        wait_for(f"{standby.name}'s slot active on {upstream.name}",
                 lambda u=upstream, q=query: u.psql(q) == "streaming|true")
        if upstream is not primary:
            assert upstream.psql("SELECT pg_is_in_recovery()") == "t"
            assert slot_of(standby) not in primary_slots, primary_slots


def test_a_row_written_on_the_primary_arrives_on_every_cascade(nodes, primary, standbys, wait_for) -> None:
    cascades = [s for s in standbys if upstream_of(s, primary, nodes) is not primary]
    marker = str(time.time_ns())
    primary.psql("CREATE TABLE IF NOT EXISTS verify_cascade (marker text)")
    primary.psql(f"INSERT INTO verify_cascade VALUES ('{marker}')")  # noqa: S608 (digits we made)
    for standby in cascades:
        query = f"SELECT count(*) FROM verify_cascade WHERE marker = '{marker}'"  # noqa: S608 (digits)
        wait_for(f"the row on {standby.name}",
                 lambda s=standby, q=query: s.psql("SELECT to_regclass('verify_cascade') IS NOT NULL") == "t"
                 and s.psql(q) == "1")


def test_no_cascade_is_named_synchronous(nodes, primary, standbys) -> None:
    names = primary.psql("SHOW synchronous_standby_names")
    for standby in standbys:
        if upstream_of(standby, primary, nodes) is not primary:
            assert standby.name not in names, names


def test_status_shows_the_tree(playbook, nodes, primary, standbys) -> None:
    cascades = [s for s in standbys if upstream_of(s, primary, nodes) is not primary]
    run = playbook("status", "pgrepl_status_strict=true")
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    if not cascades:
        assert "replication tree" not in run.stdout
        return
    for standby in cascades:
        upstream = upstream_of(standby, primary, nodes)
        assert f"{standby.name} <- {upstream.name}: streaming, slot {slot_of(standby)} on {upstream.name}" \
            in run.stdout, run.stdout[-3000:]


def test_a_cascade_marked_synchronous_is_refused_and_nothing_changes(playbook, nodes, primary, standbys) -> None:
    """pgrepl_sync for every standby (an extra variable) with a cascade among them: site refuses in its preflight,
    saying why, and the primary's synchronous_standby_names stays as it was."""
    cascades = [s for s in standbys if upstream_of(s, primary, nodes) is not primary]
    if not cascades:
        return
    before = primary.psql("SHOW synchronous_standby_names")
    run = playbook("site", "pgrepl_sync=true")
    assert run.returncode != 0
    said = run.stdout + run.stderr  # the failed task's message goes to stderr
    for standby in cascades:
        assert f"{standby.name}: pgrepl_sync: true with pgrepl_upstream: " in said, said[-3000:]
    assert "synchronous replication counts the acknowledgements of the primary's direct standbys only" in said
    assert primary.psql("SHOW synchronous_standby_names") == before
