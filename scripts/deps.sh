#!/usr/bin/env bash
# Install everything the tests need, idempotently: OS packages and host locales, the pinned venv, ansible-test's
# offline pip.
# Safe to run again: each step checks first and says what it does.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=$ROOT/.venv
say() { printf '[deps] %s\n' "$*"; }

# --- OS packages and host locales: whatever any script, image build or test calls (scripts/install-packages.sh) ---
bash scripts/install-packages.sh

# --- Python: the newest of the interpreters the pinned ansible supports -------------------------------------
PYTHON=${PGREPL_PYTHON:-python3}
stamp_hash=$(sha256sum <requirements/dev.txt | cut -c1-16)
stamp=$VENV/.pgrepl-requirements-$stamp_hash
if [[ -x $VENV/bin/python && -f $stamp ]]; then
  say "venv up to date ($VENV)"
else
  # Installed over an existing venv (pip moves pins up or down), so a running test keeps its interpreter.
  if ! "$VENV/bin/python" -c 'import sys' 2>/dev/null; then
    say "creating venv $VENV"
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
  fi
  say "installing requirements/dev.txt into $VENV (about a minute the first time)"
  "$VENV/bin/pip" install -q --disable-pip-version-check --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
  "$VENV/bin/pip" install -q --disable-pip-version-check -r requirements/dev.txt 2>&1 | grep -v "^WARNING: Location" || true
  "$VENV/bin/python" -c 'import ansible, psycopg, pytest, molecule, testinfra' || { say "venv install failed"; exit 1; }
  rm -f "$VENV"/.pgrepl-requirements-*
  touch "$stamp"
fi

# --- ansible-test offline: its get-pip script comes from a host we cannot reach ---------------------------
pip_ver=$("$VENV/bin/python" - <<'PY'
import re, pathlib, ansible_test
src = pathlib.Path(ansible_test.__file__).parent / "_internal" / "python_requirements.py"
print(re.search(r"pip='([0-9.]+)'", src.read_text()).group(1))
PY
)
cache=$HOME/.ansible/test/cache
getpip=$cache/get_pip_${pip_ver//./_}.py
if [[ -f $getpip ]] && compgen -G "$cache/pip-$pip_ver-*.whl" >/dev/null && cmp -s scripts/ansible_test_get_pip.py "$getpip"; then
  say "ansible-test offline pip $pip_ver ready"
else
  say "preparing ansible-test offline pip $pip_ver in $cache"
  mkdir -p "$cache"
  "$VENV/bin/pip" download -q --disable-pip-version-check --no-deps -d "$cache" "pip==$pip_ver" 2>&1 | grep -v "^WARNING: Location" || true
  cp scripts/ansible_test_get_pip.py "$getpip"
fi

# --- The collection as Ansible finds it: .build/collections/ansible_collections/pgrepl/streaming -> here ------
link=$ROOT/.build/collections/ansible_collections/pgrepl/streaming
mkdir -p "$(dirname "$link")"
[[ -L $link && $(readlink "$link") == "$ROOT" ]] || { rm -rf "$link"; ln -s "$ROOT" "$link"; }
say "done"
