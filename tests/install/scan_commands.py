"""Which external commands the project's scripts and test harnesses run on the machine that runs them.

check_install.py (stage `install` of scripts/test.sh) proves with it that scripts/install-packages.sh installs
everything they call. Pure logic, unit-tested in tests/unit/install/test_scan_commands.py.

What counts as a call on this machine:
- shell (*.sh, .ci/run, Makefile recipes): the first word of every simple command, also inside $(...), `...`,
  <(...), the strings of `bash -c`, `sh -c`, `runuser -c`, `flock -c` and `trap`, and the command a runner is given
  (nohup, exec, env, timeout, nice, xargs, sudo, runuser, setsid, stdbuf, flock, unshare, time, command);
  `NAME=...; "$NAME" ...` resolves NAME's literal value or `${OTHER:-default}` default;
- Python: argv[0] of subprocess.run/Popen/call/check_call/check_output and os.exec*/os.spawn*p calls (shell strings
  of shell=True, os.system and os.popen are scanned as shell), where argv is a list literal, a name bound to one in
  the same function or module, a call of a function that returns one, or a parameter of a wrapper function (then
  the matching argument at every call of that wrapper, in any scanned file);
- Ansible: the command/shell/raw tasks of plays that run on localhost (or are delegated to it) in Molecule's files,
  and the connection plugins that the harnesses' inventories name (ssh runs `ssh`, community.docker.docker `docker`).
What does not count:
- shell builtins and keywords, functions the same file defines (also called as "stage_$name"), probes
  (`command -v X`, shutil.which);
- what runs inside a test container: the arguments of `docker` (exec, run, build: their commands run in the
  container), Dockerfiles and unit files of tests/images, testinfra's host.run, Ansible tasks on the test hosts and
  the scripts those copy there (IN_CONTAINER);
- heredoc bodies (data: an inventory, a Python program read from stdin);
- paths built from a variable ("$VENV/bin/pip", "$HERE/x.sh": files this project makes), sys.executable, and a
  {value} in command position of an f-string program (`sh -c f"exec {program} ..."`);
- PostgreSQL server programs called by path (`bin_dir / "initdb"`) count, as `pg:initdb`; a path under the venv
  (`VENV_BIN / "ansible-playbook"`) counts as the bare name, which the caller drops with the other commands the
  venv provides (pip installs those, not apt).
Anything else in command position that the scan cannot read is reported as unresolved (the check fails on it),
so a new kind of call cannot slip past.
"""

from __future__ import annotations

import ast
import re
import shlex
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

# bash's builtins and keywords: never a separate program.
SHELL_BUILTINS = frozenset("""
. : [ alias bg bind break builtin caller cd command compgen complete compopt continue declare dirs disown echo
enable eval exec exit export false fc fg getopts hash help history jobs kill let local logout mapfile popd printf
pushd pwd read readarray readonly return set shift shopt source suspend test times trap true type typeset ulimit
umask unalias unset wait
""".split())
SHELL_KEYWORDS = frozenset("if then else elif fi case esac for select while until do done in function time ! { } [[ ]]"
                           .split())
# Keywords after which a command follows.
_LEADING_KEYWORDS = frozenset("if then else elif do while until ! { time".split())
_CLOSING_KEYWORDS = frozenset("fi done esac }".split())

# Files under the scanned folders that run inside the test containers, not on this machine.
IN_CONTAINER = {
    "extensions/molecule/default/snapshot.sh": "Ansible runs it on the test hosts (prepare, check_changed_nothing)",
    "extensions/molecule/custom_layout/debian_cluster_state.sh": "run on the test hosts (prepare, the verifier)",
    "tests/day2/ledger_client.py": "the write ledger's client, on its own container",
}
# Never scanned: data, and the scan's own unit tests (their inventories and argv lists are examples, not calls).
_SKIP_DIRS = ("tests/unit/fixtures", "tests/output")
_SKIP_FILES = frozenset(("tests/unit/install/test_scan_commands.py",))

# Ansible connection plugin -> the program it runs on the controller (None: none, it talks an API or is local).
CONNECTION_COMMANDS: dict[str, Optional[str]] = {
    "ssh": "ssh", "ansible.builtin.ssh": "ssh", "ansible.legacy.ssh": "ssh",
    "community.docker.docker": "docker", "docker": "docker",
    "community.docker.docker_api": None, "local": None, "ansible.builtin.local": None,
    "ansible.builtin.paramiko_ssh": None, "paramiko_ssh": None, "paramiko": None,
}


@dataclass(frozen=True)
class Call:
    """One external command run on this machine: `command` is a name on PATH, an absolute path, or pg:<program>."""

    command: str
    where: str  # path:line


@dataclass(frozen=True)
class Unresolved:
    """A command position the scan cannot read (a new kind of call: teach the scan, or write it readably)."""

    where: str
    text: str


Finding = Union[Call, Unresolved]


# ---------------------------------------------------------------------------------------------------------------
# Shell
# ---------------------------------------------------------------------------------------------------------------

@dataclass
class Word:
    text: str  # quotes removed, expansions kept as written ($X, ${X:-y}, $(...))
    line: int
    literal: bool  # no expansion anywhere in it


@dataclass
class Op:
    text: str
    line: int


Token = Union[Word, Op]


@dataclass
class _Lexed:
    tokens: list[Token] = field(default_factory=list)
    subs: list[tuple[str, int]] = field(default_factory=list)  # command substitutions: (source, first line)


_OPERATORS = ("&>>", ";;&", "<<-", "<<<", "&&", "||", ";;", ";&", "|&", "<<", ">>", "<&", ">&", "&>", ">|", "<>",
              "|", "&", ";", "(", ")", "<", ">")
_REDIRECTIONS = frozenset(("&>>", "<<<", ">>", "<&", ">&", "&>", ">|", "<>", "<", ">"))
_HEREDOCS = frozenset(("<<", "<<-"))
_WORD_END = set(" \t\n;&|()<>")


