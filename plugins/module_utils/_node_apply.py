# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The node_apply module: the bodies of several of this collection's modules run in one call, one item after another.

The pieces a role changes together (settings, role, pg_hba, passfile, slots; or passfile, copy, standby
configuration, pg_hba, start) cost one round trip instead of one per module and item. Each body runs with its own
module's option validation (the same ModuleSpec), check mode and diff, and changes only what differs, so a
converged node costs that one call and reports nothing changed; in check mode the call is the exact prediction of
what a real one would change ("what would change here").

A server_start item restarts the server when an item before it left a restart pending, so a role's settings, the
restart they need and what needs the restarted server (slots) go in one call. In check mode on a host without
psycopg yet (a real run installs it first), the items that must ask the server are reported as changes without
asking it, and a server_settings item so reported counts as leaving a restart pending.
"""

from __future__ import annotations

import time
from typing import Any, Callable

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.pgrepl.streaming.plugins.module_utils._clone import STANDBY_CLONE_SPEC, run_standby_clone
from ansible_collections.pgrepl.streaming.plugins.module_utils._connection import (
    connection_argument_spec,
    psycopg,
    refused_message,
)
from ansible_collections.pgrepl.streaming.plugins.module_utils._errors import PgreplError
from ansible_collections.pgrepl.streaming.plugins.module_utils._hba import PG_HBA_SPEC, run_pg_hba
from ansible_collections.pgrepl.streaming.plugins.module_utils._lease import release, release_option_problem
from ansible_collections.pgrepl.streaming.plugins.module_utils._module import ModuleSpec
from ansible_collections.pgrepl.streaming.plugins.module_utils._passfile import PASSFILE_SPEC, run_passfile
from ansible_collections.pgrepl.streaming.plugins.module_utils._replication_user import (
    REPLICATION_USER_SPEC,
    ensure_replication_user,
)
from ansible_collections.pgrepl.streaming.plugins.module_utils._rewind_grants import (
    REWIND_GRANTS_SPEC,
    run_rewind_grants,
)
from ansible_collections.pgrepl.streaming.plugins.module_utils._settings import (
    SERVER_SETTINGS_SPEC,
    restart_warning,
    run_server_settings,
)
from ansible_collections.pgrepl.streaming.plugins.module_utils._slots import REPLICATION_SLOT_SPEC, run_replication_slot
from ansible_collections.pgrepl.streaming.plugins.module_utils._standby_config import (
    STANDBY_CONFIG_SPEC,
    run_standby_config,
)
from ansible_collections.pgrepl.streaming.plugins.module_utils._start import SERVER_START_SPEC, run_server_start

Body = Callable[[Any], "dict[str, Any]"]

# The modules node_apply runs: name -> (spec, body, needs a server connection).
MODULES: dict[str, tuple[ModuleSpec, Body, bool]] = {
    "server_settings": (SERVER_SETTINGS_SPEC, run_server_settings, True),
    "replication_user": (REPLICATION_USER_SPEC, ensure_replication_user, True),
    "replication_slot": (REPLICATION_SLOT_SPEC, run_replication_slot, True),
    "pg_hba": (PG_HBA_SPEC, run_pg_hba, False),
    "passfile": (PASSFILE_SPEC, run_passfile, False),
    "standby_config": (STANDBY_CONFIG_SPEC, run_standby_config, False),
    "rewind_grants": (REWIND_GRANTS_SPEC, run_rewind_grants, True),
    # Connects to the primary (replication protocol), so it needs psycopg like the server modules.
    "standby_clone": (STANDBY_CLONE_SPEC, run_standby_clone, True),
    # Starts without psycopg; its wait (the default) needs it.
    "server_start": (SERVER_START_SPEC, run_server_start, True),
}

# An item of this module restarts the server when an earlier item of the same call left a restart pending.
RESTARTS = "server_start"

NODE_APPLY_SPEC = ModuleSpec({
    "checks": {"type": "dict", "required": True},
    "replication_password": {"type": "str", "no_log": True},
    "upstream_pending": {"type": "bool", "default": False},
    "release_lease": {"type": "dict", "options": {"path": {"type": "path", "required": True},
                                                  "run_id": {"type": "str", "required": True}}},
})

# Result keys worth passing on to the roles (never anything that may carry a secret; pg_basebackup's log holds
# its progress and messages, the password comes only from the passfile).
KEPT_KEYS = ("changed", "restart_required", "outcome", "moved_aside_to", "log", "last_seen", "waited_seconds",
             "basebackup_seconds")

# The outcome of an item check mode reports as a change without asking the server (no psycopg on the host yet).
OUTCOME_PREDICTED = "predicted"


class InProcessModule:
    """The part of AnsibleModule a module body uses, for a body node_apply runs inside its own process: the
    validated parameters, check and diff mode, the values to hide; warnings are collected, nothing exits."""

    def __init__(self, params: dict[str, Any], no_log_values: set[str], check_mode: bool = False,
                 diff: bool = False) -> None:
        self.params = params
        self.check_mode = check_mode
        self._diff = diff
        self.no_log_values = no_log_values
        self.warnings: list[str] = []

    def warn(self, warning: str) -> None:
        self.warnings.append(warning)


def validate_checks(checks: Any) -> dict[str, tuple[str, list[dict[str, Any]]]]:
    """checks: {name: {module: M, params: {...} or [{...}, ...]}} -> {name: (M, [params, ...])}."""
    if not isinstance(checks, dict):
        raise PgreplError(f"checks: expected a dict of named checks, got {type(checks).__name__}")
    validated: dict[str, tuple[str, list[dict[str, Any]]]] = {}
    for name, check in checks.items():
        if not isinstance(check, dict) or set(check) - {"module", "params"}:
            raise PgreplError(f"checks.{name}: expected {{module: <name>, params: <dict or list of dicts>}}")
        module = check.get("module")
        if module not in MODULES:
            raise PgreplError(f"checks.{name}.module: {module!r} is not one of {', '.join(sorted(MODULES))}")
        params = check.get("params")
        items = params if isinstance(params, list) else [params]
        if not all(isinstance(item, dict) for item in items):
            raise PgreplError(f"checks.{name}.params: expected a dict or a list of dicts")
        validated[str(name)] = (str(module), list(items))
    return validated


def validated(module_name: str, params: dict[str, Any], login: dict[str, Any],
              no_log_values: set[str]) -> tuple[dict[str, Any] | None, str | None]:
    """The module's parameters with its defaults filled in, as AnsibleModule would give them, or the error."""
    spec = MODULES[module_name][0]
    merged = dict(params)
    if spec.with_connection:
        for key, value in login.items():
            merged.setdefault(key, value)
    validator = ArgumentSpecValidator(spec.argument_spec(), mutually_exclusive=spec.mutually_exclusive or None,
                                      required_if=spec.required_if or None)
    validation = validator.validate(merged)
    no_log_values.update(str(value) for value in validation._no_log_values)  # pylint: disable=protected-access
    if validation.error_messages:
        return None, "; ".join(validation.error_messages)
    return validation.validated_parameters, None


