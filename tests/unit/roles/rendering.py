# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Role YAML rendered by Ansible's own templating, as a play renders it, for the unit tests of tests/unit/roles:
render() over one long-lived child process (started on first use, stopped by conftest.py at the end)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[3]

# Ansible's templating in a process of its own: its collection loader must import the collection itself (this
# process imported it before any loader was there). One JSON line in (template, variables), one out.
RENDERER = """
import json, sys
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import init_plugin_loader
from ansible.template import Templar, trust_as_template
init_plugin_loader([sys.argv[1]])

def trusted(value):
    if isinstance(value, str):
        return trust_as_template(value)
    if isinstance(value, dict):
        return {key: trusted(item) for key, item in value.items()}
    if isinstance(value, list):
        return [trusted(item) for item in value]
    return value

for line in sys.stdin:
    template, variables = json.loads(line)
    try:
        answer = {"value": Templar(loader=DataLoader(), variables=variables).template(trusted(template))}
    except Exception as exc:
        answer = {"error": f"{type(exc).__name__}: {exc}"}
    print(json.dumps(answer), flush=True)
"""

# The renderer child, once started.
_CHILD: dict[str, subprocess.Popen[str]] = {}


def _renderer() -> subprocess.Popen[str]:
    if "renderer" not in _CHILD:
        _CHILD["renderer"] = subprocess.Popen(
            [sys.executable, "-c", RENDERER, str(ROOT / ".build" / "collections")],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    return _CHILD["renderer"]


def stop_renderer() -> None:
    """End the child, if one was started."""
    child = _CHILD.pop("renderer", None)
    if child is None:
        return
    assert child.stdin is not None
    child.stdin.close()
    child.wait(timeout=30)


def render(template: Any, variables: dict[str, Any]) -> Any:
    """The template (a string, or a dict/list of them) rendered by Ansible with these variables."""
    child = _renderer()
    assert child.stdin is not None and child.stdout is not None
    child.stdin.write(json.dumps([template, variables]) + "\n")
    child.stdin.flush()
    answer = json.loads(child.stdout.readline())
    if "error" in answer:
        raise AssertionError(f"{template!r} did not render: {answer['error']}")
    return answer["value"]


def role_vars(role: str) -> dict[str, Any]:
    return yaml.safe_load((ROOT / "roles" / role / "vars" / "main.yml").read_text())


def task_var(path: str, task_name: str, key: str) -> str:
    tasks = yaml.safe_load((ROOT / path).read_text())
    task = next(task for task in tasks if task["name"].startswith(task_name))
    return task[key] if key in task else task["vars"][key]
