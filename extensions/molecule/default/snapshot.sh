#!/bin/sh
# Everything check mode must leave exactly as it was on one host, as text: prepare.yml writes it before
# `molecule check`, check_changed_nothing.yml writes it again after and diffs the two.
# Usage (as root): snapshot.sh DATA_DIR CONFIG_DIR BIN_DIR SOCKET_DIR PORT SERVICE OUTPUT_FILE
set -eu
data=$1 conf=$2 bin=$3 socket=$4 port=$5 service=$6 out=$7

# A failing query fails the snapshot (a server that check mode stopped or broke must not pass as unchanged).
q() { runuser -u postgres -- "$bin/psql" -XAtq -v ON_ERROR_STOP=1 -h "$socket" -p "$port" -d postgres -c "$1"; }
checksum() { if [ -e "$1" ]; then sha256sum "$1"; else echo "absent $1"; fi; }

home=$(getent passwd postgres | cut -d: -f6)
{
  echo "## files"
  checksum "$conf/pg_hba.conf"
  checksum "$conf/postgresql.conf"
  checksum "$data/postgresql.auto.conf"
  checksum "$home/.pgpass"
  echo "## data directory: same directory (marker, PG_VERSION), nothing added next to it or in it"
  cat "$data/pgrepl-test-marker" "$data/PG_VERSION"
  # shellcheck disable=SC2010  # names in a data directory are PostgreSQL's own (no newlines to trip over)
  ls -1A "$data" | grep -vx 'postmaster.pid' || true
  ls -1A "$(dirname "$data")"
  echo "## server: same cluster, never restarted, not turned into a standby"
  q "SELECT system_identifier FROM pg_control_system()"
  q "SELECT pg_postmaster_start_time(), pg_is_in_recovery()"
  echo "## service"
  systemctl is-active "$service" || true
  systemctl is-enabled "$service" || true
  echo "## roles (with a hash of their password verifier)"
  q "SELECT rolname, rolsuper, rolreplication, rolcanlogin, md5(coalesce(rolpassword, '')) FROM pg_authid ORDER BY 1"
  echo "## slots"
  q "SELECT slot_name, slot_type FROM pg_replication_slots ORDER BY 1"
  echo "## settings the roles manage (as loaded, and as written for the next reload or restart)"
  q "SELECT name, setting, pending_restart FROM pg_settings WHERE name IN ('listen_addresses', 'wal_level',
     'max_wal_senders', 'max_replication_slots', 'hot_standby', 'wal_keep_size', 'max_slot_wal_keep_size',
     'wal_log_hints', 'synchronous_standby_names', 'primary_conninfo', 'primary_slot_name') ORDER BY 1"
  q "SELECT line_number, type, database, user_name, address, netmask, auth_method FROM pg_hba_file_rules"
  echo "## packages"
  dpkg-query -W -f '${Package} ${Status}\n' python3-psycopg 2>/dev/null || echo "python3-psycopg not installed"
} >"$out"
