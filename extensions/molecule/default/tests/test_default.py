"""Verify the real state of the cluster site.yml built: replication works end to end, nothing was lost, and check
mode on the converged cluster predicts no change.

Shared by every scenario (default, pg17, pg18, custom_layout, ssh); the nodes and their paths come from
Molecule's inventory (fixtures in extensions/molecule/conftest.py).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

PASSFILE = "/var/lib/postgresql/.pgpass"  # the postgres user's home on Debian
HBA_REJECT = "host    replication     all             0.0.0.0/0               reject"
HBA_REJECT_ALL = "host    all             all             0.0.0.0/0               reject"


def test_rows_written_on_the_primary_arrive_on_every_standby(primary, standbys) -> None:
    marker = str(time.time_ns())
    primary.psql("CREATE TABLE IF NOT EXISTS verify_rows (marker text)")
    primary.psql(f"INSERT INTO verify_rows VALUES ('{marker}')")  # noqa: S608 (marker: digits we made)
    for standby in standbys:
        deadline = time.monotonic() + 30
        seen = ""
        while time.monotonic() < deadline:
            # A delayed standby (pg18 scenario) gets even the table only after its delay.
            if standby.psql("SELECT to_regclass('verify_rows') IS NOT NULL") == "t":
                seen = standby.psql(f"SELECT count(*) FROM verify_rows WHERE marker = '{marker}'")  # noqa: S608
            if seen == "1":
                break
            time.sleep(0.5)
        assert seen == "1", f"{standby.name} never received the row"


def test_a_delayed_standby_applies_a_commit_only_after_its_delay(primary, standbys) -> None:
    """pgrepl_apply_delay (the pg18 scenario gives one standby 3s): the setting is in effect, and a commit reaches
    that standby's tables only once the delay has passed, while it streams all along."""
    delayed = [s for s in standbys if s.var("pgrepl_apply_delay", "")]
    for standby in standbys:
        expected = str(standby.var("pgrepl_apply_delay", "0"))
        assert standby.psql("SHOW recovery_min_apply_delay") == expected, standby.name
    for standby in delayed:
        marker = str(time.time_ns())
        primary.psql("CREATE TABLE IF NOT EXISTS verify_delay (marker text)")
        time.sleep(4)  # the table itself reaches the delayed standby after the delay
        committed = time.monotonic()
        primary.psql(f"INSERT INTO verify_delay VALUES ('{marker}')")  # noqa: S608 (marker: digits we made)
        query = f"SELECT count(*) FROM verify_delay WHERE marker = '{marker}'"  # noqa: S608 (digits)
        assert standby.psql(query) == "0", f"{standby.name} applied the commit at once"
        assert standby.psql("SELECT status FROM pg_stat_wal_receiver") == "streaming"
        seen = ""
        while time.monotonic() < committed + 30 and seen != "1":
            time.sleep(0.25)
            seen = standby.psql(query)
        assert seen == "1", f"{standby.name} never applied the commit"
        assert time.monotonic() - committed >= 2.5, f"{standby.name} applied it before its delay"


def _upstream(standby, primary, nodes):
    """The node a standby streams from: the one its pgrepl_upstream names (a cascade: test_cascade.py), else the
    primary."""
    name = standby.var("pgrepl_upstream", "")
    return nodes[name] if name and name != primary.name else primary


def test_every_standby_streams_through_its_active_slot(primary, standbys, nodes) -> None:
    direct = [s for s in standbys if _upstream(s, primary, nodes) is primary]
    rows = primary.psql("SELECT application_name || ':' || state FROM pg_stat_replication ORDER BY 1").splitlines()
    assert rows == [f"{s.name}:streaming" for s in direct]
    slots = primary.psql("SELECT slot_name || ':' || active FROM pg_replication_slots ORDER BY 1").splitlines()
    assert slots == [f"{s.name.replace('-', '_')}:true" for s in direct]
    for standby in standbys:
        assert standby.psql("SELECT status FROM pg_stat_wal_receiver") == "streaming"
        assert standby.psql("SELECT pg_is_in_recovery()") == "t"


