# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_hba.conf's pure logic: tokenizer, byte-exact round trip, placement, shadowing, coverage, masking, input."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from ansible_collections.pgrepl.streaming.plugins.module_utils._errors import PgreplError
from ansible_collections.pgrepl.streaming.plugins.module_utils._hba import (
    Entry,
    Plan,
    Server,
    _same_file_as_server,
    build_entry,
    check_syntax,
    compile_pattern,
    describe_errors,
    error_keys,
    parse_names,
    plan_edit,
    secret_values,
    secrets_in_options,
)
from ansible_collections.pgrepl.streaming.plugins.module_utils._hba_file import (
    MASK,
    HbaDocument,
    HbaInputError,
    decode,
    encode,
    mask_line,
    mask_text,
    parse_address,
    parse_document,
    tokenize,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "hba"
FIXTURE_FILES = sorted(FIXTURES.glob("*.conf"))


def read(name: str) -> str:
    return decode((FIXTURES / name).read_bytes())


def entry(**params: Any) -> Entry:
    base: dict[str, Any] = {"contype": "host", "databases": ["all"], "users": ["all"], "address": None,
                            "method": "scram-sha-256", "options": None, "secret_options": None, "state": "present",
                            "comment": None}
    base.update(params)
    return build_entry(base)


def plan(text: str, state: str = "present", before: str | None = None, after: str | None = None,
         **params: Any) -> Plan:
    result = plan_edit(parse_document(text), entry(state=state, **params), state,
                       compile_pattern("insert_before", before), compile_pattern("insert_after", after))
    check_syntax(result, entry(state=state, **params))
    return result


def without_line(text: str, line_number: int) -> str:
    lines = text.splitlines(keepends=True)
    del lines[line_number - 1]
    return "".join(lines)


REPL = {"contype": "host", "databases": "replication", "users": "replicator", "address": "10.0.0.5/32",
        "method": "scram-sha-256"}


# --- round trip -------------------------------------------------------------------------------------------------

def test_every_fixture_is_there() -> None:
    names = {p.name for p in FIXTURE_FILES}
    assert {"debian_default.conf", "pgdg_rhel_default.conf", "hardened.conf", "includes_pg16.conf",
            "legacy_mixed.conf", "no_trailing_newline.conf", "crlf.conf", "invalid_lines.conf"} <= names
    assert not (FIXTURES / "no_trailing_newline.conf").read_bytes().endswith(b"\n")
    assert b"\t" in (FIXTURES / "legacy_mixed.conf").read_bytes()


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda p: p.name)
def test_fixture_round_trips_byte_for_byte(path: Path) -> None:
    data = path.read_bytes()
    assert encode(parse_document(decode(data)).render()) == data


def test_round_trip_keeps_bytes_that_are_not_utf8() -> None:
    data = b"# caf\xe9 (latin-1)\nlocal all all peer\n\xff\xfe\n"
    doc = parse_document(decode(data))
    assert encode(doc.render()) == data
    assert [r.kind for r in doc.records] == ["comment", "rule", "invalid"]


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda p: p.name)
def test_adding_to_any_fixture_changes_nothing_else(path: Path) -> None:
    text = decode(path.read_bytes())
    result = plan(text, contype="host", databases="replication", users="pg_hba_unit", address="198.51.100.0/24")
    assert result.action == "added"
    new_text = result.new_text
    if not text.endswith("\n") and result.line_number == len(text.splitlines()) + 1:
        # Appended to a file without a final line break: the break now separates our line, which ends the file
        # without one in turn.
        assert new_text == text + "\n" + result.entry_line
    else:
        assert without_line(new_text, result.line_number) == text


# --- tokenizer --------------------------------------------------------------------------------------------------

def values(content: str) -> list[list[str]]:
    return [[t.value for t in f] for f in tokenize(content).fields]


@pytest.mark.parametrize(("content", "expected"), [
    ("host all a,b 10.0.0.0/8 md5", [["host"], ["all"], ["a", "b"], ["10.0.0.0/8"], ["md5"]]),
    ("host all a, b 10.0.0.0/8 md5", [["host"], ["all"], ["a", "b"], ["10.0.0.0/8"], ["md5"]]),
    ("host all a ,b md5", [["host"], ["all"], ["a"], ["b"], ["md5"]]),
    ('host "my db" "a,b" x', [["host"], ["my db"], ["a,b"], ["x"]]),
    ('host "a""b" x', [["host"], ['a"b'], ["x"]]),
    ("host all all 10.0.0.0/8 md5#comment", [["host"], ["all"], ["all"], ["10.0.0.0/8"], ["md5"]]),
    ("\thost\tall  # all the rest", [["host"], ["all"]]),
    ('host "x#y" z', [["host"], ["x#y"], ["z"]]),
    (",,host", [["host"]]),
    ('host ""', [["host"], [""]]),
])
def test_tokenizer_follows_the_server(content: str, expected: list[list[str]]) -> None:
    assert values(content) == expected


