#!/usr/bin/env bash
# `make bench`: the site playbook against the manual procedure of the setup guides, typed as `docker exec`
# commands, on identical fresh systemd containers, in one run; prints a table and writes
# .build/bench/results.md. What is measured and why: docs/performance.md.
#
# Options (environment):
#   PGREPL_BENCH_SETS     standby counts to build, in order, and/or clone (default "2 1 4 clone"). 2 = converge,
#                         re-run and raw; every set = site converge + raw. "2" alone is the quick run (no scaling
#                         ratio, no clone). clone = a primary of about 1.2 GB copied by the reseed playbook and by
#                         the same raw pg_basebackup, alternating (docs/performance.md, "Copying a large primary").
#   PGREPL_BENCH_CLONE_ROUNDS  rounds of the clone set, each one raw copy and one reseed (default 3; medians)
#   PGREPL_BENCH_CLONE_MB      size of the clone set's table in MB (default 1200; at least 1 GiB of data in all)
#   PGREPL_BENCH_SIDES    "site raw" (default), or one of them alone (a partial table, for debugging)
#   PGREPL_BENCH_REPEAT   run the whole sequence N times and report medians (default 1)
#   PGREPL_BENCH_PROFILE  1 = print each site run's 15 slowest tasks (the playbook always runs with
#                         ansible.posix.profile_tasks: every task's time is in .build/bench/logs/)
#   PGREPL_BENCH_PSYCOPG  fresh (default): hosts as the image has them, without psycopg, so the site playbook
#                         installs python3-psycopg from the Debian mirror (timed, as on a new host);
#                         preinstalled: both sides run on a derived image that has it (orchestration only)
#   PGREPL_BENCH_IMAGE    host image (default pgrepl-test/pg15:current, built by tests/images/build.sh)
#   PGREPL_BENCH_KEEP     1 = leave the containers of a failed set running, to look at them
# `bash scripts/bench.sh clean` removes every pgrepl-bench-* container and the pgrepl-bench network.
#   PGREPL_BENCH_STRICT   1 = exit 1 when a target is missed (by default only errors fail the run)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
IMAGE=${PGREPL_BENCH_IMAGE:-pgrepl-test/pg15:current}
NET=pgrepl-bench
say() { printf '[bench] %s\n' "$*"; }

# Only the containers this script names (pgrepl-bench-*) and its network; nothing else on the engine.
remove_bench_containers() {
  local names
  names=$(docker ps -a --filter 'name=^pgrepl-bench-' --format '{{.Names}}' 2>/dev/null) || return 0
  if [[ -n $names ]]; then
    # shellcheck disable=SC2086 # one name per word, as docker listed them
    docker rm -f $names >/dev/null 2>&1 || true
  fi
  docker network rm "$NET" >/dev/null 2>&1 || true
}

if [[ ${1:-} == clean ]]; then
  remove_bench_containers
  say "removed the pgrepl-bench-* containers and the $NET network"
  exit 0
fi

bash scripts/deps.sh
bash tests/images/build.sh "$(basename "${IMAGE%%:*}")"
export PATH=$ROOT/.venv/bin:$PATH ANSIBLE_COLLECTIONS_PATH=$ROOT/.build/collections ANSIBLE_HOME=$ROOT/.build/ansible-home
case ${PGREPL_BENCH_PSYCOPG:=fresh} in
  fresh) ;;
  preinstalled)
    # A derived image, cached by the id of the one it comes from; the raw side gets the same image.
    tag=pgrepl-bench/psycopg:$(docker image inspect -f '{{.Id}}' "$IMAGE" | cut -d: -f2 | cut -c1-12)
    if ! docker image inspect "$tag" >/dev/null 2>&1; then
      say "building $tag ($IMAGE + python3-psycopg from the Debian mirror)"
      printf 'FROM %s\nRUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-psycopg >/dev/null && rm -rf /var/lib/apt/lists/*\n' \
        "$IMAGE" | docker build -q -t "$tag" - >"$ROOT/.build/bench-image.log" 2>&1 ||
        { tail -20 "$ROOT/.build/bench-image.log"; say "building $tag failed"; exit 1; }
    fi
    IMAGE=$tag ;;
  *) say "PGREPL_BENCH_PSYCOPG=$PGREPL_BENCH_PSYCOPG: fresh or preinstalled"; exit 2 ;;
esac
export PGREPL_BENCH_IMAGE=$IMAGE PGREPL_BENCH_PSYCOPG

exec bash scripts/bench-run.sh scripts/bench.py "pgrepl-bench-*" bench.sh
