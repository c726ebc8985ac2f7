# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""scripts/bench_day2.py's Ansible connection: as `make bench` has it (root, no become, pipelining) unless
PGREPL_BENCH_DAY2_CONNECTION=su keeps the day-2 chain's inventory."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    sys.path.insert(0, str(ROOT / "scripts"))
    spec = importlib.util.spec_from_file_location("bench_day2_under_test", ROOT / "scripts" / "bench_day2.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def chain_inventory(path: Path) -> Path:
    """base.yml's vars as tests/day2/d2_cluster.py writes them."""
    path.write_text(yaml.safe_dump({"all": {"hosts": {"n0": None}, "vars": {
        "ansible_connection": "community.docker.docker", "ansible_python_interpreter": "/usr/bin/python3",
        "ansible_become_method": "ansible.builtin.su", "pgrepl_replication_password": "x"}}}))
    return path


def test_root_with_pipelining_by_default(bench: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bench, "CONNECTION", "root")
    base = chain_inventory(tmp_path / "base.yml")
    bench.use_bench_connection(SimpleNamespace(base_file=base))
    variables = yaml.safe_load(base.read_text())["all"]["vars"]
    assert variables == {"ansible_connection": "community.docker.docker",
                         "ansible_python_interpreter": "/usr/bin/python3", "pgrepl_replication_password": "x",
                         "ansible_become": False, "ansible_pipelining": True}


def test_su_keeps_the_chains_inventory(bench: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bench, "CONNECTION", "su")
    base = chain_inventory(tmp_path / "base.yml")
    before = base.read_text()
    bench.use_bench_connection(SimpleNamespace(base_file=base))
    assert base.read_text() == before
