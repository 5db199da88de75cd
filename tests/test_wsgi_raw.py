"""End-to-end tests against the raw WSGI test app (tests/apps/raw_wsgi.py)."""

from __future__ import annotations

import asyncio
import hashlib
import random
import threading
import time

import httpx
import pytest
from conftest import read_markers, wait_for_marker

TEN_MB = 10 * 1024 * 1024
LINES_BODY = b"first line\nsecond line\n\nfourth line without newline"
EXPECTED_LINES = ["first line\n", "second line\n", "\n", "fourth line without newline"]


@pytest.fixture(scope="module")
def markers(tmp_path_factory):
    return tmp_path_factory.mktemp("raw_wsgi") / "markers.txt"


@pytest.fixture(scope="module")
def server(start_module_server, markers):
    return start_module_server(
        "raw_wsgi:app", "--port", "0", env={"HMR_TEST_MARKERS": str(markers)}
    )


def test_detected_as_wsgi(server):
    assert server.interface == "WSGI"
    line = server.wait_for_line(r"serving http://")
    assert "(WSGI, press CTRL+C to quit)" in line


def test_hello(client):
    r = client.get("/")
    assert r.status_code == 200
    assert r.text == "hello from raw wsgi"


def test_environ_get(server, client):
    r = client.get(
        httpx.URL(server.url + "/environ/a%20b/%C3%A9?x=1&y=%20z"),
        headers=[("X-Custom-Header", "Value"), ("X-Multi", "a"), ("X-Multi", "b")],
    )
    assert r.status_code == 200, r.text
    env = r.json()
    assert env["REQUEST_METHOD"] == "GET"
    assert env["SCRIPT_NAME"] == ""
    # PEP 3333: PATH_INFO is percent-decoded, the bytes presented as latin-1
    assert env["PATH_INFO"] == "/environ/a b/" + "é".encode().decode("latin-1")
    assert env["QUERY_STRING"] == "x=1&y=%20z"
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert isinstance(env["SERVER_NAME"], str) and env["SERVER_NAME"]
    assert env["SERVER_PORT"] == str(server.port)
    assert env["HTTP_HOST"] == f"127.0.0.1:{server.port}"
    assert env["HTTP_X_CUSTOM_HEADER"] == "Value"
    assert env["HTTP_X_MULTI"].replace(" ", "") == "a,b"
    assert "CONTENT_LENGTH" not in env or env["CONTENT_LENGTH"] in ("", "0")
    assert env["wsgi.version"] == [1, 0]
    assert env["wsgi.url_scheme"] == "http"
    assert env["wsgi.multithread"] is True
    assert env["wsgi.multiprocess"] is False
    assert env["wsgi.run_once"] is False
    checks = env["_checks"]
    assert checks["all_keys_str"] is True
    assert checks["cgi_values_str"] is True
    assert checks["wsgi_version_is_tuple"] is True
    assert checks["input_methods"] == ["__iter__", "read", "readline", "readlines"]
    assert checks["errors_methods"] == ["flush", "write", "writelines"]


def test_environ_post_content_headers(client):
    body = b'{"a": 1}'
    r = client.post("/environ", content=body, headers={"Content-Type": "application/json"})
    env = r.json()
    assert env["REQUEST_METHOD"] == "POST"
    assert env["CONTENT_TYPE"] == "application/json"
    assert env["CONTENT_LENGTH"] == str(len(body))
    assert "HTTP_CONTENT_TYPE" not in env
    assert "HTTP_CONTENT_LENGTH" not in env
    assert env["_body"] == body.decode()


@pytest.mark.parametrize("mode", ["read", "read-sized", "readline", "readlines", "iter"])
def test_wsgi_input_modes(client, mode):
    r = client.post("/read", params={"mode": mode}, content=LINES_BODY)
    assert r.status_code == 200, r.text
    data = r.json()
    if mode == "read":
        assert data["body"].encode("latin-1") == LINES_BODY
    elif mode == "read-sized":
        parts = data["parts"]
        assert "".join(parts).encode("latin-1") == LINES_BODY
        assert all(len(p) <= 3 for p in parts)
    else:
        assert data["parts"] == EXPECTED_LINES


def test_wsgi_input_chunked_request(client):
    def gen():
        yield b"first line\n"
        yield b"second line\n"
        yield b"\nfourth line without newline"

    r = client.post("/read", params={"mode": "readline"}, content=gen())
    assert r.request.headers.get("transfer-encoding") == "chunked"
    assert r.status_code == 200, r.text
    assert r.json()["parts"] == EXPECTED_LINES


@pytest.mark.parametrize("mode", ["readline", "readline-sized", "read-sized", "iter"])
def test_wsgi_input_lines_split_across_chunks(client, mode):
    # Pauses between chunks so they reach the app one at a time: lines and sized reads then
    # have to be stitched together from several chunks.
    pieces = [b"fir", b"st line\nsec", b"ond", b" line\n", b"\nfou", b"rth line without newline"]

    def gen():
        for piece in pieces:
            yield piece
            time.sleep(0.02)

    r = client.post("/read", params={"mode": mode}, content=gen())
    assert r.status_code == 200, r.text
    parts = r.json()["parts"]
    assert "".join(parts).encode("latin-1") == LINES_BODY
    if mode in ("readline", "iter"):
        assert parts == EXPECTED_LINES
    elif mode == "readline-sized":
        expected = [
            s for line in EXPECTED_LINES for s in (line[i : i + 4] for i in range(0, len(line), 4))
        ]
        assert parts == expected
    else:
        assert all(len(p) <= 3 for p in parts)