def _match_paren(src: str, i: int, depth: int = 1) -> int:
    """Index just past the `)` that closes `depth` open parentheses before position i (quotes skipped)."""
    while i < len(src):
        c = src[i]
        if c == "\\":
            i += 2
            continue
        if c == "'":
            end = src.find("'", i + 1)
            i = len(src) if end < 0 else end + 1
            continue
        if c == '"':
            i = _skip_double(src, i + 1)
            continue
        if c == "#" and (i == 0 or src[i - 1] in " \t\n"):
            end = src.find("\n", i)
            i = len(src) if end < 0 else end
            continue
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return i


def _skip_double(src: str, i: int) -> int:
    """Index just past the `"` closing a double-quoted string that starts at i."""
    while i < len(src):
        c = src[i]
        if c == "\\":
            i += 2
            continue
        if c == '"':
            return i + 1
        if src.startswith("$(", i):
            i = _match_paren(src, i + 2)
            continue
        i += 1
    return i


def _match_brace(src: str, i: int) -> int:
    depth = 1
    while i < len(src) and depth:
        if src[i] == "\\":
            i += 1
        elif src[i] == "{":
            depth += 1
        elif src[i] == "}":
            depth -= 1
        i += 1
    return i


def _substitutions(text: str, line: int) -> Iterator[tuple[str, int]]:
    """The command substitutions in a piece of text that is not itself a command ("...", $((...)), ${...})."""
    j = 0
    while j < len(text):
        if text.startswith("$((", j):
            close = _match_paren(text, j + 3, 2)
            yield from _substitutions(text[j + 3:close - 2], line + text.count("\n", 0, j))
            j = close
        elif text.startswith("$(", j):
            close = _match_paren(text, j + 2)
            yield text[j + 2:close - 1], line + text.count("\n", 0, j)
            j = close
        elif text[j] == "`":
            close = text.find("`", j + 1)
            close = len(text) if close < 0 else close
            yield text[j + 1:close], line + text.count("\n", 0, j)
            j = close + 1
        elif text[j] == "\\":
            j += 2
        else:
            j += 1


def lex(src: str, first_line: int = 1) -> _Lexed:
    """Tokens of a shell program: words and operators (newline is the operator "\\n"), comments and heredoc
    bodies left out; command substitutions collected apart (they are scanned as programs of their own)."""
    out = _Lexed()
    i, line, n = 0, first_line, len(src)
    pending_heredocs: list[tuple[str, bool]] = []
    expect_heredoc_word: Optional[bool] = None  # the strip-tabs flag of the heredoc whose delimiter comes next

    def expansion(start: int, start_line: int, inner_from: int, inner_to: int) -> None:
        out.subs.append((src[inner_from:inner_to], start_line + src.count("\n", start, inner_from)))

    while i < n:
        c = src[i]
        if c in " \t":
            i += 1
            continue
        if c == "\\" and src.startswith("\\\n", i):
            i += 2
            line += 1
            continue
        if c == "\n":
            out.tokens.append(Op("\n", line))
            i += 1
            line += 1
            for delim, strip in pending_heredocs:  # skip the bodies: data, not commands
                while i < n:
                    end = src.find("\n", i)
                    end = n if end < 0 else end
                    body_line = src[i:end]
                    i = end + 1
                    line += 1
                    if (body_line.lstrip("\t") if strip else body_line) == delim:
                        break
            pending_heredocs = []
            continue
        if c == "#":
            end = src.find("\n", i)
            i = n if end < 0 else end
            continue
        if c in "<>" and src.startswith("(", i + 1):  # process substitution
            end = _match_paren(src, i + 2)
            expansion(i, line, i + 2, end - 1)
            out.tokens.append(Word(src[i:end], line, False))
            line += src.count("\n", i, end)
            i = end
            continue
        op = next((o for o in _OPERATORS if src.startswith(o, i)), None)
        if op:
            out.tokens.append(Op(op, line))
            i += len(op)
            if op in _HEREDOCS:
                expect_heredoc_word = op == "<<-"
            continue
        # A word.
        start, start_line = i, line
        text: list[str] = []
        literal = True
        while i < n and src[i] not in _WORD_END:
            c = src[i]
            if c == "\\":
                if src.startswith("\\\n", i):
                    i += 2
                    line += 1
                    continue
                text.append(src[i + 1:i + 2])
                i += 2
            elif c == "'":
                end = src.find("'", i + 1)
                end = n if end < 0 else end
                text.append(src[i + 1:end])
                line += src.count("\n", i, end)
                i = end + 1
            elif c == '"':
                end = _skip_double(src, i + 1)
                inner = src[i + 1:end - 1]
                out.subs.extend(_substitutions(inner, line))
                if "$" in inner or "`" in inner:
                    literal = False
                text.append(re.sub(r'\\([$`"\\\n])', r"\1", inner))
                line += src.count("\n", i, end)
                i = end
            elif c == "$" and (src.startswith("$((", i) or src.startswith("${", i)):
                end = _match_paren(src, i + 3, 2) if src[i + 1] == "(" else _match_brace(src, i + 2)
                out.subs.extend(_substitutions(src[i + 2:end - 1], line))
                text.append(src[i:end])
                literal = False
                line += src.count("\n", i, end)
                i = end
            elif c == "$" and src.startswith("$(", i):
                end = _match_paren(src, i + 2)
                expansion(i, line, i + 2, end - 1)
                text.append(src[i:end])
                literal = False
                line += src.count("\n", i, end)
                i = end
            elif c == "$" and i + 1 < n and (src[i + 1].isalnum() or src[i + 1] in "_@*#?$!-"):
                m = re.match(r"\$([A-Za-z_]\w*|.)", src[i:])
                text.append(m.group(0))
                literal = False
                i += len(m.group(0))
            elif c == "`":
                end = src.find("`", i + 1)
                end = n if end < 0 else end
                out.subs.append((src[i + 1:end], line))
                text.append(src[i:end + 1])
                literal = False
                line += src.count("\n", i, end)
                i = end + 1
            elif c == "=" and i + 1 < n and src[i + 1] == "(" and re.fullmatch(r"[A-Za-z_]\w*\+?", "".join(text)):
                end = _match_paren(src, i + 2)  # NAME=(array values): one word
                text.append(src[i:end])
                line += src.count("\n", i, end)
                i = end
            else:
                text.append(c)
                i += 1
        word = Word("".join(text), start_line, literal)
        if expect_heredoc_word is not None:
            pending_heredocs.append((word.text, expect_heredoc_word))
            expect_heredoc_word = None
        elif src[start:i].isdigit() and i < n and src[i] in "<>":
            continue  # a file descriptor number before a redirection (2>&1)
        out.tokens.append(word)  # (a heredoc's delimiter too: the redirection's target)
    return out


