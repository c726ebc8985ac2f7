#!/usr/bin/env bash
# The whole test suite, stage by stage, each stage timed. `make test` runs it; so does .ci/run.
# Usage: scripts/test.sh [stage ...]
#   stages: deps lint sanity units integration images firewall install package molecule day2 faults (default: all, in that order)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=$ROOT/.venv
export PATH=$VENV/bin:$PATH
export ANSIBLE_COLLECTIONS_PATH=$ROOT/.build/collections
export ANSIBLE_HOME=$ROOT/.build/ansible-home
stages=("$@")
((${#stages[@]})) || stages=(deps lint sanity units integration images firewall install package molecule day2 faults)
declare -A took
failed=()

stage_deps() { bash scripts/deps.sh; }

stage_lint() {
  # `|| return 1` on each: a stage runs as an `if` condition, where `set -e` does not stop at a failing command.
  ruff check plugins tests scripts extensions || return 1
  ansible-lint --profile production --offline || return 1
  # Generated docs current (module pages, README module table, role variable tables, role defaults), every YAML
  # example parsed and each task checked against its module's argument spec.
  python scripts/docs.py --check || return 1
  # Every module's documentation renders (what `ansible-doc pgrepl.streaming.<module>` shows users).
  local module modules=(plugins/modules/*.py) filters=(plugins/filter/*.yml)
  for module in "${modules[@]}"; do
    module=$(basename "$module" .py)
    ansible-doc "pgrepl.streaming.$module" >/dev/null || { echo "ansible-doc pgrepl.streaming.$module failed"; return 1; }
  done
  echo "ansible-doc renders all ${#modules[@]} modules"
  local filter
  for filter in "${filters[@]}"; do
    filter=$(basename "$filter" .yml)
    ansible-doc -t filter "pgrepl.streaming.$filter" >/dev/null || { echo "ansible-doc -t filter pgrepl.streaming.$filter failed"; return 1; }
  done
  echo "ansible-doc renders all ${#filters[@]} filters"
}

stage_sanity() {
  # ansible-test resolves symlinks, so it needs a real ansible_collections/pgrepl/streaming copy.
  local copy=$ROOT/.build/sanity/ansible_collections/pgrepl/streaming
  local pyver
  pyver=$(python -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  # Without shellcheck ansible-test skips its shellcheck test with only a warning: a skip is a failure here.
  shellcheck --version >/dev/null || { echo "shellcheck is missing: bash scripts/install-packages.sh"; return 1; }
  mkdir -p "$copy" || return 1
  rsync -a --delete --exclude .venv --exclude .build --exclude .git --exclude tests/output \
    --exclude .pytest_cache --exclude .ruff_cache --exclude '__pycache__' "$ROOT/" "$copy/" || return 1
  # It lists files with git: give the copy its own throwaway index of exactly the tracked + new files.
  (cd "$copy" && { [[ -d .git ]] || git init -q .; } && git add -A . >/dev/null \
    && ansible-test sanity --venv --python "$pyver" --color no)
}

stage_units() { pytest -q tests/unit; }

# In parallel: pytest-xdist workers, each with its own primary and standby, a whole test file at a time. Three on
# two cores: a worker often waits (a server starting, a delay under test), so two leave a core idle. The slowest
# tests are listed at the end: where to look when the stage grows past its 300 s budget.
stage_integration() { pytest -q -n "${PGREPL_TEST_WORKERS:-3}" --dist loadfile --durations=15 tests/integration; }

# Role tests need Docker: the engine is installed and started when missing, and a missing engine fails the
# stage (never a skip). On a machine without the images (a new one), building them takes minutes of mostly
# downloading and unpacking Debian packages: a whole run starts that build in the background once deps is done, so
# it overlaps lint, sanity, units and integration (which need no Docker); this stage waits for it, shows its log,
# then checks every image is current (build.sh tags by recipe hash: nothing is built twice; a failed background
# build is done again here). On a machine that has them, the background build finds each image up to date at once.
IMAGES=(pg15 pg17 pg18 pg15-ssh pg15-firewall client)
prebuild_pid=
prebuild_log=$ROOT/.build/images-prebuild.log
start_prebuild() {
  mkdir -p "$ROOT/.build"
  (
    started=$(date +%s)
    bash scripts/docker-engine.sh && bash tests/images/build.sh "${IMAGES[@]}"
    status=$?
    echo "[images] background build: exit $status after $(( $(date +%s) - started )) s"
    exit "$status"
  ) >"$prebuild_log" 2>&1 &
  prebuild_pid=$!
  echo "[images] building the test images in the background (log: $prebuild_log)"
}
stage_images() {
  if [[ -n $prebuild_pid ]]; then
    local waited_from
    waited_from=$(date +%s)
    wait "$prebuild_pid" || echo "[images] the background build failed (its log follows); building here again"
    prebuild_pid=
    cat "$prebuild_log"
    echo "[images] waited $(( $(date +%s) - waited_from )) s for the background build"
  fi
  bash tests/images/build.sh "${IMAGES[@]}"
}

# pgrepl_firewall live (tests/firewall, about 2 min): the node role's firewall task against a systemd host whose
# firewalld runs, then ufw, then neither (a member let in, a non-member not), and a site run whose standby streams
# through firewalld. A missing engine or image fails.
stage_firewall() {
  bash scripts/docker-engine.sh || return 1
  bash tests/images/build.sh pg15-firewall || return 1
  pytest -q tests/firewall
}

# The install step proven on a clean Debian container (tests/install/check_install.py): every command that a scan of
# scripts/, tests/images/, the Makefile and the test harnesses finds is installed by scripts/install-packages.sh,
# with an engine already running or none. Needs the engine and the images' bookworm base (a missing engine fails).
stage_install() {
  bash scripts/docker-engine.sh || return 1
  bash tests/images/build.sh pg15 || return 1
  python tests/install/check_install.py
}

# The collection as users get it (scripts/package.sh): built into a tarball holding nothing of the development tree,
# installed into a throwaway path, every module documented from there, the execution environment example through
# ansible-builder, then the demo's site and status from that install only on its own containers (pgrepl-pkg-*), a
# row written on the primary read on both standbys. A missing Docker engine fails the stage (never a skip).
stage_package() { bash scripts/package.sh; }

stage_molecule() {
  bash scripts/docker-engine.sh || return 1
  local scenario
  # default runs the whole sequence (check mode included); the others converge, re-run and verify.
  for scenario in ${PGREPL_MOLECULE_SCENARIOS:-default pg17 pg18 custom_layout ssh}; do
    molecule test -s "$scenario" || return 1
  done
}

# The day-2 playbooks proven under load (tests/day2): one chained run per PostgreSQL version (15, 17) on a
# primary, two standbys and the write ledger's client container. Needs Docker like molecule; under CI=true a
# missing engine or image fails the stage (never a skip).
stage_day2() {
  bash scripts/docker-engine.sh || return 1
  bash tests/images/build.sh pg15 pg17 client || return 1
  pytest -q tests/day2
}

# The fault-injection bench's CI subset (tests/faults, docs/faults.md): about a dozen faults at the state changes of
# switchover, failover and reseed on one cluster, each re-run to a healthy cluster; under CI=true a missing engine
# or image fails the stage (never a skip).
stage_faults() { bash scripts/faults.sh ci; }

for stage in "${stages[@]}"; do
  printf '\n===== stage %s =====\n' "$stage"
  start=$(date +%s)
  if "stage_$stage"; then status=ok; else status=FAILED; failed+=("$stage"); fi
  took[$stage]="$(( $(date +%s) - start ))s $status"
  printf '===== stage %s: %s =====\n' "$stage" "${took[$stage]}"
  # Without its tools nothing else can run.
  [[ $stage == deps && $status == FAILED ]] && break
  if [[ $stage == deps && " ${stages[*]} " == *" images "* ]]; then start_prebuild; fi
done

printf '\n===== summary =====\n'
for stage in "${stages[@]}"; do printf '  %-12s %s\n' "$stage" "${took[$stage]:-not run}"; done
if ((${#failed[@]})); then printf 'FAILED stages: %s\n' "${failed[*]}"; exit 1; fi
echo "all stages passed"
