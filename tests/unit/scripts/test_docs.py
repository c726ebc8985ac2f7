# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""scripts/docs.py: generated parts between markers, role defaults, and the checks of YAML examples."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[3]
_spec = importlib.util.spec_from_file_location("pgrepl_docs", ROOT / "scripts" / "docs.py")
assert _spec and _spec.loader
docs = importlib.util.module_from_spec(_spec)
sys.modules["pgrepl_docs"] = docs
_spec.loader.exec_module(docs)


def part(name: str, args: str = "") -> str:
    return f"<!-- BEGIN GENERATED: {name}{args} -->\n<!-- END GENERATED: {name} -->\n"


def context(page: str | None = "docs/modules/promote.md") -> Any:
    return docs.Context("pgrepl.streaming", ROOT / page if page else None, ROOT, where="test")


# --- Markup -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("C(pg_promote) and O(wait_seconds=5)", "`pg_promote` and `wait_seconds=5`"),
    ("V(0/3000060), RV(outcome=promoted), E(PGDATA)", "`0/3000060`, `outcome=promoted`, `PGDATA`"),
    ("I(never) B(always)", "*never* **always**"),
    ("see M(pgrepl.streaming.rewind)", "see [`pgrepl.streaming.rewind`](rewind.md)"),
    ("see M(ansible.builtin.copy)", "see `ansible.builtin.copy`"),
    ("P(pgrepl.streaming.lsn_int#filter)", "[`pgrepl.streaming.lsn_int`](../filters/lsn_int.md)"),
    ("L(the docs, https://example.org/x) U(https://example.org)",
     "[the docs](https://example.org/x) <https://example.org>"),
    ("O(entries[].host) O(ansible.builtin.copy#module:dest)", "`entries[].host` `dest`"),
    (r"O(a\)b) V(x\\y)", r"`a)b` `x\y`"),  # the semantic markup's escapes
    ("a <b> tag, x >= 3, C(a`b)", "a &lt;b> tag, x >= 3, `` a`b ``"),
    ("RHEL(9) is not markup", "RHEL(9) is not markup"),
])
def test_markup(text: str, expected: str) -> None:
    ctx = context()
    assert docs.markdown(text, ctx) == expected
    assert ctx.problems == []


def test_parentheses_inside_code_are_reported() -> None:
    ctx = context()
    # ansible-doc ends C() at the first ')': it would print pg_is_in_recovery(' followed by ')'.
    assert docs.markdown("C(pg_is_in_recovery()) is false", ctx) == "`pg_is_in_recovery(`) is false"
    assert len(ctx.problems) == 1 and "C(pg_is_in_recovery()" in ctx.problems[0]


def test_unclosed_markup_is_reported() -> None:
    ctx = context()
    docs.markdown("C(never closed", ctx)
    assert ctx.problems and "not closed" in ctx.problems[0]


def test_table_cells_escape_pipes_and_line_breaks() -> None:
    assert docs.table(["a", "b"], [["x|y", "1\n2"]]) == "| a | b |\n| --- | --- |\n| x\\|y | 1<br>2 |\n"


# --- Generated parts ----------------------------------------------------------------------------------------

def fake_plugin(name: str = "thing") -> Any:
    doc = {
        "short_description": "Manage a thing",
        "description": ["Makes sure a thing exists.", "Uses C(pg_thing)."],
        "options": {
            "name": {"description": "Name of the thing.", "type": "str", "required": True},
            "state": {"description": "V(present) or V(absent).", "type": "str", "default": "present",
                      "choices": ["present", "absent"]},
            "login_user": {"description": "The role.", "type": "str", "default": "postgres", "aliases": ["login"]},
        },
        "attributes": {"check_mode": {"support": "full", "description": "Predicts."}},
        "notes": ["A note."],
    }
    returns = {"thing": {"description": "The thing.", "returned": "always", "type": "dict", "sample": {"a": 1},
                         "contains": {"a": {"description": "A.", "type": "int"}}}}
    return docs.Plugin("module", f"pgrepl.streaming.{name}", doc, "- name: Make it\n  pgrepl.streaming.thing:\n"
                       "    name: x\n", returns, own_options=["name", "state"])


