# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""standby_clone's pure logic: options, conninfo quoting, directory facts, the decision, names, helpers."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from ansible_collections.pgrepl.streaming.plugins.module_utils import _clone
from ansible_collections.pgrepl.streaming.plugins.module_utils._clone import (
    CloneRequest,
    Decision,
    DirFacts,
    DirState,
    PrimaryFacts,
    basebackup_command,
    check_data_dir_static,
    classify,
    clone_conninfo,
    decide,
    error_lines,
    explain_replication_error,
    find_nested_cluster,
    inspect_data_dir,
    request_from_params,
    sibling_name,
    slot_problem,
    utc_stamp,
)
from ansible_collections.pgrepl.streaming.plugins.module_utils._connection import ConnectFailure
from ansible_collections.pgrepl.streaming.plugins.module_utils._errors import PgreplError

SYSID = "7310000000000000001"
OTHER = "7310000000000000002"


def params(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"data_dir": "/var/lib/postgresql/15/main", "primary_host": "db1.example.com",
                            "passfile": "/var/lib/postgresql/.pgpass"}
    base.update(overrides)
    return base


def request(**overrides: Any) -> CloneRequest:
    return request_from_params(params(**overrides))


def facts(**overrides: Any) -> DirFacts:
    base = DirFacts(path="/srv/pg/main", exists=True, is_dir=True, entries=["PG_VERSION", "base", "global"],
                    pg_version="15", has_pg_control=True)
    for key, value in overrides.items():
        setattr(base, key, value)
    return base


# ---------------------------------------------------------------- options

def test_request_defaults() -> None:
    req = request()
    assert req == CloneRequest(data_dir="/var/lib/postgresql/15/main", primary_host="db1.example.com",
                               passfile="/var/lib/postgresql/.pgpass", primary_port=5432,
                               replication_user="replicator", slot_name=None, application_name=None,
                               sslmode="prefer", os_user="postgres", move_aside=True, checkpoint="fast",
                               timeout=3600, force_reclone=False, bin_dir=None)


def test_request_normalises_paths() -> None:
    req = request(data_dir="/srv/pg//main/", bin_dir="/usr/lib/postgresql/15/bin/")
    assert (req.data_dir, req.bin_dir) == ("/srv/pg/main", "/usr/lib/postgresql/15/bin")


def test_request_keeps_every_option() -> None:
    req = request(primary_port=6432, replication_user="rep.user@x", slot_name="db2", application_name="db2.example",
                  sslmode="verify-full", os_user="pgsql", move_aside=False, checkpoint="spread", timeout=60,
                  force_reclone=True)
    assert (req.primary_port, req.replication_user, req.slot_name, req.application_name, req.sslmode, req.os_user,
            req.move_aside, req.checkpoint, req.timeout, req.force_reclone) == (
        6432, "rep.user@x", "db2", "db2.example", "verify-full", "pgsql", False, "spread", 60, True)