def test_tokenizer_marks_quotes_and_positions() -> None:
    tokens = tokenize('host "all" all  # c')
    assert tokens.fields[1][0].quoted and not tokens.fields[2][0].quoted
    assert tokens.comment_at == 16
    assert tokenize('host "open').unterminated_quote


def test_continued_record_is_one_rule_numbered_by_its_first_line() -> None:
    doc = parse_document("# c\nhost all all \\\n  10.0.0.0/8 \\\n md5\nlocal all all peer\n")
    kinds = [(r.kind, r.number) for r in doc.records]
    assert kinds == [("comment", 1), ("rule", 2), ("rule", 5)]
    assert doc.records[1].rule is not None and doc.records[1].rule.method.value == "md5"


def test_comment_ending_in_backslash_swallows_the_next_line_like_the_server() -> None:
    doc = parse_document("# note \\\nhost all all 10.0.0.0/8 md5\n")
    assert [r.kind for r in doc.records] == ["comment"]


def test_invalid_lines_are_kept_and_explained() -> None:
    doc = parse_document(read("invalid_lines.conf"))
    errors = {r.number: r.error for r in doc.records if r.kind == "invalid"}
    assert set(errors) == {3, 4, 5, 6, 7, 8}
    assert "hots" in str(errors[4]) and "/33" in str(errors[5]) and "krb5" in str(errors[6])
    assert "name=value" in str(errors[7]) and "quote" in str(errors[8])


def test_includes_are_recognised() -> None:
    doc = parse_document(read("includes_pg16.conf"))
    assert [r.number for r in doc.records if r.kind == "include"] == [3, 4, 6]


def test_legacy_forms_parse() -> None:
    doc = parse_document(read("legacy_mixed.conf"))
    assert not [r for r in doc.records if r.kind == "invalid"]
    rules = {r.number: r.rule for r in doc.records if r.rule is not None}
    assert rules[3].address_info is not None and rules[3].address_info.host_bits
    assert str(rules[3].address_info.network) == "10.0.0.0/8"
    assert [t.value for t in rules[4].users] == ["alice", "bob"]
    assert [t.value for t in rules[6].databases] == ["my db"] and [t.value for t in rules[6].users] == ["John Smith"]
    assert str(rules[6].address_info.network) == "192.168.1.0/24"  # type: ignore[union-attr]
    assert [t.value for t in rules[7].users] == ["x#y"]
    assert dict(rules[16].option_pairs)["ldapbindpasswd"] == "s3cr3t-bind"
    assert dict(rules[17].option_pairs)["radiusservers"] == "r1.example.com,r2.example.com"
    assert rules[21].method.value == "scram-sha-256"  # continued line
    assert rules[23].comment == "no blank before the comment"


# --- addresses and coverage -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("outer", "inner", "covered"), [
    ("0.0.0.0/0", "10.1.0.0/16", True),
    ("10.0.0.0/8", "10.1.0.0/16", True),
    ("10.1.0.0/16", "10.0.0.0/8", False),
    ("10.1.2.3/8", "10.200.0.0/16", True),  # legacy host bits: the server masks them
    ("192.168.1.0 255.255.255.0", "192.168.1.7/32", True),
    ("192.168.1.0 255.255.255.0", "192.168.2.0/24", False),
    ("::/0", "2001:db8::/32", True),
    ("2001:db8::/32", "2001:db8:1::/48", True),
    ("2001:db8::/32", "2001:db9::/32", False),
    ("::/0", "10.0.0.0/8", False),  # families never mix
    ("0.0.0.0/0", "::1/128", False),
    ("all", "db.example.com", True),
    ("all", "::1/128", True),
    ("samenet", "127.0.0.1/32", False),  # unknown without the server's interfaces
    ("samehost", "samehost", True),
    (".example.com", "db1.example.com", True),
    (".example.com", "example.org", False),
    ("db1.example.com", "DB1.example.com", True),
    ("10.0.0.0/8", "db1.example.com", False),
])
def test_address_coverage(outer: str, inner: str, covered: bool) -> None:
    def addr(text: str) -> Any:
        parts = text.split()
        return parse_address(parts[0], parts[1] if len(parts) > 1 else None)
    assert addr(outer).covers(addr(inner)) is covered


def test_non_contiguous_netmask_is_opaque_but_parses() -> None:
    info = parse_address("10.0.0.0", "255.0.255.0")
    assert info.kind == "opaque" and not info.covers(parse_address("10.0.0.0/32"))
    assert info.covers(parse_address("10.0.0.0", "255.0.255.0"))


