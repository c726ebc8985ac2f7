#!/usr/bin/env bash
# Make sure a Docker engine answers. The OS packages come first, whatever the engine's state
# (scripts/install-packages.sh: debootstrap and the rest even where an engine already runs; docker.io only where
# none answers and dockerd is missing); then dockerd is started when no engine answers.
# Idempotent; a stale pid file from a killed engine is cleared first.
set -euo pipefail
say() { printf '[docker] %s\n' "$*"; }

bash "$(dirname "$0")/install-packages.sh"
if docker info >/dev/null 2>&1; then say "engine running"; exit 0; fi
command -v dockerd >/dev/null || { say "no engine answers and there is no dockerd to start"; exit 1; }

# A killed engine leaves its pid files behind; dockerd refuses to start over a live-looking one.
for pidfile in /var/run/docker.pid /run/docker/containerd/containerd.pid; do
  if [[ -f $pidfile ]] && ! kill -0 "$(cat "$pidfile" 2>/dev/null)" 2>/dev/null; then rm -f "$pidfile"; fi
done
say "starting dockerd (log: /var/log/dockerd.log)"
nohup dockerd >/var/log/dockerd.log 2>&1 &
for _ in $(seq 1 60); do
  if docker info >/dev/null 2>&1; then say "engine running"; exit 0; fi
  sleep 1
done
say "dockerd did not answer within 60 s; its log says:"; tail -20 /var/log/dockerd.log; exit 1
