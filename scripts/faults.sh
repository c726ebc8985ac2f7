#!/usr/bin/env bash
# The fault-injection bench (tests/faults, docs/faults.md): day-2 operations interrupted or disturbed at their
# state changes on one 1+2 cluster of systemd containers, each re-run until the cluster is healthy, with the write
# ledger and one write sampler per node running; the table of faults tried, converged, split-brain instants and
# commits lost.
# Usage: scripts/faults.sh [full|ci|clean|merge|keep NAME]
#   full   every fault and every task boundary of site on fresh hosts, switchover, failover, reseed and rejoin
#          (`make faults`),
#          table in .build/faults/table.md
#   ci     the deterministic subset and the unit tests of the split-brain rule (stage `faults` of scripts/test.sh)
#   clean  remove every pgrepl-flt-* container and network
#   merge  every part's table (runs named by PGREPL_FAULTS_PART) under one total: .build/faults/table-merged.md;
#          the parts kept in tests/faults/parts/ count too (a part run here again replaces its kept copy)
#   keep   copy part NAME's table and results into tests/faults/parts/ (commit them: .build/ dies with the machine)
# Options (environment):
#   PGREPL_FAULTS_ONLY        a regex: only the named faults (FAULTS in tests/faults/flt_bench.py) it matches
#   PGREPL_FAULTS_BOUNDARIES  operations whose every task boundary is faulted (full; default "site switchover
#                             failover reseed rejoin", site on fresh hosts; "" for none)
#   PGREPL_FAULTS_STEP        every n-th task boundary only, each with SIGKILL and SIGINT (default 1: all)
#   PGREPL_FAULTS_OFFSET      the first task boundary of those (default 1): step n with offsets 1..n covers all
#   PGREPL_FAULTS_PART        a name: this run is one part of the matrix (table-part-<name>.md), see merge
#   PGREPL_FAULTS_LIMIT       the first N faults only
#   PGREPL_FAULTS_IMAGE       host image (default pgrepl-test/pg15:current)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
say() { printf '[faults] %s\n' "$*"; }

# Only what this bench names (pgrepl-flt-*): nothing else on the engine.
remove_fault_containers() {
  local names nets
  names=$(docker ps -a --filter 'name=^pgrepl-flt-' --format '{{.Names}}' 2>/dev/null) || return 0
  # shellcheck disable=SC2086 # one name per word, as docker listed them
  if [[ -n $names ]]; then docker rm -f $names >/dev/null 2>&1 || true; fi
  nets=$(docker network ls --filter 'name=^pgrepl-flt-' --format '{{.Name}}' 2>/dev/null) || return 0
  # shellcheck disable=SC2086
  if [[ -n $nets ]]; then docker network rm $nets >/dev/null 2>&1 || true; fi
}

# All in one function, read whole before it runs: an edit of this file during a long run does not break it.
main() {
  local matrix=${1:-full}
  case $matrix in
    clean)
      if command -v docker >/dev/null && docker info >/dev/null 2>&1; then remove_fault_containers; fi
      say "removed the pgrepl-flt-* containers and networks"
      exit 0 ;;
    merge|keep)
      "$ROOT/.venv/bin/python" tests/faults/flt_bench.py "$matrix" "${@:2}"
      exit 0 ;;
    full|ci) ;;
    *) echo "usage: scripts/faults.sh [full|ci|clean|merge|keep NAME]" >&2; exit 2 ;;
  esac

  # A missing engine fails here (docker-engine.sh exits non-zero): never a skip, in CI or not.
  bash scripts/docker-engine.sh
  bash tests/images/build.sh "$(basename "${PGREPL_FAULTS_IMAGE:-pgrepl-test/pg15:current}" :current)" client
  export PATH=$ROOT/.venv/bin:$PATH ANSIBLE_COLLECTIONS_PATH=$ROOT/.build/collections ANSIBLE_HOME=$ROOT/.build/ansible-home

  remove_fault_containers
  trap remove_fault_containers EXIT
  trap 'exit 130' INT TERM
  if [[ $matrix == ci ]]; then
    pytest -q -p no:cacheprovider tests/faults
  else
    python tests/faults/flt_bench.py full
  fi
}

main "$@"
exit
