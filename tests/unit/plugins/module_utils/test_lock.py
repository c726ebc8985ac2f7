# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The data directory's lock: beside it, exclusive, naming its holder, released however its holder ends."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ansible_collections.pgrepl.streaming.plugins.module_utils._errors import PgreplError
from ansible_collections.pgrepl.streaming.plugins.module_utils._lock import data_dir_lock, describe_holder, lock_path


def test_the_lock_file_is_beside_the_data_directory() -> None:
    assert lock_path("/var/lib/postgresql/15/main/") == "/var/lib/postgresql/15/.main.pgrepl-lock"


def test_a_second_holder_is_refused_naming_the_first(tmp_path: Path) -> None:
    data_dir = str(tmp_path / "main")
    with data_dir_lock(data_dir, "pgrepl.streaming.standby_clone"):
        record = json.loads(Path(lock_path(data_dir)).read_text())
        assert record["pid"] == os.getpid() and record["what"] == "pgrepl.streaming.standby_clone"
        # flock is per open file: a second open in this same process conflicts like another process would.
        with pytest.raises(PgreplError, match=rf"^data_dir: another pgrepl.streaming run works on .* \(pid "
                                              rf"{os.getpid()}, pgrepl.streaming.standby_clone, since .*nothing was"):
            with data_dir_lock(data_dir, "second"):
                pass
    assert not os.path.exists(lock_path(data_dir))  # removed when let go: nothing left beside the data directory
    with data_dir_lock(data_dir, "third"):  # released at the end of the block
        pass


def test_a_lock_file_a_killed_holder_left_is_taken_and_removed(tmp_path: Path) -> None:
    data_dir = str(tmp_path / "main")
    Path(lock_path(data_dir)).write_text('{"pid": 999999, "what": "killed", "since": 0}')
    with data_dir_lock(data_dir, "next run"):
        assert json.loads(Path(lock_path(data_dir)).read_text())["what"] == "next run"
    assert not os.path.exists(lock_path(data_dir))


def test_an_unreadable_record_still_gives_a_sentence() -> None:
    assert describe_holder("") == "a process that left no name"
    assert describe_holder('{"pid": 7, "what": "x", "since": 0}') == "pid 7, x, since 1970-01-01 00:00:00 UTC"
