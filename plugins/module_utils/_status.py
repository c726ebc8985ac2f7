# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The cluster's status from the facts every node already gathered: one document, a table of it, its problems.

Pure functions (no connection, no Ansible): the cluster_status action plugin feeds them each host's node facts
(the node_prepare result the node role registers) and prints what they return. Every decision of the
status lives here: the replication state of a standby from both ends, which numbers are shown, what looks wrong.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

from ansible_collections.pgrepl.streaming.plugins.module_utils._cascade import cascade_plan, upstream_problems
from ansible_collections.pgrepl.streaming.plugins.module_utils._errors import PgreplError
from ansible_collections.pgrepl.streaming.plugins.module_utils._lsn import lsn_distance

FORMAT_VERSION = 1
FORMATS = ("table", "json")

# The options of the cluster_status action (its module file documents them and builds its spec from this).
ARGUMENT_SPEC: dict[str, Any] = {
    "format": {"type": "str", "default": "table", "choices": list(FORMATS)},
    "strict": {"type": "bool", "default": False},
    "primary": {"type": "list", "elements": "str"},
    "standbys": {"type": "list", "elements": "str"},
    "cluster": {"type": "str", "default": ""},
}

# pg_stat_replication.state, as the upstream's WAL sender names it.
SENDER_STATES = ("startup", "catchup", "streaming", "backup", "stopping")
# States of a standby that replicates from the primary (catchup: connected, replaying what it missed).
REPLICATING = ("streaming", "catchup")
# States this status adds where PostgreSQL has no row to name it.
STOPPED = "stopped"  # the standby's own server is not running (pg_stat_wal_receiver's word for no receiver)
DISCONNECTED = "disconnected"  # a WAL receiver runs but the primary has no WAL sender for it
NO_RECEIVER = "no receiver"  # in recovery, no WAL receiver process
NO_CLUSTER = "no cluster"  # no data directory on the host
UNKNOWN = "unknown"  # neither end could tell

# pg_size_pretty's units after bytes: each is 1024 of the one before.
_SIZE_UNITS = ("kB", "MB", "GB", "TB", "PB")
_NONE = "-"


# ---------------------------------------------------------------------------------------------------------------
# Human units
# ---------------------------------------------------------------------------------------------------------------

def size_pretty(size: int | None) -> str | None:
    """Bytes as pg_size_pretty(bigint) prints them: '10239 bytes', '10 kB', '16 MB'.

    Binary multiples labelled kB, MB, GB, TB, PB; whole numbers. Plain bytes below 10240; then the first unit in
    which the value, counted in half-units (truncated), is below 20479, rounded half away from zero.
    """
    if size is None:
        return None
    magnitude = abs(int(size))
    sign = -1 if size < 0 else 1
    if magnitude < 10 * 1024:
        return f"{int(size)} bytes"
    halves = magnitude >> 9  # the value in half-kB, truncated as PostgreSQL's integer division does
    for unit in _SIZE_UNITS[:-1]:
        if halves < 20 * 1024 - 1:
            return f"{sign * ((halves + 1) >> 1)} {unit}"
        halves >>= 10
    return f"{sign * ((halves + 1) >> 1)} {_SIZE_UNITS[-1]}"


def duration_pretty(seconds: float | None) -> str | None:
    """Seconds for a table cell: '0 s', '2.5 s', '4 min 05 s', '3 h 07 min', '2 d 04 h'."""
    if seconds is None:
        return None
    value = max(0.0, float(seconds))
    if value < 10:
        text = f"{value:.1f}".rstrip("0").rstrip(".")
        return f"{text} s"
    whole = int(round(value))
    if whole < 60:
        return f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours:02d} h"


# ---------------------------------------------------------------------------------------------------------------
# One node as its own facts show it
# ---------------------------------------------------------------------------------------------------------------

def _first_line(text: Any) -> str:
    return str(text or "").strip().splitlines()[0] if str(text or "").strip() else ""


