# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The roles' side of the decisions, rendered by Ansible's own templating over hostvars as a play has them (no
cluster): the operations role's facts dict (roles/operations/vars/main.yml) and a refusal through refuse.yml's
expression, the slot name of gather.yml (the same names as before it moved to Python, so existing slots keep
theirs), the parity minimums of roles/node/vars/main.yml and the standby's settings to raise."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.pgrepl.streaming.plugins.filter.slot_name import slot_name
from ansible_collections.pgrepl.streaming.plugins.module_utils._names import slot_name_from_host

from .rendering import render, role_vars, task_var

# The derivation gather.yml used until it moved to module_utils/_names.py: slots of clusters built with it must
# keep their names.
FORMER_SLOT_JINJA = """
{%- set base = inventory_hostname | lower | regex_replace('[^a-z0-9_]', '_') -%}
{{ base if base | length <= 63 else base[:54] ~ '_' ~ (inventory_hostname | hash('sha256'))[:8] }}"""


def play(down: tuple[str, ...] = (), **extra: Any) -> dict[str, Any]:
    """The variables of a failover play over db1 (stopped) and db2, db3 (streaming); `down` did not answer; the
    operations role's vars rendered last, as Ansible renders them when a task reads them."""
    nodes = ["db1", "db2", "db3"]
    hostvars: dict[str, Any] = {}
    for index, name in enumerate(nodes):
        server = None if name == "db1" else {
            "role": "standby", "timeline": 1, "receive_lsn": f"0/300014{index}", "replay_lsn": "0/3000100",
            "replay_paused": False, "wal_receiver": {"status": "streaming"}}
        node = {"unreachable": True, "msg": "no route", "changed": False} if name in down else {"server": server}
        hostvars[name] = {"inventory_hostname": name, "__pgrepl_node": node, "__pgrepl_slot": name,
                          "__pgrepl_address": f"10.0.0.{index + 1}"}
    hostvars["db2"]["pgrepl_sync"] = "true"
    variables = {"groups": {"primary": ["db1"], "standby": ["db2", "db3"], "all": nodes}, "hostvars": hostvars,
                 "ansible_play_hosts": [name for name in nodes if name not in down], "__pgrepl_down_nodes": list(down),
                 "inventory_hostname": "db2",
                 "pgrepl_target": "", "pgrepl_host": "", "pgrepl_force": False,
                 "pgrepl_switchover_max_lag_bytes": 16777216, "pgrepl_standby_move_aside": True,
                 "pgrepl_fence_tasks": [], "pgrepl_confirm_dead": "", "__pgrepl_operation": "failover", **extra}
    for name, value in role_vars("operations").items():
        variables[name] = render(value, variables)
    return variables


def test_the_operations_facts_from_hostvars() -> None:
    facts = play(down=("db3",))["__pgrepl_day2_facts"]
    assert facts["primary"] == "db1"
    assert facts["standbys"] == ["db2", "db3"]
    assert facts["down"] == ["db3"]
    assert facts["play_hosts"] == ["db1", "db2"]
    # A stopped server is None; a host that did not answer has no server facts at all.
    assert facts["servers"]["db1"] is None and facts["servers"]["db3"] == {}
    assert facts["servers"]["db2"]["receive_lsn"] == "0/3000141"
    assert facts["slots"] == {"db1": "db1", "db2": "db2", "db3": "db3"}
    assert facts["addresses"] == {"db1": "10.0.0.1", "db2": "10.0.0.2", "db3": "10.0.0.3"}
    assert facts["sync"] == {"db1": False, "db2": "true", "db3": False}


