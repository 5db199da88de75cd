"""Command-line behaviour: flags, app loading, and clear errors for bad input."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
import pytest
from conftest import APPS_DIR, free_port, read_markers, run_cli


def assert_clean_failure(proc, *needles: str) -> str:
    """Exit code != 0, an ERROR: line, every needle in stderr, no Rust panic."""
    output = proc.stderr + proc.stdout
    assert proc.returncode != 0, f"expected failure, got exit 0\n{output}"
    assert "panicked" not in output, output
    assert "RUST_BACKTRACE" not in output, output
    assert "ERROR:" in proc.stderr, output
    for needle in needles:
        assert needle in proc.stderr, f"{needle!r} not in stderr:\n{output}"
    return proc.stderr


# -- bad input -----------------------------------------------------------------


def test_module_not_found():
    proc = run_cli(["does_not_exist_xyz:app", "--port", "0"])
    assert_clean_failure(proc, "does_not_exist_xyz")


def test_nested_module_not_found():
    proc = run_cli(["raw_asgi_pkg_missing.sub:app", "--port", "0"])
    assert_clean_failure(proc, "raw_asgi_pkg_missing")


def test_attribute_missing():
    proc = run_cli(["raw_asgi:no_such_attribute", "--port", "0"])
    assert_clean_failure(proc, "no_such_attribute", "raw_asgi")


def test_dotted_attribute_missing():
    proc = run_cli(["raw_asgi:namespace.inner.nope", "--port", "0"])
    err = assert_clean_failure(proc, "raw_asgi")
    assert "nope" in err


def test_import_time_exception_shows_user_traceback():
    proc = run_cli(["broken_import:app", "--port", "0"])
    err = assert_clean_failure(proc, "broken on purpose at import time", "broken_import.py")
    assert "Traceback" in err
    assert "RuntimeError" in err
    assert "helper" in err  # the frame inside the user module


def test_import_error_inside_user_module_names_the_missing_dependency():
    proc = run_cli(["imports_missing:app", "--port", "0"])
    assert_clean_failure(proc, "definitely_missing_dependency_xyz")


def test_syntax_error_in_user_module(tmp_path):
    (tmp_path / "bad_syntax.py").write_text("def app(:\n    pass\n")
    proc = run_cli(["bad_syntax:app", "--port", "0"], cwd=tmp_path)
    err = assert_clean_failure(proc, "bad_syntax.py")
    assert "SyntaxError" in err


@pytest.mark.parametrize("spec", ["raw_asgi", "raw_asgi:", ":app"])
def test_bad_app_spec_format(spec):
    proc = run_cli([spec, "--port", "0"])
    err = assert_clean_failure(proc)
    assert "module:attr" in err.lower() or "format" in err.lower() or spec in err, err


def test_port_in_use():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        proc = run_cli(["raw_asgi:app", "--port", str(port)])
    err = assert_clean_failure(proc)
    assert "in use" in err.lower(), err
    assert str(port) in err


def test_factory_that_raises():
    proc = run_cli(["factories:raising_factory", "--factory", "--port", "0"])
    assert_clean_failure(proc, "factory failed on purpose")


def test_missing_app_argument():
    proc = run_cli([])
    assert proc.returncode != 0
    assert "panicked" not in proc.stderr + proc.stdout


def test_invalid_flag_values():
    for args in (
        ["raw_asgi:app", "--port", "not-a-port"],
        ["raw_asgi:app", "--interface", "cgi"],
        ["raw_asgi:app", "--lifespan", "sometimes"],
        ["raw_asgi:app", "--log-level", "loud"],
    ):
        proc = run_cli(args)
        assert proc.returncode != 0, args
        assert "panicked" not in proc.stderr + proc.stdout, args


def test_help():
    proc = run_cli(["--help"])
    assert proc.returncode == 0
    for flag in (
        "--host",
        "--port",
        "--uds",
        "--app-dir",
        "--factory",
        "--interface",
        "--env-file",
        "--log-level",
        "--no-access-log",
        "--root-path",
        "--no-reload",
        "--lifespan",
    ):
        assert flag in proc.stdout, flag


# -- flags that change how the app is found or run ------------------------------


def test_factory(start_server, markers_file):
    server = start_server(
        "raw_asgi:create_app",
        "--factory",
        "--port",
        "0",
        env={"HMR_TEST_MARKERS": str(markers_file)},
    )
    assert server.interface == "ASGI"
    with server.client() as c:
        assert c.get("/").text == "hello from raw asgi"
    assert "factory-called" in read_markers(markers_file)


def test_factory_returning_wsgi_app(start_server):
    server = start_server("factories:wsgi_factory", "--factory", "--port", "0")
    assert server.interface == "WSGI"
    with server.client() as c:
        assert c.get("/").text == "hello from raw wsgi"


def test_dotted_attribute_path(start_server):
    server = start_server("fastapi_app:namespace.inner.app", "--port", "0")
    with server.client() as c:
        assert c.get("/").json() == {"hello": "fastapi"}


def test_interface_wsgi_forced(start_server):
    server = start_server("raw_wsgi:star_args_app", "--interface", "wsgi", "--port", "0")
    assert server.interface == "WSGI"
    with server.client() as c:
        r = c.get("/environ")
    assert r.status_code == 200
    assert r.json()["wsgi.version"] == [1, 0]


def test_interface_asgi_forced(start_server):
    server = start_server("raw_asgi:app", "--interface", "asgi", "--port", "0")
    assert server.interface == "ASGI"
    with server.client() as c:
        assert c.get("/").text == "hello from raw asgi"


def test_env_file(start_server, tmp_path):
    env_file = tmp_path / "test.env"
    env_file.write_text(
        '# a comment\nHMR_TEST_FROM_ENV_FILE=hello-env\nHMR_TEST_QUOTED="quoted value"\n'
    )
    server = start_server("raw_wsgi:app", "--port", "0", "--env-file", str(env_file))
    with server.client() as c:
        value = c.get("/env", params={"name": "HMR_TEST_FROM_ENV_FILE"}).json()["value"]
        quoted = c.get("/env", params={"name": "HMR_TEST_QUOTED"}).json()["value"]
    assert value == "hello-env"
    assert quoted == "quoted value"


def test_app_dir(start_server, tmp_path):
    server = start_server("raw_asgi:app", "--port", "0", "--app-dir", str(APPS_DIR), cwd=tmp_path)
    with server.client() as c:
        assert c.get("/").text == "hello from raw asgi"


def test_app_dir_defaults_to_cwd(tmp_path):
    # the app lives in the cwd only; without --app-dir the server must still find it
    (tmp_path / "cwd_only_app.py").write_text(
        "async def app(scope, receive, send):\n    pass\n",
    )
    proc = run_cli(["cwd_only_app:missing_attr", "--port", "0"], cwd=tmp_path)
    # the module is found (the error is about the attribute, not the module)
    assert_clean_failure(proc, "missing_attr", "cwd_only_app")


def test_explicit_port(start_server):
    port = free_port()
    server = start_server("raw_asgi:app", "--port", str(port))
    assert server.url == f"http://127.0.0.1:{port}"
    with httpx.Client(trust_env=False, timeout=30) as c:
        assert c.get(f"http://127.0.0.1:{port}/").status_code == 200


def test_host_localhost_ipv4(start_server):
    server = start_server("raw_asgi:app", "--host", "127.0.0.1", "--port", "0")
    with server.client() as c:
        scope = c.get("/scope").json()
    assert scope["server"] == ["127.0.0.1", server.port]


def test_uds(start_server):
    sock_dir = tempfile.mkdtemp(prefix="hmr-uds-", dir="/tmp")
    path = os.path.join(sock_dir, "s.sock")
    server = start_server("raw_asgi:app", "--uds", path)
    assert server.uds == path
    line = server.wait_for_line(r"serving unix:")
    assert f"serving unix:{path} (ASGI, press CTRL+C to quit)" in line
    assert Path(path).exists()
    with server.client() as c:
        assert c.get("/").text == "hello from raw asgi"
        r = c.post("/echo", content=b"over a unix socket")
        assert r.content == b"over a unix socket"
        scope = c.get("/scope").json()
    assert scope["type"] == "http"
    assert scope["path"] == "/scope"
    assert server.stop() == 0, server.output


def test_uds_wsgi(start_server):
    sock_dir = tempfile.mkdtemp(prefix="hmr-uds-", dir="/tmp")
    path = os.path.join(sock_dir, "w.sock")
    server = start_server("raw_wsgi:app", "--uds", path)
    assert server.interface == "WSGI"
    with server.client() as c:
        assert c.get("/").text == "hello from raw wsgi"


def test_root_path_asgi(start_server):
    server = start_server("raw_asgi:app", "--port", "0", "--root-path", "/prefix")
    with server.client() as c:
        scope = c.get("/scope/x").json()
    assert scope["root_path"] == "/prefix"
    # ASGI servers differ on whether path repeats the root path; both end in /scope/x
    assert scope["path"] in ("/scope/x", "/prefix/scope/x"), scope["path"]


def test_root_path_wsgi(start_server):
    server = start_server("raw_wsgi:app", "--port", "0", "--root-path", "/prefix")
    with server.client() as c:
        env = c.get("/environ/x").json()
    assert env["SCRIPT_NAME"] == "/prefix"
    assert env["PATH_INFO"] == "/environ/x"


def test_root_path_flask_url_for(start_server):
    server = start_server("flask_app:app", "--port", "0", "--root-path", "/mounted")
    with server.client() as c:
        r = c.get("/url")
    assert r.json() == {
        "url": f"http://127.0.0.1:{server.port}/mounted/hello/x",
        "script_root": "/mounted",
    }


def test_root_path_fastapi_routing(start_server):
    server = start_server("fastapi_app:app", "--port", "0", "--root-path", "/api")
    with server.client() as c:
        r = c.get("/items/3")
        assert r.status_code == 200
        assert r.json()["item_id"] == 3


def test_no_access_log(start_server):
    server = start_server("raw_asgi:app", "--port", "0", "--no-access-log")
    with server.client() as c:
        for _ in range(3):
            assert c.get("/?no-access-log-check").status_code == 200
        # an app error is still logged, and it comes after the requests above
        assert c.get("/error-before").status_code == 500
    server.wait_for_line("boom before start")
    assert server.count_lines(r'"GET /') == 0, server.output


def test_access_log_on_by_default(start_server):
    server = start_server("raw_wsgi:app", "--port", "0")
    with server.client() as c:
        c.get("/fast")
    server.wait_for_line(r'"GET /fast HTTP/1\.1" 200')


def test_lifespan_off(start_server, markers_file):
    server = start_server(
        "raw_asgi:app",
        "--port",
        "0",
        "--lifespan",
        "off",
        env={"HMR_TEST_MARKERS": str(markers_file)},
    )
    with server.client() as c:
        assert c.get("/").status_code == 200
        state = c.get("/state").json()
    assert state == {}
    assert server.stop() == 0
    assert "startup" not in read_markers(markers_file)
    assert "shutdown" not in read_markers(markers_file)


def test_lifespan_on(start_server, markers_file):
    server = start_server(
        "raw_asgi:app",
        "--port",
        "0",
        "--lifespan",
        "on",
        env={"HMR_TEST_MARKERS": str(markers_file)},
    )
    assert read_markers(markers_file) == ["startup"]
    assert server.stop() == 0
    assert read_markers(markers_file) == ["startup", "shutdown"]


def test_no_reload_flag(start_server):
    server = start_server("raw_asgi:app", "--port", "0", "--no-reload")
    with server.client() as c:
        assert c.get("/").status_code == 200
    assert server.stop() == 0


@pytest.mark.parametrize("level", ["debug", "info", "trace"])
def test_log_levels_that_show_info(start_server, level):
    server = start_server("raw_asgi:app", "--port", "0", "--log-level", level)
    with server.client() as c:
        assert c.get("/").status_code == 200


def test_log_prefixes_are_uvicorn_style(start_server):
    server = start_server("raw_asgi:app", "--port", "0")
    with server.client() as c:
        c.get("/error-before")
    server.wait_for_line("boom before start")
    for line in server.lines:
        if line.startswith(("INFO", "ERROR", "WARNING", "DEBUG", "CRITICAL")):
            assert re.match(r"(INFO|ERROR|WARNING|DEBUG|CRITICAL|TRACE):\s+\S", line), line
            level, rest = line.split(":", 1)
            assert len(level) + 1 + (len(rest) - len(rest.lstrip(" "))) == 10, line
    assert any(line.startswith("ERROR:    ") for line in server.lines), server.output


def test_console_script():
    script = Path(sys.executable).parent / "hmr-serve"
    assert script.exists(), f"console script not installed at {script}"
    proc = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "--port" in proc.stdout