@pytest.mark.parametrize(("overrides", "message"), [
    ({"data_dir": "pg/main"}, "data_dir: 'pg/main' must be an absolute path"),
    ({"data_dir": "/"}, "data_dir: '/' is the root directory"),
    ({"data_dir": "/var/lib/"}, "data_dir: '/var/lib/' is a system directory"),
    ({"data_dir": "/etc"}, "data_dir: '/etc' is a system directory"),
    ({"data_dir": ""}, "data_dir: '' is not a path"),
    ({"data_dir": "/srv/pg\nmain"}, "data_dir: '/srv/pg\\nmain' contains a control character"),
    ({"passfile": ".pgpass"}, "passfile: '.pgpass' must be an absolute path"),
    ({"bin_dir": "bin"}, "bin_dir: 'bin' must be an absolute path"),
    ({"slot_name": "Bad-Slot"}, "slot_name: 'Bad-Slot' is not a valid slot name"),
    ({"slot_name": "x" * 64}, "slot_name: '" + "x" * 64 + "' is not a valid slot name"),
    ({"application_name": "a" * 64}, "application_name: '" + "a" * 64 + "' is not accepted"),
    ({"application_name": "db2 x"}, "application_name: 'db2 x' is not accepted"),
    ({"application_name": "db2' host=evil"}, "application_name: \"db2' host=evil\" is not accepted"),
    ({"primary_port": 0}, "primary_port: 0 is not a TCP port (1-65535)"),
    ({"primary_port": 70000}, "primary_port: 70000 is not a TCP port"),
    ({"primary_port": "5432"}, "primary_port: '5432' is not an integer"),
    ({"replication_user": "rep' host=evil"}, "replication_user: \"rep' host=evil\" is not accepted"),
    ({"replication_user": "rep user"}, "replication_user: 'rep user' is not accepted"),
    ({"replication_user": "rep:x"}, "replication_user: 'rep:x' is not accepted"),
    ({"replication_user": "r\\ep"}, "replication_user: 'r\\\\ep' is not accepted"),
    ({"replication_user": ""}, "replication_user: '' is not a role name"),
    ({"replication_user": "r" * 64}, "replication_user: '" + "r" * 64 + "' is 64 bytes long"),
    ({"primary_host": "db1 dbname=x"}, "primary_host: 'db1 dbname=x' is not one host name"),
    ({"primary_host": "db1,db2"}, "primary_host: 'db1,db2' is not one host name"),
    ({"primary_host": ""}, "primary_host: '' is not a host"),
    ({"primary_host": None}, "primary_host: None is not a host"),
    ({"sslmode": "sometimes"}, "sslmode: 'sometimes' is not one of"),
    ({"checkpoint": "now"}, "checkpoint: 'now' is not one of fast, spread"),
    ({"timeout": 0}, "timeout: 0 is not a number of seconds"),
    ({"os_user": "root"}, "os_user: 'root' cannot own a data directory"),
    ({"os_user": "pg user"}, "os_user: 'pg user' is not a user name"),
    ({"move_aside": "yes"}, "move_aside: 'yes' is not a boolean"),
    ({"force_reclone": 1}, "force_reclone: 1 is not a boolean"),
])
def test_request_refuses_bad_options(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(PgreplError) as err:
        request(**overrides)
    assert str(err.value).startswith(message), str(err.value)


@pytest.mark.parametrize("user", ["replicator", "rep_1", "rep.user", "rep-user", "rep@corp", "x$", "_r"])
def test_request_accepts_usual_role_names(user: str) -> None:
    assert request(replication_user=user).replication_user == user


@pytest.mark.parametrize("host", ["db1", "db1.example.com", "10.0.0.1", "::1", "fe80::1%eth0", "/var/run/postgresql"])
def test_request_accepts_hosts(host: str) -> None:
    assert request(primary_host=host).primary_host == host


# ---------------------------------------------------------------- conninfo

def test_clone_conninfo_has_everything_but_a_password() -> None:
    req = request(primary_port=6543, replication_user="rep", application_name="db2", sslmode="require",
                  passfile="/home/pg dir/.pgpass")
    parsed = conninfo_to_dict(clone_conninfo(req))
    assert parsed == {"host": "db1.example.com", "port": "6543", "user": "rep", "passfile": "/home/pg dir/.pgpass",
                      "sslmode": "require", "connect_timeout": "10", "application_name": "db2"}


def test_clone_conninfo_without_application_name() -> None:
    assert "application_name" not in conninfo_to_dict(clone_conninfo(request()))


def test_basebackup_command() -> None:
    req = request(slot_name="db2", checkpoint="spread")
    cmd = basebackup_command("/usr/lib/postgresql/15/bin/pg_basebackup", "/srv/x.pgrepl-clone-1", req)
    assert cmd[:12] == ["/usr/lib/postgresql/15/bin/pg_basebackup", "-D", "/srv/x.pgrepl-clone-1", "-R", "-X",
                        "stream", "--checkpoint=spread", "-P", "-v", "-w", "-d", clone_conninfo(req)]
    assert cmd[12:] == ["-S", "db2"]
    assert not any("password" in part.replace("passfile", "") for part in cmd)


def test_basebackup_command_without_slot_has_no_s() -> None:
    assert "-S" not in basebackup_command("/bin/pg_basebackup", "/x", request())


# ---------------------------------------------------------------- directory facts (on a temporary directory)

def test_inspect_missing_dir(tmp_path: Path) -> None:
    found = inspect_data_dir(str(tmp_path / "main"))
    assert (found.exists, found.parent_exists) == (False, True)
    check_data_dir_static(found)


def test_inspect_missing_parent_is_refused(tmp_path: Path) -> None:
    found = inspect_data_dir(str(tmp_path / "nope" / "main"))
    with pytest.raises(PgreplError, match="the parent directory of .* does not exist"):
        check_data_dir_static(found)


def test_inspect_empty_dir(tmp_path: Path) -> None:
    (tmp_path / "main").mkdir()
    found = inspect_data_dir(str(tmp_path / "main"))
    assert (found.exists, found.is_dir, found.empty, found.is_mount) == (True, True, True, False)


def test_inspect_symlink_is_refused(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "main").symlink_to(tmp_path / "real")
    found = inspect_data_dir(str(tmp_path / "main"))
    with pytest.raises(PgreplError) as err:
        check_data_dir_static(found)
    assert str(err.value).startswith(f"data_dir is a symlink to {tmp_path / 'real'}: give the real path")


def test_inspect_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "main").write_text("x")
    with pytest.raises(PgreplError, match="exists and is not a directory"):
        check_data_dir_static(inspect_data_dir(str(tmp_path / "main")))


