# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Docs that cannot drift: the reference parts of the Markdown docs are written from the plugins' own documentation
and the roles' meta/argument_specs.yml, and every YAML example is parsed and checked.

    python scripts/docs.py           write the generated parts, then check everything
    python scripts/docs.py --check   change nothing; fail listing every stale file and every bad example

Generated parts sit between marker comments; everything outside them is hand-written and stays as it is:

    <!-- BEGIN GENERATED: <part> [arguments] -->  ...  <!-- END GENERATED: <part> -->

Parts of a plugin page (docs/modules/<name>.md for a module, docs/<type>s/<name>.md for a filter or another
plugin type; the page's path names its plugin): synopsis, options, attributes, examples, return. A page must
hold each of them once; a missing page is created with all of them. Parts anywhere in README.md, docs/ and
roles/*/README.md: module-table (one line per module, from short_description), plugin-table <type>,
role-variables <role>[.<entry point>] ... (from meta/argument_specs.yml). Each role's README holds a
role-variables part for its role.

Checks (also in write mode): every ```yaml block of those files and every plugin's EXAMPLES parse (duplicate
keys refused); every task in them names its module by FQCN, and its options are validated against the module's
argument spec (this collection's modules: the spec their main() builds, imported; other modules: their
documented options), with Ansible's own validator; a Jinja expression stands in for any type. Role defaults in
meta/argument_specs.yml agree with defaults/main.yml (of the role or a role it imports), and every variable of a
defaults/main.yml is documented in an argument spec. The plugins' markup must render as written.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import inspect
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable
from unittest import mock

import yaml

ROOT = Path(__file__).resolve().parent.parent
GENERATED_FILES_GLOBS = ("README.md", "docs/*.md", "docs/*/*.md", "roles/*/README.md")
PLUGIN_PARTS = ("synopsis", "options", "attributes", "examples", "return")
MARKER = re.compile(r"<!-- BEGIN GENERATED: (?P<part>[\w-]+)(?P<args>(?: [\w.-]+)*)(?:;[^>]*)? -->\n"
                    r"(?P<body>.*?)"
                    r"<!-- END GENERATED: (?P=part) -->", re.S)
ANY_MARKER = re.compile(r"<!-- (?:BEGIN|END) GENERATED:[^>]*-->")
FENCE = re.compile(r"^```(?P<lang>[\w-]*)[^\n]*\n(?P<body>.*?)^```[ \t]*$", re.S | re.M)


# --- The collection -----------------------------------------------------------------------------------------

def collection_name(root: Path = ROOT) -> tuple[str, str]:
    galaxy = yaml.safe_load((root / "galaxy.yml").read_text())
    return galaxy["namespace"], galaxy["name"]


@dataclass
class Collection:
    """This checkout as Ansible sees it: a private ansible_collections/<ns>/<name> link to it, so that
    ansible-doc and imports read exactly these files whatever ANSIBLE_COLLECTIONS_PATH says."""

    root: Path
    namespace: str
    name: str
    path: Path  # the directory that holds ansible_collections/

    @property
    def fqcn(self) -> str:
        return f"{self.namespace}.{self.name}"

    def env(self) -> dict[str, str]:
        env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(self.path), ANSIBLE_NOCOLOR="1",
                   PYTHONWARNINGS="ignore")
        env.setdefault("ANSIBLE_HOME", str(self.path / "ansible-home"))
        return env


def open_collection(root: Path, tmp: Path) -> Collection:
    namespace, name = collection_name(root)
    link = tmp / "ansible_collections" / namespace / name
    link.parent.mkdir(parents=True)
    link.symlink_to(root, target_is_directory=True)
    if str(tmp) not in sys.path:
        sys.path.insert(0, str(tmp))
    return Collection(root, namespace, name, tmp)


def ansible_doc(coll: Collection, *args: str) -> Any:
    exe = Path(sys.executable).with_name("ansible-doc")
    cmd = [str(exe) if exe.exists() else "ansible-doc", *args]
    proc = subprocess.run(cmd, env=coll.env(), capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed (rc {proc.returncode}):\n{proc.stderr.strip()}")
    return json.loads(proc.stdout)


@dataclass
class Plugin:
    type: str
    fqcn: str
    doc: dict[str, Any]
    examples: str
    returns: dict[str, Any]
    own_options: list[str] = field(default_factory=list)  # in the order the plugin's own DOCUMENTATION has them
    fragments: list[str] = field(default_factory=list)  # its extends_documentation_fragment

    @property
    def name(self) -> str:
        return self.fqcn.rsplit(".", 1)[1]


def own_documentation(path: Path) -> dict[str, Any]:
    """The DOCUMENTATION a plugin file writes itself (without doc fragments), to keep its option order."""
    if path.suffix in (".yml", ".yaml"):
        return (yaml.safe_load(path.read_text()) or {}).get("DOCUMENTATION") or {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "DOCUMENTATION" for t in node.targets):
            return yaml.safe_load(ast.literal_eval(node.value)) or {}
    return {}


def load_plugins(coll: Collection) -> tuple[dict[str, dict[str, Plugin]], set[tuple[str, str]], list[str]]:
    """Every plugin of the collection with documentation, by type, from one ansible-doc --metadata-dump; and the
    (type, name) of those whose documentation ansible-doc cannot read."""
    dump = ansible_doc(coll, "--metadata-dump", "--no-fail-on-errors", coll.fqcn)["all"]
    plugins: dict[str, dict[str, Plugin]] = {}
    unreadable: set[tuple[str, str]] = set()
    problems = []
    for ptype, entries in sorted(dump.items()):
        if ptype in ("keyword", "role"):
            continue  # roles are read from their argument_specs.yml below
        for fqcn, entry in sorted(entries.items()):
            if not fqcn.startswith(coll.fqcn + "."):
                continue
            if "error" in entry or not entry.get("doc"):
                problems.append(f"{ptype} {fqcn}: ansible-doc cannot read its documentation: "
                                f"{entry.get('error', 'no DOCUMENTATION')}")
                unreadable.add((ptype, fqcn.rsplit(".", 1)[1]))
                continue
            doc = entry["doc"]
            plugin = Plugin(ptype, fqcn, doc, entry.get("examples") or "", entry.get("return") or {})
            source = Path(doc.get("filename", ""))
            local = coll.root / source.relative_to(coll.path / "ansible_collections" / coll.namespace / coll.name) \
                if source.is_relative_to(coll.path) else source
            if local.is_file():
                own = own_documentation(local)
                plugin.own_options = list(own.get("options") or {})
                plugin.fragments = paragraphs(own.get("extends_documentation_fragment"))
            plugins.setdefault(ptype, {})[plugin.name] = plugin
    return plugins, unreadable, problems


def fragment_options(coll: Collection, fragment: str) -> list[str]:
    """Option names a doc fragment of this collection contributes (pgrepl.streaming.connection[.VARIABLE])."""
    parts = fragment.split(".")
    if parts[:2] != [coll.namespace, coll.name] or len(parts) < 3:
        return []
    path = coll.root / "plugins" / "doc_fragments" / f"{parts[2]}.py"
    if not path.is_file():
        return []
    wanted = parts[3].upper() if len(parts) > 3 else "DOCUMENTATION"
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == wanted for t in node.targets):
            return list((yaml.safe_load(ast.literal_eval(node.value)) or {}).get("options") or {})
    return []


# --- Ansible markup to Markdown -----------------------------------------------------------------------------

_MARKUP = re.compile(r"\b(?:(RV|[CIBMUOVEPLR])\(|(HORIZONTALLINE)\b)")
_ESCAPED_ARGS = {"O", "V", "RV", "E", "P"}  # ansible-doc's semantic markup: \) and \\ are escapes in these


@dataclass
class Context:
    """Where a piece of markup is rendered: which plugin, and how to link this collection's other pages."""

    coll_fqcn: str
    page: Path | None  # the Markdown file written (links are made relative to it)
    root: Path
    where: str = ""
    problems: list[str] = field(default_factory=list)

    def link(self, fqcn: str, ptype: str) -> str | None:
        if self.page is None or not fqcn.startswith(self.coll_fqcn + "."):
            return None
        target = self.root / plugin_page(ptype, fqcn.rsplit(".", 1)[1])
        return os.path.relpath(target, self.page.parent)


def code(text: str) -> str:
    return f"`` {text} ``" if "`" in text else f"`{text}`"


def _args(text: str, start: int, count: int, escaped: bool) -> tuple[list[str], int]:
    """Arguments of a markup command after its '(' (ansible-doc's rules: the first ')' ends it, except that
    O() V() RV() E() P() take backslash escapes); -1 when unterminated."""
    args: list[str] = []
    current: list[str] = []
    i = start
    while i < len(text):
        char = text[i]
        if escaped and char == "\\" and i + 1 < len(text):
            current.append(text[i + 1])
            i += 2
            continue
        if char == "," and len(args) < count - 1:
            args.append("".join(current).strip())
            current = []
        elif char == ")":
            args.append("".join(current) if count == 1 else "".join(current).strip())
            return args, i + 1
        else:
            current.append(char)
        i += 1
    return args, -1


def _plain(text: str) -> str:
    # Only what Markdown would swallow: an HTML-looking tag.
    return re.sub(r"<(?=[A-Za-z/!])", "&lt;", text)


def markdown(text: str, ctx: Context) -> str:
    """One paragraph of Ansible markup (C() O() V() RV() E() I() B() M() P() U() L() R()) as Markdown."""
    out: list[str] = []
    pos = 0
    for match in _MARKUP.finditer(text):
        if match.start() < pos:
            continue
        out.append(_plain(text[pos:match.start()]))
        if match.group(2):
            out.append(" ")
            pos = match.end()
            continue
        cmd = match.group(1)
        count = 2 if cmd in ("L", "R") else 1
        args, end = _args(text, match.end(), count, cmd in _ESCAPED_ARGS)
        if end < 0 or len(args) != count:
            ctx.problems.append(f"{ctx.where}: {cmd}( is not closed in {text[match.start():match.start() + 60]!r}")
            out.append(_plain(text[match.start():]))
            pos = len(text)
            break
        value = args[0]
        if cmd == "C" and "(" in value:
            ctx.problems.append(f"{ctx.where}: C({value}) ends at its first ')' (ansible-doc shows "
                                f"{value}' followed by ')'): write the code without parentheses inside C()")
        if cmd in ("C", "V", "E"):
            out.append(code(value))
        elif cmd in ("O", "RV"):
            # O(fqcn#type:option) names another plugin's option: show the option.
            out.append(code(value.split(":", 1)[1] if "#" in value.split(":", 1)[0] else value))
        elif cmd == "I":
            out.append(f"*{value}*")
        elif cmd == "B":
            out.append(f"**{value}**")
        elif cmd in ("M", "P"):
            fqcn, ptype = (value.split("#", 1) + [""])[:2]
            target = ctx.link(fqcn, ptype or "module")
            out.append(f"[{code(fqcn)}]({target})" if target else code(fqcn))
        elif cmd == "U":
            out.append(f"<{value}>")
        elif cmd == "L":
            out.append(f"[{value}]({args[1]})")
        else:  # R(text, reference): a docsite reference, nothing to link here
            out.append(value)
        pos = end
    out.append(_plain(text[pos:]))
    return "".join(out)


def paragraphs(value: Any) -> list[str]:
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", "<br>")


def shown(value: Any) -> str:
    """A default or sample value in a table cell: JSON, so that "" and "5432" differ from nothing and 5432."""
    return code(json.dumps(value, ensure_ascii=False))


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(["---"] * len(header)) + " |"]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


# --- Plugin pages ---------------------------------------------------------------------------------------------

def plugin_page(ptype: str, name: str) -> Path:
    return Path("docs") / f"{ptype}s" / f"{name}.md"


def type_of(spec: dict[str, Any]) -> str:
    kind = str(spec.get("type", "str"))
    return f"{kind} / elements={spec['elements']}" if spec.get("elements") else kind


def option_rows(options: dict[str, Any], order: list[str], ctx: Context, prefix: str = "") -> list[list[str]]:
    rows = []
    for name in order:
        spec = options[name]
        text = [markdown(p, ctx) for p in paragraphs(spec.get("description"))]
        if spec.get("choices"):
            choices = spec["choices"]
            listed = choices if isinstance(choices, list) else list(choices)
            text.append("Choices: " + ", ".join(code(json.dumps(c, ensure_ascii=False)) for c in listed) + ".")
        if spec.get("aliases"):
            text.append("Aliases: " + ", ".join(code(a) for a in spec["aliases"]) + ".")
        if spec.get("version_added") and str(spec["version_added"]) != "0.1.0":
            text.append(f"Added in {spec['version_added']}.")
        if spec.get("required"):
            default = "required"
        elif "default" in spec and spec["default"] is not None:
            default = shown(spec["default"])
        else:
            default = ""
        full = prefix + name
        rows.append([code(full), type_of(spec), default, "<br><br>".join(text)])
        subs = spec.get("suboptions") or spec.get("options")
        if isinstance(subs, dict) and subs:
            sep = "[]." if spec.get("type") == "list" else "."
            rows += option_rows(subs, list(subs), ctx, full + sep)
    return rows


def render_synopsis(plugin: Plugin, ctx: Context) -> str:
    doc = plugin.doc
    lines = [f"*{cell(markdown(str(doc.get('short_description', '')), ctx))}*", ""]
    for text in paragraphs(doc.get("description")):
        lines += [markdown(text, ctx), ""]
    if doc.get("requirements"):
        lines += ["Requirements:", ""] + [f"- {markdown(r, ctx)}" for r in paragraphs(doc["requirements"])] + [""]
    if plugin.type == "filter" and doc.get("positional"):
        lines += [f"Use: {code(usage(plugin))}", ""]
    return "\n".join(lines)


def usage(plugin: Plugin) -> str:
    positional = [p.strip() for p in str(plugin.doc.get("positional", "")).split(",") if p.strip()]
    rest = [p for p in positional if p != "_input"]
    return f"{'input' if '_input' in positional else ''} | {plugin.fqcn}({', '.join(rest)})".strip()


def render_options(plugin: Plugin, ctx: Context, coll: Collection) -> str:
    options: dict[str, Any] = plugin.doc.get("options") or {}
    if not options:
        return "None.\n"
    own = [o for o in plugin.own_options if o in options]
    out = []
    if own:
        out.append(table(["option", "type", "default", "description"], option_rows(options, own, ctx)))
    shared = [o for o in options if o not in own]
    for fragment in plugin.fragments:
        names = [o for o in fragment_options(coll, fragment) if o in shared]
        if names:
            out.append(f"Shared options, from the doc fragment {code(fragment)} "
                       f"(the same in every module that uses it):\n")
            out.append(table(["option", "type", "default", "description"], option_rows(options, names, ctx)))
            shared = [o for o in shared if o not in names]
    if shared:
        if out:
            out.append("Options from other doc fragments:\n")
        out.append(table(["option", "type", "default", "description"], option_rows(options, sorted(shared), ctx)))
    return "\n".join(out)


def render_attributes(plugin: Plugin, ctx: Context) -> str:
    doc = plugin.doc
    out = []
    attributes = doc.get("attributes") or {}
    if attributes:
        rows = [[code(name), str(attr.get("support", "")),
                 "<br><br>".join(markdown(p, ctx) for p in paragraphs(attr.get("description")))]
                for name, attr in attributes.items()]
        out.append(table(["attribute", "support", "description"], rows))
    if doc.get("has_action"):
        out.append("An action plugin of the same name runs on the controller first.\n")
    notes = paragraphs(doc.get("notes"))
    if notes:
        out.append("Notes:\n\n" + "".join(f"- {markdown(n, ctx)}\n" for n in notes))
    seealso = doc.get("seealso") or []
    if seealso:
        items = []
        for ref in seealso:
            text = markdown(str(ref.get("description", "")), ctx)
            if "module" in ref or "plugin" in ref:
                fqcn = ref.get("module") or ref["plugin"]
                target = ctx.link(fqcn, ref.get("plugin_type", "module"))
                title = f"[{code(fqcn)}]({target})" if target else code(fqcn)
            elif "link" in ref:
                title = f"[{ref.get('name', ref['link'])}]({ref['link']})"
            else:
                title = str(ref.get("name", ref.get("ref", "")))
            items.append(f"- {title}" + (f": {text}" if text else ""))
        out.append("See also:\n\n" + "\n".join(items) + "\n")
    return "\n".join(out) if out else "None.\n"


def render_examples(plugin: Plugin) -> str:
    return f"```yaml\n{plugin.examples.strip()}\n```\n" if plugin.examples.strip() else "None.\n"


def return_rows(returns: dict[str, Any], ctx: Context, prefix: str = "") -> list[list[str]]:
    rows = []
    for name, spec in returns.items():
        text = [markdown(p, ctx) for p in paragraphs(spec.get("description"))]
        if "sample" in spec:
            text.append(f"Sample: {shown(spec['sample'])}")
        full = prefix + name
        rows.append([code(full), type_of(spec), markdown(str(spec.get("returned", "")), ctx), "<br><br>".join(text)])
        if isinstance(spec.get("contains"), dict):
            sep = "[]." if spec.get("type") == "list" else "."
            rows += return_rows(spec["contains"], ctx, full + sep)
    return rows


def render_return(plugin: Plugin, ctx: Context) -> str:
    if not plugin.returns:
        return "None.\n"
    return table(["key", "type", "returned", "description"], return_rows(plugin.returns, ctx))


# --- Tables of modules, plugins and role variables ---------------------------------------------------------

def render_plugin_table(ptype: str, plugins: dict[str, dict[str, Plugin]], ctx: Context) -> str:
    rows = []
    for plugin in sorted(plugins.get(ptype, {}).values(), key=lambda p: p.fqcn):
        target = ctx.link(plugin.fqcn, ptype)
        title = f"[{code(plugin.fqcn)}]({target})" if target else code(plugin.fqcn)
        rows.append([title, markdown(str(plugin.doc.get("short_description", "")), ctx)])
    return table([ptype, "what it does"], rows) if rows else "None.\n"


@dataclass
class Role:
    name: str
    specs: dict[str, Any]  # entry point -> its argument spec
    defaults: dict[str, Any]
    imports: list[str]


def load_roles(root: Path, coll_fqcn: str) -> dict[str, Role]:
    roles = {}
    for role_dir in sorted(p for p in (root / "roles").iterdir() if p.is_dir()):
        spec_file = role_dir / "meta" / "argument_specs.yml"
        specs = (yaml.safe_load(spec_file.read_text()) or {}).get("argument_specs", {}) if spec_file.exists() else {}
        defaults_file = role_dir / "defaults" / "main.yml"
        defaults = (yaml.safe_load(defaults_file.read_text()) or {}) if defaults_file.exists() else {}
        imports: set[str] = set()
        for task_file in sorted((role_dir / "tasks").rglob("*.yml")):
            for task in walk_tasks(yaml.safe_load(task_file.read_text())):
                for key in ("ansible.builtin.import_role", "ansible.builtin.include_role", "import_role",
                            "include_role"):
                    target = task.get(key)
                    if isinstance(target, dict) and str(target.get("name", "")).startswith(coll_fqcn + "."):
                        imports.add(str(target["name"]).rsplit(".", 1)[1])
        roles[role_dir.name] = Role(role_dir.name, specs, defaults, sorted(imports - {role_dir.name}))
    return roles


def effective_defaults(roles: dict[str, Role], name: str, seen: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The role's defaults/main.yml over those of the roles it imports (their defaults apply to it too)."""
    merged: dict[str, Any] = {}
    for imported in roles[name].imports:
        if imported in roles and imported not in seen:
            merged.update(effective_defaults(roles, imported, seen | {name}))
    merged.update(roles[name].defaults)
    return merged


def check_role_defaults(roles: dict[str, Role]) -> list[str]:
    problems = []
    documented: set[str] = set()
    for role in roles.values():
        defaults = effective_defaults(roles, role.name)
        where = f"roles/{role.name}/meta/argument_specs.yml"
        for entry, spec in role.specs.items():
            for var, opt in (spec.get("options") or {}).items():
                documented.add(var)
                has_default = defaults.get(var) is not None
                if "default" in opt:
                    if not has_default and opt["default"] is not None:
                        problems.append(f"{where}: {entry}.{var} has default {json.dumps(opt['default'])} but no "
                                        f"defaults/main.yml of the role (or a role it imports) sets {var}")
                    elif has_default and opt["default"] != defaults[var]:
                        problems.append(f"{where}: {entry}.{var} has default {json.dumps(opt['default'])}, "
                                        f"defaults/main.yml has {json.dumps(defaults[var])}")
                elif has_default and not opt.get("required"):
                    problems.append(f"{where}: {entry}.{var} gives no default, defaults/main.yml has "
                                    f"{json.dumps(defaults[var])}")
    for role in roles.values():
        for var in role.defaults:
            if not var.startswith("__") and var not in documented:
                problems.append(f"roles/{role.name}/defaults/main.yml: {var} is in no role's meta/argument_specs.yml")
    return problems


def render_role_variables(args: list[str], roles: dict[str, Role], ctx: Context) -> str:
    """One table of the variables of the named roles (or role.entry_point), merged by name: the column
    'entry points' says where each applies, and differing descriptions are given per entry point."""
    merged: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    points = []
    for arg in args:
        role_name, only = (arg.split(".", 1) + [""])[:2]
        if role_name not in roles:
            ctx.problems.append(f"{ctx.where}: role-variables names an unknown role {role_name!r}")
            continue
        for entry, spec in roles[role_name].specs.items():
            if only and entry != only:
                continue
            label = role_name if entry == "main" and len(args) > 1 else (
                entry if len(args) == 1 else f"{role_name}.{entry}")
            points.append(label)
            for var, opt in (spec.get("options") or {}).items():
                merged.setdefault(var, []).append((label, opt))
    if not merged:
        return "None.\n"
    show_points = len(points) > 1
    rows = []
    for var, uses in merged.items():
        def one(key: str, render: Callable[[dict[str, Any]], str], uses: list[tuple[str, dict[str, Any]]] = uses
                ) -> str:
            values = {label: render(opt) for label, opt in uses}
            if len(set(values.values())) == 1:
                return next(iter(values.values()))
            return "<br>".join(f"{code(label)}: {value}" for label, value in values.items())

        def describe(opt: dict[str, Any]) -> str:
            text = " ".join(markdown(p, ctx) for p in paragraphs(opt.get("description")))
            if opt.get("choices"):
                text += " Choices: " + ", ".join(code(json.dumps(c, ensure_ascii=False)) for c in opt["choices"]) + "."
            return text

        def default(opt: dict[str, Any]) -> str:
            if opt.get("required"):
                return "required"
            return shown(opt["default"]) if "default" in opt and opt["default"] is not None else ""

        row = [code(var), one("type", type_of), one("default", default)]
        if show_points:
            row.append(", ".join(use[0] for use in uses))
        row.append(one("description", describe))
        rows.append(row)
    several_roles = len({arg.partition(".")[0] for arg in args}) > 1
    where = ["roles" if several_roles else "entry points"] if show_points else []
    header = ["variable", "type", "default", *where, "description"]
    return table(header, rows)


# --- Generated parts in Markdown files -----------------------------------------------------------------------

@dataclass
class Generator:
    coll: Collection
    plugins: dict[str, dict[str, Plugin]]
    roles: dict[str, Role]
    unreadable: set[tuple[str, str]] = field(default_factory=set)  # plugins ansible-doc cannot read: pages kept
    problems: list[str] = field(default_factory=list)

    def page_of_unreadable(self, path: Path) -> bool:
        rel = path.relative_to(self.coll.root)
        return len(rel.parts) == 3 and rel.parts[0] == "docs" and (rel.parts[1][:-1], path.stem) in self.unreadable

    def page_plugin(self, path: Path) -> Plugin | None:
        """The plugin a page under docs/<type>s/ documents, by its path."""
        rel = path.relative_to(self.coll.root)
        if len(rel.parts) == 3 and rel.parts[0] == "docs" and rel.parts[1].endswith("s"):
            return self.plugins.get(rel.parts[1][:-1], {}).get(path.stem)
        return None

    def render(self, path: Path, part: str, args: list[str]) -> str | None:
        ctx = Context(self.coll.fqcn, path, self.coll.root, where=f"{path.relative_to(self.coll.root)} ({part})")
        try:
            if part in PLUGIN_PARTS:
                plugin = self.page_plugin(path)
                if plugin is None and self.page_of_unreadable(path):
                    return None  # its page stays as it is; the plugin's own problem is reported
                if plugin is None:
                    ctx.problems.append(f"{ctx.where}: a plugin part outside a plugin's page, or a page of a plugin "
                                        f"that does not exist")
                    return None
                ctx.where = f"{plugin.type} {plugin.fqcn}"
                return {
                    "synopsis": lambda: render_synopsis(plugin, ctx),
                    "options": lambda: render_options(plugin, ctx, self.coll),
                    "attributes": lambda: render_attributes(plugin, ctx),
                    "examples": lambda: render_examples(plugin),
                    "return": lambda: render_return(plugin, ctx),
                }[part]()
            if part == "module-table":
                return render_plugin_table("module", self.plugins, ctx)
            if part == "plugin-table" and len(args) == 1:
                return render_plugin_table(args[0], self.plugins, ctx)
            if part == "role-variables" and args:
                return render_role_variables(args, self.roles, ctx)
            ctx.problems.append(f"{ctx.where}: unknown generated part {part!r} {args}")
            return None
        finally:
            for problem in ctx.problems:
                if problem not in self.problems:
                    self.problems.append(problem)

    def update(self, path: Path, text: str) -> str:
        found = []

        def replace(match: re.Match[str]) -> str:
            part, args = match.group("part"), match.group("args").split()
            found.append(part)
            body = self.render(path, part, args)
            if body is None:
                return match.group(0)
            head = match.group(0).split("\n", 1)[0]
            return f"{head}\n{body.rstrip()}\n<!-- END GENERATED: {part} -->"

        new = MARKER.sub(replace, text)
        rel = path.relative_to(self.coll.root)
        if len(ANY_MARKER.findall(text)) != 2 * len(found):
            self.problems.append(f"{rel}: a BEGIN GENERATED marker without its END (or the reverse)")
        if self.page_plugin(path) is not None:
            for part in PLUGIN_PARTS:
                if found.count(part) != 1:
                    self.problems.append(f"{rel}: holds the generated part {part!r} {found.count(part)} times "
                                         f"(each plugin page holds each of {', '.join(PLUGIN_PARTS)} once)")
        if rel.parts[0] == "roles" and rel.name == "README.md" and "role-variables" not in found:
            self.problems.append(f"{rel}: no generated role-variables part (add: <!-- BEGIN GENERATED: "
                                 f"role-variables {rel.parts[1]} --> <!-- END GENERATED: role-variables -->)")
        return new

    def new_page(self, plugin: Plugin) -> str:
        parts = []
        for part, title in (("synopsis", ""), ("options", "Options"), ("examples", "Examples"),
                            ("return", "Return values"),
                            ("attributes", "Check mode, diff mode and notes" if plugin.type == "module" else "Notes")):
            marker = f"<!-- BEGIN GENERATED: {part}; scripts/docs.py writes this from the plugin's documentation -->"
            parts.append((f"## {title}\n\n" if title else "") + f"{marker}\n<!-- END GENERATED: {part} -->\n")
        return f"# {plugin.fqcn}\n\n" + "\n".join(parts)

    def outputs(self) -> dict[Path, str]:
        """Every file with generated parts, as it should be."""
        paths: set[Path] = set()
        for pattern in GENERATED_FILES_GLOBS:
            paths.update(self.coll.root.glob(pattern))
        texts = {p: p.read_text() for p in paths}
        for ptype, plugins in self.plugins.items():
            for plugin in plugins.values():
                page = self.coll.root / plugin_page(ptype, plugin.name)
                if page not in texts:
                    texts[page] = self.new_page(plugin)
        for page in list(texts):
            rel = page.relative_to(self.coll.root)
            if rel.parts[0] == "docs" and len(rel.parts) == 3 and self.page_plugin(page) is None \
                    and not self.page_of_unreadable(page) and "GENERATED: synopsis" in texts[page]:
                self.problems.append(f"{rel}: the page of a plugin that does not exist (remove it)")
        return {page: self.update(page, text) for page, text in sorted(texts.items())}


# --- YAML examples ------------------------------------------------------------------------------------------

class StrictLoader(yaml.SafeLoader):
    """YAML as Ansible reads it, but a duplicate key is an error (Ansible only warns, and keeps the last)."""


def _mapping(loader: StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    result: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in result:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        result[key] = loader.construct_object(value_node, deep=True)
    return result


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)
for _tag in ("!vault", "!unsafe"):
    StrictLoader.add_constructor(_tag, lambda loader, node: loader.construct_scalar(node))


@dataclass
class Example:
    where: str  # file and line, or plugin
    text: str


def markdown_examples(path: Path, root: Path) -> Iterator[Example]:
    text = path.read_text()
    for match in FENCE.finditer(text):
        if match.group("lang") in ("yaml", "yml"):
            line = text.count("\n", 0, match.start()) + 2
            yield Example(f"{path.relative_to(root)}:{line}", match.group("body"))


def walk_tasks(data: Any) -> Iterator[dict[str, Any]]:
    """Every task of a YAML document that is a task list or a playbook (blocks and play sections included)."""
    if not isinstance(data, list):
        return
    for item in data:
        if not isinstance(item, dict):
            continue
        if "hosts" in item or "import_playbook" in item or "ansible.builtin.import_playbook" in item:
            for section in ("pre_tasks", "tasks", "post_tasks", "handlers"):
                yield from walk_tasks(item.get(section))
        elif "block" in item:
            for section in ("block", "rescue", "always"):
                yield from walk_tasks(item.get(section))
        else:
            yield item


def is_template(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


_SCALARS: dict[str, Any] = {"int": 1, "float": 1.0, "bool": True, "list": [], "path": "/x", "bytes": "1",
                            "bits": "1", "json": "{}", "jsonarg": "{}"}


def stand_in(entry: dict[str, Any]) -> Any:
    """A value of the option's type (and choices) for a Jinja expression: it stands for any type."""
    kind = entry.get("type", "str")
    if entry.get("choices"):
        first = list(entry["choices"])[0]
        return [first] if kind == "list" else first
    if kind == "dict":
        subs = entry.get("options") or {}
        return {name: stand_in(sub) for name, sub in subs.items() if sub.get("required")}
    return _SCALARS.get(kind, "x") if isinstance(kind, str) else None


def with_stand_ins(params: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    names = {alias: entry for name, entry in spec.items() for alias in [name, *(entry.get("aliases") or [])]}
    return {key: _value(value, names[key]) if key in names else value for key, value in params.items()}


def _value(value: Any, entry: dict[str, Any]) -> Any:
    if is_template(value):
        return stand_in(entry)
    kind = entry.get("type", "str")
    if kind == "list" and isinstance(value, list):
        element = {"type": entry.get("elements", "raw"), "options": entry.get("options"),
                   "choices": entry.get("choices")}
        return [_value(v, element) for v in value]
    if kind == "dict" and isinstance(value, dict) and entry.get("options"):
        return with_stand_ins(value, entry["options"])
    return value


@dataclass
class ModuleSpec:
    argument_spec: dict[str, Any]
    constraints: dict[str, Any]
    free_form: bool = False


class _Built(Exception):
    def __init__(self, kwargs: dict[str, Any]) -> None:
        super().__init__("AnsibleModule built")
        self.kwargs = kwargs


def own_module_spec(coll: Collection, name: str) -> ModuleSpec:
    """The argument spec this collection's module builds in main(): AnsibleModule is stopped right there."""
    from ansible.module_utils import basic  # noqa: PLC0415 (only needed here)

    module = importlib.import_module(f"ansible_collections.{coll.namespace}.{coll.name}.plugins.modules.{name}")
    signature = inspect.signature(basic.AnsibleModule.__init__)

    def build(self: Any, *args: Any, **kwargs: Any) -> None:
        raise _Built(dict(signature.bind(self, *args, **kwargs).arguments))

    kwargs: dict[str, Any] = {}
    with mock.patch.object(basic.AnsibleModule, "__init__", build):
        try:
            module.main()
        except _Built as built:
            kwargs = built.kwargs
    if not kwargs:
        raise RuntimeError(f"module {name}: main() built no AnsibleModule")
    spec = dict(kwargs["argument_spec"])
    if kwargs.get("add_file_common_args"):
        spec.update(basic.FILE_COMMON_ARGUMENTS)
    names = ("mutually_exclusive", "required_together", "required_one_of", "required_if", "required_by")
    constraints = {k: kwargs[k] for k in names if kwargs.get(k)}
    return ModuleSpec(spec, constraints)


def spec_from_doc(options: dict[str, Any]) -> dict[str, Any]:
    """An argument spec from documented options (for other collections' modules and action plugins)."""
    spec = {}
    for name, doc in options.items():
        entry: dict[str, Any] = {"type": {"any": "raw", "string": "str", "boolean": "bool", "integer": "int",
                                          "dictionary": "dict"}.get(doc.get("type", "str"), doc.get("type", "str"))}
        for key in ("aliases", "choices", "required", "elements"):
            if doc.get(key):
                entry[key] = doc[key]
        if entry.get("elements") == "any":
            entry["elements"] = "raw"
        if isinstance(doc.get("suboptions"), dict):
            entry["options"] = spec_from_doc(doc["suboptions"])
        spec[name] = entry
    return spec


class Specs:
    """Argument specs by module FQCN: this collection's from their code, others' from ansible-doc (one call)."""

    def __init__(self, coll: Collection) -> None:
        self.coll = coll
        self.cache: dict[str, ModuleSpec | str] = {}

    def prefetch(self, names: set[str]) -> None:
        foreign = sorted(n for n in names if n not in self.cache and not n.startswith(self.coll.fqcn + "."))
        if foreign:
            docs = ansible_doc(self.coll, "--json", "-t", "module", *foreign)
            for name in foreign:
                doc = (docs.get(name) or {}).get("doc")
                if not doc:
                    self.cache[name] = f"no module or action plugin named {name} is installed"
                    continue
                options = doc.get("options") or {}
                self.cache[name] = ModuleSpec(spec_from_doc(options), {},
                                              free_form=bool({"free_form", "key_value", "_raw_params"} & set(options)))

    def get(self, name: str) -> ModuleSpec | str:
        if name not in self.cache:
            if name.startswith(self.coll.fqcn + "."):
                short = name.rsplit(".", 1)[1]
                if not (self.coll.root / "plugins" / "modules" / f"{short}.py").is_file():
                    self.cache[name] = f"this collection has no module {name}"
                    return self.cache[name]
                try:
                    self.cache[name] = own_module_spec(self.coll, short)
                except Exception as exc:  # noqa: BLE001 (any failure is a finding, with its text)
                    self.cache[name] = f"cannot read the argument spec its main() builds: {type(exc).__name__}: {exc}"
            else:
                self.prefetch({name})
        return self.cache[name]


def task_keywords() -> set[str]:
    from ansible.playbook.task import Task  # noqa: PLC0415

    return set(Task.fattributes) | {"local_action"}


def task_module(task: dict[str, Any], keywords: set[str]) -> tuple[str | None, Any, str | None]:
    """(module, its arguments, problem) of a task."""
    candidates = [k for k in task if k not in keywords and not str(k).startswith("with_")]
    if len(candidates) != 1:
        if not candidates and ("action" in task or "local_action" in task):
            return None, None, None
        return None, None, (f"task {task.get('name', '')!r}: no module" if not candidates else
                            f"task {task.get('name', '')!r}: more than one module or unknown keyword: "
                            f"{', '.join(map(str, candidates))}")
    module = str(candidates[0])
    return module, task[module], None


def validate_task(task: dict[str, Any], specs: Specs, keywords: set[str]) -> list[str]:
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator  # noqa: PLC0415

    module, args, problem = task_module(task, keywords)
    if problem or module is None:
        return [problem] if problem else []
    label = f"task {task.get('name', '')!r} ({module})"
    if module.count(".") < 2:
        return [f"{label}: name the module by its FQCN (for example ansible.builtin.{module})"]
    spec = specs.get(module)
    if isinstance(spec, str):
        return [f"{label}: {spec}"]
    if spec.free_form or args is None:
        return []
    if not isinstance(args, dict):
        return [] if is_template(args) else [f"{label}: its options are not a mapping"]
    params = dict(args)
    if isinstance(task.get("args"), dict):
        params = {**task["args"], **params}
    validator = ArgumentSpecValidator(spec.argument_spec, **spec.constraints)
    result = validator.validate(with_stand_ins(params, spec.argument_spec))
    problems = []
    unknown = getattr(result, "_unsupported_parameters", set())
    if unknown:
        names = sorted(".".join(map(str, u)) if isinstance(u, tuple) else str(u) for u in unknown)
        known = sorted(name + (f" ({', '.join(entry['aliases'])})" if entry.get("aliases") else "")
                       for name, entry in spec.argument_spec.items())
        problems.append(f"{label}: unknown option(s) {', '.join(names)} (it knows: {', '.join(known)})")
    for error in result.errors:
        if type(error).__name__ != "UnsupportedError":
            problems.append(f"{label}: {error}")
    return problems


def collect_examples(coll: Collection, plugins: dict[str, dict[str, Plugin]]) -> list[Example]:
    examples = []
    for ptype, entries in sorted(plugins.items()):
        for plugin in entries.values():
            if plugin.examples.strip():
                examples.append(Example(f"EXAMPLES of {ptype} {plugin.fqcn}", plugin.examples))
            else:
                examples.append(Example(f"EXAMPLES of {ptype} {plugin.fqcn}", ""))
    files: set[Path] = set()
    for pattern in GENERATED_FILES_GLOBS:
        files.update(coll.root.glob(pattern))
    for path in sorted(files):
        examples.extend(markdown_examples(path, coll.root))
    return examples


def check_examples(coll: Collection, examples: list[Example]) -> list[str]:
    problems = []
    keywords = task_keywords()
    specs = Specs(coll)
    parsed: list[tuple[Example, Any]] = []
    for example in examples:
        if not example.text.strip():
            if example.where.startswith("EXAMPLES of module"):
                problems.append(f"{example.where}: no examples")
            continue
        try:
            parsed.append((example, list(yaml.load_all(example.text, Loader=StrictLoader))))
        except yaml.YAMLError as exc:
            problems.append(f"{example.where}: not valid YAML: {' '.join(str(exc).split())}")
    modules = set()
    for documents in (documents for _example, documents in parsed):
        for document in documents:
            for task in walk_tasks(document):
                module = task_module(task, keywords)[0]
                if module and module.count(".") >= 2:
                    modules.add(module)
    specs.prefetch(modules)
    for example, documents in parsed:
        for document in documents:
            for task in walk_tasks(document):
                problems += [f"{example.where}: {p}" for p in validate_task(task, specs, keywords)]
    return problems


# --- The architecture page -----------------------------------------------------------------------------------

ARCHITECTURE = Path("docs") / "architecture.md"
CONCEPT_ROW = re.compile(r"^\| (`_\w+\.py`(?:, `_\w+\.py`)*) \|", re.MULTILINE)


def check_architecture(root: Path) -> list[str]:
    """docs/architecture.md names every module_utils file in its table of concepts, and no file that is gone: a new
    concept is written down where maintainers look for it."""
    page = root / ARCHITECTURE
    if not page.exists():
        return [f"{ARCHITECTURE}: missing"]
    named = {name for cell_text in CONCEPT_ROW.findall(page.read_text(encoding="utf-8"))
             for name in re.findall(r"`(_\w+\.py)`", cell_text)}
    present = {path.name for path in (root / "plugins" / "module_utils").glob("_*.py") if path.name != "__init__.py"}
    return ([f"{ARCHITECTURE}: plugins/module_utils/{name} is in no row of the table of concepts (add one)"
             for name in sorted(present - named)]
            + [f"{ARCHITECTURE}: the table of concepts names {name}, which plugins/module_utils does not hold"
               for name in sorted(named - present)])


# --- Main ---------------------------------------------------------------------------------------------------

def run(root: Path, write: bool) -> int:
    with tempfile.TemporaryDirectory(prefix="pgrepl-docs-") as tmp:
        coll = open_collection(root, Path(tmp))
        plugins, unreadable, problems = load_plugins(coll)
        roles = load_roles(root, coll.fqcn)
        generator = Generator(coll, plugins, roles, unreadable)
        stale = []
        for path, text in generator.outputs().items():
            if not path.exists() or path.read_text() != text:
                stale.append(path.relative_to(root))
                if write:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_text(text)
        problems += generator.problems
        problems += check_role_defaults(roles)
        problems += check_architecture(root)
        problems += check_examples(coll, collect_examples(coll, plugins))
    if stale:
        if write:
            print("wrote: " + ", ".join(map(str, stale)))
        else:
            problems.insert(0, "stale generated docs (run python scripts/docs.py and commit the result): "
                            + ", ".join(map(str, stale)))
    for problem in problems:
        print(problem, file=sys.stderr)
    count = sum(len(v) for v in plugins.values())
    print(f"docs: {count} plugins, {len(roles)} roles; {len(problems)} problem(s)")
    return 1 if problems else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--check", action="store_true", help="change nothing; fail when a generated part is stale")
    args = parser.parse_args()
    return run(ROOT, write=not args.check)


if __name__ == "__main__":
    sys.exit(main())
