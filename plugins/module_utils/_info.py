# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Replication facts of one server in one round trip, plus what its data directory says.

The connection itself reports the server version, so the version-specific SQL is chosen before the
first query and everything (positions, pg_stat_replication, pg_stat_wal_receiver, slots, settings)
comes back in a single SELECT as one JSON object. Only pg_catalog views and functions are read.
"""

from __future__ import annotations

from typing import Any, Callable, TypeVar

from ansible_collections.pgrepl.streaming.plugins.module_utils._connection import (
    connect,
    describe_target,
    psycopg,
    query_all,
    query_one,
    sql,
)
from ansible_collections.pgrepl.streaming.plugins.module_utils._conninfo import mask
from ansible_collections.pgrepl.streaming.plugins.module_utils._datadir import read_data_dir
from ansible_collections.pgrepl.streaming.plugins.module_utils._errors import PgreplConnectionError, PgreplError
from ansible_collections.pgrepl.streaming.plugins.module_utils._lsn import (
    lsn_distance,
    lsn_or_none,
    timeline_of_wal_file,
)
from ansible_collections.pgrepl.streaming.plugins.module_utils._module import ModuleSpec
from ansible_collections.pgrepl.streaming.plugins.module_utils._server import ServerFacts, check_supported

MIN_MAJOR = 10  # pg_current_wal_lsn() and friends; 13 to 18 are the supported and tested ones

# pg_settings read for decisions; primary_conninfo is returned masked. archive_command and restore_command are
# not read: nothing decides by them, and a user's own tool's command may carry a credential.
SETTINGS_NAMES = (
    "wal_level", "max_wal_senders", "max_replication_slots", "hot_standby", "hot_standby_feedback",
    "wal_log_hints", "data_checksums", "max_slot_wal_keep_size", "wal_keep_size", "listen_addresses", "port",
    "data_directory", "config_file", "hba_file", "primary_conninfo", "primary_slot_name", "max_connections",
    "max_worker_processes", "max_prepared_transactions", "max_locks_per_transaction", "password_encryption",
    "archive_mode", "cluster_name", "recovery_min_apply_delay",
)
CONNINFO_SETTINGS = ("primary_conninfo",)
# Settings only superusers and pg_read_all_settings members can see (pg_settings hides their rows).
PRIVILEGED_SETTINGS = ("data_directory", "config_file", "hba_file", "primary_conninfo")

LAG_INTERVAL_COLUMNS = ("write_lag", "flush_lag", "replay_lag")
LAG_LSN_COLUMNS = {"sent_lsn": "sent_lag_bytes", "write_lsn": "write_lag_bytes",
                   "flush_lsn": "flush_lag_bytes", "replay_lsn": "replay_lag_bytes"}
XID_COLUMNS = ("xmin", "catalog_xmin", "backend_xmin")
# PostgreSQL 12 named flushed_lsn received_lsn; it is returned under the 13+ name.
WAL_RECEIVER_ALIASES = {"received_lsn": "flushed_lsn"}


# ---------------------------------------------------------------------------------------------------------------
# Version-specific column lists (facts from the PostgreSQL release notes and system_views.sql)
# ---------------------------------------------------------------------------------------------------------------

def replication_columns(major: int) -> list[str]:
    """Columns of pg_stat_replication read on this major (reply_time exists from 12)."""
    columns = ["pid", "usename", "application_name", "client_addr", "client_hostname", "client_port",
               "backend_start", "backend_xmin", "state", "sent_lsn", "write_lsn", "flush_lsn", "replay_lsn",
               "write_lag", "flush_lag", "replay_lag", "sync_priority", "sync_state"]
    if major >= 12:
        columns.append("reply_time")
    return columns


def slot_columns(major: int) -> list[str]:
    """Columns of pg_replication_slots: wal_status/safe_wal_size 13, two_phase 14, conflicting 16,
    inactive_since/invalidation_reason/failover/synced 17, two_phase_at 18."""
    columns = ["slot_name", "slot_type", "plugin", "database", "temporary", "active", "active_pid", "xmin",
               "catalog_xmin", "restart_lsn", "confirmed_flush_lsn"]
    if major >= 13:
        columns += ["wal_status", "safe_wal_size"]
    if major >= 14:
        columns.append("two_phase")
    if major >= 16:
        columns.append("conflicting")
    if major >= 17:
        columns += ["invalidation_reason", "inactive_since", "failover", "synced"]
    if major >= 18:
        columns.append("two_phase_at")
    return columns


def wal_receiver_columns(major: int) -> list[str]:
    """Columns of pg_stat_wal_receiver: 13 replaced received_lsn by written_lsn + flushed_lsn."""
    columns = ["pid", "status", "receive_start_lsn", "receive_start_tli"]
    if major >= 13:
        columns += ["written_lsn", "flushed_lsn"]
    else:
        columns.append("received_lsn")
    columns += ["received_tli", "last_msg_send_time", "last_msg_receipt_time", "latest_end_lsn",
                "latest_end_time", "slot_name"]
    if major >= 11:
        columns += ["sender_host", "sender_port"]
    columns.append("conninfo")
    return columns


def pause_state_expr(major: int) -> Any:
    """Replay pause state: pg_get_wal_replay_pause_state() from 14 ('not paused', 'pause requested',
    'paused'); before 14 derived from pg_is_wal_replay_paused()."""
    if major >= 14:
        return sql.SQL("pg_catalog.pg_get_wal_replay_pause_state()")
    return sql.SQL("CASE WHEN pg_catalog.pg_is_wal_replay_paused() THEN 'paused' ELSE 'not paused' END")


# ---------------------------------------------------------------------------------------------------------------
# The one query
# ---------------------------------------------------------------------------------------------------------------

def _column_exprs(columns: list[str], lag_bytes: dict[str, str], aliases: dict[str, str] | None = None) -> Any:
    """SELECT list over alias s (and the CTE ref for byte distances); types made JSON-friendly."""
    items = []
    for column in columns:
        source = sql.Identifier("s", column)
        alias = sql.Identifier((aliases or {}).get(column, column))
        if column in LAG_INTERVAL_COLUMNS:
            items.append(sql.SQL("extract(epoch FROM {})::float8 AS {}").format(source, alias))
        elif column in XID_COLUMNS:
            items.append(sql.SQL("{}::text::bigint AS {}").format(source, alias))
        else:
            items.append(sql.SQL("{} AS {}").format(source, alias))
        if column in lag_bytes:
            items.append(sql.SQL("pg_catalog.pg_wal_lsn_diff(ref.lsn, {})::bigint AS {}").format(
                source, sql.Identifier(lag_bytes[column])))
    return sql.SQL(", ").join(items)


def build_info_query(major: int) -> Any:
    """The single SELECT (one JSON object) for this major; its only parameter is the settings name list."""
    if major < MIN_MAJOR:
        raise PgreplError(f"PostgreSQL {major} is too old for replication_info (needs 10 or later; "
                          "13 to 18 are supported)")
    return sql.SQL("""
