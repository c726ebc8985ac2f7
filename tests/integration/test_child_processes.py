# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""No program a module starts (pg_basebackup, pg_rewind, pg_ctl) outlives the module: a module killed with its
play (SIGKILL, no cleanup of its own) takes its child with it, the child running as the server's OS user. Real
processes on this host, through the same run_as the modules use."""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# A module stand-in: runs a long program as postgres through run_as, as pg_basebackup is run.
MODULE = """
import sys
from ansible_collections.pgrepl.streaming.plugins.module_utils._osuser import lookup_os_user, run_as
run_as(lookup_os_user("postgres"), ["sleep", sys.argv[1]], 600)
"""


def processes_with(argument: str) -> list[tuple[int, str]]:
    """(pid, user) of the processes whose command line ends with this argument."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            uid = (entry / "status").read_text().split("\nUid:")[1].split()[0]
        except (OSError, IndexError):
            continue
        if cmdline[:1] == [b"sleep"] and argument.encode() in cmdline:
            found.append((int(entry.name), uid))
    return found


def wait_for(predicate, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_a_killed_module_takes_its_child_with_it(sig: signal.Signals) -> None:
    assert os.geteuid() == 0, "the modules run as root (become) and start their programs as postgres"
    argument = f"{500 + os.getpid() % 97}.{int(sig)}{time.monotonic_ns() % 100000}"
    env = {**os.environ, "PYTHONPATH": str(REPO / ".build" / "collections")}
    module = subprocess.Popen([sys.executable, "-c", MODULE, argument], env=env, start_new_session=True)
    try:
        assert wait_for(lambda: processes_with(argument), 15), "the child never started"
        (child, uid), = processes_with(argument)
        assert uid == str(pwd.getpwnam("postgres").pw_uid)
        os.kill(module.pid, sig)
        module.wait(timeout=10)
        assert wait_for(lambda: not processes_with(argument), 5), f"the child {child} outlived the module"
    finally:
        for pid, _uid in processes_with(argument):
            os.kill(pid, signal.SIGKILL)
        if module.poll() is None:
            module.kill()
