#!/usr/bin/env bash
# Run by bench.sh and bench-day2.sh once their images and environment are ready:
#   bash scripts/bench-run.sh SCRIPT WHAT BENCH
# removes what an earlier run left (`bash scripts/BENCH clean`, which removes only that bench's own containers and
# networks), runs the Python side SCRIPT, and at exit removes them again, or keeps them after a failure when
# PGREPL_BENCH_KEEP=1 (WHAT: their names, for the message).
set -euo pipefail
cd "$(dirname "$0")/.."
script=$1 what=$2 bench=$3

clean() { bash "scripts/$bench" clean >/dev/null; }

at_exit() {
  local rc=$?
  if [[ ${PGREPL_BENCH_KEEP:-0} == 1 && $rc -ne 0 ]]; then
    echo "[${bench%.sh}] PGREPL_BENCH_KEEP=1: leaving the $what containers; bash scripts/$bench clean removes them"
  else
    clean
  fi
  exit "$rc"
}

clean
trap at_exit EXIT
trap 'exit 130' INT TERM
python "$script"
