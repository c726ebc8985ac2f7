# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pg_hba module: one entry of pg_hba.conf added, updated or removed without disturbing anything else in the
file (its format: _hba_file.py). The entry is validated and rendered, the edit planned (where a new entry goes,
which earlier lines shadow it); then (after the "I/O" banner) the file is read and written, and the server is asked
to find, validate and reload the live file.
"""

from __future__ import annotations

import os
import re
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from re import Pattern
from typing import Any

from ansible_collections.pgrepl.streaming.plugins.module_utils._changes import ChangeTracker
from ansible_collections.pgrepl.streaming.plugins.module_utils._connection import connect, psycopg, query_all, query_one
from ansible_collections.pgrepl.streaming.plugins.module_utils._errors import PgreplError
from ansible_collections.pgrepl.streaming.plugins.module_utils._files import atomic_write, read_bytes, remove_quietly
from ansible_collections.pgrepl.streaming.plugins.module_utils._hba_file import (
    BLANKS,
    COLUMN_WIDTHS,
    CONTYPES,
    DB_KEYWORDS,
    MASK,
    METHODS,
    OPTION_NAME_RE,
    SECRET_OPTIONS,
    SECRET_RE,
    USER_KEYWORDS,
    Address,
    HbaDocument,
    HbaInputError,
    Record,
    Rule,
    Selects,
    Token,
    Tokenized,
    classify_record,
    decode,
    encode,
    line_body,
    mask_line,
    mask_text,
    option_pair,
    parse_address,
    parse_document,
    split_physical,
    tokenize,
)
from ansible_collections.pgrepl.streaming.plugins.module_utils._module import ModuleSpec

# --------------------------------------------------------------------------------------------------------------
# The entry the user asks for: validation and rendering.
# --------------------------------------------------------------------------------------------------------------


@dataclass
class Entry(Selects):
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
    names = [option_pair(t.value)[0] for t in tokens]
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
        for match in SECRET_RE.finditer(options):
            raw = match.group(2)
            found.append(raw)
            found.append(raw.replace('""', '\x00').replace('"', "").replace("\x00", '"'))
    return [v for v in found if v]


def secrets_in_options(options: Any) -> list[str]:
    """Names of secret options given in ``options`` (which Ansible may log) rather than ``secret_options``."""
    if isinstance(options, dict):
        return sorted(str(k) for k in options if str(k).lower() in SECRET_OPTIONS)
    if isinstance(options, str):
        return sorted({m.group(1) for m in SECRET_RE.finditer(options)})
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
            if line_body(split_physical(last.raw)[-1]).endswith("\\"):
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
    physical = split_physical(record.raw)
    if len(physical) > 1 and line_body(physical[-1]) == "" and line_body(physical[-2]).endswith("\\"):
        physical.pop()
    eol = physical[-1][len(line_body(physical[-1])):]
    if unterminated:
        physical[-1] = line_body(physical[-1])
        eol = ""
    return replace(record, raw="".join(physical), eol=eol)


def _reparse(old: Record | None, raw: str) -> Record:
    """A record for new text (its number is fixed when the document is parsed again)."""
    body = raw.rstrip("\r\n")
    return classify_record(raw, old.number if old else 0, body, raw[len(body):])


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


def _display_text(text: str) -> str:
    """Text fit for JSON output: undecodable bytes replaced, secrets masked."""
    return mask_text(encode(text).decode("utf-8", "replace"))


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
    old_text = decode(data)
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

    backup = atomic_write(path, encode(plan.new_text), backup=params["backup"])
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
