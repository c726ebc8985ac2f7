# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_hba.conf as the server reads it: a tokenizer that follows the server's own rules (blanks, commas, double
quotes, ``#`` comments, backslash continuation), a model of the file as a list of records that renders back byte
for byte, the coverage logic that tells which lines match the same connections, and the masking of secrets.
Pure: text in, text out (the pg_hba module, _hba.py, reads, edits and writes the file)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Union

from ansible_collections.pgrepl.streaming.plugins.module_utils._errors import PgreplError

CONTYPES = ("local", "host", "hostssl", "hostnossl", "hostgssenc", "hostnogssenc")
METHODS = ("trust", "reject", "scram-sha-256", "md5", "password", "gss", "sspi", "ident", "peer", "ldap",
           "radius", "cert", "pam", "bsd", "oauth")
INCLUDE_KEYWORDS = ("include", "include_if_exists", "include_dir")
DB_KEYWORDS = ("all", "sameuser", "samerole", "samegroup", "replication")
USER_KEYWORDS = ("all",)
ADDRESS_KEYWORDS = ("all", "samehost", "samenet")
SECRET_OPTIONS = ("ldapbindpasswd", "radiussecrets", "radiussecret")
MASK = "********"
BLANKS = " \t\r"
# Column widths of PostgreSQL's sample file (TYPE, DATABASE, USER, ADDRESS), so new lines line up with it.
COLUMN_WIDTHS = (8, 16, 16, 24)
HOSTNAME_RE = re.compile(r"^\.?[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]*"
                         r"[A-Za-z0-9_])?)*\.?$")
OPTION_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
SECRET_RE = re.compile(r"(?i)\b(" + "|".join(SECRET_OPTIONS) + r")=((?:\"[^\"]*(?:\"|$)|[^\s,#\"])+)")

Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]


class HbaInputError(PgreplError):
    """A value given to the module that cannot be written into pg_hba.conf (message names option and value)."""


# --------------------------------------------------------------------------------------------------------------
# Tokenizer: the server's rules for one logical line.
# --------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Token:
    """One token as the server reads it: ``value`` without quotes, ``text`` exactly as written."""

    text: str
    value: str
    quoted: bool
    start: int
    end: int


@dataclass
class Tokenized:
    fields: list[list[Token]]
    comment_at: int | None  # offset of the '#' that starts the trailing comment, if any
    unterminated_quote: bool


def tokenize(content: str) -> Tokenized:
    """Split a logical line into fields of comma-separated tokens the way PostgreSQL's hba tokenizer does.

    Blanks (space, tab, CR) separate fields; an unquoted comma continues the field with another token
    (blanks and commas after it are skipped); double quotes protect blanks, commas and '#', and a doubled
    quote inside quotes is a literal quote; an unquoted '#' ends the line.
    """
    fields: list[list[Token]] = []
    current: list[Token] = []
    i = 0
    n = len(content)
    comment_at: int | None = None
    unterminated = False
    while True:
        while i < n and (content[i] in BLANKS or content[i] == ","):
            i += 1
        if i >= n:
            break
        start = i
        chars: list[str] = []
        in_quote = was_quote = saw_quote = False
        comma = False
        while i < n and (content[i] not in BLANKS or in_quote):
            c = content[i]
            if c == "#" and not in_quote:
                comment_at = i
                break
            if c == "," and not in_quote:
                comma = True
                break
            if c != '"' or was_quote:
                chars.append(c)
            was_quote = (not was_quote) if (in_quote and c == '"') else False
            if c == '"':
                in_quote = not in_quote
                saw_quote = True
            i += 1
        if in_quote:
            unterminated = True
        end = i
        if comma:
            i += 1
        if chars or saw_quote:
            current.append(Token(content[start:end], "".join(chars), saw_quote, start, end))
        if comment_at is not None:
            break
        if not comma and current:
            fields.append(current)
            current = []
    if current:
        fields.append(current)
    return Tokenized(fields, comment_at, unterminated)