def node_view(node: dict[str, Any] | None, in_play: bool = True) -> dict[str, Any]:
    """What a node's gathered facts say about its server.

    ``reach`` is one of: ``up`` (live facts), ``unreachable`` (Ansible could not reach the host), ``failed`` (the
    facts task failed), ``no facts`` (nothing registered), ``no cluster`` (no data directory), ``stopped`` (no
    postmaster), ``no live facts`` (runs, but psycopg is missing: only the files speak), ``not reachable`` (runs, the
    connection failed). ``role`` is the live role when up, else what the data directory says, else unknown.
    """
    view: dict[str, Any] = {"reach": "no facts", "role": UNKNOWN, "detail": "", "server": None,
                            "data_dir_facts": None, "layout": {}}
    if not node:
        view["detail"] = "no facts gathered" + ("" if in_play else " (the host is not in this run: --limit?)")
        return view
    if node.get("unreachable"):
        view.update(reach="unreachable", detail=_first_line(node.get("msg")))
        return view
    if node.get("failed"):
        # A connection plugin that cannot exec (a stopped container) fails the module: its stderr says why.
        view.update(reach="failed", detail=_first_line(node.get("module_stderr")) or _first_line(node.get("msg")))
        return view
    layout = node.get("layout") or {}
    files = node.get("data_dir_facts") or {}
    view["layout"] = layout
    view["data_dir_facts"] = files or None
    if node.get("data_dir_state") != "pgdata":
        view.update(reach="no cluster", role=_NONE,
                    detail=f"no data directory at {layout.get('data_dir', '?')} ({node.get('data_dir_state')})")
        return view
    signalled = any(files.get(key) for key in ("standby_signal", "recovery_signal", "recovery_conf"))
    view["role"] = "standby" if signalled else "primary"
    if not node.get("running"):
        state = files.get("cluster_state")
        view.update(reach="stopped", detail=f"pg_control: {state}" if state else "")
        return view
    server = node.get("server")
    if not server:
        view.update(reach="no live facts", detail="psycopg is not installed on the host (status installs nothing)")
        return view
    if not server.get("reachable"):
        view.update(reach="not reachable", detail=_first_line(server.get("error")))
        return view
    view.update(reach="up", role=server.get("role") or UNKNOWN, server=server)
    return view


def pick_sender(replication: list[dict[str, Any]], application_name: str,
                slot: dict[str, Any] | None) -> dict[str, Any] | None:
    """The upstream's WAL sender row of a standby (by application_name); with several, the one holding its slot,
    else one that streams, else the first."""
    rows = [row for row in replication or [] if row.get("application_name") == application_name]
    if not rows:
        return None
    active_pid = (slot or {}).get("active_pid")
    for row in rows:
        if active_pid is not None and row.get("pid") == active_pid:
            return row
    for row in rows:
        if row.get("state") in REPLICATING:
            return row
    return rows[0]


def merge_state(view: dict[str, Any], sender: dict[str, Any] | None, upstream_known: bool) -> tuple[str, str]:
    """A standby's replication state and where it comes from ('upstream', 'receiver' or 'server').

    - Its own server is down: ``stopped`` (whatever a WAL sender on the primary may not have noticed yet); it runs
      out of recovery (a primary): ``-``.
    - The upstream has a WAL sender for it: that sender's state (startup, catchup, streaming, backup, stopping):
      only the sending side knows catchup from streaming.
    - Else, from the standby itself: ``no receiver`` (in recovery, no WAL receiver), ``disconnected`` (a WAL
      receiver that is not streaming, or streams from a server that is not the primary); when the primary's own
      facts are unknown, its receiver's ``streaming`` is taken as it says.
    - No data directory: ``no cluster``; nothing known from either end: ``unknown``.
    """
    reach = view["reach"]
    if reach == "stopped":
        return STOPPED, "server"
    if reach == "no cluster":
        return NO_CLUSTER, "server"
    server = view["server"] or {}
    if reach == "up" and not server.get("in_recovery"):
        return _NONE, "server"  # a primary itself: nothing streams to it
    if sender is not None and sender.get("state"):
        return str(sender["state"]), "upstream"
    if reach != "up":
        return (DISCONNECTED, "upstream") if upstream_known else (UNKNOWN, "server")
    receiver = server.get("wal_receiver")
    if not receiver:
        return NO_RECEIVER, "receiver"
    if receiver.get("status") == "streaming" and not upstream_known:
        return "streaming", "receiver"
    return DISCONNECTED, "receiver"