_ASSIGNMENT = re.compile(r"^[A-Za-z_]\w*(\[[^]]*\])?\+?=")
_COMMAND_SEPARATORS = frozenset(("\n", ";", "&", "&&", "||", "|", "|&", "(", ")", ";;", ";&", ";;&"))


def simple_commands(tokens: list[Token]) -> tuple[list[list[Word]], set[str]]:
    """The simple commands of a token stream (their words, leading assignments included) and the functions it
    defines. Keywords, for-lists, case patterns, [[ ]] and (( )) are left out."""
    commands: list[list[Word]] = []
    functions: set[str] = set()
    current: list[Word] = []
    state = "cmd"  # cmd: a command may start; args: inside one; for/case_word/case_pattern/cond/arith: skipping
    arith_depth = 0
    i = 0

    def flush() -> None:
        nonlocal current
        if current:
            commands.append(current)
        current = []

    while i < len(tokens):
        tok = tokens[i]
        nxt = tokens[i + 1] if i + 1 < len(tokens) else None
        if state == "arith":
            if isinstance(tok, Op) and tok.text == "(":
                arith_depth += 1
            elif isinstance(tok, Op) and tok.text == ")":
                arith_depth -= 1
                if arith_depth == 0:
                    state = "args"
            i += 1
            continue
        if state == "cond":
            if isinstance(tok, Word) and tok.text == "]]" and tok.literal:
                state = "args"
            i += 1
            continue
        if state == "for":
            if isinstance(tok, Word) and tok.text == "do" and tok.literal:
                state = "cmd"
            i += 1
            continue
        if state == "case_word":
            if isinstance(tok, Word) and tok.text == "in" and tok.literal:
                state = "case_pattern"
            i += 1
            continue
        if state == "case_pattern":
            if isinstance(tok, Word) and tok.text == "esac" and tok.literal:
                state = "args"
            elif isinstance(tok, Op) and tok.text == ")":
                state = "cmd"
            i += 1
            continue
        if isinstance(tok, Op):
            if tok.text in _REDIRECTIONS or tok.text in _HEREDOCS:
                i += 2  # the operator and its target
                continue
            if tok.text in (";;", ";&", ";;&"):
                flush()
                state = "case_pattern"
                i += 1
                continue
            if tok.text == "(" and state == "cmd" and isinstance(nxt, Op) and nxt.text == "(":
                state, arith_depth = "arith", 2
                i += 2
                continue
            if tok.text in _COMMAND_SEPARATORS:
                flush()
                state = "cmd"
            i += 1
            continue
        # A word.
        if state == "cmd" and not current and tok.literal:
            if tok.text in _LEADING_KEYWORDS:
                i += 1
                continue
            if tok.text in _CLOSING_KEYWORDS:
                state = "args"
                i += 1
                continue
            if tok.text in ("for", "select"):
                state = "for"
                i += 1
                continue
            if tok.text == "case":
                state = "case_word"
                i += 1
                continue
            if tok.text == "[[":
                state = "cond"
                i += 1
                continue
            if tok.text == "function" and isinstance(nxt, Word):
                functions.add(nxt.text)
                i += 2
                if i + 1 < len(tokens) and isinstance(tokens[i], Op) and tokens[i].text == "(":
                    i += 2
                continue
            if isinstance(nxt, Op) and nxt.text == "(" and i + 2 < len(tokens) and \
                    isinstance(tokens[i + 2], Op) and tokens[i + 2].text == ")":
                functions.add(tok.text)
                i += 3
                continue
        if state in ("cmd", "args"):
            current.append(tok)
            if state == "cmd" and not _ASSIGNMENT.match(tok.text):
                state = "args"
        i += 1
    flush()
    return commands, functions


# Runners: programs whose arguments hold another command. Per runner: options that take a value, and how many
# plain arguments come before the command.
_RUNNERS: dict[str, tuple[frozenset[str], int]] = {
    "nohup": (frozenset(), 0),
    "exec": (frozenset(("-a",)), 0),
    "time": (frozenset(), 0),
    "setsid": (frozenset(), 0),
    "env": (frozenset(("-u", "--unset", "-C", "--chdir", "-S", "--split-string")), 0),
    "timeout": (frozenset(("-s", "--signal", "-k", "--kill-after")), 1),
    "nice": (frozenset(("-n", "--adjustment")), 0),
    "stdbuf": (frozenset(("-i", "-o", "-e")), 0),
    "xargs": (frozenset(("-I", "-n", "-P", "-L", "-s", "-d", "-E", "-a", "--arg-file", "--delimiter",
                         "--max-args", "--max-procs", "--max-lines", "--max-chars", "--replace")), 0),
    "sudo": (frozenset(("-u", "--user", "-g", "--group", "-C", "-D", "--chdir", "-h", "--host", "-p", "--prompt",
                        "-U", "--other-user", "-r", "--role", "-t", "--type", "-T", "--command-timeout")), 0),
    "runuser": (frozenset(("-u", "--user", "-g", "--group", "-G", "--supp-group", "-s", "--shell", "-w",
                           "--whitelist-environment")), 0),
    "flock": (frozenset(("-w", "--wait", "--timeout", "-E", "--conflict-exit-code")), 1),
    "command": (frozenset(), 0),
    "unshare": (frozenset(("--propagation", "--setgroups", "--map-user", "--map-group", "--map-users",
                           "--map-groups", "-R", "--root", "-w", "--wd", "-S", "--setuid", "-G", "--setgid")), 0),
}
_SHELLS = frozenset(("bash", "sh", "dash"))
_STRING_OPTIONS = {"runuser": ("-c", "--command"), "flock": ("-c", "--command"), "su": ("-c", "--command")}