# --------------------------------------------------------------------------------------------------------------
# Addresses and coverage.
# --------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Address:
    """What an address field matches: a keyword, an IP network, a host name (or a .suffix), or opaque text."""

    kind: str  # 'all', 'samehost', 'samenet', 'net', 'host', 'opaque'
    network: Network | None = None
    name: str = ""
    host_bits: bool = False

    @property
    def key(self) -> tuple[str, str]:
        if self.kind == "net":
            return ("net", str(self.network))
        return (self.kind, self.name)

    def covers(self, other: Address) -> bool:
        """Whether every client address that ``other`` matches is matched by this one too (when known)."""
        if self.kind == "all":
            return True
        if self.kind in ("samehost", "samenet"):
            return other.kind == self.kind
        if self.kind == "net":
            return (other.kind == "net" and self.network is not None and other.network is not None
                    and other.network.version == self.network.version and other.network.subnet_of(self.network))
        if self.kind == "host":
            if other.kind != "host":
                return False
            if self.name.startswith("."):
                return other.name == self.name or other.name.endswith(self.name)
            return other.name == self.name
        return other.kind == "opaque" and other.name == self.name


def _strip_zone(text: str) -> str:
    return text.split("%", 1)[0]


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(_strip_zone(text))
    except ValueError:
        return None


def _mask_prefix(mask: ipaddress.IPv4Address | ipaddress.IPv6Address) -> int | None:
    """Prefix length of a contiguous netmask, None for a non-contiguous one."""
    bits = int(mask)
    width = mask.max_prefixlen
    inverted = (~bits) & ((1 << width) - 1)
    if inverted & (inverted + 1):
        return None
    return width - inverted.bit_length()


def parse_address(text: str, mask: str | None = None) -> Address:
    """The Address of an address field (and its netmask field); ValueError with a reason when invalid."""
    if mask is None and text in ADDRESS_KEYWORDS:
        return Address(kind=text, name=text)
    if mask is None and "/" in text:
        addr_text, _slash, prefix_text = text.partition("/")
        addr = _ip(addr_text)
        if addr is None:
            if HOSTNAME_RE.match(addr_text):
                raise ValueError(f"{addr_text!r} before the '/' is not an IP address")
            return Address(kind="opaque", name=text)
        if not prefix_text.isdigit() or int(prefix_text) > addr.max_prefixlen:
            raise ValueError(f"invalid CIDR mask in {text!r} (IPv{addr.version} prefixes go from 0 to "
                             f"{addr.max_prefixlen})")
        network = ipaddress.ip_network(f"{addr}/{int(prefix_text)}", strict=False)
        return Address(kind="net", network=network, name=text, host_bits=network.network_address != addr)
    addr = _ip(text)
    if addr is not None:
        if mask is None:
            raise ValueError(f"the IP address {text!r} needs a /prefix length or a netmask")
        mask_ip = _ip(mask)
        if mask_ip is None or mask_ip.version != addr.version:
            raise ValueError(f"invalid IP mask {mask!r} for {text!r}")
        prefix = _mask_prefix(mask_ip)
        if prefix is None:
            return Address(kind="opaque", name=f"{text} {mask}")
        network = ipaddress.ip_network(f"{addr}/{prefix}", strict=False)
        return Address(kind="net", network=network, name=f"{text} {mask}",
                       host_bits=network.network_address != addr)
    if mask is not None:
        raise ValueError(f"a netmask ({mask!r}) only goes with an IP address, not with {text!r}")
    if HOSTNAME_RE.match(text):
        return Address(kind="host", name=text.lower())
    return Address(kind="opaque", name=text)


def name_key(token: Token, keywords: Sequence[str]) -> str:
    """What a database or user token means: a keyword, a +group, an @file, a /regex or a plain name."""
    if not token.quoted:
        if token.value in keywords:
            return "kw:" + ("samerole" if token.value == "samegroup" else token.value)
        if token.value[:1] == "@" and len(token.value) > 1:
            return "file:" + token.value[1:]
        if token.value[:1] == "+":
            return "group:" + token.value[1:]
        if token.value[:1] == "/":
            return "re:" + token.value[1:]
    return "name:" + token.value


CONTYPE_COVERS = {
    "local": {"local"},
    "host": {"host", "hostssl", "hostnossl", "hostgssenc", "hostnogssenc"},
    "hostssl": {"hostssl"},
    "hostnossl": {"hostnossl", "hostgssenc"},  # a GSS-encrypted connection does not use SSL
    "hostgssenc": {"hostgssenc"},
    "hostnogssenc": {"hostnogssenc", "hostssl"},  # an SSL connection is not GSS-encrypted
}


