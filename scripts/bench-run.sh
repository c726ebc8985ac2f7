#!/usr/bin/env bash
# Sourced by bench.sh and bench-day2.sh: run a bench's Python side between two clean-ups of what it names.
# The sourcing script defines say() and remove_bench_containers() (only its own containers and networks).

# At exit: remove what the bench names again, or keep it after a failure when PGREPL_BENCH_KEEP=1.
bench_cleanup() {
  local rc=$?
  if [[ ${PGREPL_BENCH_KEEP:-0} == 1 && $rc -ne 0 ]]; then
    say "PGREPL_BENCH_KEEP=1: leaving the $BENCH_WHAT containers; \`bash scripts/$(basename "$0") clean\` removes them"
  else
    remove_bench_containers
  fi
  exit "$rc"
}

# run_bench SCRIPT WHAT: remove what an earlier run left, then run SCRIPT (WHAT: the containers' names, for the
# message).
run_bench() {
  BENCH_WHAT=$2
  remove_bench_containers
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM
  python "$1"
}
