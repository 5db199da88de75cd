"""End-to-end tests: FastAPI app (tests/apps/fastapi_app.py) under hmr-serve."""

from __future__ import annotations

import hashlib
import random
import time

import pytest


@pytest.fixture(scope="module")
def server(start_module_server):
    return start_module_server("fastapi_app:app", "--port", "0")


def test_detected_as_asgi(server):
    assert server.interface == "ASGI"


def test_json(client):
    r = client.get("/")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    assert r.json() == {"hello": "fastapi"}


def test_path_and_query_params(client):
    r = client.get("/items/42", params={"q": "some thing", "limit": 5})
    assert r.status_code == 200
    assert r.json() == {"item_id": 42, "q": "some thing", "limit": 5}


def test_path_param_validation_error(client):
    r = client.get("/items/not-an-int")
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["path", "item_id"]


def test_json_body(client):
    r = client.post("/items", json={"name": "widget", "price": 2.5, "tags": ["x"]})
    assert r.status_code == 200
    assert r.json() == {"created": {"name": "widget", "price": 2.5, "tags": ["x"]}, "total": 5.0}


def test_invalid_json_body(client):
    r = client.post("/items", json={"name": "widget"})
    assert r.status_code == 422


def test_form(client):
    r = client.post("/form", data={"username": "ada", "age": "36"})
    assert r.status_code == 200
    assert r.json() == {"username": "ada", "age": 36}


def test_file_upload(client):
    data = random.Random(3).randbytes(300_000)
    r = client.post(
        "/upload",
        files={"file": ("payload.bin", data, "application/octet-stream")},
        data={"note": "hi"},
    )
    assert r.status_code == 200, r.text
    assert r.json() == {
        "filename": "payload.bin",
        "content_type": "application/octet-stream",
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "note": "hi",
    }


def test_streaming_response_arrives_in_chunks(client):
    arrivals: list[tuple[float, bytes]] = []
    with client.stream("GET", "/stream") as r:
        assert r.status_code == 200
        for chunk in r.iter_raw():
            arrivals.append((time.monotonic(), chunk))
    assert b"".join(c for _, c in arrivals) == b"part-0\npart-1\npart-2\npart-3\n"
    assert len(arrivals) >= 2, arrivals
    assert b"part-3" not in arrivals[0][1]
    assert arrivals[-1][0] - arrivals[0][0] >= 0.3


def test_sync_endpoint(client):
    assert client.get("/sync").json() == {"sync": True}


def test_plain_text(client):
    r = client.get("/text")
    assert r.text == "plain text"
    assert r.headers["content-type"].startswith("text/plain")


def test_404_unknown_route(client):
    r = client.get("/no/such/route")
    assert r.status_code == 404
    assert r.json() == {"detail": "Not Found"}


def test_404_http_exception(client):
    r = client.get("/missing")
    assert r.status_code == 404
    assert r.json() == {"detail": "custom missing"}


def test_405(client):
    r = client.delete("/")
    assert r.status_code == 405


def test_unhandled_exception_500_then_still_serving(server, client):
    r = client.get("/boom")
    assert r.status_code == 500
    server.wait_for_line("fastapi boom")
    assert client.get("/").status_code == 200
    with server.client() as fresh:
        assert fresh.get("/").json() == {"hello": "fastapi"}
    assert "panicked" not in server.output


def test_openapi_docs(client):
    assert client.get("/openapi.json").json()["paths"]["/items/{item_id}"]
    r = client.get("/docs")
    assert r.status_code == 200
    assert "swagger" in r.text.lower()