@dataclass(frozen=True)
class Selector:
    """Which connections a line applies to: its identity (contype, databases, users, address)."""

    contype: str
    databases: frozenset[str]
    users: frozenset[str]
    address: Address | None

    @property
    def key(self) -> tuple[Any, ...]:
        return (self.contype, self.databases, self.users, self.address.key if self.address else None)

    def covers(self, other: Selector) -> bool:
        """True when every connection ``other`` matches is matched by this line too (certain cases only).

        The database keyword ``all`` does not match physical replication connections: only ``replication``
        does. ``sameuser`` covers an entry whose only database and only user are the same name.
        """
        if other.contype not in CONTYPE_COVERS[self.contype]:
            return False
        for db in other.databases:
            if db == "kw:replication":
                if "kw:replication" not in self.databases:
                    return False
            elif "kw:all" not in self.databases and db not in self.databases and not self._sameuser(other, db):
                return False
        for user in other.users:
            if "kw:all" not in self.users and user not in self.users:
                return False
        if self.contype == "local" or other.address is None or self.address is None:
            return self.contype == "local" and other.contype == "local"
        return self.address.covers(other.address)

    def _sameuser(self, other: Selector, db: str) -> bool:
        return ("kw:sameuser" in self.databases and db.startswith("name:") and len(other.databases) == 1
                and other.users == frozenset({db}))


# --------------------------------------------------------------------------------------------------------------
# The file model: records that render back byte for byte.
# --------------------------------------------------------------------------------------------------------------

class Selects:
    """What a parsed rule and a requested entry share: which connections they match, and their options."""

    contype: str
    databases: list[Token]
    users: list[Token]
    address_info: Address | None
    options: list[Token]

    @property
    def selector(self) -> Selector:
        return Selector(self.contype, frozenset(name_key(t, DB_KEYWORDS) for t in self.databases),
                        frozenset(name_key(t, USER_KEYWORDS) for t in self.users), self.address_info)

    @property
    def option_pairs(self) -> list[tuple[str, str]]:
        return sorted(option_pair(t.value) for t in self.options)


@dataclass
class Rule(Selects):
    """A parsed authentication record."""

    contype: str
    databases: list[Token]
    users: list[Token]
    address: Token | None
    netmask: Token | None
    address_info: Address | None
    method: Token
    options: list[Token]
    comment: str | None  # text after '#', stripped; None without a comment
    tail_start: int  # offset just after the last token (blanks and comment follow)


def option_pair(value: str) -> tuple[str, str]:
    name, _equals, val = value.partition("=")
    return (name, val)


@dataclass
class Record:
    """One logical line of the file: its exact text (one or more physical lines), kind and parse."""

    raw: str
    number: int  # first physical line, 1-based (what pg_hba_file_rules reports)
    content: str  # the logical line: continuations joined, line breaks removed
    eol: str  # the line break that ends the record: '\n', '\r\n' or '' at the end of a file
    kind: str  # 'blank', 'comment', 'rule', 'include', 'invalid'
    rule: Rule | None = None
    error: str | None = None

    @property
    def text(self) -> str:
        """The record without its final line break (what insert_before/insert_after match)."""
        return self.raw[: len(self.raw) - len(self.eol)] if self.eol else self.raw


@dataclass
class HbaDocument:
    records: list[Record]

    def render(self) -> str:
        return "".join(r.raw for r in self.records)

    @property
    def newline(self) -> str:
        """The line break to use for new lines: CRLF when the file already uses it, else LF."""
        for record in self.records:
            if record.eol:
                return "\r\n" if record.eol == "\r\n" else "\n"
        return "\n"

    def rules(self) -> list[tuple[int, Record]]:
        return [(i, r) for i, r in enumerate(self.records) if r.kind == "rule"]

    def record_at_line(self, number: int) -> Record | None:
        for record in self.records:
            if record.number == number:
                return record
        return None


def split_physical(text: str) -> list[str]:
    """Physical lines with their line breaks (only '\n' ends a line, as for the server)."""
    lines: list[str] = []
    start = 0
    while start < len(text):
        end = text.find("\n", start)
        if end < 0:
            lines.append(text[start:])
            break
        lines.append(text[start:end + 1])
        start = end + 1
    return lines


def line_body(line: str) -> str:
    return line.rstrip("\r\n")


