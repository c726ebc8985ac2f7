#!/usr/bin/python
# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module pgrepl.streaming.standby_clone."""

from __future__ import annotations

DOCUMENTATION = r'''
---
module: standby_clone
short_description: Make a data directory a fresh physical copy of a primary with pg_basebackup
version_added: 0.1.0
author: pgrepl maintainers (@pgrepl)
description:
  - Makes O(data_dir) a standby copy of the primary with C(pg_basebackup -R -X stream), through a replication
    slot, with the password read only from O(passfile). Idempotent by system identifier, it never deletes data.
  - Before anything changes it validates the options, refuses dangerous targets (a symlink, C(/), a configuration
    directory such as Debian's C(/etc/postgresql/N/main), a parent of another cluster), proves that a physical
    replication connection with the real credentials works (C(IDENTIFY_SYSTEM); on PostgreSQL 15 and later also
    C(READ_REPLICATION_SLOT) to check the slot), and decides from the data directory.
  - A missing or empty O(data_dir) is cloned. One that already is a standby copy of this primary (same system
    identifier, with C(standby.signal) or C(recovery.signal)) is kept (RV(outcome=kept), C(changed=false)) unless
    O(force_reclone). A former primary of the same cluster (same system identifier, no signal file) is refused
    with a pointer to pg_rewind. Anything else (a fresh package install's cluster, other files) is renamed aside
    to C(<data_dir>.pgrepl-moved-<UTC timestamp>) and then cloned, or refused with O(move_aside=false).
  - Another cluster that holds more than C(initdb) made is replaced only with O(replace_existing_data=true), and
    refused otherwise before anything stops. That is a cluster with databases besides template0, template1 and
    postgres, relations
    created in those, tablespaces, replication slots, or C(standby.signal)/C(recovery.signal)/C(recovery.conf) (a
    standby of another primary). Read from its files (relation files and database directories numbered from
    16384, the first OID a user's object gets), so it works whether its server runs or not.
  - The copy is made in a temporary sibling directory C(<data_dir>.pgrepl-clone-<UTC timestamp>) (mode 0700, owned
    by O(os_user)), checked (system identifier of the primary, C(standby.signal), no password in
    C(primary_conninfo)), renamed C(<data_dir>.pgrepl-ready-<UTC timestamp>) and only then renamed into place.
    When pg_basebackup fails, only that temporary directory is removed and O(data_dir) is untouched.
  - A real run that has something to do holds a lock on O(data_dir), an exclusive C(flock) on
    C(.<name>.pgrepl-lock) beside it, released when the module ends however it ends (the file is removed when the
    run ends; one a killed run left is taken over). A second run on the same data directory at the same time fails
    at once naming the process that holds it, with nothing changed.
  - Under the lock, what an interrupted run left beside O(data_dir) is settled first. A partial copy is removed
    (never accumulated; refused while a process still uses it). A finished copy whose swap was cut off, with
    O(data_dir) missing, is put in place (RV(outcome=swapped_in)) instead of copying again.
  - While pg_basebackup copies, its C(--progress) is kept in C(.<name>.pgrepl-progress) beside O(data_dir) (JSON -
    bytes done and in all, percent, rate, time left; rewritten every 2 seconds) and removed when the copy ends,
    however it ends. The standby role prints it during long copies (M(pgrepl.streaming.clone_wait)).
  - Every tablespace of the primary (O(tablespaces)) gets a directory on this host - the primary's path, or the one
    O(tablespace_map) names (C(pg_basebackup --tablespace-mapping)). The module creates it (missing parents 0755
    of root, the directory 0700 of O(os_user)), since pg_basebackup runs as O(os_user) and cannot create
    C(/srv/ts1) under a root-owned C(/srv). A missing or empty target is copied into in place. One that holds a
    tablespace of the data directory being replaced (a re-seed) is copied into C(<target>.pgrepl-clone-<stamp>)
    beside it and swapped in like the data directory - the old one renamed C(<target>.pgrepl-moved-<stamp>),
    never deleted, and the C(pg_tblspc) links of the new copy and of the moved-aside data directory point at their
    own tablespaces. Refused before anything stops - a target that is not empty and holds no tablespace of this
    data directory, a symlink, a path inside O(data_dir) (or holding it), two tablespaces in one directory, a
    parent that cannot be written or that O(os_user) cannot reach, a mount point to swap.
  - Runs as root (C(become=true)) and runs pg_basebackup as O(os_user) (its own identity on Python 3.9 and later,
    else through C(runuser), C(setpriv) or C(su)), so the copy belongs to that user. It never starts or stops a
    server (except O(stop_service)), and refuses to change a data directory on which a server runs.
options:
  data_dir:
    description:
      - The data directory to make a copy of the primary. Absolute; not C(/) or a system directory; not a symlink
        (give the real path); its parent directory must exist.
    type: path
    required: true
  bin_dir:
    description:
      - Directory holding C(pg_basebackup) and C(pg_controldata) of the primary's major version.
      - When not given, the module looks in C(/usr/lib/postgresql/*/bin), C(/usr/pgsql-*/bin), C(/opt/pgpro/*/bin)
        and PATH for a C(pg_basebackup) whose version is the primary's major, and refuses when there is none.
      - When given, its C(pg_basebackup) must be of the primary's major.
    type: path
  primary_host:
    description:
      - Host name, IP address or unix socket directory of the primary (one host).
    type: str
    required: true
  primary_port:
    description: Port of the primary.
    type: int
    default: 5432
  replication_user:
    description:
      - Role with the REPLICATION attribute used for the copy (and written into C(primary_conninfo)).
      - Letters, digits and C(_ . @ $ -) only, at most 63 bytes; quotes, spaces, C(=), C(:) and backslashes are
        refused.
    type: str
    default: replicator
  passfile:
    description:
      - Absolute path of the libpq password file holding the replication password (a line
        C(host:port:replication:user:password)). The only source of the password; there is no password option.
      - Must be a regular file with mode 0600 or stricter (libpq ignores a more open one), readable by O(os_user),
        and outside O(data_dir). It is written into C(primary_conninfo) as C(passfile=...), so the standby finds
        it too.
    type: path
    required: true
  slot_name:
    description:
      - Physical replication slot on the primary that the copy streams through (C(pg_basebackup -S), written into
        C(primary_slot_name)). It must already exist; the module never creates slots.
      - C(^[a-z0-9_]{1,63}$). Without it, pg_basebackup uses a temporary slot for the copy only and the standby
        gets no C(primary_slot_name).
    type: str
  application_name:
    description:
      - C(application_name) of the standby, written into C(primary_conninfo), is the name the primary shows in
        C(pg_stat_replication) and the one C(synchronous_standby_names) refers to.
      - C(^[A-Za-z0-9_.-]{1,63}$).
    type: str
  sslmode:
    description: libpq C(sslmode) of the replication connection (and of C(primary_conninfo)).
    type: str
    default: prefer
    choices: [disable, allow, prefer, require, verify-ca, verify-full]
  sslrootcert:
    description:
      - CA certificate file on this host that verifies the primary's certificate (libpq C(sslrootcert)), for
        O(sslmode=verify-ca) or O(sslmode=verify-full) (written into C(primary_conninfo) too). Omitted, libpq
        reads the OS user's C(~/.postgresql/root.crt).
    type: path
  os_user:
    description: OS user that runs pg_basebackup and owns the copy (not root).
    type: str
    default: postgres
  move_aside:
    description:
      - When O(data_dir) holds anything that must be replaced, rename it to C(<data_dir>.pgrepl-moved-<UTC
        timestamp YYYYmmddTHHMMSSZ>) (never deleted). With V(false), refuse instead and change nothing.
    type: bool
    default: true
  checkpoint:
    description: C(pg_basebackup --checkpoint). V(fast) starts at once; V(spread) waits for a spread checkpoint.
    type: str
    default: fast
    choices: [fast, spread]
  timeout:
    description:
      - Seconds pg_basebackup may take. At the deadline it is stopped, the temporary copy removed and the task
        fails with O(data_dir) untouched.
      - pg_basebackup runs as O(os_user) in its own process group and is killed when this module ends, however
        it ends (a play interrupted with Ctrl-C or killed leaves no copy being written behind it).
    type: int
    default: 3600
  preflight:
    description:
      - Prove the replication connection, check the slot and decide, then stop; nothing is created, renamed or
        copied, and a server running on O(data_dir) is reported in RV(server_running) instead of refused.
      - The standby role runs this before it stops anything, so a wrong password or pg_hba never leaves a node
        stopped. Reports C(changed=false) and V(would_clone) or V(kept) in RV(outcome).
    type: bool
    default: false
  stop_service:
    description:
      - systemd unit of the server running on O(data_dir) (for example C(postgresql@15-main)). When set, a
        running server is not refused; once every check has passed (replication connection, slot, what the data
        directory holds), the module stops that unit and clones, in the same call. If a server still runs on
        O(data_dir) after the stop, it refuses and moves nothing.
      - When the copy then fails (pg_basebackup's error, O(timeout), a full disk, a copy that is not of this
        primary), the old data directory is left in place and this unit is started again, so the node does not
        stay down; the failure says so.
      - Not used in check mode or with O(preflight), which change nothing.
    type: str
  stop_timeout:
    description:
      - Seconds the stop of O(stop_service) (and its start again after a failed copy) may take. A unit's own
        limit may be an hour (Debian's C(postgresql@) units); at this deadline the task fails with nothing moved
        (systemd goes on stopping the unit).
    type: int
    default: 600
  data_size:
    description:
      - Bytes of data of the primary (RV(pgrepl.streaming.node_prepare#module:data_size) of its node facts, which
        the standby role passes). With it, the module refuses a copy before it stops or changes anything when the
        filesystem that receives it (C(os.statvfs) of the parent of O(data_dir), or of O(data_dir) itself for a copy
        into an empty mount point) has less free space than O(data_size) x 1.1 + 256 MiB (the WAL streamed during
        the copy). The old data directory is moved aside, not deleted, so it frees nothing (a re-seed needs about
        twice the data size in all); temporary copies an interrupted run left are counted as freed. The message
        names the sizes, the path, and the directories earlier copies moved aside there.
      - Without it (unknown size) the free space is not checked.
    type: int
  space_check:
    description:
      - V(false) skips the free space check of O(data_size) (for a filesystem whose free space C(statvfs) does not
        tell, or when you know the copy fits).
    type: bool
    default: true
  replace_existing_data:
    description:
      - Your consent to replace another cluster (a system identifier other than the primary's) that is not a
        freshly created package cluster (see the description - user databases or relations, tablespaces,
        replication slots, a standby's signal files). With O(stop_service) its running server is stopped (an
        outage of that cluster), and its directory is moved aside, never deleted.
      - With V(false) such a data directory is refused before anything stops or changes, naming what it holds. A
        fresh package cluster (only what C(initdb) made, as the Debian C(postgresql) package creates) is replaced
        without it.
    type: bool
    default: false
  max_rate:
    description:
      - Bandwidth limit of the copy, C(pg_basebackup --max-rate) (the primary sends the data directory no faster;
        the WAL streamed beside it is not limited). kB/s as a number, or a number with the suffix C(k) (kB/s) or
        C(M) (MB/s), such as V(20M); from V(32k) to V(1024M), what pg_basebackup accepts. Anything else is refused
        before anything stops.
      - Empty or not given - no limit.
    type: str
  tablespaces:
    description:
      - The primary's tablespaces, as M(pgrepl.streaming.node_prepare) returns them on the primary
        (RV(pgrepl.streaming.node_prepare#module:tablespaces) - dicts with C(location) and optionally C(size) in bytes
        and C(name)), or plain paths. A relative location (an in-place tablespace, C(pg_tblspc/<oid>)) is inside
        the data directory and needs nothing.
      - C(size) counts on the target's filesystem in the free space check (O(space_check)); the data directory's
        filesystem then needs O(data_size) less those sizes.
      - Not given - the keys of O(tablespace_map) are taken as the primary's tablespaces. A tablespace the module
        does not know of is written by pg_basebackup to the primary's path, which fails where O(os_user) cannot
        create it.
    type: list
    elements: raw
  tablespace_map:
    description:
      - The primary's tablespace paths mapped to where this host keeps them (C(--tablespace-mapping)), such as
        C(/srv/ts1) to C(/data/ts1). Absolute paths; no two tablespaces in one directory. A tablespace not named
        keeps the primary's path. A key that is no tablespace of the primary is a warning.
      - The map applies to copies only. A tablespace created on the primary later is replayed by every standby at
        the primary's path, which must then exist there, owned by O(os_user) (else the standby's recovery stops);
        a re-seed moves it to its mapped path.
    type: dict
  force_reclone:
    description:
      - Clone even when O(data_dir) already is a copy of this primary, or is a former primary of this cluster.
        The old directory is moved aside (needs O(move_aside=true)), never deleted.
    type: bool
    default: false
attributes:
  check_mode:
    description:
      - Validates, inspects O(data_dir) and opens the replication connection (read-only C(IDENTIFY_SYSTEM)) for
        real; predicts the clone (RV(outcome=would_clone)) and where the old directory would move, without creating,
        renaming or copying anything.
      - A missing slot is a warning in check mode (an earlier task may create it), a failure in a real run.
    support: full
  diff_mode:
    description: Before and after of the data directory's state and where the old one moved.
    support: full
notes:
  - Needs psycopg 3 on the managed host for the connection test, and the PostgreSQL server binaries of the
    primary's major version (pg_basebackup, pg_controldata).
  - The moved-aside directories take disk space until you remove them; the module never deletes them.
  - Two runs on the same data directory at the same time cannot both work on it (see the lock above); runs on
    different data directories do not wait for each other.
seealso:
  - name: pg_basebackup
    description: The tool this module runs.
    link: https://www.postgresql.org/docs/current/app-pgbasebackup.html
  - name: The password file
    description: Format of the passfile.
    link: https://www.postgresql.org/docs/current/libpq-pgpass.html
'''