@pytest.mark.parametrize("names", [["postgresql.conf"], ["pg_hba.conf"], ["postgresql.conf", "pg_hba.conf",
                                                                          "start.conf"]])
def test_config_dir_is_refused(tmp_path: Path, names: list[str]) -> None:
    for name in names:
        (tmp_path / name).write_text("# conf\n")
    with pytest.raises(PgreplError, match="looks like a PostgreSQL configuration directory"):
        check_data_dir_static(inspect_data_dir(str(tmp_path)))


def make_cluster_dir(path: Path, version: str = "15") -> None:
    (path / "global").mkdir(parents=True)
    (path / "global" / "pg_control").write_bytes(b"\0" * 16)
    (path / "PG_VERSION").write_text(version + "\n")
    (path / "postgresql.conf").write_text("\n")


def test_data_dir_with_config_files_is_a_cluster_not_a_config_dir(tmp_path: Path) -> None:
    make_cluster_dir(tmp_path / "main")
    found = inspect_data_dir(str(tmp_path / "main"))
    check_data_dir_static(found)
    assert (found.pg_version, found.has_pg_control, found.nested_cluster) == ("15", True, None)


def test_parent_of_a_cluster_is_refused(tmp_path: Path) -> None:
    make_cluster_dir(tmp_path / "top" / "15" / "main")
    (tmp_path / "top" / ".bash_history").write_text("")
    found = inspect_data_dir(str(tmp_path / "top"))
    assert found.nested_cluster == str(tmp_path / "top" / "15" / "main")
    with pytest.raises(PgreplError, match="holds another cluster at"):
        check_data_dir_static(found)


def test_nested_search_does_not_follow_symlinks_or_go_too_deep(tmp_path: Path) -> None:
    make_cluster_dir(tmp_path / "elsewhere" / "main")
    (tmp_path / "top").mkdir()
    (tmp_path / "top" / "link").symlink_to(tmp_path / "elsewhere")
    make_cluster_dir(tmp_path / "top" / "a" / "b" / "c" / "d")
    assert find_nested_cluster(str(tmp_path / "top")) is None


def test_nested_search_stops_at_its_bound(tmp_path: Path) -> None:
    for index in range(5):
        (tmp_path / f"d{index}").mkdir()
    make_cluster_dir(tmp_path / "z" / "main")
    assert find_nested_cluster(str(tmp_path), max_entries=3) is None
    assert find_nested_cluster(str(tmp_path)) == str(tmp_path / "z" / "main")


