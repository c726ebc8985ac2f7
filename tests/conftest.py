"""Make the working tree importable as ansible_collections.pgrepl.streaming for every test."""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
COLLECTIONS_ROOT = REPO_ROOT / ".build" / "collections"


def _link_collection() -> None:
    """.build/collections/ansible_collections/pgrepl/streaming -> the working tree (so edits are live)."""
    link = COLLECTIONS_ROOT / "ansible_collections" / "pgrepl" / "streaming"
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() and Path(os.readlink(link)) == REPO_ROOT:
        return
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(REPO_ROOT, target_is_directory=True)


_link_collection()
if str(COLLECTIONS_ROOT) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS_ROOT))
