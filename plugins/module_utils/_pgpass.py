# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""libpq password files (.pgpass): their lines read as libpq reads them, written back byte for byte, masked; and
whether libpq would use a file at all.

A line is ``host:port:database:user:password``. A backslash takes the next character literally, so ``\\:`` and
``\\\\`` stand for a colon and a backslash; a field that is exactly ``*`` matches anything. After the fourth
field separator the rest of the line is the password (a colon there needs no escape, but is escaped when this
collection writes one). Lines starting with ``#`` are comments; libpq skips blank lines and lines with fewer than
five fields, and uses the FIRST line that matches a connection.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass

from ansible_collections.pgrepl.streaming.plugins.module_utils._errors import PgreplError
from ansible_collections.pgrepl.streaming.plugins.module_utils._osuser import OsUser, user_can

MASK = "********"
WILDCARD = "*"
MODE = 0o600  # libpq ignores a password file that group or others may access

# One field of a key: its value and whether it is the wildcard (an unescaped, lone '*').
Field = tuple[str, bool]
Key = tuple[Field, Field, Field, Field]


def escape_field(value: str) -> str:
    """A value as a password-file field (backslash and colon escaped)."""
    return value.replace("\\", "\\\\").replace(":", "\\:")


def _unescape(raw: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(raw):
        if raw[i] == "\\" and i + 1 < len(raw):
            out.append(raw[i + 1])
            i += 2
        else:
            out.append(raw[i])
            i += 1
    return "".join(out)


def split_entry(text: str) -> tuple[list[str], str] | None:
    """(the four raw key fields, the raw password) of a line, None when libpq would skip it."""
    if text == "" or text.startswith("#"):
        return None
    fields: list[str] = []
    start = i = 0
    while i < len(text) and len(fields) < 4:
        char = text[i]
        if char == "\\":
            i += 2
            continue
        if char == ":":
            fields.append(text[start:i])
            start = i + 1
        i += 1
    if len(fields) < 4:
        return None
    return fields, text[start:]


def key_field(raw: str) -> Field:
    return (WILDCARD, True) if raw == WILDCARD else (_unescape(raw), False)


def key_field_value(value: str) -> Field:
    """A requested field: '*' is the wildcard, anything else a literal value."""
    return (WILDCARD, True) if value == WILDCARD else (value, False)


def render_key(key: Key) -> str:
    """host:port:database:user as it is written in the file (for results and messages; no password)."""
    return ":".join(WILDCARD if wildcard else escape_field(value) for value, wildcard in key)


def render_entry(key: Key, password: str) -> str:
    return f"{render_key(key)}:{escape_field(password)}"


@dataclass
class PassLine:
    """One line: its text without the line break, the break, and the entry it holds (if libpq reads one)."""

    text: str
    eol: str
    key: Key | None = None
    password: str | None = None

    @property
    def rendered(self) -> str:
        return self.text + self.eol

    @property
    def masked(self) -> str:
        if self.key is None:
            return self.rendered
        return f"{render_key(self.key)}:{MASK}{self.eol}"


def parse_line(text: str, eol: str = "\n") -> PassLine:
    body = text[:-1] if text.endswith("\r") else text
    parts = split_entry(body)
    if parts is None:
        return PassLine(text, eol)
    raw_fields, raw_password = parts
    key: Key = (key_field(raw_fields[0]), key_field(raw_fields[1]), key_field(raw_fields[2]),
                key_field(raw_fields[3]))
    return PassLine(text, eol, key, _unescape(raw_password))


def parse_text(text: str) -> list[PassLine]:
    lines: list[PassLine] = []
    parts = text.split("\n")
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        if last and part == "":
            break
        lines.append(parse_line(part, "" if last else "\n"))
    return lines


def render_lines(lines: list[PassLine]) -> str:
    return "".join(line.rendered for line in lines)


def mask_text(text: str) -> str:
    """The file with every password replaced by MASK; comments and unreadable lines as they are."""
    return "".join(line.masked for line in parse_text(text))


def covers(line_key: Key, key: Key) -> bool:
    """Whether a line with line_key matches every connection an entry with key matches."""
    for (line_value, line_wild), (value, wild) in zip(line_key, key):
        if line_wild:
            continue
        if wild or line_value != value:
            return False
    return True


# ------------------------------------------------------------------------------------- what libpq accepts

def passfile_problem(path: str, st: os.stat_result | None) -> str | None:
    """Why libpq would not read this password file (missing, not a regular file, open to others); None if it would."""
    if st is None:
        return f"passfile: {path!r} does not exist (write it first, e.g. with pgrepl.streaming.passfile)"
    if not stat.S_ISREG(st.st_mode):
        return f"passfile: {path!r} is not a regular file"
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        return (f"passfile: {path!r} has mode {mode:04o}; libpq ignores a password file that the group or others "
                "may read or write: chmod 0600 it")
    return None


def stat_passfile(path: str) -> os.stat_result | None:
    """os.stat of the file, None when it does not exist; PgreplError when it cannot be looked at."""
    try:
        return os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise PgreplError(f"passfile: cannot stat {path!r}: {exc.strerror or exc}") from None


def check_client_passfile(path: str, user: OsUser, euid: int, program: str) -> None:
    """Refuse a password file that ``program``, run as the user, would not read (libpq ignores it, or the user
    cannot reach it)."""
    problem = passfile_problem(path, stat_passfile(path))
    if problem:
        raise PgreplError(problem)
    if not user_can(user, "-r", path, euid):
        raise PgreplError(f"passfile: {path!r} is not readable by os_user {user.name!r}, as whom {program} runs: "
                          f"chown it to {user.name} (mode 0600) and make its directory searchable by that user")
