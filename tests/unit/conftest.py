"""Fixtures shared by the unit tests."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Callable

import pytest


@pytest.fixture
def fake_program() -> Callable[..., Path]:
    """fake_program(directory, script, name="pg_controldata"): an executable shell script standing in for a
    PostgreSQL program (it answers --version, prints what a test needs)."""

    def make(directory: Path, script: str, name: str = "pg_controldata") -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        program = directory / name
        program.write_text(f"#!/bin/sh\n{script}\n", encoding="utf-8")
        program.chmod(program.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        return program

    return make
