"""End-to-end tests against the raw ASGI test app (tests/apps/raw_asgi.py)."""

from __future__ import annotations

import asyncio
import hashlib
import random
import re
import socket
import threading
import time

import httpx
import pytest
from conftest import raw_request, read_markers

TEN_MB = 10 * 1024 * 1024


def b(value) -> bytes:
    """Decode a bytes value encoded by raw_asgi.jsonable."""
    assert isinstance(value, dict) and set(value) == {"bytes"}, f"expected bytes, got {value!r}"
    return value["bytes"].encode("latin-1")


@pytest.fixture(scope="module")
def markers(tmp_path_factory):
    return tmp_path_factory.mktemp("raw_asgi") / "markers.txt"


@pytest.fixture(scope="module")
def server(start_module_server, markers):
    return start_module_server(
        "raw_asgi:app", "--port", "0", env={"HMR_TEST_MARKERS": str(markers)}
    )


def test_ready_line_and_interface(server):
    assert server.interface == "ASGI"
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", server.url), server.url
    assert server.port != 0
    assert server.count_lines(r"serving http://") == 1, server.output
    line = server.wait_for_line(r"serving http://")
    assert "press CTRL+C to quit" in line
    assert line.startswith("INFO:     "), line


def test_hello(client):
    r = client.get("/")
    assert r.status_code == 200
    assert r.text == "hello from raw asgi"


def test_scope_fields(server, client):
    # a full URL keeps the query string exactly as written
    r = client.get(
        httpx.URL(server.url + "/scope/a%20b/%C3%A9?x=1&y=%20z"),
        headers={"X-Custom-Header": "Value", "Another": "two"},
    )
    assert r.status_code == 200, r.text
    scope = r.json()
    assert scope["type"] == "http"
    assert scope["asgi"]["version"] == "3.0"
    assert isinstance(scope["asgi"]["spec_version"], str)
    assert scope["asgi"]["spec_version"].startswith("2.")
    assert scope["http_version"] == "1.1"
    assert scope["method"] == "GET"
    assert scope["scheme"] == "http"
    assert scope["path"] == "/scope/a b/é"
    assert b(scope["raw_path"]) == b"/scope/a%20b/%C3%A9"
    assert b(scope["query_string"]) == b"x=1&y=%20z"
    assert scope["root_path"] == ""

    headers = [(b(k), b(v)) for k, v in scope["headers"]]
    names = [k for k, _ in headers]
    assert all(k == k.lower() for k in names), names
    assert (b"x-custom-header", b"Value") in headers
    assert (b"another", b"two") in headers
    assert (b"host", f"127.0.0.1:{server.port}".encode()) in headers

    client_host, client_port = scope["client"]
    assert client_host == "127.0.0.1"
    assert isinstance(client_port, int) and client_port > 0
    server_host, server_port = scope["server"]
    assert server_host == "127.0.0.1"
    assert server_port == server.port


def test_scope_post_and_duplicate_headers(client):
    r = client.post(
        "/scope",
        content=b"payload",
        headers=[("X-Multi", "a"), ("X-Multi", "b"), ("Content-Type", "text/plain")],
    )
    assert r.status_code == 200
    scope = r.json()
    assert scope["method"] == "POST"
    assert scope["body"] == "payload"
    headers = [(b(k), b(v)) for k, v in scope["headers"]]
    multi = [v for k, v in headers if k == b"x-multi"]
    assert multi == [b"a", b"b"], headers
    assert (b"content-length", b"7") in headers
    assert (b"content-type", b"text/plain") in headers


def test_lifespan_startup_ran_and_state_in_scope(server, client, markers):
    assert "startup" in read_markers(markers)
    scope = client.get("/scope").json()
    assert scope["state"] == {"greeting": "hello from lifespan", "answer": 42}
    r = client.get("/state")
    assert r.json() == {"greeting": "hello from lifespan", "answer": 42}


def test_response_headers_repeated(client):
    r = client.get("/multi-header")
    assert r.status_code == 200
    assert r.headers.get_list("set-cookie") == ["a=1", "b=2"]
    assert r.headers["x-app"] == "raw"


def test_not_found(client):
    r = client.get("/does-not-exist")
    assert r.status_code == 404
    assert r.text == "not found"


def test_echo_body(client):
    r = client.post("/echo", content=b"hello body")
    assert r.status_code == 200
    assert r.content == b"hello body"