def test_inspect_reads_a_dead_postmaster_pid_as_not_running(tmp_path: Path) -> None:
    make_cluster_dir(tmp_path / "main")
    (tmp_path / "main" / "postmaster.pid").write_text("999999999\n/x\n1\n5432\n")
    found = inspect_data_dir(str(tmp_path / "main"))
    assert found.postmaster_running is False


# ---------------------------------------------------------------- the decision

@pytest.mark.parametrize(("dir_facts", "sysid", "signal", "kind"), [
    (facts(exists=False, is_dir=False, entries=[]), None, False, "missing"),
    (facts(entries=[], empty=True, pg_version=None, has_pg_control=False), None, False, "empty"),
    (facts(), SYSID, True, "standby-of-primary"),
    (facts(), SYSID, False, "former-primary"),
    (facts(), OTHER, True, "other-cluster"),
    (facts(), OTHER, False, "other-cluster"),
    (facts(pg_version="16"), None, False, "other-cluster"),
    (facts(pg_version="16"), SYSID, True, "other-cluster"),
    (facts(pg_version=None, has_pg_control=False, entries=["notes.txt"]), None, False, "files"),
    (facts(has_pg_control=False), None, False, "files"),
])
def test_classify(dir_facts: DirFacts, sysid: str | None, signal: bool, kind: str) -> None:
    assert classify(dir_facts, SYSID, "15", sysid, signal).kind == kind


def test_describe_names_the_other_cluster() -> None:
    assert DirState("other-cluster", OTHER, "15").describe() == f"other-cluster({OTHER})"
    assert DirState("other-cluster", None, "16").describe() == "other-cluster(PostgreSQL 16)"
    assert DirState("former-primary", SYSID, "15").describe() == f"former-primary({SYSID})"
    assert DirState("files").describe() == "files"


@pytest.mark.parametrize(("kind", "dir_facts", "move_aside", "force", "expected"), [
    ("missing", facts(exists=False), True, False, Decision("clone")),
    ("missing", facts(exists=False), False, True, Decision("clone")),
    ("empty", facts(empty=True), False, False, Decision("clone")),
    ("empty", facts(empty=True, is_mount=True), True, False, Decision("clone", in_place=True)),
    ("standby-of-primary", facts(), True, False, Decision("kept")),
    ("standby-of-primary", facts(postmaster_running=True), False, False, Decision("kept")),
    ("standby-of-primary", facts(), True, True, Decision("clone", move_old_aside=True)),
    ("former-primary", facts(), True, True, Decision("clone", move_old_aside=True)),
    ("other-cluster", facts(), True, False, Decision("clone", move_old_aside=True)),
    ("files", facts(), True, False, Decision("clone", move_old_aside=True)),
])
def test_decide(kind: str, dir_facts: DirFacts, move_aside: bool, force: bool, expected: Decision) -> None:
    assert decide(DirState(kind, SYSID), dir_facts, move_aside, force) == expected


@pytest.mark.parametrize(("kind", "dir_facts", "move_aside", "force", "message"), [
    ("former-primary", facts(), True, False,
     f"data_dir holds a former primary of the same cluster (system identifier {SYSID}): rejoin it with pg_rewind "
     "(pgrepl.streaming.rejoin) or set force_reclone"),
    ("other-cluster", facts(postmaster_running=True, postmaster_pid=4242), True, False,
     "stop the server first"),
    ("files", facts(postmaster_running=True, postmaster_pid=4242), True, False, "live process 4242"),
    ("standby-of-primary", facts(postmaster_running=True), True, True, "stop the server first"),
    ("other-cluster", facts(), False, False, "move_aside is false: nothing was changed"),
    ("files", facts(), False, False, "move_aside is false"),
    ("standby-of-primary", facts(), False, True, "force_reclone is true but move_aside is false"),
    ("other-cluster", facts(is_mount=True), True, False, "is a mount point"),
])
def test_decide_refusals(kind: str, dir_facts: DirFacts, move_aside: bool, force: bool, message: str) -> None:
    with pytest.raises(PgreplError) as err:
        decide(DirState(kind, SYSID, "15"), dir_facts, move_aside, force)
    assert message in str(err.value)