def parse_document(text: str) -> HbaDocument:
    """Every record of the file; never fails (a line the module cannot read becomes an 'invalid' record)."""
    physical = split_physical(text)
    records: list[Record] = []
    i = 0
    while i < len(physical):
        first = i
        parts: list[str] = []
        while True:
            body = line_body(physical[i])
            if body.endswith("\\") and i + 1 < len(physical):
                parts.append(body[:-1])
                i += 1
                continue
            parts.append(body[:-1] if body.endswith("\\") else body)
            break
        raw = "".join(physical[first:i + 1])
        last = physical[i]
        eol = last[len(line_body(last)):]
        records.append(classify_record(raw, first + 1, "".join(parts), eol))
        i += 1
    return HbaDocument(records)


def classify_record(raw: str, number: int, content: str, eol: str) -> Record:
    tokens = tokenize(content)
    record = Record(raw=raw, number=number, content=content, eol=eol, kind="blank")
    if not tokens.fields:
        record.kind = "comment" if tokens.comment_at is not None else "blank"
        return record
    first = tokens.fields[0][0]
    if not first.quoted and first.value in INCLUDE_KEYWORDS and len(tokens.fields[0]) == 1:
        record.kind = "include"
        return record
    try:
        record.rule = parse_rule(content, tokens)
        record.kind = "rule"
    except ValueError as exc:
        record.kind = "invalid"
        record.error = str(exc)
    return record


def _single(field_tokens: list[Token], what: str) -> Token:
    if len(field_tokens) != 1:
        raise ValueError(f"multiple values in the {what} field")
    return field_tokens[0]


def parse_rule(content: str, tokens: Tokenized | None = None) -> Rule:
    """A Rule from a logical line; ValueError saying what the server would object to."""
    tokens = tokens or tokenize(content)
    if tokens.unterminated_quote:
        raise ValueError("unterminated double quote")
    fields = list(tokens.fields)
    contype = _single(fields.pop(0), "connection type").value
    if contype not in CONTYPES:
        raise ValueError(f"invalid connection type {contype!r}")
    if not fields:
        raise ValueError("end of line before the database field")
    databases = fields.pop(0)
    if not fields:
        raise ValueError("end of line before the user field")
    users = fields.pop(0)
    address = netmask = None
    address_info = None
    if contype != "local":
        if not fields:
            raise ValueError("end of line before the address field")
        address = _single(fields.pop(0), "address")
        mask_text = None
        if (not address.quoted and address.value not in ADDRESS_KEYWORDS and "/" not in address.value
                and _ip(address.value) is not None):
            if not fields:
                raise ValueError("end of line before the netmask field")
            netmask = _single(fields.pop(0), "netmask")
            mask_text = netmask.value
        if address.quoted and address.value in ADDRESS_KEYWORDS:
            address_info = Address(kind="host", name=address.value)
        else:
            address_info = parse_address(address.value, mask_text)
    if not fields:
        raise ValueError("end of line before the authentication method")
    method = _single(fields.pop(0), "authentication method")
    if method.value not in METHODS:
        raise ValueError(f"invalid authentication method {method.value!r}")
    options = [t for f in fields for t in f]
    for option in options:
        if "=" not in option.value:
            raise ValueError(f"authentication option not in name=value format: {mask_line(option.value)!r}")
    last = options[-1] if options else method
    comment = None
    if tokens.comment_at is not None:
        comment = content[tokens.comment_at + 1:].strip(BLANKS)
    return Rule(contype, databases, users, address, netmask, address_info, method, options, comment, last.end)


# --------------------------------------------------------------------------------------------------------------
# Secrets.
# --------------------------------------------------------------------------------------------------------------

def mask_line(line: str) -> str:
    """The line with the values of secret options (ldapbindpasswd, radiussecrets) replaced by a mask.

    Tokens are found the way the server reads them (so a quoted value is masked whole); a comment is masked
    by pattern, and an unterminated quote masks the rest of the line.
    """
    tokens = tokenize(line)
    parts: list[str] = []
    pos = 0
    for token in (t for f in tokens.fields for t in f):
        name, eq, _value = token.value.partition("=")
        if eq and name.lower() in SECRET_OPTIONS:
            parts.append(line[pos:token.start])
            parts.append(f"{name}={MASK}")
            pos = token.end
    rest = line[pos:]
    if tokens.comment_at is not None and tokens.comment_at >= pos:
        cut = tokens.comment_at - pos
        rest = rest[:cut] + SECRET_RE.sub(lambda m: f"{m.group(1)}={MASK}", rest[cut:])
    parts.append(rest)
    return "".join(parts)


def mask_text(text: str) -> str:
    """mask_line on every line of a text (line breaks kept)."""
    return "\n".join(mask_line(line) for line in text.split("\n"))


def decode(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")