def test_the_refusal_and_the_choice_as_the_failover_tasks_render_them() -> None:
    choice_expr = task_var("roles/operations/tasks/failover.yml", "Refuse, or fail over",
                           "__pgrepl_failover_choice")
    assert render(choice_expr, play()) == {"candidates": ["db2", "db3"], "target": "db3"}
    refusal = task_var("roles/operations/tasks/refuse.yml", "Refuse an unsafe operation", "__problems")
    assert render(refusal, play()) == []
    assert render(refusal, play(pgrepl_target="db2")) == [
        "pgrepl_target: db3 received 1 bytes more than db2: promoting db2 would lose them and leave db3 unable to "
        "follow (omit pgrepl_target to promote the most advanced standby, or -e pgrepl_force=true)"]
    assert render(refusal, play(pgrepl_target="db2", pgrepl_force="true")) == []
    fail_msg = task_var("roles/operations/tasks/refuse.yml", "Refuse an unsafe operation",
                        "ansible.builtin.assert")["fail_msg"]
    variables = play(pgrepl_target="db9", pgrepl_force=True)
    variables["__problems"] = render(refusal, variables)
    assert render(fail_msg, variables) == (
        "failover refused, nothing was changed: pgrepl_target: db9 is not a running standby of this cluster "
        "(candidates: db2, db3)")


def test_the_failover_without_the_answers_of_a_standby() -> None:
    variables = play(down=("db3",))
    choice_expr = task_var("roles/operations/tasks/failover.yml", "Refuse, or fail over",
                           "__pgrepl_failover_choice")
    assert render(choice_expr, variables) == {"candidates": ["db2"], "target": "db2"}


# --- slot names --------------------------------------------------------------------------------------------------

NAMES = ["db1", "DB-1.example.com", "узел-5", "İstanbul-db", "straße", "ǅemal", "kelvin-\u212a", "with space",
         "a" * 63, "a" * 64, "b" * 70 + ".x", "Ä" * 70, "x" * 54 + "é" * 20, "日本-サーバー" * 10, "ΣΊΣΥΦΟΣ" * 9]


@pytest.mark.parametrize("name", NAMES)
def test_slot_names_are_those_of_before(name: str) -> None:
    former = render(FORMER_SLOT_JINJA, {"inventory_hostname": name}).strip()
    gather = task_var("roles/node/tasks/gather.yml", "Derive this node's address and slot",
                      "ansible.builtin.set_fact")["__pgrepl_slot"]
    assert render(gather, {"inventory_hostname": name, "pgrepl_slot_name": ""}) == former
    assert slot_name(name) == slot_name_from_host(name) == former


def test_a_slot_name_given_in_the_inventory_wins() -> None:
    gather = task_var("roles/node/tasks/gather.yml", "Derive this node's address and slot",
                      "ansible.builtin.set_fact")["__pgrepl_slot"]
    assert render(gather, {"inventory_hostname": "DB-1", "pgrepl_slot_name": "mine"}) == "mine"


def test_long_and_non_ascii_slot_names() -> None:
    name = "Узел-" + "ж" * 70
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:8]
    assert slot_name(name) == "_" * 54 + "_" + digest
    assert len(slot_name(name)) == 63
    assert slot_name("a" * 63) == "a" * 63
    assert slot_name("a" * 64) == "a" * 54 + "_" + hashlib.sha256(b"a" * 64).hexdigest()[:8]


@pytest.mark.parametrize("value", ["", None, 5])
def test_slot_name_refuses_what_is_no_host_name(value: Any) -> None:
    with pytest.raises(AnsibleFilterError, match=f"slot_name: {value!r} is not an inventory host name"):
        slot_name(value)


# --- parity --------------------------------------------------------------------------------------------------

def parity_play(primary_running: Any, primary_settings: Any, own: Any) -> dict[str, Any]:
    primary: dict[str, Any] = {"__pgrepl_node": {"server": None if primary_running is None
                                                 else {"settings": primary_running}}}
    if primary_settings is not None:
        primary["pgrepl_settings"] = primary_settings
    return {"__pgrepl_primary_name": "db1", "hostvars": {"db1": primary},
            "pgrepl_replication_settings": {"max_wal_senders": 10}, "pgrepl_settings": {},
            "__pgrepl_node": {"server": None if own is None else {"settings": own}}}