@pytest.mark.parametrize(("line", "new", "covered"), [
    ("host replication all 0.0.0.0/0 reject", REPL, True),
    ("host all all 0.0.0.0/0 reject", REPL, False),  # 'all' never matches physical replication
    ("host all,replication all 0.0.0.0/0 reject", REPL, True),
    ('host "replication" all 0.0.0.0/0 reject', REPL, False),  # a database named replication
    ("hostssl replication all 0.0.0.0/0 reject", REPL, False),  # only the SSL part
    ("host replication replicator,other 10.0.0.0/8 md5", REPL, True),
    ("host replication +replicators 10.0.0.0/8 md5", REPL, False),  # membership is unknown
    ("host replication all 10.0.0.0/8 md5", {**REPL, "contype": "hostssl"}, True),
    ("hostnossl all all 0.0.0.0/0 reject", {**REPL, "databases": "app", "contype": "hostgssenc"}, True),
    ("hostnogssenc all all 0.0.0.0/0 reject", {**REPL, "databases": "app", "contype": "hostssl"}, True),
    ("hostnossl all all 0.0.0.0/0 reject", {**REPL, "databases": "app"}, False),
    ("host all all 0.0.0.0/0 reject", {**REPL, "databases": "app"}, True),
    ("host sameuser all 0.0.0.0/0 reject", {**REPL, "databases": "alice", "users": "alice"}, True),
    ("host sameuser all 0.0.0.0/0 reject", {**REPL, "databases": "alice", "users": "bob"}, False),
    ("host samegroup all 0.0.0.0/0 reject", {**REPL, "databases": "samerole"}, True),
    ("host app all 0.0.0.0/0 reject", {**REPL, "databases": "app,other"}, False),
    ("local replication all peer", {"contype": "local", "databases": "replication", "users": "r",
                                    "method": "scram-sha-256"}, True),
    ("host replication all 0.0.0.0/0 reject", {"contype": "local", "databases": "replication", "users": "r",
                                               "method": "scram-sha-256"}, False),
])
def test_line_coverage(line: str, new: dict[str, Any], covered: bool) -> None:
    rule = parse_document(line + "\n").records[0].rule
    assert rule is not None
    assert rule.selector.covers(entry(**new).selector) is covered


# --- placement --------------------------------------------------------------------------------------------------

def test_replication_entry_goes_before_the_replication_reject() -> None:
    text = read("hardened.conf")
    result = plan(text, **REPL)
    assert result.action == "added" and result.line_number == 23
    lines = result.new_text.splitlines()
    assert lines[22].split()[:4] == ["host", "replication", "replicator", "10.0.0.5/32"]
    assert lines[23].startswith("host    replication     all             0.0.0.0/0")
    assert without_line(result.new_text, 23) == text
    assert result.shadowed_by == [] and not [w for w in result.warnings if "shadow" in w]


def test_ordinary_entry_goes_before_the_final_catch_all_reject() -> None:
    text = read("hardened.conf")
    result = plan(text, contype="host", databases="app_prod", users="batch", address="10.20.0.0/16", method="md5")
    assert result.line_number == 25
    assert result.new_text.splitlines()[25].startswith("host    all             all             0.0.0.0/0")


def test_replication_entry_is_appended_when_only_an_all_reject_follows() -> None:
    text = "local all all peer\nhost all all 0.0.0.0/0 reject\n"
    result = plan(text, **REPL)
    assert result.line_number == 3 and result.shadowed_by == []


def test_entry_goes_at_the_end_of_the_debian_default() -> None:
    text = read("debian_default.conf")
    result = plan(text, **REPL)
    assert result.line_number == len(text.splitlines()) + 1
    assert result.new_text == text + "host    replication     replicator      10.0.0.5/32             scram-sha-256\n"


def test_more_specific_earlier_lines_stay_first() -> None:
    text = "host all all 10.1.2.0/24 md5\nhost all all 10.0.0.0/8 reject\n"
    result = plan(text, contype="host", databases="all", users="all", address="10.1.0.0/16", method="trust")
    assert result.line_number == 2  # after the /24, before the /8 that covers it


def test_insert_before_and_after_use_the_first_matching_line() -> None:
    text = read("hardened.conf")
    before = plan(text, before=r"^# Monitoring", **REPL)
    assert before.line_number == 16
    after = plan(text, after=r"^local\s+all", **REPL)
    assert after.line_number == 8  # after line 7, the first match
    assert without_line(after.new_text, 8) == text


@pytest.mark.parametrize("option", ["before", "after"])
def test_a_placement_regex_that_matches_nothing_is_refused(option: str) -> None:
    with pytest.raises(HbaInputError, match=re.escape(f"insert_{option}: the regular expression '^nope' matches no")):
        plan(read("hardened.conf"), **{option: "^nope"}, **REPL)


