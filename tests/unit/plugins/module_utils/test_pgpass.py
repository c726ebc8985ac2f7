# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""libpq password files (module_utils/_pgpass.py, the format and what libpq accepts; module_utils/_passfile.py, the
module's request and edits): escaping, reading lines as libpq does, byte-exact round trips, edits, masking, input."""

from __future__ import annotations

import os
from typing import Any

import pytest

from ansible_collections.pgrepl.streaming.plugins.module_utils._errors import PgreplError
from ansible_collections.pgrepl.streaming.plugins.module_utils._options import outside_dir
from ansible_collections.pgrepl.streaming.plugins.module_utils._passfile import Entry, build_entries, plan_edit
from ansible_collections.pgrepl.streaming.plugins.module_utils._pgpass import (
    MASK,
    Key,
    covers,
    escape_field,
    key_field_value,
    mask_text,
    parse_line,
    parse_text,
    passfile_problem,
    render_entry,
    render_key,
    render_lines,
    split_entry,
)

EXISTING = (
    "# standby credentials\n"
    "10.0.0.5:5432:replication:replicator:old-secret\n"
    "\n"
    "#db2:5432:*:app:commented-out\n"
    "db2.example.com:*:*:app:app-pw\n"
    "broken line without fields\n"
)


def key(host: str, port: str = "5432", database: str = "*", user: str = "replicator") -> Key:
    return (key_field_value(host), key_field_value(port), key_field_value(database), key_field_value(user))


def entry(host: str, password: str | None = "new-secret", index: int = 0, **fields: str) -> Entry:
    return Entry(index, key(host, **fields), password)


# --------------------------------------------------------------------------------------------------- fields

@pytest.mark.parametrize("value,escaped", [
    ("plain", "plain"),
    ("a:b", "a\\:b"),
    ("c:\\dir", "c\\:\\\\dir"),
    ("\\", "\\\\"),
    ("::1", "\\:\\:1"),
])
def test_escape_field(value: str, escaped: str) -> None:
    assert escape_field(value) == escaped


@pytest.mark.parametrize("host,user,password", [
    ("::1", "rep:licator", "pa:ss\\word"),
    ("db", "u", "trailing\\"),
    ("fe80::1%eth0", "u\\x", "::"),
    ("h", "ünïcode", "p ass with spaces"),
])
def test_render_then_parse_round_trips(host: str, user: str, password: str) -> None:
    k = key(host, user=user)
    line = parse_line(render_entry(k, password))
    assert line.key == k and line.password == password


def test_split_entry_follows_libpq() -> None:
    assert split_entry("h:5432:db:u:pw") == (["h", "5432", "db", "u"], "pw")
    assert split_entry("h\\:x:5432:db:u:pw:with:colons") == (["h\\:x", "5432", "db", "u"], "pw:with:colons")
    assert split_entry("h:5432:db:u:") == (["h", "5432", "db", "u"], "")
    assert split_entry("h:5432:db:u") is None
    assert split_entry("# h:5432:db:u:pw") is None
    assert split_entry("") is None


def test_an_unescaped_colon_in_the_password_is_kept() -> None:
    assert parse_line("h:5432:db:u:a:b").password == "a:b"


def test_a_lone_star_is_the_wildcard_but_an_escaped_star_is_not() -> None:
    wild = parse_line("*:5432:*:u:pw")
    literal = parse_line("\\*:5432:*:u:pw")
    assert wild.key is not None and wild.key[0] == ("*", True)
    assert literal.key is not None and literal.key[0] == ("*", False)
    assert render_key(wild.key) == "*:5432:*:u"


def test_covers() -> None:
    assert covers(key("*", port="*", database="*", user="*"), key("h"))
    assert covers(key("h"), key("h"))
    assert not covers(key("h"), key("*"))
    assert not covers(key("h", user="other"), key("h"))


# ----------------------------------------------------------------------------------------------- round trip

