# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""libpq keyword=value strings: quoting, parsing as libpq does (libpq itself is the oracle), masking, comparison."""

from __future__ import annotations

import pytest
from psycopg.conninfo import conninfo_to_dict
from samples import BASEBACKUP_CONNINFO

from ansible_collections.pgrepl.streaming.plugins.module_utils._conninfo import (
    MASK,
    ConninfoError,
    build,
    differences,
    has_password,
    is_uri,
    is_valid_keyword,
    mask,
    mask_embedded,
    mentions_password,
    parse,
    parse_pairs,
    quote_value,
    secret_values,
)
from ansible_collections.pgrepl.streaming.plugins.module_utils._errors import PgreplError

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


def test_mask_of_unreadable_text_hides_the_rest_after_a_password() -> None:
    assert mask("host=h password='unterminated") == f"host=h password={MASK}"
    assert mask("host") == "host"


def test_mask_embedded_hides_a_password_in_any_text() -> None:
    assert mask_embedded("pg_rewind: connecting with password=s3cret host=h") == \
        f"pg_rewind: connecting with password={MASK} host=h"
    assert "b c" not in mask_embedded("options='-c password='b c")


def test_mask_of_a_uri() -> None:
    masked = mask("postgresql://replicator:s3cret@db1:5432/postgres?password=other")
    assert "s3cret" not in masked and "other" not in masked
    assert masked.startswith(f"postgresql://replicator:{MASK}@db1")


def test_has_password() -> None:
    assert has_password("host=h password=x")
    assert has_password("host=h password=''")
    assert not has_password("host=h passfile=/p")
    assert has_password("host=h password='broken")


@pytest.mark.parametrize(("conninfo", "masked"), [
    ("host=db1 port=5432 user=replicator password=s3cret application_name=node2",
     "host=db1 port=5432 user=replicator password=******** application_name=node2"),
    ("password=s3cret", "password=********"),
    ("host=db1 password='with spaces inside' user=r", "host=db1 password=******** user=r"),
    (r"user=r password='it\'s \\ a secret' host=db1", "user=r password=******** host=db1"),
    ("host = db1 password = spaced user = r", "host = db1 password = ******** user = r"),
    (r"password=unquoted\ escaped host=db1", "password=******** host=db1"),
    ("host=db1 sslpassword=keypass sslkey=/k", "host=db1 sslpassword=******** sslkey=/k"),
    ("host=db1 PASSWORD=upper", "host=db1 PASSWORD=********"),
    ("user=postgres passfile=/var/lib/postgresql/.pgpass host=/run/pg",
     "user=postgres passfile=/var/lib/postgresql/.pgpass host=/run/pg"),
    ("user=postgres password=******** host=db1", "user=postgres password=******** host=db1"),
    ("host=db1 password='unterminated secret", "host=db1 password=********"),
    ("host=db1 password=", "host=db1 password=********"),
    ("", ""),
    ("postgresql://rep:s3cret@db1:5432/postgres?sslmode=require",
     "postgresql://rep:********@db1:5432/postgres?sslmode=require"),
    ("postgres://rep@db1/postgres?password=s3cret&application_name=n2",
     "postgres://rep@db1/postgres?password=********&application_name=n2"),
    ("postgresql://db1/postgres", "postgresql://db1/postgres"),
])
def test_mask_keeps_everything_but_the_secrets(conninfo: str, masked: str) -> None:
    assert mask(conninfo) == masked


@pytest.mark.parametrize("secret", ["s3cret", "with spaces inside", "it's a secret", "p@ss:w/rd?x"])
def test_mask_never_leaves_the_secret(secret: str) -> None:
    quoted = "'" + secret.replace("\\", "\\\\").replace("'", "\\'") + "'"
    for conninfo in (f"host=h password={quoted} port=5432", f"password = {quoted}"):
        result = mask(conninfo)
        assert secret not in result
        assert "password" in result and MASK in result


def test_mask_keeps_none() -> None:
    assert mask(None) is None


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


# ------------------------------------------------------------------------------------------- building

@pytest.mark.parametrize("value", ["plain", "", "with space", "quo'te", "back\\slash", "x' host=evil",
                                   "a\\' dbname=evil", "'", "\\", "=", "end\\"])
def test_quoted_values_parse_back_unchanged(value: str) -> None:
    parsed = conninfo_to_dict(build([("user", value), ("port", "5432")], always_quote=True))
    assert parsed["user"] == value
    assert parsed["port"] == "5432"
    assert set(parsed) == {"user", "port"}


def test_quote_value_always_quotes() -> None:
    assert quote_value("x", always=True) == "'x'"
    assert quote_value("it's", always=True) == "'it\\'s'"
    assert quote_value("a\\b", always=True) == "'a\\\\b'"


def test_build_refuses_nul() -> None:
    with pytest.raises(PgreplError, match="the conninfo value of user contains a NUL character"):
        build([("user", "a\x00b")], always_quote=True)


def test_build_refuses_a_strange_keyword() -> None:
    with pytest.raises(PgreplError):
        build([("user password", "x")])


@pytest.mark.parametrize(("conninfo", "has"), [
    ("user=rep passfile=/x host=db1", False),
    ("user=rep password=secret host=db1", True),
    ("user=rep password = 'se cret'", True),
    ("user=rep passfile='/home/password=x/.pgpass'", True),  # a false alarm is fine: it fails loudly
    ("", False),
])
def test_mentions_password(conninfo: str, has: bool) -> None:
    assert mentions_password(conninfo) is has


@pytest.mark.parametrize(("conninfo", "secrets"), [
    ("host=db1 user=repl password=s3cret", ["s3cret"]),
    ("host=db1 password = 'a\\'b c'", ["a'b c"]),
    ("host=db1 password='with space' port=5432", ["with space"]),
    ("host=db1 passfile=/x/.pgpass", []),
    ("postgresql://repl:uri-s3cret@db1:5432/postgres", ["uri-s3cret"]),
    ("postgres://repl@db1/postgres?password=q-s3cret", ["q-s3cret"]),
    ("postgresql://db1/postgres", []),
    ("host=h options='-c password=inner'", ["inner"]),
    ("host=db1 password='broken", ["broken"]),
    ("", []), (None, []),
])
def test_secret_values(conninfo: str | None, secrets: list[str]) -> None:
    assert secret_values(conninfo) == secrets