EXAMPLES = r'''
- name: Clone the standby from the primary through its slot (service already stopped)
  pgrepl.streaming.standby_clone:
    data_dir: /var/lib/postgresql/15/main
    primary_host: db1.example.com
    replication_user: replicator
    passfile: /var/lib/postgresql/.pgpass
    slot_name: db2
    application_name: db2
  become: true
  register: pgrepl_clone

- name: Refuse instead of moving a non-empty data directory aside
  pgrepl.streaming.standby_clone:
    data_dir: /var/lib/pgsql/16/data
    bin_dir: /usr/pgsql-16/bin
    primary_host: 10.0.0.11
    passfile: /var/lib/pgsql/.pgpass
    slot_name: db3
    sslmode: verify-full
    sslrootcert: /var/lib/pgsql/16/pgrepl-tls/ca.crt
    move_aside: false
  become: true

- name: Clone a primary with a tablespace in /srv/ts1 on the primary, kept in /data/ts1 here
  pgrepl.streaming.standby_clone:
    data_dir: /var/lib/postgresql/17/main
    primary_host: db1.example.com
    passfile: /var/lib/postgresql/.pgpass
    slot_name: db2
    tablespaces: [{location: /srv/ts1, size: 1073741824}]
    tablespace_map:
      /srv/ts1: /data/ts1
  become: true

- name: Rebuild a standby that drifted (the old copy is kept beside it)
  pgrepl.streaming.standby_clone:
    data_dir: /var/lib/postgresql/15/main
    primary_host: db1.example.com
    passfile: /var/lib/postgresql/.pgpass
    slot_name: db2
    application_name: db2
    force_reclone: true
    timeout: 14400
  become: true
'''