def test_empty_body(client):
    r = client.post("/echo", content=b"")
    assert r.status_code == 200
    assert r.content == b""


def test_chunked_request_body(client):
    parts = [b"alpha-", b"beta-", b"gamma"]

    def gen():
        yield from parts

    r = client.post("/echo", content=gen())
    assert r.request.headers.get("transfer-encoding") == "chunked"
    assert r.status_code == 200
    assert r.content == b"".join(parts)


def test_10mb_upload(client):
    data = random.Random(7).randbytes(TEN_MB)
    r = client.post("/sha256", content=data)
    assert r.status_code == 200
    info = r.json()
    assert info["length"] == TEN_MB
    assert info["sha256"] == hashlib.sha256(data).hexdigest()
    # a 10 MB body must be streamed to the app, not handed over in one message
    assert info["messages"] > 1


def test_10mb_chunked_upload(client):
    data = random.Random(8).randbytes(TEN_MB)

    def gen():
        step = 256 * 1024
        for i in range(0, len(data), step):
            yield data[i : i + step]

    r = client.post("/sha256", content=gen())
    assert r.status_code == 200
    info = r.json()
    assert info["length"] == TEN_MB
    assert info["sha256"] == hashlib.sha256(data).hexdigest()


def test_10mb_download(client):
    expected = random.Random(11).randbytes(TEN_MB)
    digest = hashlib.sha256()
    total = 0
    with client.stream("GET", "/download", params={"size": TEN_MB, "seed": 11}) as r:
        assert r.status_code == 200
        for chunk in r.iter_bytes():
            digest.update(chunk)
            total += len(chunk)
    assert total == TEN_MB
    assert digest.hexdigest() == hashlib.sha256(expected).hexdigest()


def test_streaming_response_arrives_in_separate_chunks(client):
    arrivals: list[tuple[float, bytes]] = []
    with client.stream("GET", "/stream") as r:
        assert r.status_code == 200
        assert "content-length" not in r.headers
        for chunk in r.iter_raw():
            arrivals.append((time.monotonic(), chunk))
    body = b"".join(c for _, c in arrivals)
    assert body == b"chunk-0\nchunk-1\nchunk-2\nchunk-3\n"
    assert len(arrivals) >= 2, arrivals
    # The first piece reached the client before the app had produced the last
    # one (the app sleeps 0.3 s between chunks): the response was not buffered.
    assert b"chunk-3" not in arrivals[0][1]
    assert arrivals[-1][0] - arrivals[0][0] >= 0.3


def test_keep_alive_reuses_connection(server, client):
    ports = set()
    for _ in range(5):
        r = client.get("/scope")
        assert r.status_code == 200
        ports.add(r.json()["client"][1])
    # one client connection -> one client port seen by the app
    assert len(ports) == 1, ports


def test_keep_alive_raw_pipelined_requests(server):
    host = "127.0.0.1"
    req = f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    last = f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
    with socket.create_connection((host, server.port), timeout=10) as sock:
        sock.sendall(req)
        first = b""
        while b"hello from raw asgi" not in first:
            chunk = sock.recv(65536)
            assert chunk, f"server closed a keep-alive connection: {first!r}"
            first += chunk
        assert first.startswith(b"HTTP/1.1 200")
        sock.sendall(req + last)
        rest = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            rest += chunk
    assert rest.count(b"HTTP/1.1 200") == 2, rest
    assert rest.count(b"hello from raw asgi") == 2


