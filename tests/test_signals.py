"""Graceful shutdown on SIGINT / SIGTERM."""

from __future__ import annotations

import signal
import socket
import threading

import httpx
import pytest
from conftest import EXAMPLES_DIR, read_markers, wait_for_marker


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
