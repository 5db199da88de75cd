"""Graceful shutdown on SIGINT / SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import textwrap
import threading
import time

import httpx
import pytest
from conftest import APPS_DIR, EXAMPLES_DIR, Server, read_markers, wait_for_marker


def assert_port_closed(port: int) -> None:
    with socket.socket() as s:
        s.settimeout(5)
        assert s.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still accepts connections"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_asgi_signal_exits_0_and_runs_lifespan_shutdown(start_server, markers_file, sig):
    server = start_server(
        "raw_asgi:app", "--port", "0", env={"HMR_TEST_MARKERS": str(markers_file)}
    )
    assert read_markers(markers_file) == ["startup"]
    with server.client() as c:
        assert c.get("/").status_code == 200
    rc = server.stop(sig, timeout=15)
    assert rc == 0, server.output
    assert read_markers(markers_file) == ["startup", "shutdown"]
    assert "panicked" not in server.output
    assert_port_closed(server.port)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_wsgi_signal_exits_0(start_server, sig):
    server = start_server("raw_wsgi:app", "--port", "0")
    with server.client() as c:
        assert c.get("/fast").status_code == 200
    assert server.stop(sig, timeout=15) == 0, server.output
    assert "panicked" not in server.output
    assert_port_closed(server.port)


def test_idle_keep_alive_connection_does_not_block_shutdown(start_server):
    server = start_server("raw_asgi:app", "--port", "0")
    with server.client() as c:
        assert c.get("/").status_code == 200
        # the client keeps its connection open while the server stops
        assert server.stop(signal.SIGINT, timeout=15) == 0, server.output


def _run_in_flight(server, path: str, params: dict, result: dict) -> threading.Thread:
    def run():
        try:
            with server.client() as c:
                r = c.get(path, params=params)
                result["status"] = r.status_code
                result["text"] = r.text
        except httpx.HTTPError as exc:  # recorded, asserted on by the test
            result["error"] = repr(exc)

    t = threading.Thread(target=run)
    t.start()
    return t


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_asgi_in_flight_request_finishes_on_shutdown(start_server, markers_file, sig):
    server = start_server(
        "raw_asgi:app", "--port", "0", env={"HMR_TEST_MARKERS": str(markers_file)}
    )
    result: dict = {}
    t = _run_in_flight(server, "/slow", {"seconds": 1.5}, result)
    try:
        wait_for_marker(markers_file, "slow-started")
        rc = server.stop(sig, timeout=20)
    finally:
        t.join(30)
    assert result.get("status") == 200, (result, server.output)
    assert result["text"] == "slow done"
    assert rc == 0, server.output
    # the in-flight request finished before lifespan shutdown ran
    assert read_markers(markers_file) == ["startup", "slow-started", "slow-finished", "shutdown"]


def test_wsgi_in_flight_request_finishes_on_shutdown(start_server, markers_file):
    server = start_server(
        "raw_wsgi:app", "--port", "0", env={"HMR_TEST_MARKERS": str(markers_file)}
    )
    result: dict = {}
    t = _run_in_flight(server, "/slow", {"seconds": 1.5}, result)
    try:
        wait_for_marker(markers_file, "wsgi-slow-started")
        rc = server.stop(signal.SIGINT, timeout=20)
    finally:
        t.join(30)
    assert result.get("status") == 200, (result, server.output)
    assert result["text"] == "slow done"
    assert rc == 0, server.output


def test_starlette_lifespan_shutdown_on_sigterm(start_server, markers_file):
    server = start_server(
        "starlette_app:app", "--port", "0", env={"HMR_TEST_MARKERS": str(markers_file)}
    )
    assert server.stop(signal.SIGTERM, timeout=15) == 0, server.output
    assert read_markers(markers_file) == ["starlette-startup", "starlette-shutdown"]


def test_django_asgi_without_lifespan_support_stops_cleanly(start_server):
    # Django's ASGI handler rejects the lifespan scope; with --lifespan auto the
    # server must carry on serving and still shut down cleanly.
    server = start_server("mysite.asgi:application", "--port", "0", cwd=EXAMPLES_DIR / "django")
    with server.client() as c:
        assert c.get("/admin/login/").status_code == 200
    assert server.stop(signal.SIGINT, timeout=15) == 0, server.output
    assert "panicked" not in server.output


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("reload_flag", [[], ["--no-reload"]], ids=["reload", "no-reload"])
def test_signal_right_after_ready_line_is_graceful(start_server, markers_file, sig, reload_flag):
    # Once "serving ..." is printed, CTRL+C must already be handled gracefully:
    # an editor/IDE or a script may stop the server the moment it is ready.
    server = start_server(
        "raw_asgi:app", "--port", "0", *reload_flag, env={"HMR_TEST_MARKERS": str(markers_file)}
    )
    rc = server.stop(sig, timeout=15)
    assert rc == 0, f"exit code {rc}\n{server.output}"
    assert read_markers(markers_file) == ["startup", "shutdown"]


# --- signals at awkward moments -------------------------------------------------------------


def processes_in_group(pgid: int) -> list[int]:
    """PIDs whose process group is `pgid` (the server's own, see conftest)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            found.append(int(entry))
    return found


def exit_and_check_group(server, sig: int, timeout: float) -> int:
    """Signals the server, waits for its exit, and checks it left no process behind."""
    server.proc.send_signal(sig)
    try:
        rc = server.proc.wait(timeout)
    except subprocess.TimeoutExpired:
        server.kill()
        raise AssertionError(f"no exit within {timeout}s after {sig}\n{server.output}") from None
    left = processes_in_group(server.proc.pid)
    server.kill()
    assert left == [], f"processes left behind: {left}\n{server.output}"
    return rc


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_during_lifespan_startup_exits_at_once(markers_file, sig):
    server = Server(
        "slow_startup:app",
        ("--port", "0"),
        APPS_DIR,
        {"HMR_TEST_MARKERS": str(markers_file)},
    )
    try:
        wait_for_marker(markers_file, "slow-startup-began", timeout=60)
        rc = exit_and_check_group(server, sig, timeout=15)
    finally:
        server.kill()
    assert rc == 0, server.output
    assert "slow-startup-cancelled" in read_markers(markers_file)
    assert "Traceback" not in server.output, server.output


def test_request_longer_than_the_graceful_timeout_does_not_hold_shutdown(
    start_server, markers_file
):
    server = start_server(
        "raw_asgi:app",
        "--port",
        "0",
        "--timeout-graceful-shutdown",
        "1",
        env={"HMR_TEST_MARKERS": str(markers_file)},
    )
    result: dict = {}
    t = _run_in_flight(server, "/slow", {"seconds": 60}, result)
    try:
        wait_for_marker(markers_file, "slow-started")
        rc = exit_and_check_group(server, signal.SIGINT, timeout=20)
    finally:
        t.join(30)
    assert rc == 0, server.output
    # Cut off at the deadline: never the app's answer.
    assert result.get("status") != 200, result
    assert "graceful shutdown timed out" in server.output


def test_second_ctrl_c_forces_exit(start_server, markers_file):
    server = start_server(
        "raw_asgi:app",
        "--port",
        "0",
        "--timeout-graceful-shutdown",
        "120",
        env={"HMR_TEST_MARKERS": str(markers_file)},
    )
    result: dict = {}
    t = _run_in_flight(server, "/slow", {"seconds": 120}, result)
    try:
        wait_for_marker(markers_file, "slow-started")
        server.proc.send_signal(signal.SIGINT)
        server.wait_for_line("Shutting down", timeout=15)
        rc = exit_and_check_group(server, signal.SIGINT, timeout=15)
    finally:
        t.join(30)
    assert rc == 1, server.output
    assert "Forced exit." in server.output


SLOW_MODULE = """
import os
import time

if os.environ.get("SLOW_RELOAD_MARKERS") and {slow}:
    with open(os.environ["SLOW_RELOAD_MARKERS"], "a") as f:
        f.write("reexec-started\\n")
    time.sleep(3)
VALUE = {value!r}
"""

MAIN_MODULE = """
import slowmod


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": slowmod.VALUE.encode()})
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_during_a_hot_reload_ends_cleanly(start_server, tmp_path, sig):
    (tmp_path / "slowmod.py").write_text(SLOW_MODULE.format(slow=False, value="v1"))
    (tmp_path / "main.py").write_text(textwrap.dedent(MAIN_MODULE))
    markers = tmp_path / "markers.txt"
    server = start_server(
        "main:app",
        "--port",
        "0",
        "--timeout-graceful-shutdown",
        "5",
        cwd=tmp_path,
        env={"SLOW_RELOAD_MARKERS": str(markers)},
    )
    with server.client() as c:
        assert c.get("/").text == "v1"
    (tmp_path / "slowmod.py").write_text(SLOW_MODULE.format(slow=True, value="v2"))
    wait_for_marker(markers, "reexec-started", timeout=20)
    rc = exit_and_check_group(server, sig, timeout=20)
    assert rc == 0, server.output
    assert "panicked" not in server.output
    assert_port_closed(server.port)


RESTART_APP = """
import os

VERSION = {version!r}


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = f"{{VERSION}} {{os.getpid()}}".encode()
    await send({{"type": "http.response.start", "status": 200, "headers": []}})
    await send({{"type": "http.response.body", "body": body}})
"""


def test_no_process_left_after_a_full_restart(start_server, tmp_path):
    (tmp_path / "app.py").write_text(RESTART_APP.format(version="v1"))
    server = start_server("app:app", "--port", "0", "--reload-strategy", "restart", cwd=tmp_path)
    with server.client() as c:
        first_pid = c.get("/").text.split()[1]
    (tmp_path / "app.py").write_text(RESTART_APP.format(version="v2"))
    deadline = time.monotonic() + 30
    while True:
        try:
            with server.client(timeout=5) as c:
                text = c.get("/").text
        except httpx.HTTPError:
            text = ""
        if text.startswith("v2") or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert text.startswith("v2"), server.output
    assert text.split()[1] == first_pid  # exec: the same process, no child
    assert processes_in_group(server.proc.pid) == [server.proc.pid]
    assert exit_and_check_group(server, signal.SIGINT, timeout=15) == 0, server.output
