# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""libpq connection strings: build them (every value quoted), parse the keyword=value form as libpq does, compare
them, and the one masker of their secrets (password, sslpassword) for every result, diff and message.

The rules followed are libpq's: pairs are separated by white space; white space may surround ``=``; a value is
either a run of non-blank characters or a single-quoted string; inside either, a backslash takes the next
character literally (so ``\\'`` and ``\\\\``); an empty value must be written ``''``. When a keyword appears
twice, the last one wins. URIs (``postgresql://...``) are only masked here: :func:`parse` refuses them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ansible_collections.pgrepl.streaming.plugins.module_utils._errors import PgreplError

MASK = "********"
# Keywords whose value is a secret (never shown).
SECRET_KEYWORDS = frozenset({"password", "sslpassword"})
# Characters that never need quotes (the set pg_basebackup and PostgreSQL's own tools leave bare).
_BARE_RE = re.compile(r"[A-Za-z0-9_.]+")
_KEYWORD_RE = re.compile(r"[a-z][a-z0-9_]*")
_URI_RE = re.compile(r"^\s*postgres(?:ql)?://", re.IGNORECASE)
# One host name, IP address (v6 with zone) or unix socket directory; a comma would make libpq try several hosts.
_HOST_RE = re.compile(r"[A-Za-z0-9_.:%/\[\]-]+")
# A password=value inside any text (another keyword's value, a tool's output line); an unterminated quote hides
# the rest of the text.
_EMBEDDED_RE = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'?|[^\s']+)", re.IGNORECASE)
_PASSWORD_KEYWORD_RE = re.compile(r"(?<![A-Za-z0-9_])password\s*=", re.IGNORECASE)


class ConninfoError(ValueError):
    """A connection string libpq would refuse; the message says where and why."""


@dataclass(frozen=True)
class Pair:
    """One keyword=value pair as it was read: the value unescaped, and where its text is in the string."""

    keyword: str
    value: str
    start: int  # index of the value's first character (its opening quote when quoted)
    end: int  # index just past the value's text


