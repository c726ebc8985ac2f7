# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""SCRAM-SHA-256 verifiers: RFC 7677's test vector, verifiers made by a real PostgreSQL 15, SASLprep, parsing."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from ansible_collections.pgrepl.streaming.plugins.module_utils._scram import (
    DEFAULT_ITERATIONS,
    SALT_LENGTH,
    ScramFormatError,
    ScramVerifier,
    build_verifier,
    client_key,
    compute_keys,
    is_verifier,
    parse_verifier,
    prepared_password_bytes,
    salted_password,
    saslprep,
    server_key,
    stored_key,
    verify_password,
)

# RFC 7677 section 3: user "user", password "pencil".
RFC_SALT_B64 = "W22ZaJ0SNY7soEsUEjb6gQ=="
RFC_CLIENT_FIRST_BARE = "n=user,r=rOprNGfwEbeRWgbNEkqO"
RFC_SERVER_FIRST = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
RFC_CLIENT_FINAL_NO_PROOF = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
RFC_CLIENT_PROOF = "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
RFC_SERVER_SIGNATURE = "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
# Derived from the RFC's inputs; the two tests below prove them against the RFC's proof and signature.
RFC_SALTED_PASSWORD = "xKSVEDI6tPlSysH6mUQZOeeOp01r6B3fcJbodRPcYV0="
RFC_CLIENT_KEY = "pg/JI9Z+hkSpLRa5btpe9GVrDHJcSEN0viVTVXaZbos="
RFC_STORED_KEY = "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY="
RFC_SERVER_KEY = "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="

# Verifiers that PostgreSQL 15 itself stored for `ALTER ROLE ... PASSWORD '<cleartext>'` (password_encryption
# scram-sha-256): one plain non-ASCII, one that SASLprep NFKC-normalises (U+2168 ROMAN NUMERAL NINE -> "IX"),
# one where PostgreSQL's SASLprep refuses the string (RandALCat with an LCat) and falls back to the raw bytes.
POSTGRES_VERIFIERS = [
    ("p\u00e4ssw\u00f6rd",
     "SCRAM-SHA-256$4096:znP9uCwaTwnD0iJjr0vqWQ==$9/Uvjotm1rCkZgVdapew8HkDG/FYqu7HK9bdxdA3g1g="
     ":VfeQ97XGHf19e471DBfPjRpBFhsC0pq/5W4gMpYjEzE="),
    ("\u2168x",
     "SCRAM-SHA-256$4096:9Mi5QvAlzqV5CtrOFhpjsw==$W0Uz2b8dKjP2PBvfO6Z3tZUJfWLMd7fxsRqivg+9UpI="
     ":tDHKaqIFbFOaYPkPW+yyfPQLWQ6Cls76/JWA8wqwVGo="),
    ("\u0627a\u0628",
     "SCRAM-SHA-256$4096:TRfhrKf5dnAOZWEp/0O/tQ==$z6yqMWFI30zlqFId3Z8VB1kCfpn5913cg+iRTNz3TLk="
     ":GIrBLDYqQUpu0uwqmc+d0aRIO+Qp9O0ZgIiIfvvj6fQ="),
]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def rfc_salt() -> bytes:
    return base64.b64decode(RFC_SALT_B64)


def test_rfc7677_intermediate_keys() -> None:
    salted = salted_password("pencil", rfc_salt(), 4096)
    assert b64(salted) == RFC_SALTED_PASSWORD
    assert b64(client_key(salted)) == RFC_CLIENT_KEY
    assert b64(stored_key(client_key(salted))) == RFC_STORED_KEY
    assert b64(server_key(salted)) == RFC_SERVER_KEY


def test_rfc7677_keys_reproduce_the_rfc_client_proof_and_server_signature() -> None:
    stored, server = compute_keys("pencil", rfc_salt(), 4096)
    ckey = client_key(salted_password("pencil", rfc_salt(), 4096))
    auth_message = ",".join([RFC_CLIENT_FIRST_BARE, RFC_SERVER_FIRST, RFC_CLIENT_FINAL_NO_PROOF]).encode()
    client_signature = hmac.new(stored, auth_message, hashlib.sha256).digest()
    proof = bytes(a ^ b for a, b in zip(ckey, client_signature))
    assert b64(proof) == RFC_CLIENT_PROOF
    assert b64(hmac.new(server, auth_message, hashlib.sha256).digest()) == RFC_SERVER_SIGNATURE


def test_build_verifier_with_the_rfc_salt_has_postgresql_format() -> None:
    verifier = build_verifier("pencil", salt=rfc_salt(), iterations=4096)
    assert verifier == f"SCRAM-SHA-256$4096:{RFC_SALT_B64}${RFC_STORED_KEY}:{RFC_SERVER_KEY}"
    assert verify_password(verifier, "pencil")
    assert not verify_password(verifier, "pencil ")
    assert not verify_password(verifier, "Pencil")


def test_build_verifier_defaults_random_16_byte_salt_and_4096_iterations() -> None:
    first = parse_verifier(build_verifier("same password"))
    second = parse_verifier(build_verifier("same password"))
    assert first.iterations == DEFAULT_ITERATIONS == 4096
    assert len(first.salt) == SALT_LENGTH == 16
    assert first.salt != second.salt
    assert first.stored_key != second.stored_key


