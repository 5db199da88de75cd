"""HTTP/2: cleartext h2c with prior knowledge, h2 negotiated by ALPN over TLS, `--http 1|2|auto`,
and HTTP/2 connections living through hot reloads and graceful shutdown."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import socket
import ssl
import threading
import time

import httpx
import pytest
from conftest import edit, wait_for_marker, write
from test_cli_parity import _self_signed, _start_tls

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def h2_client(server, **kwargs) -> httpx.Client:
    """HTTP/2 only: in cleartext that is prior knowledge (no Upgrade dance)."""
    return server.client(http1=False, http2=True, **kwargs)


def test_asgi_scope_says_http_2_and_http_1_1_still_works(start_server):
    server = start_server("raw_asgi:app", "--port", "0")
    with h2_client(server) as client:
        response = client.get("/scope")
        assert response.http_version == "HTTP/2"
        assert response.json()["http_version"] == "2"
        assert "connection" not in response.headers
    with server.client() as client:
        response = client.get("/scope")
        assert response.http_version == "HTTP/1.1"
        assert response.json()["http_version"] == "1.1"


def test_fastapi_over_h2c(start_server):
    server = start_server("fastapi_app:app", "--port", "0")
    with h2_client(server) as client:
        response = client.get("/openapi.json")
        assert response.status_code == 200
        assert response.http_version == "HTTP/2"
        assert "paths" in response.json()


def test_wsgi_server_protocol_is_http_2(start_server):
    server = start_server("raw_wsgi:app", "--port", "0")
    with h2_client(server) as client:
        response = client.post("/environ", content=b"wsgi body over h2")
        info = response.json()
        assert response.http_version == "HTTP/2"
        assert info["SERVER_PROTOCOL"] == "HTTP/2"
        assert info["_body"] == "wsgi body over h2"


def test_streaming_response_and_upload(start_server):
    server = start_server("raw_asgi:app", "--port", "0")
    with h2_client(server) as client:
        with client.stream("GET", "/stream") as response:
            assert response.http_version == "HTTP/2"
            lines = list(response.iter_lines())
        assert lines == [f"chunk-{i}" for i in range(4)]

        data = os.urandom(3 * 1024 * 1024 + 17)
        response = client.post("/sha256", content=data)
        info = response.json()
        assert info["sha256"] == hashlib.sha256(data).hexdigest()
        assert info["length"] == len(data)

        # A generated upload has no length: HTTP/2 frames it without chunked coding.
        def chunks():
            for _ in range(8):
                yield b"x" * 10000

        response = client.post("/echo", content=chunks())
        assert response.content == b"x" * 80000


def test_many_concurrent_streams_share_one_connection(start_server):
    server = start_server("raw_asgi:app", "--port", "0", "--no-access-log")

    async def run() -> list[httpx.Response]:
        async with server.async_client(http1=False, http2=True) as client:
            return await asyncio.gather(
                *(client.post(f"/scope?id={i}", content=f"body-{i}") for i in range(60))
            )

    responses = asyncio.run(run())
    infos = [r.json() for r in responses]
    assert all(r.http_version == "HTTP/2" for r in responses)
    assert [info["body"] for info in infos] == [f"body-{i}" for i in range(60)]
    assert [info["query_string"] for info in infos] == [{"bytes": f"id={i}"} for i in range(60)]
    # One client port: every stream went over the same TCP connection.
    assert len({tuple(info["client"]) for info in infos}) == 1


def test_limits_answer_on_h2_and_the_connection_stays_usable(start_server):
    server = start_server("raw_asgi:app", "--port", "0", "--limit-max-body", "100")
    with h2_client(server) as client:
        response = client.post("/echo", content=b"x" * 1000)
        assert response.status_code == 413
        assert "--limit-max-body" in response.text
        assert "connection" not in response.headers
        assert client.post("/echo", content=b"small").content == b"small"


def test_http_1_refuses_h2_prior_knowledge_cleanly(start_server):
    server = start_server("raw_asgi:app", "--port", "0", "--http", "1")
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(H2_PREFACE)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 505 ")
    assert b"HTTP/1.1 only" in answer
    with pytest.raises(httpx.HTTPError), h2_client(server) as client:
        client.get("/")
    with server.client() as client:
        assert client.get("/").text == "hello from raw asgi"


@pytest.mark.parametrize("flag", ["h11", "httptools"])
def test_uvicorn_http_values_mean_http_1_1_only(start_server, flag):
    server = start_server("raw_asgi:app", "--port", "0", "--http", flag)
    with pytest.raises(httpx.HTTPError), h2_client(server) as client:
        client.get("/")
    with server.client() as client:
        assert client.get("/").status_code == 200


def test_http_2_only_serves_h2_and_refuses_http_1_1(start_server):
    server = start_server("raw_asgi:app", "--port", "0", "--http", "2")
    with h2_client(server) as client:
        assert client.get("/scope").json()["http_version"] == "2"
    with pytest.raises(httpx.HTTPError), server.client() as client:
        client.get("/")
    with h2_client(server) as client:
        assert client.get("/").text == "hello from raw asgi"


@pytest.mark.parametrize(
    ("flag", "expected"), [("auto", "HTTP/2"), ("2", "HTTP/2"), ("1", "HTTP/1.1")]
)
def test_tls_negotiates_the_version_by_alpn(tmp_path, flag, expected):
    certfile, keyfile = _self_signed(tmp_path)
    server = _start_tls(
        "raw_asgi:app", "--ssl-certfile", str(certfile), "--ssl-keyfile", str(keyfile),
        "--http", flag,
    )  # fmt: skip
    try:
        context = ssl.create_default_context(cafile=str(certfile))
        with httpx.Client(verify=context, http2=True, timeout=30) as client:
            response = client.get(server.url + "/scope")
            assert response.http_version == expected
            assert response.json()["scheme"] == "https"
            assert response.json()["http_version"] == expected.removeprefix("HTTP/")
        if flag == "auto":
            with httpx.Client(verify=context, timeout=30) as client:
                assert client.get(server.url + "/scope").http_version == "HTTP/1.1"
    finally:
        server.kill()


RELOAD_APP = """
from pkg.answer import ANSWER


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    client = f"{scope['client'][0]}:{scope['client'][1]}"
    await send({"type": "http.response.body", "body": f"{ANSWER} {client}".encode()})
