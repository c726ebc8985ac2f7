#!/usr/bin/python
# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module pgrepl.streaming.server_stop."""

from __future__ import annotations

DOCUMENTATION = r'''
---
module: server_stop
short_description: Stop the PostgreSQL server of a data directory and return its shutdown checkpoint
version_added: 0.1.0
author: pgrepl maintainers (@pgrepl)
description:
  - Stops the server running on O(data_dir) and reads pg_control afterwards (C(pg_controldata)), in one call, so
    that a switchover learns the old primary's shutdown checkpoint (RV(checkpoint_lsn)) in the same round trip that
    stops its writes.
  - With O(service), the server is stopped with C(systemctl stop <unit>). Without it, with
    C(pg_ctl stop -D <data_dir> -m <mode> -w -t <timeout>) run as O(os_user).
  - Reads first, changing nothing, and refuses when anything is wrong. Whether a server runs is decided from
    C(postmaster.pid) naming a live postgres process. Refused are a O(data_dir) that is not a PostgreSQL data
    directory, a O(bin_dir) without the data directory's major version, a bad unit name, a unit systemd does not
    know, a unit whose cgroup does not hold the running postmaster (stopping it would not stop this server, and
    could stop another one), a O(mode) the chosen way of stopping cannot honour, a bad O(timeout), and (without
    O(service)) an O(os_user) that does not own O(data_dir).
  - A data directory whose server is not running is left alone; its pg_control facts are returned with
    C(changed=false) (RV(outcome=already_stopped)), so a re-run is harmless.
  - After the stop, a server still running on O(data_dir) is a failure. With O(require_clean), so is a cluster
    state other than C(shut down) (a primary) or C(shut down in recovery) (a standby); the message names the state
    and the data directory is left as it is. The same holds for a data directory found already stopped.
  - Runs as root (C(become=true)) for C(systemctl); without O(service) it may also run as O(os_user) itself.
options:
  data_dir:
    description:
      - The data directory of the server (absolute path, holding C(PG_VERSION) and C(global/pg_control)).
    type: path
    required: true
  bin_dir:
    description:
      - Directory holding C(pg_controldata) (and, without O(service), C(pg_ctl)) of O(data_dir)'s major version
        (C(PG_VERSION)).
      - When not given, the module looks in C(/usr/lib/postgresql/*/bin), C(/usr/pgsql-*/bin), C(/opt/pgpro/*/bin)
        and PATH for binaries of that version.
    type: path
  service:
    description:
      - systemd unit that runs the server on O(data_dir) (for example C(postgresql@15-main) on Debian,
        C(postgresql-16) on RHEL/PGDG). When set, the server is stopped with C(systemctl stop <unit>), which waits
        for the unit's stop job (at most O(timeout) seconds).
      - Letters, digits and the characters C(:), C(_), C(.), C(@), C(\\), C(-) only, not starting with C(-).
      - When not set, the server is stopped with C(pg_ctl) as O(os_user). On a host where systemd runs the server,
        set it, so that systemd knows the unit is stopped; C(pg_ctl) would leave the unit failed (the module warns
        when the postmaster runs in a systemd service and O(service) is not set).
    type: str
  mode:
    description:
      - PostgreSQL's shutdown mode. V(fast) ends sessions, writes a shutdown checkpoint and (on a primary) waits
        until the connected standbys have received it. V(smart) waits for every session to end first.
        V(immediate) stops at once without a checkpoint (the next start runs crash recovery); it needs
        O(require_clean=false), because its cluster state is never a clean shutdown.
      - With O(service) only V(fast) is allowed, because the unit's own stop command decides the mode; the usual
        units make a fast shutdown (Debian's C(postgresql@.service) runs C(pg_ctlcluster -m fast), the PGDG unit
        sends C(SIGINT)). Leave O(service) unset to stop with another mode through C(pg_ctl).
    type: str
    default: fast
    choices: [fast, smart, immediate]
  os_user:
    description:
      - OS user that owns O(data_dir) and runs C(pg_ctl) (through C(runuser), C(setpriv) or C(su) when the module
        runs as root). Not used with O(service).
    type: str
    default: postgres
  timeout:
    description:
      - Seconds the server may take to stop (C(pg_ctl -t), or the wait for C(systemctl stop)); 1 to 604800.
      - When it has not stopped by then the task fails and says whether it still runs. A shutdown in progress goes
        on (a smart shutdown keeps refusing new connections until the last session ends).
    type: int
    default: 300
  require_clean:
    description:
      - Fail when pg_control does not show a clean shutdown (C(shut down) or C(shut down in recovery)) after the
        stop, or for a data directory found stopped. Its latest checkpoint is then not the end of its WAL, which a
        switchover relies on.
    type: bool
    default: true
attributes:
  check_mode:
    description:
      - Runs every read and refusal (pg_control, C(postmaster.pid), the unit, the binaries, the OS user) and stops
        nothing. A running server gives RV(outcome=would_stop) and C(changed=true); the returned pg_control facts
        are those of the running server (its latest checkpoint, not the shutdown one).
    support: full
  diff_mode:
    description: Before and after of whether a server runs and of the pg_control cluster state.
    support: full
notes:
  - Needs the PostgreSQL server binaries of O(data_dir)'s major version (C(pg_controldata); C(pg_ctl) without
    O(service)); psycopg is not needed.
  - A fast shutdown of a primary waits until its walsenders have sent the shutdown checkpoint to the connected
    standbys, so a standby can be promoted once it has replayed past RV(checkpoint_lsn)
    (pgrepl.streaming.promote with its C(replay_past_lsn) option).
seealso:
  - name: pg_ctl
    description: The tool that stops the server without O(service).
    link: https://www.postgresql.org/docs/current/app-pg-ctl.html
  - name: Shutting down the server
    description: What the smart, fast and immediate modes do.
    link: https://www.postgresql.org/docs/current/server-shutdown.html
  - module: pgrepl.streaming.promote
    description: Promote a standby once it has replayed past the returned checkpoint.
  - module: pgrepl.streaming.replication_info
    description: Read the same pg_control facts without stopping anything.
'''

