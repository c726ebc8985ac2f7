# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Atomic file replacement: content, mode, owner, symlinks, backups, and nothing left behind on failure."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import stat
import tempfile
from pathlib import Path

import pytest

from ansible_collections.pgrepl.streaming.plugins.module_utils import _files
from ansible_collections.pgrepl.streaming.plugins.module_utils._errors import PgreplError
from ansible_collections.pgrepl.streaming.plugins.module_utils._files import (
    atomic_write,
    backup_file,
    backup_name,
    read_bytes,
    remove_quietly,
)


def other_owner() -> tuple[int, int]:
    """An owner the file can be given: 'nobody' when we are root (so the copy must chown), else ourselves."""
    if os.geteuid() == 0:
        entry = pwd.getpwnam("nobody")
        return entry.pw_uid, entry.pw_gid
    return os.geteuid(), os.getegid()


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def test_replaces_content_and_keeps_mode_and_owner(tmp_path: Path) -> None:
    target = tmp_path / "pg_hba.conf"
    target.write_bytes(b"old\n")
    os.chmod(target, 0o640)
    uid, gid = other_owner()
    os.chown(target, uid, gid)
    inode = target.stat().st_ino
    assert atomic_write(str(target), b"new\nno newline") is None
    st = target.stat()
    assert target.read_bytes() == b"new\nno newline"
    assert stat.S_IMODE(st.st_mode) == 0o640 and (st.st_uid, st.st_gid) == (uid, gid)
    assert st.st_ino != inode  # a new file was renamed over the old one
    assert leftovers(tmp_path) == []


def test_a_symlink_stays_and_its_target_is_replaced(tmp_path: Path) -> None:
    real = tmp_path / "real.conf"
    real.write_bytes(b"old\n")
    link = tmp_path / "link.conf"
    link.symlink_to(real)
    atomic_write(str(link), b"new\n")
    assert link.is_symlink() and real.read_bytes() == b"new\n"


def test_new_file_gets_the_given_mode(tmp_path: Path) -> None:
    target = tmp_path / "new.conf"
    atomic_write(str(target), b"x", mode=0o600)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600 and target.read_bytes() == b"x"


def test_backup_copies_the_previous_file_beside_it(tmp_path: Path) -> None:
    target = tmp_path / "pg_hba.conf"
    target.write_bytes(b"before\n")
    os.chmod(target, 0o604)
    backup = atomic_write(str(target), b"after\n", backup=True)
    assert backup is not None and Path(backup).parent == tmp_path
    assert re.fullmatch(re.escape(str(target)) + r"\.\d+\.\d{4}-\d\d-\d\d@\d\d:\d\d:\d\d~", backup)
    assert Path(backup).read_bytes() == b"before\n" and target.read_bytes() == b"after\n"
    assert stat.S_IMODE(Path(backup).stat().st_mode) == 0o604
    remove_quietly(backup)
    assert not Path(backup).exists()
    remove_quietly(backup)  # missing is fine
    remove_quietly(None)


def test_no_backup_of_a_file_that_did_not_exist(tmp_path: Path) -> None:
    assert atomic_write(str(tmp_path / "fresh"), b"x", backup=True) is None


def test_backup_name_pattern() -> None:
    assert backup_name("/etc/pg_hba.conf", now=0).startswith(f"/etc/pg_hba.conf.{os.getpid()}.19")


def test_backup_of_a_missing_file_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(PgreplError, match="backup: cannot copy"):
        backup_file(str(tmp_path / "missing"))


def test_failure_during_replace_leaves_the_original_and_no_tempfile(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "pg_hba.conf"
    target.write_bytes(b"original\n")

    def broken_replace(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(_files.os, "replace", broken_replace)
    with pytest.raises(PgreplError, match="path: cannot write .*No space left on device"):
        atomic_write(str(target), b"new\n")
    assert target.read_bytes() == b"original\n" and leftovers(tmp_path) == []


def test_an_owner_we_cannot_keep_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "pg_hba.conf"
    target.write_bytes(b"original\n")
    os.chown(target, *other_owner())
    monkeypatch.setattr(_files.os, "geteuid", lambda: 4242)

    def refuse(fd: int, uid: int, gid: int) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(_files.os, "fchown", refuse)
    with pytest.raises(PgreplError, match="cannot keep the owner .* when running as uid 4242"):
        atomic_write(str(target), b"new\n")
    assert target.read_bytes() == b"original\n" and leftovers(tmp_path) == []


def test_as_root_the_temporary_file_is_the_owners_from_its_creation(monkeypatch: pytest.MonkeyPatch) -> None:
    # A directory the owner may write, reachable by it (pytest's tmp_path is root's, 0700).
    uid, gid = other_owner()
    directory = Path(tempfile.mkdtemp(prefix="pgrepl-files-"))
    try:
        os.chmod(directory, 0o755)
        os.chown(directory, uid, gid)
        target = directory / "postgresql.auto.conf"
        target.write_bytes(b"old\n")
        os.chown(target, uid, gid)
        created_by = []
        real_mkstemp = _files.tempfile.mkstemp

        def spy_mkstemp(**kwargs: str) -> tuple[int, str]:
            created_by.append(os.geteuid())
            return real_mkstemp(**kwargs)

        def no_fchown(fd: int, uid: int, gid: int) -> None:
            raise AssertionError("the temporary file needed a chown: it was root's for a while")

        monkeypatch.setattr(_files.tempfile, "mkstemp", spy_mkstemp)
        monkeypatch.setattr(_files.os, "fchown", no_fchown)
        atomic_write(str(target), b"new\n")
        assert created_by == [uid] and os.geteuid() == 0 and os.getegid() == 0
        st = target.stat()
        assert target.read_bytes() == b"new\n" and (st.st_uid, st.st_gid) == (uid, gid)
    finally:
        shutil.rmtree(directory)


def test_the_temporary_files_of_a_killed_writer_are_removed_by_the_next_write(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "pg_hba.conf"
    target.write_bytes(b"old\n")
    dead = tmp_path / ".pgrepl-pg_hba.conf.4000001.ab_c1.tmp"
    running = tmp_path / ".pgrepl-pg_hba.conf.4000002.xyz.tmp"
    other = tmp_path / ".pgrepl-pg_ident.conf.4000001.xyz.tmp"
    for path in (dead, running, other):
        path.write_bytes(b"half")
    monkeypatch.setattr(_files, "pid_alive", lambda pid: pid == 4000002)
    assert _files.remove_stale_temps(str(tmp_path), "pg_hba.conf") == [dead.name]
    dead.write_bytes(b"half")
    atomic_write(str(target), b"new\n")
    assert target.read_bytes() == b"new\n"
    assert not dead.exists() and running.exists() and other.exists()


def test_not_a_regular_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PgreplError, match="is not a regular file"):
        atomic_write(str(tmp_path), b"x")


def test_a_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(PgreplError, match="cannot create a temporary file"):
        atomic_write(str(tmp_path / "nope" / "f"), b"x")


def test_read_bytes(tmp_path: Path) -> None:
    target = tmp_path / "f"
    assert read_bytes(str(target)) is None
    target.write_bytes(b"\xff\x00data")
    assert read_bytes(str(target)) == b"\xff\x00data"
    with pytest.raises(PgreplError, match="path: .* is a directory"):
        read_bytes(str(tmp_path))