def test_insert_after_a_reject_warns_about_the_shadow() -> None:
    text = read("hardened.conf")
    result = plan(text, after=r"^host\s+replication\s+all\s+::/0", **REPL)
    assert result.line_number == 25
    assert [s["line_number"] for s in result.shadowed_by] == [23]
    assert result.shadowed_by[0]["line"].startswith("host    replication     all             0.0.0.0/0")
    assert any("shadowed" in w and "line 23" in w for w in result.warnings)


def test_appending_to_a_file_without_final_newline_adds_only_the_separator() -> None:
    text = read("no_trailing_newline.conf")
    result = plan(text, **REPL)
    # The file still ends without a line break, now on our line.
    assert result.new_text == text + "\n" + "host    replication     replicator      10.0.0.5/32             " \
                                            "scram-sha-256"


def test_inserting_into_a_file_without_final_newline_leaves_its_end_alone() -> None:
    text = read("no_trailing_newline.conf")
    result = plan(text, before=r"^host", **REPL)
    assert result.line_number == 3 and not result.new_text.endswith("\n")


def test_crlf_files_get_crlf_lines() -> None:
    text = read("crlf.conf")
    result = plan(text, **REPL)
    assert result.line_number == 4
    assert "scram-sha-256\r\nhost    replication     all" in result.new_text
    assert "\n" not in result.new_text.replace("\r\n", "")


def test_a_last_line_ending_in_a_backslash_does_not_swallow_the_new_one() -> None:
    text = "local all all peer\n# trailing \\\n"
    result = plan(text, **REPL)
    assert result.new_text.startswith(text + "\n")
    record = parse_document(result.new_text).records[-1]
    assert record.kind == "rule" and record.number == result.line_number == 4
    assert parse_document(result.new_text).records[1].kind == "comment"  # the comment took the empty line


def test_empty_file() -> None:
    result = plan("", **REPL)
    assert result.line_number == 1 and result.new_text.count("\n") == 1


# --- update in place, idempotence, absent -----------------------------------------------------------------------

def test_same_identity_other_method_is_updated_in_place() -> None:
    text = read("debian_default.conf")
    result = plan(text, contype="host", databases="replication", users="all", address="127.0.0.1/32", method="md5")
    assert result.action == "updated" and result.line_number == 103
    old, new = text.splitlines(), result.new_text.splitlines()
    assert new[102] == "host    replication     all             127.0.0.1/32            md5"
    assert [i for i, (a, b) in enumerate(zip(old, new)) if a != b] == [102] and len(old) == len(new)


def test_update_keeps_the_comment_and_the_legacy_address_text() -> None:
    text = read("legacy_mixed.conf")
    result = plan(text, contype="host", address="10.0.0.0/8", method="scram-sha-256")
    assert result.action == "updated" and result.line_number == 3
    expected = ("host    all             all             10.1.2.3/8              "
                "scram-sha-256     # host bits set (means 10.0.0.0/8)")
    assert result.new_text.splitlines()[2] == expected


def test_comment_given_replaces_and_empty_comment_removes() -> None:
    text = "host all all 10.0.0.0/8 md5 # old\n"
    assert plan(text, address="10.0.0.0/8", method="md5", comment="new").new_text == \
        "host all all 10.0.0.0/8 md5  # new\n"
    assert plan(text, address="10.0.0.0/8", method="md5", comment="").new_text == "host all all 10.0.0.0/8 md5\n"
    assert plan(text, address="10.0.0.0/8", method="md5", comment="old").action == "unchanged"
    assert plan(text, address="10.0.0.0/8", method="md5").action == "unchanged"


def test_identity_ignores_order_and_representation() -> None:
    text = "host sales,hr alice,bob 192.168.1.0 255.255.255.0 ldap ldapserver=x ldapprefix=\"cn=\"\n"
    result = plan(text, databases=["hr", "sales"], users="bob,alice", address="192.168.1.0/24", method="ldap",
                  options={"ldapprefix": "cn=", "ldapserver": "x"})
    assert result.action == "unchanged" and result.new_text == text
    same = plan(text, databases="hr,sales", users=["alice", "bob"], address="192.168.1.0/24", method="ldap",
                options='ldapserver=x ldapprefix="cn="')
    assert same.action == "unchanged"


def test_options_change_is_an_update_and_no_options_clears_them() -> None:
    text = "host all all 10.0.0.0/8 ldap ldapserver=a ldapprefix=b\n"
    changed = plan(text, address="10.0.0.0/8", method="ldap", options={"ldapserver": "c", "ldapprefix": "b"})
    assert changed.new_text == "host all all 10.0.0.0/8 ldap ldapserver=c ldapprefix=b\n"
    cleared = plan(text, address="10.0.0.0/8", method="trust")
    assert cleared.new_text == "host all all 10.0.0.0/8 trust\n"


