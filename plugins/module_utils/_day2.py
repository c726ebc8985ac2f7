# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Day-2 decisions on the facts of a cluster: what refuses an operation, which standby a failover promotes,
what a rolling restart restarts, whether a rejoin has anything to do, what a re-seed does with the slot.

Pure functions over :class:`ClusterFacts`, which :func:`cluster_facts` builds from the plain dict the operations
role passes (the node facts every host gathered, the inventory groups, the nodes that did not answer). The
filters in plugins/filter/day2.py expose them; the templates of roles/operations only present what they decide.

A refusal is a list of messages, one per reason, each naming the hosts and values it is about; an empty list
means the operation may go ahead. The wording is what the runbooks (docs/runbooks.md) quote.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Callable

from ansible.module_utils.parsing.convert_bool import boolean

from ansible_collections.pgrepl.streaming.plugins.module_utils._cascade import too_deep_after
from ansible_collections.pgrepl.streaming.plugins.module_utils._datadir import SHUT_DOWN
from ansible_collections.pgrepl.streaming.plugins.module_utils._lsn import lsn_distance, lsn_or_none
from ansible_collections.pgrepl.streaming.plugins.module_utils._names import application_name_of

PAUSED = "has its WAL replay paused (resume it with SELECT pg_wal_replay_resume() first)"


class Day2Error(ValueError):
    """Facts or options of the wrong shape; the message names the key and the value."""


@dataclass(frozen=True)
class ClusterFacts:
    """The cluster as the operations see it once every node was asked (server facts of node_prepare)."""

    primary: str
    standbys: tuple[str, ...]
    # Inventory name -> the live server facts (role, LSNs, slots, ...); None or absent: no server answered.
    servers: Mapping[str, Mapping[str, Any] | None]
    # Hosts that did not answer at all (unreachable), in play order.
    down: tuple[str, ...] = ()
    # Hosts still in the play (ansible_play_hosts); None: every host.
    play_hosts: tuple[str, ...] | None = None
    # Inventory name -> its replication slot name, its pgrepl_address, whether it is marked pgrepl_sync.
    slots: Mapping[str, str] = field(default_factory=dict)
    addresses: Mapping[str, str] = field(default_factory=dict)
    sync: Mapping[str, bool] = field(default_factory=dict)
    # Inventory name -> what its data directory says without a server (node_prepare's data_dir_facts: pg_control's
    # cluster_state, checkpoint_lsn, timeline; standby_signal); None or absent: not known.
    data_dirs: Mapping[str, Mapping[str, Any] | None] = field(default_factory=dict)
    # Inventory name -> the node it streams from (pgrepl_upstream as the node role reads it); '' or absent: the
    # primary. A cascading standby's slot lives there, and its copy comes from there.
    upstreams: Mapping[str, str] = field(default_factory=dict)

    def upstream(self, host: str) -> str:
        """The node host streams from: its upstream, or the primary."""
        return self.upstreams.get(host) or self.primary

    def cascades(self, host: str) -> list[str]:
        """The standbys that stream from host (pgrepl_upstream), in the inventory's order."""
        return [other for other in self.standbys if other != host and self.upstreams.get(other) == host]

    def server(self, host: str) -> Mapping[str, Any]:
        """The host's server facts; {} when none answered (a stopped server, an unreachable or unknown host)."""
        return self.servers.get(host) or {}

    def data_dir(self, host: str) -> Mapping[str, Any]:
        """The host's data directory facts; {} when not known."""
        return self.data_dirs.get(host) or {}

    def in_play(self, host: str) -> bool:
        return self.play_hosts is None or host in self.play_hosts


@dataclass(frozen=True)
class Day2Options:
    """The operation's variables (pgrepl_target, pgrepl_host, pgrepl_force, ...), already read as their types."""

    target: str = ""
    host: str = ""
    force: bool = False
    max_lag_bytes: int = 16777216
    # The limit as the user wrote it, for the message.
    max_lag_text: str = "16777216"
    move_aside: bool = True
    # failover: how many fencing task files the user gave (pgrepl_fence_tasks), and the host named dead
    # (pgrepl_confirm_dead): one of them lets a failover go on when the old primary does not answer.
    fence_tasks: int = 0
    confirm_dead: str = ""


