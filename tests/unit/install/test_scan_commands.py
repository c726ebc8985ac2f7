# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The scan behind the install check (tests/install/scan_commands.py): which programs the project's shell scripts,
Makefile, Python harnesses and Molecule playbooks run on this machine."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "tests" / "install"))
from scan_commands import (  # noqa: E402
    IN_CONTAINER,
    Call,
    Unresolved,
    ansible_findings,
    makefile_findings,
    project_files,
    python_findings,
    shell_findings,
)


def commands(findings: list) -> list[str]:
    return sorted({f.command for f in findings if isinstance(f, Call)})


def unresolved(findings: list) -> list[str]:
    return [f.text for f in findings if isinstance(f, Unresolved)]


def sh(src: str) -> list[str]:
    found = shell_findings(textwrap.dedent(src), "x.sh")
    assert unresolved(found) == []
    return commands(found)


# --- shell ------------------------------------------------------------------------------------------------------

def test_simple_commands_lists_and_pipes() -> None:
    assert sh("rsync -a x y && git add . || tar -c . | gzip >/dev/null; sleep 1 & wait\n") == \
        ["git", "gzip", "rsync", "sleep", "tar"]


def test_builtins_keywords_and_own_functions_are_not_programs() -> None:
    src = """
    set -euo pipefail
    say() { printf '%s\\n' "$*"; }
    function cleanup { echo done; }
    if [[ -f x ]]; then say hi; elif true; then cleanup; else exit 1; fi
    while read -r line; do echo "$line"; done
    [ -d x ] || cd /tmp
    """
    assert sh(src) == []


def test_arguments_redirection_targets_and_assignments_are_not_programs() -> None:
    src = """
    A=1 B=$(hostname) mkdir -p dir >out.log 2>&1 <in.txt
    local copy=$ROOT/x; export PATH=/x:$PATH
    need+=(postgresql rsync)
    cat <<<"literal" >>appended
    """
    assert sh(src) == ["cat", "hostname", "mkdir"]


def test_command_substitutions_everywhere() -> None:
    src = """
    x=$(basename "$(dirname "$0")")
    echo "took $(( $(date +%s) - start ))s ${y:-$(whoami)}"
    for f in $(seq 1 3) `uname`; do :; done
    diff <(sort a) >(tee b)
    """
    assert sh(src) == ["basename", "date", "diff", "dirname", "seq", "sort", "tee", "uname", "whoami"]


def test_heredoc_bodies_and_comments_are_not_read() -> None:
    src = """
    # rsync in a comment
    cat >inv.yml <<YAML
    hosts: rsync
    YAML
    python3 - <<'PY'
    import subprocess; subprocess.run(["curl"])
    PY
    echo 'apt-get in a string' # jq here too
    tail -n1 x
    """
    assert sh(src) == ["cat", "python3", "tail"]


def test_case_patterns_for_lists_conditions_and_arithmetic() -> None:
    src = """
    case $1 in
      pg15* | client) echo bookworm ;;
      rsync) curl x ;;
      *) return 1 ;;
    esac
    for name in git make; do touch "$name"; done
    [[ $a == rsync && -n $b ]] && ((n += 1))
    ((count)) || mktemp
    """
    assert sh(src) == ["curl", "mktemp", "touch"]


def test_runners_give_their_command() -> None:
    src = """
    nohup dockerd >/var/log/d.log 2>&1 &
    timeout -s KILL 60 pg_isready
    env -u X A=B locale-gen
    xargs -n 1 sha256sum
    runuser -u postgres -- initdb -D x
    sudo -u postgres psql
    exec make test
    time cp a b
    """
    assert sh(src) == ["cp", "dockerd", "env", "initdb", "locale-gen", "make", "nohup", "pg_isready", "psql",
                       "runuser", "sha256sum", "sudo", "timeout", "xargs"]


def test_shell_strings_are_programs_too() -> None:
    assert sh("bash -c 'rsync a b; git log'\nsh -ec \"curl x\"\ntrap 'rm -f x' EXIT\nrunuser -u u -c 'psql'\n") == \
        ["bash", "curl", "git", "psql", "rm", "rsync", "runuser", "sh"]


def test_probes_are_not_calls() -> None:
    assert sh("command -v rsync >/dev/null || command -V jq\n") == []


def test_container_commands_are_not_host_commands() -> None:
    assert sh("docker exec node pg_isready -q\ndocker run --rm img apt-get install jq\n") == ["docker"]


