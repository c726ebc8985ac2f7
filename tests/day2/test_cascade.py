# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Cascading standbys (pgrepl_upstream) through site, a switchover and a failover (PostgreSQL 15, one primary and
four standbys): every cascade streams from its upstream through its slot there, and a row written on the primary
reaches every node, after each operation.

- site: n2 streams from n1; n3 names the primary n0 (a direct standby while n0 is primary); n4, a direct standby
  at first, is then made a cascade of n3 by a second site run, which drops its slot on the primary.
- switchover to n1 (the upstream of n2): n2 keeps streaming from n1, its timeline following; the old primary n0
  becomes a standby of n1 and keeps feeding n3 (which named it), n4 still streams from n3.
- reseed of n4 (n1 -> n0 -> n3 -> n4): copied from n3 through its slot there, none made on the primary;
  a rejoin of n4 has nothing to do (it streams from its upstream); remove_standby of n3 (it feeds n4) is refused
  naming n4, even with pgrepl_force, and nothing changes.
- failover to n4 with the primary n1 and the standby n0 dead: n2, whose upstream was the dead old primary, is
  repointed to the new primary n4 with its slot created there; n3, whose upstream n0 died, is repointed to the
  primary too (the next node up n0's chain). n4's own pgrepl_upstream is ignored while it is primary.
- rejoin of n0: it streams from n4 again; n3 keeps streaming from n4 until a site run repoints it.
"""

from __future__ import annotations

import time

import pytest
from d2_cluster import CLIENT_IMAGE, ROOT, DayTwoCluster, PlaybookRun
from d2_cluster import TEST_PREFIX as PREFIX
from d2_docker import dexec, remove_prefixed

TAG = "cascade"


def ok(run: PlaybookRun, what: str) -> PlaybookRun:
    assert run.returncode == 0, f"{what} failed:\n{run.describe()}"
    return run


def slot(node: str) -> str:
    return node.replace("-", "_")  # the slot of an inventory name of letters, digits and dashes


def wait_for(what: str, probe, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


def assert_tree(cluster: DayTwoCluster, primary: str, upstream_of: dict[str, str], table: str) -> None:
    """Each standby streams from its upstream (pg_stat_wal_receiver.sender_host), through its slot there, active;
    a cascade has no slot on the primary; a row written on the primary arrives on every standby."""
    for standby, upstream in upstream_of.items():
        cluster.wait_streaming(upstream, [standby])
        query = ("SELECT count(*) FROM pg_replication_slots WHERE active AND slot_name = "  # noqa: S608
                 f"'{slot(standby)}'")
        wait_for(f"{standby}'s slot active on {upstream}", lambda u=upstream, q=query: cluster.psql(u, q) == "1")
        if upstream != primary:
            assert cluster.psql(upstream, "SELECT pg_is_in_recovery()") == "t"
            gone = ("SELECT count(*) FROM pg_replication_slots WHERE slot_name = "  # noqa: S608
                    f"'{slot(standby)}'")
            assert cluster.psql(primary, gone) == "0", f"{standby} still has a slot on the primary {primary}"
    marker = str(time.time_ns())
    cluster.psql(primary, f"CREATE TABLE IF NOT EXISTS {table} (marker text)")
    cluster.psql(primary, f"INSERT INTO {table} VALUES ('{marker}')")  # noqa: S608 (digits we made)
    for standby in upstream_of:
        wait_for(f"the row on {standby}", lambda s=standby: arrived(cluster, s, table, marker))


def arrived(cluster: DayTwoCluster, node: str, table: str, marker: str) -> bool:
    if cluster.psql(node, f"SELECT to_regclass('{table}') IS NOT NULL") != "t":
        return False
    return cluster.psql(node, f"SELECT count(*) FROM {table} WHERE marker = '{marker}'") == "1"  # noqa: S608


def test_cascades_survive_switchover_and_failover(images: dict[str, str]) -> None:
    workdir = ROOT / ".build" / "day2" / TAG
    names = [f"{PREFIX}{TAG}-n{index}" for index in range(5)]
    n0, n1, n2, n3, n4 = names
    cluster = DayTwoCluster(PREFIX, TAG, images["pg15"], CLIENT_IMAGE, workdir, standbys=4, sync=(),
                            host_vars={2: {"pgrepl_upstream": n1}, 3: {"pgrepl_upstream": n0}})
    assert cluster.names == names
    try:
        cluster.start()
        cluster.write_inventory()
        ok(cluster.playbook("site", label="build"), "site")
        assert_tree(cluster, n0, {n1: n0, n2: n1, n3: n0, n4: n0}, "after_site")
        # n4, a direct standby, is made a cascade of n3: site repoints it and drops its slot on the primary once it
        # streams from n3 (left there, unused, it would retain WAL for ever; assert_tree checks it is gone).
        cluster.extra_host_vars[4] = {"pgrepl_upstream": n3}
        cluster.write_inventory()
        ok(cluster.playbook("site", label="to-cascade"), "site making n4 a cascade")
        assert_tree(cluster, n0, {n1: n0, n2: n1, n3: n0, n4: n3}, "after_site")
        status = ok(cluster.playbook("status", "pgrepl_status_strict=true"), "status")
        assert f"{n2} <- {n1}: streaming, slot {slot(n2)} on {n1}" in status.output, status.output[-3000:]
        assert f"{n4} <- {n3}: streaming, slot {slot(n4)} on {n3}" in status.output

        # Switchover to the upstream of a cascade.
        timeline = cluster.psql(n2, "SELECT received_tli FROM pg_stat_wal_receiver")
        ok(cluster.playbook("switchover", f"pgrepl_target={n1}"), "switchover")
        assert cluster.groups() == (n1, [n0, n2, n3, n4])
        assert_tree(cluster, n1, {n0: n1, n2: n1, n3: n0, n4: n3}, "after_switchover")
        assert int(cluster.psql(n2, "SELECT received_tli FROM pg_stat_wal_receiver")) > int(timeline)
        # The old primary kept the slot of the cascade that named it, not those of the others.
        assert cluster.psql(n0, "SELECT string_agg(slot_name, ',' ORDER BY slot_name) FROM pg_replication_slots") \
            == slot(n3)
        ok(cluster.playbook("status", "pgrepl_status_strict=true"), "status after the switchover")

        # Re-seed of a cascade two levels down (n1 -> n0 -> n3 -> n4): copied from its upstream n3, through its
        # slot there (kept), none created on the primary n1.
        moved = f"ls -d {cluster.data_dir}.pgrepl-moved-* | wc -l"  # site moved the package cluster aside
        before = int(dexec(n4, "sh", "-c", moved))
        reseed = ok(cluster.playbook("reseed", f"pgrepl_host={n4}"), "reseed of a cascade")
        assert f"re-seed {n4} from {n3} (its pgrepl_upstream; the primary is {n1})" in reseed.output, reseed.tail()
        assert f"1. on {n3}: slot {slot(n4)} kept" in reseed.output, reseed.tail()
        assert int(dexec(n4, "sh", "-c", moved)) == before + 1  # a new copy, the old one moved aside
        assert_tree(cluster, n1, {n3: n0, n4: n3}, "after_reseed")
        assert cluster.psql(n1, "SELECT count(*) FROM pg_replication_slots WHERE slot_name = "  # noqa: S608
                                f"'{slot(n4)}'") == "0"

        # A rejoin of a cascade that streams from its upstream on the primary's timeline has nothing to do.
        started = cluster.psql(n4, "SELECT pg_postmaster_start_time()")
        rejoin = ok(cluster.playbook("rejoin", f"pgrepl_host={n4}"), "rejoin of a streaming cascade")
        assert f"{n4} already streams from {n3} on its timeline: nothing to do" in rejoin.output, rejoin.tail()
        assert cluster.psql(n4, "SELECT pg_postmaster_start_time()") == started
        assert cluster.psql(n1, "SELECT count(*) FROM pg_replication_slots WHERE slot_name = "  # noqa: S608
                                f"'{slot(n4)}'") == "0"

        # remove_standby of a node that feeds a cascade is refused, naming it; nothing changes.
        refused = cluster.playbook("remove_standby", f"pgrepl_host={n3}", "pgrepl_force=true")
        assert refused.returncode != 0, refused.describe()
        assert (f"{n3} feeds the cascading standbys {n4} (their pgrepl_upstream is {n3}): removing it would leave "
                "them without an upstream") in refused.output, refused.tail()
        assert cluster.groups() == (n1, [n0, n2, n3, n4])
        assert_tree(cluster, n1, {n3: n0, n4: n3}, "after_refused_remove")

        # Failover: the primary n1 and the standby n0 (the upstream of n3) die; n4 is promoted.
        cluster.wait_replayed([n2, n3, n4], cluster.wal_position(n1))
        cluster.kill_server(n1)
        cluster.kill_server(n0)
        cluster.set_groups(n1, [n0, n2, n3, n4], unreachable=(n1, n0))
        ok(cluster.playbook("failover", f"pgrepl_target={n4}", f"pgrepl_confirm_dead={n1}"), "failover")
        assert cluster.psql(n4, "SELECT pg_is_in_recovery()") == "f"
        assert_tree(cluster, n4, {n2: n4, n3: n4}, "after_failover")
        # The promoted leaf had no slot: both followers' are created there (n3 dropped n4's, now stale).
        slots = cluster.psql(n4, "SELECT string_agg(slot_name, ',' ORDER BY slot_name) FROM pg_replication_slots")
        assert slots == ",".join(sorted([slot(n2), slot(n3)])), slots
        assert cluster.psql(n3, "SELECT count(*) FROM pg_replication_slots") == "0"

        # A rejoin of n0, the dead upstream of n3, brings it back as a standby of n4; n3 stays where the failover
        # put it (the inventory's pgrepl_upstream moves it back at the next site run, not the rejoin).
        cluster.set_groups(n4, [n0, n1, n2, n3])
        ok(cluster.playbook("rejoin", f"pgrepl_host={n0}"), "rejoin of the old upstream")
        cluster.wait_streaming(n4, [n0, n2, n3])
        # n0 still has the slot it kept for n3 (not rewound: it never diverged), unused until site moves n3 back.
        assert cluster.psql(n0, "SELECT string_agg(slot_name || ' ' || active, ',') FROM pg_replication_slots") \
            == f"{slot(n3)} false"
    finally:
        cluster.destroy()
        remove_prefixed(f"{PREFIX}{TAG}")


@pytest.fixture(autouse=True)
def _no_leftovers() -> None:
    remove_prefixed(f"{PREFIX}{TAG}")