def test_the_servers_run_from_the_inventory_layout(nodes) -> None:
    for node in nodes.values():
        assert node.psql("SHOW data_directory") == node.data_dir
        assert node.psql("SHOW config_file") == f"{node.config_dir}/postgresql.conf"
        assert node.psql("SHOW hba_file") == f"{node.config_dir}/pg_hba.conf"
        assert node.host.service(node.service).is_running, f"{node.name}: {node.service} does not run"
        assert node.host.service(node.service).is_enabled, f"{node.name}: {node.service} is not enabled"


def test_standby_configuration_is_in_the_data_directory(primary, standbys) -> None:
    assert not primary.host.file(f"{primary.data_dir}/standby.signal").exists
    for standby in standbys:
        assert standby.host.file(f"{standby.data_dir}/standby.signal").is_file
        auto = standby.host.file(f"{standby.data_dir}/postgresql.auto.conf").content_string
        assert f"primary_slot_name = '{standby.name.replace('-', '_')}'" in auto
        conninfo = [line for line in auto.splitlines() if line.startswith("primary_conninfo")]
        assert len(conninfo) == 1, f"{standby.name}: {conninfo}"
        assert f" port={primary.port} " in conninfo[0] and PASSFILE in conninfo[0]


def test_no_password_in_configuration_or_logs(nodes) -> None:
    password = next(iter(nodes.values())).variables["pgrepl_replication_password"]
    for node in nodes.values():
        auto = node.host.file(f"{node.data_dir}/postgresql.auto.conf").content_string
        assert "listen_addresses = '*'" in auto, f"{node.name}: not the file the roles wrote"
        assert password not in auto
        assert "password=" not in auto
        logs = node.server_logs()
        assert "database system is ready" in logs, f"{node.name}: no server log read"
        assert password not in logs


def test_passfile_is_private_and_holds_every_other_node(nodes) -> None:
    for node in nodes.values():
        passfile = node.host.file(PASSFILE)
        assert passfile.mode == 0o600
        assert passfile.user == "postgres"
        lines = [line for line in passfile.content_string.splitlines() if line and not line.startswith("#")]
        assert len(lines) == 2, f"{node.name}: {len(lines)} lines"
        # host:port:replication:replicator:password, each port the other node's.
        assert sorted(int(line.split(":")[1]) for line in lines) == sorted(
            other.port for other in nodes.values() if other is not node)


def test_pg_hba_parses_and_keeps_the_original_lines_in_order(nodes, standbys) -> None:
    for node in nodes.values():
        assert node.psql("SELECT count(*) FROM pg_hba_file_rules WHERE error IS NOT NULL") == "0"
        original = node.host.file("/root/pg_hba.conf.orig").content_string.splitlines()
        current = node.host.file(f"{node.config_dir}/pg_hba.conf").content_string.splitlines()
        added = [line for line in current if "pgrepl.streaming" in line]
        admitted = sorted((line.split()[1], line.split("pgrepl.streaming: ", 1)[1].strip()) for line in added)
        # Every other node, once per database: replication, and postgres (a switchover's handover promotes over
        # SQL). Where pg_hba.conf lives in the data directory, a standby's file is the copy of the primary's
        # (pg_basebackup), so it also carries the primary's entries for this standby: harmless.
        expected = {other for other in nodes if other != node.name}
        if node.config_dir == node.data_dir and node in standbys:
            expected.add(node.name)
        assert admitted == sorted((database, name) for database in ("postgres", "replication") for name in expected), (
            f"{node.name}: {added}")
        assert [line for line in current if line not in added] == original
        # The new entries match before the rejects that would shadow them.
        reject, reject_all = current.index(HBA_REJECT), current.index(HBA_REJECT_ALL)
        assert all(current.index(line) < reject for line in added if line.split()[1] == "replication"), added
        assert all(current.index(line) < reject_all for line in added), added


