# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters pgrepl.streaming.tls_plan and tls_problems: what pgrepl_tls and its options make of a node, and every
reason the cluster's TLS options cannot work (module_utils/_tls.py). Their documentation is in tls_plan.yml and
tls_problems.yml beside this file.
"""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleFilterError
from ansible.module_utils.parsing.convert_bool import boolean

from ansible_collections.pgrepl.streaming.plugins.module_utils._tls import TlsError, crypto_available
from ansible_collections.pgrepl.streaming.plugins.module_utils._tls import tls_plan as plan_of
from ansible_collections.pgrepl.streaming.plugins.module_utils._tls import tls_problems as problems_of


def _on(value: Any) -> bool:
    try:
        return boolean(value, strict=True)
    except TypeError as exc:
        raise AnsibleFilterError(f"pgrepl_tls: {exc}") from None


def tls_plan(enabled: Any, host: str, address: str = "", layout: Any = None, tls_dir: Any = "", ca_cert: Any = "",
             cert: Any = "", key: Any = "", ca_dir: Any = "", sslmode: Any = "verify-full") -> dict[str, Any]:
    """{enabled, own, dir, files, sources, ca_dir, ca_key, csr, names, settings, hba_contype, hba_replaced,
    client} of one node."""
    try:
        return plan_of(_on(enabled), str(host), str(address or ""), layout if isinstance(layout, dict) else {},
                       tls_dir, ca_cert, cert, key, ca_dir, sslmode)
    except TlsError as exc:
        raise AnsibleFilterError(str(exc)) from None


def tls_problems(nodes: Any) -> list[str]:
    """Every reason, each naming the host, the option and the value; [] when TLS can work (or is off)."""
    if not isinstance(nodes, dict):
        raise AnsibleFilterError(f"tls_problems: {nodes!r} is not a dict of nodes")
    view = {str(name): dict(node, tls=_on(node.get("tls", False))) for name, node in nodes.items()}
    return problems_of(view, crypto_available())


class FilterModule:
    """The collection's TLS filters."""

    def filters(self) -> dict[str, Any]:
        return {"tls_plan": tls_plan, "tls_problems": tls_problems}
