# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One node's write sampler: does this node accept a write right now? Runs in the ledger client's container (Debian's
python3-psycopg), one process per node, copied there by flt_bench.Samplers.

Its own persistent connection to the one node (no multi-host, no target_session_attrs); every --interval seconds
one statement in autocommit, `UPDATE flt_probe SET n = n + 1 WHERE node = <node>` with synchronous_commit=local
(a commit never waits for a standby), timed by wall clock before it is sent and after its answer:
  W  committed;  R  SQLSTATE 25006 (read-only: in recovery);  E  anything else (the connection is made again).
Each line of --out: start, end, epoch (one per connection made), state, detail. flt_split.py reads them.
SIGTERM ends it.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time

import psycopg

STOP = False


def on_term(signum: int, frame: object) -> None:
    global STOP
    STOP = True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conninfo", required=True, help="libpq conninfo of this one node")
    parser.add_argument("--node", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--interval", type=float, default=0.02)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, on_term)
    out = open(args.out, "a", buffering=1, encoding="utf-8")
    conn = None
    epoch = 0
    while not STOP:
        start = time.time()
        state, detail = "E", ""
        try:
            if conn is None:
                conn = psycopg.connect(args.conninfo, autocommit=True)
                conn.execute("SET synchronous_commit = local")
                epoch += 1
                start = time.time()
            conn.execute("UPDATE flt_probe SET n = n + 1, at = clock_timestamp() WHERE node = %s", [args.node])
            state = "W"
        except psycopg.Error as exc:
            sqlstate = getattr(exc, "sqlstate", None) or ""
            if sqlstate == "25006":
                state, detail = "R", sqlstate
            else:
                detail = f"{sqlstate} {type(exc).__name__}: {' '.join(str(exc).split())[:160]}"
                if conn is not None:
                    try:
                        conn.close()
                    except psycopg.Error:
                        pass
                conn = None
        end = time.time()
        out.write(f"{start:.6f}\t{end:.6f}\t{epoch}\t{state}\t{detail}\n")
        rest = args.interval - (end - start)
        time.sleep(rest if rest > 0 else 0.001)
    if conn is not None:
        conn.close()
    out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
