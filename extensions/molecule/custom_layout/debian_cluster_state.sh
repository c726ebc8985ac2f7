#!/bin/sh
# The state of the Debian package's own cluster (N/main), which the custom layout leaves on disk, stopped and
# masked: prepare.yml records it, the verifier runs this again and wants the same text.
# Usage (as root): debian_cluster_state.sh MAJOR
set -eu
major=$1
data=/var/lib/postgresql/$major/main
echo "## configuration files"
find "/etc/postgresql/$major/main" -type f | sort | xargs sha256sum
echo "## data directory: same cluster, shut down cleanly, never started since, nothing added or moved"
LC_ALL=C "/usr/lib/postgresql/$major/bin/pg_controldata" "$data" |
  grep -E '^(Database system identifier|Database cluster state|pg_control last modified):'
ls -1A "$data"
ls -1A "/var/lib/postgresql/$major"
echo "## units"
systemctl is-active "postgresql@$major-main.service" postgresql.service || true
systemctl is-enabled "postgresql@$major-main.service" postgresql.service || true