# ---------------------------------------------------------------------------------------------------------------
# Problems
# ---------------------------------------------------------------------------------------------------------------

def reach_problem(view: dict[str, Any]) -> str | None:
    """Why a node's own facts are missing or its server is down (None when it is up)."""
    reach, detail = view["reach"], view["detail"]
    service = view["layout"].get("service")
    if reach == "up":
        return None
    if reach == "stopped":
        files = view["data_dir_facts"] or {}
        unclean = files.get("cluster_state") not in (None, "shut down", "shut down in recovery")
        text = "server not running"
        if unclean:
            text += f" and not shut down cleanly ({detail}: it crashed or was killed)"
        elif detail:
            text += f" ({detail})"
        return text + (f", start it with systemctl start {service}" if service else "")
    if reach == "no cluster":
        return f"{detail}: not set up (run pgrepl.streaming.site)"
    if reach == "unreachable":
        return f"host unreachable: {detail}" if detail else "host unreachable"
    if reach == "failed":
        return f"facts could not be gathered: {detail}" if detail else "facts could not be gathered"
    if reach == "not reachable":
        return f"server runs but refuses the connection: {detail}" if detail else "server runs but cannot be reached"
    return detail or reach


def slot_problems(slot: dict[str, Any], owner: str | None, owner_replicates: bool = True) -> list[str]:
    """What is wrong with one slot of the primary (owner: the inventory standby it is for, or None).

    The slot of a standby that does not replicate is inactive as a matter of course: the standby's own problem
    says why, and the slot column that it is inactive; only a slot that streams without being used is news."""
    name = slot.get("slot_name")
    found: list[str] = []
    status = slot.get("wal_status")
    if status == "lost":
        found.append(f"slot {name} lost: the WAL it held was removed"
                     + (" (reseed the standby: pgrepl.streaming.reseed)" if owner else ""))
    elif status == "unreserved":
        found.append(f"slot {name} unreserved: past max_slot_wal_keep_size, lost at the next checkpoint unless "
                     "its standby catches up")
    if (not slot.get("active") and slot.get("slot_type", "physical") == "physical" and status != "lost"
            and (owner is None or owner_replicates)):
        held = size_pretty(slot.get("retained_bytes"))
        if owner is None:
            found.append(f"slot {name} inactive" + (f", holds {held} of WAL" if held else "")
                         + " and no standby of the inventory uses it")
        else:
            found.append(f"streams without its slot {name} (primary_slot_name?)")
    return found


def receiver_problem(view: dict[str, Any], state: str, upstream: str = "the primary") -> str | None:
    """Why a running standby does not replicate, in its WAL receiver's words (upstream: what it streams from)."""
    server = view.get("server") or {}
    receiver = server.get("wal_receiver")
    if state == NO_RECEIVER:
        conninfo = (server.get("settings") or {}).get("primary_conninfo")
        if conninfo == "":
            return "no WAL receiver: primary_conninfo is empty"
        return "no WAL receiver (it retries every wal_retrieve_retry_interval: see the server log)"
    if state == DISCONNECTED and receiver:
        sender = receiver.get("sender_host")
        where = f" from {sender}:{receiver.get('sender_port')}" if sender else ""
        if receiver.get("status") == "streaming":
            return f"its WAL receiver streams{where}, but {upstream} has no WAL sender for it"
        return f"WAL receiver {receiver.get('status')}{where}: not streaming from {upstream}"
    return None


# ---------------------------------------------------------------------------------------------------------------
# The document
# ---------------------------------------------------------------------------------------------------------------

# archive_mode values under which a server's archiver runs: on (outside recovery), always (in recovery too).
ARCHIVING_MODES = ("on", "always")


def archive_entry(server: dict[str, Any]) -> dict[str, Any] | None:
    """pg_stat_archiver of a server that archives (archive_mode on or always), with its mode; None otherwise."""
    mode = (server.get("settings") or {}).get("archive_mode")
    if mode not in ARCHIVING_MODES:
        return None
    archiver = server.get("archiver") or {}
    keys = ("archived_count", "last_archived_wal", "last_archived_time", "failed_count", "last_failed_wal",
            "last_failed_time")
    entry: dict[str, Any] = {"mode": mode, "archives": mode == "always" or not server.get("in_recovery")}
    entry.update({key: archiver.get(key) for key in keys})
    return entry


