# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""module_utils/_archive.py: the archive's settings, the archive/restore program and the retention decision."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.pgrepl.streaming.plugins.filter.archive import FilterModule, archive_plan
from ansible_collections.pgrepl.streaming.plugins.module_utils import _archive
from ansible_collections.pgrepl.streaming.plugins.module_utils._archive import (
    ArchivedFile,
    ArchiveError,
    Keep,
    archive_file,
    cleanup,
    command_word,
    main,
    parse_keep,
    removable,
    restore_file,
    segment_position,
    shared_archive_problems,
)

DAY = 86400
SCRIPT = "/usr/local/bin/pgrepl-archive-wal"


# ------------------------------------------------------------------------------------------------ keep

@pytest.mark.parametrize(("value", "age", "count"), [
    ("7d", 7 * DAY, None), ("500", None, 500), (500, None, 500), ("7d,500", 7 * DAY, 500),
    (" 36h  1000 ", 36 * 3600, 1000), ("30min", 1800, None), ("2w", 14 * DAY, None), ("", None, None),
    (None, None, None), ("100, 12h", 12 * 3600, 100),
])
def test_keep_is_an_age_and_or_a_count(value: Any, age: int | None, count: int | None) -> None:
    assert parse_keep(value) == Keep(age, count)


@pytest.mark.parametrize("value", ["7x", "7d,8d", "1,2", "0", "0d", "-3", "7 days", True, 1.5, ["7d"]])
def test_a_bad_keep_is_refused_naming_the_option_and_value(value: Any) -> None:
    with pytest.raises(ArchiveError) as refused:
        parse_keep(value)
    assert str(refused.value).startswith(f"pgrepl_archive_keep: {value!r}")


def test_keep_text_is_canonical() -> None:
    assert parse_keep("168h,20").text() == "1w,20"
    assert parse_keep("90min").text() == "90min"
    assert Keep().text() == "" and not Keep().removes


# ------------------------------------------------------------------------------------------------ settings

def test_off_changes_nothing() -> None:
    plan = _archive.archive_plan(False, "/mnt/wal", "7d")
    assert plan.settings == {} and not plan.install_script and not plan.cleanup_timer


def test_a_shared_directory_gets_the_script_both_ways_and_a_timer() -> None:
    plan = _archive.archive_plan(True, "/mnt/wal/", "7d")
    assert plan.settings == {
        "archive_mode": "on",
        "archive_command": f"{SCRIPT} archive /mnt/wal %p %f",
        "restore_command": f"{SCRIPT} restore /mnt/wal %f %p",
    }
    assert plan.install_script and plan.cleanup_timer and plan.directory == "/mnt/wal"
    assert plan.as_dict()["shebang"] == "#!/usr/bin/python3"  # the system's, which gets psycopg


def test_a_directory_with_blanks_or_percent_is_quoted_for_shell_and_server() -> None:
    assert command_word("/mnt/my wal/100%") == "'/mnt/my wal/100%%'"
    plan = _archive.archive_plan(True, "/mnt/my wal/100%", "")
    assert plan.settings["archive_command"] == f"{SCRIPT} archive '/mnt/my wal/100%%' %p %f"
    assert not plan.cleanup_timer  # keep "" keeps everything: no timer


def test_pgrepl_settings_win_for_the_archive_settings_on_every_node() -> None:
    plan = _archive.archive_plan(True, "/mnt/wal", "7d", overrides={"archive_mode": "always", "work_mem": "8MB"})
    assert plan.settings["archive_mode"] == "always" and "work_mem" not in plan.settings


def test_the_cleanup_line_is_quoted_for_systemd() -> None:
    plan = _archive.archive_plan(True, "/mnt/my wal/100%", "7d,20")
    assert plan.cleanup_exec("/run/pg", 5433) == (
        f'{SCRIPT} cleanup "/mnt/my wal/100%%" --keep 1w,20 --host /run/pg --port 5433')
    assert _archive.systemd_word('a"b\\c$') == '"a\\"b\\\\c$$"'
    assert archive_plan(True, "/mnt/wal", "")["cleanup_exec"] == ""


