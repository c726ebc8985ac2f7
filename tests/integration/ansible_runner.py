"""Run the collection's modules through real ansible-playbook, the way users do, and return each result."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
COLLECTIONS_ROOT = REPO_ROOT / ".build" / "collections"
VENV_BIN = Path(sys.executable).parent


def ansible_env(stdout_callback: str = "ansible.posix.json") -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS_ROOT),
        "ANSIBLE_STDOUT_CALLBACK": stdout_callback,
        "ANSIBLE_CALLBACK_RESULT_FORMAT": "json",
        "ANSIBLE_LOAD_CALLBACK_PLUGINS": "true",
        "ANSIBLE_NOCOLOR": "true",
        "ANSIBLE_LOCALHOST_WARNING": "false",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
        "ANSIBLE_RETRY_FILES_ENABLED": "false",
        "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
        "ANSIBLE_DEPRECATION_WARNINGS": "false",
        "ANSIBLE_HOME": str(REPO_ROOT / ".build" / "ansible-home"),
    })
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


@dataclass
class PlaybookRun:
    returncode: int
    stdout: str
    stderr: str
    results: list[dict[str, Any]]  # one per task, in order


def run_tasks(tasks: list[dict[str, Any]], check: bool = False, diff: bool = False,
              verbosity: int = 0, json_output: bool = True) -> PlaybookRun:
    """One ansible-playbook run on localhost with these tasks; every task keeps going after a failure."""
    play = [{"hosts": "localhost", "gather_facts": False, "connection": "local", "tasks": [
        {**task, "ignore_errors": True} for task in tasks]}]
    with tempfile.TemporaryDirectory(prefix="pgrepl-play-") as tmp:
        playbook = Path(tmp) / "play.yml"
        playbook.write_text(json.dumps(play), encoding="utf-8")
        cmd = [str(VENV_BIN / "ansible-playbook"), "-i", "localhost,", str(playbook)]
        if check:
            cmd.append("--check")
        if diff:
            cmd.append("--diff")
        if verbosity:
            cmd.append("-" + "v" * verbosity)
        env = ansible_env("ansible.posix.json" if json_output else "default")
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, check=False)
    results: list[dict[str, Any]] = []
    if json_output:
        try:
            data = json.loads(proc.stdout)
        except json.JSONDecodeError as exc:
            raise AssertionError(
                f"ansible-playbook did not print JSON ({exc}):\n{proc.stdout}\n{proc.stderr}") from None
        for task in data["plays"][0]["tasks"]:
            results.append(task["hosts"]["localhost"])
    return PlaybookRun(proc.returncode, proc.stdout, proc.stderr, results)


def run_module(module: str, args: dict[str, Any], check: bool = False, diff: bool = False) -> dict[str, Any]:
    """Result of one module call (a failed call returns its result with failed=true, it does not raise)."""
    name = module if "." in module else f"pgrepl.streaming.{module}"
    run = run_tasks([{"name": "under test", name: args}], check=check, diff=diff)
    assert run.results, f"no result:\n{run.stdout}\n{run.stderr}"
    return run.results[0]


def run_playbook(plays: list[dict[str, Any]], hosts: dict[str, dict[str, Any]],
                 env: dict[str, str] | None = None) -> dict[str, dict[str, dict[str, Any]]]:
    """One ansible-playbook run of whole plays (module_defaults, several hosts in parallel...) over these local
    hosts (name -> host vars); every task keeps going after a failure. Returns host -> task name -> result (so
    task names must be unique)."""
    inventory = {"all": {"hosts": {name: {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                                          **host_vars} for name, host_vars in hosts.items()}}}
    plays = [{**play, "tasks": [{**task, "ignore_errors": True} for task in play["tasks"]]} for play in plays]
    with tempfile.TemporaryDirectory(prefix="pgrepl-play-") as tmp:
        playbook = Path(tmp) / "play.yml"
        playbook.write_text(json.dumps(plays), encoding="utf-8")
        inventory_file = Path(tmp) / "inventory.yml"
        inventory_file.write_text(json.dumps(inventory), encoding="utf-8")
        proc = subprocess.run([str(VENV_BIN / "ansible-playbook"), "-i", str(inventory_file), str(playbook)],
                              capture_output=True, text=True, env={**ansible_env(), **(env or {})}, timeout=600,
                              check=False)
    try:
        data = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise AssertionError(f"ansible-playbook did not print JSON ({exc}):\n{proc.stdout}\n{proc.stderr}") from None
    results: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in hosts}
    for play in data["plays"]:
        for task in play["tasks"]:
            for host, result in task["hosts"].items():
                results[host][task["task"]["name"]] = result
    return results
