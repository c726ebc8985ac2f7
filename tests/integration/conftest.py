"""Fixtures: one throwaway primary and one real streaming standby for the whole session (per xdist worker)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from cluster import PgCluster  # noqa: E402  (tests/integration is on sys.path via pytest rootdir conftest)


@pytest.fixture(scope="session")
def bench_dir() -> Iterator[Path]:
    # Each pytest-xdist worker has its own session, so its own directory (and its own primary and standby).
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    path = Path(tempfile.mkdtemp(prefix=f"pgrepl-bench-{worker}-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def primary(bench_dir: Path) -> Iterator[PgCluster]:
    """A primary with log_statement=all, scram over TCP for the modules, trust on its private socket."""
    cluster = PgCluster(bench_dir, "primary")
    cluster.init()
    cluster.start()
    yield cluster
    cluster.destroy()


@pytest.fixture(scope="session")
def standby(bench_dir: Path, primary: PgCluster) -> Iterator[PgCluster]:
    """A real streaming standby of the primary (pg_basebackup -R, its own slot)."""
    cluster = PgCluster(bench_dir, "standby")
    cluster.clone_from(primary, slot="bench_standby")
    cluster.start()
    cluster.wait_streaming()
    yield cluster
    cluster.destroy()
