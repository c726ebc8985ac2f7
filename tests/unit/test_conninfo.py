# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""libpq keyword=value strings: quoting, parsing as libpq does (libpq itself is the oracle), masking, comparison."""

from __future__ import annotations

import pytest
from psycopg.conninfo import conninfo_to_dict

from ansible_collections.pgrepl.streaming.plugins.module_utils._conninfo import (
    MASK,
    ConninfoError,
    build,
    differences,
    has_password,
    is_uri,
    is_valid_keyword,
    mask,
    parse,
    parse_pairs,
    quote_value,
)

# Written by pg_basebackup -R (PostgreSQL 15) over a unix socket, as the primary_conninfo value.
BASEBACKUP_CONNINFO = (
    "user=postgres passfile='/var/lib/postgresql/.pgpass' channel_binding=prefer host='/tmp/bench/p/sock' "
    "port=45651 sslmode=prefer sslcompression=0 sslsni=1 ssl_min_protocol_version=TLSv1.2 gssencmode=prefer "
    "krbsrvname=postgres target_session_attrs=any"
)

TRICKY_VALUES = [
    "",
    "plain",
    "10.0.0.5",
    "with space",
    "it's",
    "back\\slash",
    "trailing\\",
    "\\'",
    "''",
    "x'y\\z'",
    " leading and trailing ",
    "tab\there",
    "a=b",
    "/var/run/postgresql",
    "ümlaut-ünïcode",
    "#hash",
    "-c statement_timeout=0",
]


def libpq(text: str) -> dict[str, str]:
    """What libpq itself reads from a string (PQconninfoParse through psycopg)."""
    return {key: str(value) for key, value in conninfo_to_dict(text).items()}


# ------------------------------------------------------------------------------------------------- quoting

@pytest.mark.parametrize("value", ["plain", "10.0.0.5", "host_1.example", "5432", "TLSv1.2"])
def test_plain_values_stay_bare(value: str) -> None:
    assert quote_value(value) == value


@pytest.mark.parametrize("value,quoted", [
    ("", "''"),
    ("a b", "'a b'"),
    ("it's", "'it\\'s'"),
    ("c:\\dir", "'c:\\\\dir'"),
    ("/tmp/sock", "'/tmp/sock'"),
])
def test_other_values_are_quoted_with_backslash_escapes(value: str, quoted: str) -> None:
    assert quote_value(value) == quoted


@pytest.mark.parametrize("value", TRICKY_VALUES)
def test_build_round_trips_through_libpq_and_our_parser(value: str) -> None:
    text = build([("host", value), ("application_name", "node_a"), ("sslmode", "prefer")])
    expected = {"host": value, "application_name": "node_a", "sslmode": "prefer"}
    assert libpq(text) == expected
    assert parse(text) == expected


def test_build_keeps_the_given_order() -> None:
    text = build([("host", "h"), ("port", "5432"), ("user", "replicator"), ("sslmode", "require")])
    assert text == "host=h port=5432 user=replicator sslmode=require"


# ------------------------------------------------------------------------------------------------- parsing

@pytest.mark.parametrize("text", [
    BASEBACKUP_CONNINFO,
    "host = db1   port= 5433 user =replicator",
    "host=a\\ b",
    "application_name='it\\'s' host=x",
    "password='' host=x",
    "host=one host=two",
    "  \t host=x\n port=1 ",
    "options='-c search_path=a,b'",
    "dbname=x\\'y",
    "",
])
def test_parse_matches_libpq(text: str) -> None:
    assert parse(text) == libpq(text)


def test_duplicate_keyword_last_wins() -> None:
    assert parse("host=one host=two")["host"] == "two"


def test_value_spans_point_at_the_value_text() -> None:
    text = "host='a b' port=5432"
    pairs = parse_pairs(text)
    assert [text[pair.start:pair.end] for pair in pairs] == ["'a b'", "5432"]


@pytest.mark.parametrize("text,fragment", [
    ("host", 'missing "="'),
    ("host=x port", 'missing "=" after \'port\''),
    ("host='unterminated", "unterminated quoted value of 'host'"),
    ("postgresql://u@h/db", "URI"),
])
def test_malformed_strings_are_refused(text: str, fragment: str) -> None:
    with pytest.raises(ConninfoError, match=fragment.replace("(", r"\(")):
        parse(text)


def test_uri_detection() -> None:
    assert is_uri("postgres://h") and is_uri("  postgresql://u:p@h/db")
    assert not is_uri("host=postgresql://x")


@pytest.mark.parametrize("keyword,valid", [("keepalives_idle", True), ("sslmode", True), ("Host", False),
                                           ("1host", False), ("host name", False), ("", False)])
def test_keyword_shape(keyword: str, valid: bool) -> None:
    assert is_valid_keyword(keyword) is valid


# ------------------------------------------------------------------------------------------------- masking

@pytest.mark.parametrize("text,expected", [
    ("host=h password=s3cret user=u", f"host=h password={MASK} user=u"),
    ("host=h password='it\\'s a secret' user=u", f"host=h password={MASK} user=u"),
    ("password = spaced host=h", f"password = {MASK} host=h"),
    ("host=h sslpassword=keypass", f"host=h sslpassword={MASK}"),
    ("host=h password=a password=b", f"host=h password={MASK} password={MASK}"),
    ("host=h user=password_admin", "host=h user=password_admin"),
    (BASEBACKUP_CONNINFO, BASEBACKUP_CONNINFO),
])
def test_mask_hides_passwords_and_keeps_the_rest(text: str, expected: str) -> None:
    assert mask(text) == expected


def test_mask_hides_a_password_inside_another_value() -> None:
    masked = mask("host=h options='-c password=inner'")
    assert "inner" not in masked and MASK in masked


def test_mask_of_unreadable_text_with_a_password_hides_everything() -> None:
    assert mask("host=h password='unterminated") == MASK
    assert mask("host") == "host"


def test_mask_of_a_uri() -> None:
    masked = mask("postgresql://replicator:s3cret@db1:5432/postgres?password=other")
    assert "s3cret" not in masked and "other" not in masked
    assert masked.startswith(f"postgresql://replicator:{MASK}@db1")


def test_has_password() -> None:
    assert has_password("host=h password=x")
    assert has_password("host=h password=''")
    assert not has_password("host=h passfile=/p")
    assert has_password("host=h password='broken")


# ---------------------------------------------------------------------------------------------- comparison

DEFAULTS = {"channel_binding": frozenset({"prefer"}), "sslsni": frozenset({"1"})}


def test_same_pairs_in_another_order_do_not_differ() -> None:
    assert differences({"host": "h", "port": "5432"}, parse("port=5432 host='h'"), DEFAULTS) == []


def test_ignorable_defaults_do_not_differ_but_other_values_do() -> None:
    requested = {"host": "h"}
    assert differences(requested, {"host": "h", "channel_binding": "prefer", "sslsni": "1"}, DEFAULTS) == []
    assert differences(requested, {"host": "h", "channel_binding": "require"}, DEFAULTS) == ["channel_binding"]
    assert differences(requested, {"host": "h", "keepalives": "1"}, DEFAULTS) == ["keepalives"]


def test_requested_keys_always_count() -> None:
    assert differences({"host": "h", "channel_binding": "require"}, {"host": "h", "channel_binding": "prefer"},
                       DEFAULTS) == ["channel_binding"]
    assert differences({"host": "h", "application_name": "a"}, {"host": "h"}, DEFAULTS) == ["application_name"]
    assert differences({"host": "h"}, {"host": "H"}, DEFAULTS) == ["host"]