def test_a_running_server_is_refused_before_move_aside_false() -> None:
    with pytest.raises(PgreplError, match="stop the server first"):
        decide(DirState("other-cluster", OTHER, "15"), facts(postmaster_running=True), False, False)


# ---------------------------------------------------------------- names

def test_utc_stamp() -> None:
    assert utc_stamp(0) == "19700101T000000Z"
    assert utc_stamp(1738367999) == "20250131T235959Z"


def test_sibling_name() -> None:
    assert sibling_name("/srv/pg/main", ".pgrepl-moved-", "20250131T235959Z", lambda path: False) == \
        "/srv/pg/main.pgrepl-moved-20250131T235959Z"


def test_sibling_name_never_reuses_a_taken_name() -> None:
    taken = {"/srv/main.pgrepl-clone-S", "/srv/main.pgrepl-clone-S-1"}
    assert sibling_name("/srv/main", ".pgrepl-clone-", "S", taken.__contains__) == "/srv/main.pgrepl-clone-S-2"


def test_stamp_matches_the_documented_format() -> None:
    stamp = utc_stamp(time.time())
    assert len(stamp) == 16 and stamp[8] == "T" and stamp.endswith("Z") and stamp.replace("T", "")[:-1].isdigit()


# ---------------------------------------------------------------- the primary's answers

def primary(**overrides: Any) -> PrimaryFacts:
    base = PrimaryFacts(system_identifier=SYSID, timeline=1, xlogpos="0/3000060", server_version=150018,
                        slot_type="physical")
    return replace(base, **overrides)


def test_primary_major() -> None:
    assert primary().major == "15"
    assert primary(server_version=130015).major == "13"


def test_slot_problem() -> None:
    req = request(slot_name="db2")
    assert slot_problem(req, primary()) is None
    assert slot_problem(req, primary(slot_type=None)) is None
    assert slot_problem(request(), primary(slot_type="")) is None
    missing = slot_problem(req, primary(slot_type=""))
    assert missing == "slot_name: the replication slot 'db2' does not exist on the primary (db1.example.com:5432)"
    logical = slot_problem(req, primary(slot_type="logical"))
    assert logical is not None and "is a logical slot" in logical


@pytest.mark.parametrize(("cause", "sqlstate", "hint"), [
    ("password", "28P01", "the password for replicator in passfile"),
    ("no_password", None, "has no line matching db1.example.com:5432:replication:replicator"),
    ("hba", "28000", "pg_hba.conf has no 'replication' line admitting replicator"),
    ("privilege", "42501", "lacks the REPLICATION attribute (SQLSTATE 42501)"),
    ("unreachable", None, "nothing answers at that address"),
    ("not_accepting", "57P03", "it is starting up, shutting down"),
])
def test_explain_replication_error(cause: str, sqlstate: str | None, hint: str) -> None:
    # The words are the primary's, in its lc_messages: only the cause (libpq's facts) decides the hint.
    words = 'ВАЖНО:  пользователь "replicator" не прошёл проверку подлинности (по паролю)'
    message = explain_replication_error(request(), ConnectFailure(cause, False, sqlstate, words))
    assert hint in message
    assert message.startswith("cannot open a replication connection to the primary (primary_host=db1.example.com "
                              "primary_port=5432 replication_user=replicator)")
    assert message.endswith(words) and "nothing was changed" in message


class FakeResult:
    """What libpq returns for IDENTIFY_SYSTEM (names, values as bytes or None)."""

    def __init__(self, status: int, names: list[bytes], rows: list[list[bytes | None]], error: bytes = b"") -> None:
        self.status = status
        self._names = names
        self._rows = rows
        self.error_message = error
        self.nfields = len(names)
        self.ntuples = len(rows)

    def fname(self, index: int) -> bytes:
        return self._names[index]

    def get_value(self, row: int, column: int) -> bytes | None:
        return self._rows[row][column]