EXAMPLES = r'''
- name: Stop writes on the old primary and read its shutdown checkpoint (one call)
  pgrepl.streaming.server_stop:
    data_dir: /var/lib/postgresql/15/main
    service: postgresql@15-main
  become: true
  register: pgrepl_stopped

- name: Promote the standby once it has replayed the old primary's shutdown checkpoint
  pgrepl.streaming.promote:
    replay_past_lsn: "{{ pgrepl_stopped.checkpoint_lsn }}"
  delegate_to: db2.example.com

- name: Stop a custom-layout server with pg_ctl, waiting for sessions to end (at most 10 minutes)
  pgrepl.streaming.server_stop:
    data_dir: /srv/pgdata
    bin_dir: /usr/pgsql-16/bin
    os_user: postgres
    mode: smart
    timeout: 600
  become: true

- name: Would the server be stopped? (reads pg_control and postmaster.pid only)
  pgrepl.streaming.server_stop:
    data_dir: /var/lib/pgsql/16/data
    service: postgresql-16
  check_mode: true
  become: true
'''

RETURN = r'''
outcome:
  description: V(stopped), V(already_stopped) (no server was running; nothing done) or V(would_stop) (check mode,
    a server runs).
  returned: success
  type: str
  sample: stopped
msg:
  description: One sentence saying what was (or would be) done.
  returned: success
  type: str
  sample: "stopped the server on data_dir '/var/lib/postgresql/15/main' with systemctl stop postgresql@15-main:
    shut down, shutdown checkpoint at 0/3000028 on timeline 1"
data_dir:
  description: The data directory (normalised).
  returned: success
  type: str
  sample: /var/lib/postgresql/15/main
was_running:
  description: Whether a server was running on O(data_dir) when the module looked (C(postmaster.pid) naming a live
    postgres process).
  returned: success
  type: bool
  sample: true
stopped:
  description: Whether no server runs on O(data_dir) at the end of the call (false only in check mode with a
    running server).
  returned: success
  type: bool
  sample: true
cluster_state:
  description: C(Database cluster state) of pg_control after the call (in check mode, as it is now).
  returned: success
  type: str
  sample: shut down
checkpoint_lsn:
  description: C(Latest checkpoint location) of pg_control; after a clean stop, the shutdown checkpoint.
  returned: success
  type: str
  sample: 0/3000028
redo_lsn:
  description: C(Latest checkpoint's REDO location) of pg_control (equal to RV(checkpoint_lsn) for a shutdown
    checkpoint of a primary).
  returned: success
  type: str
  sample: 0/3000028
timeline:
  description: C(Latest checkpoint's TimeLineID) of pg_control.
  returned: success
  type: int
  sample: 1
system_identifier:
  description: C(Database system identifier) of pg_control (a string; it does not fit every JSON reader's integers).
  returned: success
  type: str
  sample: "7312345678901234567"
command:
  description: How the server is (or would be) stopped.
  returned: success
  type: str
  sample: systemctl stop postgresql@15-main
log:
  description: The output of C(pg_ctl stop); empty when nothing was stopped or with O(service).
  returned: success
  type: list
  elements: str
  sample: ["waiting for server to shut down.... done", "server stopped"]
duration_seconds:
  description: How long the module ran.
  returned: success
  type: float
  sample: 1.3
diff:
  description: Before and after of whether a server runs and of the cluster state (in diff mode).
  returned: when diff mode is on
  type: dict
  sample: {"before": {"running": true, "cluster_state": "in production"},
           "after": {"running": false, "cluster_state": "shut down"}}
'''

from ansible_collections.pgrepl.streaming.plugins.module_utils._module import module_from_spec, run
from ansible_collections.pgrepl.streaming.plugins.module_utils._stop import SERVER_STOP_SPEC, run_server_stop


def main() -> None:
    module = module_from_spec(SERVER_STOP_SPEC)
    run(module, run_server_stop, needs_psycopg=False)


if __name__ == '__main__':
    main()
