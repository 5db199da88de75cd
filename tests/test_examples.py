"""The example apps in examples/ start under hmr-serve and answer as documented."""

from __future__ import annotations

import signal

import pytest
from conftest import EXAMPLES_DIR


@pytest.fixture(scope="module")
def fastapi_server(start_module_server):
    # app/model.py sleeps ~2 s at import (simulated model load)
    return start_module_server("app.main:app", "--port", "0", cwd=EXAMPLES_DIR / "fastapi")


@pytest.fixture(scope="module")
def flask_server(start_module_server):
    return start_module_server("app:app", "--port", "0", cwd=EXAMPLES_DIR / "flask")


def test_fastapi_example_hello(fastapi_server):
    assert fastapi_server.interface == "ASGI"
    with fastapi_server.client() as c:
        r = c.get("/")
    assert r.status_code == 200
    body = r.json()
    assert body["message"] == "hello from the hmr-serve FastAPI example"
    assert body["model_load_s"] >= 1.5


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("I love this great server", "positive"),
        ("this is slow and broken", "negative"),
        ("the sky is blue", "neutral"),
    ],
)
def test_fastapi_example_predict(fastapi_server, text, label):
    with fastapi_server.client() as c:
        r = c.get("/predict", params={"text": text})
    assert r.status_code == 200
    assert r.json()["label"] == label
    assert r.json()["text"] == text


def test_fastapi_example_predict_requires_text(fastapi_server):
    with fastapi_server.client() as c:
        assert c.get("/predict").status_code == 422


def test_fastapi_example_items(fastapi_server):
    with fastapi_server.client() as c:
        r = c.post("/items", json={"name": "widget", "price": 9.5, "tags": ["demo"]})
        assert r.status_code == 201
        item = r.json()
        assert item["name"] == "widget"
        assert item["price"] == 9.5
        assert isinstance(item["id"], int)
        assert c.post("/items", json={"name": "", "price": -1}).status_code == 422
        assert item in c.get("/items").json()


def test_fastapi_example_stops_cleanly(fastapi_server):
    assert fastapi_server.stop(signal.SIGINT) == 0, fastapi_server.output


def test_flask_example(flask_server):
    assert flask_server.interface == "WSGI"
    with flask_server.client() as c:
        r = c.get("/", params={"name": "tester"})
        assert r.status_code == 200
        assert "<h1>Hello, tester!</h1>" in r.text
        r = c.post("/sign", data={"entry": "hello <guestbook>"})
        assert r.status_code == 201
        assert "<li>hello &lt;guestbook&gt;</li>" in r.text
        assert c.get("/api/health").json() == {"status": "ok", "entries": 1}
