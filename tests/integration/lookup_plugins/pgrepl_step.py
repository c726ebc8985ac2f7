# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The test bench's session lookup: wait for the next step file of tests/integration/ansible_runner.py."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import time

from ansible.plugins.lookup import LookupBase

from ansible_collections.pgrepl.streaming.plugins.module_utils._files import pid_alive

DOCUMENTATION = """
name: pgrepl_step
short_description: Wait for a step file of the test bench's session and return its path
description:
  - For tests/integration/ansible_runner.py only. Waits until C($PGREPL_SESSION_DIR/step-<n>.yml) exists and returns
    its path (a play includes it). When the test process that owns the session is gone, the session's directory
    is removed (the runner closed it), the session's main process is gone, or no step came for
    C($PGREPL_SESSION_IDLE) seconds, it kills the session's processes, so no ansible-playbook is left behind.
options:
  _terms:
    description: The step number.
    required: true
"""

POLL = 0.005  # a step file is written at once (rename), so a short poll costs little and adds little latency


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        session = os.environ["PGREPL_SESSION_DIR"]
        path = os.path.join(session, f"step-{int(terms[0])}.yml")
        owner = int(os.environ["PGREPL_SESSION_OWNER"])
        main = os.getppid()  # this runs in a worker of the session's ansible-playbook (in a process group of its own)
        deadline = time.monotonic() + float(os.environ.get("PGREPL_SESSION_IDLE", "3600"))
        next_check = 0.0
        while not os.path.exists(path):
            now = time.monotonic()
            if now >= next_check:
                # The test process is gone, or it closed the session (its directory is removed), or the
                # session's main process is gone, or no step came for too long: end the session.
                if not pid_alive(owner) or not os.path.isdir(session) or os.getppid() != main or now >= deadline:
                    shutil.rmtree(session, ignore_errors=True)
                    with contextlib.suppress(OSError):
                        os.killpg(os.getpgid(main), signal.SIGKILL)
                    os.killpg(os.getpgrp(), signal.SIGKILL)
                next_check = now + 0.2
            time.sleep(POLL)
        return [path]
