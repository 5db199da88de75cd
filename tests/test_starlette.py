"""End-to-end tests: Starlette app (tests/apps/starlette_app.py) under hmr-serve."""

from __future__ import annotations

import signal

import pytest
from conftest import read_markers, wait_for_marker


@pytest.fixture(scope="module")
def markers(tmp_path_factory):
    return tmp_path_factory.mktemp("starlette") / "markers.txt"


@pytest.fixture(scope="module")
def server(start_module_server, markers):
    return start_module_server(
        "starlette_app:app", "--port", "0", env={"HMR_TEST_MARKERS": str(markers)}
    )


def test_homepage(client):
    r = client.get("/")
    assert r.status_code == 200
    assert r.text == "hello from starlette"


def test_path_param_and_query(client):
    r = client.get("/users/12", params={"sort": "desc"})
    assert r.json() == {"user_id": 12, "q": {"sort": "desc"}}


def test_echo(client):
    r = client.post("/echo", content=b"\x00\x01binary\xff")
    assert r.content == b"\x00\x01binary\xff"


def test_lifespan_state(client, markers):
    assert "starlette-startup" in read_markers(markers)
    r = client.get("/state")
    assert r.status_code == 200, r.text
    assert r.json() == {"db": "connected"}


def test_background_task_runs_after_response(client, markers):
    r = client.get("/background", params={"tag": "t1"})
    assert r.text == "scheduled"
    wait_for_marker(markers, "background:t1")


def test_url_for_uses_host(server, client):
    r = client.get("/url-for")
    assert r.json() == {"url": f"http://127.0.0.1:{server.port}/users/7"}


def test_404(client):
    assert client.get("/nope").status_code == 404


def test_shutdown_runs_lifespan_shutdown(server, markers):
    # last test of the module: stop the shared server
    assert server.stop(signal.SIGINT) == 0, server.output
    assert "starlette-shutdown" in read_markers(markers)