def test_your_own_tool_gets_no_script_and_no_timer() -> None:
    plan = _archive.archive_plan(True, "", "7d", "pgbackrest --stanza=main archive-push %p",
                                 "pgbackrest --stanza=main archive-get %f \"%p\"")
    assert plan.settings == {"archive_mode": "on", "archive_command": "pgbackrest --stanza=main archive-push %p",
                             "restore_command": "pgbackrest --stanza=main archive-get %f \"%p\""}
    assert not plan.install_script and not plan.cleanup_timer


def test_your_own_archive_command_with_a_directory_restores_from_it() -> None:
    plan = _archive.archive_plan(True, "/mnt/wal", "7d", "wal-g wal-push %p")
    assert plan.settings["restore_command"] == f"{SCRIPT} restore /mnt/wal %f %p"
    assert plan.install_script and not plan.cleanup_timer  # your tool owns the archive's retention


@pytest.mark.parametrize(("args", "message"), [
    (("", "7d"), "needs pgrepl_archive_dir .* or pgrepl_archive_command"),
    (("mnt/wal",), "pgrepl_archive_dir: 'mnt/wal' is not an absolute path"),
    (("/mnt/wal", "7d", "cp x /y"), "pgrepl_archive_command: 'cp x /y' does not contain %p"),
    (("/mnt/wal", "7d", "", "cp /y x"), "pgrepl_restore_command: 'cp /y x' does not contain %p"),
    (("/mnt/wal", "7d", "a %p\nb"), "pgrepl_archive_command: .* line break"),
    (("/mnt/wal", "forever"), "pgrepl_archive_keep: 'forever'"),
])
def test_bad_settings_are_refused_naming_option_and_value(args: tuple[Any, ...], message: str) -> None:
    with pytest.raises(ArchiveError, match=message):
        _archive.archive_plan(True, *args)


def test_the_filter_reads_the_switch_as_ansible_does_and_names_errors() -> None:
    assert archive_plan("yes", "/mnt/wal", "7d")["cleanup_timer"] is True
    assert archive_plan("false", "/mnt/wal")["settings"] == {}
    with pytest.raises(AnsibleFilterError, match="pgrepl_archive: "):
        archive_plan("maybe")
    with pytest.raises(AnsibleFilterError, match="pgrepl_archive_dir"):
        archive_plan(True, "relative")
    assert FilterModule().filters()["archive_plan"] is archive_plan


# ------------------------------------------------------------------------------------------------ archive/restore

SEG = "000000010000000000000003"


@pytest.fixture
def wal(tmp_path: Path) -> tuple[Path, Path]:
    source = tmp_path / "pg_wal" / SEG
    source.parent.mkdir()
    source.write_bytes(os.urandom(4096))
    archive = tmp_path / "archive"
    archive.mkdir()
    return source, archive


