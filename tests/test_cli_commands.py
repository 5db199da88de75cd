"""`hmr-serve COMMAND ...`: dispatch to a subcommand's own parser, the help that lists them, and
clear errors for a first argument that is neither a command nor MODULE:ATTR."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CLI_TIMEOUT, run_cli, server_env
from hmr_serve import cli

SCRIPT = Path(sys.executable).parent / "hmr-serve"


def script(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), *args],
        cwd=cwd,
        env=server_env(),
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
    )


def test_help_lists_the_commands_beside_serving():
    proc = script("--help")
    assert proc.returncode == 0, proc.stderr
    assert "hmr-serve MODULE:ATTR [options]" in proc.stdout
    assert "hmr-serve COMMAND [args]" in proc.stdout
    assert "commands (hmr-serve COMMAND --help for each):" in proc.stdout
    for name, command in cli.SUBCOMMANDS.items():
        line = next(line for line in proc.stdout.splitlines() if line.startswith(f"  {name} "))
        assert command.summary in line
    assert "--port" in proc.stdout and "--reload-exclude" in proc.stdout


def test_graph_has_its_own_help():
    proc = script("graph", "--help")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: hmr-serve graph")
    assert "--closure FILE" in proc.stdout and "--runtime" in proc.stdout
    assert "--port" not in proc.stdout


def test_python_dash_m_dispatches_too(tmp_path):
    (tmp_path / "a.py").write_text("import b\n")
    (tmp_path / "b.py").write_text("")
    proc = run_cli(["graph"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"a.py": ["b.py"], "b.py": []}


@pytest.mark.parametrize("typo", ["grpah", "Graph", "graphs", "grap"])
def test_a_near_miss_of_a_command_says_did_you_mean(typo):
    proc = script(typo)
    assert proc.returncode == 2
    assert f'"{typo}" is neither MODULE:ATTR' in proc.stderr
    assert 'did you mean "hmr-serve graph"?' in proc.stderr


def test_other_non_module_attr_arguments_keep_the_load_error():
    proc = run_cli(["raw_asgi", "--port", "0"])
    assert proc.returncode == 1
    assert 'Import string "raw_asgi" must be in format' in proc.stderr
    assert "did you mean" not in proc.stderr


@pytest.mark.parametrize(
    ("args", "run", "serve"),
    [
        (["entry.py"], "hmr-serve run entry.py", "hmr-serve entry:app"),
        (
            ["entry.py", "--verbose", "my input.txt"],
            "hmr-serve run entry.py --verbose 'my input.txt'",
            "hmr-serve entry:app",
        ),
        (["app/main.py"], "hmr-serve run app/main.py", "hmr-serve app.main:app"),
        (["../my-app/main.py"], "hmr-serve run ../my-app/main.py", "hmr-serve pkg.main:app"),
    ],
)
def test_a_script_path_points_at_run_and_at_module_attr(args, run, serve):
    proc = script(*args)
    assert proc.returncode == 2
    assert "unrecognized arguments" not in proc.stderr
    assert f'"{args[0]}" is a script: `{run}` runs it' in proc.stderr
    assert "Serving takes MODULE:ATTR" in proc.stderr and serve in proc.stderr


def test_the_table_of_commands_is_all_it_takes_to_add_one(tmp_path, monkeypatch, capsys):
    (tmp_path / "echo_command.py").write_text(
        "def main(argv):\n    print('echo', *argv)\n    return 3\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(
        cli.SUBCOMMANDS, "echo", cli.Subcommand("print the arguments", "echo_command:main")
    )
    with pytest.raises(SystemExit) as exited:
        cli.main(["echo", "a", "--b"])
    assert exited.value.code == 3
    assert capsys.readouterr().out == "echo a --b\n"
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    assert "  echo   print the arguments" in capsys.readouterr().out
