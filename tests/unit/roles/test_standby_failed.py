# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The standby role's rescue (roles/standby/tasks/failed.yml): it reads the primary's log only when the start
item's wait for streaming ran out, decided by the failed task's reason code, never by its message text."""

from __future__ import annotations

from typing import Any

import pytest

from .rendering import render, task_var


def reads_the_primary_log(failed: dict[str, Any]) -> bool:
    when = task_var("roles/standby/tasks/failed.yml", "Read what the primary's log says", "when")
    return bool(render("{{ " + when + " }}", {"ansible_failed_result": failed}))


@pytest.mark.parametrize(("failed", "reads"), [
    ({"msg": "start[0] (server_start): timeout: ...", "reason": "not_streaming"}, True),
    # The same words without the code (another module's message, a translated one): not decided by the text.
    ({"msg": "timeout: the server of /srv/pg was not its WAL receiver streaming within 60s"}, False),
    ({"msg": "start[0] (server_start): timeout: ...", "reason": "not_accepting"}, False),
    ({"msg": "clone[0] (standby_clone): the data directory holds another cluster"}, False),
    ({}, False),
])
def test_the_primary_log_is_read_only_when_the_standby_did_not_stream(failed: dict[str, Any], reads: bool) -> None:
    assert reads_the_primary_log(failed) is reads