def test_continued_record_update_becomes_one_line() -> None:
    text = "host all all 10.7.0.0/16 \\\n    md5   # c\nlocal all all peer\n"
    result = plan(text, address="10.7.0.0/16", method="scram-sha-256")
    assert result.new_text == "host all all 10.7.0.0/16     scram-sha-256   # c\nlocal all all peer\n"


def test_second_plan_on_the_result_changes_nothing() -> None:
    first = plan(read("hardened.conf"), **REPL)
    second = plan(first.new_text, **REPL)
    assert second.action == "unchanged" and not second.changed and second.line_number == first.line_number


def test_duplicates_warn_and_only_the_first_is_updated() -> None:
    text = "host all all 10.0.0.0/8 md5\nhost all all 10.0.0.0/8 trust\n"
    result = plan(text, address="10.0.0.0/8", method="reject")
    assert result.new_text == "host all all 10.0.0.0/8 reject\nhost all all 10.0.0.0/8 trust\n"
    assert any("line 1" in w and "lines 2" in w for w in result.warnings)


def test_absent_removes_exactly_that_line() -> None:
    text = read("hardened.conf")
    added = plan(text, **REPL)
    removed = plan(added.new_text, state="absent", **REPL)
    assert removed.action == "removed" and removed.line_number == 23 and removed.new_text == text
    assert plan(text, state="absent", **REPL).action == "absent"


def test_absent_needs_no_method_and_removes_every_duplicate() -> None:
    text = "a\nhost all all 10.0.0.0/8 md5\nb\nhost all all 10.0.0.0/8 trust\n"
    result = plan(text, state="absent", address="10.0.0.0/8", method=None)
    assert result.new_text == "a\nb\n"


def test_absent_finds_a_legacy_host_bits_line() -> None:
    text = read("legacy_mixed.conf")
    result = plan(text, state="absent", address="10.1.2.3/8", method=None)
    assert result.line_number == 3 and result.new_text == without_line(text, 3)


def test_absent_of_the_last_line_without_newline() -> None:
    # The file ended without a line break: so does it without that line.
    text = "local all all peer\nhost all all 10.0.0.0/8 md5"
    assert plan(text, state="absent", address="10.0.0.0/8").new_text == "local all all peer"
    crlf = "local all all peer\r\nhost all all 10.0.0.0/8 md5"
    assert plan(crlf, state="absent", address="10.0.0.0/8").new_text == "local all all peer"
    assert plan("host all all 10.0.0.0/8 md5", state="absent", address="10.0.0.0/8").new_text == ""


def test_absent_of_an_inner_line_keeps_the_end_of_a_file_without_newline() -> None:
    text = "host all all 10.0.0.0/8 md5\nlocal all all peer"
    assert plan(text, state="absent", address="10.0.0.0/8").new_text == "local all all peer"


# Files of every kind of ending: final line break or not, CRLF or LF, a last line continued by a backslash, a
# comment or blank line last, empty. Adding an entry then removing it gives back the very bytes.
ROUND_TRIP_TEXTS = {
    "lf": "local all all peer\nhost all all 127.0.0.1/32 md5\n",
    "lf-no-final-newline": "local all all peer\nhost all all 127.0.0.1/32 md5",
    "crlf": "local all all peer\r\nhost all all 127.0.0.1/32 md5\r\n",
    "crlf-no-final-newline": "local all all peer\r\nhost all all 127.0.0.1/32 md5",
    "comment-last-no-newline": "local all all peer\n# the end",
    "blank-lines-last": "local all all peer\n\n\n",
    "blank-line-last-no-newline": "local all all peer\n   ",
    "backslash-last": "local all all peer\n# trailing \\\n",
    "backslash-last-no-newline": "local all all peer\n# trailing \\",
    "continued-rule-no-newline": "local all all peer\nhost all all \\\n  127.0.0.1/32 md5",
    "only-a-newline": "\n",
    "empty": "",
    "reject-last-no-newline": "local all all peer\nhost replication all 0.0.0.0/0 reject",
}


ROUND_TRIP_INPUTS = [*ROUND_TRIP_TEXTS.items(), *((p.name, read(p.name)) for p in FIXTURE_FILES)]
ROUND_TRIP_CASES = [(name, text, where) for name, text in ROUND_TRIP_INPUTS
                    for where in ("placed", "first") if text or where == "placed"]


@pytest.mark.parametrize(("name", "text", "where"), ROUND_TRIP_CASES,
                         ids=[f"{where}-{name}" for name, _text, where in ROUND_TRIP_CASES])