def _spy_fsync(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths _archive fsyncs, in order (each really synced)."""
    synced: list[str] = []
    real_fsync = os.fsync

    def spy(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(_archive.os, "fsync", spy)
    return synced


def test_archive_copies_fsyncs_file_and_directory_and_leaves_no_temp(
        wal: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    source, archive = wal
    synced = _spy_fsync(monkeypatch)
    assert archive_file(str(source), str(archive), SEG) == "archived"
    assert (archive / SEG).read_bytes() == source.read_bytes()
    assert [p.name for p in archive.iterdir()] == [SEG]
    # The temporary copy is synced before it gets its name, the directory after.
    assert Path(synced[0]).name.startswith(_archive.TEMP_PREFIX + SEG)
    assert synced[-1] == str(archive)
    assert oct((archive / SEG).stat().st_mode & 0o777) == oct(0o640)


def test_an_identical_archived_file_is_success_a_different_one_a_loud_failure(
        wal: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    source, archive = wal
    (archive / SEG).write_bytes(source.read_bytes())
    assert main(["archive", str(archive), str(source), SEG]) == 0
    (archive / SEG).write_bytes(b"x" * 4096)
    assert main(["archive", str(archive), str(source), SEG]) == 1
    err = capsys.readouterr().err
    assert "already archived with a different content" in err and "not overwritten" in err
    assert (archive / SEG).read_bytes() == b"x" * 4096  # untouched
    assert [p.name for p in archive.iterdir()] == [SEG]


def test_an_identical_archived_file_is_flushed_before_it_counts_as_archived(
        wal: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    # A run cut off after its link but before its fsyncs leaves the file in the page cache only: the retry that
    # finds it must not tell the server it is safe before it is on disk (as PostgreSQL's basic_archive does).
    source, archive = wal
    (archive / SEG).write_bytes(source.read_bytes())
    synced = _spy_fsync(monkeypatch)
    assert archive_file(str(source), str(archive), SEG) == "identical"
    assert synced == [str(archive / SEG), str(archive)]


def test_an_identical_file_archived_meanwhile_is_flushed_too(
        wal: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    source, archive = wal
    real_link = os.link

    def racing_link(src: str, dst: str) -> None:
        Path(dst).write_bytes(source.read_bytes())
        real_link(src, dst)

    monkeypatch.setattr(_archive.os, "link", racing_link)
    synced = _spy_fsync(monkeypatch)
    assert archive_file(str(source), str(archive), SEG) == "identical"
    assert synced[-2:] == [str(archive / SEG), str(archive)]
    assert [p.name for p in archive.iterdir()] == [SEG]


def test_a_file_appearing_while_archiving_is_compared_not_overwritten(
        wal: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    source, archive = wal
    real_link = os.link

    def racing_link(src: str, dst: str) -> None:
        Path(dst).write_bytes(b"other")
        real_link(src, dst)

    monkeypatch.setattr(_archive.os, "link", racing_link)
    with pytest.raises(ArchiveError, match="appeared with a different content"):
        archive_file(str(source), str(archive), SEG)
    assert (archive / SEG).read_bytes() == b"other"
    assert [p.name for p in archive.iterdir()] == [SEG]


def test_a_filesystem_without_hard_links_gets_a_rename(wal: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    source, archive = wal

    def no_link(src: str, dst: str) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(_archive.os, "link", no_link)
    assert archive_file(str(source), str(archive), SEG) == "archived"
    assert (archive / SEG).read_bytes() == source.read_bytes()
    assert [p.name for p in archive.iterdir()] == [SEG]


def test_names_the_server_never_gives_are_refused(wal: tuple[Path, Path]) -> None:
    source, archive = wal
    for name in ("../x", "0000000100000000000000GG", ".hidden", ""):
        assert main(["archive", str(archive), str(source), name]) == 1
    assert list(archive.iterdir()) == []


def test_restore_copies_and_a_missing_file_is_a_quiet_failure(
        wal: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source, archive = wal
    archive_file(str(source), str(archive), SEG)
    target = tmp_path / "RECOVERYXLOG"
    assert main(["restore", str(archive), SEG, str(target)]) == 0
    assert target.read_bytes() == source.read_bytes()
    assert main(["restore", str(archive), "00000002.history", str(tmp_path / "h")]) == 1
    assert not restore_file(str(archive), "000000010000000000000009", str(tmp_path / "n"))
    assert capsys.readouterr().err == ""


# ------------------------------------------------------------------------------------------------ retention

def seg(n: int, tli: int = 1) -> str:
    return f"{tli:08X}{n >> 8:08X}{n & 0xFF:08X}"


def test_segment_position_leaves_the_timeline_out() -> None:
    assert segment_position("000000020000000A000000FF") == "0000000A000000FF"
    assert segment_position("000000020000000A000000FF.partial") == "0000000A000000FF"
    assert segment_position("000000010000000000000003.00000028.backup") == "0000000000000003"
    assert segment_position("00000002.history") is None
    assert segment_position("notes.txt") is None


def test_nothing_at_or_after_the_oldest_needed_segment_is_ever_removed() -> None:
    now = 100 * DAY
    files = [ArchivedFile(seg(n), 0.0) for n in range(1, 11)]
    files += [ArchivedFile(seg(4) + ".partial", 0.0), ArchivedFile(seg(6, 2) + ".partial", 0.0),
              ArchivedFile(seg(2) + ".00000028.backup", 0.0), ArchivedFile("00000002.history", 0.0),
              ArchivedFile("README", 0.0), ArchivedFile(seg(3, 2), 0.0)]
    gone = removable(files, seg(5, 2), Keep(age_seconds=DAY), now)
    assert gone == sorted([seg(1), seg(2), seg(3), seg(4), seg(4) + ".partial", seg(2) + ".00000028.backup",
                           seg(3, 2)])


def test_age_and_count_each_keep_what_they_keep() -> None:
    now = 100 * DAY
    files = [ArchivedFile(seg(n), now - (20 - n) * DAY) for n in range(1, 21)]  # seg n is 20-n days old
    oldest = seg(20)
    assert removable(files, oldest, Keep(age_seconds=7 * DAY), now) == [seg(n) for n in range(1, 14)]
    assert removable(files, oldest, Keep(count=5), now) == [seg(n) for n in range(1, 16)]
    # Both: a file either rule keeps is kept.
    assert removable(files, oldest, Keep(7 * DAY, 10), now) == [seg(n) for n in range(1, 11)]
    assert removable(files, oldest, Keep(), now) == []
    # The cutoff wins over both rules.
    assert removable(files, seg(3), Keep(count=1), now) == [seg(1), seg(2)]


def test_count_counts_segments_across_timelines_by_position() -> None:
    files = [ArchivedFile(seg(n), 0.0) for n in range(1, 6)] + [ArchivedFile(seg(n, 2), 0.0) for n in range(6, 9)]
    assert removable(files, seg(9, 2), Keep(count=4), 1.0) == [seg(n) for n in range(1, 5)]


def test_a_bad_oldest_name_removes_nothing() -> None:
    with pytest.raises(ArchiveError):
        removable([ArchivedFile(seg(1), 0.0)], "", Keep(count=1), 1.0)


def test_cleanup_removes_on_the_primary_only_and_stale_temps(tmp_path: Path) -> None:
    now = 100 * DAY
    for n in range(1, 6):
        (tmp_path / seg(n)).write_bytes(b"w")
        os.utime(tmp_path / seg(n), (now - DAY * 30, now - DAY * 30))
    stale = tmp_path / f"{_archive.TEMP_PREFIX}{seg(6)}.host.1"
    stale.write_bytes(b"t")
    os.utime(stale, (now - 2 * DAY, now - 2 * DAY))
    said: list[str] = []
    assert cleanup(str(tmp_path), Keep(age_seconds=DAY), lambda: (True, None), now=now, say=said.append) == []
    assert "standby" in said[0] and len(list(tmp_path.iterdir())) == 6
    assert cleanup(str(tmp_path), Keep(age_seconds=DAY), lambda: (False, seg(4)), dry_run=True, now=now,
                   say=said.append) == [seg(1), seg(2), seg(3), stale.name]
    assert len(list(tmp_path.iterdir())) == 6
    cleanup(str(tmp_path), Keep(age_seconds=DAY), lambda: (False, seg(4)), now=now, say=said.append)
    assert sorted(p.name for p in tmp_path.iterdir()) == [seg(4), seg(5)]
    with pytest.raises(ArchiveError, match="nothing removed"):
        cleanup(str(tmp_path), Keep(count=1), lambda: (False, None), now=now)


def test_cleanup_refuses_an_empty_keep(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cleanup", str(tmp_path), "--keep", ""]) == 1
    assert "--keep" in capsys.readouterr().err


# ---------------------------------------------------------------- one archive directory per cluster

def test_two_clusters_sharing_an_archive_directory_are_named() -> None:
    on = {"enabled": True, "dir": "/mnt/wal", "command": ""}
    nodes = {"a1": on, "a2": dict(on, dir="/mnt/wal/"), "b1": on, "c1": dict(on, dir="/mnt/c")}
    problems = shared_archive_problems(nodes, {"a1": "a", "a2": "a", "b1": "b", "c1": "c"})
    assert problems == [
        "pgrepl_archive_dir: '/mnt/wal' is set for the clusters a, b (pgrepl_cluster_id): each cluster needs an "
        "archive directory of its own - two clusters' WAL files have the same names, so the archive program would "
        "refuse one cluster's segments and one cluster's cleanup would remove the other's; set it in each cluster's "
        "group vars"]


@pytest.mark.parametrize("other", [
    {"enabled": False, "dir": "/mnt/wal", "command": ""},  # archiving off there
    {"enabled": True, "dir": "/mnt/wal", "command": "wal-g wal-push %p"},  # its own tool keeps its own archive
    {"enabled": True, "dir": "relative", "command": ""},  # archive_plan refuses that one itself
    {"enabled": True, "dir": "/mnt/other", "command": ""},
])
def test_a_directory_of_one_cluster_only_is_no_problem(other: dict[str, Any]) -> None:
    nodes = {"a1": {"enabled": True, "dir": "/mnt/wal", "command": ""}, "b1": other}
    assert shared_archive_problems(nodes, {"a1": "a", "b1": "b"}) == []