WITH pos AS (
    SELECT r.in_recovery,
           CASE WHEN r.in_recovery THEN NULL ELSE pg_catalog.pg_current_wal_lsn() END AS current_lsn,
           pg_catalog.pg_last_wal_receive_lsn() AS receive_lsn,
           pg_catalog.pg_last_wal_replay_lsn() AS replay_lsn
    FROM (SELECT pg_catalog.pg_is_in_recovery() AS in_recovery) AS r
), ref AS (
    SELECT coalesce(pos.current_lsn, greatest(pos.receive_lsn, pos.replay_lsn)) AS lsn FROM pos
)
SELECT pg_catalog.row_to_json(info) FROM (
    SELECT pg_catalog.current_setting('server_version_num')::int AS server_version_num,
           pos.in_recovery, pos.current_lsn, pos.receive_lsn, pos.replay_lsn,
           CASE WHEN pos.in_recovery THEN NULL ELSE pg_catalog.pg_walfile_name(pos.current_lsn) END
               AS current_walfile,
           (SELECT c.timeline_id FROM pg_catalog.pg_control_checkpoint() AS c) AS checkpoint_timeline,
           (SELECT c.system_identifier FROM pg_catalog.pg_control_system() AS c)::text AS system_identifier,
           CASE WHEN pos.in_recovery THEN {pause_state} END AS replay_pause_state,
           extract(epoch FROM now() - pg_catalog.pg_last_xact_replay_timestamp())::float8
               AS seconds_since_last_replay,
           pg_catalog.pg_last_xact_replay_timestamp() AS last_replay_timestamp,
           pg_catalog.pg_postmaster_start_time() AS postmaster_start_time,
           pg_catalog.current_setting('synchronous_standby_names') AS synchronous_standby_names,
           pg_catalog.current_setting('synchronous_commit') AS synchronous_commit,
           pg_catalog.current_setting('default_transaction_read_only') = 'on' AS read_only,
           current_user AS login_role,
           coalesce((SELECT a.rolsuper FROM pg_catalog.pg_roles AS a WHERE a.rolname = current_user), false)
               AS is_superuser,
           pg_catalog.pg_has_role('pg_read_all_stats', 'USAGE') AS read_all_stats,
           pg_catalog.pg_has_role('pg_read_all_settings', 'USAGE') AS read_all_settings,
           (SELECT coalesce(json_agg(pg_catalog.row_to_json(x) ORDER BY x.application_name, x.pid), '[]')
              FROM (SELECT {replication} FROM pg_catalog.pg_stat_replication AS s CROSS JOIN ref) AS x)
               AS replication,
           (SELECT pg_catalog.row_to_json(x)
              FROM (SELECT {wal_receiver} FROM pg_catalog.pg_stat_wal_receiver AS s) AS x LIMIT 1)
               AS wal_receiver,
           (SELECT coalesce(json_agg(pg_catalog.row_to_json(x) ORDER BY x.slot_name), '[]')
              FROM (SELECT {slots}, pg_catalog.pg_wal_lsn_diff(ref.lsn, s.restart_lsn)::bigint AS retained_bytes
                      FROM pg_catalog.pg_replication_slots AS s CROSS JOIN ref) AS x)
               AS slots,
           (SELECT pg_catalog.row_to_json(x)
              FROM (SELECT a.archived_count, a.last_archived_wal, a.last_archived_time, a.failed_count,
                           a.last_failed_wal, a.last_failed_time, a.stats_reset
                      FROM pg_catalog.pg_stat_archiver AS a) AS x) AS archiver,
           (SELECT json_object_agg(p.name, json_build_object('setting', p.setting, 'vartype', p.vartype))
              FROM pg_catalog.pg_settings AS p WHERE p.name = ANY(%s)) AS settings,
           (SELECT coalesce(json_agg(p.name ORDER BY p.name), '[]')
              FROM pg_catalog.pg_settings AS p WHERE p.pending_restart) AS pending_restart
    FROM pos CROSS JOIN ref
) AS info
""").format(
        pause_state=pause_state_expr(major),
        replication=_column_exprs(replication_columns(major), LAG_LSN_COLUMNS),
        wal_receiver=_column_exprs(wal_receiver_columns(major), {}, WAL_RECEIVER_ALIASES),
        slots=_column_exprs(slot_columns(major), {}),
    )


# ---------------------------------------------------------------------------------------------------------------
# Pure helpers
# ---------------------------------------------------------------------------------------------------------------

def replay_delay(in_recovery: bool, receive_lsn: str | None, replay_lsn: str | None,
                 seconds_since_last_replay: float | None) -> float | None:
    """Seconds replay is behind, counted only while received WAL waits to be replayed.

    now() - pg_last_xact_replay_timestamp() keeps growing on a standby of an idle primary, so it is a
    delay only while receive_lsn > replay_lsn; otherwise the standby is caught up: 0. Not a standby: None.
    Behind but no transaction replayed yet since start (no timestamp): None (unknown).
    """
    if not in_recovery:
        return None
    received = lsn_or_none(receive_lsn)
    replayed = lsn_or_none(replay_lsn)
    if received is None or replayed is None or received <= replayed:
        return 0.0
    if seconds_since_last_replay is None:
        return None
    return round(max(0.0, float(seconds_since_last_replay)), 3)


def convert_setting(setting: str | None, vartype: str | None) -> Any:
    """pg_settings.setting (text, base unit) -> bool / int / float / str by its vartype."""
    if setting is None:
        return None
    try:
        if vartype == "bool":
            return setting == "on"
        if vartype == "integer":
            return int(setting)
        if vartype == "real":
            return float(setting)
    except ValueError:
        return setting
    return setting


# ---------------------------------------------------------------------------------------------------------------
# Shaping the result
# ---------------------------------------------------------------------------------------------------------------

def empty_live_facts() -> dict[str, Any]:
    """Every live key, unknown (the server could not be asked)."""
    return {
        "server_version_num": None, "major": None, "system_identifier": None, "timeline": None,
        "in_recovery": None, "current_lsn": None, "receive_lsn": None, "replay_lsn": None,
        "replay_paused": None, "replay_pause_state": None, "replay_delay_seconds": None,
        "replay_lag_bytes": None, "last_replay_timestamp": None, "replication": None, "wal_receiver": None,
        "slots": None, "synchronous_standby_names": None, "synchronous_commit": None, "settings": None,
        "pending_restart": None, "postmaster_start_time": None, "walsenders_count": None,
        "active_slots_count": None, "privileges": None, "archiver": None,
    }


def shape_settings(raw: dict[str, Any] | None) -> dict[str, Any]:
    """name -> typed value for every name of SETTINGS_NAMES (None when absent or hidden); conninfo masked."""
    raw = raw or {}
    settings: dict[str, Any] = {}
    for name in SETTINGS_NAMES:
        entry = raw.get(name) or {}
        value = convert_setting(entry.get("setting"), entry.get("vartype"))
        if name in CONNINFO_SETTINGS and isinstance(value, str):
            value = mask(value)
        settings[name] = value
    return settings


def restricted_columns_warning(privileges: dict[str, Any]) -> str | None:
    """What comes back null for a login without pg_monitor's privileges (None when it sees everything)."""
    hidden: list[str] = []
    missing: list[str] = []
    if not privileges["read_all_stats"]:
        missing.append("pg_read_all_stats")
        hidden.append("the details of pg_stat_replication and pg_stat_wal_receiver (state, LSNs, lags, "
                      "sync_state, sender, conninfo)")
    if not privileges["read_all_settings"]:
        missing.append("pg_read_all_settings")
        hidden.append("the settings " + ", ".join(PRIVILEGED_SETTINGS))
    if not missing:
        return None
    return (f"login_user: the role {privileges['login_role']!r} is neither a superuser nor a member of pg_monitor "
            f"(it lacks {' and '.join(missing)}), so {' and '.join(hidden)} are null: "
            "GRANT pg_monitor TO this role, or connect as a superuser")