RETURN = r'''
outcome:
  description:
    - V(cloned), V(kept) (already a copy of this primary), V(would_clone) (check mode) or V(swapped_in).
    - V(swapped_in) means O(data_dir) was missing and a finished, verified copy of this primary that an interrupted
      run left beside it (C(<data_dir>.pgrepl-ready-<stamp>)) was put in place instead of copying again.
  returned: success
  type: str
  sample: cloned
moved_aside_to:
  description: Where the old data directory was (or in check mode would be) renamed; null when nothing moved.
  returned: success
  type: str
  sample: /var/lib/postgresql/15/main.pgrepl-moved-20250131T235959Z
data_dir_state:
  description:
    - What O(data_dir) held before the run; V(missing), V(empty), V(standby-of-primary), V(former-primary(N)),
      V(other-cluster(N)) (N a system identifier, or C(PostgreSQL <major>) when it could not be read) or V(files).
  returned: success
  type: str
  sample: other-cluster(7312345678901234567)
system_identifier:
  description: The primary's system identifier (a string; it does not fit every JSON reader's integers).
  returned: success
  type: str
  sample: "7312345678901234567"
primary_timeline:
  description: The primary's current timeline (from C(IDENTIFY_SYSTEM)).
  returned: success
  type: int
  sample: 1
primary_major:
  description: The primary's major version.
  returned: success
  type: int
  sample: 15
basebackup_seconds:
  description: How long pg_basebackup itself ran (the copy, without the checks, the stop, the verification and the
    swap around it); null when nothing was copied.
  returned: success
  type: float
  sample: 10.4
duration_seconds:
  description: How long the module ran.
  returned: success
  type: float
  sample: 12.4
log:
  description: The last lines of pg_basebackup's output (progress and messages); empty when nothing was cloned.
  returned: success
  type: list
  elements: str
  sample: ["pg_basebackup: checkpoint completed", "pg_basebackup: base backup completed"]
slot_name:
  description: The slot the copy streams through (O(slot_name)).
  returned: success
  type: str
  sample: db2
application_name:
  description: The application_name written into C(primary_conninfo) (O(application_name)).
  returned: success
  type: str
  sample: db2
tablespaces:
  description:
    - Each tablespace of the copy - C(location) (the primary's path), C(path) (this host's), C(how) (V(in_place),
      or V(swap) when copied beside a directory that holds the old one) and C(moved_aside_to) (where the old one
      was, or in check mode would be, renamed; null for V(in_place)). Empty when nothing is copied.
  returned: success
  type: list
  elements: dict
  sample: [{"location": "/srv/ts1", "path": "/data/ts1", "how": "in_place", "moved_aside_to": null}]
pg_basebackup:
  description: The pg_basebackup binary used (or that would be used); null when nothing is cloned.
  returned: success
  type: str
  sample: /usr/lib/postgresql/15/bin/pg_basebackup
server_running:
  description: Whether a server was running on O(data_dir) when the module looked (only O(preflight) goes on
    past a running server).
  returned: success
  type: bool
  sample: false
diff:
  description: Before and after of the data directory's state and of where the old one moved (in diff mode).
  returned: when diff mode is on
  type: dict
  sample: {"before": {"data_dir_state": "empty", "moved_aside_to": null},
           "after": {"data_dir_state": "standby-of-primary", "moved_aside_to": null}}
'''

from ansible_collections.pgrepl.streaming.plugins.module_utils._clone import STANDBY_CLONE_SPEC, run_standby_clone
from ansible_collections.pgrepl.streaming.plugins.module_utils._module import module_from_spec, run


def main() -> None:
    module = module_from_spec(STANDBY_CLONE_SPEC)
    run(module, run_standby_clone)


if __name__ == '__main__':
    main()