@pytest.mark.parametrize("running, settings, own, least", [
    ({"max_connections": 100, "max_wal_senders": 10}, {"max_connections": "300"}, {"max_connections": 100},
     {"max_connections": 300, "max_wal_senders": 10}),
    ({"max_connections": 300}, None, {"max_connections": 500, "max_wal_senders": 5},
     {"max_connections": 500, "max_wal_senders": 10}),
    (None, None, None, {"max_wal_senders": 10}),  # the primary does not answer: this run's values
])
def test_the_parity_minimums_of_the_node_role(running: Any, settings: Any, own: Any, least: dict[str, int]) -> None:
    variables = parity_play(running, settings, own)
    assert render(role_vars("node")["__pgrepl_want_min_settings"], variables) == least


def test_the_standby_raises_what_is_below_its_minimum() -> None:
    variables = parity_play({"max_connections": 300}, None, {"max_connections": 100, "max_wal_senders": 20})
    variables["__pgrepl_want_min_settings"] = render(role_vars("node")["__pgrepl_want_min_settings"], variables)
    raise_expr = task_var("roles/standby/tasks/parity.yml", "Raise the hot standby parity settings",
                          "__pgrepl_parity_raise")
    assert render(raise_expr, variables) == ["max_connections"]


def test_a_failover_whose_primary_does_not_answer_needs_a_fence_or_the_users_word() -> None:
    """As failover.yml and refuse.yml render it: the old primary's host did not answer (it left the play), so the
    failover cannot fence it; refused, unless fencing task files or pgrepl_confirm_dead=<it> are given."""
    refusal = task_var("roles/operations/tasks/refuse.yml", "Refuse an unsafe operation", "__problems")
    assert render(refusal, play(down=("db1",))) == [
        "db1 (group primary) does not answer, so the failover cannot fence it: promoting another node while it may "
        "still take writes would split the cluster in two. Give task files that fence it (power it off, cut it off "
        "the network) in pgrepl_fence_tasks, or confirm that it is dead: -e pgrepl_confirm_dead=db1"]
    assert render(refusal, play(down=("db1",), pgrepl_fence_tasks=["fence_db1.yml"])) == []
    assert render(refusal, play(down=("db1",), pgrepl_confirm_dead="db1")) == []
    assert render(refusal, play(down=("db1",), pgrepl_confirm_dead="db2")) == [
        "pgrepl_confirm_dead: db2 is not the primary (db1): name the host of group primary that you know is dead"]
    # A host that answers is fenced by the failover's own handover: nothing asked of the user.
    assert render(refusal, play()) == []


