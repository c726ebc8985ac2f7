"""Run the collection's modules through real ansible-playbook, the way users do, and return each result.

Module calls go through a session: one long ansible-playbook process whose plays each wait for the next step file
(run_tasks writes it: the tasks as a test gives them, with check_mode/diff as asked), so a test file pays the
start of Ansible once, not once per call, and still asserts the server's state between two calls. Each task runs
as in any playbook (its own worker and module process, check mode and diff as task keywords); a callback writes
each result as it ends. A call that needs its own process (verbosity or the text output, a changed environment,
several hosts) gets one.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
COLLECTIONS_ROOT = REPO_ROOT / ".build" / "collections"
VENV_BIN = Path(sys.executable).parent
CALLBACKS = Path(__file__).resolve().parent / "callback_plugins"
LOOKUPS = Path(__file__).resolve().parent / "lookup_plugins"
SESSION_TASK = "pgrepl session step"  # callback_plugins/pgrepl_steps.py leaves this task's result out
STEP_TIMEOUT = 300.0  # seconds one call may take (a fresh ansible-playbook run had the same limit)
SESSION_PLAYS = 300  # plays of one session process: each serves one call (parsing a play costs about 1 ms)
SESSION_IDLE = 3600.0  # seconds a session waits for a step before it ends itself
POLL = 0.005


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
    """The tasks on localhost as one ansible-playbook run with --check/--diff as asked would run them; every task
    keeps going after a failure. JSON results without verbosity come from this process's session (the same
    results, one Ansible start for many calls); the text output or verbosity, a changed environment, or tasks that
    read ansible_check_mode/ansible_diff_mode get an ansible-playbook process of their own."""
    if json_output and not verbosity and not _needs_cli_modes(tasks, check, diff):
        session = start_session()
        if session.env == _session_env():
            return session.run(tasks, check, diff)
    return _run_own_process(tasks, check, diff, verbosity, json_output)


def _needs_cli_modes(tasks: list[dict[str, Any]], check: bool, diff: bool) -> bool:
    """A session sets check mode and diff as task keywords (what modules and action plugins get); only the magic
    variables ansible_check_mode/ansible_diff_mode come from the command line, so tasks that read them do too."""
    text = json.dumps(tasks)
    return (check and "ansible_check_mode" in text) or (diff and "ansible_diff_mode" in text)


def _with_modes(task: dict[str, Any], check: bool, diff: bool) -> dict[str, Any]:
    """--check/--diff as task keywords: a task's own keyword wins, as it does over the command line."""
    task = {**task, "ignore_errors": True}
    if check:
        task.setdefault("check_mode", True)
    if diff:
        task.setdefault("diff", True)
    return task


def _run_own_process(tasks: list[dict[str, Any]], check: bool, diff: bool, verbosity: int,
                     json_output: bool) -> PlaybookRun:
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
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=STEP_TIMEOUT, check=False)
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


# --- the session -------------------------------------------------------------------------------------------------

_VOLATILE = ("PYTEST_CURRENT_TEST",)  # changes with every test and reaches no module


def _session_env() -> dict[str, str]:
    """The environment a one-shot run would get now, less what changes with every test: a session serves a call
    only when it was started with the same."""
    env = {key: value for key, value in ansible_env().items() if key not in _VOLATILE}
    env["PGREPL_SESSION_CWD"] = os.getcwd()
    return env