_FRACTION_RE = re.compile(r"\.([0-9]{1,6})[0-9]*")


def timestamp_instant(text: Any) -> datetime | None:
    """A timestamptz as PostgreSQL's JSON spells it ('2026-10-25T02:10:00.1+01:00') as an aware datetime, None for
    anything else. The texts alone do not order: the same server's offset changes with daylight saving time (at
    the autumn change, 02:30+02:00 comes before 02:10+01:00). Fractions padded to 6 digits for Python < 3.11."""
    if not isinstance(text, str):
        return None
    try:
        value = datetime.fromisoformat(_FRACTION_RE.sub(lambda m: "." + m.group(1).ljust(6, "0"), text, count=1))
    except ValueError:
        return None
    return value if value.tzinfo is not None else None


def archive_problem(archive: dict[str, Any] | None) -> str | None:
    """Archiving fails now: the archiver's last failure is later than its last success (or it never succeeded).
    Compared as instants (timestamp_instant); as texts only when one is not a timestamp."""
    if not archive or not archive["archives"] or not archive.get("last_failed_time"):
        return None
    last_ok = archive.get("last_archived_time")
    ok_at, failed_at = timestamp_instant(last_ok), timestamp_instant(archive["last_failed_time"])
    if ok_at is not None and failed_at is not None:
        if ok_at >= failed_at:
            return None
    elif last_ok and str(last_ok) >= str(archive["last_failed_time"]):
        return None
    return (f"archiving fails: {archive.get('last_failed_wal')} at {archive['last_failed_time']} "
            f"({archive.get('failed_count')} failures; archive_command's message is in the server log), WAL "
            "piles up in pg_wal until it succeeds")


def _slot_entry(slot: dict[str, Any] | None, name: str | None) -> dict[str, Any] | None:
    if not name and not slot:
        return None
    slot = slot or {}
    return {"name": name or slot.get("slot_name"), "present": bool(slot), "active": slot.get("active"),
            "wal_status": slot.get("wal_status"), "safe_wal_size": slot.get("safe_wal_size"),
            "safe_wal_size_pretty": size_pretty(slot.get("safe_wal_size")),
            "retained_bytes": slot.get("retained_bytes"), "retained_pretty": size_pretty(slot.get("retained_bytes"))}


def _base_entry(host: str, group: str, view: dict[str, Any]) -> dict[str, Any]:
    server = view["server"] or {}
    files = view["data_dir_facts"] or {}
    return {
        "host": host, "group": group, "role": view["role"], "server_status": view["reach"],
        "state": None, "state_source": None, "upstream_state": None, "receiver_status": None,
        "sync_state": None, "timeline": server.get("timeline") if server else files.get("timeline"),
        "lsn": None, "lsn_kind": None, "receive_lsn": None,
        "lag_bytes": None, "lag": None, "replay_delay_seconds": None, "replay_delay": None,
        "upstream_replay_lag_seconds": None, "replay_pause_state": server.get("replay_pause_state"),
        "system_identifier": server.get("system_identifier") or files.get("system_identifier"),
        "cluster_state": files.get("cluster_state"), "slot": None, "problems": [],
        # Where it streams from (pgrepl_upstream; the primary for a direct standby) and how far from the primary.
        "upstream": None, "level": 1 if group == "standby" else 0,
        "archive": archive_entry(server) if server else None,
    }


def primary_entry(host: str, view: dict[str, Any]) -> dict[str, Any]:
    entry = _base_entry(host, "primary", view)
    server = view["server"] or {}
    entry["state"] = {"up": None, "stopped": STOPPED, "no cluster": NO_CLUSTER}.get(view["reach"], UNKNOWN)
    entry["lsn"], entry["lsn_kind"] = server.get("current_lsn"), "current" if server.get("current_lsn") else None
    problem = reach_problem(view)
    archived = archive_problem(entry["archive"])
    if archived:
        entry["problems"].append(archived)
    if problem:
        entry["problems"].append(problem)
    elif server.get("in_recovery"):
        entry["problems"].append("in group primary but in recovery (a standby)")
        entry["lsn"], entry["lsn_kind"] = server.get("replay_lsn"), "replay"
    return entry


