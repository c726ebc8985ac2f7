"""Fixtures: one throwaway primary and one real streaming standby for the whole session (per xdist worker), the
factory of a test module's own clusters, and the end of the Ansible session of tests/integration/ansible_runner.py."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from ansible_runner import close_session, start_session
from cluster import Clusters, PgCluster  # noqa: E402  (tests/integration is on sys.path via pytest rootdir conftest)


@pytest.fixture(scope="session", autouse=True)
def ansible_session() -> Iterator[None]:
    """The long ansible-playbook process that serves run_tasks/run_module: it starts with the test session (while
    the first clusters are made) and ends with it (atexit and the session's own watch of this process cover a
    crash)."""
    start_session()
    yield
    close_session()


@pytest.fixture(scope="session")
def bench_dir() -> Iterator[Path]:
    # Each pytest-xdist worker has its own session, so its own directory (and its own primary and standby).
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    path = Path(tempfile.mkdtemp(prefix=f"pgrepl-bench-{worker}-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def shared_clusters(bench_dir: Path) -> Iterator[Clusters]:
    made = Clusters("bench", base=bench_dir)
    yield made
    made.destroy()


@pytest.fixture(scope="session")
def primary(shared_clusters: Clusters) -> PgCluster:
    """A primary with log_statement=all, scram over TCP for the modules, trust on its private socket."""
    return shared_clusters.server("primary")


@pytest.fixture(scope="session")
def standby(shared_clusters: Clusters, primary: PgCluster) -> PgCluster:
    """A real streaming standby of the primary (pg_basebackup -R, its own slot)."""
    return shared_clusters.standby(primary, "standby", slot="bench_standby")


@pytest.fixture(scope="module")
def throwaway(request: pytest.FixtureRequest) -> Iterator[Clusters]:
    """A test module's own clusters (Clusters.pair for a primary and its streaming standby, Clusters.server,
    Clusters.standby), all destroyed when the module ends: for tests that stop, promote or break servers."""
    made = Clusters(request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_"))
    yield made
    made.destroy()