def test_parse_and_render_round_trip() -> None:
    text = build_verifier("x", salt=b"\x00" * 16, iterations=10000)
    parsed = parse_verifier(text)
    assert parsed == ScramVerifier(10000, b"\x00" * 16, parsed.stored_key, parsed.server_key)
    assert parsed.render() == text


@pytest.mark.parametrize("password,verifier", POSTGRES_VERIFIERS)
def test_verifiers_made_by_postgresql_are_accepted(password: str, verifier: str) -> None:
    assert verify_password(verifier, password)
    assert not verify_password(verifier, password + "x")
    assert not verify_password(verifier, "pencil")


def test_nfkc_equivalent_password_matches_the_postgresql_verifier() -> None:
    # SASLprep maps U+2168 to "IX", so PostgreSQL accepts "IXx" as the same password.
    verifier = POSTGRES_VERIFIERS[1][1]
    assert verify_password(verifier, "IXx")


@pytest.mark.parametrize("password,expected", [
    ("pencil", "pencil"),
    ("ctl\x01\x7f tab\t", "ctl\x01\x7f tab\t"),  # ASCII: used as it is, even control characters
    ("a\u00a0b", "a b"),  # non-ASCII space -> space
    ("x\u00ady", "xy"),  # soft hyphen: mapped to nothing
    ("\ufb01le", "file"),  # NFKC
    ("\u0627\u0628", "\u0627\u0628"),  # right-to-left only: allowed
    ("\u00ad", None),  # empty after mapping: PostgreSQL falls back to the raw bytes
    ("\u0221z", None),  # unassigned in Unicode 3.2 (table A.1)
    ("\u0627a\u0628", None),  # RandALCat mixed with LCat
    ("\u0627\u0661", None),  # RandALCat not at both ends (U+0661 is AN)
    ("ctl\x01\u00e9", None),  # ASCII control character in a non-ASCII string (C.2.1)
    ("\U000e0001tag", None),  # tagging character (C.9)
])
def test_saslprep_like_postgresql(password: str, expected: str | None) -> None:
    assert saslprep(password) == expected


def test_prepared_bytes_fall_back_to_raw_utf8() -> None:
    assert prepared_password_bytes("\u0627a\u0628") == "\u0627a\u0628".encode()
    assert prepared_password_bytes("a\u00a0b") == b"a b"


@pytest.mark.parametrize("text", [
    "",
    "md5" + "0" * 32,
    "SCRAM-SHA-1$4096:" + RFC_SALT_B64 + "$" + RFC_STORED_KEY + ":" + RFC_SERVER_KEY,
    "SCRAM-SHA-256$4096:" + RFC_SALT_B64,
    "SCRAM-SHA-256$4096:" + RFC_SALT_B64 + "$" + RFC_STORED_KEY,
    "SCRAM-SHA-256$4096:" + RFC_SALT_B64 + "$" + RFC_STORED_KEY + ":" + RFC_SERVER_KEY + "$extra",
    "SCRAM-SHA-256$4096$" + RFC_STORED_KEY + ":" + RFC_SERVER_KEY,
    "SCRAM-SHA-256$abc:" + RFC_SALT_B64 + "$" + RFC_STORED_KEY + ":" + RFC_SERVER_KEY,
    "SCRAM-SHA-256$0:" + RFC_SALT_B64 + "$" + RFC_STORED_KEY + ":" + RFC_SERVER_KEY,
    "SCRAM-SHA-256$-1:" + RFC_SALT_B64 + "$" + RFC_STORED_KEY + ":" + RFC_SERVER_KEY,
    "SCRAM-SHA-256$\uff14\uff10\uff19\uff16:" + RFC_SALT_B64 + "$" + RFC_STORED_KEY + ":" + RFC_SERVER_KEY,
    "SCRAM-SHA-256$4096:!!notbase64!!$" + RFC_STORED_KEY + ":" + RFC_SERVER_KEY,
    "SCRAM-SHA-256$4096:$" + RFC_STORED_KEY + ":" + RFC_SERVER_KEY,
    "SCRAM-SHA-256$4096:" + RFC_SALT_B64 + "$" + RFC_SALT_B64 + ":" + RFC_SERVER_KEY,
    "SCRAM-SHA-256$4096:" + RFC_SALT_B64 + "$" + RFC_STORED_KEY + ":" + RFC_SERVER_KEY[:-4],
    "SCRAM-SHA-256$4096:" + RFC_SALT_B64 + ":x$" + RFC_STORED_KEY + ":" + RFC_SERVER_KEY,
    "scram-sha-256$4096:" + RFC_SALT_B64 + "$" + RFC_STORED_KEY + ":" + RFC_SERVER_KEY,
])
def test_malformed_verifiers_are_refused(text: str) -> None:
    with pytest.raises(ScramFormatError):
        parse_verifier(text)
    assert not is_verifier(text)
    with pytest.raises(ScramFormatError):
        verify_password(text, "pencil")


def test_a_valid_verifier_is_recognised() -> None:
    assert is_verifier(f"SCRAM-SHA-256$4096:{RFC_SALT_B64}${RFC_STORED_KEY}:{RFC_SERVER_KEY}")
    assert not is_verifier("pencil")


@pytest.mark.parametrize("kwargs", [{"iterations": 0}, {"salt": b""}])
def test_build_verifier_refuses_degenerate_parameters(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        build_verifier("pencil", **kwargs)