def with_password(module_name: str, params: dict[str, Any], password: str | None) -> dict[str, Any]:
    """The replication password where a check leaves it out (so it travels in one no_log option only)."""
    if not password:
        return params
    if module_name == "replication_user" and not params.get("password"):
        return dict(params, password=password)
    if module_name == "passfile" and isinstance(params.get("entries"), list):
        entries = [dict(entry, password=password) if isinstance(entry, dict) and not entry.get("password")
                   else entry for entry in params["entries"]]
        return dict(params, entries=entries)
    return params


def login_options(params: dict[str, Any]) -> dict[str, Any]:
    """The connection options node_apply was given, to pass on to the checks of modules that connect."""
    return {key: params[key] for key in connection_argument_spec() if params.get(key) is not None}


def predicted_without_server(module_name: str, check_mode: bool, can_connect: bool) -> bool:
    """Whether an item is reported as a change without running its body: check mode on a host where psycopg cannot
    be imported yet (a real run installs it before this call), for a module that must ask the server. server_start
    runs its own check mode, which asks nothing."""
    return check_mode and not can_connect and MODULES[module_name][2] and module_name != RESTARTS


# Modules whose connection reads the password file a passfile item of the same call writes (the copy of the
# primary). In check mode that file is not written: such an item after a passfile item that would change is
# reported as the change a real run makes (a copy item is only given where the facts say a copy is needed), not
# run against a file check mode did not write.
PASSFILE_READERS = ("standby_clone",)

# Modules that connect to the upstream node (the copy of the primary): with upstream_pending (check mode, the
# upstream's own prediction changes something, such as the replication role, its pg_hba entries or the slot a real
# run creates there first), such an item is reported as the change a real run makes, not run against an upstream
# that does not have them yet.
UPSTREAM_READERS = ("standby_clone",)