def command_words(words: list[Union[str, None]]) -> Iterator[tuple[str, Optional[str]]]:
    """(command, shell string) pairs of one simple command's words (assignments already gone; None: a word that is
    not a literal): the command, the command a runner runs, and any program string (`bash -c STRING`) to scan."""
    while words:
        name = words[0]
        if name is None:
            return
        yield name, None
        base = name.rsplit("/", 1)[-1]
        rest = words[1:]
        if base in _SHELLS:
            for k, word in enumerate(rest):
                if word is None or not word.startswith("-"):
                    return
                if "c" in word[1:] and not word.startswith("--") and k + 1 < len(rest) and rest[k + 1] is not None:
                    yield "", rest[k + 1]
                    return
            return
        if base == "trap":
            if rest and rest[0] is not None and rest[0] != "-":
                yield "", rest[0]
            return
        if base == "command" and rest and rest[0] in ("-v", "-V"):
            return  # a probe, not a call
        if base not in _RUNNERS:
            if base in _STRING_OPTIONS:
                for k, word in enumerate(rest[:-1]):
                    if word in _STRING_OPTIONS[base] and rest[k + 1] is not None:
                        yield "", rest[k + 1]
            return
        takes_value, positional = _RUNNERS[base]
        k = 0
        while k < len(rest):
            word = rest[k]
            if word is None:
                return
            if word == "--":
                k += 1
                break
            if base in _STRING_OPTIONS and word in _STRING_OPTIONS[base]:
                if k + 1 < len(rest) and rest[k + 1] is not None:
                    yield "", rest[k + 1]
                return
            if word.startswith("-") and word != "-":
                k += 2 if (word in takes_value and "=" not in word) else 1
                continue
            if base == "env" and "=" in word:
                k += 1
                continue
            break
        k += positional
        words = rest[k:]


@dataclass
class ShellScan:
    """Calls found in one shell program, the functions it defines, its simple literal assignments."""

    calls: list[tuple[str, int]] = field(default_factory=list)  # (command, line)
    dynamic: list[tuple[str, int]] = field(default_factory=list)  # command words with expansions in them
    functions: set[str] = field(default_factory=set)
    assignments: dict[str, list[str]] = field(default_factory=dict)


_DECLARATIONS = frozenset(("local", "export", "declare", "readonly", "typeset"))


def _assign(scan: ShellScan, text: str) -> None:
    name, value = text.split("=", 1)
    scan.assignments.setdefault(name.rstrip("+"), []).append(value)


def scan_shell(src: str, first_line: int = 1, into: Optional[ShellScan] = None) -> ShellScan:
    """Every command word of a shell program, nested programs ($(...), bash -c '...') included."""
    scan = into if into is not None else ShellScan()
    lexed = lex(src, first_line)
    commands, functions = simple_commands(lexed.tokens)
    scan.functions |= functions
    for words in commands:
        k = 0
        while k < len(words) and _ASSIGNMENT.match(words[k].text):
            _assign(scan, words[k].text)
            k += 1
        # `local NAME=value`, `export NAME=value`, `declare ... NAME=value`: assignments as well.
        if k < len(words) and words[k].literal and words[k].text in _DECLARATIONS:
            for word in words[k + 1:]:
                if _ASSIGNMENT.match(word.text):
                    _assign(scan, word.text)
            continue
        if k == len(words):
            continue
        line = words[k].line
        texts = [w.text if w.literal else None for w in words[k:]]
        if texts[0] is None:
            scan.dynamic.append((words[k].text, line))
            texts[0] = _DYNAMIC_MARK + words[k].text
        for command, program in command_words(texts):
            if program is not None:
                scan_shell(program, line, scan)
            else:
                scan.calls.append((command, line))
    for sub, line in lexed.subs:
        scan_shell(sub, line, scan)
    return scan


_DYNAMIC_MARK = "\0"
_VAR_WORD = re.compile(r"^\$\{?([A-Za-z_]\w*)\}?$")
_DEFAULT_VALUE = re.compile(r"^\$\{[A-Za-z_]\w*:?[-=]([^}$`]*)\}$")


def _resolve_variable(word: str, assignments: dict[str, list[str]]) -> Optional[list[str]]:
    """The commands "$NAME" stands for, from NAME's literal values (or ${OTHER:-default} defaults)."""
    m = _VAR_WORD.match(word)
    if not m or m.group(1) not in assignments:
        return None
    found = []
    for value in assignments[m.group(1)]:
        d = _DEFAULT_VALUE.match(value)
        if d:
            value = d.group(1)
        if not value or "$" in value or "`" in value:
            return None
        found.append(value)
    return found


def shell_findings(src: str, path: str, first_line: int = 1) -> list[Finding]:
    """The external commands a shell program calls on this machine, and what the scan could not read."""
    scan = scan_shell(src, first_line)
    found: list[Finding] = []

    def add(command: str, line: int) -> None:
        if command.startswith(_DYNAMIC_MARK):
            word = command[1:]
            values = _resolve_variable(word, scan.assignments)
            if values is not None:
                for value in values:
                    add(value, line)
                return
            if "/" in word:
                return  # a path from a variable: a file this project makes ("$VENV/bin/pip")
            prefix = re.split(r"[$`]", word, maxsplit=1)[0]
            if prefix and any(f.startswith(prefix) for f in scan.functions):
                return  # "stage_$name": one of this file's functions
            found.append(Unresolved(f"{path}:{line}", word))
            return
        if command in SHELL_BUILTINS or command in SHELL_KEYWORDS or command in scan.functions:
            return
        if "/" in command and not command.startswith("/"):
            return  # a file of this project (scripts/x.sh, ./run)
        found.append(Call(command, f"{path}:{line}"))

    for command, line in scan.calls:
        add(command, line)
    return found