@pytest.mark.parametrize("text", [
    "",
    EXISTING,
    EXISTING.rstrip("\n"),
    "a:1:b:c:d\r\n# crlf comment\r\n",
    "  # indented: libpq does not read it as a comment\n",
    "h:5432:db:u:caf\udce9\n",
])
def test_parse_render_is_byte_exact(text: str) -> None:
    assert render_lines(parse_text(text)) == text


def test_mask_text_hides_every_password_and_keeps_comments() -> None:
    masked = mask_text(EXISTING)
    assert "old-secret" not in masked and "app-pw" not in masked
    assert masked.splitlines() == [
        "# standby credentials",
        f"10.0.0.5:5432:replication:replicator:{MASK}",
        "",
        "#db2:5432:*:app:commented-out",
        f"db2.example.com:*:*:app:{MASK}",
        "broken line without fields",
    ]


# ---------------------------------------------------------------------------------------------------- edits

def test_update_in_place_keeps_every_other_line() -> None:
    plan = plan_edit(parse_text(EXISTING), [entry("10.0.0.5", database="replication")], "present")
    assert plan.updated == ["10.0.0.5:5432:replication:replicator"] and not plan.added
    assert render_lines(plan.lines) == EXISTING.replace("old-secret", "new-secret")


def test_same_password_changes_nothing() -> None:
    plan = plan_edit(parse_text(EXISTING), [entry("10.0.0.5", "old-secret", database="replication")], "present")
    assert not plan.updated and not plan.added
    assert render_lines(plan.lines) == EXISTING


def test_new_entry_is_appended_with_escapes() -> None:
    text = EXISTING.rstrip("\n")  # no final line break: one is added before the new line
    plan = plan_edit(parse_text(text), [entry("::1", "p:w", database="replication")], "present")
    assert plan.added == ["\\:\\:1:5432:replication:replicator"]
    assert render_lines(plan.lines) == text + "\n\\:\\:1:5432:replication:replicator:p\\:w\n"


def test_every_line_with_the_key_is_updated() -> None:
    text = "h:5432:*:replicator:one\n# between\nh:5432:*:replicator:two\n"
    plan = plan_edit(parse_text(text), [entry("h", "three")], "present")
    assert render_lines(plan.lines) == "h:5432:*:replicator:three\n# between\nh:5432:*:replicator:three\n"
    assert plan.updated == ["h:5432:*:replicator"]


def test_crlf_line_keeps_its_line_break_when_updated() -> None:
    plan = plan_edit(parse_text("h:5432:*:replicator:one\r\n"), [entry("h", "two")], "present")
    assert render_lines(plan.lines) == "h:5432:*:replicator:two\r\n"


def test_absent_removes_only_lines_with_the_key() -> None:
    plan = plan_edit(parse_text(EXISTING), [entry("db2.example.com", None, port="*", user="app"),
                                            entry("nowhere", None, index=1)], "absent")
    assert plan.removed == ["db2.example.com:*:*:app"]
    assert render_lines(plan.lines) == EXISTING.replace("db2.example.com:*:*:app:app-pw\n", "")


def test_a_shadowed_entry_warns_without_the_password() -> None:
    text = "*:*:*:replicator:wildcard-pw\n"
    plan = plan_edit(parse_text(text), [entry("10.0.0.5", "shadowed-pw", database="replication")], "present")
    assert plan.added and len(plan.warnings) == 1
    assert "entries[0] (10.0.0.5:5432:replication:replicator) is shadowed by line 1 (*:*:*:replicator)" \
        in plan.warnings[0]
    assert "wildcard-pw" not in plan.warnings[0] and "shadowed-pw" not in plan.warnings[0]


def test_an_entry_after_an_unrelated_line_does_not_warn() -> None:
    plan = plan_edit(parse_text("other:5432:*:replicator:x\n"), [entry("h")], "present")
    assert plan.warnings == []


# ---------------------------------------------------------------------------------------------------- input