"""


def test_an_open_h2_connection_sees_the_new_code_after_a_reload(start_server, tmp_path):
    write(tmp_path, "pkg/__init__.py", "")
    write(tmp_path, "pkg/answer.py", 'ANSWER = "answer-v1"\n')
    write(tmp_path, "pkg/main.py", RELOAD_APP)
    server = start_server("pkg.main:app", "--port", "0", cwd=tmp_path)
    with h2_client(server) as client:
        first, peer = client.get("/").text.split()
        assert first == "answer-v1"
        edit(tmp_path, "pkg/answer.py", "answer-v1", "answer-v2")
        deadline = time.monotonic() + 30
        answer = first
        while answer == "answer-v1" and time.monotonic() < deadline:
            time.sleep(0.05)
            answer, same_peer = client.get("/").text.split()
            assert same_peer == peer, "the reload closed the HTTP/2 connection"
        assert answer == "answer-v2"


def raw_h2_get(port: int, path: str) -> tuple[int, bytes, bool]:
    """One GET over a hand-framed HTTP/2 connection: (status, body, GOAWAY seen). httpx's h2
    stack treats a server's first (graceful) GOAWAY as the end of the connection and fails the
    stream in flight (python-hyper/h2 #1181), so shutdown is checked frame by frame."""
    from hpack import Decoder, Encoder
    from hyperframe.frame import DataFrame, Frame, GoAwayFrame, HeadersFrame, SettingsFrame

    request = HeadersFrame(1)
    request.data = Encoder().encode(
        [(":method", "GET"), (":scheme", "http"), (":authority", "localhost"), (":path", path)]
    )
    request.flags.add("END_HEADERS")
    request.flags.add("END_STREAM")
    status, body, goaway = 0, b"", False
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(H2_PREFACE + SettingsFrame(0).serialize() + request.serialize())
        buffer, decoder = b"", Decoder()
        while True:
            while len(buffer) < 9 or len(buffer) < 9 + int.from_bytes(buffer[:3], "big"):
                chunk = sock.recv(65536)
                if not chunk:
                    return status, body, goaway
                buffer += chunk
            frame, length = Frame.parse_frame_header(memoryview(buffer[:9]))
            frame.parse_body(memoryview(buffer[9 : 9 + length]))
            buffer = buffer[9 + length :]
            if isinstance(frame, GoAwayFrame):
                goaway = True
            elif isinstance(frame, HeadersFrame) and frame.stream_id == 1:
                status = int(dict(decoder.decode(frame.data))[":status"])
            elif isinstance(frame, DataFrame) and frame.stream_id == 1:
                body += frame.data
                if "END_STREAM" in frame.flags:
                    return status, body, goaway


def test_graceful_shutdown_finishes_h2_streams_in_flight(start_server, markers_file):
    server = start_server(
        "raw_asgi:app", "--port", "0", env={"HMR_TEST_MARKERS": str(markers_file)}
    )
    idle = h2_client(server)
    assert idle.get("/").status_code == 200  # an open, idle HTTP/2 connection
    results: list[object] = []
    thread = threading.Thread(
        target=lambda: results.append(raw_h2_get(server.port, "/slow?seconds=1.5"))
    )
    thread.start()
    try:
        wait_for_marker(markers_file, "slow-started")
        assert server.stop(signal.SIGINT, timeout=30) == 0
        thread.join(30)
        assert results == [(200, b"slow done", True)]
    finally:
        idle.close()


class H2Session:
    """A raw HTTP/2 client connection: requests framed by the `h2` package, the server's frames
    read one by one with hyperframe (h2's state machine rejects the PING hyper sends between its
    two GOAWAYs of a graceful close), every read bounded. PINGs are answered, as real clients
    do, unless `answers_pings` is false."""

    def __init__(self, port: int, answers_pings: bool = True) -> None:
        import h2.config
        import h2.connection

        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.conn.initiate_connection()
        self.flush()
        self.buffer = b""
        self.frames: list[object] = []
        self.closed = False
        self.answers_pings = answers_pings

    def flush(self) -> None:
        self.sock.sendall(self.conn.data_to_send())

    def get(self, path: str) -> int:
        stream = self.conn.get_next_available_stream_id()
        self.conn.send_headers(
            stream,
            [(":method", "GET"), (":scheme", "http"), (":authority", "t"), (":path", path)],
            end_stream=True,
        )
        self.flush()
        return stream

    def ping(self) -> None:
        self.conn.ping(b"12345678")
        self.flush()

    def read_until(self, done, timeout: float = 30) -> None:
        """Reads frames until `done(frame)` is true or the server closes the socket."""
        from hyperframe.frame import Frame, PingFrame

        deadline = time.monotonic() + timeout
        while True:
            while len(self.buffer) >= 9 and len(self.buffer) >= 9 + int.from_bytes(
                self.buffer[:3], "big"
            ):
                frame, length = Frame.parse_frame_header(memoryview(self.buffer[:9]))
                frame.parse_body(memoryview(self.buffer[9 : 9 + length]))
                self.buffer = self.buffer[9 + length :]
                self.frames.append(frame)
                if isinstance(frame, PingFrame) and "ACK" not in frame.flags and self.answers_pings:
                    ack = PingFrame(0, flags=["ACK"], opaque_data=frame.opaque_data)
                    self.sock.sendall(ack.serialize())
                if done(frame):
                    return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                return
            except ConnectionResetError:
                data = b""
            if not data:
                self.closed = True
                return
            self.buffer += data

    def body(self, stream: int) -> bytes:
        from hyperframe.frame import DataFrame

        return b"".join(
            f.data for f in self.frames if isinstance(f, DataFrame) and f.stream_id == stream
        )

    def stream_ended(self, stream: int):
        from hyperframe.frame import DataFrame, HeadersFrame

        return lambda f: (
            isinstance(f, (DataFrame, HeadersFrame))
            and f.stream_id == stream
            and "END_STREAM" in f.flags
        )

    def goaways(self) -> list[tuple[int, int]]:
        """(error code, last stream id) of each GOAWAY the server sent."""
        from hyperframe.frame import GoAwayFrame

        return [(f.error_code, f.last_stream_id) for f in self.frames if isinstance(f, GoAwayFrame)]

    def close(self) -> None:
        self.sock.close()


def _wait_for_close(session: H2Session) -> list[tuple[int, int]]:
    """Reads until the server closes the socket; returns its GOAWAYs."""
    session.read_until(lambda frame: False)
    assert session.closed, session.frames
    return session.goaways()


def test_idle_h2_connection_is_closed_with_goaway(start_server):
    from hyperframe.frame import PingFrame

    server = start_server("raw_asgi:app", "--port", "0", "--timeout-keep-alive", "1")
    session = H2Session(server.port)
    try:
        stream = session.get("/")
        session.read_until(session.stream_ended(stream))
        assert session.body(stream) == b"hello from raw asgi"
        # Frames outside any stream are not activity: the PING is answered, and the idle
        # connection still goes, with a graceful GOAWAY (NO_ERROR) naming the last stream.
        session.ping()
        goaways = _wait_for_close(session)
        assert goaways and goaways[-1] == (0, stream), session.frames
        assert all(code == 0 for code, _ in goaways), goaways
        assert any(isinstance(f, PingFrame) and "ACK" in f.flags for f in session.frames)
    finally:
        session.close()
    with h2_client(server) as client:
        assert client.get("/").status_code == 200


def test_h2_connection_that_never_sends_a_request_is_closed(start_server):
    server = start_server("raw_asgi:app", "--port", "0", "--timeout-keep-alive", "1")
    session = H2Session(server.port)
    try:
        assert _wait_for_close(session)[-1] == (0, 0), session.frames
    finally:
        session.close()


def test_h2_client_ignoring_the_goaway_ping_is_still_closed(start_server):
    # hyper's graceful close waits for the answer to its PING before the final GOAWAY; a client
    # that never answers is cut off once idle for another --timeout-keep-alive.
    server = start_server("raw_asgi:app", "--port", "0", "--timeout-keep-alive", "1")
    session = H2Session(server.port, answers_pings=False)
    try:
        goaways = _wait_for_close(session)
        assert goaways and all(code == 0 for code, _ in goaways), session.frames
    finally:
        session.close()
    with h2_client(server) as client:
        assert client.get("/").status_code == 200


def test_keep_alive_timeout_does_not_cut_an_open_h2_stream(start_server):
    server = start_server("raw_asgi:app", "--port", "0", "--timeout-keep-alive", "1")
    session = H2Session(server.port)
    try:
        # Longer than the idle timeout, and the client sends nothing meanwhile.
        stream = session.get("/slow?seconds=2.5")
        session.read_until(session.stream_ended(stream))
        assert session.body(stream) == b"slow done", session.frames
        assert session.goaways() == [], session.frames
        assert _wait_for_close(session)[-1] == (0, stream)
    finally:
        session.close()
