# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""tests/faults: its own helpers and tests/day2's (cluster, ledger, proof) importable as plain modules."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
for path in (HERE, HERE.parent / "day2"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))
