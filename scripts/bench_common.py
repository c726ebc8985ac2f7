# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What `make bench` (scripts/bench.py) and `make bench-day2` (scripts/bench_day2.py) conclude the same way."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Callable

from d2_docker import env_flag


def exit_status(errors: list[str], rows: Sequence[Sequence[str]], say: Callable[[str], None]) -> int:
    """1 when a measurement failed (it is not reported); a missed target (a row whose verdict, its fifth cell, is
    MISS) fails the run only with PGREPL_BENCH_STRICT=1."""
    if errors:
        say(f"{len(errors)} measurement(s) failed, not reported:")
        for err in errors:
            print("  - " + err.splitlines()[0])
        return 1
    if any(row[4] == "MISS" for row in rows):
        say("some targets are missed (MISS above)")
        return 1 if env_flag("PGREPL_BENCH_STRICT") else 0
    return 0
