# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The failover whose old primary's host does not answer (roles/operations/tasks/failover.yml, docs/runbooks.md):
the user's fencing task files run on the chosen standby's host before anything is promoted, with
pgrepl_old_primary and pgrepl_new_primary set, and only then the standby is promoted on its own host. Check mode
changes nothing and runs no fencing task file. One primary and one standby (PostgreSQL 15); the old primary's
server gets SIGKILL and its host is made unreachable for Ansible (the chain's refusal without a fence is in
test_chain.py)."""

from __future__ import annotations

import json

import pytest
from d2_cluster import CLIENT_IMAGE, ROOT, DayTwoCluster, PlaybookRun
from d2_cluster import TEST_PREFIX as PREFIX
from d2_docker import dexec, remove_prefixed

TAG = "fo-unreach"
MARK = "/var/tmp/pgrepl-test-fence.json"
# The fencing task file: records, on the host it runs on, what it was given and whether that node's server was still
# in recovery at that moment (a fence that ran after the promotion would see 'f').
FENCE = f"""\
- name: What the node the fencing task file runs on says of itself
  ansible.builtin.command:
    argv: [su, postgres, -c, "psql -XtAc 'SELECT pg_is_in_recovery()'"]
  register: fence_recovery
  changed_when: false
- name: Record what the fencing task file was given
  ansible.builtin.copy:
    dest: {MARK}
    content: >-
      {{{{ {{'old': pgrepl_old_primary, 'new': pgrepl_new_primary, 'host': inventory_hostname,
          'in_recovery': fence_recovery.stdout | trim}} | to_json }}}}
    mode: "0644"
"""


def ok(run: PlaybookRun, what: str) -> PlaybookRun:
    assert run.returncode == 0, f"{what} failed:\n{run.describe()}"
    return run


def in_recovery(cluster: DayTwoCluster, node: str) -> str:
    return cluster.psql(node, "SELECT pg_is_in_recovery()")


def test_fencing_task_files_run_before_the_promotion(images: dict[str, str]) -> None:
    workdir = ROOT / ".build" / "day2" / TAG
    cluster = DayTwoCluster(PREFIX, TAG, images["pg15"], CLIENT_IMAGE, workdir, standbys=1, sync=())
    n0, n1 = cluster.names
    try:
        cluster.start()
        cluster.write_inventory()
        ok(cluster.playbook("site", label="build"), "site")
        cluster.wait_streaming(n0, [n1])
        cluster.psql(n0, "CREATE TABLE before_failover AS SELECT 1 AS id")
        cluster.wait_replayed([n1], cluster.wal_position(n0))
        cluster.kill_server(n0)
        cluster.set_groups(n0, [n1], unreachable=(n0,))
        fence = workdir / "fence_old_primary.yml"
        fence.write_text(FENCE)
        fence_var = json.dumps({"pgrepl_fence_tasks": [str(fence)]})

        check = ok(cluster.playbook("failover", fence_var, check=True, label="check"), "failover --check")
        assert f"failover {n0} -> {n1} (check mode: nothing is done)" in check.output
        assert f"fenced first by your fencing task files (1) on {n1}" in check.output
        assert in_recovery(cluster, n1) == "t"
        assert dexec(n1, "sh", "-c", f"test -e {MARK} && echo present || echo absent") == "absent"

        run = ok(cluster.playbook("failover", fence_var), "failover")
        mark = json.loads(dexec(n1, "cat", MARK))
        assert mark == {"old": n0, "new": n1, "host": n1, "in_recovery": "t"}, mark
        assert in_recovery(cluster, n1) == "f"
        assert cluster.psql(n1, "SELECT count(*) FROM before_failover") == "1"
        cluster.psql(n1, "CREATE TABLE after_failover AS SELECT 1 AS id")
        # In the output too: the fencing task file, then the promotion on the standby's own host.
        fenced_at = run.output.index("Record what the fencing task file was given")
        promoted_at = run.output.index("promote the chosen standby on its own host")
        assert fenced_at < promoted_at
        report = run.report or {}
        assert (report.get("old_primary"), report.get("new_primary")) == (n0, n1), report
        assert cluster.groups() == (n1, [n0])
        # The old primary's server was not touched (its host did not answer): still down.
        assert not cluster.accepting(n0)
    finally:
        cluster.destroy()
        remove_prefixed(f"{PREFIX}{TAG}")


@pytest.fixture(autouse=True)
def _no_leftovers() -> None:
    remove_prefixed(f"{PREFIX}{TAG}")
