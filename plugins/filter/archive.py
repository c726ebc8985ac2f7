# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter pgrepl.streaming.archive_plan: what pgrepl_archive and its options make of a node (module_utils/_archive.py).
Its documentation is in archive_plan.yml beside this file.
"""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleFilterError
from ansible.module_utils.parsing.convert_bool import boolean

from ansible_collections.pgrepl.streaming.plugins.module_utils._archive import ArchiveError
from ansible_collections.pgrepl.streaming.plugins.module_utils._archive import archive_plan as plan_of


def archive_plan(enabled: Any, directory: Any = "", keep: Any = "", archive_command: Any = "",
                 restore_command: Any = "", overrides: Any = None, socket_dir: str = "/var/run/postgresql",
                 port: Any = 5432) -> dict[str, Any]:
    """{enabled, settings, install_script, directory, keep, cleanup_timer, cleanup_exec, script, unit} for
    pgrepl_archive (socket_dir and port: where the cleanup asks the server)."""
    try:
        on = boolean(enabled, strict=True)
    except TypeError as exc:
        raise AnsibleFilterError(f"pgrepl_archive: {exc}") from None
    try:
        plan = plan_of(on, directory, keep, archive_command, restore_command, overrides)
        return plan.as_dict(str(socket_dir), int(port))
    except ArchiveError as exc:
        raise AnsibleFilterError(str(exc)) from None


class FilterModule:
    """The collection's archive_plan filter."""

    def filters(self) -> dict[str, Any]:
        return {"archive_plan": archive_plan}