def test_expect_100_continue(server):
    body = b"x" * 1000
    head = (
        f"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n"
        "Expect: 100-continue\r\nConnection: close\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(head)
        interim = b""
        while b"\r\n\r\n" not in interim:
            chunk = sock.recv(65536)
            assert chunk, f"connection closed before 100 Continue: {interim!r}"
            interim += chunk
        assert interim.startswith(b"HTTP/1.1 100"), interim
        sock.sendall(body)
        response = interim.split(b"\r\n\r\n", 1)[1]
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            response += chunk
    assert response.startswith(b"HTTP/1.1 200"), response[:200]
    assert response.endswith(body)


def test_expect_100_continue_with_httpx(client):
    r = client.post("/echo", content=b"abc", headers={"Expect": "100-continue"})
    assert r.status_code == 200
    assert r.content == b"abc"


def test_200_concurrent_requests(server):
    async def main():
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
        async with server.async_client(limits=limits) as c:
            responses = await asyncio.gather(
                *(c.get("/sleep", params={"ms": 50, "id": i}) for i in range(200))
            )
        return responses

    responses = asyncio.run(main())
    assert [r.status_code for r in responses] == [200] * 200
    assert [r.json()["id"] for r in responses] == [str(i) for i in range(200)]


def test_access_log_line(server, client):
    r = client.get("/?marker=access-log-test")
    assert r.status_code == 200
    line = server.wait_for_line(r'"GET /\?marker=access-log-test HTTP/1\.1" 200')
    assert re.fullmatch(
        r'INFO: {5}127\.0\.0\.1:\d+ - "GET /\?marker=access-log-test HTTP/1\.1" 200.*', line
    ), line


def test_access_log_for_404_and_post(server, client):
    client.post("/does-not-exist-post")
    server.wait_for_line(r'"POST /does-not-exist-post HTTP/1\.1" 404')


def test_error_before_start_returns_500_and_server_survives(server, client):
    r = client.get("/error-before")
    assert r.status_code == 500
    assert r.headers["content-type"].startswith("text/plain")
    assert r.text
    server.wait_for_line(r"boom before start")
    server.wait_for_line(r"Traceback|raw_asgi\.py")
    assert server.count_lines(r"raw_asgi\.py") >= 1, server.output
    # still serving, on the same and on a new connection
    assert client.get("/").status_code == 200
    with server.client() as fresh:
        assert fresh.get("/").text == "hello from raw asgi"


def test_error_after_start_closes_connection_and_server_survives(server, client):
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        r = client.get("/error-after")
        # should not get here; if it does, the body must not look complete
        pytest.fail(f"expected a broken response, got {r.status_code} {r.content!r}")
    server.wait_for_line(r"boom after start")
    with server.client() as fresh:
        assert fresh.get("/").status_code == 200


def test_errors_do_not_panic(server):
    assert "panicked" not in server.output


def test_slow_request_does_not_block_fast_one(server, markers):
    result: dict[str, object] = {}
    started_before = read_markers(markers).count("slow-started")

    def slow():
        with server.client() as c:
            result["slow"] = c.get("/slow", params={"seconds": 2}).text
            result["slow_done_at"] = time.monotonic()

    t = threading.Thread(target=slow)
    t.start()
    try:
        deadline = time.monotonic() + 10
        while read_markers(markers).count("slow-started") <= started_before:
            assert time.monotonic() < deadline, "slow request never reached the app"
            time.sleep(0.02)
        with server.client() as c:
            fast = c.get("/")
            fast_done_at = time.monotonic()
        assert fast.status_code == 200
    finally:
        t.join(30)
    assert result["slow"] == "slow done"
    assert fast_done_at < result["slow_done_at"]


def test_head_request(client):
    r = client.head("/")
    assert r.status_code == 200
    assert r.content == b""
    assert r.headers["content-length"] == str(len(b"hello from raw asgi"))
    # the connection is still usable (no stray body bytes left on it)
    assert client.get("/").text == "hello from raw asgi"


def test_http_1_0_request(server):
    response = raw_request(
        "127.0.0.1", server.port, b"GET /scope HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"
    )
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1."), head
    assert b" 200 " in head.split(b"\r\n")[0] + b" "
    assert b'"http_version": "1.0"' in body


def test_client_disconnect_mid_stream_server_survives(server):
    with server.client() as c:
        with c.stream("GET", "/stream") as r:
            first = next(r.iter_raw())
            assert first.startswith(b"chunk-0")
        # leaving the block closes the connection while the app is still sending
    time.sleep(1.5)  # let the app try to send the remaining chunks
    with server.client() as c:
        assert c.get("/").text == "hello from raw asgi"
    assert "panicked" not in server.output


def test_client_disconnect_before_response_server_survives(server, markers):
    started_before = read_markers(markers).count("slow-started")
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"GET /slow?seconds=0.5 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        deadline = time.monotonic() + 10
        while read_markers(markers).count("slow-started") <= started_before:
            assert time.monotonic() < deadline, "slow request never reached the app"
            time.sleep(0.02)
    time.sleep(1.0)  # the app finishes and answers a closed connection
    with server.client() as c:
        assert c.get("/").text == "hello from raw asgi"
    assert "panicked" not in server.output
