#!/usr/bin/env bash
# The collection as users get it (`bash scripts/test.sh package`): the tarball built from this checkout holds what
# users need and nothing of the development tree; it installs into a throwaway collections path; every module's and
# filter's documentation renders from that install; the README's execution environment example passes
# `ansible-builder create` and ansible-builder reads the collection's dependencies; then the demo's site (twice:
# changed > 0, then changed = 0) and status run from the installed copy only, on containers of their own
# (pgrepl-pkg-*, never the user's pgrepl-demo-*), and a row written on the primary is read back on both standbys.
# The containers and their network are removed before and after. A missing Docker engine fails (never a skip).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PREFIX=pgrepl-pkg
WORK=$(mktemp -d "${TMPDIR:-/tmp}/pgrepl-package.XXXXXX")
COLLECTIONS=$WORK/collections
INSTALLED=$COLLECTIONS/ansible_collections/pgrepl/streaming
# Only the install: neither the checkout's link (.build/collections) nor ~/.ansible/collections.
export PATH=$ROOT/.venv/bin:$PATH ANSIBLE_COLLECTIONS_PATH=$COLLECTIONS ANSIBLE_HOME=$WORK/ansible-home
# The venv's cryptography warns about DSA on every ansible command: noise here.
export PYTHONWARNINGS='ignore:DSA is deprecated'
say() { printf '[package] %s\n' "$*"; }
fail() { printf '[package] FAILED: %s\n' "$*" >&2; exit 1; }
clean() { PGREPL_DEMO_PREFIX=$PREFIX bash scripts/demo.sh clean >/dev/null 2>&1 || true; }
trap 'clean; rm -rf "$WORK"' EXIT

version=$(python -c 'import yaml; print(yaml.safe_load(open("galaxy.yml"))["version"])')
tarball=$WORK/pgrepl-streaming-$version.tar.gz

# --- the tarball ---------------------------------------------------------------------------------------------
antsibull-changelog lint || fail "a changelog fragment is not valid (antsibull-changelog lint)"
grep -qx "v$version" CHANGELOG.rst || fail "CHANGELOG.rst has no section v$version: regenerate it (see README)"
ansible-galaxy collection build --output-path "$WORK" .
[[ -f $tarball ]] || fail "ansible-galaxy collection build made no $tarball"
tar -tzf "$tarball" | sed 's#/$##' | sort >"$WORK/files"
say "$(wc -l <"$WORK/files") entries in $(basename "$tarball") ($(du -k "$tarball" | cut -f1) KiB)"

# Nothing that git ignores (venv, .build, caches, tests/output, tarballs) and none of the development tooling.
ignored=$(git check-ignore --stdin <"$WORK/files" || true)
[[ -z $ignored ]] || fail "the tarball holds files that git ignores: $(echo "$ignored" | head -5 | tr '\n' ' ')"
dev_tree='^(\.[^/]*|Makefile|pytest\.ini|ruff\.toml|requirements|scripts|extensions|changelogs/fragments|tests/(output|day2|images|install|faults|unit/install|unit/scripts))(/|$)|(^|/)__pycache__(/|$)|\.pyc$|\.tar\.gz$'
dev=$(grep -E "$dev_tree" "$WORK/files" || true)
[[ -z $dev ]] || fail "the tarball holds development files: $(echo "$dev" | head -5 | tr '\n' ' ')"

# What users need: the docs and metadata, and every module, filter, role and playbook of the checkout.
need=(MANIFEST.json FILES.json README.md LICENSE CHANGELOG.rst changelogs/changelog.yaml changelogs/config.yaml
  meta/runtime.yml meta/execution-environment.yml requirements.txt bindep.txt docs/modules.md tests/sanity tests/unit)