class Session:
    """One ansible-playbook process of SESSION_PLAYS plays; play N includes the tasks of step N once run_tasks has
    written them (the lookup pgrepl_step waits for the file), and the callback pgrepl_steps writes the results of
    play N when it ends. close() ends it (at the latest at exit); if this test process dies without closing it,
    the waiting lookup notices and kills the session itself."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.dir = Path(tempfile.mkdtemp(prefix="pgrepl-session-"))
        self.step = 0
        self.busy = False  # a step was written and its results are not in yet
        plays = [{"name": f"step {index}", "hosts": "localhost", "gather_facts": False, "connection": "local",
                  "tasks": [{"name": SESSION_TASK, "ignore_errors": True,
                             "ansible.builtin.include_tasks": f"{{{{ lookup('pgrepl_step', {index}) }}}}"}]}
                 for index in range(SESSION_PLAYS)]
        playbook = self.dir / "session.yml"
        playbook.write_text(json.dumps(plays), encoding="utf-8")
        self.log = self.dir / "session.log"
        run_env = {**{k: v for k, v in env.items() if k != "PGREPL_SESSION_CWD"},
                   "ANSIBLE_STDOUT_CALLBACK": "pgrepl_steps", "ANSIBLE_CALLBACK_PLUGINS": str(CALLBACKS),
                   "ANSIBLE_LOOKUP_PLUGINS": str(LOOKUPS), "PGREPL_SESSION_DIR": str(self.dir),
                   "PGREPL_SESSION_OWNER": str(os.getpid()), "PGREPL_SESSION_IDLE": str(SESSION_IDLE)}
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen([str(VENV_BIN / "ansible-playbook"), "-i", "localhost,", str(playbook)],
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                         env=run_env, cwd=env["PGREPL_SESSION_CWD"], start_new_session=True)

    def _write_step(self, step: int, tasks: list[dict[str, Any]]) -> Path:
        step_file = self.dir / f"step-{step}.yml"
        step_file.with_suffix(".tmp").write_text(json.dumps(tasks), encoding="utf-8")
        step_file.with_suffix(".tmp").rename(step_file)  # the lookup never reads a half-written file
        return step_file

    def usable(self) -> bool:
        return self.proc.poll() is None and self.step < SESSION_PLAYS

    def _log_tail(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")[-4000:]

    def run(self, tasks: list[dict[str, Any]], check: bool, diff: bool) -> PlaybookRun:
        step, self.step = self.step, self.step + 1
        offset = self.log.stat().st_size
        self.busy = True
        step_file = self._write_step(step, [_with_modes(task, check, diff) for task in tasks])
        result_file = self.dir / f"result-{step}.json"
        deadline = time.monotonic() + STEP_TIMEOUT
        while not result_file.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                tail = self._log_tail()
                close_session()
                raise AssertionError(f"the ansible-playbook session ended or timed out in step {step}:\n{tail}")
            time.sleep(POLL)
        self.busy = False
        data = json.loads(result_file.read_text(encoding="utf-8"))
        with open(self.log, "rb") as log:
            log.seek(offset)
            stdout = log.read().decode("utf-8", errors="replace")
        if data["errors"]:
            raise AssertionError(f"the session could not include the tasks of step {step}: {data['errors']}")
        for name in (step_file, result_file):
            name.unlink()
        returncode = 4 if any(result.get("unreachable") for result in data["results"]) else 0
        return PlaybookRun(returncode, stdout + json.dumps(data["results"], indent=1), "", data["results"])

    def close(self) -> None:
        """A session waiting for a step gets one whose task fails (no play after it has a host left, so Ansible
        ends as usual and removes its temporary files); whatever is still there then (a step that timed out, a
        hung module) is killed with everything under it: workers run in sessions of their own, so the process
        group alone is not enough. The directory goes last (a waiting lookup also ends the session without it)."""
        if self.proc.poll() is None and not self.busy:
            self._write_step(self.step, [{"name": "pgrepl session end", "ansible.builtin.fail": {"msg": "closed"}}])
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=10)
        for pid in [*_descendants(self.proc.pid), self.proc.pid]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def _descendants(pid: int) -> list[int]:
    """The processes under pid (from /proc), children first."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


_session: Session | None = None


def start_session() -> Session:
    """This process's session, started now if there is none (the test session starts it at once, so Ansible starts
    while the first clusters are made, with the environment a test has not changed)."""
    global _session
    if _session is not None and not _session.usable():
        close_session()
    if _session is None:
        _session = Session(_session_env())
    return _session


def close_session() -> None:
    """End this process's session (at exit, at the end of the test session, after a timeout)."""
    global _session
    if _session is not None:
        session, _session = _session, None
        session.close()


atexit.register(close_session)


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