def test_10mb_upload(client):
    data = random.Random(21).randbytes(TEN_MB)
    r = client.post("/sha256", content=data)
    assert r.status_code == 200
    assert r.json() == {"sha256": hashlib.sha256(data).hexdigest(), "length": TEN_MB}


def test_10mb_download(client):
    expected = random.Random(22).randbytes(TEN_MB)
    digest = hashlib.sha256()
    total = 0
    with client.stream("GET", "/download", params={"size": TEN_MB, "seed": 22}) as r:
        assert r.status_code == 200
        assert r.headers["content-length"] == str(TEN_MB)
        for chunk in r.iter_bytes():
            digest.update(chunk)
            total += len(chunk)
    assert total == TEN_MB
    assert digest.hexdigest() == hashlib.sha256(expected).hexdigest()


def test_generator_response_close_called(client, markers):
    r = client.get("/generator", params={"tag": "gen-ok"})
    assert r.status_code == 200
    assert r.text == "one two three"
    wait_for_marker(markers, "closed:gen-ok")


def test_iterable_error_after_start_closes_connection_and_close_called(server, client, markers):
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        r = client.get("/generator-error", params={"tag": "gen-err"})
        pytest.fail(f"expected a broken response, got {r.status_code} {r.content!r}")
    wait_for_marker(markers, "closed:gen-err")
    server.wait_for_line(r"boom in wsgi iterator")
    with server.client() as fresh:
        assert fresh.get("/fast").text == "fast"


def test_write_callable(client):
    r = client.get("/write")
    assert r.status_code == 200
    assert r.text == "written and returned"


def test_start_response_with_exc_info(client):
    r = client.get("/exc-info")
    assert r.status_code == 500
    assert r.headers["x-exc-info"] == "yes"
    assert r.text == "handled error"


def test_error_returns_500_and_server_survives(server, client):
    r = client.get("/error")
    assert r.status_code == 500
    assert r.headers["content-type"].startswith("text/plain")
    server.wait_for_line(r"wsgi boom before start")
    server.wait_for_line(r"Traceback|raw_wsgi\.py")
    assert client.get("/fast").text == "fast"
    assert "panicked" not in server.output


def test_wsgi_errors_stream_is_logged(server, client):
    # PEP 3333: wsgi.errors "should be the standard error stream, or a log file"
    assert client.get("/errors-stream").text == "logged"
    server.wait_for_line("message to wsgi.errors stream")


def test_access_log_line(server, client):
    client.get("/fast?from=wsgi-access-log")
    server.wait_for_line(
        r'^INFO: {5}127\.0\.0\.1:\d+ - "GET /fast\?from=wsgi-access-log HTTP/1\.1" 200'
    )


def test_slow_view_does_not_block_fast_one(server, markers):
    result: dict[str, object] = {}
    started_before = read_markers(markers).count("wsgi-slow-started")

    def slow():
        with server.client() as c:
            result["slow"] = c.get("/slow", params={"seconds": 3}).text
            result["slow_done_at"] = time.monotonic()

    t = threading.Thread(target=slow)
    t.start()
    try:
        deadline = time.monotonic() + 10
        while read_markers(markers).count("wsgi-slow-started") <= started_before:
            assert time.monotonic() < deadline, "slow view never started"
            time.sleep(0.02)
        with server.client() as c:
            fast = c.get("/fast")
        fast_done_at = time.monotonic()
        slow_still_running = t.is_alive()
    finally:
        t.join(30)
    assert fast.text == "fast"
    assert result["slow"] == "slow done"
    assert slow_still_running, "fast request only completed after the slow one finished"
    assert fast_done_at < result["slow_done_at"]


def test_100_concurrent_requests(server):
    async def main():
        limits = httpx.Limits(max_connections=100)
        async with server.async_client(limits=limits) as c:
            return await asyncio.gather(*(c.get("/fast") for _ in range(100)))

    responses = asyncio.run(main())
    assert [r.status_code for r in responses] == [200] * 100
    assert {r.text for r in responses} == {"fast"}


def test_keep_alive(client):
    for _ in range(5):
        assert client.get("/fast").text == "fast"
    assert client.post("/read", content=b"abc").json() == {"body": "abc"}
    assert client.get("/fast").text == "fast"


def test_head_request(client):
    r = client.head("/")
    assert r.status_code == 200
    assert r.content == b""
    assert client.get("/").text == "hello from raw wsgi"


def test_client_disconnect_mid_response_calls_close(server, markers):
    with server.client() as c:
        with c.stream("GET", "/big-generator", params={"tag": "disconnect"}) as r:
            next(r.iter_raw())
        # leaving the blocks closes the connection with ~16 MB still unsent
    wait_for_marker(markers, "closed:disconnect", timeout=15)
    with server.client() as c:
        assert c.get("/fast").text == "fast"
    assert "panicked" not in server.output
