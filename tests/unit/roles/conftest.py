# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The renderer child of rendering.py ends with the session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .rendering import stop_renderer


@pytest.fixture(scope="session", autouse=True)
def _stop_renderer_at_the_end() -> Iterator[None]:
    yield
    stop_renderer()
