#!/usr/bin/python
# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module pgrepl.streaming.rewind."""

from __future__ import annotations

DOCUMENTATION = r'''
---
module: rewind
short_description: Rewind a stopped former primary with pg_rewind so that it can follow the new primary
version_added: 0.1.0
author: pgrepl maintainers (@pgrepl)
description:
  - Runs C(pg_rewind) as O(os_user) on the stopped data directory O(data_dir) (the target, typically the old
    primary after a failover or switchover) against the running new primary (the source), so that the target
    can then be configured as a standby of the source (pgrepl.streaming.standby_config) and started.
  - Decides honestly whether a rewind is needed. It first reads, over SQL as O(source_user), the source's
    timeline and that timeline's history file (where each ancestor timeline ended), and compares them with the
    target's pg_control. A target that never went past the point where the source's timeline forked off its own
    needs no rewind and gets none; pg_rewind is not run at all (on such a target it can fail with C(could not find
    previous WAL record at <switch point>)). The task reports C(changed=false) and RV(outcome=repoint), meaning
    that configuring it as a standby of the source (C(recovery_target_timeline) C(latest), the default) is all it
    needs. That is a target on the source's own timeline (the timeline of its minimum recovery point counts, so a
    standby that followed the new timeline before making a restartpoint there is on it, where pg_rewind 15 and
    older fail), or on an ancestor of it whose WAL ends at or before the switch point (its minimum recovery point
    not past it, its latest checkpoint before it), such as a standby that was stopped before a failover promoted
    another one and was never repointed.
  - Otherwise it runs C(pg_rewind --dry-run), which connects, compares the timelines, scans the target's WAL and
    writes nothing. When pg_rewind says C(no rewind required), the task reports C(changed=false)
    (RV(outcome=not_needed)); otherwise check mode reports C(changed=true) (RV(outcome=would_rewind)) and a real run
    runs C(pg_rewind --progress) (RV(outcome=rewound)). When the source cannot be asked over SQL, pg_rewind's own
    error is reported.
  - Refuses, changing nothing, a O(data_dir) that does not exist or is not a data directory, one owned by another
    user than O(os_user), one on which a server runs (a C(postmaster.pid) naming a live process), one that was not
    shut down cleanly (pg_control state other than C(shut down) or C(shut down in recovery)), and one with
    C(wal_log_hints) off and no data checksums (pg_control records both).
  - A target that pg_rewind already rewound and that has not been started since (state C(in archive recovery) and a
    C(backup_label) written by pg_rewind) is reported as RV(outcome=already_rewound), C(changed=false), so a
    re-run of a rejoin play does not fail there.
  - Also refuses a source where O(source_user) is a superuser (pg_rewind needs only four EXECUTE grants, see
    pgrepl.streaming.rewind_grants), a source of another cluster (system identifier), and, before PostgreSQL 16, a
    source that was just promoted and has not yet finished a checkpoint on its new timeline (pg_rewind would read
    the old timeline from its pg_control and wrongly find that no rewind is needed).
  - It never starts or stops a server (pg_rewind runs with C(--no-ensure-shutdown)), never writes
    C(standby.signal) or C(primary_conninfo) (no C(--write-recovery-conf)), and deletes or overwrites nothing
    itself; pg_rewind replaces the target's files with the source's, including configuration files that live in
    O(data_dir), which the module then puts back as they were (O(keep_config)).
  - Runs as root (C(become=true)) and runs pg_rewind as O(os_user) through C(runuser) (or C(setpriv), or C(su)).
options:
  data_dir:
    description: The target data directory (absolute path), owned by O(os_user), with its server stopped cleanly.
    type: path
    required: true
  bin_dir:
    description:
      - Directory holding C(pg_rewind) and C(pg_controldata) of O(data_dir)'s major version (C(PG_VERSION)).
      - When not given, the module looks in C(/usr/lib/postgresql/*/bin), C(/usr/pgsql-*/bin), C(/opt/pgpro/*/bin)
        and PATH for binaries of that version.
    type: path
  source_host:
    description: Host name, IP address or unix socket directory of the source (the running new primary).
    type: str
    required: true
  source_port:
    description: Port of the source.
    type: int
    default: 5432
  source_user:
    description:
      - Ordinary login role pg_rewind connects as over a normal (not replication) connection. Not a superuser; it
        needs EXECUTE on four functions in O(source_dbname) (pgrepl.streaming.rewind_grants).
      - Letters, digits and C(_ . @ $ -) only, at most 63 bytes.
    type: str
    required: true
  source_dbname:
    description: Database pg_rewind connects to; the grants must be in this database. C([A-Za-z0-9_.-]{1,63}).
    type: str
    default: postgres
  passfile:
    description:
      - Absolute path of the libpq password file holding O(source_user)'s password (a line
        C(host:port:dbname:user:password)), passed to pg_rewind as C(passfile=...) in its connection string. The only
        source of the password; there is no password option.
      - A regular file of mode 0600 or stricter, readable by O(os_user), outside O(data_dir).
    type: path
    required: true
  sslmode:
    description: libpq C(sslmode) of the source connection.
    type: str
    default: prefer
    choices: [disable, allow, prefer, require, verify-ca, verify-full]
  sslrootcert:
    description:
      - CA certificate file on this host that verifies the source's certificate (libpq C(sslrootcert)), for
        O(sslmode=verify-ca) or O(sslmode=verify-full). Omitted, libpq reads the OS user's
        C(~/.postgresql/root.crt).
    type: path
  os_user:
    description: OS user that owns O(data_dir) and runs pg_rewind (not root).
    type: str
    default: postgres
  timeout:
    description:
      - Seconds each pg_rewind run may take (the dry run and the rewind). At the deadline it is stopped and the
        task fails; a rewind stopped midway leaves O(data_dir) unusable (clone it again).
    type: int
    default: 3600
  keep_config:
    description:
      - Keep the node's own configuration files that live in O(data_dir) (C(postgresql.conf),
        C(postgresql.auto.conf), C(pg_hba.conf), C(pg_ident.conf), as on RHEL and custom layouts), which pg_rewind
        replaces with the source's copies. They are copied to C(<data_dir>.pgrepl-own-config) before pg_rewind
        runs and put back after it (mode and owner kept), whether it succeeded or not; a run cut off in between
        puts them back on its next run.
      - V(false) leaves the source's copies in place (port, listen_addresses and pg_hba of the other node).
    type: bool
    default: true
attributes:
  check_mode:
    description:
      - Runs every refusal, the read-only source queries and (unless the target never diverged)
        C(pg_rewind --dry-run) (writes nothing), and reports C(changed) from that verdict.
    support: full
  diff_mode:
    description: Before and after of the target's pg_control state and timeline.
    support: full
notes:
  - Needs psycopg 3 on the managed host for the source query, and the PostgreSQL server binaries of O(data_dir)'s
    major version (pg_rewind, pg_controldata).
  - pg_rewind needs the target's WAL back to the last checkpoint before the divergence; when it is gone the task
    fails with pg_rewind's error, and the target must be cloned again.
  - A crashed target is refused rather than recovered; the playbook must start it once (keeping clients out) and
    stop it cleanly. pg_rewind's own single-user crash recovery is turned off, because it starts the server
    outside the service manager and with the target's configuration as it is.
seealso:
  - name: pg_rewind
    description: The tool this module runs.
    link: https://www.postgresql.org/docs/current/app-pgrewind.html
  - module: pgrepl.streaming.rewind_grants
    description: The grants the source role needs.
  - module: pgrepl.streaming.standby_config
    description: Make the rewound data directory a standby of the new primary.
'''