def standby_entry(host: str, view: dict[str, Any], primary_view: dict[str, Any] | None,
                  slot_name: str | None, primary_entry_: dict[str, Any] | None,
                  cascade: tuple[str, int] | None = None) -> dict[str, Any]:
    """One standby's entry. primary_view: the view of the node it streams from; cascade: (that node's name, the
    standby's level) for a cascaded standby (pgrepl_upstream), whose upstream is a standby: its WAL sender there
    says the state, and its lag is counted from the primary's position."""
    entry = _base_entry(host, "standby", view)
    server = view["server"] or {}
    upstream = (primary_view or {}).get("server") or {}
    upstream_known = bool(upstream) and (cascade is not None or not upstream.get("in_recovery"))
    where = f"its upstream {cascade[0]}" if cascade else "the primary"
    if cascade:
        entry.update(upstream=cascade[0], level=cascade[1])
    slots = {slot.get("slot_name"): slot for slot in upstream.get("slots") or []}
    slot = slots.get(slot_name) if slot_name else None
    sender = pick_sender(upstream.get("replication") or [], host[:63], slot) if upstream else None
    state, source = merge_state(view, sender, upstream_known)
    receiver = server.get("wal_receiver") or {}
    entry.update(state=state, state_source=source, upstream_state=(sender or {}).get("state"),
                 receiver_status=receiver.get("status"), sync_state=(sender or {}).get("sync_state"),
                 upstream_replay_lag_seconds=(sender or {}).get("replay_lag"))
    if server:
        entry.update(lsn=server.get("replay_lsn"), lsn_kind="replay" if server.get("replay_lsn") else None,
                     receive_lsn=server.get("receive_lsn"))
        if server.get("in_recovery"):
            entry["replay_delay_seconds"] = server.get("replay_delay_seconds")
    # Bytes the standby has still to replay: from its WAL sender when connected, else from both ends' positions.
    if sender is not None and sender.get("replay_lag_bytes") is not None:
        entry["lag_bytes"] = sender["replay_lag_bytes"]
    elif upstream_known and server.get("in_recovery"):
        head_lsn = (primary_entry_ or {}).get("lsn") if cascade else upstream.get("current_lsn")
        entry["lag_bytes"] = lsn_distance(head_lsn, server.get("replay_lsn")) if head_lsn else None
    entry["lag"] = size_pretty(entry["lag_bytes"])
    entry["replay_delay"] = duration_pretty(entry["replay_delay_seconds"])
    if upstream:
        entry["slot"] = _slot_entry(slot, slot_name)

    problems: list[str] = entry["problems"]
    problem = reach_problem(view)
    if problem:
        problems.append(problem)
    if view["reach"] == "up" and not server.get("in_recovery"):
        problems.append("in group standby but not in recovery (promoted? two primaries if the other still writes)")
    if state in SENDER_STATES and state not in REPLICATING:
        problems.append(f"not streaming: its WAL sender is in state {state}")
    elif state in (DISCONNECTED, NO_RECEIVER):
        problems.append(receiver_problem(view, state, where) or f"not streaming: {where} has no WAL sender for it")
    if server.get("replay_paused"):
        problems.append(f"replay {server.get('replay_pause_state') or 'paused'} (pg_wal_replay_resume() resumes it)")
    primary_id = (primary_entry_ or {}).get("system_identifier")
    if primary_id and entry["system_identifier"] and primary_id != entry["system_identifier"]:
        problems.append(f"another cluster than the primary's (system identifier {entry['system_identifier']}, "
                        f"the primary's {primary_id}): reseed it")
    elif (state not in REPLICATING and entry["timeline"] and (primary_entry_ or {}).get("timeline")
          and entry["timeline"] != primary_entry_["timeline"] and view["reach"] in ("up", "stopped")
          and entry["role"] == "standby"):
        problems.append(f"on timeline {entry['timeline']}, the primary on {primary_entry_['timeline']}")
    if upstream_known and slot_name:
        if slot is None:
            problems.append(f"no slot {slot_name} on {where}")
        else:
            problems.extend(slot_problems(slot, host, state in REPLICATING))
    for own in server.get("slots") or []:  # slots on the standby itself (kept from a time as a primary)
        if own.get("wal_status") in ("lost", "unreserved"):
            problems.append(f"slot {own.get('slot_name')} on this standby {own.get('wal_status')}")
    return entry


