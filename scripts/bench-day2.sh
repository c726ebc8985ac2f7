#!/usr/bin/env bash
# `make bench-day2`: the switchover and failover playbooks against the raw manual procedure (docker exec), each on
# a fresh 1+2 cluster with the write ledger running; prints the write gaps, the time to the first write on the new
# primary and the lost commits, next to the targets, and writes .build/bench/day2.md and day2.json.
# What is measured: scripts/bench_day2.py's docstring and docs/performance.md.
#
# Options (environment):
#   PGREPL_BENCH_DAY2_SIDES   "playbook raw" (default), or one of them alone
#   PGREPL_BENCH_DAY2_REPEAT  rounds per side, medians reported (default 1)
#   PGREPL_BENCH_DAY2_SYNC    1 = one standby synchronous (default: both asynchronous, as the raw procedure has them)
#   PGREPL_BENCH_DAY2_IMAGE   host image (default pgrepl-test/pg15:current, built by tests/images/build.sh)
#   PGREPL_BENCH_DAY2_CONNECTION  root (default: as make bench, no become, pipelining) or su (the day-2 chain's
#                             inventory: become via su, no pipelining)
#   PGREPL_BENCH_KEEP         1 = leave the containers of a failed side running, to look at them
#   PGREPL_BENCH_STRICT       1 = exit 1 when a target is missed (by default only errors fail the run)
# `bash scripts/bench-day2.sh clean` removes every pgrepl-bd2-* container and network.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
IMAGE=${PGREPL_BENCH_DAY2_IMAGE:-pgrepl-test/pg15:current}
say() { printf '[bench-day2] %s\n' "$*"; }

# Only what this script names (pgrepl-bd2-*): nothing else on the engine.
remove_bench_containers() {
  local names nets
  names=$(docker ps -a --filter 'name=^pgrepl-bd2-' --format '{{.Names}}' 2>/dev/null) || return 0
  # shellcheck disable=SC2086 # one name per word, as docker listed them
  if [[ -n $names ]]; then docker rm -f $names >/dev/null 2>&1 || true; fi
  nets=$(docker network ls --filter 'name=^pgrepl-bd2-' --format '{{.Name}}' 2>/dev/null) || return 0
  # shellcheck disable=SC2086
  if [[ -n $nets ]]; then docker network rm $nets >/dev/null 2>&1 || true; fi
}

if [[ ${1:-} == clean ]]; then
  command -v docker >/dev/null && docker info >/dev/null 2>&1 && remove_bench_containers
  say "removed the pgrepl-bd2-* containers and networks"
  exit 0
fi

bash scripts/deps.sh
bash tests/images/build.sh "$(basename "${IMAGE%%:*}")" client
export PATH=$ROOT/.venv/bin:$PATH ANSIBLE_COLLECTIONS_PATH=$ROOT/.build/collections ANSIBLE_HOME=$ROOT/.build/ansible-home
export PGREPL_BENCH_DAY2_IMAGE=$IMAGE

exec bash scripts/bench-run.sh scripts/bench_day2.py "pgrepl-bd2-*" bench-day2.sh
