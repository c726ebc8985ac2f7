#!/usr/bin/python
# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module pgrepl.streaming.server_start."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: server_start
short_description: Start or restart the PostgreSQL server of a data directory and wait until it accepts or streams
version_added: 0.1.0
author: pgrepl maintainers (@pgrepl)
description:
  - Starts the server of O(data_dir) when no postmaster runs there, through its systemd unit O(service) or, without
    one, with C(pg_ctl start -w) as O(os_user); restarts a running one only with O(state=restarted); leaves a
    running one alone otherwise.
  - Then waits, in the same call, until the server accepts connections (O(wait_for=accepting)) or its WAL
    receiver streams from the primary (O(wait_for=streaming), for a standby), at most O(timeout) seconds. One
    round trip instead of a start task and a polling task.
  - With O(enabled=true) the unit is also enabled at boot when it is not.
  - Run by M(pgrepl.streaming.node_apply) after other items, a C(server_start) item with O(state=started)
    restarts the server when an earlier item of the same call wrote a setting that waits for a restart, so the
    roles restart only when C(pending_restart) says so, and once.
options:
  data_dir:
    description: The data directory whose server is started (it must hold C(PG_VERSION)).
    type: path
    required: true
  service:
    description:
      - systemd unit of the server (for example C(postgresql@15-main), C(postgresql-16)). Without it the server is
        started with C(pg_ctl) of the data directory's major, which needs O(log_file) and a data directory that
        holds its C(postgresql.conf).
    type: str
  bin_dir:
    description: Directory of C(pg_ctl) (only without O(service)). Default, the installed binaries of the data
      directory's major.
    type: path
  os_user:
    description: OS user that owns the data directory; C(pg_ctl) runs as this user.
    type: str
    default: postgres
  log_file:
    description: File C(pg_ctl -l) sends the server's output to. Required without O(service).
    type: path
  state:
    description:
      - V(started) starts a stopped server and leaves a running one alone. V(restarted) restarts a running one
        (and starts a stopped one).
    type: str
    default: started
    choices: [started, restarted]
  enabled:
    description: V(true) enables O(service) at boot when it is not. Left alone when not given.
    type: bool
  wait_for:
    description:
      - V(accepting) waits until a connection with the connection options succeeds; V(streaming) until
        C(pg_stat_wal_receiver.status) is C(streaming); V(none) does not wait.
      - A connection refused for a reason that will not mend itself (password, pg_hba) fails at once.
    type: str
    default: accepting
    choices: [accepting, streaming, none]
  timeout:
    description: Seconds to wait (also the limit of the start itself).
    type: int
    default: 120
extends_documentation_fragment:
  - pgrepl.streaming.connection
attributes:
  check_mode:
    description: Reads the data directory and the unit, and reports RV(outcome) V(would_start) or V(would_restart)
      as a change; starts, enables and waits for nothing.
    support: full
  diff_mode:
    description: Nothing to show beyond RV(outcome).
    support: none
notes:
  - Runs as root (C(become=true)) for C(systemctl); connects as the server's OS user with O(login_os_user).
seealso:
  - module: pgrepl.streaming.server_stop
  - module: pgrepl.streaming.node_apply
"""

EXAMPLES = r"""
- name: Start the standby and wait until it streams
  pgrepl.streaming.server_start:
    data_dir: /var/lib/postgresql/15/main
    service: postgresql@15-main
    enabled: true
    wait_for: streaming
    login_os_user: postgres
    login_unix_socket: /var/run/postgresql
  become: true

- name: Restart a server without systemd
  pgrepl.streaming.server_start:
    data_dir: /srv/pg/16/data
    log_file: /srv/pg/16/server.log
    state: restarted
    login_os_user: postgres
    login_unix_socket: /tmp
  become: true
"""

RETURN = r"""
reason:
  description: On a failed task whose wait ran out, V(not_streaming) (O(wait_for=streaming)) or V(not_accepting);
    a fixed code to decide by, where the message is for people.
  returned: failure, when the wait timed out
  type: str
  sample: not_streaming
outcome:
  description: V(started), V(restarted), V(already_running), or in check mode V(would_start), V(would_restart).
  returned: success
  type: str
  sample: started
enabled_now:
  description: Whether O(service) was (or in check mode would be) enabled at boot by this call.
  returned: success
  type: bool
waited_seconds:
  description: How long the wait took.
  returned: success
  type: float
  sample: 0.8
last_seen:
  description: What the server said last while waited for (V(accepting), or the WAL receiver's status); null
    without a wait or in check mode.
  returned: success
  type: str
  sample: streaming
"""

from ansible_collections.pgrepl.streaming.plugins.module_utils._module import module_from_spec, run
from ansible_collections.pgrepl.streaming.plugins.module_utils._start import SERVER_START_SPEC, run_server_start


def main() -> None:
    module = module_from_spec(SERVER_START_SPEC)
    run(module, run_server_start, needs_psycopg=False)


if __name__ == "__main__":
    main()
