# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fixtures of the day-2 proof: a Docker engine (in CI a missing one FAILS, never skips), the images, and no
pgrepl-d2-* container or network left from an earlier run, nor after this one."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from d2_cluster import CLIENT_IMAGE  # noqa: E402
from d2_cluster import TEST_PREFIX as PREFIX  # noqa: E402
from d2_docker import engine_problem, image_exists, in_ci, remove_prefixed  # noqa: E402


def unavailable(reason: str) -> None:
    """The proof must run: a missing engine or image fails (never a skip), in CI and on a workstation alike."""
    hint = "scripts/test.sh day2 sets it all up" if in_ci() else "bash scripts/test.sh day2 installs and builds it"
    pytest.fail(f"{reason}: the day-2 proof cannot run ({hint})", pytrace=False)


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[None]:
    problem = engine_problem()
    if problem:
        unavailable(problem)
    removed = remove_prefixed(PREFIX)
    if removed:
        print(f"\n[day2] removed leftovers of an earlier run: {' '.join(removed)}")
    yield
    remove_prefixed(PREFIX)


@pytest.fixture(scope="session")
def images(docker_engine: None) -> dict[str, str]:
    """Host images by version tag, and the client's."""
    wanted = {"pg15": "pgrepl-test/pg15:current", "pg17": "pgrepl-test/pg17:current", "client": CLIENT_IMAGE}
    absent = [image for image in wanted.values() if not image_exists(image)]
    if absent:
        unavailable(f"image(s) {', '.join(absent)} not built (bash tests/images/build.sh pg15 pg17 client)")
    return wanted