class FakePgconn:
    def __init__(self, results: dict[bytes, FakeResult]) -> None:
        self.results = results
        self.server_version = 150018
        self.sent: list[bytes] = []

    def exec_(self, command: bytes) -> FakeResult:
        self.sent.append(command)
        return self.results[command]


class FakeConn:
    def __init__(self, pgconn: FakePgconn) -> None:
        self.pgconn = pgconn
        self.closed = False

    def close(self) -> None:
        self.closed = True


def identify(slot_row: list[bytes | None]) -> FakePgconn:
    ok = psycopg.pq.ExecStatus.TUPLES_OK
    return FakePgconn({
        b"IDENTIFY_SYSTEM": FakeResult(ok, [b"systemid", b"timeline", b"xlogpos", b"dbname"],
                                       [[SYSID.encode(), b"3", b"0/3000060", None]]),
        b'READ_REPLICATION_SLOT "db2"': FakeResult(ok, [b"slot_type", b"restart_lsn", b"restart_tli"], [slot_row]),
    })


def test_probe_primary_reads_identify_system_and_the_slot() -> None:
    pgconn = identify([b"physical", b"0/3000000", b"3"])
    conn = FakeConn(pgconn)
    seen: dict[str, Any] = {}

    def connect(**kwargs: Any) -> FakeConn:
        seen.update(kwargs)
        return conn
    found = _clone.probe_primary(request(slot_name="db2"), connect)
    assert found == PrimaryFacts(SYSID, 3, "0/3000060", 150018, "physical")
    assert pgconn.sent == [b"IDENTIFY_SYSTEM", b'READ_REPLICATION_SLOT "db2"']
    assert conn.closed
    assert seen["replication"] == "true" and seen["dbname"] == "replication" and "password" not in seen
    assert seen["passfile"] == "/var/lib/postgresql/.pgpass"


def test_probe_primary_reports_a_missing_slot_as_empty_type() -> None:
    found = _clone.probe_primary(request(slot_name="db2"), lambda **kwargs: FakeConn(identify([None, None, None])))
    assert found.slot_type == ""


def test_probe_primary_skips_the_slot_check_before_15() -> None:
    pgconn = identify([b"physical", None, None])
    pgconn.server_version = 140010
    found = _clone.probe_primary(request(slot_name="db2"), lambda **kwargs: FakeConn(pgconn))
    assert found.slot_type is None and pgconn.sent == [b"IDENTIFY_SYSTEM"]


def test_replication_command_error_carries_the_server_text() -> None:
    failing = FakePgconn({b"IDENTIFY_SYSTEM": FakeResult(psycopg.pq.ExecStatus.FATAL_ERROR, [], [],
                                                         b"ERROR:  something broke\n")})
    with pytest.raises(PgreplError, match="IDENTIFY_SYSTEM failed on the primary: ERROR:  something broke"):
        _clone.replication_command(FakeConn(failing), "IDENTIFY_SYSTEM")


# ---------------------------------------------------------------- postgresql.auto.conf of a copy

AUTO_CONF = """# Do not edit this file manually!
primary_conninfo = 'user=rep passfile=''/var/lib/postgresql/.pgpass'' host=db1 application_name=db2'
primary_slot_name = 'db2'
"""


# ---------------------------------------------------------------- output and the deadline

def test_error_lines_pick_the_failure() -> None:
    lines = ["pg_basebackup: initiating base backup", 'pg_basebackup: error: could not send replication command '
             '"BASE_BACKUP": ERROR:  replication slot "db9" does not exist', "pg_basebackup: removing data directory"]
    assert error_lines(lines) == [lines[1]]
    assert error_lines(["a", "b"]) == ["a", "b"]


# ---------------------------------------------------------------- the checks on a finished copy