def quote_value(value: str, always: bool = False) -> str:
    """A value as libpq reads it back unchanged: bare when it is plain (unless ``always``), else single-quoted
    with backslashes and quotes escaped."""
    if not always and _BARE_RE.fullmatch(value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def build(pairs: list[tuple[str, str]], always_quote: bool = False) -> str:
    """keyword=value pairs, in the given order, joined by one blank (every value quoted when ``always_quote``, so
    that none can end early); a keyword of another shape or a NUL in a value is refused."""
    for keyword, value in pairs:
        if not is_valid_keyword(keyword):
            raise PgreplError(f"{keyword!r} is not a libpq keyword")
        if "\x00" in str(value):
            raise PgreplError(f"the conninfo value of {keyword} contains a NUL character")
    return " ".join(f"{keyword}={quote_value(str(value), always_quote)}" for keyword, value in pairs)


def validate_host(option: str, value: Any) -> str:
    """One host name, IP address or unix socket directory, as a conninfo host (never a list of hosts)."""
    if not isinstance(value, str) or value == "":
        raise PgreplError(f"{option}: {value!r} is not a host (it must be a host name, an IP address or a unix "
                          "socket directory)")
    if _HOST_RE.fullmatch(value) is None:
        raise PgreplError(f"{option}: {value!r} is not one host name, IP address or socket directory (spaces, "
                          "quotes, commas and '=' are refused)")
    return value


def check_sslrootcert(value: Any, option: str = "sslrootcert") -> str | None:
    """The CA file that verifies the server, an absolute path on the host that connects; None when not given."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not value.startswith("/") or any(c in value for c in "\x00\n\r"):
        raise PgreplError(f"{option}: {value!r} is not an absolute path of a CA certificate file")
    return value


def tls_pairs(sslmode: str, sslrootcert: str | None) -> list[tuple[str, str]]:
    """The TLS keywords of every connection string the modules build (primary_conninfo, pg_basebackup's and
    pg_rewind's): sslmode, then the CA file that verifies the server when one is given (without one, verify-ca
    and verify-full read the OS user's ~/.postgresql/root.crt, libpq's default)."""
    pairs = [("sslmode", sslmode)]
    if sslrootcert:
        pairs.append(("sslrootcert", sslrootcert))
    return pairs


def is_uri(text: str) -> bool:
    """Whether a connection string is a URI rather than keyword=value pairs."""
    return _URI_RE.match(text) is not None


def read_value(text: str, start: int) -> tuple[str, int, bool]:
    """(the value that starts at ``start``, unescaped; the index just past its text; False for a quoted value whose
    closing quote is missing, which then runs to the end). A backslash takes the next character literally."""
    index, length = start, len(text)
    quoted = index < length and text[index] == "'"
    if quoted:
        index += 1
    chars: list[str] = []
    while index < length:
        char = text[index]
        if char == "\\":
            if index + 1 < length:
                chars.append(text[index + 1])
            index += 2
            continue
        if quoted and char == "'":
            return "".join(chars), index + 1, True
        if not quoted and char.isspace():
            break
        chars.append(char)
        index += 1
    return "".join(chars), min(index, length), not quoted


def parse_pairs(text: str) -> list[Pair]:
    """Every pair in order, as libpq reads the string (ConninfoError for what libpq would refuse)."""
    if is_uri(text):
        raise ConninfoError("a URI (postgresql://...) is not a keyword=value connection string")
    pairs: list[Pair] = []
    i, n = 0, len(text)
    while True:
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            return pairs
        key_start = i
        while i < n and text[i] != "=" and not text[i].isspace():
            i += 1
        keyword = text[key_start:i]
        while i < n and text[i].isspace():
            i += 1
        if i >= n or text[i] != "=":
            raise ConninfoError(f'missing "=" after {keyword!r} (at character {key_start + 1})')
        i += 1
        while i < n and text[i].isspace():
            i += 1
        value, end, terminated = read_value(text, i)
        if not terminated:
            raise ConninfoError(f"unterminated quoted value of {keyword!r}")
        pairs.append(Pair(keyword, value, i, end))
        i = end


def parse(text: str) -> dict[str, str]:
    """keyword -> value (the last one wins, as in libpq)."""
    return {pair.keyword: pair.value for pair in parse_pairs(text)}


def is_valid_keyword(keyword: str) -> bool:
    """Whether a keyword has the form of a libpq connection keyword (lower case, digits, underscores)."""
    return _KEYWORD_RE.fullmatch(keyword) is not None


def _mask_pairs(text: str) -> str:
    """Secret values of the keyword = value form replaced, everything else as it was (a stray word is kept)."""
    out: list[str] = []
    index, length = 0, len(text)
    while index < length:
        if text[index].isspace():
            out.append(text[index])
            index += 1
            continue
        key_start = index
        while index < length and not text[index].isspace() and text[index] != "=":
            index += 1
        keyword = text[key_start:index]
        probe = index
        while probe < length and text[probe].isspace():
            probe += 1
        if probe >= length or text[probe] != "=":
            out.append(text[key_start:index])
            continue
        probe += 1
        while probe < length and text[probe].isspace():
            probe += 1
        end = read_value(text, probe)[1]
        out.append(text[key_start:probe])
        out.append(MASK if keyword.lower() in SECRET_KEYWORDS else text[probe:end])
        index = end
    return "".join(out)


def _mask_uri(text: str) -> str:
    """user:password@ and ?password= (or sslpassword=) of a postgresql:// URI replaced."""
    scheme, _sep, rest = text.partition("://")
    stop = len(rest)
    for marker in ("@", "/"):
        found = rest.find(marker)
        if found != -1:
            stop = min(stop, found)
    if stop < len(rest) and rest[stop] == "@":
        user, colon, _password = rest[:stop].partition(":")
        if colon:
            rest = f"{user}:{MASK}{rest[stop:]}"
    base, qmark, query = rest.partition("?")
    if qmark:
        params = []
        for part in query.split("&"):
            key, eq, _value = part.partition("=")
            params.append(f"{key}={MASK}" if eq and key.lower() in SECRET_KEYWORDS else part)
        rest = base + "?" + "&".join(params)
    return f"{scheme}://{rest}"


def mask_embedded(text: str) -> str:
    """Every password=value anywhere in a text (a tool's output line, options='-c password=...') replaced."""
    return _EMBEDDED_RE.sub(rf"\1{MASK}", text)


def mask(text: str | None) -> str | None:
    """A connection string (keyword=value or URI) with every secret replaced by MASK, everything else as it was.

    Lenient: a string libpq would refuse (an unterminated quote) is masked as far as it reads, and a password
    inside another keyword's value is masked too. None stays None."""
    if text is None:
        return None
    if is_uri(text):
        return _mask_uri(text.lstrip())
    return mask_embedded(_mask_pairs(text))


def has_password(text: str) -> bool:
    """Whether the string sets libpq's password keyword (or, unreadable, mentions one)."""
    try:
        return any(pair.keyword.lower() in SECRET_KEYWORDS for pair in parse_pairs(text))
    except ConninfoError:
        return "password" in text.lower()


def mentions_password(text: str) -> bool:
    """Whether ``password=`` stands anywhere in a text (a whole configuration file, a value of another keyword)."""
    return _PASSWORD_KEYWORD_RE.search(text) is not None


def secret_values(text: str | None) -> list[str]:
    """The secrets a connection string carries (to hide them from every output), in order."""
    if not text:
        return []
    if is_uri(text):
        rest = text.lstrip().partition("://")[2]
        found: list[str] = []
        userinfo, at, _host = rest.partition("@")
        if at and "/" not in userinfo and "?" not in userinfo:
            found += [userinfo.partition(":")[2]] if ":" in userinfo else []
        query = rest.partition("?")[2]
        for part in query.split("&") if query else []:
            key, eq, value = part.partition("=")
            if eq and key.lower() in SECRET_KEYWORDS:
                found.append(value)
        return [value for value in found if value]
    try:
        pairs = parse_pairs(text)
    except ConninfoError:
        return [value for value in _embedded_values(text) if value]
    found: list[str] = []
    for pair in pairs:
        found += [pair.value] if pair.keyword.lower() in SECRET_KEYWORDS else _embedded_values(pair.value)
    return [value for value in found if value]


def _embedded_values(text: str) -> list[str]:
    """The values of password=value inside a text, unquoted."""
    values = []
    for match in _EMBEDDED_RE.finditer(text):
        raw = match.group(2)
        if raw.startswith("'"):
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1] if raw.endswith("'") and len(raw) > 1 else raw[1:])
        values.append(raw)
    return values


def differences(requested: dict[str, str], existing: dict[str, str],
                ignorable: dict[str, frozenset[str]]) -> list[str]:
    """Keywords whose value differs, in sorted order.

    A keyword absent from ``requested`` but present in ``existing`` does not count when ``ignorable`` lists it
    with that very value (a libpq default that a tool such as pg_basebackup -R wrote out).
    """
    diffs: list[str] = []
    for keyword in sorted(set(requested) | set(existing)):
        if keyword in requested:
            if existing.get(keyword) != requested[keyword]:
                diffs.append(keyword)
        elif existing[keyword] not in ignorable.get(keyword, frozenset()):
            diffs.append(keyword)
    return diffs
