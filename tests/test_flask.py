"""End-to-end tests: Flask app (tests/apps/flask_app.py) under hmr-serve."""

from __future__ import annotations

import hashlib
import random

import pytest


@pytest.fixture(scope="module")
def server(start_module_server):
    return start_module_server("flask_app:app", "--port", "0")


def test_detected_as_wsgi(server):
    assert server.interface == "WSGI"


def test_index(client):
    r = client.get("/")
    assert r.status_code == 200
    assert r.text == "hello from flask"


def test_path_and_query(client):
    r = client.get("/hello/ada", params={"x": "1"})
    assert r.json() == {"greeting": "hello ada", "args": {"x": "1"}}


def test_unicode_path(client):
    r = client.get("/hello/J%C3%BCrgen")
    assert r.json()["greeting"] == "hello Jürgen"


def test_form(client):
    r = client.post("/form", data={"a": "1", "b": "two words"})
    assert r.json() == {"form": {"a": "1", "b": "two words"}}


def test_json(client):
    r = client.post("/json", json={"nested": {"list": [1, 2, 3]}})
    assert r.json() == {"received": {"nested": {"list": [1, 2, 3]}}}


def test_upload(client):
    data = random.Random(5).randbytes(1_000_000)
    r = client.post("/upload", files={"file": ("data.bin", data)})
    assert r.status_code == 200, r.text
    assert r.json() == {
        "filename": "data.bin",
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }


def test_template_autoescape(client):
    r = client.get("/template", params={"title": "<b>bold</b>"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert "<h1>&lt;b&gt;bold&lt;/b&gt;</h1>" in r.text
    assert "<li>c</li>" in r.text


def test_streamed_response(client):
    r = client.get("/stream")
    assert r.text == "line-0\nline-1\nline-2\n"


def test_url_for_external(server, client):
    r = client.get("/url")
    assert r.json() == {"url": f"http://127.0.0.1:{server.port}/hello/x", "script_root": ""}


def test_404(client):
    r = client.get("/nope")
    assert r.status_code == 404


def test_exception_gives_500_and_server_survives(server, client):
    r = client.get("/boom")
    assert r.status_code == 500
    server.wait_for_line("flask boom")
    assert client.get("/").text == "hello from flask"