def makefile_findings(src: str, path: str) -> list[Finding]:
    """The recipes of a Makefile, as the shell programs make runs (make's own $(VAR) and $$ undone first)."""
    found: list[Finding] = []
    for number, line in enumerate(src.splitlines(), 1):
        if not line.startswith("\t"):
            continue
        recipe = line[1:].lstrip("@-+ ")
        recipe = re.sub(r"\$[({][^)}]*[)}]", "MAKEVAR", recipe.replace("$$", "\0")).replace("\0", "$")
        found += shell_findings(recipe, path, number)
    return found


# ---------------------------------------------------------------------------------------------------------------
# Python
# ---------------------------------------------------------------------------------------------------------------

_SUBPROCESS = frozenset(("run", "Popen", "call", "check_call", "check_output"))
_OS_EXEC = frozenset(("execv", "execve", "execvp", "execvpe", "spawnv", "spawnve", "spawnvp", "spawnvpe"))
_OS_SHELL = frozenset(("system", "popen"))


@dataclass
class _Head:
    """What an argv expression starts with: literal words, or a parameter of the enclosing wrapper function."""

    words: Optional[list[Optional[str]]] = None
    param: Optional[str] = None
    skip: bool = False  # deliberately not a call to check (sys.executable, a shutil.which result)
    unresolved: Optional[str] = None


class _Scope:
    """One function (or the module): its parameters and what its names are bound to."""

    def __init__(self, node: ast.AST, parent: Optional[_Scope]) -> None:
        self.node = node
        self.parent = parent
        self.params: list[str] = []
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = node.args
            self.params = [a.arg for a in [*args.posonlyargs, *args.args]]
            if args.vararg:
                self.params.append("*" + args.vararg.arg)
        self.bindings: dict[str, list[ast.expr]] = {}
        body = node.body if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef)) else []
        for stmt in body:
            for sub in _walk_same_scope(stmt):
                if isinstance(sub, ast.Assign):
                    for target in sub.targets:
                        if isinstance(target, ast.Name):
                            self.bindings.setdefault(target.id, []).append(sub.value)
                elif isinstance(sub, ast.AnnAssign) and isinstance(sub.target, ast.Name) and sub.value:
                    self.bindings.setdefault(sub.target.id, []).append(sub.value)

    def is_param(self, name: str) -> bool:
        return name in self.params or "*" + name in self.params

    def lookup(self, name: str) -> Optional[tuple[list[ast.expr], _Scope]]:
        scope: Optional[_Scope] = self
        while scope is not None:
            if name in scope.bindings:
                return scope.bindings[name], scope
            scope = scope.parent
        return None


def _walk_same_scope(node: ast.AST) -> Iterator[ast.AST]:
    """ast.walk without descending into nested functions, classes and lambdas."""
    yield node
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            continue
        yield from _walk_same_scope(child)


def _call_name(func: ast.expr) -> Optional[str]:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def _dotted(func: ast.expr) -> str:
    try:
        return ast.unparse(func)
    except Exception:  # noqa: BLE001 - only for messages
        return "?"


@dataclass
class _PyFile:
    path: str
    tree: ast.Module
    scopes: dict[ast.AST, _Scope] = field(default_factory=dict)
    from_subprocess: set[str] = field(default_factory=set)  # names imported from subprocess (run, Popen...)


# An f-string argument (`sh -c f"mount ... && exec {venv_program} ..."`) is read with each {value} replaced by this
# path-like word: in command position it is a path the harness builds at run time, which does not count (as
# "$VENV/bin/x" in shell); the program an f-string itself names is unresolved.
_VALUE = "$PGREPL_PYTHON_VALUE/"


def _template(expr: ast.JoinedStr) -> str:
    return "".join(v.value if isinstance(v, ast.Constant) else _VALUE for v in expr.values)


def _path_program(expr: ast.BinOp) -> _Head:
    """`base / "name"` (or base.with_name("name")): a PostgreSQL server program (pg:name), a program of the venv
    (next to sys.executable, or under a VENV path: the bare name), else unresolved."""
    name = expr.right.value if isinstance(expr.right, ast.Constant) else None
    base = _dotted(expr.left)
    if isinstance(name, str):
        if "bin_dir" in base:
            return _Head(words=["pg:" + name])
        if "venv" in base.lower() or "sys.executable" in base:
            return _Head(words=[name])
    return _Head(unresolved=_dotted(expr))