def test_variables_resolve_to_literal_values_and_defaults() -> None:
    src = """
    PYTHON=${PGREPL_PYTHON:-python3}
    TOOL=rsync
    "$PYTHON" -m venv x
    $TOOL -a a b
    "$VENV/bin/pip" install x
    bash scripts/deps.sh
    ./local.sh
    """
    assert sh(src) == ["bash", "python3", "rsync"]


def test_dynamic_dispatch_to_own_functions() -> None:
    assert sh('stage_lint() { :; }\nfor s in lint; do "stage_$s"; done\n') == []


def test_unreadable_command_words_are_reported() -> None:
    found = shell_findings('tool=$(pick)\n"$tool" --version\n', "x.sh")
    assert unresolved(found) == ["$tool"]
    assert commands(found) == ["pick"]


def test_line_continuations_and_line_numbers() -> None:
    found = shell_findings("echo a\nrsync -a \\\n  x y\n\ngit status\n", "x.sh")
    assert [(f.command, f.where) for f in found] == [("rsync", "x.sh:2"), ("git", "x.sh:5")]


def test_quotes_hide_operators() -> None:
    assert sh("echo 'a; rsync' \"b && curl\" c\\;jq\n") == []


def test_makefile_recipes_only() -> None:
    src = ("X = rsync\n.PHONY: all\nall: deps ## curl is text here\n"
           "\tbash scripts/test.sh $(X)\n\t@rm -rf .venv && echo $$HOME\n")
    found = makefile_findings(src, "Makefile")
    assert commands(found) == ["bash", "rm"]
    assert {f.where for f in found} == {"Makefile:4", "Makefile:5"}


# --- Python -----------------------------------------------------------------------------------------------------

def py(*sources: str) -> list:
    return python_findings((textwrap.dedent(src), f"f{n}.py") for n, src in enumerate(sources))


def test_python_argv_literals_names_and_shell_strings() -> None:
    found = py("""
        import os, subprocess
        from subprocess import check_output as co
        subprocess.run(["rsync", "-a"], check=True)
        cmd = ["git", "status"]
        subprocess.Popen(cmd)
        co(("make", "x"))
        subprocess.run("tar -c . | gzip", shell=True)
        os.system("curl x")
        os.execvp("debootstrap", ["debootstrap"])
        subprocess.run(["sh", "-c", "echo $$; jq ."])
        subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                        f"mount --bind {hosts} /etc/hosts && exec {VENV_BIN / 'x'} -i {inventory}"])
    """)
    assert unresolved(found) == []
    assert commands(found) == ["curl", "debootstrap", "git", "gzip", "jq", "make", "mount", "rsync", "sh", "tar",
                               "unshare"]


def test_python_paths_postgresql_venv_and_interpreter() -> None:
    found = py("""
        import shutil, subprocess, sys
        subprocess.run([str(cluster.bin_dir / "initdb"), "-D", "x"])
        subprocess.run([str(find_bin_dir() / "pg_controldata")])
        subprocess.run([str(VENV_BIN / "ansible-playbook")])
        subprocess.run([sys.executable, "-c", "pass"])
        exe = Path(sys.executable).with_name("ansible-doc")
        subprocess.run([str(exe) if exe.exists() else "ansible-doc"])
        playbook = shutil.which("molecule") or "molecule"
        subprocess.run([playbook, "test"])
    """)
    assert unresolved(found) == []
    assert commands(found) == ["ansible-doc", "ansible-playbook", "molecule", "pg:initdb", "pg:pg_controldata"]


def test_python_wrappers_across_files_and_argv_builders() -> None:
    helpers = """
        import os, subprocess
        def as_postgres(cmd, **kwargs):
            if os.geteuid() == 0:
                cmd = ["runuser", "-u", "postgres", "--", *cmd]
            return subprocess.run(cmd, **kwargs)
        def with_sudo(cmd):
            return ["sudo", *cmd] if os.geteuid() else cmd
        def docker(*args):
            return subprocess.run(["docker", *args])
    """
    tests = """
        import subprocess
        from helpers import as_postgres, docker, with_sudo
        as_postgres([str(bin_dir / "pg_ctl"), "start"])
        def start():
            cmd = ["pg_receivewal", "-D", "x"]
            subprocess.Popen(with_sudo(cmd))
        docker("exec", "node", "psql")
        class T:
            def go(self):
                host.run("apt-get install jq")
    """
    found = py(helpers, tests)
    assert unresolved(found) == []
    assert commands(found) == ["docker", "pg:pg_ctl", "pg_receivewal", "runuser", "sudo"]