def test_the_hba_entries_admit_the_replication_user_to_replication_and_postgres() -> None:
    """roles/node/vars/main.yml: every peer gets the replication user's replication entry and, for a switchover's
    handover (pg_promote over SQL from the old primary's host), its entry for database postgres."""
    variables = {"__pgrepl_cluster_nodes": ["db1", "db2", "db3"], "inventory_hostname": "db1",
                 "hostvars": {"db2": {"__pgrepl_address": "10.0.0.2"}, "db3": {"__pgrepl_address": "2001:db8::3"}},
                 "__pgrepl_node": {"resolved": {}, "running": True}, "pgrepl_hba_hostnames": False,
                 "__pgrepl_layout": {"hba_file": "/etc/postgresql/15/main/pg_hba.conf"},
                 "pgrepl_replication_user": "replicator"}
    variables["__pgrepl_peer_addresses"] = render(role_vars("node")["__pgrepl_peer_addresses"], variables)
    for tls, contype, replaced in ((False, "host", "hostssl"), (True, "hostssl", "host")):
        variables["__pgrepl_tls"] = render(role_vars("node")["__pgrepl_tls"], dict(
            variables, pgrepl_tls=tls, pgrepl_tls_dir="", pgrepl_tls_ca_cert="", pgrepl_tls_cert="", pgrepl_tls_key="",
            pgrepl_tls_ca_dir="/srv/ansible/pgrepl-tls", pgrepl_tls_sslmode="verify-full",
            __pgrepl_address="10.0.0.1",
            __pgrepl_layout=dict(variables["__pgrepl_layout"], data_dir="/var/lib/postgresql/15/main",
                                 config_dir="/etc/postgresql/15/main")))
        entries = render(role_vars("node")["__pgrepl_want_hba"], variables)
        present = [e for e in entries if e.get("state", "present") == "present"]
        assert [(e["contype"], e["databases"], e["users"], e["address"], e["method"], e["comment"])
                for e in present] == [
            (contype, ["replication"], ["replicator"], "10.0.0.2/32", "scram-sha-256", "pgrepl.streaming: db2"),
            (contype, ["replication"], ["replicator"], "2001:db8::3/128", "scram-sha-256", "pgrepl.streaming: db3"),
            (contype, ["postgres"], ["replicator"], "10.0.0.2/32", "scram-sha-256", "pgrepl.streaming: db2"),
            (contype, ["postgres"], ["replicator"], "2001:db8::3/128", "scram-sha-256", "pgrepl.streaming: db3")]
        # pgrepl_tls switched: the other type's entries an earlier run wrote are removed, after the new ones.
        assert entries[:len(present)] == present
        assert [(e["contype"], e["databases"], e["address"], e["state"]) for e in entries[len(present):]] == [
            (replaced, ["replication"], "10.0.0.2/32", "absent"),
            (replaced, ["replication"], "2001:db8::3/128", "absent"),
            (replaced, ["postgres"], "10.0.0.2/32", "absent"), (replaced, ["postgres"], "2001:db8::3/128", "absent")]


def test_the_inventory_check_as_the_node_role_renders_it() -> None:
    """roles/node/vars/main.yml's view over hostvars, through inventory_checks.yml's expression (one task)."""
    nodes = ["db1", "db2", "db3"]
    servers = {"db1": {"role": "standby"}, "db2": {"role": "primary", "walsenders_count": 0}, "db3": None}
    hostvars = {name: {"inventory_hostname": name, "__pgrepl_address": f"10.0.0.{index + 1}",
                       "__pgrepl_node": {"server": servers[name], "resolved": {}, "resolve_errors": {}}}
                for index, name in enumerate(nodes)}
    variables: dict[str, Any] = {"groups": {"primary": ["db1"], "standby": ["db2", "db3"], "all": nodes},
                                 "hostvars": hostvars, "__pgrepl_cluster_nodes": nodes, "ansible_play_hosts_all": nodes}
    variables["__pgrepl_inventory_view"] = render(role_vars("node")["__pgrepl_inventory_view"], variables)
    assert variables["__pgrepl_inventory_view"]["servers"] == servers
    problems = task_var("roles/node/tasks/inventory_checks.yml", "Refuse an inventory that does not match",
                        "__problems")
    assert render(problems, variables) == [
        "db1 is in group primary but its server is in recovery (a standby). The primary now is db2 (group standby): "
        "after a switchover or failover put it in group primary (the playbook printed the new groups, and wrote "
        "them to pgrepl_inventory_file if set)"]
    groups_only = task_var("roles/operations/tasks/facts.yml", "Refuse an inventory without exactly one primary",
                           "__problems")
    assert render(groups_only, variables) == []
    variables["groups"] = {"primary": ["db1", "db2"], "standby": ["db3"]}
    assert render(groups_only, variables) == [
        "the inventory needs exactly one host in group primary (it has 2: db1, db2) and no host in both primary and "
        "standby (both: none)"]
    # Two clusters (pgrepl_cluster_id), one primary each: right; only this play's cluster is checked.
    hostvars["db2"]["pgrepl_cluster_id"] = "b"
    assert render(groups_only, variables) == []
    variables["groups"] = {"primary": ["db1", "db2", "db3"], "standby": []}
    hostvars["db3"]["pgrepl_cluster_id"] = "b"
    assert render(groups_only, variables) == [
        "cluster 'b' (pgrepl_cluster_id) needs exactly one host in group primary (it has 2: db2, db3) and no host in "
        "both primary and standby (both: none)"]
    assert render(groups_only, dict(variables, ansible_play_hosts_all=["db1"])) == []