def shape_info(row: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The JSON object of the query -> the module's live facts and warnings."""
    warnings: list[str] = []
    in_recovery = bool(row["in_recovery"])
    wal_receiver = row.get("wal_receiver")
    if wal_receiver is not None:
        wal_receiver = dict(wal_receiver)
        wal_receiver["conninfo"] = mask(wal_receiver.get("conninfo"))
    replication = list(row.get("replication") or [])
    slots = list(row.get("slots") or [])
    if in_recovery:
        timeline = (wal_receiver or {}).get("received_tli") or row.get("checkpoint_timeline")
    else:
        timeline = timeline_of_wal_file(row.get("current_walfile")) or row.get("checkpoint_timeline")
    receive_lsn, replay_lsn = row.get("receive_lsn"), row.get("replay_lsn")
    lag_bytes = None
    if in_recovery and receive_lsn is not None and replay_lsn is not None:
        lag_bytes = max(0, lsn_distance(receive_lsn, replay_lsn) or 0)
    pause_state = row.get("replay_pause_state")
    privileges = {"login_role": row["login_role"], "superuser": bool(row["is_superuser"]),
                  "read_all_stats": bool(row["read_all_stats"]),
                  "read_all_settings": bool(row["read_all_settings"])}
    facts: dict[str, Any] = {
        "server_version_num": int(row["server_version_num"]),
        "major": int(row["server_version_num"]) // 10000,
        "system_identifier": row.get("system_identifier"),
        "timeline": timeline,
        "in_recovery": in_recovery,
        "current_lsn": row.get("current_lsn"),
        "receive_lsn": receive_lsn,
        "replay_lsn": replay_lsn,
        "replay_paused": None if pause_state is None else pause_state != "not paused",
        "replay_pause_state": pause_state,
        "replay_delay_seconds": replay_delay(in_recovery, receive_lsn, replay_lsn,
                                             row.get("seconds_since_last_replay")),
        "replay_lag_bytes": lag_bytes,
        "last_replay_timestamp": row.get("last_replay_timestamp"),
        "replication": replication,
        "wal_receiver": wal_receiver,
        "slots": slots,
        "synchronous_standby_names": row.get("synchronous_standby_names"),
        "synchronous_commit": row.get("synchronous_commit"),
        "settings": shape_settings(row.get("settings")),
        "pending_restart": list(row.get("pending_restart") or []),
        "postmaster_start_time": row.get("postmaster_start_time"),
        "walsenders_count": len(replication),
        "active_slots_count": sum(1 for slot in slots if slot.get("active")),
        "privileges": privileges,
        # pg_stat_archiver (counts since its stats_reset): what the archiver of this server did.
        "archiver": row.get("archiver"),
    }
    restricted = restricted_columns_warning(privileges)
    if restricted:
        warnings.append(restricted)
    if in_recovery and facts["replay_delay_seconds"] is None:
        warnings.append("replay is behind (receive_lsn > replay_lsn) but no transaction has been replayed since "
                        "the standby started, so replay_delay_seconds is unknown (null)")
    return facts, warnings


def query_server(params: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Connect, run the one query, shape it. Raises PgreplError for configuration errors and query failures."""
    conn = connect(params)
    try:
        version_num = int(conn.info.server_version)
        major = version_num // 10000
        query = build_info_query(major)
        try:
            result = query_one(conn, query, (list(SETTINGS_NAMES),))
        except psycopg.Error as exc:
            raise PgreplError(f"reading the replication facts of {describe_target(params)} failed: "
                              f"{str(exc).strip()}") from None
    finally:
        conn.close()
    if not result or result[0] is None:
        raise PgreplError(f"reading the replication facts of {describe_target(params)} returned nothing")
    row = result[0]
    facts, warnings = shape_info(row)
    server = ServerFacts(version_num=facts["server_version_num"], in_recovery=facts["in_recovery"],
                         is_superuser=facts["privileges"]["superuser"],
                         current_user=facts["privileges"]["login_role"], read_only=bool(row.get("read_only")))
    unsupported = check_supported(server)
    if unsupported:
        warnings.insert(0, unsupported)
    return facts, warnings


def replication_info(params: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The module's whole result (changed is always false) and its warnings.

    Bad input (data_dir, bin_dir, connection options) and authentication/configuration errors raise
    PgreplError. A server that is down or not accepting connections is a fact, not a failure:
    reachable=false with the connection message in ``error``.
    """
    data_dir = params.get("data_dir")
    data_dir_facts: dict[str, Any] | None = None
    warnings: list[str] = []
    if data_dir:
        data_dir_facts, dir_warnings = read_data_dir(data_dir, params.get("bin_dir"))
        warnings += dir_warnings
    elif params.get("bin_dir"):
        warnings.append("bin_dir is only used with data_dir (to run pg_controldata): ignored")

    result: dict[str, Any] = {"changed": False, "reachable": False, "role": "unknown", "error": None,
                              "facts_source": None}
    result.update(empty_live_facts())
    try:
        live, live_warnings = query_server(params)
    except PgreplConnectionError as exc:
        message = str(exc)
        if not exc.unreachable:
            raise
        result["error"] = message
        if data_dir_facts is not None:
            result["data_dir_facts"] = data_dir_facts
            result["major"] = data_dir_facts["major"]
            result["system_identifier"] = data_dir_facts["system_identifier"]
            result["timeline"] = data_dir_facts["timeline"]
            result["facts_source"] = "data_dir"
            if data_dir_facts["postmaster_running"]:
                warnings.append(
                    f"the server at {describe_target(params)} cannot be reached but the postmaster of "
                    f"{data_dir_facts['data_dir']} is running (pid {data_dir_facts['postmaster_pid']}, port "
                    f"{data_dir_facts['postmaster_port']}): role is unknown, not down; check login_host/login_port")
            else:
                result["role"] = "down"
        else:
            result["data_dir_facts"] = None
        return result, warnings

    result.update(live)
    result["reachable"] = True
    result["facts_source"] = "server"
    result["role"] = "standby" if live["in_recovery"] else "primary"
    result["data_dir_facts"] = data_dir_facts
    warnings += live_warnings
    if data_dir_facts is not None and data_dir_facts.get("system_identifier") \
            and live["system_identifier"] and data_dir_facts["system_identifier"] != live["system_identifier"]:
        warnings.append(
            f"data_dir: {data_dir_facts['data_dir']!r} has system identifier {data_dir_facts['system_identifier']}, "
            f"but the server at {describe_target(params)} has {live['system_identifier']}: they are not the "
            "same cluster")
    return result, warnings


REPLICATION_INFO_SPEC = ModuleSpec({
    "data_dir": {"type": "path"},
    "bin_dir": {"type": "path"},
})


def run_replication_info(module: Any) -> dict[str, Any]:
    """The module body: the live facts (and, with data_dir, the data directory's), warnings passed on."""
    result, warnings = replication_info(module.params)
    for warning in warnings:
        module.warn(warning)
    return result


T = TypeVar("T")


# What pg_basebackup copies of a primary, near enough: every database's files (in every tablespace) and the shared
# catalogs (global/). pg_wal is left out: -X stream brings only the WAL written during the copy, not the WAL the
# primary keeps (a slot may hold gigabytes of it).
# A constant text (no identifiers to quote); a plain string, as the module must import where psycopg is missing.
DATA_SIZE_QUERY = ("SELECT (SELECT sum(pg_catalog.pg_database_size(d.oid)) FROM pg_catalog.pg_database AS d)::bigint"
                   " + pg_catalog.pg_tablespace_size('pg_global')")


def _ask_once(params: dict[str, Any], unknown: str, ask: Callable[[Any], T]) -> tuple[T | None, list[str]]:
    """ask(connection) on a connection of its own, closed after; None with a warning '<unknown> of <server> ...:
    why' when the server cannot be reached or the query fails (a fact a module can do without)."""
    try:
        conn = connect(params)
    except PgreplError as exc:
        return None, [unknown.format(describe_target(params)) + f": {exc}"]
    try:
        return ask(conn), []
    except psycopg.Error as exc:
        return None, [unknown.format(describe_target(params)) + f": {str(exc).strip()}"]
    finally:
        conn.close()


def _data_size_of(conn: Any) -> int | None:
    row = query_one(conn, DATA_SIZE_QUERY)
    return int(row[0]) if row and row[0] is not None else None


def data_size(params: dict[str, Any]) -> tuple[int | None, list[str]]:
    """Bytes of data of the server (see DATA_SIZE_QUERY), or None with a warning saying why it is unknown."""
    return _ask_once(params, "the data size of {} is unknown", _data_size_of)


# The tablespaces a copy of the primary must place (standby_clone's tablespaces): every one but pg_default and
# pg_global, where it lives on the primary and its size (the free space check per target filesystem). An in-place
# tablespace (allow_in_place_tablespaces) has a relative location, pg_tblspc/<oid>: it is copied with the data
# directory. A constant text, as DATA_SIZE_QUERY.
TABLESPACES_QUERY = ("SELECT t.spcname AS name, pg_catalog.pg_tablespace_location(t.oid) AS location,"
                     " pg_catalog.pg_tablespace_size(t.oid) AS size FROM pg_catalog.pg_tablespace AS t"
                     " WHERE t.spcname NOT IN ('pg_default', 'pg_global') ORDER BY t.spcname")


def _tablespaces_of(conn: Any) -> list[dict[str, Any]]:
    return [{"name": row["name"], "location": row["location"], "size": row["size"]}
            for row in query_all(conn, TABLESPACES_QUERY)]


def tablespaces(params: dict[str, Any]) -> tuple[list[dict[str, Any]] | None, list[str]]:
    """[{name, location, size}] of the server's tablespaces (see TABLESPACES_QUERY), or None with a warning."""
    return _ask_once(params, "the tablespaces of {} are unknown", _tablespaces_of)
