# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""libpq connection strings in the keyword=value form: build, parse (as libpq does), compare, mask passwords.

The rules followed are libpq's: pairs are separated by white space; white space may surround ``=``; a value is
either a run of non-blank characters or a single-quoted string; inside either, a backslash takes the next
character literally (so ``\\'`` and ``\\\\``); an empty value must be written ``''``. When a keyword appears
twice, the last one wins. URIs (``postgresql://...``) are not handled here: :func:`parse` refuses them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MASK = "********"
# Keywords whose value is a secret (never shown).
SECRET_KEYWORDS = frozenset({"password", "sslpassword"})
# Characters that never need quotes (the set pg_basebackup and PostgreSQL's own tools leave bare).
_BARE_RE = re.compile(r"[A-Za-z0-9_.]+")
_KEYWORD_RE = re.compile(r"[a-z][a-z0-9_]*")
_URI_RE = re.compile(r"^\s*postgres(?:ql)?://", re.IGNORECASE)


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
    """keyword=value pairs, in the given order, joined by one blank (every value quoted when ``always_quote``)."""
    return " ".join(f"{keyword}={quote_value(value, always_quote)}" for keyword, value in pairs)


def is_uri(text: str) -> bool:
    """Whether a connection string is a URI rather than keyword=value pairs."""
    return _URI_RE.match(text) is not None


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
        value_start = i
        chars: list[str] = []
        if i < n and text[i] == "'":
            i += 1
            while True:
                if i >= n:
                    raise ConninfoError(f"unterminated quoted value of {keyword!r}")
                char = text[i]
                if char == "\\":
                    i += 1
                    if i < n:
                        chars.append(text[i])
                        i += 1
                elif char == "'":
                    i += 1
                    break
                else:
                    chars.append(char)
                    i += 1
        else:
            while i < n and not text[i].isspace():
                char = text[i]
                if char == "\\":
                    i += 1
                    if i < n:
                        chars.append(text[i])
                        i += 1
                else:
                    chars.append(char)
                    i += 1
        pairs.append(Pair(keyword, "".join(chars), value_start, i))


def parse(text: str) -> dict[str, str]:
    """keyword -> value (the last one wins, as in libpq)."""
    return {pair.keyword: pair.value for pair in parse_pairs(text)}


def is_valid_keyword(keyword: str) -> bool:
    """Whether a keyword has the form of a libpq connection keyword (lower case, digits, underscores)."""
    return _KEYWORD_RE.fullmatch(keyword) is not None


def mask(text: str) -> str:
    """The string with every password value replaced by MASK, everything else as it was.

    A string that cannot be read as keyword=value pairs but mentions a password is masked whole.
    """
    try:
        pairs = parse_pairs(text)
    except ConninfoError:
        if is_uri(text):
            hidden = re.sub(r"^(\s*postgres(?:ql)?://[^:@/?#]*:)[^@/?#]*@", rf"\1{MASK}@", text, flags=re.IGNORECASE)
            return _mask_embedded(hidden)
        return MASK if "password" in text.lower() else text
    out = text
    for pair in reversed(pairs):
        if pair.keyword.lower() in SECRET_KEYWORDS:
            out = out[:pair.start] + MASK + out[pair.end:]
    # A password inside another keyword's value (options='-c password=...') is not libpq's, but showing it is
    # not worth the risk either.
    return _mask_embedded(out)


def _mask_embedded(text: str) -> str:
    return re.sub(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s']+)", rf"\1{MASK}", text, flags=re.IGNORECASE)


def has_password(text: str) -> bool:
    """Whether the string sets libpq's password keyword (or, unreadable, mentions one)."""
    try:
        return any(pair.keyword.lower() in SECRET_KEYWORDS for pair in parse_pairs(text))
    except ConninfoError:
        return "password" in text.lower()


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