def item(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"host": "10.0.0.5", "port": "5432", "database": "replication", "user": "replicator",
                            "password": "s3cret-pw"}
    base.update(overrides)
    return base


def test_build_entries_defaults_and_types() -> None:
    built = build_entries([item(port=None, database=None), item(host="h2", port=5433)], "present")
    assert [e.label for e in built] == ["10.0.0.5:5432:*:replicator", "h2:5433:replication:replicator"]
    assert built[0].password == "s3cret-pw"
    assert build_entries([item(port="*", password=None)], "absent")[0].password is None
    assert build_entries([item(port="05432")], "present")[0].key[1] == ("5432", False)
    assert build_entries([item(password=123456)], "present")[0].password == "123456"


@pytest.mark.parametrize("entries,fragment", [
    ([item(), item(user=None)], "entries[1].user: is required"),
    ([item(host=None)], "entries[0].host: is required"),
    ([item(password=None)], "entries[0].password: is required (with state=present)"),
    ([item(user="rep\nlicator")], "entries[0].user: 'rep\\nlicator' contains a line break"),
    ([item(host="h\x00")], "entries[0].host: 'h\\x00' contains a NUL character"),
    ([item(), item(password="a\nb")], "entries[1].password: the value contains a line break"),
    ([item(port="abc")], "entries[0].port: 'abc' is not a port number (1-65535) or '*'"),
    ([item(port=70000)], "entries[0].port: '70000' is not a port number"),
    ([item(port=True)], "entries[0].port: True is not a port number"),
    ([item(user=["a"])], "entries[0].user: ['a'] is a list, a string is expected"),
    ([item(database="")], "entries[0].database: is empty (use '*' to match any database)"),
    ([item(password="")], "entries[0].password: is empty"),
    ([item(), item(port=5432)], "entries[1]: '10.0.0.5:5432:replication:replicator' is the same"),
    (["not a dict"], "entries[0]: str given, a dict"),
    ("not a list", "entries: str given, a list of dicts is expected"),
])
def test_bad_entries_are_refused(entries: Any, fragment: str) -> None:
    with pytest.raises(PgreplError) as info:
        build_entries(entries, "present")
    assert fragment in str(info.value)
    assert "s3cret-pw" not in str(info.value)


def test_a_password_with_a_line_break_is_never_shown() -> None:
    with pytest.raises(PgreplError) as info:
        build_entries([item(password="top\nsecret")], "present")
    assert "top" not in str(info.value) and "secret" not in str(info.value)


# ---------------------------------------------------------------- what libpq accepts

def stat_of(mode: int, regular: bool = True) -> os.stat_result:
    kind = 0o100000 if regular else 0o040000
    return os.stat_result((kind | mode, 0, 0, 1, 101, 104, 10, 0, 0, 0))


def test_passfile_0600_is_accepted() -> None:
    assert passfile_problem("/var/lib/postgresql/.pgpass", stat_of(0o600)) is None


@pytest.mark.parametrize(("st", "message"), [
    (None, "passfile: '/p' does not exist"),
    (stat_of(0o700, regular=False), "passfile: '/p' is not a regular file"),
    (stat_of(0o644), "passfile: '/p' has mode 0644; libpq ignores"),
    (stat_of(0o640), "passfile: '/p' has mode 0640"),
    (stat_of(0o602), "passfile: '/p' has mode 0602"),
])
def test_passfile_libpq_would_not_read(st: os.stat_result | None, message: str) -> None:
    problem = passfile_problem("/p", st)
    assert problem is not None and problem.startswith(message)


def test_passfile_inside_data_dir_is_refused() -> None:
    with pytest.raises(PgreplError, match="passfile: '/srv/main/.pgpass' is inside data_dir '/srv/main': it would"):
        outside_dir("passfile", "/srv/main/.pgpass", "/srv/main", "it would be moved aside")
    outside_dir("passfile", "/srv/main2/.pgpass", "/srv/main", "it would be moved aside")