class _PythonScanner:
    def __init__(self) -> None:
        self.files: list[_PyFile] = []
        self.functions: dict[str, list[tuple[ast.FunctionDef, _PyFile]]] = {}
        self.findings: list[Finding] = []
        # wrapper function name -> positions of its parameters that reach argv (index, or "*" for *args)
        self.wrappers: dict[str, set[Union[int, str]]] = {}

    def add(self, src: str, path: str) -> None:
        tree = ast.parse(src, filename=path)
        pyfile = _PyFile(path, tree)
        pyfile.scopes[tree] = _Scope(tree, None)

        def visit(node: ast.AST, scope: _Scope) -> None:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    inner = _Scope(child, scope)
                    pyfile.scopes[child] = inner
                    self.functions.setdefault(child.name, []).append((child, pyfile))  # type: ignore[arg-type]
                    visit(child, inner)
                else:
                    visit(child, scope)

        visit(tree, pyfile.scopes[tree])
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "subprocess":
                pyfile.from_subprocess |= {a.asname or a.name for a in node.names if a.name in _SUBPROCESS}
        self.files.append(pyfile)

    # --- argv expressions -------------------------------------------------------------------------------------

    def heads(self, expr: ast.expr, scope: _Scope, where: str, depth: int = 0) -> Iterator[_Head]:
        if depth > 8:
            yield _Head(unresolved=_dotted(expr))
            return
        if isinstance(expr, (ast.List, ast.Tuple)):
            if not expr.elts:
                return
            first = expr.elts[0]
            if isinstance(first, ast.Starred):
                yield from self.heads(first.value, scope, where, depth + 1)
                return
            literal: list[Optional[str]] = []
            for n, elt in enumerate(expr.elts):
                if isinstance(elt, ast.Constant) and isinstance(elt.value, str):
                    literal.append(elt.value)
                elif n and isinstance(elt, ast.JoinedStr):
                    literal.append(_template(elt))
                else:
                    literal.append(None)
            if literal[0] is not None:
                yield _Head(words=literal)
                return
            for head in self.element(first, scope, where, depth + 1):
                if head.words is not None:
                    head = _Head(words=head.words[:1] + literal[1:])
                yield head
            return
        if isinstance(expr, ast.Name):
            if scope.is_param(expr.id):
                yield _Head(param=expr.id)
            found = scope.lookup(expr.id)
            if found is not None:
                values, where_scope = found
                for value in values:
                    yield from self.heads(value, where_scope, where, depth + 1)
            elif not scope.is_param(expr.id):
                yield _Head(unresolved=expr.id)
            return
        if isinstance(expr, ast.IfExp):
            yield from self.heads(expr.body, scope, where, depth + 1)
            yield from self.heads(expr.orelse, scope, where, depth + 1)
            return
        if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Add):
            yield from self.heads(expr.left, scope, where, depth + 1)
            return
        if isinstance(expr, ast.Call):
            name = _call_name(expr.func)
            if name == "split" and _dotted(expr.func) == "shlex.split" and expr.args and \
                    isinstance(expr.args[0], ast.Constant) and isinstance(expr.args[0].value, str):
                yield _Head(words=list(shlex.split(expr.args[0].value)))
                return
            if name == "list" and expr.args:
                yield from self.heads(expr.args[0], scope, where, depth + 1)
                return
            if name in self.functions:  # a function that builds argv: what it returns, its parameters bound here
                for func, pyfile in self.functions[name]:
                    inner = pyfile.scopes[func]
                    for node in _walk_same_scope(func):
                        if isinstance(node, ast.Return) and node.value is not None:
                            for head in self.heads(node.value, inner, where, depth + 1):
                                if head.param is not None:
                                    arg = self._argument(expr, inner, head.param)
                                    if arg is not None:
                                        yield from self.heads(arg, scope, where, depth + 1)
                                else:
                                    yield head
                return
        yield _Head(unresolved=_dotted(expr))

    def element(self, expr: ast.expr, scope: _Scope, where: str, depth: int) -> Iterator[_Head]:
        """The program an argv element names, when it is not a string literal."""
        if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
            yield _Head(words=[expr.value])
        elif isinstance(expr, ast.Call) and _call_name(expr.func) == "str" and len(expr.args) == 1:
            yield from self.element(expr.args[0], scope, where, depth + 1)
        elif isinstance(expr, ast.Call) and _dotted(expr.func) == "shutil.which":
            yield _Head(skip=True)  # found at run time; its fallback (x or "name") is a word of its own
        elif isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Div):
            yield _path_program(expr)
        elif isinstance(expr, ast.Attribute) and _dotted(expr) == "sys.executable":
            yield _Head(skip=True)
        elif isinstance(expr, ast.BoolOp):
            for value in expr.values:
                yield from self.element(value, scope, where, depth + 1)
        elif isinstance(expr, ast.IfExp):
            yield from self.element(expr.body, scope, where, depth + 1)
            yield from self.element(expr.orelse, scope, where, depth + 1)
        elif isinstance(expr, ast.Call) and isinstance(expr.func, ast.Attribute) and expr.func.attr == "with_name" \
                and len(expr.args) == 1:
            yield _path_program(ast.BinOp(left=expr.func.value, op=ast.Div(), right=expr.args[0]))
        elif isinstance(expr, ast.Name) and depth < 8:
            if scope.is_param(expr.id):
                yield _Head(param=expr.id)
                return
            found = scope.lookup(expr.id)
            if found is None:
                yield _Head(unresolved=expr.id)
                return
            values, where_scope = found
            for value in values:
                yield from self.element(value, where_scope, where, depth + 1)
        else:
            yield _Head(unresolved=_dotted(expr))

    @staticmethod
    def _argument(call: ast.Call, func_scope: _Scope, param: str) -> Optional[ast.expr]:
        """The argument of `call` bound to the function's parameter `param`."""
        params = [p.lstrip("*") for p in func_scope.params]
        if isinstance(func_scope.node, (ast.FunctionDef, ast.AsyncFunctionDef)) and params[:1] in (["self"], ["cls"]) \
                and isinstance(call.func, ast.Attribute):
            params = params[1:]
        for kw in call.keywords:
            if kw.arg == param:
                return kw.value
        if param in params:
            index = params.index(param)
            if "*" + param in func_scope.params:
                return ast.List(elts=call.args[index:], ctx=ast.Load())
            if index < len(call.args):
                return call.args[index]
        return None

    # --- sinks ------------------------------------------------------------------------------------------------

    def _sink(self, call: ast.Call, pyfile: _PyFile) -> Optional[str]:
        """'argv' or 'shell' when this call runs a program, else None."""
        func = call.func
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            if func.value.id == "subprocess" and func.attr in _SUBPROCESS:
                return self._shell_or_argv(call)
            if func.value.id == "os" and func.attr in _OS_EXEC:
                return "exec"
            if func.value.id == "os" and func.attr in _OS_SHELL:
                return "shell"
            if func.value.id == "asyncio" and func.attr == "create_subprocess_exec":
                return "exec"
            if func.value.id == "asyncio" and func.attr == "create_subprocess_shell":
                return "shell"
        if isinstance(func, ast.Name) and func.id in pyfile.from_subprocess:
            return self._shell_or_argv(call)
        return None

    @staticmethod
    def _shell_or_argv(call: ast.Call) -> str:
        for kw in call.keywords:
            if kw.arg == "shell" and not (isinstance(kw.value, ast.Constant) and kw.value.value is False):
                return "shell"
        return "argv"

    def _record(self, head: _Head, where: str) -> Optional[str]:
        """Findings of one resolved head; returns the parameter name when the head is a wrapper's parameter."""
        if head.skip:
            return None
        if head.unresolved is not None:
            self.findings.append(Unresolved(where, head.unresolved))
            return None
        if head.param is not None:
            return head.param
        assert head.words is not None
        for command, program in command_words(head.words):
            if program is not None:
                self.findings += shell_findings(program, where.rsplit(":", 1)[0], int(where.rsplit(":", 1)[1]))
            elif command.startswith("pg:") or command.startswith("/") or "/" not in command:
                if command not in SHELL_BUILTINS:
                    self.findings.append(Call(command, where))
        return None

    def _argv_expr(self, call: ast.Call, kind: str) -> Optional[ast.expr]:
        if kind == "exec":
            # os.execvp(file, args) / os.spawnvp(mode, file, args): the program is the file argument
            name = _call_name(call.func) or ""
            index = 1 if name.startswith("spawn") else 0
            if name == "create_subprocess_exec":
                return ast.List(elts=list(call.args), ctx=ast.Load())
            return ast.List(elts=[call.args[index]], ctx=ast.Load()) if len(call.args) > index else None
        if call.args:
            return call.args[0]
        for kw in call.keywords:
            if kw.arg == "args":
                return kw.value
        return None

    def scan(self) -> list[Finding]:
        # Wrappers first (a function passing a parameter to a sink), to a fixed point (wrappers of wrappers).
        sites: list[tuple[ast.Call, _PyFile, _Scope, str]] = []  # (call, file, scope, kind)
        for pyfile in self.files:
            for func_node, scope in pyfile.scopes.items():
                for node in _walk_same_scope(func_node):
                    if isinstance(node, ast.Call):
                        kind = self._sink(node, pyfile)
                        if kind is not None:
                            sites.append((node, pyfile, scope, kind))
        changed = True
        while changed:
            changed = False
            for pyfile in self.files:
                for func_node, scope in pyfile.scopes.items():
                    if not isinstance(func_node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                        continue
                    for node in _walk_same_scope(func_node):
                        if not isinstance(node, ast.Call):
                            continue
                        kind = self._sink(node, pyfile)
                        expr = None
                        if kind == "argv" or kind == "exec":
                            expr = self._argv_expr(node, kind)
                        elif kind is None and self._wrapper_call(node):
                            expr = self._wrapped_argument(node)
                        if expr is None:
                            continue
                        for head in self.heads(expr, scope, ""):
                            if head.param is not None:
                                slot = self._param_slot(scope, head.param)
                                known = self.wrappers.setdefault(func_node.name, set())
                                if slot is not None and slot not in known:
                                    known.add(slot)
                                    changed = True
        # Then every sink and every wrapper call, resolved where it is.
        for pyfile in self.files:
            for func_node, scope in pyfile.scopes.items():
                for node in _walk_same_scope(func_node):
                    if not isinstance(node, ast.Call):
                        continue
                    where = f"{pyfile.path}:{node.lineno}"
                    kind = self._sink(node, pyfile)
                    if kind == "shell":
                        arg = node.args[0] if node.args else None
                        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                            self.findings += shell_findings(arg.value, pyfile.path, node.lineno)
                        else:
                            self.findings.append(Unresolved(where, _dotted(node)))
                        continue
                    if kind in ("argv", "exec"):
                        expr = self._argv_expr(node, kind)
                    elif self._wrapper_call(node):
                        expr = self._wrapped_argument(node)
                    else:
                        continue
                    if expr is None:
                        continue
                    for head in self.heads(expr, scope, where):
                        param = self._record(head, where)
                        if param is not None and not (
                                isinstance(func_node, (ast.FunctionDef, ast.AsyncFunctionDef))
                                and func_node.name in self.wrappers):
                            self.findings.append(Unresolved(where, param))
        self._connections()
        return self.findings

    def _wrapper_call(self, call: ast.Call) -> bool:
        """A call of a wrapper: by its name (defined or imported here), or as a method of self/cls; never
        another object's method of the same name (testinfra's host.run runs in the container)."""
        func = call.func
        if isinstance(func, ast.Name):
            return func.id in self.wrappers
        return isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) \
            and func.value.id in ("self", "cls") and func.attr in self.wrappers

    def _wrapped_argument(self, call: ast.Call) -> Optional[ast.expr]:
        name = _call_name(call.func)
        for slot in self.wrappers.get(name or "", ()):
            if slot == "*":
                return ast.List(elts=list(call.args), ctx=ast.Load())
            if isinstance(slot, int) and slot < len(call.args):
                return call.args[slot]
        return None

    @staticmethod
    def _param_slot(scope: _Scope, param: str) -> Optional[Union[int, str]]:
        if "*" + param in scope.params:
            return "*"
        params = scope.params
        if params[:1] in (["self"], ["cls"]):
            params = params[1:]
        return params.index(param) if param in params else None

    def _connections(self) -> None:
        for pyfile in self.files:
            for node in ast.walk(pyfile.tree):
                if isinstance(node, ast.Dict):
                    for key, value in zip(node.keys, node.values):
                        if isinstance(key, ast.Constant) and key.value == "ansible_connection":
                            where = f"{pyfile.path}:{node.lineno}"
                            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                                self.findings += connection_findings(value.value, where)
                            else:
                                self.findings.append(Unresolved(where, "ansible_connection: " + _dotted(value)))