def test_adding_then_removing_gives_back_the_bytes(name: str, text: str, where: str) -> None:
    # placed: where the coverage logic puts it (the end of every text above but the one with a reject);
    # first: before the first line (an empty file has none).
    added = plan(text, before=r"^" if where == "first" else None, **REPL)
    assert added.action == "added" and added.new_text != text
    removed = plan(added.new_text, state="absent", **REPL)
    assert removed.action == "removed"
    assert encode(removed.new_text) == encode(text)


def test_appended_last_line_keeps_a_missing_final_newline_missing() -> None:
    added = plan(ROUND_TRIP_TEXTS["crlf-no-final-newline"], **REPL)
    assert added.new_text == ("local all all peer\r\nhost all all 127.0.0.1/32 md5\r\n"
                              "host    replication     replicator      10.0.0.5/32             scram-sha-256")
    added = plan(ROUND_TRIP_TEXTS["backslash-last-no-newline"], **REPL)
    assert added.new_text.startswith("local all all peer\n# trailing \\\n\nhost    replication")
    assert parse_document(added.new_text).records[-1].kind == "rule"


def test_legacy_lists_and_lines_survive_an_unrelated_edit() -> None:
    text = read("legacy_mixed.conf")
    result = plan(text, before=r"^host\s+all\s+all\s+0\.0\.0\.0/0", **REPL)
    assert without_line(result.new_text, result.line_number) == text
    assert "host    sales,hr        alice,bob       172.16.0.0/12" in result.new_text


def test_invalid_lines_warn_and_are_ignored_for_placement() -> None:
    text = read("invalid_lines.conf")
    result = plan(text, contype="host", address="127.0.0.1/32", method="scram-sha-256")
    assert result.action == "unchanged" and result.line_number == 9
    assert sum("not a pg_hba.conf entry" in w for w in result.warnings) == 6


def test_an_include_before_the_entry_is_mentioned() -> None:
    result = plan(read("includes_pg16.conf"), **REPL)
    assert result.line_number == 7
    assert any("3, 4, 6" in w and "include" in w for w in result.warnings)


def test_new_entry_renders_in_the_sample_columns() -> None:
    debian = read("debian_default.conf").splitlines()
    assert entry(contype="local", databases="all", users="all", method="peer").render() in debian
    assert entry(contype="host", address="::1/128").render() in debian
    assert entry(contype="host", address="10.0.0.0 255.0.0.0", method="md5", comment="# legacy").render() == \
        "host    all             all             10.0.0.0 255.0.0.0      md5  # legacy"


# --- syntax check -----------------------------------------------------------------------------------------------

def test_check_syntax_catches_a_broken_plan() -> None:
    text = read("hardened.conf")
    result = plan(text, **REPL)
    broken_text = result.new_text.replace("replicator      10.0.0.5/32", 'replicator      "10.0.0.5/32')
    bad = Plan(result.action, result.old_text, broken_text, result.index, result.line_number)
    with pytest.raises(PgreplError, match="cannot read"):
        check_syntax(bad, entry(**REPL))
    wrong_text = result.new_text.replace("replicator      10.0.0.5/32", "replicator      10.0.0.6/32")
    wrong = Plan(result.action, result.old_text, wrong_text, result.index, result.line_number)
    with pytest.raises(PgreplError, match="does not read back"):
        check_syntax(wrong, entry(**REPL))