def build_status(primaries: list[str], standbys: list[str], nodes: dict[str, Any],
                 slot_names: dict[str, str] | None = None, play_hosts: list[str] | None = None,
                 upstreams: dict[str, Any] | None = None) -> dict[str, Any]:
    """The status document of the cluster: one entry per host (primary first), each with its problems.

    nodes: host -> its registered node facts (None when missing); slot_names: host -> the slot its upstream keeps
    for it; play_hosts: the hosts of this run (a host outside it is said to be left out, e.g. by --limit);
    upstreams: host -> its pgrepl_upstream (cascading standbys: their state, slot and lag read on that node).
    """
    slot_names = slot_names or {}
    upstreams = upstreams or {}
    in_play = set(play_hosts) if play_hosts is not None else None
    views = {host: node_view(nodes.get(host), in_play is None or host in in_play)
             for host in list(primaries) + list(standbys)}
    entries: list[dict[str, Any]] = []
    primary = primaries[0] if primaries else None
    head: dict[str, Any] | None = None
    for index, host in enumerate(primaries):
        entry = primary_entry(host, views[host])
        if index:
            entry["problems"].insert(0, f"group primary has {len(primaries)} hosts; {primary} is taken as the primary")
        if index == 0:
            head = entry
        entries.append(entry)
    cluster_problems = [] if primary else ["the inventory has no host in group primary"]
    nodes_order = ([primary] if primary else []) + [host for host in standbys if host not in primaries]
    plan: dict[str, dict[str, Any]] = {}
    if primary and any(upstreams.get(host) for host in nodes_order):
        cluster_problems.extend(upstream_problems(nodes_order, primary, upstreams))
        try:
            plan = cascade_plan(nodes_order, primary, upstreams)
        except PgreplError as exc:
            cluster_problems.append(str(exc))
    for host in standbys:
        if host in primaries:
            continue
        above = (plan.get(host) or {}).get("upstream") or primary
        cascade = (above, plan[host]["level"]) if above != primary and host in plan else None
        entries.append(standby_entry(host, views[host], views.get(above) if above else None,
                                     slot_names.get(host), head, cascade))
    if head is not None:
        upstream = views[primary].get("server") or {}
        if upstream and not upstream.get("in_recovery"):
            # A cascaded standby's slot on the primary is not its own any more (it streams from its upstream).
            owned = {slot_names.get(host) for host in standbys
                     if slot_names.get(host) and (plan.get(host) or {}).get("level", 1) == 1}
            for slot in upstream.get("slots") or []:
                if slot.get("slot_name") not in owned:
                    head["problems"].extend(slot_problems(slot, None))
    problems = cluster_problems + [f"{entry['host']}: {problem}" for entry in entries for problem in entry["problems"]]
    return {"format_version": FORMAT_VERSION, "primary": primary,
            "timeline": head["timeline"] if head else None, "current_lsn": head["lsn"] if head else None,
            "ok": not problems, "problems": problems, "cluster_problems": cluster_problems, "nodes": entries}


# ---------------------------------------------------------------------------------------------------------------
# Presentation
# ---------------------------------------------------------------------------------------------------------------

COLUMNS = (  # header, right-aligned
    ("host", False), ("role", False), ("state", False), ("sync", False), ("tl", True), ("lsn", False),
    ("lag_bytes", True), ("lag", True), ("delay", True), ("slot (wal_status)", False), ("problems", False))


def _cell(value: Any) -> str:
    return _NONE if value is None or value == "" else str(value)


def slot_cell(slot: dict[str, Any] | None) -> str:
    """'name (wal_status)', with the WAL it may still write before it is lost when max_slot_wal_keep_size is set."""
    if not slot:
        return _NONE
    if not slot["present"]:
        return f"{slot['name']} (missing)"
    detail = slot.get("wal_status") or "-"
    if not slot.get("active"):
        detail += ", inactive"
        if slot.get("retained_pretty") is not None:
            detail += f", holds {slot['retained_pretty']}"
    if slot.get("safe_wal_size_pretty") is not None:
        detail += f", {slot['safe_wal_size_pretty']} safe"
    return f"{slot['name']} ({detail})"


