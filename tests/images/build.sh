#!/usr/bin/env bash
# Build the test host images from Debian packages alone (no registry is reachable): debootstrap a root file
# system, `docker import` it, then `docker build` the node and ssh layers on top.
# Each image is tagged with a hash of its recipe and rebuilt only when the recipe changes; `:current` points at
# the last good build, so a broken mirror day (sid) keeps the last good image instead of failing everything.
# Usage: tests/images/build.sh [pg15|pg17|pg18|pg15-ssh|pg15-firewall|client ...]   (default: all)
# client: the write ledger's client for tests/day2 (pg15 + Debian's python3-psycopg), no server of its own.
# pg15-firewall: pg15 + firewalld (running) and ufw (inactive), for tests/firewall.
set -euo pipefail
cd "$(dirname "$0")"
HERE=$PWD
MIRROR=${PGREPL_DEBIAN_MIRROR:-http://deb.debian.org/debian}
# The base: an ordinary minimal Debian host; PostgreSQL comes in the node layer (Dockerfile.node).
PACKAGES=systemd,systemd-sysv,dbus,python3,python3-apt,procps,iproute2,ca-certificates,sudo,less,ssl-cert
say() { printf '[images] %s\n' "$*"; }

# sid's systemd (258+) no longer boots on cgroup v1 hosts such as this machine's Docker engine, so PostgreSQL 18
# comes from sid onto trixie's systemd.
suite_of() { case $1 in pg15* | client) echo bookworm ;; pg17* | pg18*) echo trixie ;; *) return 1 ;; esac; }
package_of() { case $1 in pg18*) echo postgresql-18/sid ;; *) echo postgresql ;; esac; }
recipe_hash() { # everything that shapes image $1
  {
    cat build.sh Dockerfile.node pgrepl-firstboot-cluster.service
    echo "$PACKAGES $(suite_of "$1") $(package_of "$1")"
    if [[ $1 == *-ssh ]]; then cat Dockerfile.ssh; fi
    if [[ $1 == client ]]; then cat Dockerfile.client; fi
    if [[ $1 == *-firewall ]]; then cat Dockerfile.firewall; fi
  } | sha256sum | cut -c1-12
}
have() { docker image inspect "$1" >/dev/null 2>&1; }

build_base() { # $1 = suite -> image pgrepl-test/base-<suite>:<hash>
  local suite=$1 tag="pgrepl-test/base-$1:$2" root
  have "$tag" && return 0
  root=$(mktemp -d "/tmp/pgrepl-rootfs-$suite.XXXX")
  say "debootstrap $suite (about 2-3 minutes)"
  if ! debootstrap --variant=minbase --include="$PACKAGES" "$suite" "$root" "$MIRROR" >"$root.log" 2>&1; then
    tail -15 "$root.log"; rm -rf "$root"; return 1
  fi
  echo "$suite" >"$root/etc/pgrepl-suite"
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  tar -C "$root" -c . | docker import - "$tag" >/dev/null
  rm -rf "$root" "$root.log"
}

build_image() { # $1 = image name (pg15, pg17, pg18, pg15-ssh, client)
  local name=$1 suite hash tag
  suite=$(suite_of "$name") || { say "unknown image $name"; return 2; }
  hash=$(recipe_hash "$name")
  tag="pgrepl-test/$name:$hash"
  if have "$tag"; then
    docker tag "$tag" "pgrepl-test/$name:current"
    say "$name up to date ($tag)"
    return 0
  fi
  say "building $name ($tag)"
  if [[ $name == *-ssh ]]; then
    build_image "${name%-ssh}" &&
      docker build -q -f Dockerfile.ssh --build-arg "BASE=pgrepl-test/${name%-ssh}:current" -t "$tag" . >/dev/null
  elif [[ $name == *-firewall ]]; then
    build_image "${name%-firewall}" &&
      docker build -q -f Dockerfile.firewall --build-arg "BASE=pgrepl-test/${name%-firewall}:current" -t "$tag" . >/dev/null
  elif [[ $name == client ]]; then
    build_image pg15 &&
      docker build -q -f Dockerfile.client --build-arg "BASE=pgrepl-test/pg15:current" -t "$tag" . >/dev/null
  else
    local base_hash
    base_hash=$(base_hash_of "$suite")
    build_base "$suite" "$base_hash" &&
      docker build -q -f Dockerfile.node --build-arg "BASE=pgrepl-test/base-$suite:$base_hash" \
        --build-arg "PG_PACKAGE=$(package_of "$name")" -t "$tag" . >/dev/null
  fi || {
    if have "pgrepl-test/$name:current"; then
      say "WARNING: building $name failed; keeping the last good image pgrepl-test/$name:current"
      return 0
    fi
    say "building $name failed and there is no earlier image to keep"; return 1
  }
  docker tag "$tag" "pgrepl-test/$name:current"
  say "$name built"
}

bash "$HERE/../../scripts/docker-engine.sh"
images=("$@")
((${#images[@]})) || images=(pg15 pg17 pg18 pg15-ssh client)
# Root file systems first, one per suite, in parallel (the mirror, not the CPU, is the limit); then the layers.
base_hash_of() { { cat build.sh; echo "$PACKAGES $1"; } | sha256sum | cut -c1-12; }
status=0
pids=()
declare -A suites=()
for image in "${images[@]}"; do suites[$(suite_of "$image")]=1; done
for suite in "${!suites[@]}"; do
  ( set -o pipefail; build_base "$suite" "$(base_hash_of "$suite")" 2>&1 | sed -u "s/^/[$suite] /" ) & pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
for image in "${images[@]}"; do build_image "$image" || status=1; done
exit $status