def python_findings(sources: Iterable[tuple[str, str]]) -> list[Finding]:
    """The external commands a set of Python files runs on this machine: (source, path) pairs, scanned together so
    that a wrapper defined in one is resolved at its calls in the others."""
    scanner = _PythonScanner()
    for src, path in sources:
        scanner.add(src, path)
    return scanner.scan()


# ---------------------------------------------------------------------------------------------------------------
# Ansible (Molecule's playbooks and inventories)
# ---------------------------------------------------------------------------------------------------------------

def connection_findings(connection: str, where: str) -> list[Finding]:
    if "{{" in connection:
        return [Unresolved(where, "ansible_connection: " + connection)]
    if connection not in CONNECTION_COMMANDS:
        return [Unresolved(where, f"ansible_connection: {connection} (which program does it run?)")]
    command = CONNECTION_COMMANDS[connection]
    return [Call(command, where)] if command else []


_COMMAND_MODULES = {"command": "argv", "ansible.builtin.command": "argv", "ansible.legacy.command": "argv",
                    "shell": "shell", "ansible.builtin.shell": "shell", "ansible.legacy.shell": "shell",
                    "raw": "shell", "ansible.builtin.raw": "shell"}
_TASK_LISTS = ("tasks", "pre_tasks", "post_tasks", "handlers", "block", "rescue", "always")
_LOCAL = frozenset(("localhost", "127.0.0.1"))