def generator(root: Path, plugins: dict[str, Any] | None = None, roles: dict[str, Any] | None = None) -> Any:
    (root / "galaxy.yml").write_text("namespace: pgrepl\nname: streaming\n")
    coll = docs.Collection(root, "pgrepl", "streaming", root / ".collections")
    return docs.Generator(coll, {"module": plugins or {}}, roles or {})


def test_page_parts_are_written_between_markers_and_prose_stays(tmp_path: Path) -> None:
    page = tmp_path / "docs" / "modules" / "thing.md"
    page.parent.mkdir(parents=True)
    stale_options = part("options").replace("<!-- END", "old table\n<!-- END")
    page.write_text("# pgrepl.streaming.thing\n\n" + part("synopsis") + "\nHand-written prose.\n\n## Options\n\n"
                    + stale_options + "\n" + part("attributes") + part("examples") + "\nMore prose.\n"
                    + part("return"))
    gen = generator(tmp_path, {"thing": fake_plugin()})
    text = gen.outputs()[page]
    assert gen.problems == []
    assert "Hand-written prose." in text and "More prose." in text and "old table" not in text
    assert "*Manage a thing*\n\nMakes sure a thing exists.\n\nUses `pg_thing`." in text
    assert "| `name` | str | required | Name of the thing. |" in text
    assert '| `state` | str | `"present"` | `present` or `absent`.<br><br>Choices: `"present"`, `"absent"`. |' in text
    # Options the plugin does not write itself come from doc fragments: a table of their own.
    assert "Options from other doc fragments" in text and "Aliases: `login`." in text
    assert "| `thing.a` | int |" in text and '`{"a": 1}`' in text
    assert "```yaml\n- name: Make it\n" in text
    assert "| `check_mode` | full | Predicts. |" in text and "- A note." in text
    # Writing it again changes nothing.
    page.write_text(text)
    assert gen.outputs()[page] == text


def test_a_page_is_created_for_a_plugin_without_one(tmp_path: Path) -> None:
    gen = generator(tmp_path, {"thing": fake_plugin()})
    outputs = gen.outputs()
    page = tmp_path / "docs" / "modules" / "thing.md"
    assert page in outputs and outputs[page].startswith("# pgrepl.streaming.thing\n")
    assert all(f"BEGIN GENERATED: {p};" in outputs[page] for p in docs.PLUGIN_PARTS)
    assert gen.problems == []


def test_missing_parts_stray_pages_and_broken_markers_are_reported(tmp_path: Path) -> None:
    pages = tmp_path / "docs" / "modules"
    pages.mkdir(parents=True)
    (pages / "thing.md").write_text("# thing\n\n" + part("synopsis") + part("options"))
    (pages / "gone.md").write_text("# gone\n\n" + part("synopsis"))
    (tmp_path / "README.md").write_text("<!-- BEGIN GENERATED: module-table -->\nno end\n")
    gen = generator(tmp_path, {"thing": fake_plugin()})
    outputs = gen.outputs()
    assert outputs[tmp_path / "README.md"] == "<!-- BEGIN GENERATED: module-table -->\nno end\n"
    problems = "\n".join(gen.problems)
    assert "docs/modules/thing.md: holds the generated part 'examples' 0 times" in problems
    assert "docs/modules/gone.md: the page of a plugin that does not exist" in problems
    assert "README.md: a BEGIN GENERATED marker without its END" in problems


def test_the_page_of_a_plugin_whose_documentation_cannot_be_read_stays(tmp_path: Path) -> None:
    pages = tmp_path / "docs" / "modules"
    pages.mkdir(parents=True)
    text = "# broken\n\n" + "".join(part(p).replace("<!-- END", "kept\n<!-- END") for p in docs.PLUGIN_PARTS)
    (pages / "broken.md").write_text(text)
    gen = generator(tmp_path)
    gen.unreadable = {("module", "broken")}
    assert gen.outputs()[pages / "broken.md"] == text
    assert gen.problems == []  # ansible-doc's own error is the one reported (load_plugins)


