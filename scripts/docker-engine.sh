#!/usr/bin/env bash
# Make sure a Docker engine answers: install docker.io when dockerd is missing, start dockerd when none runs.
# Idempotent; a stale pid file from a killed engine is cleared first.
set -euo pipefail
say() { printf '[docker] %s\n' "$*"; }

if docker info >/dev/null 2>&1; then say "engine running"; exit 0; fi

if ! command -v dockerd >/dev/null; then
  say "installing docker.io (engine) and debootstrap"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends docker.io debootstrap iptables >/dev/null
fi
command -v debootstrap >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null; }

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
