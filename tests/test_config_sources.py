"""Option defaults from `[tool.hmr-serve]` in pyproject.toml and `HMR_SERVE_*` environment
variables: command line > environment > pyproject.toml > built-in default."""

from __future__ import annotations

import textwrap

import pytest
from conftest import APPS_DIR, run_cli


def _pyproject(directory, body: str) -> None:
    (directory / "pyproject.toml").write_text(
        '[project]\nname = "demo"\n\n[tool.hmr-serve]\n' + textwrap.dedent(body)
    )


def _root_path(server) -> str:
    with server.client() as c:
        return c.get("/scope").json()["root_path"]


def _start(start_server, tmp_path, *args, env=None):
    return start_server(
        "raw_asgi:app", "--port", "0", "--app-dir", str(APPS_DIR), *args, cwd=tmp_path, env=env
    )


def test_pyproject_supplies_defaults(start_server, tmp_path):
    _pyproject(
        tmp_path,
        """\
        root-path = "/from-pyproject"
        server_header = false
        header = ["X-Source: pyproject", "X-Other: 1"]
        access-log = false
        """,
    )
    server = _start(start_server, tmp_path)
    with server.client() as c:
        r = c.get("/scope")
    assert r.json()["root_path"] == "/from-pyproject"
    assert "server" not in r.headers
    assert r.headers["x-source"] == "pyproject"
    assert r.headers["x-other"] == "1"
    assert server.count_lines(r'"GET /scope') == 0, server.output


def test_environment_beats_pyproject_and_command_line_beats_both(start_server, tmp_path):
    _pyproject(tmp_path, 'root-path = "/from-pyproject"\nheader = ["X-Source: pyproject"]\n')
    env = {"HMR_SERVE_ROOT_PATH": "/from-env", "HMR_SERVE_HEADER": "X-Source: env"}
    server = _start(start_server, tmp_path, env=env)
    with server.client() as c:
        r = c.get("/scope")
    assert r.json()["root_path"] == "/from-env"
    assert r.headers.get_list("x-source") == ["env"]

    server = _start(
        start_server, tmp_path, "--root-path", "/from-cli", "--header", "X-Source: cli", env=env
    )
    with server.client() as c:
        r = c.get("/scope")
    assert r.json()["root_path"] == "/from-cli"
    assert r.headers.get_list("x-source") == ["cli"]


def test_environment_booleans_and_lists(start_server, tmp_path):
    _pyproject(tmp_path, "server-header = false\n")
    env = {"HMR_SERVE_SERVER_HEADER": "true", "HMR_SERVE_HEADER": "X-A: 1,X-B: 2"}
    server = _start(start_server, tmp_path, env=env)
    with server.client() as c:
        r = c.get("/")
    assert r.headers["server"] == "hmr-serve"
    assert (r.headers["x-a"], r.headers["x-b"]) == ("1", "2")
    # The command line's --no-server-header beats the environment's true.
    server = _start(start_server, tmp_path, "--no-server-header", env=env)
    with server.client() as c:
        assert "server" not in c.get("/").headers


def test_without_a_table_built_in_defaults_apply(start_server, tmp_path):
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "demo"\n')
    server = _start(start_server, tmp_path)
    assert _root_path(server) == ""


@pytest.mark.parametrize(
    ("pyproject", "env", "needles"),
    [
        ("no-such-option = 1\n", {}, ["[tool.hmr-serve] no-such-option", "unknown option"]),
        ("", {"HMR_SERVE_NO_SUCH": "1"}, ["HMR_SERVE_NO_SUCH", "unknown option"]),
        ('port = "eighty"\n', {}, ["[tool.hmr-serve] port", "eighty"]),
        ('lifespan = "sometimes"\n', {}, ["lifespan", "sometimes"]),
        ("", {"HMR_SERVE_ACCESS_LOG": "maybe"}, ["HMR_SERVE_ACCESS_LOG", "true or false"]),
        ("root-path = [\n", {}, ["pyproject.toml"]),  # not TOML
    ],
)
def test_bad_keys_and_values_are_named(tmp_path, pyproject, env, needles):
    _pyproject(tmp_path, pyproject)
    proc = run_cli(["raw_asgi:app", "--port", "0", "--app-dir", str(APPS_DIR)], tmp_path, env)
    assert proc.returncode == 2, proc.stderr
    for needle in needles:
        assert needle in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_workers_from_pyproject_get_the_workers_message(tmp_path):
    _pyproject(tmp_path, "workers = 4\n")
    proc = run_cli(["raw_asgi:app", "--port", "0", "--app-dir", str(APPS_DIR)], tmp_path)
    assert proc.returncode == 2
    assert "--workers is not supported" in proc.stderr