# --- input validation -------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("params", "message"), [
    ({"users": "alice\nbob"}, r"users: 'alice\\nbob' contains a line break"),
    ({"users": ["ok", "bad\x00"]}, "users: 'bad\\\\x00' contains a NUL"),
    ({"databases": '"unbalanced'}, "databases: '\"unbalanced' has an unbalanced double quote"),
    ({"users": "a#b"}, "users: 'a#b' contains '#'"),
    ({"users": "a b"}, "users: 'a b' has a blank outside double quotes"),
    ({"users": ["a,b"]}, "users: the item 'a,b' is not one name"),
    ({"users": []}, "users: the list is empty"),
    ({"databases": {"a": 1}}, "databases: expected a list of names or a comma-separated string, got dict"),
    ({"databases": [True]}, "databases: each item must be a name"),
    ({"users": "@"}, "users: '@' must be followed"),
    ({"address": "10.0.0.0/33"}, "address: '10.0.0.0/33' is not valid: invalid CIDR mask"),
    ({"address": "10.0.0.1"}, "address: '10.0.0.1' is not valid: the IP address '10.0.0.1' needs a /prefix"),
    ({"address": "10.0.0.0 255.255.0"}, "address: '10.0.0.0 255.255.0' is not valid: invalid IP mask"),
    ({"address": "db.example.com/24"}, "address: 'db.example.com/24' is not valid"),
    ({"address": "a b c"}, "address: 'a b c' is not an IP network"),
    ({"address": "x#y"}, "address: 'x#y' is not an IP network"),
    ({"address": None}, "address: required when contype is host"),
    ({"contype": "local", "address": "10.0.0.0/8"}, "address: '10.0.0.0/8' must not be set when contype is local"),
    ({"method": "krb5"}, "method: 'krb5' is not one of"),
    ({"method": "peer"}, "method: peer works only with contype local"),
    ({"method": "cert"}, "method: cert works only with contype hostssl"),
    ({"contype": "local", "address": None, "method": "gss"}, "method: gss is not supported on local"),
    ({"method": None}, "method: required when state is present"),
    ({"options": "ldapserver"}, "options: 'ldapserver' in 'ldapserver' is not name=value"),
    ({"options": "a=1 # c"}, "options: 'a=1 # c' contains '#'"),
    ({"options": ["a=1"]}, "options: expected a dict"),
    ({"options": {"bad name": 1}}, "options: 'bad name' is not an authentication option name"),
    ({"options": {"ldapserver": "a\nb"}}, r"options: the value of ldapserver: 'a\\nb' contains a line break"),
    ({"options": {"ldapserver": "x\\"}}, "ends with a backslash"),
    ({"options": {"ldapserver": "x"}, "secret_options": {"ldapserver": "y"}}, "ldapserver given more than once"),
    ({"comment": "two\nlines"}, "comment: 'two\\\\nlines' contains a line break"),
    ({"comment": "trailing \\"}, "comment: 'trailing \\\\\\\\' ends with a backslash"),
])
def test_bad_input_is_refused_naming_option_and_value(params: dict[str, Any], message: str) -> None:
    full = {"address": "10.0.0.0/8", **params}
    with pytest.raises(HbaInputError, match=re.escape(message) if "\\" not in message else message):
        entry(**full)


def test_host_bits_are_refused_for_a_new_entry_with_a_suggestion() -> None:
    with pytest.raises(HbaInputError, match=r"address: '10\.1\.2\.3/8' has host bits set.*10\.0\.0\.0/8"):
        plan("local all all peer\n", address="10.1.2.3/8", method="md5")
    with pytest.raises(HbaInputError, match=r"192\.168\.1\.0 255\.255\.255\.0"):
        plan("local all all peer\n", address="192.168.1.7 255.255.255.0", method="md5")


def test_host_bits_are_accepted_for_an_existing_line() -> None:
    result = plan(read("legacy_mixed.conf"), address="10.1.2.3/8", method="md5")
    assert result.action == "unchanged"


def test_invalid_regex_is_refused() -> None:
    with pytest.raises(HbaInputError, match=r"insert_before: '\[' is not a valid regular expression"):
        compile_pattern("insert_before", "[")


def test_names_keep_their_quotes_and_prefixes() -> None:
    tokens = parse_names("users", ['"John Smith"', "+dba", "@admins.txt", 42], ("all",))
    assert [t.text for t in tokens] == ['"John Smith"', "+dba", "@admins.txt", "42"]
    assert [t.value for t in tokens] == ["John Smith", "+dba", "@admins.txt", "42"]
    rendered = entry(users=["+dba", '"x y"'], databases='"my db",other', address="samenet").render()
    assert rendered.split()[:6] == ["host", '"my', 'db",other', "+dba,\"x", 'y"', "samenet"]
    assert parse_document(rendered + "\n").records[0].rule.selector == \
        entry(users=["+dba", '"x y"'], databases='"my db",other', address="samenet").selector  # type: ignore


def test_option_values_are_quoted_when_needed() -> None:
    options = {"ldapbasedn": "dc=example, dc=com", "ldapsearchfilter": 'a"b', "ldaptls": True, "ldapport": 389, "x": ""}
    made = entry(address="10.0.0.0/8", method="ldap", options=options)
    assert made.method_and_options() == ('ldap ldapbasedn="dc=example, dc=com" ldapsearchfilter="a""b" ldaptls=1 '
                                         'ldapport=389 x=""')
    parsed = parse_document(made.render() + "\n").records[0].rule
    assert parsed is not None and parsed.option_pairs == made.option_pairs


