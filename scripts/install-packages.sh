#!/usr/bin/env bash
# The OS packages that the scripts, the image builds and the tests of this project call, and the host locales the
# tests use: each installed when missing, whatever state the machine is in (Docker engine running or not, some
# tools already there). Checks first and says what it does; with nothing missing it installs nothing and never
# runs apt-get (no index update).
# Called by scripts/deps.sh and scripts/docker-engine.sh (so by `make demo`, `make bench`, `make test`).
# Proven by the `install` stage of scripts/test.sh (tests/install/check_install.py): in a clean Debian container
# it runs this script, then finds with `command -v` every command that a scan of scripts/, tests/images/, the
# Makefile and the test harnesses says they call. A command called there without a row below fails that check.
#
# Usage: scripts/install-packages.sh            install what is missing
#        scripts/install-packages.sh --table    print the table below (what the check reads) and exit
#        scripts/install-packages.sh --locales  print the host locales it generates and exit
set -euo pipefail
say() { printf '[packages] %s\n' "$*"; }

# What is needed -> the Debian package that provides it -> when. Kinds of "what":
#   NAME        a command on PATH (`command -v NAME`)
#   pg:*        PostgreSQL's server programs in /usr/lib/postgresql/<major>/bin (initdb, pg_ctl, pg_basebackup...),
#               which the integration tests call by path
#   py:venv     `python3 -m venv` works (Debian's python3 needs python3-venv for it)
# When: always, no-engine (only when no Docker engine answers: a running engine, Docker Desktop's or docker-ce's,
# is never replaced by Debian's docker.io), locales (only when a locale below is not generated yet).
# Commands of packages every Debian system has (Essential or Priority: required: coreutils, tar, sed, grep,
# util-linux, mount, apt...) need no row.
TABLE='
debootstrap  debootstrap     always      tests/images/build.sh: the images root file systems
docker       docker.io       no-engine   the client, where no engine (with its client) is installed
dockerd      docker.io       no-engine   the engine scripts/docker-engine.sh starts
git          git             always      ansible-test (sanity) and ansible-lint list files with git
ip           iproute2        always      tests/integration read the addresses and routes of this machine
locale-gen   locales         locales     generates the host locales below
make         make            always      the README commands
pg:*         postgresql      always      throwaway PostgreSQL servers of the integration tests
py:venv      python3-venv    always      scripts/deps.sh makes the venv with python3 -m venv
python3      python3         always      the interpreter of the venv
/usr/bin/python3 python3     always      the system interpreter named by the shebang of the WAL archive program (test_archive)
rsync        rsync           always      scripts/test.sh sanity: the ansible_collections copy
shellcheck   shellcheck      always      ansible-test sanity runs its shellcheck test only when it is installed
ssh          openssh-client  always      the ssh Molecule scenario (Ansible ssh connection)
'
# Host locales: throwaway clusters with initdb --locale tr_TR.UTF-8, lc_messages ru_RU.UTF-8 / zh_CN.UTF-8 (Debian's
# postgresql-NN ships the server's message catalogs, e.g. /usr/share/locale/ru/LC_MESSAGES/postgres-15.mo);
# en_US.UTF-8 is the one ansible-test runs its sanity tests under (else it warns and falls back to C.UTF-8).
LOCALES=(tr_TR.UTF-8 ru_RU.UTF-8 zh_CN.UTF-8 en_US.UTF-8)

case ${1:-} in
  --table) printf '%s\n' "$TABLE" | sed '/^$/d'; exit 0 ;;
  --locales) printf '%s\n' "${LOCALES[@]}"; exit 0 ;;
esac

present() { # $1 = what (a row's first column)
  case $1 in
    pg:*) compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null ;;
    py:venv) command -v python3 >/dev/null && python3 -c 'import ensurepip, venv' 2>/dev/null ;;
    *) command -v "$1" >/dev/null ;;
  esac
}

# `locale -a` spells them tr_TR.utf8: compare without case and dashes.
norm() { tr '[:upper:]' '[:lower:]' | tr -d -- '-'; }
missing_locales=()
have_locales=$(locale -a 2>/dev/null | norm)
for loc in "${LOCALES[@]}"; do
  grep -qx -- "$(norm <<<"$loc")" <<<"$have_locales" || missing_locales+=("$loc")
done

engine_answers() { command -v docker >/dev/null && docker info >/dev/null 2>&1; }
engine=unknown
need=()
missing=()
found=()
skipped=()
while read -r what package when _; do
  [[ -n $what ]] || continue
  if present "$what"; then found+=("$what"); continue; fi
  case $when in
    no-engine)
      [[ $engine == unknown ]] && { if engine_answers; then engine=yes; else engine=no; fi; }
      [[ $engine == yes ]] && { skipped+=("$what (a Docker engine answers)"); continue; } ;;
    locales) ((${#missing_locales[@]})) || { skipped+=("$what (the locales are there)"); continue; } ;;
  esac
  missing+=("$what")
  [[ " ${need[*]} " == *" $package "* ]] || need+=("$package")
done <<<"$TABLE"

if ((${#skipped[@]})); then
  printf -v list '%s, ' "${skipped[@]}"
  say "not needed: ${list%, }"
fi
if ((${#need[@]})); then
  if ((EUID != 0)); then
    say "missing: ${missing[*]}; run as root, or install the Debian packages: ${need[*]}"
    exit 1
  fi
  command -v apt-get >/dev/null || { say "missing: ${missing[*]}, and there is no apt-get to install ${need[*]}"; exit 1; }
  say "installing ${need[*]} (missing: ${missing[*]})"
  export DEBIAN_FRONTEND=noninteractive
  # Wait for another apt (an unattended upgrade, a parallel run) instead of failing on its lock.
  apt_opts=(-qq -o DPkg::Lock::Timeout=300)
  log=$(mktemp /tmp/pgrepl-install-packages.XXXX)
  if ! { apt-get "${apt_opts[@]}" update && apt-get "${apt_opts[@]}" install -y --no-install-recommends "${need[@]}"; } \
      >"$log" 2>&1; then
    tail -20 "$log"; rm -f "$log"; say "apt-get failed installing ${need[*]}"; exit 1
  fi
  rm -f "$log"
  for what in "${missing[@]}"; do
    present "$what" || { say "installed ${need[*]}, but $what is still missing"; exit 1; }
  done
else
  say "present: ${found[*]}"
fi

if ((${#missing_locales[@]})); then
  # locale-gen builds what /etc/locale.gen lists: un-comment our lines, or add them.
  for loc in "${missing_locales[@]}"; do
    line="$loc ${loc#*.}"
    if grep -qx "# *$line" /etc/locale.gen 2>/dev/null; then
      sed -i "s/^# *$line\$/$line/" /etc/locale.gen
    elif ! grep -qx "$line" /etc/locale.gen 2>/dev/null; then
      echo "$line" >>/etc/locale.gen
    fi
  done
  say "generating locales ${missing_locales[*]}"
  locale-gen >/dev/null
  have_locales=$(locale -a | norm)
  for loc in "${missing_locales[@]}"; do
    grep -qx -- "$(norm <<<"$loc")" <<<"$have_locales" || { say "locale-gen did not make $loc"; exit 1; }
  done
else
  say "locales present: ${LOCALES[*]}"
fi
