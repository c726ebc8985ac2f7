# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""module_utils/_osuser.py: the server's OS user, running a program as it with a deadline, the OS user names."""

from __future__ import annotations

import os
import time
from typing import Any

import pytest

from ansible_collections.pgrepl.streaming.plugins.module_utils import _osuser
from ansible_collections.pgrepl.streaming.plugins.module_utils._errors import PgreplError
from ansible_collections.pgrepl.streaming.plugins.module_utils._osuser import (
    OsUser,
    as_user_command,
    lookup_os_user,
    run_with_timeout,
    scrub_libpq_env,
    validate_os_user_name,
)

POSTGRES = OsUser(name="postgres", uid=101, gid=104, home="/var/lib/postgresql")


def fake_which(available: set[str]) -> Any:
    return lambda name: f"/usr/sbin/{name}" if name in available else None


def test_as_user_runs_directly_as_that_user() -> None:
    assert as_user_command(["pg_basebackup", "-D", "x"], POSTGRES, 101) == ["pg_basebackup", "-D", "x"]


def test_as_user_prefers_runuser(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_osuser.os.path, "isfile", lambda path: False)
    cmd = as_user_command(["pg_basebackup", "-D", "x"], POSTGRES, 0, fake_which({"runuser", "setpriv", "su"}))
    assert cmd == ["/usr/sbin/runuser", "-u", "postgres", "--", "pg_basebackup", "-D", "x"]


def test_as_user_falls_back_to_setpriv_then_su(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_osuser.os.path, "isfile", lambda path: False)
    cmd = as_user_command(["pg_basebackup", "-d", "user='a b'"], POSTGRES, 0, fake_which({"setpriv", "su"}))
    assert cmd == ["/usr/sbin/setpriv", "--reuid=101", "--regid=104", "--init-groups", "--", "pg_basebackup", "-d",
                   "user='a b'"]
    cmd = as_user_command(["pg_basebackup", "-d", "user='a b'"], POSTGRES, 0, fake_which({"su"}))
    assert cmd == ["/usr/sbin/su", "-s", "/bin/sh", "postgres", "-c", "exec pg_basebackup -d 'user='\"'\"'a b'\"'\"''"]


def test_as_user_refuses_another_unprivileged_user() -> None:
    with pytest.raises(PgreplError) as err:
        as_user_command(["pg_basebackup"], POSTGRES, 1000)
    assert "run the task as root (become: true)" in str(err.value)


def test_lookup_os_user_refuses_unknown_and_uid_0() -> None:
    def getpwnam(name: str) -> Any:
        if name == "toor":
            return type("Entry", (), {"pw_uid": 0, "pw_gid": 0, "pw_dir": "/root"})()
        raise KeyError(name)
    with pytest.raises(PgreplError, match="os_user: 'nobody_here' is not a user on this host"):
        lookup_os_user("nobody_here", getpwnam)
    with pytest.raises(PgreplError, match="has uid 0"):
        lookup_os_user("toor", getpwnam)


def test_scrub_libpq_env_removes_only_pg_variables() -> None:
    env = {"PGPASSWORD": "secret", "PGSSLMODE": "disable", "PATH": "/bin", "HOME": "/root"}
    assert scrub_libpq_env(env) == ["PGPASSWORD", "PGSSLMODE"]
    assert env == {"PATH": "/bin", "HOME": "/root"}


def test_run_with_timeout_returns_output_and_code() -> None:
    outcome = run_with_timeout(["/bin/sh", "-c", "echo one; echo two >&2; printf 'p1\\rp2\\n'; exit 3"], 10,
                               {"PATH": "/usr/bin:/bin"})
    assert (outcome.returncode, outcome.timed_out) == (3, False)
    assert outcome.lines == ["one", "two", "p1", "p2"]


def test_run_with_timeout_kills_the_whole_process_group() -> None:
    started = time.monotonic()
    outcome = run_with_timeout(["/bin/sh", "-c", "sleep 60 & echo $!; wait"], 1, {"PATH": "/usr/bin:/bin"})
    assert outcome.timed_out is True
    assert time.monotonic() - started < 15
    child = int(outcome.lines[0])
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and os.path.exists(f"/proc/{child}"):
        with open(f"/proc/{child}/stat", encoding="utf-8") as handle:
            if handle.read().split()[2] == "Z":
                break
        time.sleep(0.05)
    alive = os.path.exists(f"/proc/{child}")
    if alive:
        with open(f"/proc/{child}/stat", encoding="utf-8") as handle:
            alive = handle.read().split()[2] != "Z"
    assert not alive, f"the grandchild sleep {child} survived the deadline"


@pytest.mark.parametrize("name", ["postgres", "pg-15", "svc.pg", "machine$", "_pg"])
def test_os_user_names(name: str) -> None:
    assert validate_os_user_name(name) == name


@pytest.mark.parametrize(("name", "message"), [
    ("pg user", "os_user: 'pg user' is not a user name"),
    ("-x", "os_user: '-x' is not a user name"),
    (5, "os_user: 5 is not a user name"),
    ("root", "os_user: 'root' cannot own a data directory"),
])
def test_os_user_names_refused(name: Any, message: str) -> None:
    with pytest.raises(PgreplError) as err:
        validate_os_user_name(name)
    assert str(err.value).startswith(message)