def test_the_unrelated_database_was_moved_aside_not_deleted(primary, standbys) -> None:
    standby1 = standbys[0]
    parent = os.path.dirname(standby1.data_dir)
    names = standby1.host.run("ls -1A %s", parent).stdout.split()
    moved = [f"{parent}/{name}" for name in names
             if name.startswith(os.path.basename(standby1.data_dir) + ".pgrepl-moved-")]
    assert len(moved) == 1, f"{standby1.name}: {names}"
    assert standby1.host.file(moved[0] + "/PG_VERSION").exists
    assert standby1.host.file(moved[0] + "/base").is_directory
    # The directory moved aside is the one prepare marked, not a copy of something else.
    assert standby1.host.file(moved[0] + "/pgrepl-test-marker").content_string == f"{standby1.name} as prepared\n"
    # The primary's own data directory was never replaced.
    marker = primary.host.file(f"{primary.data_dir}/pgrepl-test-marker").content_string
    assert marker == f"{primary.name} as prepared\n"


def test_the_first_converge_restarted_the_primary_and_idempotence_did_not(primary) -> None:
    """listen_addresses and wal_log_hints wait for a restart on a fresh cluster: the first converge restarted the
    primary within its one node_apply call (the slots came after, on the restarted server), the second did not."""
    prepared = primary.host.file("/root/pgrepl-postmaster-start.prepared").content_string.strip()
    converged = primary.host.file("/root/pgrepl-postmaster-start.converged").content_string.strip()
    assert prepared and converged
    assert primary.psql(f"SELECT '{converged}'::timestamptz > '{prepared}'::timestamptz") == "t", (prepared, converged)
    assert primary.psql("SELECT pg_postmaster_start_time()") == converged
    assert primary.psql("SELECT count(*) FROM pg_settings WHERE pending_restart") == "0"
    assert primary.psql("SELECT setting FROM pg_settings WHERE name = 'wal_log_hints'") == "on"


def _site_in_check_mode(inventory: str, *extra: str) -> dict:
    """ansible-playbook --check pgrepl.streaming.site against Molecule's inventory, as its JSON result."""
    playbook = shutil.which("ansible-playbook", path=str(Path(sys.executable).parent)) or "ansible-playbook"
    env = dict(os.environ, ANSIBLE_STDOUT_CALLBACK="ansible.posix.json")
    proc = subprocess.run([playbook, "--check", "-i", inventory, *extra, "pgrepl.streaming.site"],
                          capture_output=True, text=True, env=env, timeout=1200, check=False)
    try:
        result = json.loads(proc.stdout)
    except json.JSONDecodeError:
        raise AssertionError(f"rc={proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}") from None
    result["rc"] = proc.returncode
    result["stderr"] = proc.stderr
    return result


def _changed_tasks(result: dict) -> dict[str, list[str]]:
    """Per host, the names of the tasks that reported (or predicted) a change."""
    changed: dict[str, list[str]] = {}
    for play in result["plays"]:
        for task in play["tasks"]:
            for host, outcome in task["hosts"].items():
                if outcome.get("changed"):
                    changed.setdefault(host, []).append(task["task"]["name"])
    return changed


def test_check_mode_on_the_converged_cluster_predicts_no_change(request, nodes) -> None:
    result = _site_in_check_mode(request.config.option.ansible_inventory)
    stats = result["stats"]
    assert sorted(stats) == sorted(nodes), stats
    assert result["rc"] == 0, result["stderr"][-3000:]
    for host, recap in stats.items():
        assert recap["failures"] == 0 and recap["unreachable"] == 0, f"{host}: {recap}"
        assert recap["changed"] == 0, f"{host} would change: {_changed_tasks(result).get(host)}"