def test_synchronous_standby_names_as_the_node_role_renders_them() -> None:
    """roles/node/vars/main.yml's __pgrepl_want_sync_names over hostvars as a play has them (role defaults are not
    in hostvars: a standby without pgrepl_sync is not synchronous)."""
    hostvars = {"db1": {}, "db2": {"pgrepl_sync": "yes"}, "db3": {}, "db-4.example": {"pgrepl_sync": True}}
    variables: dict[str, Any] = {"hostvars": hostvars, "__pgrepl_standby_names": ["db2", "db3", "db-4.example"],
                                 "__pgrepl_primary_name": "db1", "inventory_hostname": "db1",
                                 "pgrepl_sync_method": "FIRST", "pgrepl_sync_count": "1"}
    expression = role_vars("node")["__pgrepl_want_sync_names"]

    def rendered() -> Any:
        variables["__pgrepl_cascade"] = render(role_vars("node")["__pgrepl_cascade"], variables)
        return render(expression, variables)

    assert rendered() == 'FIRST 1 ("db2", "db-4.example")'
    # A cascaded standby (pgrepl_upstream: a standby) is never named: it does not acknowledge to the primary.
    hostvars["db-4.example"]["pgrepl_upstream"] = "db3"
    assert rendered() == 'FIRST 1 ("db2")'
    variables["__pgrepl_standby_names"] = ["db3"]
    assert rendered() == ""


def test_after_a_failover_to_a_synchronous_standby_the_count_is_one_the_others_can_meet() -> None:
    """Two synchronous standbys and pgrepl_sync_count 2; a failover promotes db2: the new primary gets 'ANY 1
    ("db3")', not 'ANY 2 ("db3")', under which every commit would wait for ever."""
    hostvars = {"db1": {}, "db2": {"pgrepl_sync": True}, "db3": {"pgrepl_sync": True}}
    variables: dict[str, Any] = {"hostvars": hostvars, "__pgrepl_standby_names": ["db1", "db3"],
                                 "__pgrepl_primary_name": "db2", "inventory_hostname": "db2",
                                 "pgrepl_sync_method": "ANY", "pgrepl_sync_count": 2}
    variables["__pgrepl_cascade"] = render(role_vars("node")["__pgrepl_cascade"], variables)
    assert render(role_vars("node")["__pgrepl_want_sync_names"], variables) == 'ANY 1 ("db3")'


@pytest.mark.parametrize("own, reseed, check, size, expected", [
    ({"system_identifier": 42, "standby_signal": True}, False, False, 10, (False, False)),
    ({"system_identifier": 42, "standby_signal": True}, True, False, 2 * 1024 ** 3, (True, True)),
    (None, False, True, 2 * 1024 ** 3, (True, False)),
    ({"system_identifier": 41, "standby_signal": True}, False, False, 10, (True, False)),
])
def test_the_standby_role_decides_its_copy_from_the_facts(own: Any, reseed: bool, check: bool, size: int,
                                                          expected: tuple[bool, bool]) -> None:
    """As the standby role renders it (vars/main.yml): the copy decision and where the copy runs."""
    standby = role_vars("standby")
    variables = {"__pgrepl_primary_name": "db1", "ansible_check_mode": check,
                 "pgrepl_clone_progress_min_size": 1024 ** 3, "__pgrepl_node": {"data_dir_facts": own},
                 "hostvars": {"db1": {"__pgrepl_node": {"server": {"system_identifier": 42}, "data_size": size}}}}
    if reseed:
        variables["__pgrepl_reseed"] = True
    variables["__pgrepl_copy_plan"] = render(standby["__pgrepl_copy_plan"], variables)
    assert (render(standby["__pgrepl_needs_clone"], variables),
            render(standby["__pgrepl_clone_in_background"], variables)) == expected
