# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The write ledger's client: commits numbered rows continuously and records every acknowledged commit.

Runs inside the client container (Debian's python3 and python3-psycopg 3.1), started by d2_ledger.LedgerClient.
It connects through libpq with a multi-host conninfo and target_session_attrs=read-write, so it always writes on
whichever node is the primary, and after an error it reconnects and keeps going.

Each commit is one simple-protocol round trip: BEGIN; INSERT id; COMMIT; SELECT the WAL insert position and the
server's address. The COMMIT has returned (flushed, and confirmed by a synchronous standby when one is named)
before the SELECT runs, so the position read is at or past the end of the commit record. A commit is
acknowledged only when the whole round trip succeeded; one that failed in flight is "in doubt" (it may or may not
exist) and is written to the events file, never to the records.

Files in --out (line-buffered, flushed after every line):
  records.tsv   id, wall time of the acknowledgement (unix seconds), WAL position after the commit, server address
  events.tsv    wall time, kind (connected, error, indoubt, paused, resumed, stopped), detail
  state         "running <last id>" or "paused <last id>" (rewritten on every change); the harness waits on it
Controls: the file `pause` in --out pauses the loop between commits (no transaction in flight while paused);
SIGTERM stops it after the current commit.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time

import psycopg
from psycopg import sql

STOP = False


def on_term(signum: int, frame: object) -> None:
    global STOP
    STOP = True


def write_state(out: str, text: str) -> None:
    tmp = os.path.join(out, "state.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text + "\n")
    os.replace(tmp, os.path.join(out, "state"))


def one_line(text: object) -> str:
    return " ".join(str(text).split())[:400]


def commit(conn: psycopg.Connection, table: sql.Identifier, row_id: int) -> tuple[str, str]:
    """One acknowledged commit of row `row_id`: returns (WAL position after it, server address)."""
    query = sql.SQL(
        "BEGIN; INSERT INTO {table} (id) VALUES ({id}); COMMIT; "
        "SELECT pg_current_wal_insert_lsn()::text, coalesce(host(inet_server_addr()), 'local')"
    ).format(table=table, id=sql.Literal(row_id))
    with conn.cursor() as cur:
        cur.execute(query)  # no parameters: one simple-protocol message, four results
        last = None
        while True:
            if cur.description is not None:
                last = cur.fetchone()
            if not cur.nextset():
                break
    if last is None:
        raise RuntimeError("the commit round trip returned no position")
    return str(last[0]), str(last[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conninfo", required=True, help="libpq conninfo (multi-host, target_session_attrs)")
    parser.add_argument("--out", required=True, help="directory for records.tsv, events.tsv, state")
    parser.add_argument("--table", default="ledger")
    parser.add_argument("--first-id", type=int, default=1)
    parser.add_argument("--interval", type=float, default=0.01, help="seconds between commits")
    parser.add_argument("--retry", type=float, default=0.05, help="seconds between connection attempts")
    args = parser.parse_args()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "pid"), "w", encoding="utf-8") as handle:
        handle.write(f"{os.getpid()}\n")
    records = open(os.path.join(args.out, "records.tsv"), "a", buffering=1, encoding="utf-8")
    events = open(os.path.join(args.out, "events.tsv"), "a", buffering=1, encoding="utf-8")
    pause_file = os.path.join(args.out, "pause")
    table = sql.Identifier(args.table)

    def event(kind: str, detail: object = "") -> None:
        events.write(f"{time.time():.6f}\t{kind}\t{one_line(detail)}\n")
        events.flush()

    conn = None
    next_id = args.first_id
    paused = False
    write_state(args.out, f"running {next_id - 1}")
    event("started", f"first id {next_id}")
    while not STOP:
        if os.path.exists(pause_file):
            if not paused:
                paused = True
                write_state(args.out, f"paused {next_id - 1}")
                event("paused", next_id - 1)
            time.sleep(0.02)
            continue
        if paused:
            paused = False
            write_state(args.out, f"running {next_id - 1}")
            event("resumed", next_id - 1)
        if conn is None or conn.closed:
            try:
                conn = psycopg.connect(args.conninfo, autocommit=True)
            except psycopg.Error as exc:
                event("error", f"connect: {exc}")
                conn = None
                time.sleep(args.retry)
                continue
            event("connected", conn.info.host)
        row_id = next_id
        next_id += 1
        try:
            lsn, server = commit(conn, table, row_id)
        except (psycopg.Error, RuntimeError) as exc:
            # The outcome of this commit is unknown: it is never counted as acknowledged.
            event("indoubt", f"{row_id} {type(exc).__name__}: {exc}")
            try:
                conn.close()
            except psycopg.Error:
                pass
            conn = None
            time.sleep(args.retry)
            continue
        records.write(f"{row_id}\t{time.time():.6f}\t{lsn}\t{server}\n")
        records.flush()
        if args.interval > 0:
            time.sleep(args.interval)
    write_state(args.out, f"stopped {next_id - 1}")
    event("stopped", next_id - 1)
    if conn is not None and not conn.closed:
        conn.close()
    records.close()
    events.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
