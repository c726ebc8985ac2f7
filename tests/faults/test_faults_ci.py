# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The CI subset of the fault-injection bench (flt_bench.FAULTS marked ci) on one 1+2 cluster: every fault
converges by its re-run, no split-brain instant, no acknowledged commit lost (a failover: none at or before the
promoted node's received LSN), and the control (a standby promoted by hand) is seen as a split. Needs Docker: a
missing engine or image fails (never a skip)."""

from __future__ import annotations

import time

import pytest
from d2_cluster import CLIENT_IMAGE
from d2_docker import engine_problem, image_exists
from flt_bench import IMAGE, failures, run

# Seconds the subset may take on the project's 2-core machine (it takes about 8-10 minutes).
BUDGET = 20 * 60


def test_faults_ci(capsys: pytest.CaptureFixture[str]) -> None:
    problem = engine_problem()
    if problem:
        pytest.fail(f"{problem}: the fault bench cannot run (bash scripts/faults.sh ci sets it up)", pytrace=False)
    absent = [image for image in (IMAGE, CLIENT_IMAGE) if not image_exists(image)]
    if absent:
        pytest.fail(f"image(s) {', '.join(absent)} not built (bash tests/images/build.sh pg15 client)", pytrace=False)
    began = time.monotonic()
    with capsys.disabled():
        outcomes, control = run("ci")
    bad = failures(outcomes, control)
    assert not bad, "\n".join(bad)
    assert time.monotonic() - began < BUDGET, f"the CI subset took {time.monotonic() - began:.0f} s"
