# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Glue between AnsibleModule and the core: the one module builder (ModuleSpec, module_from_spec), the psycopg
check, error reporting."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.pgrepl.streaming.plugins.module_utils._connection import (
    PSYCOPG_IMPORT_ERROR,
    connection_argument_spec,
    printable,
    psycopg,
    refused_message,
    with_timeout_advice,
)
from ansible_collections.pgrepl.streaming.plugins.module_utils._errors import PgreplError


class PgreplModule(AnsibleModule):
    """AnsibleModule whose warnings pass through printable() (see run())."""

    def warn(self, warning: str) -> None:
        super().warn(printable(warning))


@dataclass(frozen=True)
class ModuleSpec:
    """A module's options and their constraints, kept beside its logic: the module builds its AnsibleModule from it
    (module_from_spec, the one builder), and node_apply validates an item's parameters against the same spec."""

    options: dict[str, Any]
    with_connection: bool = True
    mutually_exclusive: list[tuple[str, ...]] = field(default_factory=list)
    required_if: list[tuple[Any, ...]] = field(default_factory=list)

    def argument_spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = connection_argument_spec() if self.with_connection else {}
        spec.update(self.options)
        return spec


def module_from_spec(spec: ModuleSpec) -> AnsibleModule:
    """The AnsibleModule of a ModuleSpec (check mode always supported)."""
    return PgreplModule(argument_spec=spec.argument_spec(), supports_check_mode=True,
                        mutually_exclusive=spec.mutually_exclusive or None, required_if=spec.required_if or None)


def run(module: AnsibleModule, body: Callable[[AnsibleModule], dict[str, Any]], needs_psycopg: bool = True) -> None:
    """Run a module body; a PgreplError becomes fail_json with its message and nothing else.

    Results, messages and warnings pass through printable(): a value read from an SQL_ASCII database may hold bytes
    that are not UTF-8, which the controller refuses to take from a module."""
    if needs_psycopg and PSYCOPG_IMPORT_ERROR is not None:
        module.fail_json(msg=missing_required_lib("psycopg (version 3)"), exception=PSYCOPG_IMPORT_ERROR)
    try:
        result = body(module)
    except PgreplError as exc:
        module.fail_json(msg=printable(with_timeout_advice(exc)), **({"reason": exc.reason} if exc.reason else {}))
    except Exception as exc:  # pylint: disable=broad-exception-caught
        # A server error a module did not expect still gets a sentence, not a traceback (the SQL text is left
        # out: it may hold a verifier or a setting value).
        if psycopg is not None and isinstance(exc, psycopg.Error):
            module.fail_json(msg=printable(refused_message(exc)))
        raise
    module.exit_json(**printable(result))
