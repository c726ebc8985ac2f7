# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_hba.conf: parse, model, edit and render one entry without disturbing anything else in the file.

The first part of this file is pure (text in, text out): a tokenizer that follows the server's own rules
(blanks, commas, double quotes, ``#`` comments, backslash continuation), a model of the file as a list of
records that renders back byte for byte, the coverage logic that decides where a new entry goes and which
earlier lines shadow it, and the masking of secrets. The last part (after the "I/O" banner) reads and writes
the file, and talks to the server to find, validate and reload the live file.
"""

from __future__ import annotations

import ipaddress
import os
import re
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from re import Pattern
from typing import Any, Union

from ansible_collections.pgrepl.streaming.plugins.module_utils._changes import ChangeTracker
from ansible_collections.pgrepl.streaming.plugins.module_utils._connection import connect, psycopg, query_all, query_one
from ansible_collections.pgrepl.streaming.plugins.module_utils._errors import PgreplError
from ansible_collections.pgrepl.streaming.plugins.module_utils._files import atomic_write, read_bytes, remove_quietly
from ansible_collections.pgrepl.streaming.plugins.module_utils._module import ModuleSpec

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
_SECRET_RE = re.compile(r"(?i)\b(" + "|".join(SECRET_OPTIONS) + r")=((?:\"[^\"]*(?:\"|$)|[^\s,#\"])+)")

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

class _Selects:
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
        return sorted(_option_pair(t.value) for t in self.options)


@dataclass
class Rule(_Selects):
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


def _option_pair(value: str) -> tuple[str, str]:
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


def _split_physical(text: str) -> list[str]:
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


def _body(line: str) -> str:
    return line.rstrip("\r\n")


def parse_document(text: str) -> HbaDocument:
    """Every record of the file; never fails (a line the module cannot read becomes an 'invalid' record)."""
    physical = _split_physical(text)
    records: list[Record] = []
    i = 0
    while i < len(physical):
        first = i
        parts: list[str] = []
        while True:
            body = _body(physical[i])
            if body.endswith("\\") and i + 1 < len(physical):
                parts.append(body[:-1])
                i += 1
                continue
            parts.append(body[:-1] if body.endswith("\\") else body)
            break
        raw = "".join(physical[first:i + 1])
        last = physical[i]
        eol = last[len(_body(last)):]
        records.append(_classify(raw, first + 1, "".join(parts), eol))
        i += 1
    return HbaDocument(records)


def _classify(raw: str, number: int, content: str, eol: str) -> Record:
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
        rest = rest[:cut] + _SECRET_RE.sub(lambda m: f"{m.group(1)}={MASK}", rest[cut:])
    parts.append(rest)
    return "".join(parts)


def mask_text(text: str) -> str:
    """mask_line on every line of a text (line breaks kept)."""
    return "\n".join(mask_line(line) for line in text.split("\n"))


# --------------------------------------------------------------------------------------------------------------
# The entry the user asks for: validation and rendering.
# --------------------------------------------------------------------------------------------------------------

@dataclass
class Entry(_Selects):
    """A validated entry, with every value as it will be written."""

    contype: str
    databases: list[Token]
    users: list[Token]
    address_text: str | None  # as given ('10.0.0.0/8', '192.168.1.0 255.255.255.0', 'db.example.com')
    address_info: Address | None
    method: str | None
    options: list[Token] = field(default_factory=list)
    comment: str | None = None  # None: keep what the file has; '': remove it

    def method_and_options(self) -> str:
        return " ".join([self.method or ""] + [t.text for t in self.options])

    def render(self) -> str:
        """The line as written for a new entry (no line break), in the columns of PostgreSQL's sample file."""
        cells = [self.contype, ",".join(t.text for t in self.databases), ",".join(t.text for t in self.users),
                 self.address_text or ""]
        line = "".join(cell + " " * max(1, width - len(cell)) for cell, width in zip(cells, COLUMN_WIDTHS))
        line += self.method_and_options()
        if self.comment:
            line += "  # " + self.comment
        return line


def _display(value: Any) -> str:
    return repr(value) if isinstance(value, str) else repr(str(value))


def _check_chars(option: str, text: str, shown: str | None = None) -> None:
    shown = shown if shown is not None else _display(text)
    if "\n" in text or "\r" in text:
        raise HbaInputError(f"{option}: {shown} contains a line break, which would split the pg_hba.conf line")
    if "\x00" in text:
        raise HbaInputError(f"{option}: {shown} contains a NUL character")


def _tokens_of(option: str, text: str, shown: str | None = None) -> Tokenized:
    shown = shown if shown is not None else _display(text)
    _check_chars(option, text, shown)
    tokens = tokenize(text)
    if tokens.unterminated_quote:
        raise HbaInputError(f"{option}: {shown} has an unbalanced double quote")
    if tokens.comment_at is not None:
        raise HbaInputError(f"{option}: {shown} contains '#', which starts a comment in pg_hba.conf: put the name "
                            "in double quotes if '#' is part of it")
    return tokens


def parse_names(option: str, value: Any, keywords: Sequence[str]) -> list[Token]:
    """Database or user names from a list or a comma-separated string, each kept as written."""
    if isinstance(value, bool) or value is None or isinstance(value, dict):
        raise HbaInputError(f"{option}: expected a list of names or a comma-separated string, got "
                            f"{type(value).__name__} {value!r}")
    if isinstance(value, (str, int)):
        text = str(value)
        tokens = _tokens_of(option, text)
        if not tokens.fields:
            raise HbaInputError(f"{option}: {text!r} holds no name")
        if len(tokens.fields) > 1:
            raise HbaInputError(f"{option}: {text!r} has a blank outside double quotes: separate names with commas "
                                "and put a name that contains blanks in double quotes")
        result = tokens.fields[0]
    elif isinstance(value, (list, tuple)):
        if not value:
            raise HbaInputError(f"{option}: the list is empty (use ['all'] for every name)")
        result = []
        for item in value:
            if isinstance(item, bool) or not isinstance(item, (str, int)):
                raise HbaInputError(f"{option}: each item must be a name (a string), got {type(item).__name__} "
                                    f"{item!r}")
            text = str(item)
            tokens = _tokens_of(option, text)
            if len(tokens.fields) != 1 or len(tokens.fields[0]) != 1 or tokens.fields[0][0].text != text:
                raise HbaInputError(f"{option}: the item {text!r} is not one name: give one name per item, and put "
                                    "a name that contains blanks or commas in double quotes")
            result.append(tokens.fields[0][0])
    else:
        raise HbaInputError(f"{option}: expected a list of names or a comma-separated string, got "
                            f"{type(value).__name__}")
    for token in result:
        if token.value == "" and not token.quoted:
            raise HbaInputError(f"{option}: empty name")
        if not token.quoted and token.value[:1] == "@" and len(token.value) == 1:
            raise HbaInputError(f"{option}: '@' must be followed by a file name")
    return list(result)


def _render_option_value(value: str) -> str:
    if value == "" or any(c in value for c in " \t,#\""):
        return '"' + value.replace('"', '""') + '"'
    return value


def parse_options(value: Any, secret_value: Any = None) -> list[Token]:
    """Authentication options from a dict ({name: value}) or a 'name=value name=value' string."""
    tokens: list[Token] = []
    if value not in (None, "", {}):
        if isinstance(value, dict):
            tokens.extend(_dict_options("options", value))
        elif isinstance(value, str):
            shown = repr(mask_line(value))
            parsed = _tokens_of("options", value, shown)
            for token in (t for f in parsed.fields for t in f):
                if "=" not in token.value or not OPTION_NAME_RE.match(token.value.partition("=")[0]):
                    raise HbaInputError(f"options: {mask_line(token.text)!r} in {shown} is not name=value")
                tokens.append(token)
        else:
            raise HbaInputError(f"options: expected a dict of name: value or a 'name=value ...' string, got "
                                f"{type(value).__name__}")
    if secret_value:
        if not isinstance(secret_value, dict):
            raise HbaInputError("secret_options: expected a dict of name: value")
        tokens.extend(_dict_options("secret_options", secret_value, secret=True))
    names = [_option_pair(t.value)[0] for t in tokens]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise HbaInputError(f"options: {', '.join(duplicates)} given more than once (options and secret_options "
                            "together)")
    return tokens


def _dict_options(option: str, value: dict[Any, Any], secret: bool = False) -> list[Token]:
    tokens = []
    for name, val in value.items():
        name = str(name)
        if not OPTION_NAME_RE.match(name):
            raise HbaInputError(f"{option}: {name!r} is not an authentication option name")
        if val is None or isinstance(val, (dict, list)):
            raise HbaInputError(f"{option}: the value of {name} must be a string or a number, got "
                                f"{type(val).__name__}")
        text = ("1" if val else "0") if isinstance(val, bool) else str(val)
        shown = MASK if (secret or name.lower() in SECRET_OPTIONS) else repr(text)
        _check_chars(f"{option}: the value of {name}", text, shown)
        if text.endswith("\\"):
            raise HbaInputError(f"{option}: the value of {name} ({shown}) ends with a backslash, which the server "
                                "would read as a line continuation")
        rendered = f"{name}={_render_option_value(text)}"
        tokens.append(Token(rendered, f"{name}={text}", '"' in rendered, 0, len(rendered)))
    return tokens


def secret_values(options: Any, secret_options: Any) -> list[str]:
    """Every secret value given to the module (to hide it from Ansible's output)."""
    found: list[str] = []
    if isinstance(secret_options, dict):
        found.extend(str(v) for v in secret_options.values() if v not in (None, ""))
    if isinstance(options, dict):
        found.extend(str(v) for k, v in options.items() if str(k).lower() in SECRET_OPTIONS and v not in (None, ""))
    elif isinstance(options, str):
        for match in _SECRET_RE.finditer(options):
            raw = match.group(2)
            found.append(raw)
            found.append(raw.replace('""', '\x00').replace('"', "").replace("\x00", '"'))
    return [v for v in found if v]


def secrets_in_options(options: Any) -> list[str]:
    """Names of secret options given in ``options`` (which Ansible may log) rather than ``secret_options``."""
    if isinstance(options, dict):
        return sorted(str(k) for k in options if str(k).lower() in SECRET_OPTIONS)
    if isinstance(options, str):
        return sorted({m.group(1) for m in _SECRET_RE.finditer(options)})
    return []


def build_entry(params: dict[str, Any]) -> Entry:
    """Validate the module's parameters into an Entry; HbaInputError names the option and the value."""
    contype = params["contype"]
    state = params.get("state") or "present"
    address = params.get("address")
    databases = parse_names("databases", params.get("databases", ["all"]), DB_KEYWORDS)
    users = parse_names("users", params.get("users", ["all"]), USER_KEYWORDS)
    address_info = None
    if contype == "local":
        if address not in (None, ""):
            raise HbaInputError(f"address: {address!r} must not be set when contype is local (unix-socket "
                                "connections have no address)")
        address = None
    else:
        if address in (None, ""):
            raise HbaInputError(f"address: required when contype is {contype} (an IP network such as 10.0.0.0/8, "
                                "an address and netmask, a host name, samehost, samenet or all)")
        address_info = _parse_entry_address(str(address))
    method = params.get("method")
    if state == "present" and not method:
        raise HbaInputError("method: required when state is present")
    if method:
        _check_method(contype, method)
    options = parse_options(params.get("options"), params.get("secret_options"))
    comment = params.get("comment")
    if comment is not None:
        _check_chars("comment", comment)
        comment = comment.strip(BLANKS)
        if comment.startswith("#"):
            comment = comment[1:].strip(BLANKS)
        if comment.endswith("\\"):
            raise HbaInputError(f"comment: {params['comment']!r} ends with a backslash, which the server would read "
                                "as a line continuation")
    return Entry(contype, databases, users, address, address_info, method, options, comment)


def _parse_entry_address(text: str) -> Address:
    _check_chars("address", text)
    parts = text.split()
    if not parts or len(parts) > 2 or any(c in text for c in '",#'):
        raise HbaInputError(f"address: {text!r} is not an IP network (10.0.0.0/8), an address and netmask "
                            "(192.168.1.0 255.255.255.0), a host name, samehost, samenet or all")
    try:
        info = parse_address(parts[0], parts[1] if len(parts) == 2 else None)
    except ValueError as exc:
        raise HbaInputError(f"address: {text!r} is not valid: {exc}") from None
    if info.kind == "opaque":
        raise HbaInputError(f"address: {text!r} is not an IP network (10.0.0.0/8), an address and netmask, a host "
                            "name, samehost, samenet or all")
    return info


def _check_method(contype: str, method: str) -> None:
    if method not in METHODS:
        raise HbaInputError(f"method: {method!r} is not one of {', '.join(METHODS)}")
    if method == "peer" and contype != "local":
        raise HbaInputError(f"method: peer works only with contype local, not {contype} (use ident for TCP)")
    if method == "cert" and contype != "hostssl":
        raise HbaInputError(f"method: cert works only with contype hostssl, not {contype}")
    if method in ("gss", "sspi") and contype == "local":
        raise HbaInputError(f"method: {method} is not supported on local (unix-socket) connections")


def host_bits_error(entry: Entry) -> str | None:
    """The message refusing a NEW entry whose network has host bits set (PostgreSQL masks them silently)."""
    info = entry.address_info
    if info is None or info.kind != "net" or not info.host_bits or info.network is None:
        return None
    if " " in (entry.address_text or ""):
        suggestion = f"{info.network.network_address} {info.network.netmask}"
    else:
        suggestion = str(info.network)
    return (f"address: {entry.address_text!r} has host bits set, so it really means {suggestion}: write "
            f"{suggestion} (or a /{info.network.max_prefixlen} for that one host)")


# --------------------------------------------------------------------------------------------------------------
# Planning the edit.
# --------------------------------------------------------------------------------------------------------------

@dataclass
class Plan:
    action: str  # 'added', 'updated', 'unchanged', 'removed', 'absent'
    old_text: str
    new_text: str
    index: int | None = None  # record index of the entry in the new document
    line_number: int | None = None
    entry_line: str | None = None  # unmasked text of the entry's line
    shadowed_by: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return self.new_text != self.old_text


def _first_match(doc: HbaDocument, pattern: Pattern[str]) -> int | None:
    for i, record in enumerate(doc.records):
        if pattern.search(record.text):
            return i
    return None


def _rewrite_in_place(record: Record, entry: Entry) -> str:
    """The record with the method, options (and comment, when given) of the entry; the rest as written."""
    rule = record.rule
    if rule is None:
        raise PgreplError(f"internal error: line {record.number} is not an entry and cannot be rewritten")
    content = record.content
    head = content[: rule.method.start]
    tail = content[rule.tail_start:]
    if entry.comment is not None and entry.comment != (rule.comment or ""):
        tail = ("  # " + entry.comment) if entry.comment else ""
    # A record continued over several lines (backslash) comes back as one line: its joined text, which the
    # server reads the same way.
    return head + entry.method_and_options() + tail + record.eol


def _needs_update(rule: Rule, entry: Entry) -> bool:
    if rule.method.value != entry.method or rule.option_pairs != entry.option_pairs:
        return True
    return entry.comment is not None and entry.comment != (rule.comment or "")


def plan_edit(doc: HbaDocument, entry: Entry, state: str, insert_before: Pattern[str] | None = None,
              insert_after: Pattern[str] | None = None) -> Plan:
    """Decide the new file text; every record not concerned stays exactly as it was."""
    old_text = doc.render()
    selector = entry.selector
    warnings: list[str] = []
    for record in doc.records:
        if record.kind == "invalid":
            warnings.append(f"line {record.number} is not a pg_hba.conf entry this module can read ({record.error}): "
                            "it is kept as it is and ignored for placement and shadowing")
    same = [i for i, r in doc.rules() if r.rule is not None and r.rule.selector.key == selector.key]

    if state == "absent":
        if not same:
            return Plan("absent", old_text, old_text, warnings=warnings)
        removed = [doc.records[i] for i in same]
        kept = [r for i, r in enumerate(doc.records) if i not in same]
        if kept and len(doc.records) - 1 in same:
            # The last line is removed: the file ends as it did before that line was added (adding then removing
            # an entry gives back the very bytes).
            kept[-1] = _as_last_record(kept[-1], doc.records[-1].eol == "")
        new_doc = HbaDocument(kept)
        return Plan("removed", old_text, new_doc.render(), None, removed[0].number, removed[0].text,
                    warnings=warnings)

    records = list(doc.records)
    if same:
        index = same[0]
        record = records[index]
        if record.rule is None:
            raise PgreplError(f"internal error: line {record.number} is not an entry")
        if len(same) > 1:
            warnings.append("lines " + ", ".join(str(doc.records[i].number) for i in same[1:]) + " have the same "
                            "connection type, databases, users and address as line " + str(record.number)
                            + ": the server only ever uses the first; they are left as they are")
        if _needs_update(record.rule, entry):
            records[index] = _reparse(record, _rewrite_in_place(record, entry))
            action = "updated"
        else:
            action = "unchanged"
    else:
        error = host_bits_error(entry)
        if error:
            raise HbaInputError(error)
        if insert_before is not None:
            found = _first_match(doc, insert_before)
            if found is None:
                raise HbaInputError(f"insert_before: the regular expression {insert_before.pattern!r} matches no line "
                                    "of the file: nothing was changed")
            index = found
        elif insert_after is not None:
            found = _first_match(doc, insert_after)
            if found is None:
                raise HbaInputError(f"insert_after: the regular expression {insert_after.pattern!r} matches no line "
                                    "of the file: nothing was changed")
            index = found + 1
        else:
            index = next((i for i, r in doc.rules() if r.rule is not None and r.rule.selector.covers(selector)),
                         len(records))
        newline = doc.newline
        new_records = [_reparse(None, entry.render() + newline)]
        if index == len(records) and records:
            last = records[-1]
            if last.eol == "":
                # The file ends without a line break: add the one needed to start our line on its own, and end
                # the file on ours without one, as it was (removing the entry then gives back the very bytes).
                records[-1] = replace(last, raw=last.raw + newline, eol=newline)
                new_records = [_reparse(None, entry.render())]
            if _body(_split_physical(last.raw)[-1]).endswith("\\"):
                # A last line ending with a backslash would swallow ours: an empty line ends that record.
                new_records.insert(0, _reparse(None, newline))
        records[index:index] = new_records
        index += len(new_records) - 1
        action = "added"

    new_text = HbaDocument(records).render()
    number = "".join(r.raw for r in records[:index]).count("\n") + 1
    reparsed = parse_document(new_text)
    index = next((i for i, r in enumerate(reparsed.records) if r.number == number), None)
    if index is None:
        raise PgreplError(f"internal error: no record starts at line {number} of the new file; nothing was changed")
    final = reparsed.records[index]
    shadows = [r for i, r in reparsed.rules() if i < index and r.rule is not None and r.rule.selector.covers(selector)]
    plan = Plan(action, old_text, new_text, index, final.number, final.text, warnings=warnings)
    plan.shadowed_by = [{"line_number": r.number, "line": mask_line(r.text)} for r in shadows]
    if shadows:
        plan.warnings.append(
            f"the entry at line {final.number} is shadowed: "
            + "; ".join(f"line {r.number} ({mask_line(r.text.strip())!r})" for r in shadows)
            + " comes first and matches every connection it would match, so it is never used")
    includes = [r for i, r in enumerate(reparsed.records) if i < index and r.kind == "include"]
    if includes:
        plan.warnings.append("line(s) " + ", ".join(str(r.number) for r in includes) + " before the entry include "
                             "other files, whose rules were not checked for shadowing")
    return plan


def _as_last_record(record: Record, unterminated: bool) -> Record:
    """The record as the new end of the file: without the empty line after a final backslash continuation (it
    only served to end it before a next line, and adding an entry after it inserts one), and without its line
    break when the file ended without one."""
    physical = _split_physical(record.raw)
    if len(physical) > 1 and _body(physical[-1]) == "" and _body(physical[-2]).endswith("\\"):
        physical.pop()
    eol = physical[-1][len(_body(physical[-1])):]
    if unterminated:
        physical[-1] = _body(physical[-1])
        eol = ""
    return replace(record, raw="".join(physical), eol=eol)


def _reparse(old: Record | None, raw: str) -> Record:
    """A record for new text (its number is fixed when the document is parsed again)."""
    body = raw.rstrip("\r\n")
    return _classify(raw, old.number if old else 0, body, raw[len(body):])


def check_syntax(plan: Plan, entry: Entry) -> None:
    """Our own validation of the new text: the entry reads back as intended, and no line became unreadable."""
    if not plan.changed:
        return
    old = parse_document(plan.old_text)
    new = parse_document(plan.new_text)
    if old.render() != plan.old_text or new.render() != plan.new_text:
        raise PgreplError("internal error: pg_hba.conf did not render back byte for byte; nothing was changed")
    before = Counter(r.content for r in old.records if r.kind == "invalid")
    after = Counter(r.content for r in new.records if r.kind == "invalid")
    added = after - before
    if added:
        raise PgreplError("internal error: the edit would add lines the module cannot read: "
                          + "; ".join(repr(mask_line(c)) for c in added) + "; nothing was changed")
    if plan.action in ("added", "updated"):
        if plan.index is None:
            raise PgreplError("internal error: an added or updated entry has no position")
        record = new.records[plan.index]
        rule = record.rule
        if (record.kind != "rule" or rule is None or rule.selector.key != entry.selector.key
                or rule.method.value != entry.method or rule.option_pairs != entry.option_pairs):
            raise PgreplError(f"internal error: the new line {mask_line(record.text)!r} does not read back as the "
                              "requested entry; nothing was changed")


def compile_pattern(option: str, pattern: str | None) -> Pattern[str] | None:
    if pattern is None:
        return None
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise HbaInputError(f"{option}: {pattern!r} is not a valid regular expression ({exc})") from None


# --------------------------------------------------------------------------------------------------------------
# Server errors, compared by line content so that moved lines do not count as new errors.
# --------------------------------------------------------------------------------------------------------------

def error_keys(doc: HbaDocument, rows: Iterable[dict[str, Any]], hba_file: str) -> Counter:
    """A multiset of errors: (line content, error) for the hba file, (file, line, error) for included files."""
    keys: Counter = Counter()
    for row in rows:
        file_name = row.get("file_name")
        number = int(row["line_number"]) if row.get("line_number") is not None else 0
        if file_name is None or _same_path(file_name, hba_file):
            record = doc.record_at_line(number)
            if record is not None:
                keys[("line", record.content.strip(BLANKS), row["error"])] += 1
                continue
        keys[("file", file_name or hba_file, number, row["error"])] += 1
    return keys


def _same_path(a: str, b: str) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


def describe_errors(keys: Iterable[tuple[Any, ...]], doc: HbaDocument) -> str:
    parts = []
    for key in keys:
        if key[0] == "line":
            numbers = [r.number for r in doc.records if r.content.strip(BLANKS) == key[1]]
            where = f"line {numbers[0]}" if numbers else "a line"
            parts.append(f"{where} ({mask_line(key[1])!r}): {key[2]}")
        else:
            parts.append(f"{key[1]} line {key[2]}: {key[3]}")
    return "; ".join(parts)


# ==============================================================================================================
# I/O: the file on disk and the server. Everything above is pure.
# ==============================================================================================================

def _decode(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _display_text(text: str) -> str:
    """Text fit for JSON output: undecodable bytes replaced, secrets masked."""
    return mask_text(_encode(text).decode("utf-8", "replace"))


@dataclass
class Server:
    """A reachable server whose hba_file may or may not be the file we edit."""

    conn: Any
    hba_file: str
    major: int
    is_live: bool = False


def _server_query(conn: Any, query: str, what: str) -> list[dict[str, Any]]:
    try:
        return query_all(conn, query)
    except psycopg.errors.InsufficientPrivilege as exc:
        raise PgreplError(f"login_user: the role may not {what} ({str(exc).strip()}): connect as a superuser") from None
    except psycopg.Error as exc:
        raise PgreplError(f"the server failed to {what}: {str(exc).strip()}") from None


def _open_server(params: dict[str, Any]) -> Server:
    conn = connect(params)
    try:
        row = _server_query(conn, "SELECT current_setting('hba_file') AS hba_file,"
                                  " current_setting('server_version_num')::int AS version_num",
                            "read the hba_file setting")[0]
    except PgreplError:
        conn.close()
        raise
    return Server(conn, str(row["hba_file"]), int(row["version_num"]) // 10000)


def _hba_rows(server: Server) -> list[dict[str, Any]]:
    if server.major >= 16:
        query = "SELECT file_name, line_number, error FROM pg_catalog.pg_hba_file_rules"
    else:
        query = "SELECT line_number, error FROM pg_catalog.pg_hba_file_rules"
    return _server_query(server.conn, query, "read pg_hba_file_rules")


def _same_file_as_server(doc: HbaDocument, rows: list[dict[str, Any]], server: Server) -> bool:
    """Whether the server reads the file we parsed: the lines it lists are the lines we see as entries."""
    listed = {int(r["line_number"]) for r in rows
              if r.get("line_number") is not None and (r.get("file_name") is None
                                                       or _same_path(r["file_name"], server.hba_file))}
    ours = {r.number for r in doc.records if r.kind in ("rule", "invalid")}
    includes = {r.number for r in doc.records if r.kind == "include"}
    return ours <= listed and listed <= ours | includes


def _errors(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rows if r.get("error")]


def _can_reload(server: Server) -> bool:
    rows = _server_query(server.conn, "SELECT has_function_privilege('pg_catalog.pg_reload_conf()', 'EXECUTE') AS ok",
                         "check the privilege to reload")
    return bool(rows[0]["ok"])


def _reload(server: Server, params: dict[str, Any], warnings: list[str], timeout: float = 10.0) -> bool:
    """pg_reload_conf(), then wait until a new connection sees the new load time (the rules are in force)."""
    before = _server_query(server.conn, "SELECT pg_catalog.pg_conf_load_time() AS t",
                           "read pg_conf_load_time()")[0]["t"]
    ok = _server_query(server.conn, "SELECT pg_catalog.pg_reload_conf() AS ok", "reload the configuration")[0]["ok"]
    if not ok:
        warnings.append("pg_reload_conf() returned false: the server was not signalled")
        return False
    deadline = time.monotonic() + timeout
    while True:
        try:
            probe = connect(params)
        except PgreplError as exc:
            warnings.append(f"the server reloaded, but a new connection with the module's login now fails: {exc}")
            return True
        try:
            row = query_one(probe, "SELECT pg_catalog.pg_conf_load_time()")
        finally:
            probe.close()
        if row is not None and row[0] > before:
            return True
        if time.monotonic() > deadline:
            warnings.append(f"the reload was requested but not seen by new connections within {timeout:.0f}s")
            return True
        time.sleep(0.1)


def _server_for(params: dict[str, Any], warnings: list[str]) -> tuple[str, Server | None, str | None]:
    """The path to edit and, when reachable, the server (is_live says whether it reads that path)."""
    path = params.get("path")
    if not path:
        try:
            server = _open_server(params)
        except PgreplError as exc:
            raise PgreplError(f"path is not set, so the module asks the server for its hba_file, and that failed: "
                              f"{exc}") from None
        if not os.path.isabs(server.hba_file):
            server.conn.close()
            raise PgreplError(f"the server's hba_file {server.hba_file!r} is not an absolute path: set path")
        server.is_live = True
        return server.hba_file, server, None
    try:
        server = _open_server(params)
    except PgreplError as exc:
        return path, None, str(exc)
    try:
        server.is_live = os.path.exists(path) and os.path.samefile(path, server.hba_file)
    except OSError:
        server.is_live = False
    if not server.is_live:
        server.conn.close()
        return path, None, None
    return path, server, None


PG_HBA_SPEC = ModuleSpec(
    {
        "contype": {"type": "str", "required": True, "choices": list(CONTYPES)},
        "databases": {"type": "raw", "default": ["all"]},
        "users": {"type": "raw", "default": ["all"]},
        "address": {"type": "str"},
        "method": {"type": "str", "choices": list(METHODS)},
        "options": {"type": "raw"},
        "secret_options": {"type": "dict", "no_log": True},
        "state": {"type": "str", "default": "present", "choices": ["present", "absent"]},
        "comment": {"type": "str"},
        "path": {"type": "path"},
        "insert_before": {"type": "str"},
        "insert_after": {"type": "str"},
        "backup": {"type": "bool", "default": False},
        "reload": {"type": "bool", "default": True},
    },
    mutually_exclusive=[("insert_before", "insert_after")],
    required_if=[("state", "present", ["method"])],
)


def run_pg_hba(module: Any) -> dict[str, Any]:
    """The module body: validate, plan, (check mode stops here), write, validate by the server, reload."""
    params = module.params
    for secret in secret_values(params.get("options"), params.get("secret_options")):
        module.no_log_values.add(secret)
    warnings: list[str] = []
    named = secrets_in_options(params.get("options"))
    if named:
        warnings.append(f"options: {', '.join(named)} is a secret given in options, which Ansible may log on the "
                        "managed host before the module runs; it is masked in the output, but prefer secret_options")
    try:
        entry = build_entry(params)
        before_re = compile_pattern("insert_before", params.get("insert_before"))
        after_re = compile_pattern("insert_after", params.get("insert_after"))
        path, server, unreachable = _server_for(params, warnings)
        try:
            return _apply(module, entry, before_re, after_re, path, server, unreachable, warnings)
        finally:
            if server is not None:
                server.conn.close()
    finally:
        # Also on failure: fail_json carries the warnings gathered so far (unreadable lines, shadowing...).
        for warning in warnings:
            module.warn(warning)


def _apply(module: Any, entry: Entry, before_re: Pattern[str] | None, after_re: Pattern[str] | None, path: str,
           server: Server | None, unreachable: str | None, warnings: list[str]) -> dict[str, Any]:
    params = module.params
    state = params["state"]
    tracker = ChangeTracker(module.check_mode)
    data = read_bytes(path)
    if data is None:
        if state == "absent":
            return {"changed": False, "path": path, "validation": "none", "reloaded": False, "entry": None,
                    "line_number": None, "shadowed_by": [], "outcome": "absent"}
        if not module.params.get("path"):
            raise PgreplError(f"the server's hba_file {path!r} does not exist on this host: run this module on the "
                              "database server's host, or set path")
        raise PgreplError(f"path: {path!r} does not exist (this module edits an existing pg_hba.conf, it never "
                          "creates one)")
    if server is not None and entry.method == "oauth" and server.major < 18:
        raise HbaInputError(f"method: oauth needs PostgreSQL 18 or later (the server is {server.major})")
    old_text = _decode(data)
    doc = parse_document(old_text)
    plan = plan_edit(doc, entry, state, before_re, after_re)
    warnings.extend(plan.warnings)
    check_syntax(plan, entry)
    tracker.record("content", plan.old_text, plan.new_text)

    result: dict[str, Any] = {
        "changed": tracker.changed, "path": path, "validation": "none", "reloaded": False,
        "entry": mask_line(plan.entry_line) if plan.entry_line is not None else None,
        "line_number": plan.line_number, "shadowed_by": plan.shadowed_by, "outcome": plan.action,
    }
    if module._diff:
        result["diff"] = {"before": _display_text(plan.old_text), "after": _display_text(plan.new_text),
                          "before_header": path, "after_header": path}
    if not tracker.changed:
        return result

    rows_before: list[dict[str, Any]] = []
    if server is not None:
        rows_before = _hba_rows(server)
        if not _same_file_as_server(doc, rows_before, server):
            if not params.get("path"):
                raise PgreplError(f"the server reads {server.hba_file!r} but the file at that path on this host holds "
                                  "other lines: run this module on the database server's host")
            warnings.append(f"{path} is the server's hba_file by name, but the server lists other lines for it: "
                            "validated the syntax only and did not reload")
            server = None
    if server is not None and params["reload"] and not _can_reload(server):
        raise PgreplError("login_user: the role may not run pg_reload_conf(): connect as a superuser, or set "
                          "reload: false")
    if server is None and unreachable is not None and params["reload"]:
        warnings.append(f"could not ask a server whether {path} is its live hba_file ({unreachable}): validated "
                        "the syntax only and did not reload")
    result["validation"] = "syntax"
    if not tracker.apply:
        return result

    backup = atomic_write(path, _encode(plan.new_text), backup=params["backup"])
    if backup:
        result["backup_file"] = backup
    if server is None:
        return result

    try:
        rows_after = _hba_rows(server)
    except PgreplError as exc:
        atomic_write(path, data)
        remove_quietly(backup)
        result.pop("backup_file", None)
        raise PgreplError(f"{exc}; the previous {path} was restored and the server was not reloaded") from None
    new_doc = parse_document(plan.new_text)
    errors_before = error_keys(doc, _errors(rows_before), server.hba_file)
    errors_after = error_keys(new_doc, _errors(rows_after), server.hba_file)
    added = errors_after - errors_before
    if added:
        atomic_write(path, data)
        remove_quietly(backup)
        raise PgreplError(f"the server rejects the new {path}: {describe_errors(added, new_doc)}; the previous file "
                          "was restored and the server was not reloaded")
    result["validation"] = "server"
    if errors_after:
        warnings.append(f"the server reports errors in {path} that this change did not add "
                        f"({describe_errors(errors_after, new_doc)}): it keeps its previous rules until they are "
                        "fixed, so it was not reloaded")
    elif params["reload"]:
        result["reloaded"] = _reload(server, params, warnings)
    return result