def table_rows(document: dict[str, Any]) -> list[list[str]]:
    """The table's cells, header first: only what the document holds, formatted."""
    rows = [[header for header, _right in COLUMNS]]
    for entry in document["nodes"]:
        delay = entry["replay_delay"]
        if delay is None and entry["server_status"] == "up" and entry["role"] == "standby":
            delay = UNKNOWN  # behind, but no transaction replayed since it started
        rows.append([
            entry["host"], _cell(entry["role"]), _cell(entry["state"]), _cell(entry["sync_state"]),
            _cell(entry["timeline"]), _cell(entry["lsn"]), _cell(entry["lag_bytes"]), _cell(entry["lag"]),
            _cell(delay), slot_cell(entry["slot"]), "; ".join(entry["problems"]) or "ok",
        ])
    return rows


def render_table(document: dict[str, Any]) -> list[str]:
    """Lines of a plain-text table, columns as wide as their widest cell, numbers right-aligned."""
    rows = table_rows(document)
    widths = [max(len(row[index]) for row in rows) for index in range(len(COLUMNS))]
    lines = []
    for row in rows:
        cells = []
        for index, (cell, (_header, right)) in enumerate(zip(row, COLUMNS)):
            last = index == len(COLUMNS) - 1
            cells.append(cell if last else (cell.rjust(widths[index]) if right else cell.ljust(widths[index])))
        lines.append("  ".join(cells).rstrip())
    return lines


def tree_lines(document: dict[str, Any]) -> list[str]:
    """Below the table when a standby cascades (pgrepl_upstream): the tree of who streams from whom, each
    standby with its state as its upstream's WAL sender says it. None otherwise."""
    entries = document["nodes"]
    if not any(entry.get("upstream") for entry in entries):
        return []
    primary = document.get("primary")
    children: dict[str, list[dict[str, Any]]] = {}
    for entry in entries:
        if entry["group"] == "standby":
            children.setdefault(entry.get("upstream") or primary or "", []).append(entry)
    lines = ["replication tree (pgrepl_upstream):", f"{primary} (primary)"]

    def walk(host: str, depth: int) -> None:
        for child in children.get(host, []):
            if depth > len(entries):  # a loop in the inventory: the cluster problems name it
                return
            slot = child.get("slot") or {}
            where = f", slot {slot['name']} on {host}" if slot.get("present") else ""
            lines.append(f"{'  ' * depth}{child['host']} <- {host}: {_cell(child['state'])}{where}")
            walk(child["host"], depth + 1)

    walk(primary or "", 1)
    return lines


def archive_lines(document: dict[str, Any]) -> list[str]:
    """Below the table, one line per node whose server archives (pg_stat_archiver): last archived WAL and when,
    failures and the last one. None when no node archives."""
    lines = []
    for entry in document["nodes"]:
        archive = entry.get("archive")
        if not archive or not archive["archives"]:
            continue
        done = (f"last archived {archive['last_archived_wal']} at {archive['last_archived_time']}"
                if archive.get("last_archived_wal") else "nothing archived yet")
        failed = f"{archive.get('failed_count') or 0} failed"
        if archive.get("last_failed_wal"):
            failed += f" (last {archive['last_failed_wal']} at {archive['last_failed_time']})"
        lines.append(f"archive of {entry['host']} (archive_mode={archive['mode']}): {done}, {failed}")
    return lines


def render_json(document: dict[str, Any]) -> str:
    """The document as one JSON text (keys sorted, two-space indentation: starts with '{' and ends with '}' on
    lines of their own)."""
    return json.dumps(document, indent=2, sort_keys=True, default=str)


def strict_message(document: dict[str, Any]) -> str:
    """What a strict run fails with: every problem on one line (the callback would escape newlines)."""
    count = len(document["problems"])
    return (f"pgrepl_status_strict: {count} problem{'s' if count != 1 else ''}: "
            + " | ".join(document["problems"]))
