# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every value templated into a shell command of the roles reaches the shell quoted: a cluster name, address or
slot from the inventory (or facts derived from it) can never become shell syntax in a root shell."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[3]
SHELL_MODULES = ("ansible.builtin.shell", "ansible.builtin.command", "ansible.builtin.raw")
EXPRESSION = re.compile(r"\{\{(.*?)\}\}", re.S)


def tasks_in(node: Any) -> list[dict[str, Any]]:
    """Every task dict below a tasks file's content (blocks, rescue and always included)."""
    found = []
    if isinstance(node, list):
        for item in node:
            found += tasks_in(item)
    elif isinstance(node, dict):
        found.append(node)
        for key in ("block", "rescue", "always"):
            found += tasks_in(node.get(key))
    return found


def shell_texts() -> list[tuple[str, str]]:
    texts = []
    for path in sorted((REPO / "roles").glob("*/tasks/*.yml")) + sorted((REPO / "playbooks").glob("*.yml")):
        for task in tasks_in(yaml.safe_load(path.read_text(encoding="utf-8"))):
            for module in SHELL_MODULES:
                args = task.get(module)
                text = args.get("cmd") if isinstance(args, dict) else args
                if isinstance(text, str):
                    texts.append((f"{path.relative_to(REPO)}: {task.get('name')}", text))
    return texts


def test_the_roles_shell_commands_quote_every_templated_value() -> None:
    texts = shell_texts()
    assert texts, "no shell command found: the scan is broken"
    unquoted = [f"{where}: {{{{{expr}}}}}" for where, text in texts for expr in EXPRESSION.findall(text)
                if not re.search(r"\|\s*quote\s*$", expr.strip())]
    assert unquoted == []


def test_the_check_finds_an_unquoted_value() -> None:
    assert [expr for expr in EXPRESSION.findall("tail /var/log/{{ name }}.log {{ x | quote }}")
            if not re.search(r"\|\s*quote\s*$", expr.strip())] == [" name "]
