"""WebSockets end to end: a real server, the `websockets` client, raw sockets where the client
library would hide what the server does (keepalive, bad handshakes)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import socket
import struct
import textwrap
import time
import zlib
from pathlib import Path

import httpx
import pytest
from conftest import raw_request, run_cli, wait_for_marker
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.extensions.permessage_deflate import PerMessageDeflate

MAX_SIZE = 64 * 1024
UPGRADE_HEADERS = {
    "Connection": "Upgrade",
    "Upgrade": "websocket",
    "Sec-WebSocket-Version": "13",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
}


def ws_url(server, path: str) -> str:
    return "ws://" + server.url.removeprefix("http://") + path


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


async def closed_by_server(ws) -> ConnectionClosed:
    """Reads until the server closes; returns how."""
    with pytest.raises(ConnectionClosed) as info:
        while True:
            await ws.recv()
    return info.value


async def refused(url: str, **kwargs) -> InvalidStatus:
    with pytest.raises(InvalidStatus) as info:
        async with connect(url, **kwargs):
            pass
    return info.value


@pytest.fixture(scope="module")
def markers(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("ws") / "markers.txt"


@pytest.fixture(scope="module")
def server(start_module_server, markers):
    return start_module_server(
        "ws_asgi:app",
        "--port",
        "0",
        "--ws-max-size",
        str(MAX_SIZE),
        env={"HMR_TEST_MARKERS": str(markers)},
    )


# -- messages -------------------------------------------------------------------------------


def test_echo_text_and_bytes(server):
    async def scenario():
        async with connect(ws_url(server, "/echo")) as ws:
            await ws.send("héllo")
            assert await ws.recv() == "echo:héllo"
            await ws.send(b"\x00\x01\xff")
            assert await ws.recv() == b"\x00\x01\xff"
            # Messages arrive in order and none is lost.
            for i in range(50):
                await ws.send(f"m{i}")
            assert [await ws.recv() for _ in range(50)] == [f"echo:m{i}" for i in range(50)]

    run(scenario())
    server.wait_for_line(r'"GET /echo HTTP/1.1" 101')


def test_largest_allowed_message_passes(server):
    async def scenario():
        async with connect(ws_url(server, "/echo")) as ws:
            payload = os.urandom(MAX_SIZE)
            await ws.send(payload)
            assert await ws.recv() == payload

    run(scenario())


def test_over_size_message_closes_with_1009(server, markers):
    async def scenario():
        async with connect(ws_url(server, "/echo"), max_size=None) as ws:
            await ws.send(b"x" * (MAX_SIZE + 1))
            return await closed_by_server(ws)

    closed = run(scenario())
    assert closed.rcvd is not None and closed.rcvd.code == 1009, closed
    wait_for_marker(markers, "disconnect /echo 1009 message too big")


def test_server_sends_many_messages_without_reading(server):
    async def scenario():
        async with connect(ws_url(server, "/push?3000")) as ws:
            received = []
            closed = None
            try:
                async for message in ws:
                    received.append(message)
            except ConnectionClosed as exc:  # pragma: no cover - a clean close ends the loop
                closed = exc
            return received, ws.close_code, ws.close_reason, closed

    received, code, reason, closed = run(scenario())
    assert closed is None
    assert received == [f"m{i}" for i in range(3000)]
    assert (code, reason) == (1000, "all sent")


def test_a_cancelled_receive_loses_no_message(server):
    async def scenario():
        async with connect(ws_url(server, "/cancelled-receive")) as ws:
            assert await ws.recv() == "ready"
            await ws.send("first")
            return await ws.recv()

    assert run(scenario()) == "got:first"


def test_client_ping_is_answered(server):
    async def scenario():
        async with connect(ws_url(server, "/echo"), ping_interval=None) as ws:
            for _ in range(3):
                pong = await ws.ping()
                await asyncio.wait_for(pong, 10)
            await ws.send("still here")
            assert await ws.recv() == "echo:still here"

    run(scenario())


# -- handshake ------------------------------------------------------------------------------


def test_subprotocol_negotiation(server):
    async def scenario():
        async with connect(
            ws_url(server, "/echo"), subprotocols=["unknown", "superchat", "chat"]
        ) as ws:
            assert ws.subprotocol == "superchat"
        async with connect(ws_url(server, "/echo")) as ws:
            assert ws.subprotocol is None
            assert "sec-websocket-protocol" not in ws.response.headers

    run(scenario())


def test_accept_headers_reach_the_client(server):
    async def scenario():
        async with connect(ws_url(server, "/echo")) as ws:
            return ws.response

    response = run(scenario())
    assert response.status_code == 101
    assert response.headers["x-ws-app"] == "raw"
    assert response.headers["set-cookie"] == "session=1"
    assert response.headers["upgrade"].lower() == "websocket"


def test_scope_fields(server):
    async def scenario():
        async with connect(
            ws_url(server, "/scope?x=1&y=%20z"),
            subprotocols=["chat", "v2"],
            additional_headers={"X-Custom": "Value"},
        ) as ws:
            report = json.loads(await ws.recv())
            return report, ws.local_address

    scope, local = run(scenario())
    assert scope["type"] == "websocket"
    assert scope["asgi"]["version"] == "3.0"
    assert scope["asgi"]["spec_version"] == "2.4"
    assert scope["http_version"] == "1.1"
    assert scope["scheme"] == "ws"
    assert scope["path"] == "/scope"
    assert scope["raw_path"] == {"bytes": "/scope"}
    assert scope["query_string"] == {"bytes": "x=1&y=%20z"}
    assert scope["root_path"] == ""
    headers = {k["bytes"]: v["bytes"] for k, v in scope["headers"]}
    assert headers["x-custom"] == "Value"
    assert headers["upgrade"] == "websocket"
    assert "sec-websocket-key" in headers
    assert scope["client"] == [local[0], local[1]]
    assert scope["server"] == ["127.0.0.1", server.port]
    assert scope["subprotocols"] == ["chat", "v2"]
    assert scope["state"] == {"greeting": "hi"}
    assert scope["extensions"] == {"websocket.http.response": {}}
    assert "method" not in scope


def test_each_connection_gets_its_own_state_copy(server):
    async def keys():
        async with connect(ws_url(server, "/state")) as ws:
            return json.loads(await ws.recv())

    assert run(keys()) == ["greeting"]
    assert run(keys()) == ["greeting"], "one connection's state leaked into the next"


def test_close_before_accept_answers_403(server, markers):
    error = run(refused(ws_url(server, "/reject")))
    assert error.response.status_code == 403
    wait_for_marker(markers, "rejected then websocket.disconnect 1006")
    server.wait_for_line(r'"GET /reject HTTP/1.1" 403')


def test_denial_response_extension(server):
    error = run(refused(ws_url(server, "/deny")))
    assert error.response.status_code == 401
    assert bytes(error.response.body) == b"denied by the app"
    assert error.response.headers["x-denied"] == "yes"
    assert error.response.headers["content-type"] == "text/plain"


def test_invalid_handshake_is_refused_with_400(server):
    request = (
        b"GET /echo HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n"
    )
    response = raw_request("127.0.0.1", server.port, request + b"")
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), response
    assert b"missing Sec-WebSocket-Key" in body


# -- closing --------------------------------------------------------------------------------


def test_server_close_code_and_reason_reach_the_client(server, markers):
    async def scenario():
        async with connect(ws_url(server, "/echo")) as ws:
            await ws.send("close 4002 done here")
            return await closed_by_server(ws)

    closed = run(scenario())
    assert closed.rcvd is not None
    assert (closed.rcvd.code, closed.rcvd.reason) == (4002, "done here")
    # After its own close the app's next receive is the disconnect, with its own code.
    wait_for_marker(markers, "after close websocket.disconnect 4002")


def test_client_close_code_and_reason_reach_the_app(server, markers):
    async def scenario():
        async with connect(ws_url(server, "/echo?client-close")) as ws:
            await ws.send("hi")
            assert await ws.recv() == "echo:hi"
            await ws.close(code=4001, reason="see you")

    run(scenario())
    wait_for_marker(markers, "disconnect /echo 4001 see you")


def test_client_vanishing_is_a_1006_disconnect(server, markers):
    key = base64.b64encode(os.urandom(16))
    request = (
        b"GET /vanish HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + key + b"\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(request)
        assert sock.recv(4096).startswith(b"HTTP/1.1 101")
    # Closed without a close frame.
    wait_for_marker(markers, "disconnect /vanish 1006 ")


def test_client_leaving_before_the_handshake_is_answered(server, markers):
    key = base64.b64encode(os.urandom(16))
    request = (
        b"GET /wait-before-accept HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
        b"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: "
        + key
        + b"\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(request)
        wait_for_marker(markers, "waiting before accept")
    wait_for_marker(markers, "before accept websocket.disconnect 1006")


def test_send_after_the_client_left_raises_oserror(server, markers):
    async def scenario():
        async with connect(ws_url(server, "/send-after-disconnect")):
            pass

    run(scenario())
    wait_for_marker(markers, "send raised ClientDisconnected OSError")


# -- app failures ---------------------------------------------------------------------------


def test_app_raising_before_accept_answers_500(server):
    error = run(refused(ws_url(server, "/raise-before-accept")))
    assert error.response.status_code == 500
    server.wait_for_line("boom before accept")


def test_app_raising_after_accept_closes_1011_and_server_keeps_running(server):
    async def scenario():
        async with connect(ws_url(server, "/raise-after-accept")) as ws:
            await ws.send("trigger")
            closed = await closed_by_server(ws)
        async with connect(ws_url(server, "/echo")) as ws:
            await ws.send("after")
            return closed, await ws.recv()

    closed, answer = run(scenario())
    assert closed.rcvd is not None and closed.rcvd.code == 1011
    assert answer == "echo:after"
    server.wait_for_line("boom after accept")
    server.wait_for_line("Exception in ASGI application")


def test_app_returning_without_accept_answers_500(server):
    error = run(refused(ws_url(server, "/return-without-accept")))
    assert error.response.status_code == 500
    server.wait_for_line("ASGI callable returned without completing handshake.")


# -- many sockets, HTTP beside them ---------------------------------------------------------


def test_many_concurrent_sockets_with_plain_http_alongside(server):
    async def one(i: int) -> list[str]:
        async with connect(ws_url(server, f"/echo?{i}")) as ws:
            answers = []
            for j in range(5):
                await ws.send(f"{i}-{j}")
                answers.append(await ws.recv())
            return answers

    async def scenario():
        async with server.async_client() as http:
            sockets = asyncio.gather(*(one(i) for i in range(100)))
            pages = asyncio.gather(*(http.get("/page") for _ in range(20)))
            return await sockets, await pages

    answers, pages = run(scenario())
    assert answers == [[f"echo:{i}-{j}" for j in range(5)] for i in range(100)]
    assert all(p.status_code == 200 and p.text.startswith("plain http /page") for p in pages)


def test_other_upgrades_are_served_as_plain_http(server):
    with server.client() as client:
        response = client.get("/h2c", headers={"Connection": "Upgrade", "Upgrade": "h2c"})
    assert response.status_code == 200
    assert response.text == "plain http /h2c upgrade=h2c"
    server.wait_for_line("Unsupported upgrade request.")


# -- options --------------------------------------------------------------------------------


def test_ws_none_serves_upgrades_as_plain_http(start_server):
    server = start_server("ws_asgi:app", "--port", "0", "--no-reload", "--ws", "none")
    with server.client() as client:
        response = client.get("/echo", headers=UPGRADE_HEADERS)
    assert response.status_code == 200
    assert response.text == "plain http /echo upgrade=websocket"
    error = run(refused(ws_url(server, "/echo")))
    assert error.response.status_code == 200
    server.wait_for_line("Unsupported upgrade request.")


def test_wsgi_app_gets_upgrade_requests_as_plain_http(start_server):
    server = start_server("raw_wsgi:app", "--port", "0", "--no-reload")
    with server.client() as client:
        response = client.get("/environ", headers=UPGRADE_HEADERS)
    assert response.status_code == 200
    assert response.json()["HTTP_UPGRADE"] == "websocket"


def read_frame(sock: socket.socket) -> tuple[int, bytes]:
    """One unmasked server frame: (opcode, payload)."""
    first, payload = read_frame_with_flags(sock)
    return first & 0x0F, payload


def read_frame_with_flags(sock: socket.socket) -> tuple[int, bytes]:
    """One unmasked server frame: (its first byte: FIN, RSV1-3, opcode; payload)."""

    def exactly(n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                raise EOFError("connection closed")
            data += chunk
        return data

    first, second = exactly(2)
    length = second & 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", exactly(2))
    elif length == 127:
        (length,) = struct.unpack("!Q", exactly(8))
    return first, exactly(length)


def client_frame(opcode: int, payload: bytes, rsv1: bool = False) -> bytes:
    """One masked, final client frame."""
    mask = os.urandom(4)
    first = 0x80 | (0x40 if rsv1 else 0) | opcode
    if len(payload) < 126:
        header = struct.pack("!BB", first, 0x80 | len(payload))
    elif len(payload) < 1 << 16:
        header = struct.pack("!BBH", first, 0x80 | 126, len(payload))
    else:
        header = struct.pack("!BBQ", first, 0x80 | 127, len(payload))
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def raw_handshake(server, path: str, extensions: str | None) -> tuple[socket.socket, str]:
    """A WebSocket opened by hand; returns the socket and the 101 response head."""
    key = base64.b64encode(os.urandom(16))
    request = (
        f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: "
    ).encode() + key
    if extensions is not None:
        request += f"\r\nSec-WebSocket-Extensions: {extensions}".encode()
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=20)
    sock.sendall(request + b"\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock, head.decode("latin-1").lower()


def test_bad_ws_options_are_refused_clearly():
    result = run_cli(["ws_asgi:app", "--ws-max-size", "0"])
    assert result.returncode == 2
    assert "--ws-max-size must be at least 1" in result.stderr
    result = run_cli(["ws_asgi:app", "--ws-ping-timeout", "-1"])
    assert result.returncode == 2
    assert "must not be negative" in result.stderr
    result = run_cli(["ws_asgi:app", "--ws-max-queue", "0"])
    assert result.returncode == 2
    assert "--ws-max-queue must be at least 1" in result.stderr
    result = run_cli(["ws_asgi:app", "--ws-per-message-deflate", "maybe"])
    assert result.returncode == 2
    assert "expected true or false, got 'maybe'" in result.stderr


def test_help_lists_the_uvicorn_ws_flags():
    help_text = run_cli(["--help"]).stdout
    for flag in (
        "--ws",
        "--ws-max-size",
        "--ws-max-queue",
        "--ws-ping-interval",
        "--ws-ping-timeout",
        "--ws-per-message-deflate",
    ):
        assert f"{flag} " in help_text, flag


# -- permessage-deflate ---------------------------------------------------------------------

TAIL = b"\x00\x00\xff\xff"


def test_deflate_is_negotiated_with_the_websockets_client(server):
    text = "a very compressible line of text\n" * 1900  # just under MAX_SIZE

    async def scenario():
        async with connect(ws_url(server, "/echo")) as ws:
            assert ws.response.headers["Sec-WebSocket-Extensions"] == "permessage-deflate"
            assert [type(e) for e in ws.protocol.extensions] == [PerMessageDeflate]
            for _ in range(3):
                await ws.send(text)
                assert await ws.recv() == "echo:" + text
                payload = bytes(range(256)) * 200
                await ws.send(payload)
                assert await ws.recv() == payload

    run(scenario())


def test_empty_messages_in_a_row_keep_both_sides_in_step(server):
    """A flush right after another emits nothing; the server still sends a whole block."""

    async def scenario():
        async with connect(ws_url(server, "/echo")) as ws:
            for _ in range(3):
                await ws.send(b"")
                assert await ws.recv() == b""
            await ws.send(b"after the empty ones")
            assert await ws.recv() == b"after the empty ones"

    run(scenario())


def test_fragmented_compressed_message_from_the_client(server):
    parts = [f"fragment {i} " * 300 for i in range(5)]

    async def scenario():
        async with connect(ws_url(server, "/echo")) as ws:
            # An iterable is sent as one message in several frames, compressed as a whole.
            await ws.send(parts)
            assert await ws.recv() == "echo:" + "".join(parts)
            await ws.send([b"\x00" * 1000, b"\x01" * 1000])
            assert await ws.recv() == b"\x00" * 1000 + b"\x01" * 1000

    run(scenario())


def test_deflate_on_the_wire(server):
    """Compressed frames both ways, with the context kept from one message to the next."""
    text = "hello compressed websocket " * 1000
    sock, head = raw_handshake(server, "/echo", "permessage-deflate; client_max_window_bits")
    with sock:
        assert "sec-websocket-extensions: permessage-deflate\r\n" in head
        compress = zlib.compressobj(wbits=-15)
        inflate = zlib.decompressobj(wbits=-15)
        sizes = []
        for _ in range(2):
            data = compress.compress(text.encode()) + compress.flush(zlib.Z_SYNC_FLUSH)
            assert data.endswith(TAIL)
            sock.sendall(client_frame(0x1, data[:-4], rsv1=True))
            first, payload = read_frame_with_flags(sock)
            assert first == 0x80 | 0x40 | 0x1, hex(first)  # FIN, RSV1, text
            assert inflate.decompress(payload + TAIL).decode() == "echo:" + text
            sizes.append(len(payload))
        # An uncompressed message is still fine, and answered compressed.
        sock.sendall(client_frame(0x1, b"plain"))
        first, payload = read_frame_with_flags(sock)
        assert first & 0x40 and inflate.decompress(payload + TAIL) == b"echo:plain"
    assert sizes[0] < len(text) // 20, sizes
    assert sizes[1] < sizes[0], sizes  # the repeat refers back to the first message


def test_deflate_parameters_the_client_asks_for(server):
    offer = (
        "permessage-deflate; server_max_window_bits=8, "
        "permessage-deflate; server_no_context_takeover; server_max_window_bits=10"
    )
    text = "no context takeover " * 500
    sock, head = raw_handshake(server, "/echo", offer)
    with sock:
        # A window of 8 is declined (zlib cannot honour it): the second offer is taken.
        assert (
            "sec-websocket-extensions: permessage-deflate; server_no_context_takeover; "
            "server_max_window_bits=10\r\n"
        ) in head
        sizes = []
        for _ in range(2):
            sock.sendall(client_frame(0x1, text.encode()))
            _, payload = read_frame_with_flags(sock)
            # Each message inflates on its own, with a 1 KiB window.
            inflate = zlib.decompressobj(wbits=-10)
            assert inflate.decompress(payload + TAIL).decode() == "echo:" + text
            sizes.append(len(payload))
    assert sizes[0] == sizes[1], sizes


def test_inflated_size_is_what_ws_max_size_limits(server, markers):
    async def scenario():
        async with connect(ws_url(server, "/echo"), max_size=None) as ws:
            await ws.send("y" * (MAX_SIZE + 1))  # a few hundred bytes on the wire
            return await closed_by_server(ws)

    closed = run(scenario())
    assert closed.rcvd is not None and closed.rcvd.code == 1009, closed


def test_corrupt_compressed_data_closes_with_1002(server):
    sock, _ = raw_handshake(server, "/echo", "permessage-deflate")
    with sock:
        sock.sendall(client_frame(0x2, b"\xff\xfe\xfd not deflate", rsv1=True))
        opcode, payload = read_frame(sock)
    assert opcode == 0x8
    assert struct.unpack("!H", payload[:2])[0] == 1002, payload


def test_ws_per_message_deflate_false(start_server):
    server = start_server(
        "ws_asgi:app", "--port", "0", "--no-reload", "--ws-per-message-deflate", "false"
    )
    text = "uncompressed " * 5000

    async def scenario():
        async with connect(ws_url(server, "/echo")) as ws:
            assert "Sec-WebSocket-Extensions" not in ws.response.headers
            assert ws.protocol.extensions == []
            await ws.send(text)
            assert await ws.recv() == "echo:" + text

    run(scenario())
    sock, head = raw_handshake(server, "/echo", "permessage-deflate")
    with sock:
        assert "sec-websocket-extensions" not in head
        # Not negotiated: RSV1 means nothing, and the frame is a protocol error.
        sock.sendall(client_frame(0x1, b"x", rsv1=True))
        opcode, payload = read_frame(sock)
    assert opcode == 0x8 and struct.unpack("!H", payload[:2])[0] == 1002


def test_ws_per_message_deflate_from_the_environment(start_server):
    server = start_server(
        "ws_asgi:app",
        "--port",
        "0",
        "--no-reload",
        env={"HMR_SERVE_WS_PER_MESSAGE_DEFLATE": "false"},
    )

    async def scenario():
        async with connect(ws_url(server, "/echo")) as ws:
            return ws.protocol.extensions

    assert run(scenario()) == []


def test_ws_per_message_deflate_in_pyproject_and_env_take_booleans():
    from hmr_serve.cli import build_parser
    from hmr_serve.config_sources import SourceError, collect

    parser = build_parser()
    assert collect(parser, {"ws-per-message-deflate": False}, {}) == {
        "ws_per_message_deflate": False
    }
    assert collect(parser, {}, {"WS_PER_MESSAGE_DEFLATE": "on"}) == {"ws_per_message_deflate": True}
    # click's spellings, as uvicorn takes them.
    for word, value in (("t", True), ("Y", True), ("f", False), ("n", False), ("0", False)):
        args = parser.parse_args(["app:app", "--ws-per-message-deflate", word])
        assert args.ws_per_message_deflate is value, word
    assert parser.parse_args(["app:app", "--ws-per-message-deflate"]).ws_per_message_deflate
    assert collect(parser, {"ws-max-queue": 4}, {}) == {"ws_max_queue": 4}
    with pytest.raises(SourceError, match="expected true or false"):
        collect(parser, {"ws-per-message-deflate": "sometimes"}, {})


# -- --ws-max-queue -------------------------------------------------------------------------


async def pong_after_steps(server, messages: int) -> int:
    """Sends `messages` to `/held`, then a ping, then lets the app receive one message at a
    time; returns how many the app had received when the pong came back. The server answers
    a ping only once it has read it, that is after every message sent before it."""
    async with connect(ws_url(server, "/held"), ping_interval=None) as ws:
        for i in range(messages):
            await ws.send(f"m{i}")
        pong = await ws.ping()
        async with httpx.AsyncClient(base_url=server.url, trust_env=False, timeout=30) as http:
            steps = 0
            while not pong.done():
                assert steps < messages, "every message was received and still no pong"
                response = await http.get("/step")
                assert response.text == f"m{steps}"
                steps += 1
            await pong
            # Whatever is left is still there, in order.
            for i in range(steps, messages):
                assert (await http.get("/step")).text == f"m{i}"
        return steps


def test_messages_up_to_ws_max_queue_are_read_ahead(server):
    # The default queue (32) holds all 20 messages: the ping behind them is read and
    # answered while the app has received none of them.
    async def scenario():
        async with connect(ws_url(server, "/held"), ping_interval=None) as ws:
            for i in range(20):
                await ws.send(f"m{i}")
            await (await ws.ping())
            async with httpx.AsyncClient(base_url=server.url, trust_env=False, timeout=30) as http:
                for i in range(20):
                    assert (await http.get("/step")).text == f"m{i}"

    run(scenario())


def test_reading_stops_at_ws_max_queue_until_the_app_receives(start_server):
    server = start_server("ws_asgi:app", "--port", "0", "--no-reload", "--ws-max-queue", "2")
    messages = 20
    steps = run(pong_after_steps(server, messages))
    # At most 2 queued plus the one waiting for room: the ping cannot be read before the app
    # took all but those.
    assert steps >= messages - 2, steps


def test_keepalive_pings_and_closes_1011_when_unanswered(start_server):
    server = start_server(
        "ws_asgi:app",
        "--port",
        "0",
        "--no-reload",
        "--ws-ping-interval",
        "0.2",
        "--ws-ping-timeout",
        "0.5",
    )

    async def answering_client():
        # The client library answers pings: the connection outlives many ping intervals.
        async with connect(ws_url(server, "/echo"), ping_interval=None) as ws:
            await asyncio.sleep(1.5)
            await ws.send("alive")
            return await ws.recv()

    assert run(answering_client()) == "echo:alive"

    key = base64.b64encode(os.urandom(16))
    request = (
        b"GET /echo HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + key + b"\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=20) as sock:
        sock.sendall(request)
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(1)
        assert head.startswith(b"HTTP/1.1 101")
        opcodes = []
        while True:  # never answer: the server must give up on us
            opcode, payload = read_frame(sock)
            opcodes.append(opcode)
            if opcode == 0x8:
                break
    assert opcodes[0] == 0x9, opcodes  # a ping first
    code, reason = struct.unpack("!H", payload[:2])[0], payload[2:].decode()
    assert (code, reason) == (1011, "keepalive ping timeout")


def test_shutdown_closes_open_sockets_with_1012(start_server):
    server = start_server("ws_asgi:app", "--port", "0", "--no-reload")

    async def scenario():
        async with connect(ws_url(server, "/echo")) as ws:
            await ws.send("hi")
            assert await ws.recv() == "echo:hi"
            server.proc.send_signal(signal.SIGINT)
            return await closed_by_server(ws)

    closed = run(scenario())
    assert closed.rcvd is not None and closed.rcvd.code == 1012
    # The one SIGINT is enough: the server exits by itself, cleanly.
    assert server.proc.wait(30) == 0, server.output
    server.wait_for_line("Finished server process")


# -- FastAPI --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fastapi_server(start_module_server, markers):
    return start_module_server(
        "fastapi_ws:app", "--port", "0", env={"HMR_TEST_MARKERS": str(markers)}
    )


def test_fastapi_websocket_route(fastapi_server, markers):
    async def scenario():
        url = ws_url(fastapi_server, "/rooms/lobby?name=ann")
        async with connect(url, subprotocols=["chat"]) as ws:
            assert ws.subprotocol == "chat"
            replies = []
            for text in ("one", "two"):
                await ws.send(text)
                replies.append(json.loads(await ws.recv()))
        async with connect(ws_url(fastapi_server, "/bytes")) as ws:
            await ws.send(b"abc")
            reversed_ = await ws.recv()
        return replies, reversed_

    replies, reversed_ = run(scenario())
    assert replies == [
        {"room": "lobby", "name": "ann", "text": "one", "n": 1},
        {"room": "lobby", "name": "ann", "text": "two", "n": 2},
    ]
    assert reversed_ == b"cba"
    wait_for_marker(markers, "fastapi disconnect lobby 1000 ")
    with fastapi_server.client() as client:
        assert client.get("/").json() == {"hello": "http"}


def test_fastapi_refusal_and_server_close(fastapi_server):
    error = run(refused(ws_url(fastapi_server, "/private")))
    assert error.response.status_code == 403

    async def scenario():
        async with connect(ws_url(fastapi_server, "/private?token=secret")) as ws:
            greeting = await ws.recv()
            return greeting, await closed_by_server(ws)

    greeting, closed = run(scenario())
    assert greeting == "welcome"
    assert closed.rcvd is not None and (closed.rcvd.code, closed.rcvd.reason) == (4000, "bye")


# -- hot reload -----------------------------------------------------------------------------

RELOAD_FILES = {
    "pkg/__init__.py": "",
    "pkg/version.py": 'VERSION = "v1"\n',
    "pkg/main.py": """
        from fastapi import FastAPI, WebSocket, WebSocketDisconnect

        from pkg import version

        app = FastAPI()

        @app.get("/version")
        async def current():
            return {"version": version.VERSION}

        @app.websocket("/ws")
        async def ws(websocket: WebSocket):
            await websocket.accept()
            tag = version.VERSION  # what this connection's handler started with
            try:
                while True:
                    text = await websocket.receive_text()
                    await websocket.send_text(f"{tag}:{text}")
            except WebSocketDisconnect:
                pass
    """,
}


def test_open_socket_survives_a_hot_reload_without_holding_it(start_server, tmp_path):
    for rel, text in RELOAD_FILES.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
    # A drain timeout far longer than the test waits: a reload that waited for the open
    # socket would show up as the "still running" warning and a missing reload line.
    server = start_server(
        "pkg.main:app", "--port", "0", "--reload-drain-timeout", "600", cwd=tmp_path
    )

    async def scenario():
        async with connect(ws_url(server, "/ws")) as old:
            await old.send("a")
            assert await old.recv() == "v1:a"
            (tmp_path / "pkg/version.py").write_text('VERSION = "v2"\n')
            await asyncio.to_thread(server.wait_for_line, r"reloaded \d+ modules?", 30)
            async with server.async_client() as http:
                assert (await http.get("/version")).json() == {"version": "v2"}
            async with connect(ws_url(server, "/ws")) as new:
                await new.send("b")
                new_answer = await new.recv()
            # The old connection still works, on the code it started with.
            await old.send("c")
            return new_answer, await old.recv()

    new_answer, old_answer = run(scenario())
    assert new_answer == "v2:b"
    assert old_answer == "v1:c"
    reload_line = server.wait_for_line(r"reloaded \d+ modules?")
    assert "after changes to pkg/version.py" in reload_line, reload_line
    assert server.count_lines(r"still running after") == 0, server.output


def test_handshake_waits_at_the_gate_of_a_running_reload(start_server, tmp_path):
    """A handshake that arrives while a reload runs is held at the gate like any request, then
    served by the new code."""
    for rel, text in RELOAD_FILES.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
    started = tmp_path / "reload-started"
    server = start_server("pkg.main:app", "--port", "0", "--no-access-log", cwd=tmp_path)
    # Re-executing the edited module says so, then takes a while: the gate is closed meanwhile.
    (tmp_path / "pkg/version.py").write_text(
        f"import pathlib, time\npathlib.Path({str(started)!r}).touch()\n"
        'time.sleep(1.5)\nVERSION = "v2"\n'
    )
    deadline = time.monotonic() + 30
    while not started.exists():
        assert time.monotonic() < deadline, server.output
        time.sleep(0.01)

    async def scenario():
        async with connect(ws_url(server, "/ws")) as ws:
            await ws.send("x")
            return await ws.recv()

    assert run(scenario()) == "v2:x"
    line = server.wait_for_line(r"reloaded \d+ modules?")
    assert "(held 1 request)" in line, line
