# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Cascading standbys in reseed and remove_standby as the operations role renders them: each node's upstream in the
day-2 facts (from the node role's cascade plan), the node the re-seed's slot step runs on and its slot parameters,
the summaries naming the upstream. A direct standby renders as before."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .rendering import render, role_vars
from .test_cascade_role import variables

ROOT = Path(__file__).resolve().parents[3]


def reseed_block() -> dict[str, Any]:
    tasks = yaml.safe_load((ROOT / "roles/operations/tasks/reseed.yml").read_text())
    return next(task for task in tasks if task["name"] == "Re-seed")


def day2(host: str, pgrepl_host: str, **upstreams: str) -> dict[str, Any]:
    """The variables of a reseed or remove_standby play on host, db1 primary; db2 keeps db3's slot (reserved)."""
    result = variables(host, **upstreams)
    servers = {name: {"role": "standby", "slots": []} for name in ("db2", "db3", "db4")}
    servers["db1"] = {"role": "primary", "slots": []}
    servers["db2"]["slots"] = [{"slot_name": "slot_db3", "slot_type": "physical", "wal_status": "reserved"}]
    for name, hostvar in result["hostvars"].items():
        hostvar.update({"inventory_hostname": name, "__pgrepl_node": {"server": servers[name]},
                        "__pgrepl_layout": {**hostvar["__pgrepl_layout"], "data_dir": "/var/lib/pg"}})
    nodes = result["__pgrepl_cluster_nodes"]
    result.update({"groups": {"primary": ["db1"], "standby": ["db2", "db3", "db4"], "all": nodes},
                   "ansible_play_hosts": nodes, "__pgrepl_down_nodes": [],
                   "pgrepl_target": "", "pgrepl_host": pgrepl_host, "pgrepl_force": False,
                   "pgrepl_switchover_max_lag_bytes": 16777216, "pgrepl_fence_tasks": [], "pgrepl_confirm_dead": "",
                   "ansible_check_mode": False})
    for name, value in role_vars("operations").items():
        result[name] = render(value, result)
    return result


def test_the_day2_facts_carry_each_nodes_upstream() -> None:
    assert day2("db1", "db3", db3="db2")["__pgrepl_day2_facts"]["upstreams"] == {
        "db1": "", "db2": "db1", "db3": "db2", "db4": "db1"}
    assert day2("db1", "db3")["__pgrepl_day2_facts"]["upstreams"]["db3"] == "db1"


def test_the_reseed_slot_step_runs_on_the_upstream() -> None:
    step = reseed_block()["block"][0]
    assert step["when"] == "inventory_hostname == __pgrepl_host_upstream"
    for pgrepl_host, upstreams, where, on_standby in (("db3", {"db3": "db2"}, "db2", True),
                                                      ("db3", {}, "db1", False)):
        v = day2("db2", pgrepl_host, **upstreams)
        assert v["__pgrepl_host_upstream"] == where
        v["__slot_name"] = "slot_db3"
        v["__action"] = render(step["vars"]["__action"], v)
        assert v["__action"] == ("keep" if on_standby else "create")  # db2 has db3's slot, the primary none
        assert render(step["pgrepl.streaming.node_apply"]["checks"]["slot"]["params"], v) == [
            {"name": "slot_db3", "immediately_reserve": True, "allow_on_standby": on_standby}]


def summary(name: str, v: dict[str, Any]) -> str:
    return render((ROOT / "roles/operations/templates" / name).read_text(), v)


def test_the_summaries_name_the_upstream() -> None:
    text = summary("reseed_steps.j2", day2("db1", "db3", db3="db2"))
    assert text.splitlines()[:2] == ["re-seed db3 from db2 (its pgrepl_upstream; the primary is db1)",
                                     "1. on db2: slot slot_db3 kept"]
    assert summary("reseed_steps.j2", day2("db1", "db3")).splitlines()[:2] == [
        "re-seed db3 from db1", "1. on db1: slot slot_db3 created"]
    v = day2("db1", "db3", db3="db2")
    assert summary("remove_standby_steps.j2", v).splitlines()[1] == (
        "1. on db1: synchronous_standby_names without it (first, so no commit waits for it), then drop its slot "
        "slot_db3 (when one is left there); on db2, its upstream (pgrepl_upstream): drop its slot slot_db3")
    assert summary("remove_standby_steps.j2", day2("db1", "db3")).splitlines()[1] == (
        "1. on db1: synchronous_standby_names without it (first, so no commit waits for it), then drop its slot "
        "slot_db3")


def test_the_rejoin_summary_names_the_upstream() -> None:
    v = day2("db1", "db3", db3="db2")
    v.update({"__pgrepl_rejoin_needed": True, "pgrepl_rewind_user": "pgrepl_rewind", "pgrepl_rejoin_reseed": False,
              "pgrepl_rewind_cleanup": True})
    lines = summary("rejoin_steps.j2", v).splitlines()
    assert lines[0] == "rejoin db3 as a standby of db1 streaming from db2 (its pgrepl_upstream)"
    assert lines[1].startswith("1. on db1: the pg_rewind role pgrepl_rewind (ordinary login, four EXECUTE grants), "
                               "its pg_hba entry for db3; on db2: the slot slot_db3; on db3: its passfile line")
    assert "primary_conninfo to db2, its slot" in lines[4]
    v["__pgrepl_rejoin_needed"] = False
    assert summary("rejoin_steps.j2", v).splitlines()[1] == (
        "db3 already streams from db2 on its timeline: nothing to do")
    v = day2("db1", "db3")
    v.update({"__pgrepl_rejoin_needed": True, "pgrepl_rewind_user": "pgrepl_rewind", "pgrepl_rejoin_reseed": False,
              "pgrepl_rewind_cleanup": True})
    lines = summary("rejoin_steps.j2", v).splitlines()
    assert lines[0] == "rejoin db3 as a standby of db1"
    assert ", its pg_hba entry for db3, the slot slot_db3; on db3: its passfile line" in lines[1]
