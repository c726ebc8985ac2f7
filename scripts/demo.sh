#!/usr/bin/env bash
# `make demo`: a primary and two streaming standbys on systemd containers of this machine, built with the site
# playbook exactly as users run it, then the status table. `make demo-clean` (this script with `clean`) removes
# them. Re-running `make demo` converges again (changed=0) and prints the table.
# PGREPL_DEMO_PREFIX (default pgrepl-demo) names the containers, their network and the inventory's folder, so another
# prefix never touches the demo; PGREPL_DEMO_COLLECTIONS_PATH (default .build/collections, a link to this checkout) is
# where Ansible finds pgrepl.streaming: scripts/package.sh points it at the collection installed from its tarball.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PREFIX=${PGREPL_DEMO_PREFIX:-pgrepl-demo}
NET=$PREFIX
NODES=("$PREFIX-primary" "$PREFIX-standby1" "$PREFIX-standby2")
IMAGE=${PGREPL_DEMO_IMAGE:-pgrepl-test/pg15:current}
INVENTORY=$ROOT/.build/${PGREPL_DEMO_PREFIX:-demo}/inventory.yml
say() { printf '[demo] %s\n' "$*"; }

clean() {
  docker rm -f "${NODES[@]}" >/dev/null 2>&1 || true
  docker network rm "$NET" >/dev/null 2>&1 || true
  rm -rf "$(dirname "$INVENTORY")"
  say "removed the demo containers and network"
}

if [[ ${1:-} == clean ]]; then
  command -v docker >/dev/null && docker info >/dev/null 2>&1 && clean
  exit 0
fi

bash scripts/deps.sh
bash tests/images/build.sh "$(basename "${IMAGE%%:*}")"
export PATH=$ROOT/.venv/bin:$PATH ANSIBLE_COLLECTIONS_PATH=${PGREPL_DEMO_COLLECTIONS_PATH:-$ROOT/.build/collections} ANSIBLE_HOME=$ROOT/.build/ansible-home

docker network inspect "$NET" >/dev/null 2>&1 || docker network create "$NET" >/dev/null
for node in "${NODES[@]}"; do
  state=$(docker inspect -f '{{.State.Status}}' "$node" 2>/dev/null) || state=missing
  case $state in
    running) ;;
    missing)
      say "starting $node"
      docker run -d --name "$node" --hostname "$node" --network "$NET" \
        --cap-add SYS_ADMIN --security-opt seccomp=unconfined --cgroupns=host \
        -v /sys/fs/cgroup:/sys/fs/cgroup:rw --tmpfs /run --tmpfs /run/lock "$IMAGE" >/dev/null ;;
    *) say "restarting $node ($state)"; docker start "$node" >/dev/null ;;
  esac
done
for node in "${NODES[@]}"; do
  for _ in $(seq 1 60); do docker exec "$node" pg_isready -q 2>/dev/null && break; sleep 1; done
done

mkdir -p "$(dirname "$INVENTORY")"
cat >"$INVENTORY" <<YAML
# The demo inventory: what yours looks like, with the docker connection instead of ssh.
all:
  vars:
    ansible_connection: community.docker.docker
    ansible_python_interpreter: /usr/bin/python3
    # docker exec already runs as root: no become (this overrides the roles' become: true, which an ssh
    # inventory with a non-root user needs), and pipelining, so each task is one exec instead of four.
    ansible_become: false
    ansible_pipelining: true
    pgrepl_replication_password: demo-only-replication-password
  children:
    primary:
      hosts:
        ${NODES[0]}:
    standby:
      hosts:
        ${NODES[1]}:
        ${NODES[2]}:
          pgrepl_sync: true
YAML
say "running pgrepl.streaming.site (inventory: $INVENTORY)"
ansible-playbook -i "$INVENTORY" pgrepl.streaming.site
say "running pgrepl.streaming.status"
ANSIBLE_DISPLAY_OK_HOSTS=true ansible-playbook -i "$INVENTORY" pgrepl.streaming.status
say "the cluster is up: make demo-clean removes it"