# --- secrets ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("line", "masked"), [
    ("ldap ldapbindpasswd=s3cret ldapserver=x", f"ldap ldapbindpasswd={MASK} ldapserver=x"),
    ('ldap ldapbindpasswd="s3 cret" x=1', f"ldap ldapbindpasswd={MASK} x=1"),
    ('ldap ldapbindpasswd="a""b"c', f"ldap ldapbindpasswd={MASK}"),
    ('ldap "ldapbindpasswd=s3cret" x=1', f"ldap ldapbindpasswd={MASK} x=1"),
    ('ldap ldapbindpasswd="unterminated x=1', f"ldap ldapbindpasswd={MASK}"),
    ('radius radiussecrets="one,two" radiusservers=a', f"radius radiussecrets={MASK} radiusservers=a"),
    ("radius radiussecret=one,radiusservers=a", f"radius radiussecret={MASK},radiusservers=a"),
    ("# ldapbindpasswd=old-one", f"# ldapbindpasswd={MASK}"),
    ("host all all 10.0.0.0/8 md5", "host all all 10.0.0.0/8 md5"),
])
def test_secret_values_are_masked(line: str, masked: str) -> None:
    assert mask_line(line) == masked


def test_diff_text_and_entry_never_show_a_secret() -> None:
    text = read("legacy_mixed.conf")
    masked = mask_text(text)
    for secret in ("s3cr3t-bind", "rad-secret-1", "rad-secret-2"):
        assert secret in text and secret not in masked
    assert masked.count("\n") == text.count("\n")
    result = plan(text, address="10.4.0.0/16", method="ldap",
                  options={"ldapserver": "ldap.example.com", "ldapbasedn": "dc=example,dc=com"},
                  secret_options={"ldapbindpasswd": "new-secret-9"})
    assert result.action == "updated" and "new-secret-9" in result.new_text
    assert "new-secret-9" not in mask_line(result.entry_line or "")


def test_secret_values_and_names_are_found() -> None:
    assert set(secret_values({"ldapbindpasswd": "p1", "ldapserver": "x"}, {"radiussecrets": "p2"})) == {"p1", "p2"}
    assert "s 3" in secret_values('ldapbindpasswd="s 3" a=b', None)
    assert secrets_in_options({"ldapbindpasswd": "p1"}) == ["ldapbindpasswd"]
    assert secrets_in_options("radiussecrets=a ldapserver=x") == ["radiussecrets"]
    assert secrets_in_options({"ldapserver": "x"}) == []


def test_an_error_about_a_secret_option_does_not_echo_it() -> None:
    with pytest.raises(HbaInputError) as caught:
        entry(address="10.0.0.0/8", method="ldap", options={"ldapbindpasswd": "top\nsecret"})
    assert "top" not in str(caught.value) and MASK in str(caught.value)
    with pytest.raises(HbaInputError) as caught:
        entry(address="10.0.0.0/8", method="ldap", options="ldapbindpasswd=topsecret bad")
    assert "topsecret" not in str(caught.value)


# --- server errors and the live-file check ----------------------------------------------------------------------

def test_errors_are_compared_by_line_content() -> None:
    old = parse_document("local all all peer\nhost all all 10.0.0.0/33 md5\n")
    new = parse_document("local all all peer\nhost all all 10.1.0.0/16 md5\nhost all all 10.0.0.0/33 md5\n")
    before = error_keys(old, [{"line_number": 2, "error": "invalid CIDR mask"}], "/x/pg_hba.conf")
    after = error_keys(new, [{"line_number": 3, "error": "invalid CIDR mask"}], "/x/pg_hba.conf")
    assert not after - before  # the old error moved down one line: not a new error
    worse = error_keys(new, [{"line_number": 2, "error": "boom"}, {"line_number": 3, "error": "invalid CIDR mask"}],
                       "/x/pg_hba.conf")
    added = worse - before
    assert list(added) == [("line", "host all all 10.1.0.0/16 md5", "boom")]
    assert describe_errors(added, new) == "line 2 ('host all all 10.1.0.0/16 md5'): boom"


def test_errors_in_included_files_are_keyed_by_file_and_line() -> None:
    doc = parse_document("include other.conf\n")
    keys = error_keys(doc, [{"file_name": "/x/other.conf", "line_number": 1, "error": "e"}], "/x/pg_hba.conf")
    assert keys == Counter({("file", "/x/other.conf", 1, "e"): 1})


def test_same_file_as_server_compares_the_lines_it_lists() -> None:
    doc = parse_document("# c\nlocal all all peer\n\nhost all all 10.0.0.0/33 md5\ninclude x\n")
    server = Server(conn=None, hba_file="/x/pg_hba.conf", major=15)
    assert _same_file_as_server(doc, [{"line_number": 2}, {"line_number": 4}, {"line_number": 5}], server)
    assert _same_file_as_server(doc, [{"line_number": 2}, {"line_number": 4}], server)
    assert not _same_file_as_server(doc, [{"line_number": 2}], server)
    assert not _same_file_as_server(doc, [{"line_number": 2}, {"line_number": 4}, {"line_number": 9}], server)
    assert isinstance(doc, HbaDocument)
