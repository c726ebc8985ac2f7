# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The day-2 playbooks proven under load: one chained run per PostgreSQL version on one cluster of a primary, two
standbys (on PostgreSQL 15 two nodes synchronous, ANY 1; on 17 none) and the ledger client writing all along.

site, then the refusals (each: non-zero exit from a check, nothing changed on any node), then switchover,
failover after SIGKILL, rejoin of the old primary, reseed, remove_standby, add back with site. After each
operation: acknowledged-but-missing = 0 on the current primary (async failover: every lost commit past the
promoted node's received LSN), every node's dump identical once caught up, the largest gap between acknowledged
commits printed, and `pgrepl.streaming.status -e pgrepl_status_strict=true` where the cluster should be healthy.

Playbooks run as users run them: `ansible-playbook -i base.yml -i groups.yml pgrepl.streaming.<name> -e ...`;
after a switchover, failover or remove the playbook itself rewrites groups.yml (pgrepl_inventory_file).
"""

from __future__ import annotations

import os
import time

import pytest
from d2_cluster import CLIENT_IMAGE, ROOT, DayTwoCluster, HostKind, PlaybookRun
from d2_cluster import TEST_PREFIX as PREFIX
from d2_docker import dexec, remove_prefixed
from d2_ledger import first_commit_on
from d2_proof import RECAP_CHANGED, Proof, ProofError, table

from ansible_collections.pgrepl.streaming.plugins.module_utils._lsn import parse_lsn

VERSIONS = os.environ.get("PGREPL_DAY2_VERSIONS", "pg15 pg17").split()
SYNC_NODES = {"pg15": (0, 2)}
# Hosts as users have them (issue 10), one chain carrying several kinds at once:
# - PostgreSQL 15: an SQL_ASCII cluster (pg_createcluster without a locale, as minimal images and containers make
#   it) whose server speaks Russian (lc_messages), managed hosts in a Russian locale, a dual-stack network with
#   every pgrepl_address an IPv6 literal, and n2 without IPv4 and without pgrepl_address (its IPv6 detected).
# - PostgreSQL 17: a Turkish cluster (tr_TR.UTF-8 collation and ctype: lower('I') is the dotless i), Turkish
#   managed hosts, nodes addressed by DNS names that resolve to an IPv4 and an IPv6 address each.
KINDS = {
    "pg15": HostKind(cluster_opts="--locale C --encoding SQL_ASCII --lc-messages ru_RU.UTF-8",
                     host_locale="ru_RU.UTF-8", ipv6_subnet="fd00:d2:15::/64", addressing="ipv6",
                     ipv4_flushed=(2,)),
    "pg17": HostKind(cluster_opts="--locale tr_TR.UTF-8", host_locale="tr_TR.UTF-8",
                     ipv6_subnet="fd00:d2:17::/64", addressing="dns"),
}
# PostgreSQL 17's chain runs with TLS for replication (the CA the role makes, beside the chain's inventory): its
# switchover (handover over SQL), failover, rejoin (pg_rewind), reseed (pg_basebackup) all connect with
# sslmode=verify-full to the DNS names its nodes are addressed by, and pg_hba admits them over TLS only.
GROUP_VARS: dict[str, dict[str, object]] = {"pg17": {"pgrepl_tls": True}}
CHAIN_BUDGET = 12 * 60  # seconds per version; the chain must stay well under it


def ok(run: PlaybookRun, what: str) -> PlaybookRun:
    if run.returncode != 0:
        raise ProofError(f"{what} failed:\n{run.describe()}")
    return run


def status_strict(cluster: DayTwoCluster, after: str, deferred: list[str]) -> None:
    """`pgrepl.streaming.status -e pgrepl_status_strict=true` must pass. Nothing later depends on its answer, so a
    failure is collected and the test fails at the end of the chain, after every operation has been proven."""
    run = cluster.playbook("status", "pgrepl_status_strict=true", label=f"after-{after}")
    if run.returncode != 0:
        deferred.append(f"status (strict) after {after} failed:\n{run.describe()}")


def report_of(run: PlaybookRun, operation: str, old_primary: str) -> dict:
    """The JSON report of a switchover or failover, checked against the contract."""
    report = run.report
    if not isinstance(report, dict):
        raise ProofError(f"{operation}: no JSON report written to pgrepl_report_file ({report!r})")
    problems = [key for key in ("operation", "old_primary", "new_primary", "promoted", "behind_bytes")
                if key not in report]
    promoted = report.get("promoted") or {}
    problems += [f"promoted.{key}" for key in ("received_lsn", "replayed_lsn", "timeline_after") if key not in promoted]
    if problems:
        raise ProofError(f"{operation}: report lacks {', '.join(problems)}: {report}")
    if report["operation"] != operation or report["old_primary"] != old_primary:
        raise ProofError(f"{operation}: report names operation {report['operation']!r}, old primary "
                         f"{report['old_primary']!r} (want {operation!r}, {old_primary!r})")
    return report


HOOK = """\
- name: What the node this hook runs on says of itself
  ansible.builtin.command:
    argv: [su, postgres, -c, "psql -XtAc 'SELECT pg_is_in_recovery()'"]
  register: hook_recovery
  changed_when: false
- name: Record when the {kind} hook ran
  ansible.builtin.lineinfile:
    path: "{log}"
    line: >-
      {kind} {{{{ pgrepl_old_primary }}}} {{{{ pgrepl_new_primary }}}} {{{{ inventory_hostname }}}}
      {{{{ hook_recovery.stdout | trim }}}} {{{{ now().timestamp() }}}}
    create: true
    mode: "0644"
  delegate_to: localhost
"""

# The post hook runs after the promotion and before the old primary follows (switchover) or is rejoined (failover):
# the old primary's standby.signal must be there, written before the promotion (its mtime; one clock, the host's).
FENCE = """\
- name: The old primary's fence, seen from after the promotion
  ansible.builtin.stat:
    path: "{{{{ hostvars[pgrepl_old_primary].__pgrepl_layout.data_dir }}}}/standby.signal"
  register: hook_fence
  delegate_to: "{{{{ pgrepl_old_primary }}}}"
- name: Record the fence
  ansible.builtin.lineinfile:
    path: "{log}"
    line: >-
      fence {{{{ pgrepl_old_primary }}}} {{{{ hook_fence.stat.exists }}}} {{{{ hook_fence.stat.mtime | default(0) }}}}
    mode: "0644"
  delegate_to: localhost
"""


def write_hooks(cluster: DayTwoCluster) -> list[str]:
    """Cut-over hooks that record when they ran (relative paths: the playbooks run in the cluster's workdir)."""
    log = cluster.workdir / "hooks.log"
    log.unlink(missing_ok=True)
    for kind in ("pre", "post"):
        fence = FENCE.format(log=log) if kind == "post" else ""
        (cluster.workdir / f"hook-{kind}.yml").write_text(HOOK.format(kind=kind, log=log) + fence)
    return ['{"pgrepl_cutover_pre_tasks": ["hook-pre.yml"], "pgrepl_cutover_post_tasks": ["hook-post.yml"]}']


def hook_lines(cluster: DayTwoCluster) -> list[list[str]]:
    path = cluster.workdir / "hooks.log"
    return [line.split() for line in path.read_text().splitlines()] if path.exists() else []


def check_hooks(cluster: DayTwoCluster, operation: str, old: str, new: str, last_on_old: float,
                first_on_new: float) -> str:
    """pre (switchover only) ran on the new primary while it was still a standby and before the old primary's
    last acknowledged commit; post ran once the new primary accepted writes; both saw the old and new names.
    The old primary was fenced (standby.signal) before the new one's first acknowledged commit, so before the
    promotion, and still is once the new primary takes writes."""
    lines = hook_lines(cluster)
    pre = [line for line in lines if line[0] == "pre"]
    post = [line for line in lines if line[0] == "post"]
    fence = [line for line in lines if line[0] == "fence"]
    problems = []
    if len(fence) != 1 or fence[0][1:3] != [old, "True"]:
        problems.append(f"the old primary {old} had no standby.signal after the promotion: {fence}")
    elif first_on_new and float(fence[0][3]) > first_on_new:
        problems.append(f"standby.signal on {old} written at {fence[0][3]}, after the first commit on {new} at "
                        f"{first_on_new}")
    if operation == "switchover":
        if len(pre) != 1 or pre[0][1:5] != [old, new, new, "t"]:
            problems.append(f"pre hook: want one line '{old} {new} {new} t', got {pre}")
        elif float(pre[0][5]) > last_on_old:
            problems.append(f"pre hook ran at {pre[0][5]}, after the old primary's last commit at {last_on_old}")
    elif pre:
        problems.append(f"pre hook ran in a {operation}: {pre}")
    if len(post) != 1 or post[0][1:5] != [old, new, new, "f"]:
        problems.append(f"post hook: want one line '{old} {new} {new} f', got {post}")
    elif pre and float(post[0][5]) < float(pre[0][5]):
        problems.append("post hook ran before the pre hook")
    if problems:
        raise ProofError(f"{operation} cut-over hooks: " + "; ".join(problems))
    return f"hooks ran: {', '.join(line[0] for line in lines)}"


def last_commit_on(proof: Proof, address: str) -> float:
    at = [c.at for c in proof.ledger.records() if c.server == address]
    return max(at) if at else 0.0


def first_at(proof: Proof, address: str, since: float) -> float:
    first = first_commit_on(proof.ledger.records(), address, since)
    return first.at if first else 0.0


def expect_groups(cluster: DayTwoCluster, primary: str, what: str) -> list[str]:
    """groups.yml as the playbook rewrote it: `primary` in group primary; returns the standby group."""
    now_primary, standbys = cluster.groups()
    if now_primary != primary:
        raise ProofError(f"{what}: groups.yml names {now_primary} as primary, want {primary}:\n"
                         f"{cluster.groups_file.read_text()}")
    return standbys


@pytest.mark.parametrize("tag", VERSIONS)
def test_chain(tag: str, images: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    began = time.monotonic()
    workdir = ROOT / ".build" / "day2" / tag
    # PostgreSQL 15: n0 and n2 synchronous (ANY 1): the failover promotes a synchronous standby (nothing may be
    # lost), and the removed standby is the one synchronous_standby_names names (commits wait until it is gone).
    # PostgreSQL 17: all asynchronous, so the failover is proven by the received-LSN rule.
    cluster = DayTwoCluster(PREFIX, tag, images[tag], CLIENT_IMAGE, workdir, standbys=2,
                            sync=SYNC_NODES.get(tag, ()), kind=KINDS.get(tag, HostKind()),
                            group_vars=GROUP_VARS.get(tag))
    notes: list[str] = []
    proofs: list[Proof] = []
    deferred: list[str] = []
    try:
        run_chain(cluster, notes, proofs, deferred)
    finally:
        figures_text = ""
        if proofs or cluster.runs:
            figures_text = summary(cluster, proofs[0] if proofs else None, notes, time.monotonic() - began)
            if deferred:
                figures_text += "\nfailed checks the chain went on after:\n" + "\n".join(
                    "  - " + text.splitlines()[0] for text in deferred)
            (workdir / "figures.txt").write_text(figures_text + "\n")
        with capsys.disabled():
            print(f"\n[day2 {tag}] {figures_text or 'no figures'}")
        cluster.destroy()
        remove_prefixed(f"{PREFIX}{tag}")
    assert not deferred, "\n\n".join(deferred)
    assert time.monotonic() - began < CHAIN_BUDGET, f"the {tag} chain took {time.monotonic() - began:.0f} s"


def summary(cluster: DayTwoCluster, proof: object, notes: list[str], seconds: float) -> str:
    lines = [f"chain on PostgreSQL {cluster.version or '?'} ({seconds:.0f} s; logs in {cluster.logdir})",
             f"  hosts: {cluster.kind.describe()}"]
    if isinstance(proof, Proof) and proof.figures:
        names = {addr: name.rsplit("-", 1)[-1] for name, addr in cluster.address.items()}
        lines.append(table([f.row(names) for f in proof.figures]))
    lines += [f"  note: {n}" for n in notes]
    runs = ", ".join(f"{r.log.stem} {r.seconds:.0f}s rc={r.returncode}" for r in cluster.runs)
    lines.append(f"playbook runs: {runs}")
    return "\n".join(lines)


def check_cluster_kind(cluster: DayTwoCluster) -> None:
    """The hosts really are of the kind the chain claims: the cluster's encoding and locale, the server's
    message language, and streaming over the addresses the kind says (IPv6 client addresses on the primary)."""
    kind = cluster.kind
    primary = cluster.names[0]
    facts = cluster.psql(primary, "SELECT pg_encoding_to_char(encoding) || '|' || datcollate || '|' || "
                                  "current_setting('lc_messages') FROM pg_database WHERE datname = 'postgres'")
    problems = []
    opts = kind.cluster_opts.split()
    if "SQL_ASCII" in opts and not facts.startswith("SQL_ASCII|"):
        problems.append(f"encoding|collate|lc_messages {facts}, want SQL_ASCII")
    if "tr_TR.UTF-8" in opts and facts.split("|")[:2] != ["UTF8", "tr_TR.UTF-8"]:
        problems.append(f"encoding|collate|lc_messages {facts}, want UTF8|tr_TR.UTF-8")
    if "ru_RU.UTF-8" in opts and not facts.endswith("|ru_RU.UTF-8"):
        problems.append(f"encoding|collate|lc_messages {facts}, want lc_messages ru_RU.UTF-8")
    clients = cluster.psql(primary, "SELECT string_agg(application_name || '=' || host(client_addr), ' ' "
                                    "ORDER BY application_name) FROM pg_stat_replication")
    for name in cluster.names[1:]:
        addr = next((p.split("=", 1)[1] for p in clients.split() if p.split("=", 1)[0] == name), None)
        if addr is None:
            problems.append(f"{name} is not in the primary's pg_stat_replication ({clients})")
        elif (kind.addressing == "ipv6" or name in cluster.flushed) and ":" not in addr:
            problems.append(f"{name} streams from {addr}, want an IPv6 address")
    if problems:
        raise ProofError(f"the cluster is not of the kind the chain tests ({kind.describe()}): {'; '.join(problems)}")
    check_tls(cluster, primary, cluster.names[1:])


def check_tls(cluster: DayTwoCluster, primary: str, standbys: list[str]) -> None:
    """With pgrepl_tls, every standby streams from the primary over TLS (pg_stat_ssl of its WAL sender) and its
    primary_conninfo verifies the primary's name with the CA on the node."""
    if not cluster.extra_group_vars.get("pgrepl_tls"):
        return
    rows = cluster.psql(primary, "SELECT string_agg(r.application_name || '=' || s.ssl, ' ' "
                                 "ORDER BY r.application_name) "
                                 "FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid)")
    want = " ".join(f"{name}=true" for name in sorted(standbys))
    problems = [] if rows == want else [f"the WAL senders of {primary} and their TLS: {rows}, want {want}"]
    for name in standbys:
        conninfo = cluster.psql(name, "SELECT setting FROM pg_settings WHERE name = 'primary_conninfo'")
        if "sslmode='verify-full'" not in conninfo or "sslrootcert=" not in conninfo:
            problems.append(f"{name}: primary_conninfo {conninfo!r} does not verify the primary with the CA")
    if problems:
        raise ProofError("TLS for replication: " + "; ".join(problems))


def run_chain(cluster: DayTwoCluster, notes: list[str], proofs: list[Proof], deferred: list[str]) -> None:
    n0, n1, n2 = cluster.names
    cluster.start()
    cluster.prepare_ledger()
    cluster.write_inventory()
    ok(cluster.playbook("site", label="build"), "site (1 primary + 2 standbys)")
    cluster.wait_streaming(n0, [n1, n2])
    check_cluster_kind(cluster)
    rerun = ok(cluster.playbook("site", label="rerun"), "site re-run on the converged cluster")
    changed = {host: int(count) for host, count in RECAP_CHANGED.findall(rerun.output) if int(count)}
    if changed:
        raise ProofError(f"site re-run on the converged cluster changed something: {changed}\n{rerun.describe()}")
    notes.append(f"site re-run: changed=0 on every node ({rerun.seconds:.1f} s)")
    status_strict(cluster, "site", deferred)

    ledger = cluster.ledger()
    ledger.start()
    proof = Proof(cluster, ledger)
    proofs.append(proof)  # the summary prints its figures even when a step below raises
    ledger.pause()
    try:
        chain_steps(cluster, proof, notes, deferred)
    finally:
        ledger.stop()
    # After the switchover, failover, rejoin (pg_rewind) and reseed: still TLS only, from the last primary.
    primary, standbys = cluster.groups()
    check_tls(cluster, primary, standbys)
    if cluster.extra_group_vars.get("pgrepl_tls"):
        notes.append(f"TLS: every standby streams from {primary} over TLS, primary_conninfo sslmode=verify-full")


def chain_steps(cluster: DayTwoCluster, proof: Proof, notes: list[str], deferred: list[str]) -> None:
    n0, n1, n2 = cluster.names
    sync = cluster.sync_host  # n2: pgrepl_sync in base.yml; n1 is the asynchronous standby

    # --- refusals on the healthy cluster, with writes running -----------------------------------------------------
    win = proof.begin("refusals (writes running)")
    primary, standbys = n0, [n1, n2]

    def refuse(label: str, name: str, *extra: str) -> PlaybookRun:
        cluster.quiesce_checkpoints(primary, standbys)
        return proof.refused(label, name, *extra, primary=primary, standbys=standbys, deferred=deferred)

    refuse("switchover to the primary itself", "switchover", f"pgrepl_target={n0}")
    refuse("switchover to a host not in the inventory", "switchover", f"pgrepl_target={cluster.prefix}no-such-host")
    refuse("failover while the primary runs and accepts writes", "failover")
    refuse("rejoin of the current primary", "rejoin", f"pgrepl_host={n0}")
    refuse("remove_standby of a streaming standby without force", "remove_standby", f"pgrepl_host={n1}")
    # A network where an address belongs: refused before any node changes, naming the value.
    bad = refuse("site with a network as pgrepl_address", "site", "pgrepl_address=2001:db8::/32")
    if "2001:db8::/32" not in bad.output:
        deferred.append(f"site with a network as pgrepl_address: the refusal does not name it:\n{bad.describe()}")

    cluster.quiesce_checkpoints(primary, standbys)
    cluster.psql(n1, "SELECT pg_wal_replay_pause()")
    try:
        proof.refused("switchover to a standby whose replay is paused", "switchover", f"pgrepl_target={n1}",
                      primary=primary, standbys=standbys, deferred=deferred)
        proof.refused("switchover with max lag 0 while replay is paused and writes run", "switchover",
                      f"pgrepl_target={n1}", "pgrepl_switchover_max_lag_bytes=0",
                      primary=primary, standbys=standbys, deferred=deferred)
    finally:
        cluster.psql(n1, "SELECT pg_wal_replay_resume()")

    cluster.quiesce_checkpoints(primary, standbys)
    cluster.stop_server(n1)  # the asynchronous one: stopping the synchronous one would hold every commit
    try:
        proof.refused("switchover to a stopped standby (not streaming)", "switchover", f"pgrepl_target={n1}",
                      primary=primary, standbys=standbys, deferred=deferred)
    finally:
        cluster.start_server(n1)
    cluster.wait_streaming(n0, [n1, n2])

    # The primary's host does not answer (its ansible_host names no container; its server runs on and takes
    # writes): the failover cannot fence it, so without pgrepl_fence_tasks or pgrepl_confirm_dead it is refused.
    cluster.quiesce_checkpoints(primary, standbys)
    cluster.set_groups(n0, [n1, n2], unreachable=(n0,))
    try:
        unfenced = proof.refused("failover with the primary host not answering, no fence", "failover",
                                 primary=primary, standbys=standbys, deferred=deferred, unreachable=(n0,))
    finally:
        cluster.set_groups(n0, [n1, n2])
    if f"pgrepl_confirm_dead={n0}" not in unfenced.output:
        deferred.append(f"failover with the primary's host not answering: the refusal does not ask for a fence or "
                        f"pgrepl_confirm_dead={n0}:\n{unfenced.describe()}")
    proof.end(win, n0)
    proven = sum(f.op.startswith("refused:") for f in proof.figures)
    proof.check(win, n0, [n1, n2], seconds=time.time() - win.started, note=f"{proven} of 10 refusals proven")

    # --- check mode: the summary, nothing changed ----------------------------------------------------------------
    cluster.quiesce_checkpoints(primary, standbys)
    proof.dry_run("switchover --check", "switchover", f"pgrepl_target={n1}")
    cluster.quiesce_checkpoints(primary, standbys)
    proof.dry_run("failover --check (forced)", "failover", "pgrepl_force=true")

    # --- switchover to the asynchronous standby, with cut-over hooks ------------------------------------------
    hooks = write_hooks(cluster)
    win = proof.begin("switchover")
    run = ok(cluster.playbook("switchover", f"pgrepl_target={n1}", *hooks), f"switchover to {n1}")
    win.finished = time.time()
    report = report_of(run, "switchover", n0)
    hooks_note = check_hooks(cluster, "switchover", n0, n1, last_commit_on(proof, cluster.address[n0]),
                             first_at(proof, cluster.address[n1], win.started))
    standbys = expect_groups(cluster, n1, "switchover")
    if sorted(standbys) != sorted([n0, n2]):
        raise ProofError(f"switchover: groups.yml standbys {standbys}, want {n0} and {n2}")
    proof.end(win, n1)
    proof.check(win, n1, standbys, seconds=run.seconds, moved=True,
                note=f"report new_primary={report['new_primary']}; {hooks_note}")
    cluster.wait_streaming(n1, standbys)
    status_strict(cluster, "switchover", deferred)

    # --- site with the inventory of before the switchover: refused, naming the real primary --------------------
    cluster.quiesce_checkpoints(n1, standbys)
    cluster.set_groups(n0, [n1, n2])
    try:
        stale = proof.refused("site with the inventory of before the switchover", "site", primary=n1,
                              standbys=standbys, deferred=None)
    finally:
        cluster.set_groups(n1, standbys)
    if f"The primary now is {n1}" not in stale.output:
        raise ProofError(f"site on a stale inventory did not name the real primary {n1}:\n{stale.describe()}")

    # --- failover after the primary's postmaster got SIGKILL ----------------------------------------------------
    old = n1
    sync_names = cluster.psql(old, "SHOW synchronous_standby_names")
    win = proof.begin("failover (SIGKILL)")
    cluster.kill_server(old)
    win.started = time.time()
    hooks = write_hooks(cluster)
    run = ok(cluster.playbook("failover", *hooks), "failover")
    win.finished = time.time()
    report = report_of(run, "failover", old)
    new = report["new_primary"]
    hooks_note = check_hooks(cluster, "failover", old, new, 0.0, first_at(proof, cluster.address[new], win.started))
    standbys = expect_groups(cluster, new, "failover")
    if cluster.accepting(old):
        raise ProofError(f"failover: the old primary {old} accepts connections again (not fenced)")
    live = [s for s in standbys if s != old]
    if old not in standbys:
        notes.append(f"failover: groups.yml has no {old} in group standby; added it there for the rejoin")
        cluster.set_groups(new, [*standbys, old])
    proof.end(win, new)
    received = parse_lsn(str(report["promoted"]["received_lsn"]))
    proof.check(win, new, live, seconds=run.seconds, received_lsn=received, sync_failover=bool(sync_names), moved=True,
                note=f"{new} promoted ({'sync' if sync_names else 'async'}: {sync_names or 'none'}); behind "
                     f"{report['behind_bytes']}; {hooks_note}")

    # --- rejoin of the old primary -------------------------------------------------------------------------------
    win = proof.begin("rejoin")
    run = ok(cluster.playbook("rejoin", f"pgrepl_host={old}"), f"rejoin of {old}")
    win.finished = time.time()
    primary, standbys = cluster.groups()
    if primary != new or old not in standbys:
        raise ProofError(f"rejoin: groups.yml says primary {primary}, standbys {standbys}")
    cluster.wait_streaming(new, standbys)
    proof.end(win, new)
    proof.check(win, new, standbys, seconds=run.seconds)
    # pg_rewind's role (it may read any file of the primary's data directory) is gone again, with its grants,
    # its pg_hba entry on the primary and its passfile line on the rejoined node (pgrepl_rewind_cleanup).
    if cluster.psql(new, "SELECT count(*) FROM pg_roles WHERE rolname = 'pgrepl_rewind'").strip() != "0":
        raise ProofError(f"rejoin: the role pgrepl_rewind still exists on {new}")
    hba = cluster.psql(new, "SELECT count(*) FROM pg_hba_file_rules WHERE 'pgrepl_rewind' = ANY(user_name)")
    if hba.strip() != "0":
        raise ProofError(f"rejoin: {new}'s pg_hba still admits pgrepl_rewind")
    if "pgrepl_rewind" in dexec(old, "cat", "/var/lib/postgresql/.pgpass", check=False):
        raise ProofError(f"rejoin: {old}'s passfile still holds the pgrepl_rewind line")
    status_strict(cluster, "rejoin", deferred)

    # --- reseed of a standby (not the one just rejoined) --------------------------------------------------------
    target = next(s for s in standbys if s != old)
    win = proof.begin(f"reseed {target.rsplit('-', 1)[-1]}")
    run = ok(cluster.playbook("reseed", f"pgrepl_host={target}"), f"reseed of {target}")
    win.finished = time.time()
    cluster.wait_streaming(new, standbys)
    proof.end(win, new)
    proof.check(win, new, standbys, seconds=run.seconds)
    status_strict(cluster, "reseed", deferred)

    # --- remove_standby of a dead standby: the synchronous one when there is one ----------------------------------
    named = cluster.psql(new, "SHOW synchronous_standby_names")
    gone = next((s for s in standbys if s in named), standbys[-1])
    win = proof.begin(f"remove_standby {gone.rsplit('-', 1)[-1]} (stopped)")
    cluster.stop_server(gone)  # the host is dead; the work happens on the primary
    run = ok(cluster.playbook("remove_standby", f"pgrepl_host={gone}"), f"remove_standby of {gone}")
    win.finished = time.time()
    primary, standbys = cluster.groups()
    if gone in standbys:
        notes.append(f"remove_standby: groups.yml still listed {gone}; dropped it")
        standbys = [s for s in standbys if s != gone]
        cluster.set_groups(primary, standbys)
    slot = gone.lower().replace("-", "_")
    left = cluster.psql(new, f"SELECT count(*) FROM pg_replication_slots WHERE slot_name = '{slot}'")  # noqa: S608
    named = cluster.psql(new, "SHOW synchronous_standby_names")
    if left != "0" or gone in named:
        raise ProofError(f"remove_standby: slot {slot} count {left}, synchronous_standby_names {named!r}")
    proof.end(win, new)
    proof.check(win, new, standbys, seconds=run.seconds, note=f"was in synchronous_standby_names: {gone == sync}")
    status_strict(cluster, "remove_standby", deferred)

    # --- add it back with site ----------------------------------------------------------------------------------
    win = proof.begin(f"add {gone.rsplit('-', 1)[-1]} back (site)")
    others = [new, *standbys]
    started_before = {node: cluster.psql(node, "SELECT pg_postmaster_start_time()") for node in others}
    standbys = [*standbys, gone]
    cluster.set_groups(new, standbys)
    run = ok(cluster.playbook("site", label="add-back"), f"site adding {gone} back")
    win.finished = time.time()
    started_after = {node: cluster.psql(node, "SELECT pg_postmaster_start_time()") for node in others}
    if started_after != started_before:
        raise ProofError(f"site adding {gone} restarted other nodes: {started_before} -> {started_after}")
    cluster.wait_streaming(new, standbys)
    proof.end(win, new)
    proof.check(win, new, standbys, seconds=run.seconds)
    status_strict(cluster, "add-back", deferred)

    # --- rolling restart: the standbys one by one, then the primary ---------------------------------------------
    win = proof.begin("rolling_restart")
    run = ok(cluster.playbook("rolling_restart"), "rolling_restart")
    win.finished = time.time()
    cluster.wait_streaming(new, standbys)
    proof.end(win, new)
    proof.check(win, new, standbys, seconds=run.seconds)
    status_strict(cluster, "rolling_restart", deferred)
