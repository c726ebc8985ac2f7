"""Fixtures: one throwaway primary and one real streaming standby for the whole session."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from cluster import PgCluster  # noqa: E402  (tests/integration is on sys.path via pytest rootdir conftest)


@pytest.fixture(scope="session")
def bench_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="pgrepl-bench-"))
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