def test_module_table_links_relative_to_the_file(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "README.md").write_text("# x\n\n" + part("module-table") + "\nprose\n")
    (tmp_path / "docs" / "modules.md").write_text(part("module-table"))
    gen = generator(tmp_path, {"thing": fake_plugin()})
    outputs = gen.outputs()
    assert "| [`pgrepl.streaming.thing`](docs/modules/thing.md) | Manage a thing |" in outputs[tmp_path / "README.md"]
    assert "[`pgrepl.streaming.thing`](modules/thing.md)" in outputs[tmp_path / "docs" / "modules.md"]


# --- Roles --------------------------------------------------------------------------------------------------

def make_role(root: Path, name: str, specs: str, defaults: str = "", tasks: str = "") -> None:
    role = root / "roles" / name
    for sub in ("meta", "defaults", "tasks"):
        (role / sub).mkdir(parents=True, exist_ok=True)
    (role / "meta" / "argument_specs.yml").write_text(specs)
    (role / "defaults" / "main.yml").write_text(defaults or "---\n")
    (role / "tasks" / "main.yml").write_text(tasks or "---\n[]\n")


def test_role_defaults_must_agree_with_defaults_main(tmp_path: Path) -> None:
    make_role(tmp_path, "base", """argument_specs:
  main:
    options:
      a: {type: int, default: 1}
      b: {type: str, default: x}
      c: {type: dict}
      d: {type: str, required: true}
""", "a: 2\nb: x\nc: {k: v}\nundocumented: 1\n__internal: 1\n")
    make_role(tmp_path, "top", """argument_specs:
  main:
    options:
      b: {type: str, default: x}
      e: {type: bool, default: false}
""", tasks="- name: Base\n  ansible.builtin.import_role:\n    name: pgrepl.streaming.base\n")
    roles = docs.load_roles(tmp_path, "pgrepl.streaming")
    assert roles["top"].imports == ["base"]
    problems = docs.check_role_defaults(roles)
    assert problems == [
        'roles/base/meta/argument_specs.yml: main.a has default 1, defaults/main.yml has 2',
        'roles/base/meta/argument_specs.yml: main.c gives no default, defaults/main.yml has {"k": "v"}',
        "roles/top/meta/argument_specs.yml: main.e has default false but no defaults/main.yml of the role (or a "
        "role it imports) sets e",
        "roles/base/defaults/main.yml: undocumented is in no role's meta/argument_specs.yml",
    ]


def test_role_variables_table_merges_entry_points(tmp_path: Path) -> None:
    make_role(tmp_path, "ops", """argument_specs:
  one:
    options:
      target: {type: str, default: "", description: The standby to promote.}
      force: {type: bool, default: false, description: Override a refusal.}
  two:
    options:
      target: {type: str, default: "", description: "C(empty) means the most advanced one."}
""", "target: ''\nforce: false\n")
    roles = docs.load_roles(tmp_path, "pgrepl.streaming")
    ctx = docs.Context("pgrepl.streaming", tmp_path / "roles" / "ops" / "README.md", tmp_path)
    text = docs.render_role_variables(["ops"], roles, ctx)
    assert text.splitlines()[0] == "| variable | type | default | entry points | description |"
    assert ('| `target` | str | `""` | one, two | `one`: The standby to promote.<br>`two`: `empty` means the most '
            'advanced one. |') in text
    assert "| `force` | bool | `false` | one | Override a refusal. |" in text
    assert docs.check_role_defaults(roles) == []


# --- YAML examples ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def collection(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return docs.open_collection(ROOT, tmp_path_factory.mktemp("coll"))


def check(collection: Any, text: str) -> list[str]:
    return docs.check_examples(collection, [docs.Example("ex", text)])


def test_invalid_yaml_and_duplicate_keys_are_reported(collection: Any) -> None:
    # The second example docs/modules/rewind_grants.md once had: a colon and a blank in a plain scalar.
    problems = check(collection, "- name: pg_rewind connects to another database: grant there\n"
                                 "  pgrepl.streaming.rewind_grants:\n    role: r\n")
    assert len(problems) == 1 and "ex: not valid YAML: mapping values are not allowed" in problems[0]
    problems = check(collection, "- name: x\n  pgrepl.streaming.rewind_grants:\n    role: a\n    role: b\n")
    assert len(problems) == 1 and "duplicate key 'role'" in problems[0]