def test_check_mode_reports_a_change_it_would_make_and_makes_none(request, primary) -> None:
    """The check above can fail: with a setting the primary does not have yet, check mode predicts a change on the
    primary (and only there), and the setting stays as it was."""
    before = primary.psql("SELECT string_agg(setting, ',' ORDER BY name) FROM pg_settings "
                          "WHERE name IN ('shared_buffers', 'wal_keep_size')")
    started = primary.psql("SELECT pg_postmaster_start_time()")
    auto = primary.host.file(f"{primary.data_dir}/postgresql.auto.conf").content_string
    # shared_buffers waits for a restart: check mode predicts the settings and the restart, and does neither.
    settings = {"wal_keep_size": "333MB", "shared_buffers": "96MB"}
    result = _site_in_check_mode(request.config.option.ansible_inventory,
                                 "-e", json.dumps({"pgrepl_settings": settings}))
    assert result["rc"] == 0, result["stderr"][-3000:]
    changed = _changed_tasks(result)
    assert sorted(changed) == [primary.name], changed
    assert result["stats"][primary.name]["changed"] == 1, changed
    applied = [task["hosts"][primary.name] for play in result["plays"] for task in play["tasks"]
               if "check_results" in task["hosts"].get(primary.name, {})]
    assert len(applied) == 1, changed
    assert {name for name, item in applied[0]["changed_checks"].items() if item} == {"settings", "restart"}, applied
    assert applied[0]["check_results"]["restart"][0]["outcome"] == "would_restart"
    assert primary.psql("SELECT string_agg(setting, ',' ORDER BY name) FROM pg_settings "
                        "WHERE name IN ('shared_buffers', 'wal_keep_size')") == before
    assert primary.psql("SELECT pg_postmaster_start_time()") == started
    assert primary.host.file(f"{primary.data_dir}/postgresql.auto.conf").content_string == auto


def _status(inventory: str, *extra: str) -> subprocess.CompletedProcess:
    """`ansible-playbook -i inventory pgrepl.streaming.status -e ...` in the default callback, as users run it."""
    playbook = shutil.which("ansible-playbook", path=str(Path(sys.executable).parent)) or "ansible-playbook"
    env = dict(os.environ, ANSIBLE_STDOUT_CALLBACK="ansible.builtin.default", ANSIBLE_NOCOLOR="true")
    argv = [playbook, "-i", inventory, "pgrepl.streaming.status"]
    for item in extra:
        argv += ["-e", item]
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600, check=False)


def test_status_prints_a_table_with_every_standby_streaming(request, primary, standbys, nodes) -> None:
    """The status playbook, strict, passes on the converged cluster and prints plain text rows (no quotes, escapes
    or list commas) that say what pg_stat_replication says."""
    run = _status(request.config.option.ansible_inventory, "pgrepl_status_strict=true")
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    lines = run.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:3] == ["host", "role", "state"])
    header, rows = lines[start], lines[start + 1:start + 2 + len(standbys)]
    assert header.split() == ["host", "role", "state", "sync", "tl", "lsn", "lag_bytes", "lag", "delay", "slot",
                              "(wal_status)", "problems"]
    cells = {row.split()[0]: row.split() for row in rows}
    assert cells[primary.name][:3] == [primary.name, "primary", "-"] and cells[primary.name][-1] == "ok"
    # Each standby's WAL sender on the node it streams from (a cascade's on its upstream).
    real = {}
    for upstream in {_upstream(s, primary, nodes).name: _upstream(s, primary, nodes) for s in standbys}.values():
        real.update(line.split("|") for line in upstream.psql(
            "SELECT application_name || '|' || state FROM pg_stat_replication").splitlines())
    for standby in standbys:
        assert cells[standby.name][:3] == [standby.name, "standby", real[standby.name]]
        assert real[standby.name] == "streaming" and cells[standby.name][-1] == "ok", rows
    for line in [header, *rows]:
        assert not line.startswith(('"', "'", "[", "{")) and not line.endswith((",", '"')) and "\\" not in line