def test_python_unreadable_argv_is_reported() -> None:
    found = py("""
        import subprocess
        subprocess.run([f"{tool}-x", "y"])
        subprocess.run(make_argv())
        subprocess.run([str(somewhere / "prog")])
    """)
    assert len(unresolved(found)) == 3


def test_python_inventories_name_connections() -> None:
    found = py("""
        inventory = {"all": {"vars": {"ansible_connection": "community.docker.docker"}}}
        local = {"ansible_connection": "local"}
        other = {"ansible_connection": "winrm"}
    """)
    assert commands(found) == ["docker"]
    assert unresolved(found) == ["ansible_connection: winrm (which program does it run?)"]


# --- Ansible ----------------------------------------------------------------------------------------------------

def test_ansible_localhost_plays_and_delegated_tasks() -> None:
    plays = [
        {"hosts": "localhost", "tasks": [
            {"name": "a", "ansible.builtin.command": {"cmd": "ssh -V"}},
            {"name": "b", "ansible.builtin.command": {"argv": ["bash", "{{ dir }}/build.sh", "pg15"]}},
            {"block": [{"ansible.builtin.shell": "rsync a b | tee c"}]},
            {"community.docker.docker_container_exec": {"argv": ["psql"]}},
        ]},
        {"hosts": "all", "tasks": [
            {"ansible.builtin.command": "pg_ctl start"},
            {"ansible.builtin.command": "curl x", "delegate_to": "localhost"},
        ]},
    ]
    found = ansible_findings(plays, "create.yml")
    assert unresolved(found) == []
    assert commands(found) == ["bash", "curl", "rsync", "ssh", "tee"]


def test_ansible_inventory_connections() -> None:
    molecule = {"provisioner": {"inventory": {"group_vars": {"all": {"ansible_connection": "ssh"}}}}}
    assert commands(ansible_findings(molecule, "molecule.yml")) == ["ssh"]
    templated = ansible_findings({"ansible_connection": "{{ conn }}"}, "m.yml")
    assert unresolved(templated) == ["ansible_connection: {{ conn }}"]


def test_ansible_templated_program_is_reported() -> None:
    plays = [{"hosts": "localhost", "tasks": [{"ansible.builtin.command": {"argv": ["{{ tool }}", "x"]}}]}]
    assert unresolved(ansible_findings(plays, "p.yml")) == ["a templated command"]


# --- the project's files ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", sorted(IN_CONTAINER))
def test_in_container_files_exist_and_are_not_scanned(path: str) -> None:
    assert (REPO / path).is_file(), f"IN_CONTAINER lists {path}, which is gone: drop it"
    scanned = {p.relative_to(REPO).as_posix() for files in project_files(REPO).values() for p in files}
    assert path not in scanned


def test_project_files_cover_scripts_images_makefile_ci_and_harnesses() -> None:
    scanned = {p.relative_to(REPO).as_posix() for files in project_files(REPO).values() for p in files}
    for path in ("scripts/test.sh", "scripts/deps.sh", "scripts/install-packages.sh", "tests/images/build.sh",
                 "Makefile", ".ci/run", "tests/integration/cluster.py", "tests/day2/d2_docker.py",
                 "extensions/molecule/conftest.py", "extensions/molecule/ssh/create.yml", "scripts/bench.py"):
        assert path in scanned
    assert not any(p.startswith("tests/unit/fixtures/") for p in scanned)
    assert "tests/unit/install/test_scan_commands.py" not in scanned  # its argv lists and inventories are examples


# --- install-packages.sh's table, as the check reads it ------------------------------------------------------------

def test_install_table_rows_are_well_formed_and_pg_programs_share_one_row() -> None:
    from check_install import host_locales, row_for, table

    rows = table()
    assert rows, "scripts/install-packages.sh --table printed nothing"
    assert len({row.what for row in rows}) == len(rows)
    assert {row.when for row in rows} <= {"always", "no-engine", "locales"}
    assert {row.package for row in rows if row.when == "no-engine"} == {"docker.io"}
    assert row_for("pg:initdb", rows) is not None
    assert row_for("pg:pg_receivewal", rows) == row_for("pg:initdb", rows)
    assert row_for("jq", rows) is None
    assert {"tr_tr.utf8", "ru_ru.utf8", "zh_cn.utf8"} <= set(host_locales())