def _line_of(node: Any) -> int:
    return getattr(node, "line", 0)


def ansible_findings(data: Any, path: str) -> list[Finding]:
    """Commands of plays on localhost (and tasks delegated to it) and the connections an inventory or
    molecule.yml names. `data` is the parsed YAML document (mappings may carry a `line` attribute)."""
    found: list[Finding] = []

    def tasks(items: Any, local: bool) -> None:
        for task in items or []:
            if not isinstance(task, dict):
                continue
            here = local or task.get("delegate_to") in _LOCAL or task.get("connection") == "local"
            for key in _TASK_LISTS:
                if key in task:
                    tasks(task[key], here)
            if not here:
                continue
            where = f"{path}:{_line_of(task)}"
            for module, kind in _COMMAND_MODULES.items():
                if module not in task:
                    continue
                args = task[module]
                argv = args.get("argv") if isinstance(args, dict) else None
                cmd = args.get("cmd") if isinstance(args, dict) else args
                if isinstance(argv, list) and argv:
                    words = [None if "{{" in str(w) else str(w) for w in argv]
                    _ansible_words(words, where, found)
                elif isinstance(cmd, str):
                    if kind == "shell":
                        found.extend(shell_findings(cmd, path, _line_of(task)))
                    else:
                        try:
                            words = [None if "{{" in w else w for w in shlex.split(cmd)]
                        except ValueError:
                            found.append(Unresolved(where, cmd))
                            continue
                        _ansible_words(words, where, found)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "ansible_connection" and isinstance(value, str):
                    found.extend(connection_findings(value, f"{path}:{_line_of(node)}"))
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    if isinstance(data, list):
        for play in data:
            if isinstance(play, dict) and "hosts" in play:
                local = play.get("hosts") in _LOCAL or play.get("connection") == "local"
                for key in _TASK_LISTS:
                    tasks(play.get(key), local)
    walk(data)
    return found


def _ansible_words(words: list[Optional[str]], where: str, found: list[Finding]) -> None:
    if words[0] is None:
        found.append(Unresolved(where, "a templated command"))
        return
    for command, program in command_words(words):
        if program is not None:
            path, line = where.rsplit(":", 1)
            found.extend(shell_findings(program, path, int(line)))
        elif command not in SHELL_BUILTINS and ("/" not in command or command.startswith("/")):
            found.append(Call(command, where))


# ---------------------------------------------------------------------------------------------------------------
# The project's files
# ---------------------------------------------------------------------------------------------------------------

def _yaml_load(text: str) -> Any:
    """YAML with line numbers on mappings; Ansible's tags (!unsafe, !vault) read as plain values."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    class LineDict(dict):
        line = 0

    def mapping(loader: Loader, node: yaml.MappingNode) -> LineDict:
        value = LineDict(loader.construct_mapping(node, deep=True))
        value.line = node.start_mark.line + 1
        return value

    def tagged(loader: Loader, suffix: str, node: yaml.Node) -> Any:
        if isinstance(node, yaml.ScalarNode):
            return loader.construct_scalar(node)
        if isinstance(node, yaml.SequenceNode):
            return loader.construct_sequence(node, deep=True)
        return loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    Loader.add_multi_constructor("!", tagged)
    return yaml.load(text, Loader=Loader)  # noqa: S506 - a SafeLoader subclass


def project_files(root: Path) -> dict[str, list[Path]]:
    """What the scan reads, by kind: shell programs, Python files, Molecule YAML, the Makefile."""
    def rel(p: Path) -> str:
        return p.relative_to(root).as_posix()

    def keep(p: Path) -> bool:
        r = rel(p)
        return p.is_file() and r not in IN_CONTAINER and r not in _SKIP_FILES \
            and not any(r.startswith(d + "/") for d in _SKIP_DIRS) \
            and "__pycache__" not in p.parts

    shell = [p for p in [*root.glob("scripts/**/*.sh"), *root.glob("tests/**/*.sh"),
                         *root.glob("extensions/molecule/**/*.sh"), root / ".ci/run"] if keep(p)]
    python = [p for p in [*root.glob("scripts/**/*.py"), *root.glob("tests/**/*.py"),
                          *root.glob("extensions/molecule/**/*.py")] if keep(p)]
    yaml_files = [p for p in [*root.glob("extensions/molecule/**/*.yml"), *root.glob("extensions/molecule/**/*.yaml")]
                  if keep(p)]
    makefile = [p for p in [root / "Makefile"] if keep(p)]
    return {"shell": sorted(shell), "python": sorted(python), "yaml": sorted(yaml_files), "make": makefile}


def scan_project(root: Path) -> list[Finding]:
    """Every external command that the project's scripts, image builds and test harnesses run on this machine."""
    files = project_files(root)
    found: list[Finding] = []
    for path in files["shell"]:
        found += shell_findings(path.read_text(), path.relative_to(root).as_posix())
    for path in files["make"]:
        found += makefile_findings(path.read_text(), path.relative_to(root).as_posix())
    found += python_findings((p.read_text(), p.relative_to(root).as_posix()) for p in files["python"])
    for path in files["yaml"]:
        found += ansible_findings(_yaml_load(path.read_text()), path.relative_to(root).as_posix())
    return found