@dataclass(frozen=True)
class FailoverChoice:
    """The standbys a failover may promote (inventory order) and the one it promotes ('' when none)."""

    candidates: tuple[str, ...]
    target: str


@dataclass(frozen=True)
class RestartPlan:
    """What a rolling restart restarts: standbys in order, whether the primary; the standbys to wait for."""

    standbys: tuple[str, ...]
    running_standbys: tuple[str, ...]
    primary: bool


# --- Reading the plain dicts ------------------------------------------------------------------------------------

def truthy(value: Any) -> bool:
    """A variable read as a boolean as Ansible reads one (yes/on/1/true/y/t in any case; anything else false)."""
    return boolean(value, strict=False)


def _names(value: Any, key: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise Day2Error(f"{key}: a list of inventory names is expected, got {value!r}")
    return tuple(str(item) for item in value)


def _mapping(value: Any, key: str, what: str = "a dict keyed by inventory name") -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise Day2Error(f"{key}: {what} is expected, got {value!r}")
    return value


def cluster_facts(value: Any) -> ClusterFacts:
    """The facts from their plain dict: primary, standbys, servers, down, play_hosts, slots, addresses, sync,
    data_dirs, upstreams."""
    facts = _mapping(value, "facts", "a dict of the cluster's facts (primary, standbys, servers, ...)")
    primary = facts.get("primary")
    if not isinstance(primary, str) or not primary:
        raise Day2Error(f"facts.primary: the host of group primary is expected, got {primary!r}")
    servers = _mapping(facts.get("servers"), "facts.servers")
    for host, server in servers.items():
        if server is not None and not isinstance(server, Mapping):
            raise Day2Error(f"facts.servers.{host}: the server facts (a dict) or None are expected, got {server!r}")
    data_dirs = _mapping(facts.get("data_dirs"), "facts.data_dirs")
    for host, data_dir in data_dirs.items():
        if data_dir is not None and not isinstance(data_dir, Mapping):
            raise Day2Error(f"facts.data_dirs.{host}: the data directory facts (a dict) or None are expected, got "
                            f"{data_dir!r}")
    play_hosts = facts.get("play_hosts")
    return ClusterFacts(
        primary=primary,
        standbys=_names(facts.get("standbys"), "facts.standbys"),
        servers=servers,
        down=_names(facts.get("down"), "facts.down"),
        play_hosts=None if play_hosts is None else _names(play_hosts, "facts.play_hosts"),
        slots={str(k): str(v) for k, v in _mapping(facts.get("slots"), "facts.slots").items()},
        addresses={str(k): str(v) for k, v in _mapping(facts.get("addresses"), "facts.addresses").items()},
        sync={str(k): truthy(v) for k, v in _mapping(facts.get("sync"), "facts.sync").items()},
        data_dirs=data_dirs,
        upstreams={str(k): shown(v).strip() for k, v in _mapping(facts.get("upstreams"), "facts.upstreams").items()},
    )


def day2_options(value: Any) -> Day2Options:
    """The options from their plain dict: target, host, force, max_lag_bytes, move_aside, fence_tasks, confirm_dead
    (absent: the default)."""
    options = _mapping(value, "options", "a dict of the operation's variables (target, host, force, ...)")
    default = Day2Options()
    raw_lag = options.get("max_lag_bytes", default.max_lag_bytes)
    try:
        if isinstance(raw_lag, bool) or (isinstance(raw_lag, float) and not raw_lag.is_integer()):
            raise ValueError(raw_lag)
        max_lag = int(raw_lag)
    except (TypeError, ValueError):
        raise Day2Error(f"pgrepl_switchover_max_lag_bytes: {raw_lag!r} is not a whole number of bytes") from None
    raw_fence = options.get("fence_tasks", default.fence_tasks)
    if isinstance(raw_fence, bool) or not isinstance(raw_fence, (int, str)) or not str(raw_fence).isdigit():
        raise Day2Error(f"fence_tasks: the number of pgrepl_fence_tasks files is expected, got {raw_fence!r}")
    return Day2Options(
        target=str(options.get("target") or ""),
        host=str(options.get("host") or ""),
        force=truthy(options.get("force", default.force)),
        max_lag_bytes=max_lag,
        max_lag_text=str(raw_lag),
        move_aside=truthy(options.get("move_aside", default.move_aside)),
        fence_tasks=int(raw_fence),
        confirm_dead=str(options.get("confirm_dead") or ""),
    )


# --- Shared pieces ------------------------------------------------------------------------------------------

def shown(value: Any) -> str:
    """A fact in a message: None (not known) as nothing, as the templates printed it."""
    return "" if value is None else str(value)


def received_bytes(server: Mapping[str, Any]) -> int:
    """How far a standby received WAL (its received LSN, else its replayed one) as a byte position; 0 for none."""
    return lsn_or_none(server.get("receive_lsn") or server.get("replay_lsn")) or 0


def apply_delay_ms(server: Mapping[str, Any]) -> int:
    """The standby's recovery_min_apply_delay in milliseconds (0: none, or not known)."""
    value = (server.get("settings") or {}).get("recovery_min_apply_delay")
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def delayed_message(host: str, server: Mapping[str, Any]) -> str:
    return (f"{host} is a delayed standby (recovery_min_apply_delay = {apply_delay_ms(server)} ms): it has not "
            "applied the newest commits yet")


def primary_problem(facts: ClusterFacts) -> str | None:
    """The message when the host of group primary does not run as a primary; None when it does."""
    p = facts.server(facts.primary)
    if p.get("role", "") == "primary":
        return None
    state = "not running" if not p else "in recovery, not a primary (the inventory is out of date)"
    return f"{facts.primary} (group primary) is {state}"


def slot_row(server: Mapping[str, Any], slot_name: str | None) -> Mapping[str, Any]:
    """The server's row of pg_replication_slots for that slot; {} when it has none."""
    for row in server.get("slots") or []:
        if row.get("slot_name") == slot_name:
            return row
    return {}


def _host_problem(facts: ClusterFacts, host: str, missing: str, is_primary: str) -> str | None:
    """pgrepl_host given and not the primary (the first two checks of rejoin, reseed and remove_standby)."""
    if not host:
        return f"pgrepl_host: {missing} (-e pgrepl_host=HOST)"
    if host == facts.primary:
        return f"pgrepl_host: {host} is the primary (group primary); {is_primary}"
    return None


# --- Failover: the candidates and the choice --------------------------------------------------------------

def failover_choice(facts: ClusterFacts, target: str = "") -> FailoverChoice:
    """The standbys that answer and run in recovery, and the one to promote: ``target`` when given, else the one
    that received the most WAL; a tie goes to a standby marked pgrepl_sync, then to the first in the inventory.
    A delayed standby (recovery_min_apply_delay) is a candidate only when ``target`` names it: it exists to keep
    an older state, and its promotion would first apply everything it held back."""
    candidates = tuple(host for host in facts.standbys
                       if host not in facts.down and facts.in_play(host)
                       and facts.server(host).get("role") == "standby"
                       and (host == target or not apply_delay_ms(facts.server(host))))
    if target:
        return FailoverChoice(candidates, target)
    best = ""
    best_rank: tuple[int, bool] | None = None
    for host in candidates:
        rank = (received_bytes(facts.server(host)), facts.sync.get(host, False))
        # Strictly greater: an equal rank keeps the host that comes first.
        if best_rank is None or rank > best_rank:
            best, best_rank = host, rank
    return FailoverChoice(candidates, best)


# --- Refusals, one function per operation ---------------------------------------------------------------------

def switchover_problems(facts: ClusterFacts, options: Day2Options) -> list[str]:
    """Why a switchover to options.target must not start: every reason, or [] when it is safe."""
    primary, standbys, target = facts.primary, facts.standbys, options.target
    p = facts.server(primary)
    if not target:
        return [f"pgrepl_target: give the standby to promote (-e pgrepl_target=HOST; standbys: {', '.join(standbys)})"]
    if target == primary:
        return [f"pgrepl_target: {target} is the primary already"]
    if target not in standbys:
        return [f"pgrepl_target: {target} is not a host of group standby ({', '.join(standbys)})"]
    problems = []
    t = facts.server(target)
    not_primary = primary_problem(facts)
    if handover_interrupted(facts):
        problems += resume_problems(facts, target)
    elif not_primary:
        problems.append(f"{not_primary}; a switchover needs a running primary (for a dead one, "
                        "pgrepl.streaming.failover)")
    elif t.get("role", "") != "standby":
        problems.append(f"{target} is {'not running' if not t else 'not in recovery (a second primary?)'}")
    else:
        # "A standby of this primary": its WAL receiver streams, and the primary has a streaming walsender for it.
        row = next((r for r in p.get("replication") or []
                    if r.get("application_name") == application_name_of(target)), {})
        receiver = t.get("wal_receiver") or {}
        if receiver.get("status") != "streaming" or row.get("state") != "streaming":
            receiving, sending = shown(receiver.get("status", "none")), shown(row.get("state", "no walsender"))
            problems.append(f"{target} does not stream from {primary} (its WAL receiver: {receiving}; on the "
                            f"primary: {sending})")
        if t.get("timeline") != p.get("timeline"):
            problems.append(f"{target} is on timeline {shown(t.get('timeline'))}, {primary} on "
                            f"{shown(p.get('timeline'))}")
        lag = lsn_distance(p.get("current_lsn"), t.get("replay_lsn"))
        if lag is None or lag > options.max_lag_bytes:
            problems.append(f"{target} replayed up to {shown(t.get('replay_lsn'))}, "
                            f"{lag if lag is not None else 'an unknown number of'} bytes behind {primary} at "
                            f"{shown(p.get('current_lsn'))} (pgrepl_switchover_max_lag_bytes={options.max_lag_text})")
        if t.get("replay_paused"):
            problems.append(f"{target} {PAUSED}")
        if apply_delay_ms(t):
            problems.append(f"{delayed_message(target, t)}, so the switchover would wait out the delay with writes "
                            f"stopped: set pgrepl_apply_delay: 0 for {target} and run site first, or switch over to "
                            "another standby")
    problems += [f"{host} (group standby) is a primary too: the inventory does not match the cluster"
                 for host in standbys if host != target and facts.server(host).get("role") == "primary"]
    # The old primary becomes the target's direct standby and the cascades naming it move one level down: a chain
    # longer than site supports is refused now, not by the next site run.
    problems += [f"after a switchover to {target}, {problem}"
                 for problem in too_deep_after([primary, *standbys], target, facts.upstreams)]
    return problems


def handover_interrupted(facts: ClusterFacts) -> bool:
    """Whether the primary's server is down as a switchover's handover leaves it: shut down cleanly (its shutdown
    checkpoint is the end of its WAL) and fenced (standby.signal). A switchover then goes on from there."""
    d = facts.data_dir(facts.primary)
    return (not facts.server(facts.primary) and facts.primary not in facts.down and facts.in_play(facts.primary)
            and d.get("cluster_state") == SHUT_DOWN and bool(d.get("standby_signal")))


def resume_problems(facts: ClusterFacts, target: str) -> list[str]:
    """Why a switchover interrupted after the old primary's stop cannot go on to target: [] when the target has
    received past the old primary's shutdown checkpoint (the handover then promotes it), or was promoted already
    on a later timeline (only the fence and the followers are left)."""
    primary, d, t = facts.primary, facts.data_dir(facts.primary), facts.server(target)
    checkpoint = d.get("checkpoint_lsn")
    restart = (f"start {primary} again as the primary (remove the standby.signal the interrupted switchover put in "
               "its data directory first) and run the switchover again")
    if t.get("role") == "primary":
        if (t.get("timeline") or 0) > (d.get("timeline") or 0):
            return []
        return [f"{target} is not in recovery (a second primary?) while {primary} is stopped; {restart}"]
    if t.get("role") != "standby":
        return [f"{target} is not running ({primary} is stopped and fenced by an interrupted switchover)"]
    problems = []
    if received_bytes(t) <= (lsn_or_none(checkpoint) or 0):
        problems.append(f"{target} received WAL up to {shown(t.get('receive_lsn') or t.get('replay_lsn'))}, not past "
                        f"{primary}'s shutdown checkpoint {shown(checkpoint)}: promoting it would lose commits; "
                        f"{restart}")
    if t.get("replay_paused"):
        problems.append(f"{target} {PAUSED}")
    return problems


def failover_problems(facts: ClusterFacts, options: Day2Options) -> list[str]:
    """Why a failover must not start: every reason, or [] when it may promote failover_choice's target."""
    primary, standbys, down, target = facts.primary, facts.standbys, facts.down, options.target
    problems = []
    p = {} if primary in down else facts.server(primary)
    if p.get("role", "") == "primary" and not options.force:
        problems.append(f"{primary} (group primary) is running and accepts writes: promoting another node now would "
                        "split the cluster in two. For a planned move use pgrepl.streaming.switchover; to fail over "
                        "anyway (it is stopped first), -e pgrepl_force=true")
    problems += [f"{host} (group standby) is a primary already: was the failover done? Put it in group primary"
                 for host in standbys if host not in down and facts.server(host).get("role") == "primary"]
    # An old primary that answers is fenced by the failover itself (handover); one that does not, only by the user.
    if options.confirm_dead and options.confirm_dead != primary:
        problems.append(f"pgrepl_confirm_dead: {options.confirm_dead} is not the primary ({primary}): name the host of "
                        "group primary that you know is dead")
    elif primary in down and not options.fence_tasks and options.confirm_dead != primary:
        problems.append(f"{primary} (group primary) does not answer, so the failover cannot fence it: promoting "
                        "another node while it may still take writes would split the cluster in two. Give task files "
                        "that fence it (power it off, cut it off the network) in pgrepl_fence_tasks, or confirm "
                        f"that it is dead: -e pgrepl_confirm_dead={primary}")
    choice = failover_choice(facts, target)
    candidates = choice.candidates
    delayed = [host for host in standbys if host not in down and facts.server(host).get("role") == "standby"
               and apply_delay_ms(facts.server(host)) and host != target]
    if not candidates and delayed:
        problems.append(f"no standby can be promoted without a choice: the only ones running in recovery are delayed "
                        f"({', '.join(delayed)}: recovery_min_apply_delay), which a failover promotes only when "
                        f"pgrepl_target names one (-e pgrepl_target={delayed[0]})")
    elif not candidates:
        not_answering = f"; not answering: {', '.join(down)}" if down else ""
        problems.append(f"no standby can be promoted: none is running in recovery ({', '.join(standbys)}"
                        f"{not_answering})")
    elif target and target not in candidates:
        problems.append(f"pgrepl_target: {target} is not a running standby of this cluster "
                        f"(candidates: {', '.join(candidates)})")
    elif target and not options.force:
        mine = received_bytes(facts.server(target))
        for host in candidates:
            theirs = received_bytes(facts.server(host))
            if host != target and theirs > mine:
                problems.append(f"pgrepl_target: {host} received {theirs - mine} bytes more than {target}: promoting "
                                f"{target} would lose them and leave {host} unable to follow (omit pgrepl_target to "
                                "promote the most advanced standby, or -e pgrepl_force=true)")
    if candidates and facts.server(choice.target).get("replay_paused"):
        problems.append(f"{choice.target} {PAUSED}")
    return problems


def rejoin_problems(facts: ClusterFacts, options: Day2Options) -> list[str]:
    """Why the former primary options.host must not be rejoined: the first reason, or [] when it may."""
    host = options.host
    first = _host_problem(facts, host, "give the former primary to bring back",
                          "rejoin brings a former primary back as a standby of it")
    if first:
        return [first]
    if host not in facts.standbys:
        return [f"pgrepl_host: {host} is not a host of group standby (put the former primary there, as the "
                "failover's printed groups do)"]
    not_primary = primary_problem(facts)
    if not_primary:
        return [not_primary]
    if facts.server(host).get("role", "") == "primary" and not options.force:
        return [f"{host} runs as a primary and accepts writes: what was written there since it stopped being the "
                "primary would be thrown away by the rewind. Stop it yourself, or -e pgrepl_force=true to have it "
                "stopped and rewound"]
    upstream = upstream_problem(facts, host, "a rejoin makes it stream from there")
    return [upstream] if upstream else []


def reseed_problems(facts: ClusterFacts, options: Day2Options) -> list[str]:
    """Why the standby options.host must not be copied again: the first reason, or [] when it may."""
    host = options.host
    first = _host_problem(facts, host, "give the standby to copy again", "only a standby is copied again")
    if first:
        return [first]
    if host not in facts.standbys:
        return [f"pgrepl_host: {host} is not a host of group standby ({', '.join(facts.standbys)})"]
    not_primary = primary_problem(facts)
    if not_primary:
        return [not_primary]
    if not options.move_aside:
        return [f"pgrepl_standby_move_aside is false: a re-seed replaces the data directory of {host}, which is "
                "only done by moving it aside"]
    if facts.server(host).get("role") == "primary":
        return [f"{host} runs as a primary: a re-seed would throw its writes away (for a former primary use "
                "pgrepl.streaming.rejoin)"]
    upstream = upstream_problem(facts, host, "a re-seed copies it from there")
    return [upstream] if upstream else []


def upstream_problem(facts: ClusterFacts, host: str, what: str) -> str | None:
    """The message when host is a cascading standby whose upstream does not run in recovery; None when it does (or
    host streams from the primary). A cascade is copied from its upstream and streams through its slot there."""
    upstream = facts.upstream(host)
    u = facts.server(upstream)
    if upstream == facts.primary or u.get("role") == "standby":
        return None
    state = "not running" if not u else "not in recovery (a second primary?)"
    return (f"{host} streams from {upstream} (its pgrepl_upstream), which is {state}: {what}, through its slot "
            f"there. Start {upstream} (rejoin or re-seed it), or set pgrepl_upstream of {host} to a running node and "
            "run site")


def remove_standby_problems(facts: ClusterFacts, options: Day2Options) -> list[str]:
    """Why the standby options.host must not be removed: the first reason, or [] when it may."""
    host = options.host
    first = _host_problem(facts, host, "give the standby to remove",
                          "move the primary first (pgrepl.streaming.switchover)")
    if first:
        return [first]
    if host not in facts.standbys:
        return [f"pgrepl_host: {host} is not a host of group standby ({', '.join(facts.standbys)})"]
    not_primary = primary_problem(facts)
    if not_primary:
        return [not_primary]
    cascades = facts.cascades(host)
    if cascades:
        # Refused rather than repointed here: their pgrepl_upstream would still name a node that left the cluster,
        # which site then refuses; the inventory says where they stream from, and site moves them there.
        return [f"{host} feeds the cascading standbys {', '.join(cascades)} (their pgrepl_upstream is {host}): "
                "removing it would leave them without an upstream. Set their pgrepl_upstream to another node "
                f"(empty: the primary {facts.primary}) and run site, which creates their slots there and repoints "
                f"them, then remove {host}"]
    upstream = facts.upstream(host)
    slot = slot_row(facts.server(upstream), facts.slots.get(host))
    if slot.get("active") and not options.force:
        where = "" if upstream == facts.primary else f" on {upstream}"
        return [f"{host} still streams (its slot {shown(slot.get('slot_name'))}{where} is in use by walsender "
                f"{shown(slot.get('active_pid'))}): stop it first, or -e pgrepl_force=true to cut it off and drop "
                "the slot"]
    return []


def rolling_restart_problems(facts: ClusterFacts, options: Day2Options) -> list[str]:
    """Why a rolling restart must not start: every reason, or [] when it may."""
    problems = []
    not_primary = primary_problem(facts)
    if not_primary:
        problems.append(not_primary)
    if options.target and options.target not in facts.standbys:
        problems.append(f"pgrepl_target: {options.target} is not a host of group standby (the switchover that "
                        "replaces the primary's restart goes to a standby)")
    problems += [f"{host} (group standby) is a primary: the inventory does not match the cluster"
                 for host in facts.standbys if facts.server(host).get("role") == "primary"]
    return problems


PROBLEMS: dict[str, Callable[[ClusterFacts, Day2Options], list[str]]] = {
    "switchover": switchover_problems,
    "failover": failover_problems,
    "rejoin": rejoin_problems,
    "reseed": reseed_problems,
    "remove_standby": remove_standby_problems,
    "rolling_restart": rolling_restart_problems,
}


def operation_problems(operation: str, facts: ClusterFacts, options: Day2Options) -> list[str]:
    """The refusal messages of one day-2 operation (see PROBLEMS)."""
    try:
        check = PROBLEMS[operation]
    except (KeyError, TypeError):
        raise Day2Error(f"operation: {operation!r} is not a day-2 operation ({', '.join(PROBLEMS)})") from None
    return check(facts, options)


# --- What the operations do, decided from the facts ---------------------------------------------------------

def rejoin_needed(facts: ClusterFacts, host: str) -> bool:
    """False when host already streams from its upstream's address (the primary's, or for a cascading standby the
    node its pgrepl_upstream names) on the primary's timeline (nothing to do)."""
    h = facts.server(host) if facts.in_play(host) else {}
    receiver = h.get("wal_receiver") or {}
    streams_here = (h.get("role") == "standby" and receiver.get("status") == "streaming"
                    and receiver.get("sender_host") == facts.addresses.get(facts.upstream(host))
                    and h.get("timeline") == facts.server(facts.primary).get("timeline"))
    return not streams_here


def rolling_restart_plan(facts: ClusterFacts, pending_only: bool = False) -> RestartPlan:
    """The standbys to restart one by one (running ones; with pending_only, those with a setting waiting for a
    restart), the running standbys to wait for after the primary's restart, and whether the primary restarts."""
    running = tuple(host for host in facts.standbys if facts.server(host).get("role") == "standby")
    restart = tuple(host for host in running if not pending_only or facts.server(host).get("pending_restart"))
    primary = not pending_only or bool(facts.server(facts.primary).get("pending_restart"))
    return RestartPlan(restart, running, primary)


def reseed_slot_action(facts: ClusterFacts, host: str) -> str:
    """What a re-seed does with host's slot on its upstream (the primary, or the node its pgrepl_upstream names):
    'recreate' a lost one, 'keep' it, or 'create' it."""
    slot = slot_row(facts.server(facts.upstream(host)), facts.slots.get(host))
    if slot.get("wal_status") == "lost":
        return "recreate"
    return "keep" if slot else "create"


def stale_slots(server: Mapping[str, Any] | None, cluster_slots: Iterable[str],
                keep: Iterable[str] = ()) -> list[str]:
    """The physical slots a node kept from its time as a primary that are named for a node of the cluster, but for
    those in keep (the slots of the cascading standbys that stream from it: pgrepl_upstream)."""
    names = set(cluster_slots) - set(keep)
    return [row["slot_name"] for row in (server or {}).get("slots") or []
            if row.get("slot_type") == "physical" and row.get("slot_name") in names]
