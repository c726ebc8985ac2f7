# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Many clusters per inventory (pgrepl_cluster_id, docs/runbooks.md): one inventory, cluster a (n0 primary, n1
standby) and cluster b (n2 primary, n3 standby), both primaries in group primary. site builds both, each standby
streaming from its own primary over TLS with its cluster's own CA (pgrepl_tls_ca_dir per cluster: the role makes
both), slots, pg_hba and passfile lines only within its cluster, check mode first predicting and changing nothing;
status with
-e pgrepl_clusters=b shows b alone; a selector naming no cluster is refused; a switchover of a leaves b's nodes
untouched (postmasters not restarted, configuration files as they were, every write to b during it kept) and the
rewritten inventory file holds b's entries as they were; site again changes nothing. PostgreSQL 15."""

from __future__ import annotations

import re
import threading
import time

import yaml
from d2_cluster import CLIENT_IMAGE, REPLICATION_PASSWORD, ROOT, DayTwoCluster, PlaybookRun
from d2_cluster import TEST_PREFIX as PREFIX
from d2_docker import dexec

TAG = "clusters"


def ok(run: PlaybookRun, what: str) -> PlaybookRun:
    assert run.returncode == 0, f"{what} failed:\n{run.describe()}"
    return run


def recap(run: PlaybookRun) -> dict[str, dict[str, int]]:
    """PLAY RECAP: host -> its counters."""
    hosts = {}
    for line in run.output.split("PLAY RECAP", 1)[-1].splitlines():
        match = re.match(r"^(\S+)\s+:\s+(.*)$", line.strip())
        if match:
            hosts[match.group(1)] = {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", match.group(2))}
    return hosts


def table_hosts(run: PlaybookRun, names: list[str]) -> list[str]:
    """The hosts that have a row in the status table(s) of the run's output."""
    return [name for name in names if re.search(rf"^{re.escape(name)}\s+(primary|standby)\b", run.output, re.M)]


def row_at(run: PlaybookRun, name: str) -> int:
    """Where the host's row of a status table starts in the run's output."""
    match = re.search(rf"^{re.escape(name)}\s+(primary|standby)\b", run.output, re.M)
    assert match, name
    return match.start()


def write_groups(cluster: DayTwoCluster, primaries: list[str], standbys: list[str],
                 entries: dict[str, dict[str, str]]) -> None:
    """groups.yml with both clusters' primaries in group primary; `entries`: a host's value there (None else)."""
    groups = {"all": {"children": {"primary": {"hosts": {host: entries.get(host) for host in primaries}},
                                   "standby": {"hosts": {host: entries.get(host) for host in standbys}}}}}
    cluster.groups_file.write_text(yaml.safe_dump(groups, default_flow_style=False, sort_keys=False))


def read_groups(cluster: DayTwoCluster) -> dict[str, dict[str, object]]:
    """Group -> its entries (host -> value), in the file's order."""
    children = yaml.safe_load(cluster.groups_file.read_text())["all"]["children"]
    return {group: dict((children.get(group) or {}).get("hosts") or {}) for group in ("primary", "standby")}


def slots(cluster: DayTwoCluster, node: str) -> list[str]:
    return cluster.psql(node, "SELECT slot_name FROM pg_replication_slots ORDER BY 1").split()


def sender(cluster: DayTwoCluster, node: str) -> str:
    return cluster.psql(node, "SELECT sender_host FROM pg_stat_wal_receiver WHERE status = 'streaming'")


def untouched_marks(cluster: DayTwoCluster, node: str) -> dict[str, str]:
    """What a run that touched the node would change: its postmaster's start, its files' content."""
    return {"started": cluster.psql(node, "SELECT pg_postmaster_start_time()"),
            "auto.conf": dexec(node, "cat", f"{cluster.data_dir}/postgresql.auto.conf"),
            "pg_hba": dexec(node, "cat", f"{cluster.conf_dir}/pg_hba.conf"),
            "pgpass": dexec(node, "sh", "-c", "cat ~postgres/.pgpass 2>/dev/null || true"),
            "recovery": cluster.psql(node, "SELECT pg_is_in_recovery()")}


class Writer(threading.Thread):
    """Inserts a row into cluster b's primary every 50 ms until stopped; every insert must succeed."""

    def __init__(self, cluster: DayTwoCluster, node: str) -> None:
        super().__init__(daemon=True)
        self.cluster, self.node = cluster, node
        self.stop = threading.Event()
        self.written = 0
        self.errors: list[str] = []

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.cluster.psql(self.node, "INSERT INTO b_writes SELECT coalesce(max(id), 0) + 1 FROM b_writes",
                                  timeout=30)
                self.written += 1
            except Exception as exc:  # noqa: BLE001 - any failure is the finding
                self.errors.append(str(exc)[:300])
            time.sleep(0.05)


def test_two_clusters_in_one_inventory(images: dict[str, str]) -> None:
    workdir = ROOT / ".build" / "day2" / TAG
    ids = {0: "a", 1: "a", 2: "b", 3: "b"}
    # Each cluster replicates over TLS with a CA of its own (the role makes both, each in its cluster's directory).
    ca_dirs = {cid: workdir / f"ca-{cid}" for cid in ("a", "b")}
    cluster = DayTwoCluster(PREFIX, TAG, images["pg15"], CLIENT_IMAGE, workdir, standbys=3, sync=(),
                            host_vars={index: {"pgrepl_cluster_id": cid, "pgrepl_tls": True,
                                               "pgrepl_tls_ca_dir": str(ca_dirs[cid])}
                                       for index, cid in ids.items()})
    n0, n1, n2, n3 = cluster.names
    try:
        cluster.start()
        cluster.write_inventory()
        # b's entries carry a value (a host variable no role reads): the rewrite must keep it.
        b_entries = {n2: {"pgrepl_test_entry": "b primary"}, n3: {"pgrepl_test_entry": "b standby"}}
        write_groups(cluster, [n0, n2], [n1, n3], b_entries)

        # A selector that names no cluster: refused naming it, before any host is asked anything.
        refused = cluster.playbook("site", "pgrepl_clusters=a,zz", label="bad-selector")
        assert refused.returncode != 0
        assert "pgrepl_clusters: 'zz' names no cluster of the inventory (its clusters, by pgrepl_cluster_id: a, b)" \
            in refused.output, refused.tail()
        assert dexec(n0, "sh", "-c", "test -e /var/lib/pgrepl/run.a.lease && echo yes || echo no") == "no"

        # A cascade of b whose upstream is a node of a: refused in the preflight by b's own check (the per-cluster
        # checks run once per cluster, not only for the first node's cluster). In the same run, one WAL archive
        # directory for both clusters and an unmeetable sync count: refused too, every reason in one message.
        cluster.extra_host_vars[3] = {**cluster.extra_host_vars[3], "pgrepl_upstream": n1}
        shared_archive = {"pgrepl_archive": True, "pgrepl_archive_dir": "/srv/pgrepl-test-wal"}
        for index in cluster.extra_host_vars:
            cluster.extra_host_vars[index] = {**cluster.extra_host_vars[index], **shared_archive}
        # And a's primary asking two synchronous confirmations of its one marked standby (every commit would hang).
        cluster.extra_host_vars[0]["pgrepl_sync_count"] = 2
        cluster.extra_host_vars[1]["pgrepl_sync"] = True
        cluster.write_inventory()
        write_groups(cluster, [n0, n2], [n1, n3], b_entries)
        refused = cluster.playbook("site", label="cross-cluster-upstream")
        assert refused.returncode != 0
        assert f"{n3}: pgrepl_upstream: {n1!r} is not a node of this cluster" in refused.output, refused.tail()
        assert "pgrepl_archive_dir: '/srv/pgrepl-test-wal' is set for the clusters a, b (pgrepl_cluster_id)" \
            in refused.output, refused.tail()
        assert f"pgrepl_sync_count: 2 is more than the standbys marked pgrepl_sync (1: {n1})" in refused.output, \
            refused.tail()
        del cluster.extra_host_vars[3]["pgrepl_upstream"]
        del cluster.extra_host_vars[0]["pgrepl_sync_count"], cluster.extra_host_vars[1]["pgrepl_sync"]
        for index in cluster.extra_host_vars:
            for key in shared_archive:
                del cluster.extra_host_vars[index][key]
        cluster.write_inventory()
        write_groups(cluster, [n0, n2], [n1, n3], b_entries)

        # Check mode on the fresh hosts of both clusters (psycopg installed by the refused runs above, so every
        # module asks its server): it completes, predicts changes on every node, and changes nothing (no slot on
        # either primary, no node in recovery, no pg_hba entry of the collection). n3 already holds the password
        # file a real run writes (as after its primary was rebuilt): its copy is predicted, not tried against a
        # primary whose replication role check mode does not create (it failed so before).
        pgpass = f"{cluster.peer_host[n2]}:5432:replication:replicator:{REPLICATION_PASSWORD}\n"
        dexec(n3, "sh", "-c", 'umask 077 && cat > ~postgres/.pgpass && chown postgres: ~postgres/.pgpass',
              stdin=pgpass)
        predicted = recap(ok(cluster.playbook("site", label="check", check=True), "site --check"))
        assert all(predicted[node]["changed"] > 0 for node in cluster.names), predicted
        for node in cluster.names:
            assert slots(cluster, node) == [], node
            assert cluster.psql(node, "SELECT pg_is_in_recovery()") == "f", node
            assert "pgrepl.streaming" not in dexec(node, "cat", cluster.psql(node, "SHOW hba_file")), node

        ok(cluster.playbook("site", label="build"), "site")
        cluster.wait_streaming(n0, [n1])
        cluster.wait_streaming(n2, [n3])
        # Each standby streams from its own primary; slots only there, one per standby of that cluster.
        assert sender(cluster, n1) == cluster.peer_host[n0] and sender(cluster, n3) == cluster.peer_host[n2]
        assert slots(cluster, n0) == [cluster.psql(n1, "SHOW primary_slot_name")]
        assert slots(cluster, n2) == [cluster.psql(n3, "SHOW primary_slot_name")]
        assert slots(cluster, n1) == [] and slots(cluster, n3) == []
        # TLS with each cluster's own CA: its standby's WAL sender uses TLS, its nodes hold its CA, not the other's.
        cas = {cid: (ca_dirs[cid] / "ca.crt").read_text() for cid in ca_dirs}
        assert cas["a"] != cas["b"]
        for primary, standby, cid in ((n0, n1, "a"), (n2, n3, "b")):
            assert cluster.psql(primary, "SELECT s.ssl FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid)") \
                == "t", (primary, standby)
            for node in (primary, standby):
                held = dexec(node, "cat", cluster.psql(node, "SHOW ssl_ca_file"))
                assert held.strip() == cas[cid].strip(), (node, cid)
        # pg_hba and passfile lines only for the nodes of the same cluster.
        for node, own, other in ((n0, [n1], [n2, n3]), (n1, [n0], [n2, n3]), (n2, [n3], [n0, n1]),
                                 (n3, [n2], [n0, n1])):
            marks = untouched_marks(cluster, node)
            for peer in own:
                assert f"{cluster.address[peer]}/32" in marks["pg_hba"], (node, peer)
                assert cluster.address[peer] in marks["pgpass"], (node, peer)
            for peer in other:
                assert cluster.address[peer] not in marks["pg_hba"], (node, peer, marks["pg_hba"])
                assert cluster.address[peer] not in marks["pgpass"], (node, peer)
        # Each cluster's lease file, released.
        assert dexec(n0, "cat", "/var/lib/pgrepl/run.a.lease") == ""
        assert dexec(n3, "cat", "/var/lib/pgrepl/run.b.lease") == ""

        # status of cluster b only: a's nodes have no row, and no module ran on them.
        status = ok(cluster.playbook("status", "pgrepl_clusters=b", label="b"), "status b")
        assert table_hosts(status, cluster.names) == [n2, n3], status.tail(60)
        assert "cluster b (pgrepl_cluster_id):" in status.output and "cluster a (" not in status.output
        counts = recap(status)
        assert counts[n0]["ok"] == 1 and counts[n1]["ok"] == 1, counts  # the selection, on the controller only
        both = ok(cluster.playbook("status", label="all"), "status")
        assert table_hosts(both, cluster.names) == cluster.names
        # Each table under its cluster's name, in inventory order.
        marks = [both.output.index("cluster a (pgrepl_cluster_id):"), row_at(both, n0), row_at(both, n1),
                 both.output.index("cluster b (pgrepl_cluster_id):"), row_at(both, n2), row_at(both, n3)]
        assert marks == sorted(marks), marks

        # Switchover of cluster a while b takes writes: b untouched.
        cluster.psql(n2, "CREATE TABLE b_writes (id int PRIMARY KEY)")
        before = {node: untouched_marks(cluster, node) for node in (n2, n3)}
        writer = Writer(cluster, n2)
        writer.start()
        try:
            run = ok(cluster.playbook("switchover", f"pgrepl_target={n1}", label="a"), "switchover of a")
        finally:
            writer.stop.set()
            writer.join(60)
        assert writer.errors == [] and writer.written > 0, writer.errors[:3]
        assert cluster.psql(n2, "SELECT count(*) FROM b_writes") == str(writer.written)
        cluster.wait_replayed([n3], cluster.wal_position(n2))
        assert cluster.psql(n3, "SELECT count(*) FROM b_writes") == str(writer.written)
        after = {node: untouched_marks(cluster, node) for node in (n2, n3)}
        assert after == before
        counts = recap(run)
        assert counts[n2]["ok"] == 1 and counts[n3]["ok"] == 1 and counts[n2]["changed"] == 0, counts
        cluster.wait_streaming(n1, [n0])
        assert cluster.psql(n1, "SELECT pg_is_in_recovery()") == "f"
        # The inventory file: a's hosts moved, b's entries exactly where they were.
        groups = read_groups(cluster)
        assert list(groups["primary"]) == [n1, n2] and list(groups["standby"]) == [n0, n3], groups
        assert {host: groups[group][host] for group, host in (("primary", n2), ("standby", n3))} == b_entries

        # A day-2 run without a target on an inventory of two clusters is refused; with one it is that cluster's.
        refused = cluster.playbook("rolling_restart", label="no-cluster", check=True)
        assert refused.returncode != 0 and "the inventory holds several clusters (a, b)" in refused.output

        again = ok(cluster.playbook("site", label="again"), "site again")
        assert all(counts["changed"] == 0 for counts in recap(again).values()), recap(again)
        cluster.wait_streaming(n1, [n0])
        cluster.wait_streaming(n2, [n3])
    finally:
        cluster.destroy()