def fake_copy(tmp_path: Path, auto_conf: str, signal: bool = True) -> Path:
    copy = tmp_path / "main.pgrepl-clone-X"
    copy.mkdir()
    (copy / "postgresql.auto.conf").write_text(auto_conf, encoding="utf-8")
    if signal:
        (copy / "standby.signal").write_text("", encoding="utf-8")
    return copy


@pytest.fixture()
def controldata(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """What pg_controldata would say about the copy (read_data_dir is replaced; the rest reads real files)."""
    said: dict[str, Any] = {"system_identifier": SYSID}
    monkeypatch.setattr(_clone, "read_data_dir", lambda path, bin_dir=None: (dict(said), []))
    return said


def test_verify_copy_accepts_a_good_copy(tmp_path: Path, controldata: dict[str, Any]) -> None:
    _clone.verify_copy(str(fake_copy(tmp_path, AUTO_CONF)), request(slot_name="db2"), primary())


def test_verify_copy_refuses_a_password_in_primary_conninfo(tmp_path: Path, controldata: dict[str, Any]) -> None:
    copy = fake_copy(tmp_path, "primary_conninfo = 'user=rep password=''s3cret'' host=db1'\n")
    with pytest.raises(PgreplError) as err:
        _clone.verify_copy(str(copy), request(), primary())
    assert "holds a password in primary_conninfo" in str(err.value)
    assert "s3cret" not in str(err.value)


def test_verify_copy_refuses_another_system_identifier(tmp_path: Path, controldata: dict[str, Any]) -> None:
    controldata["system_identifier"] = OTHER
    with pytest.raises(PgreplError, match=f"has system identifier {OTHER}, not the primary's {SYSID}"):
        _clone.verify_copy(str(fake_copy(tmp_path, AUTO_CONF)), request(), primary())


def test_verify_copy_refuses_a_copy_without_standby_signal(tmp_path: Path, controldata: dict[str, Any]) -> None:
    with pytest.raises(PgreplError, match="has no standby.signal"):
        _clone.verify_copy(str(fake_copy(tmp_path, AUTO_CONF, signal=False)), request(), primary())


def test_verify_copy_refuses_another_slot(tmp_path: Path, controldata: dict[str, Any]) -> None:
    with pytest.raises(PgreplError, match="does not name primary_slot_name 'db9'"):
        _clone.verify_copy(str(fake_copy(tmp_path, AUTO_CONF)), request(slot_name="db9"), primary())


# ---------------------------------------------------------------- what interrupted runs left

def test_stale_dirs_are_the_partial_and_the_finished_copies(tmp_path: Path) -> None:
    data_dir = tmp_path / "main"
    for name in ("main.pgrepl-clone-20260101T000000Z", "main.pgrepl-ready-20260101T000001Z",
                 "main.pgrepl-moved-20260101T000002Z", "main2.pgrepl-clone-x"):
        (tmp_path / name).mkdir()
    assert [Path(p).name for p in _clone.stale_clone_dirs(str(data_dir) + "/")] == [
        "main.pgrepl-clone-20260101T000000Z", "main.pgrepl-ready-20260101T000001Z"]


def test_processes_using_reads_command_lines(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    for pid, args in (("101", [b"pg_basebackup", b"-D", b"/srv/main.pgrepl-clone-1"]),
                      ("102", [b"pg_basebackup", b"-D", b"/srv/main.pgrepl-clone-10"]),
                      ("103", [b"cp", b"/srv/main.pgrepl-clone-1/base/1", b"/tmp"]), ("self", [b"x"])):
        (proc / pid).mkdir(parents=True)
        (proc / pid / "cmdline").write_bytes(b"\0".join(args) + b"\0")
    assert sorted(_clone.processes_using("/srv/main.pgrepl-clone-1", str(proc))) == [101, 103]


def _settle_bench(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, verified: bool) -> tuple[CloneRequest, list[str]]:
    monkeypatch.setattr(_clone, "processes_using", lambda path: [])

    def verify(path: str, req: CloneRequest, primary: PrimaryFacts) -> None:
        if not verified:
            raise PgreplError("has system identifier 1, not the primary's 2")

    monkeypatch.setattr(_clone, "verify_copy", verify)
    (tmp_path / "main.pgrepl-clone-20260101T000000Z").mkdir()
    (tmp_path / "main.pgrepl-ready-20260101T000001Z").mkdir()
    (tmp_path / "main.pgrepl-ready-20260101T000001Z" / "PG_VERSION").write_text("15\n")
    return request(data_dir=str(tmp_path / "main")), []


PRIMARY = PrimaryFacts(system_identifier=SYSID, timeline=1, xlogpos="0/3000000", server_version=150004)


def test_a_finished_copy_is_put_in_place_when_data_dir_is_missing(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    req, warnings = _settle_bench(tmp_path, monkeypatch, verified=True)
    resumed = _clone.settle_stale_dirs(req, PRIMARY, False, True, warnings)
    assert resumed == str(tmp_path / "main.pgrepl-ready-20260101T000001Z")
    assert (tmp_path / "main" / "PG_VERSION").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["main"]  # the partial copy removed
    assert len(warnings) == 1 and "main.pgrepl-clone-20260101T000000Z" in warnings[0]


def test_a_finished_copy_is_removed_when_data_dir_exists_or_it_is_not_of_this_primary(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    req, warnings = _settle_bench(tmp_path, monkeypatch, verified=False)
    assert _clone.settle_stale_dirs(req, PRIMARY, False, True, warnings) is None
    assert list(tmp_path.iterdir()) == [] and any("not a usable copy" in w for w in warnings)
    req, warnings = _settle_bench(tmp_path, monkeypatch, verified=True)
    (tmp_path / "main").mkdir()
    assert _clone.settle_stale_dirs(req, PRIMARY, True, True, warnings) is None
    assert [p.name for p in tmp_path.iterdir()] == ["main"]


def test_check_mode_only_says_what_a_real_run_would_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    req, warnings = _settle_bench(tmp_path, monkeypatch, verified=True)
    assert _clone.settle_stale_dirs(req, PRIMARY, False, False, warnings) is None
    assert len(list(tmp_path.iterdir())) == 2
    assert ["removes" in w for w in warnings] == [True, False] and "puts" in warnings[1]


def test_a_copy_still_in_use_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    req, warnings = _settle_bench(tmp_path, monkeypatch, verified=True)
    monkeypatch.setattr(_clone, "processes_using", lambda path: [4242])
    with pytest.raises(PgreplError, match="still in use by pid 4242"):
        _clone.settle_stale_dirs(req, PRIMARY, False, True, warnings)
    assert len(list(tmp_path.iterdir())) == 2


def test_a_failed_copy_starts_the_stopped_server_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, str, int | None]] = []
    monkeypatch.setattr(_clone, "systemctl", lambda action, unit, option, timeout=None, advice="": calls.append(
        (action, unit, timeout)))
    monkeypatch.setattr(_clone, "inspect_data_dir", lambda path: facts(postmaster_running=False))
    req = request(stop_service="postgresql@15-main", stop_timeout=120)
    error = _clone.restart_after_failure(req, PgreplError("pg_basebackup failed (exit 1): No space left on device"))
    assert calls == [("start", "postgresql@15-main", 120)]
    assert str(error).startswith("pg_basebackup failed") and "was started again" in str(error)

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise PgreplError("stop_service: systemctl start postgresql@15-main failed")

    monkeypatch.setattr(_clone, "systemctl", refuse)
    assert "starting postgresql@15-main again (it was stopped for the copy) failed too" in str(
        _clone.restart_after_failure(req, PgreplError("copy failed")))
    # Nothing there to start (an in-place copy emptied it): the failure as it was.
    monkeypatch.setattr(_clone, "inspect_data_dir", lambda path: facts(exists=False, has_pg_control=False))
    assert str(_clone.restart_after_failure(req, PgreplError("copy failed"))) == "copy failed"
