# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_ctl, the server's own control program: the one of the data directory's major, run as the server's OS user
with a deadline (server_start, server_stop and handover use it where no systemd unit runs the server)."""

from __future__ import annotations

from ansible_collections.pgrepl.streaming.plugins.module_utils._binaries import find_binary
from ansible_collections.pgrepl.streaming.plugins.module_utils._errors import PgreplError
from ansible_collections.pgrepl.streaming.plugins.module_utils._osuser import (
    OsUser,
    run_as,
)

PG_CTL = "pg_ctl"
# pg_ctl gets -t <timeout>; this is the extra time it may take before its whole process group is killed.
GRACE_SECONDS = 30


def find_pg_ctl(major: str, bin_dir: str | None) -> str:
    """pg_ctl of the data directory's major, or a refusal naming bin_dir."""
    return find_binary(PG_CTL, major, bin_dir, advice="install the PostgreSQL {major} server package, set bin_dir, "
                                                      "or give service")


def start_command(binary: str, action: str, data_dir: str, timeout: int, log_file: str) -> list[str]:
    """pg_ctl start|restart that waits (-w, -t) and sends the server's output to log_file (-l)."""
    return [binary, action, "-D", data_dir, "-w", "-t", str(timeout), "-l", log_file]


def run_pg_ctl(cmd: list[str], user: OsUser, timeout: int, shown: str, hint: str = "",
               euid: int | None = None) -> list[str]:
    """Run a pg_ctl command (which waits at most ``timeout`` seconds itself) as the user; its output lines, or
    PgreplError saying how ``shown`` (the command in words) failed, with pg_ctl's last lines."""
    outcome = run_as(user, cmd, timeout + GRACE_SECONDS, euid)
    if outcome.timed_out:
        what = f"did not return within timeout={timeout}s (+{GRACE_SECONDS}s) and was killed"
    elif outcome.returncode != 0:
        what = f"failed (exit {outcome.returncode}, timeout={timeout}s)"
    else:
        return outcome.lines
    raise PgreplError(f"{shown} {what}: {' | '.join(outcome.lines[-4:])}{hint}")