EXAMPLES = r'''
- name: Rewind the old primary db1 against the new primary db2 (db1's service is stopped)
  pgrepl.streaming.rewind:
    data_dir: /var/lib/postgresql/15/main
    source_host: db2.example.com
    source_user: pgrepl_rewind
    passfile: /var/lib/postgresql/.pgpass
  become: true
  register: pgrepl_rewound

- name: Rewind on a RHEL layout, with TLS and a longer deadline
  pgrepl.streaming.rewind:
    data_dir: /var/lib/pgsql/16/data
    bin_dir: /usr/pgsql-16/bin
    source_host: 10.0.0.12
    source_user: pgrepl_rewind
    source_dbname: postgres
    passfile: /var/lib/pgsql/.pgpass
    sslmode: verify-full
    sslrootcert: /var/lib/pgsql/16/pgrepl-tls/ca.crt
    timeout: 14400
  become: true

- name: Would the old primary need a rewind? (pg_rewind --dry-run)
  pgrepl.streaming.rewind:
    data_dir: /var/lib/postgresql/15/main
    source_host: db2.example.com
    source_user: pgrepl_rewind
    passfile: /var/lib/postgresql/.pgpass
  check_mode: true
  become: true
  register: pgrepl_rewind_plan
'''

RETURN = r'''
outcome:
  description: V(rewound), V(would_rewind) (check mode), V(repoint) (the target never diverged from the source,
    pg_rewind was not run; it only has to be configured as a standby of the source), V(not_needed) (pg_rewind found
    no rewind required) or V(already_rewound) (rewound earlier, not started since).
  returned: success
  type: str
  sample: rewound
msg:
  description: One sentence saying what was (or would be) done.
  returned: success
  type: str
  sample: "rewound data_dir '/var/lib/postgresql/15/main' from the source (...): diverged at 0/3C582F0 on timeline 1,
    now on timeline 2; configure it as a standby (pgrepl.streaming.standby_config) before starting it"
data_dir:
  description: The target data directory.
  returned: success
  type: str
  sample: /var/lib/postgresql/15/main
target_state:
  description: The target's pg_control state before the run (C(Database cluster state) of pg_controldata).
  returned: success
  type: str
  sample: shut down
target_timeline:
  description: The target's timeline before the run (the larger of its checkpoint's and its minimum recovery
    point's, from pg_control).
  returned: success
  type: int
  sample: 1
target_timeline_after:
  description: The target's timeline after the run, from pg_control (unchanged unless it was rewound).
  returned: success
  type: int
  sample: 2
source_timeline:
  description: The source's current timeline (its WAL insert timeline, or the largest one its pg_control knows).
  returned: success
  type: int
  sample: 2
system_identifier:
  description: The target's system identifier (equal to the source's).
  returned: success
  type: str
  sample: "7312345678901234567"
divergence_lsn:
  description: Where the servers' histories diverged, as pg_rewind reports it (with RV(outcome=repoint), the switch
    point from the source's history file); null when there is none.
  returned: success
  type: str
  sample: 0/3C582F0
divergence_timeline:
  description: The timeline on which they diverged (the last one they share).
  returned: success
  type: int
  sample: 1
target_wal_end_lsn:
  description: How far the target's WAL reaches by its pg_control (its minimum recovery point, or its latest
    checkpoint when that is farther), which the module compared with the switch point; null for a target already
    rewound.
  returned: success
  type: str
  sample: 0/40108C8
last_common_checkpoint_lsn:
  description: The checkpoint pg_rewind rewinds (or would rewind) from; null when no rewind is needed.
  returned: success
  type: str
  sample: 0/3C56360
copy_mb:
  description: Megabytes pg_rewind copies (or would copy), as it reports them.
  returned: success
  type: int
  sample: 67
source_size_mb:
  description: Total size of the source's data directory in megabytes, as pg_rewind reports it.
  returned: success
  type: int
  sample: 93
config_files_from_source:
  description:
    - Configuration files in O(data_dir) that pg_rewind replaced (or would replace) with the source's copies;
      with O(keep_config=true) the module put them back (RV(config_files_kept)).
  returned: success
  type: list
  elements: str
  sample: ["postgresql.conf", "postgresql.auto.conf", "pg_hba.conf"]
config_files_kept:
  description:
    - Configuration files in O(data_dir) that are (or would be) the node's own again after pg_rewind
      (O(keep_config=true)).
  returned: success
  type: list
  elements: str
  sample: ["postgresql.conf", "postgresql.auto.conf", "pg_hba.conf"]
log:
  description: pg_rewind's output lines (of the real run, else of the dry run), progress collapsed to its last line,
    anything password-like masked.
  returned: success
  type: list
  elements: str
  sample: ["pg_rewind: connected to server", "pg_rewind: servers diverged at WAL location 0/3C582F0 on timeline 1",
           "pg_rewind: Done!"]
pg_rewind:
  description: The pg_rewind binary used.
  returned: success
  type: str
  sample: /usr/lib/postgresql/15/bin/pg_rewind
source_conninfo:
  description: The connection string given to pg_rewind (it holds no password; any would be masked).
  returned: success
  type: str
  sample: "host='db2.example.com' port='5432' user='pgrepl_rewind' dbname='postgres'
    passfile='/var/lib/postgresql/.pgpass' sslmode='prefer' connect_timeout='10' application_name='pgrepl.streaming'"
duration_seconds:
  description: How long the module ran.
  returned: success
  type: float
  sample: 3.4
diff:
  description: Before and after of the target's pg_control state and timeline (in diff mode).
  returned: when diff mode is on
  type: dict
  sample: {"before": {"target": {"cluster_state": "shut down", "timeline": 1}},
           "after": {"target": {"cluster_state": "in archive recovery", "timeline": 2}}}
'''

from ansible_collections.pgrepl.streaming.plugins.module_utils._module import module_from_spec, run
from ansible_collections.pgrepl.streaming.plugins.module_utils._rewind import REWIND_SPEC, run_rewind


def main() -> None:
    module = module_from_spec(REWIND_SPEC)
    run(module, run_rewind)


if __name__ == '__main__':
    main()