@pytest.mark.parametrize("task, expected", [
    ("pgrepl.streaming.promote:\n    wait_secs: 5", "unknown option(s) wait_secs (it knows: allow_paused"),
    ("pgrepl.streaming.promote:\n    wait_seconds: soon",
     "argument 'wait_seconds' is of type str and we were unable to convert to int"),
    ("pgrepl.streaming.server_stop:\n    service: postgresql@15-main", "missing required arguments: data_dir"),
    ("pgrepl.streaming.server_stop:\n    data_dir: /d\n    mode: slow",
     "value of mode must be one of: fast, smart, immediate, got: slow"),
    ("pgrepl.streaming.passfile:\n    path: /p\n    entries:\n      - {host: h, usr: u}",
     "unknown option(s) entries.usr"),
    ("pgrepl.streaming.nothing:\n    a: 1", "this collection has no module pgrepl.streaming.nothing"),
    ("promote:\n    wait_seconds: 5", "name the module by its FQCN"),
    ("ansible.builtin.debug:\n    message: hi", "unknown option(s) message (it knows: msg, var, verbosity)"),
    ("ansible.builtin.debug:\n    msg: hi\n  regsiter: x", "more than one module or unknown keyword"),
])
def test_tasks_are_validated_against_the_module_spec(collection: Any, task: str, expected: str) -> None:
    problems = check(collection, f"- name: t\n  {task}\n")
    assert len(problems) == 1 and expected in problems[0], problems


def test_valid_tasks_pass(collection: Any) -> None:
    assert check(collection, """
- hosts: db
  tasks:
    - name: Jinja stands for any type, choices included; aliases and the connection options are known
      pgrepl.streaming.promote:
        wait_seconds: "{{ pgrepl_promote_timeout }}"
        ssl_mode: "{{ mode }}"
        login: postgres
        login_unix_socket: /run/postgresql
      become: true
      register: promoted
    - block:
        - name: Suboptions and list elements
          pgrepl.streaming.passfile:
            path: /var/lib/postgresql/.pgpass
            entries:
              - {host: "{{ item }}", user: replicator, password: "{{ secret }}"}
          loop: [db1, db2]
      rescue:
        - name: Another collection's module
          ansible.builtin.assert:
            that: promoted is changed
            fail_msg: no
- name: A free-form module
  ansible.builtin.command: pg_lsclusters
""") == []


# --- The architecture page ----------------------------------------------------------------------------------

def architecture_tree(tmp_path: Path, files: list[str], rows: list[str]) -> Path:
    (tmp_path / "plugins" / "module_utils").mkdir(parents=True)
    for name in files:
        (tmp_path / "plugins" / "module_utils" / name).write_text("", encoding="utf-8")
    (tmp_path / "docs").mkdir()
    table = "\n".join(f"| {row} | a concept |" for row in rows)
    (tmp_path / "docs" / "architecture.md").write_text(f"| File | Concept |\n| --- | --- |\n{table}\n",
                                                       encoding="utf-8")
    return tmp_path


def test_the_architecture_page_names_every_module_utils_file_and_no_other(tmp_path: Path) -> None:
    root = architecture_tree(tmp_path, ["_a.py", "_b.py", "_c.py", "__init__.py"],
                             ["`_a.py`", "`_b.py`, `_gone.py`"])
    assert docs.check_architecture(root) == [
        "docs/architecture.md: plugins/module_utils/_c.py is in no row of the table of concepts (add one)",
        "docs/architecture.md: the table of concepts names _gone.py, which plugins/module_utils does not hold",
    ]
    assert docs.check_architecture(architecture_tree(tmp_path / "ok", ["_a.py"], ["`_a.py`"])) == []


def test_the_collection_s_own_architecture_page_is_complete() -> None:
    assert docs.check_architecture(ROOT) == []