def test_status_json_is_one_document_with_the_same_facts(request, primary, standbys) -> None:
    run = _status(request.config.option.ansible_inventory, "pgrepl_status_format=json")
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    lines = run.stdout.splitlines()
    document = json.loads("\n".join(lines[lines.index("{"):lines.index("}") + 1]))
    assert document["ok"] is True and document["primary"] == primary.name
    nodes = {entry["host"]: entry for entry in document["nodes"]}
    for standby in standbys:
        assert nodes[standby.name]["state"] == "streaming"
        assert nodes[standby.name]["slot"]["name"] == standby.name.replace("-", "_")
        assert nodes[standby.name]["slot"]["wal_status"] == "reserved"
    assert nodes[primary.name]["timeline"] == int(primary.psql("SELECT timeline_id FROM pg_control_checkpoint()"))


def _tablespaces(primary) -> dict[str, str]:
    """The primary's tablespaces (name -> location), pg_default and pg_global left out."""
    rows = primary.psql("SELECT spcname || '|' || pg_tablespace_location(oid) FROM pg_tablespace "
                        "WHERE spcname NOT IN ('pg_default', 'pg_global')")
    return dict(line.split("|", 1) for line in rows.splitlines())


def _wait_for(predicate, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def test_each_standby_keeps_the_primarys_tablespaces_where_its_map_says(primary, standbys) -> None:
    """pgrepl_tablespace_map (the pg18 scenario: a tablespace on the primary, standby1 maps it elsewhere, standby2
    keeps the primary's path under a root-owned /srv): each standby's copy is in its directory, the server's OS
    user's with mode 0700, with the rows of the primary's table in it. No tablespace elsewhere: nothing to see."""
    for name, location in _tablespaces(primary).items():
        for standby in standbys:
            path = standby.var("pgrepl_tablespace_map", {}).get(location, location)
            query = f"SELECT pg_tablespace_location(oid) FROM pg_tablespace WHERE spcname = '{name}'"  # noqa: S608
            assert standby.psql(query) == path, standby.name
            directory = standby.host.file(path)
            assert (directory.is_directory, directory.user, directory.mode) == (True, "postgres", 0o700), path
    if "ts1" in _tablespaces(primary):
        for standby in standbys:
            assert standby.psql("SELECT count(*) FROM ts_rows") == "1000", standby.name


def test_a_reseed_swaps_a_mapped_tablespace_and_keeps_the_old_one(request, playbook, primary, standbys) -> None:
    """Where a standby maps a tablespace (pg18): the reseed playbook copies it beside its directory and swaps it in
    with the data directory; the old tablespace is moved aside, never deleted, and the moved-aside data directory's
    link points at it, the new one's at the mapped directory."""
    spaces = _tablespaces(primary)
    for standby in [s for s in standbys if s.var("pgrepl_tablespace_map", {})]:
        name, location = next((n, loc) for n, loc in spaces.items() if loc in standby.var("pgrepl_tablespace_map", {}))
        path = standby.var("pgrepl_tablespace_map", {})[location]
        oid = primary.psql(f"SELECT oid FROM pg_tablespace WHERE spcname = '{name}'")  # noqa: S608 (our name)
        run = playbook("reseed", f"pgrepl_host={standby.name}")
        assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
        moved = standby.host.run(f"ls -d {path}.pgrepl-moved-*").stdout.split()
        assert len(moved) == 1, moved
        assert standby.host.run(f"ls {moved[0]}").stdout.split() == standby.host.run(f"ls {path}").stdout.split()
        assert standby.host.file(f"{standby.data_dir}/pg_tblspc/{oid}").linked_to == path
        old_data = standby.host.run(f"ls -d {standby.data_dir}.pgrepl-moved-*").stdout.split()
        links = [standby.host.file(f"{d}/pg_tblspc/{oid}").linked_to for d in old_data]
        assert moved[0] in links, (old_data, links)
        assert standby.psql("SELECT status FROM pg_stat_wal_receiver") == "streaming"
        assert standby.psql("SELECT count(*) FROM ts_rows") == "1000"


def test_a_tablespace_created_later_in_a_declared_directory_leaves_every_standby_streaming(primary, standbys) -> None:
    """pgrepl_tablespace_dirs (pg18: a directory under a parent missing before site): site made it on every node,
    0700 of postgres, its missing parent root's 0755. A CREATE TABLESPACE there on the primary, which each standby
    replays at the primary's path, leaves every standby streaming, and a row written into it arrives on each."""
    declared = primary.var("pgrepl_tablespace_dirs", [])
    if not declared:
        return
    location = declared[0]
    for node in (primary, *standbys):
        directory = node.host.file(location)
        assert (directory.is_directory, directory.user, directory.mode) == (True, "postgres", 0o700), node.name
        parent = node.host.file(os.path.dirname(location))
        assert (parent.is_directory, parent.user, parent.mode) == (True, "root", 0o755), node.name
    primary.psql(f"CREATE TABLESPACE ts2 LOCATION '{location}'")
    primary.psql("CREATE TABLE ts2_rows TABLESPACE ts2 AS SELECT 1 AS n")
    primary.psql("INSERT INTO ts2_rows VALUES (2)")
    for standby in standbys:
        _wait_for(lambda s=standby: s.psql("SELECT to_regclass('ts2_rows') IS NOT NULL") == "t", "ts2_rows")
        _wait_for(lambda s=standby: s.psql("SELECT count(*) FROM ts2_rows") == "2", "the row written into ts2")
        query = "SELECT pg_tablespace_location(oid) FROM pg_tablespace WHERE spcname = 'ts2'"
        assert standby.psql(query) == location, standby.name
        assert standby.psql("SELECT status FROM pg_stat_wal_receiver") == "streaming", standby.name
        assert standby.host.service(standby.service).is_running, standby.name


def test_a_tablespace_created_later_elsewhere_needs_its_directory_on_the_standbys_first(primary, standbys) -> None:
    """Where a scenario maps tablespaces (pg18): a CREATE TABLESPACE on the primary in a directory not declared in
    pgrepl_tablespace_dirs is replayed on each standby at the primary's path (the map applies to copies). A standby
    that has the directory goes on streaming; one without it stops (its startup process cannot create the
    tablespace) and streams again once the directory is created and its service started, with the rows. Last: it
    stops a standby."""
    if not any(standby.var("pgrepl_tablespace_map", {}) for standby in standbys):
        return
    location = "/srv/pgrepl-ts3"
    bare, prepared = standbys[0], standbys[1:]
    make = f"install -d -o postgres -g postgres -m 0700 {location}"
    for node in (primary, *prepared):
        assert node.host.run(make).rc == 0, node.name
    primary.psql(f"CREATE TABLESPACE ts3 LOCATION '{location}'")
    primary.psql("CREATE TABLE ts3_rows TABLESPACE ts3 AS SELECT 1 AS n")
    for standby in prepared:
        _wait_for(lambda s=standby: s.psql("SELECT to_regclass('ts3_rows') IS NOT NULL") == "t", "ts3_rows")
        assert standby.psql("SELECT count(*) FROM ts3_rows") == "1"
        assert standby.psql("SELECT status FROM pg_stat_wal_receiver") == "streaming"
        query = "SELECT pg_tablespace_location(oid) FROM pg_tablespace WHERE spcname = 'ts3'"
        assert standby.psql(query) == location
    _wait_for(lambda: not bare.host.service(bare.service).is_running, f"{bare.name} to stop")
    assert location in bare.server_logs()
    assert bare.host.run(make).rc == 0
    assert bare.host.run(f"systemctl start {bare.service}").rc == 0
    _wait_for(lambda: bare.host.run(f"{bare.bin_dir}/pg_isready -q -h {bare.socket_dir} -p {bare.port}").rc == 0,
              f"{bare.name} to accept connections")
    _wait_for(lambda: bare.psql("SELECT to_regclass('ts3_rows') IS NOT NULL") == "t", "ts3_rows on the restarted")
    assert bare.psql("SELECT count(*) FROM ts3_rows") == "1"
    _wait_for(lambda: bare.psql("SELECT status FROM pg_stat_wal_receiver") == "streaming", "streaming again")