mapfile -t tracked < <(git ls-files plugins roles playbooks | grep -E '^(plugins/(modules|module_utils|filter|action|doc_fragments)/[^/]+\.(py|yml)|roles/[^/]+/(tasks|defaults|meta|templates|vars|handlers)/.+|playbooks/[^/]+\.yml)$')
missing=()
for file in "${need[@]}" "${tracked[@]}"; do grep -qxF "$file" "$WORK/files" || missing+=("$file"); done
((${#missing[@]} == 0)) || fail "the tarball lacks: ${missing[*]}"
say "the tarball holds the ${#tracked[@]} plugin, role and playbook files and the docs, nothing of the development tree"

# --- the install ---------------------------------------------------------------------------------------------
ansible-galaxy collection install --offline -p "$COLLECTIONS" "$tarball"
ansible-galaxy collection verify --offline pgrepl.streaming 2>&1 | grep -q "Successfully verified" \
  || fail "ansible-galaxy collection verify --offline pgrepl.streaming"
found=$(ansible-galaxy collection list pgrepl.streaming --format json 2>/dev/null \
  | python -c 'import json, sys; print(" ".join(json.load(sys.stdin)))')
[[ $found == "$COLLECTIONS/ansible_collections" ]] || fail "pgrepl.streaming found in: $found (expected only $COLLECTIONS)"

# Every module and filter documented from the install (one ansible-doc call; the file each doc came from is checked).
mapfile -t plugins < <(cd "$INSTALLED" && ls plugins/modules/*.py plugins/filter/*.yml)
modules=() filters=()
for plugin in "${plugins[@]}"; do
  name=$(basename "${plugin%.*}")
  if [[ $plugin == plugins/modules/* ]]; then modules+=("pgrepl.streaming.$name"); else filters+=("pgrepl.streaming.$name"); fi
done
checkout_modules=(plugins/modules/*.py)
((${#modules[@]} == ${#checkout_modules[@]})) || fail "the install has ${#modules[@]} modules, the checkout ${#checkout_modules[@]}"
for kind in module filter; do
  if [[ $kind == module ]]; then names=("${modules[@]}"); else names=("${filters[@]}"); fi
  ansible-doc -t "$kind" --json "${names[@]}" 2>/dev/null >"$WORK/doc-$kind.json" || fail "ansible-doc -t $kind ${names[*]}"
  python - "$WORK/doc-$kind.json" "$INSTALLED" "${names[@]}" <<'PY' || fail "ansible-doc -t $kind from the install"
import json, sys
docs, installed, names = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3:]
bad = [n for n in names if not (docs.get(n, {}).get("doc") or {}).get("filename", "").startswith(installed)]
if bad:
    sys.exit(f"not documented from {installed}: {bad}")
PY
done
say "ansible-doc renders all ${#modules[@]} modules and ${#filters[@]} filters from $INSTALLED"

# --- the execution environment: the README's example definition, and the collection's own dependency files ---
mkdir -p "$WORK/ee"
awk '/^# execution-environment.yml/{on=1} on&&/^```/{exit} on' README.md >"$WORK/ee/execution-environment.yml"
[[ -s $WORK/ee/execution-environment.yml ]] || fail "README.md has no '# execution-environment.yml' example"
cp "$tarball" "$WORK/ee/"
ansible-builder create -f "$WORK/ee/execution-environment.yml" -c "$WORK/ee/context" >"$WORK/ee/create.log" 2>&1 \
  || { cat "$WORK/ee/create.log"; fail "ansible-builder create of the README's example"; }
[[ -f $WORK/ee/context/_build/collections/$(basename "$tarball") ]] || fail "the EE build context lacks the tarball"
ansible-builder introspect --sanitize "$COLLECTIONS" >"$WORK/ee/introspect.yml" 2>&1 || fail "ansible-builder introspect"
python - "$WORK/ee/introspect.yml" <<'PY' || { cat "$WORK/ee/introspect.yml"; fail "ansible-builder introspect of the install"; }
import sys, yaml
deps = yaml.safe_load(open(sys.argv[1]))
system = [line for line in deps.get("system") or [] if "from collection pgrepl.streaming" in line]
expected = [line.strip() for line in open("bindep.txt") if line.strip() and not line.startswith("#")]
if len(system) != len(expected) or deps.get("python"):
    sys.exit(f"ansible-builder read python={deps.get('python')} system={system}, expected system={expected}")
PY
say "ansible-builder: the README's v3 example creates a build context; introspect reads bindep.txt and no Python deps"

# --- the demo's site and status from the install only ---------------------------------------------------------
bash scripts/docker-engine.sh
clean
export PGREPL_DEMO_PREFIX=$PREFIX PGREPL_DEMO_COLLECTIONS_PATH=$COLLECTIONS
bash scripts/demo.sh 2>&1 | tee "$WORK/demo.log"
# The first PLAY RECAP is site's: the containers were fresh, so it changed something.
changed() { awk '/^PLAY RECAP/{n++; next} n==1 && /changed=/{for (i = 1; i <= NF; i++) if ($i ~ /^changed=/) {split($i, a, "="); s += a[2]}} n==1 && /^$/{exit} END{print s + 0}' "$1"; }
first=$(changed "$WORK/demo.log")
((first > 0)) || fail "site on fresh containers reported changed=0"
inventory=$ROOT/.build/$PREFIX/inventory.yml
say "site again from the install: nothing may change"
ansible-playbook -i "$inventory" pgrepl.streaming.site >"$WORK/site2.log" 2>&1 \
  || { tail -40 "$WORK/site2.log"; fail "the second site run"; }
grep -A5 '^PLAY RECAP' "$WORK/site2.log"
second=$(changed "$WORK/site2.log")
((second == 0)) || fail "the second site run reported changed=$second"

# Replication proven on the servers themselves: a row written on the primary is read on both standbys.
psql_on() { docker exec -u postgres "$PREFIX-$1" psql -XAtq -v ON_ERROR_STOP=1 -c "$2"; }
token="package-$(date +%s)-$$"
psql_on primary "CREATE TABLE IF NOT EXISTS pgrepl_package_check (token text); INSERT INTO pgrepl_package_check VALUES ('$token')"
[[ $(psql_on primary "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'") == 2 ]] \
  || fail "the primary does not stream to two standbys"
for standby in standby1 standby2; do
  [[ $(psql_on "$standby" "SELECT pg_is_in_recovery()") == t ]] || fail "$PREFIX-$standby is not in recovery"
  for _ in $(seq 1 30); do
    [[ $(psql_on "$standby" "SELECT count(*) FROM pgrepl_package_check WHERE token = '$token'" 2>/dev/null) == 1 ]] && break
    sleep 1
  done
  [[ $(psql_on "$standby" "SELECT count(*) FROM pgrepl_package_check WHERE token = '$token'") == 1 ]] \
    || fail "the row written on the primary did not reach $PREFIX-$standby within 30 s"
done
say "site (changed=$first, then 0) and status ran from the install; the primary's row arrived on both standbys"
