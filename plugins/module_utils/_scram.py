# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Client-side SCRAM-SHA-256 password verifiers in PostgreSQL's format (RFC 5802, RFC 7677).

PostgreSQL stores ``SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`` (base64 fields) in
``pg_authid.rolpassword``, and stores a value sent with ``ALTER ROLE ... PASSWORD`` as it is when it already
has that shape. Computing the verifier here means the cleartext password never reaches the server, its
statement log or its error messages.

Password preparation follows PostgreSQL's own ``pg_saslprep`` (RFC 4013 SASLprep) so that a verifier built
here matches the one the server or libpq would build from the same cleartext:

- a pure ASCII password is used as it is (no normalisation, as in PostgreSQL);
- otherwise: non-ASCII spaces (RFC 3454 C.1.2) become U+0020, the characters of table B.1 are removed, and
  the result is NFKC-normalised; the prohibited-output (C.1.2, C.2 to C.9), unassigned (A.1) and
  bidirectional (D.1/D.2) checks are made on the mapped string, as PostgreSQL makes them;
- when a check fails, or the mapped string is empty, PostgreSQL falls back to the raw UTF-8 bytes of the
  password, and so does this module.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import stringprep
import unicodedata
from dataclasses import dataclass

SCRAM_PREFIX = "SCRAM-SHA-256"
DEFAULT_ITERATIONS = 4096
SALT_LENGTH = 16
KEY_LENGTH = 32  # SHA-256 digest size
MAX_PASSWORD_BYTES = 1024  # PostgreSQL's MAX_PASSWORD_LENGTH in saslprep.c


class ScramFormatError(ValueError):
    """A stored or supplied string is not a SCRAM-SHA-256 verifier in PostgreSQL's format."""


@dataclass(frozen=True)
class ScramVerifier:
    """The four parts of a stored SCRAM-SHA-256 verifier."""

    iterations: int
    salt: bytes
    stored_key: bytes
    server_key: bytes

    def render(self) -> str:
        """PostgreSQL's text form, as stored in pg_authid.rolpassword."""
        return (f"{SCRAM_PREFIX}${self.iterations}:{_b64(self.salt)}"
                f"${_b64(self.stored_key)}:{_b64(self.server_key)}")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _b64_strict(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise ScramFormatError(f"the {what} is not valid base64") from None


def _is_prohibited(char: str) -> bool:
    """RFC 4013 section 2.3 prohibited output, plus unassigned code points (RFC 3454 A.1)."""
    return (stringprep.in_table_c12(char) or stringprep.in_table_c21_c22(char) or stringprep.in_table_c3(char)
            or stringprep.in_table_c4(char) or stringprep.in_table_c5(char) or stringprep.in_table_c6(char)
            or stringprep.in_table_c7(char) or stringprep.in_table_c8(char) or stringprep.in_table_c9(char)
            or stringprep.in_table_a1(char))


def saslprep(password: str) -> str | None:
    """SASLprep the way PostgreSQL's pg_saslprep does it; None where PostgreSQL falls back to the raw bytes."""
    if password.isascii():
        return password
    mapped = []
    for char in password:
        if stringprep.in_table_c12(char):
            mapped.append(" ")
        elif stringprep.in_table_b1(char):
            continue
        else:
            mapped.append(char)
    if not mapped:
        return None
    normalized = unicodedata.normalize("NFKC", "".join(mapped))
    # PostgreSQL checks the mapped characters (before normalisation) for steps 3 and 4.
    if any(_is_prohibited(char) for char in mapped):
        return None
    if any(stringprep.in_table_d1(char) for char in mapped):
        if any(stringprep.in_table_d2(char) for char in mapped):
            return None
        if not (stringprep.in_table_d1(mapped[0]) and stringprep.in_table_d1(mapped[-1])):
            return None
    return normalized


def prepared_password_bytes(password: str) -> bytes:
    """The bytes PostgreSQL feeds to PBKDF2 for this password (SASLprep result, or the raw UTF-8)."""
    prepared = saslprep(password)
    return (prepared if prepared is not None else password).encode("utf-8")


def salted_password(password: str, salt: bytes, iterations: int) -> bytes:
    """SaltedPassword := Hi(Normalize(password), salt, i), with Hi being PBKDF2-HMAC-SHA-256."""
    return hashlib.pbkdf2_hmac("sha256", prepared_password_bytes(password), salt, iterations)


def client_key(salted: bytes) -> bytes:
    return hmac.new(salted, b"Client Key", hashlib.sha256).digest()


def server_key(salted: bytes) -> bytes:
    return hmac.new(salted, b"Server Key", hashlib.sha256).digest()


def stored_key(client: bytes) -> bytes:
    return hashlib.sha256(client).digest()


def compute_keys(password: str, salt: bytes, iterations: int) -> tuple[bytes, bytes]:
    """(StoredKey, ServerKey) for this password, salt and iteration count."""
    salted = salted_password(password, salt, iterations)
    return stored_key(client_key(salted)), server_key(salted)


def build_verifier(password: str, salt: bytes | None = None, iterations: int = DEFAULT_ITERATIONS) -> str:
    """A new verifier; a random 16-byte salt unless one is given (tests give one)."""
    if iterations < 1:
        raise ValueError("iterations must be at least 1")
    if salt is None:
        salt = secrets.token_bytes(SALT_LENGTH)
    if not salt:
        raise ValueError("the salt must not be empty")
    stored, server = compute_keys(password, salt, iterations)
    return ScramVerifier(iterations, salt, stored, server).render()


def parse_verifier(text: str) -> ScramVerifier:
    """Split a stored verifier into its parts, or raise ScramFormatError saying what is wrong."""
    if not isinstance(text, str):
        raise ScramFormatError("the verifier is not a string")
    parts = text.split("$")
    if len(parts) != 3 or parts[0] != SCRAM_PREFIX:
        raise ScramFormatError(f"the verifier does not have the form {SCRAM_PREFIX}$<iterations>:<salt>$<keys>")
    iter_salt = parts[1].split(":")
    keys = parts[2].split(":")
    if len(iter_salt) != 2 or len(keys) != 2:
        raise ScramFormatError("the verifier needs <iterations>:<salt> and <StoredKey>:<ServerKey>")
    if not iter_salt[0].isdigit() or not iter_salt[0].isascii():
        raise ScramFormatError("the iteration count is not a positive integer")
    iterations = int(iter_salt[0])
    if iterations < 1:
        raise ScramFormatError("the iteration count is not a positive integer")
    salt = _b64_strict(iter_salt[1], "salt")
    if not salt:
        raise ScramFormatError("the salt is empty")
    stored = _b64_strict(keys[0], "StoredKey")
    server = _b64_strict(keys[1], "ServerKey")
    if len(stored) != KEY_LENGTH or len(server) != KEY_LENGTH:
        raise ScramFormatError(f"the StoredKey and ServerKey must be {KEY_LENGTH} bytes each")
    return ScramVerifier(iterations, salt, stored, server)


def is_verifier(text: str) -> bool:
    """Whether PostgreSQL would take this value of PASSWORD as a SCRAM verifier and store it as it is."""
    try:
        parse_verifier(text)
    except ScramFormatError:
        return False
    return True


def verify_password(stored: str, password: str) -> bool:
    """Whether this cleartext password matches the stored verifier (its own salt and iterations)."""
    parsed = parse_verifier(stored)
    stored_key_now, server_key_now = compute_keys(password, parsed.salt, parsed.iterations)
    return hmac.compare_digest(stored_key_now, parsed.stored_key) and \
        hmac.compare_digest(server_key_now, parsed.server_key)