def apply_node(checks: Any, login: dict[str, Any], no_log_values: set[str], password: str | None,
               check_mode: bool, diff: bool, can_connect: bool | None = None,
               clock: Callable[[], float] = time.monotonic, upstream_pending: bool = False) -> dict[str, Any]:
    """Run every item of every check for real (or in check mode), in order; stop at the first refusal.

    A server_start item after an item that left a restart pending (a setting written now or earlier that the
    running server does not have yet) restarts the server instead of only starting it; the pending restart is
    then done and no longer reported. Each item's result says how long it took (seconds).
    can_connect: whether psycopg can be imported here (default: as imported). upstream_pending: in check mode, the
    upstream's own prediction changes something (UPSTREAM_READERS items are then predicted, not run)."""
    if can_connect is None:
        can_connect = psycopg is not None
    results: dict[str, list[dict[str, Any]]] = {}
    diffs: list[Any] = []
    warnings: list[str] = []
    # Warnings that a setting waits for a restart: left out once a later item restarts (or would restart).
    restart_warnings: list[str] = []
    predicted: list[str] = []
    # Items left unrun in check mode because they read the password file this call would write first.
    unwritten_passfile: list[str] = []
    # Items left unrun in check mode because the upstream would change first.
    upstream_waits: list[str] = []
    passfile_pending = False
    restart_pending = False
    for name, (module_name, items) in validate_checks(checks).items():
        body = MODULES[module_name][1]
        results[name] = []
        for index, item in enumerate(items):
            where = f"{name}[{index}] ({module_name})"
            started = clock()
            if module_name == RESTARTS and restart_pending:
                item = dict(item, state="restarted")
            checked, error = validated(module_name, with_password(module_name, item, password), login,
                                       no_log_values)
            if checked is None:
                raise PgreplError(f"{where}: {error}")
            reads_unwritten = check_mode and passfile_pending and module_name in PASSFILE_READERS
            waits_upstream = check_mode and upstream_pending and module_name in UPSTREAM_READERS
            if reads_unwritten or waits_upstream or predicted_without_server(module_name, check_mode, can_connect):
                # What the server would say is unknown: reported as the change a real run may make (settings may
                # then need the restart a later server_start item predicts).
                result: dict[str, Any] = {"changed": True, "outcome": OUTCOME_PREDICTED,
                                          "restart_required": module_name == "server_settings"}
                if name not in predicted:
                    predicted.append(name)
                if reads_unwritten and name not in unwritten_passfile:
                    unwritten_passfile.append(name)
                elif waits_upstream and name not in upstream_waits:
                    upstream_waits.append(name)
            else:
                shim = InProcessModule(checked, no_log_values, check_mode=check_mode, diff=diff)
                try:
                    result = body(shim)
                except PgreplError as exc:
                    raise PgreplError(f"{where}: {exc}", reason=exc.reason) from None
                except Exception as exc:  # pylint: disable=broad-exception-caught
                    if psycopg is not None and isinstance(exc, psycopg.Error):
                        raise PgreplError(f"{where}: {refused_message(exc)}") from None
                    raise
                waits = [key for key, setting in (result.get("settings") or {}).items()
                         if isinstance(setting, dict) and setting.get("restart_required")]
                for warning in shim.warnings:
                    warnings.append(f"{where}: {warning}")
                    if waits and warning == restart_warning(waits):
                        restart_warnings.append(warnings[-1])
            if check_mode and module_name == "passfile" and result.get("changed"):
                passfile_pending = True
            item_diff = result.pop("diff", None)
            if diff and item_diff:
                diffs.extend(item_diff if isinstance(item_diff, list) else [item_diff])
            kept = {key: result[key] for key in KEPT_KEYS if key in result}
            kept["seconds"] = round(clock() - started, 2)
            results[name].append(kept)
            if module_name == RESTARTS:
                if restart_pending and result.get("outcome") != "already_running":
                    warnings = [warning for warning in warnings if warning not in restart_warnings]
                restart_pending = restart_pending and result.get("outcome") == "already_running"
            elif result.get("restart_required"):
                restart_pending = True
    without_psycopg = [name for name in predicted if name not in unwritten_passfile + upstream_waits]
    if without_psycopg:
        warnings.append(f"check mode: psycopg is not installed on this host yet (a real run installs it first), so "
                        f"{', '.join(without_psycopg)} cannot ask the server and are reported as changes")
    if unwritten_passfile:
        warnings.append(f"check mode: {', '.join(unwritten_passfile)} would connect with the password file this "
                        "run writes first (check mode does not write it), so it is reported as a change without "
                        "asking the primary")
    if upstream_waits:
        warnings.append(f"check mode: {', '.join(upstream_waits)} would connect to its upstream, where this run "
                        "changes things first (check mode changes nothing there), so it is reported as a change "
                        "without asking the upstream")
    changed = {name: any(item.get("changed") for item in items) for name, items in results.items()}
    return {"changed": any(changed.values()), "changed_checks": changed, "check_results": results, "diff": diffs,
            "warnings": warnings, "restart_required": restart_pending, "predicted": predicted}


def run_node_apply(module: Any) -> dict[str, Any]:
    """The module body: every item of every check, in order (check mode: each body's own prediction)."""
    lease = module.params.get("release_lease")
    problem = release_option_problem(lease["path"], lease["run_id"]) if lease else None
    if problem:
        raise PgreplError(problem)  # before any item: a bad option changes nothing
    result = apply_node(module.params["checks"], login_options(module.params), module.no_log_values,
                        module.params.get("replication_password"), module.check_mode, module._diff,
                        upstream_pending=bool(module.params.get("upstream_pending")))
    if lease and not module.check_mode:
        # Every item succeeded (a failure raised above): the node's last call of the run lets go of its lease here,
        # a round trip fewer than the release play (which skips the node then).
        result["lease"], lease_warnings = release(lease["path"], lease["run_id"])
        result["warnings"].extend(lease_warnings)
    for warning in result.pop("warnings"):
        module.warn(warning)
    if not module._diff:
        result.pop("diff")
    return result
