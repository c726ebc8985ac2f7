# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Glue between AnsibleModule and the core: argument spec merge, psycopg check, error reporting."""

from __future__ import annotations

from typing import Any, Callable

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.pgrepl.streaming.plugins.module_utils._connection import (
    PSYCOPG_IMPORT_ERROR,
    PgreplError,
    connection_argument_spec,
    psycopg,
)


def build_module(argument_spec: dict[str, Any], with_connection: bool = True, **kwargs: Any) -> AnsibleModule:
    """An AnsibleModule with the shared connection options merged in (module options win)."""
    spec: dict[str, Any] = connection_argument_spec() if with_connection else {}
    spec.update(argument_spec)
    kwargs.setdefault("supports_check_mode", True)
    return AnsibleModule(argument_spec=spec, **kwargs)


def run(module: AnsibleModule, body: Callable[[AnsibleModule], dict[str, Any]], needs_psycopg: bool = True) -> None:
    """Run a module body; a PgreplError becomes fail_json with its message and nothing else."""
    if needs_psycopg and PSYCOPG_IMPORT_ERROR is not None:
        module.fail_json(msg=missing_required_lib("psycopg (version 3)"), exception=PSYCOPG_IMPORT_ERROR)
    try:
        result = body(module)
    except PgreplError as exc:
        module.fail_json(msg=str(exc))
    except Exception as exc:  # pylint: disable=broad-exception-caught
        # A server error a module did not expect still gets a sentence, not a traceback (the SQL text is left
        # out: it may hold a verifier or a setting value).
        if psycopg is not None and isinstance(exc, psycopg.Error):
            sqlstate = getattr(exc, "sqlstate", None) or "no SQLSTATE"
            module.fail_json(msg=f"the server refused the operation ({sqlstate}): {str(exc).strip()}")
        raise
    module.exit_json(**result)
