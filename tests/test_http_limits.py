"""HTTP input limits: every hostile or oversized request gets a clear 4xx/5xx (with a short
plain-text body where the answer is the server's own), slow clients are cut off, and after each
case the server still serves ordinary requests."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from raw_http import connect, exchange, get_ok, read_until_closed

MAX_BODY = 1000
MAX_HEAD = 4096
LIMIT_FLAGS = (
    "--port",
    "0",
    "--no-reload",
    "--limit-max-body",
    str(MAX_BODY),
    "--h11-max-incomplete-event-size",
    str(MAX_HEAD),
    "--timeout-keep-alive",
    "1",
    "--timeout-header-read",
    "2",
)


@pytest.fixture(scope="module")
def asgi(start_module_server):
    return start_module_server("raw_asgi:app", *LIMIT_FLAGS)


@pytest.fixture(scope="module")
def wsgi(start_module_server):
    return start_module_server("raw_wsgi:app", *LIMIT_FLAGS)


def for_app(app: str, data: bytes) -> bytes:
    """The cases read their body at /echo (ASGI app); the WSGI app's reader is /read."""
    return data.replace(b" /echo ", b" /read ") if app == "wsgi" else data


def head(target: str = "/", *lines: str, method: str = "GET") -> bytes:
    text = f"{method} {target} HTTP/1.1\r\nHost: t\r\n" + "".join(f"{line}\r\n" for line in lines)
    return (text + "\r\n").encode()


def assert_refused(result, status: int, text: bytes | None) -> None:
    assert result.status == status, result
    assert result.closed, f"connection left open after {status}: {result}"
    if text is not None:
        assert b"content-type: text/plain" in result.data.lower(), result
        assert text in result.body, result


# (request bytes, status, words of the plain-text body). The server's read buffer is sized from
# the limits; a head that overflows it is refused before it is even parsed.
OVERSIZE = {
    "header-section-over-limit": (head("/", "X-Big: " + "a" * MAX_HEAD), 431, b"header section"),
    "too-many-headers": (head("/", *(f"X-{i}: v" for i in range(101))), 431, b"too many header"),
    "head-beyond-the-read-buffer": (head("/", "X-Huge: " + "a" * 200_000), 431, b"request head"),
    "uri-over-limit": (head("/" + "a" * MAX_HEAD), 414, b"URI Too Long"),
    "request-line-beyond-the-read-buffer": (head("/" + "a" * 70_000), 431, b"request head"),
    "content-length-over-limit": (
        head("/echo", f"Content-Length: {MAX_BODY + 1}", method="POST") + b"x" * (MAX_BODY + 1),
        413,
        b"--limit-max-body",
    ),
    "huge-content-length-not-sent": (
        head("/echo", "Content-Length: 99999999999", method="POST"),
        413,
        b"--limit-max-body",
    ),
    "chunked-body-growing-past-limit": (
        head("/echo", "Transfer-Encoding: chunked", method="POST")
        + b"".join(b"190\r\n" + b"y" * 400 + b"\r\n" for _ in range(5))
        + b"0\r\n\r\n",
        413,
        b"--limit-max-body",
    ),
}

# Malformed or ambiguous framing. hyper detects most of these; the answer text then carries its
# description of the problem.
MALFORMED = {
    "bad-method-token": (b"G(T / HTTP/1.1\r\nHost: t\r\n\r\n", 400, b"invalid HTTP method"),
    "bad-version": (b"GET / HTTP/9.9\r\nHost: t\r\n\r\n", 400, b"invalid HTTP version"),
    "obs-fold": (head("/", "X-A: a", " folded"), 400, b"invalid HTTP header"),
    "bare-cr": (b"GET / HTTP/1.1\rHost: t\r\n\r\n", 400, b"Bad Request"),
    "nul-in-header": (head("/", "X-A: a\x00b"), 400, b"invalid HTTP header"),
    "space-before-colon": (head("/", "X-A : b"), 400, b"invalid HTTP header"),
    "control-char-in-uri": (b"GET /a\x01b HTTP/1.1\r\nHost: t\r\n\r\n", 400, b"Bad Request"),
    "negative-content-length": (
        head("/echo", "Content-Length: -1", method="POST"),
        400,
        b"invalid content-length",
    ),
    "conflicting-content-lengths": (
        head("/echo", "Content-Length: 4", "Content-Length: 5", method="POST") + b"abcde",
        400,
        b"invalid content-length",
    ),
    "content-length-list": (
        head("/echo", "Content-Length: 4, 5", method="POST"),
        400,
        b"invalid content-length",
    ),
    "transfer-encoding-gzip-alone": (
        head("/echo", "Transfer-Encoding: gzip", method="POST") + b"abcd",
        400,
        b"invalid transfer-encoding",
    ),
    "chunked-not-last": (
        head("/echo", "Transfer-Encoding: chunked, identity", method="POST") + b"0\r\n\r\n",
        400,
        b"invalid transfer-encoding",
    ),
    "transfer-encoding-on-http-1.0": (
        b"POST /echo HTTP/1.0\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
        b"transfer-encoding",
    ),
    # RFC 9112 6.1: a request smuggling guard, as h11 (and so uvicorn) has.
    "content-length-and-chunked": (
        head("/echo", "Content-Length: 5", "Transfer-Encoding: chunked", method="POST")
        + b"5\r\nhello\r\n0\r\n\r\n",
        400,
        b"both Content-Length and Transfer-Encoding",
    ),
    "chunked-and-content-length": (
        head("/echo", "Transfer-Encoding: chunked", "Content-Length: 5", method="POST")
        + b"5\r\nhello\r\n0\r\n\r\n",
        400,
        b"both Content-Length and Transfer-Encoding",
    ),
    "identical-content-lengths-in-one-line": (
        head("/echo", "Content-Length: 5, 5", method="POST") + b"hello",
        400,
        b"invalid content-length",
    ),
    "gzip-then-chunked": (
        head("/echo", "Transfer-Encoding: gzip, chunked", method="POST")
        + b"4\r\nabcd\r\n0\r\n\r\n",
        501,
        b"only the chunked transfer coding",
    ),
}


@pytest.mark.parametrize("case", list(OVERSIZE), ids=list(OVERSIZE))
@pytest.mark.parametrize("app", ["asgi", "wsgi"])
def test_oversized_input_is_refused_and_the_server_keeps_serving(request, app, case):
    server = request.getfixturevalue(app)
    data, status, text = OVERSIZE[case]
    assert_refused(exchange(server.port, for_app(app, data)), status, text)
    get_ok(server.port)


@pytest.mark.parametrize("case", list(MALFORMED), ids=list(MALFORMED))
@pytest.mark.parametrize("app", ["asgi", "wsgi"])
def test_malformed_request_is_refused_and_the_server_keeps_serving(request, app, case):
    server = request.getfixturevalue(app)
    data, status, text = MALFORMED[case]
    assert_refused(exchange(server.port, for_app(app, data)), status, text)
    get_ok(server.port)


def test_input_at_the_limits_is_served(asgi):
    body = b"z" * MAX_BODY
    result = exchange(
        asgi.port,
        head("/echo", f"Content-Length: {MAX_BODY}", "Connection: close", method="POST") + body,
    )
    assert result.status == 200, result
    assert result.body == body
    chunked = head("/echo", "Transfer-Encoding: chunked", "Connection: close", method="POST")
    chunked += b"3e8\r\n" + body + b"\r\n0\r\n\r\n"
    result = exchange(asgi.port, chunked)
    assert result.status == 200, result
    assert result.body == body
    headers = [f"X-{i}: v" for i in range(98)] + ["Connection: close"]
    assert exchange(asgi.port, head("/", *headers)).status == 200


def test_expect_continue_over_the_limit_gets_413_without_100(asgi):
    with connect(asgi.port) as sock:
        sock.sendall(head("/echo", "Content-Length: 5000", "Expect: 100-continue", method="POST"))
        result = read_until_closed(sock, 15)
    assert result.statuses == [413], result
    get_ok(asgi.port)


def test_identical_duplicate_content_lengths_are_one_length(request):
    # RFC 9110 8.6 lets a recipient take repeated identical values as one; h11 does too.
    for app in ("asgi", "wsgi"):
        server = request.getfixturevalue(app)
        data = head(
            "/echo", "Content-Length: 5", "Content-Length: 5", "Connection: close", method="POST"
        )
        result = exchange(server.port, for_app(app, data) + b"hello")
        assert result.status == 200, result
        assert b"hello" in result.body, result


@pytest.mark.parametrize("pipelined", [False, True], ids=["alone", "pipelined"])
def test_both_content_length_and_chunked_cannot_smuggle_a_request(asgi, pipelined):
    # Alone, the head is answered 400 before the app is called. Pipelined behind another
    # request on the same write, hyper frames it by Transfer-Encoding (RFC 9112 6.3) and closes
    # the connection after the answer. Either way the bytes after it never become a request.
    data = (
        head("/echo", "Content-Length: 30", "Transfer-Encoding: chunked", method="POST")
        + b"0\r\n\r\n"
        + head("/smuggled")
    )
    if pipelined:
        data = head("/") + data
    before = asgi.count_lines(r"/smuggled")
    result = exchange(asgi.port, data, half_close=False)
    assert result.closed, result
    if pipelined:
        assert result.statuses[0] == 200 and len(result.statuses) == 2, result
    else:
        assert_refused(result, 400, b"both Content-Length and Transfer-Encoding")
    get_ok(asgi.port)
    assert asgi.count_lines(r"/smuggled") == before, asgi.output


def _stalled_body(port: int, data: bytes):
    """Sends a head and part of its body, then nothing: the server gives up on the body after
    60 s (request_body::BODY_STALL) and answers 408."""
    with connect(port) as sock:
        sock.sendall(data)
        return read_until_closed(sock, 120)


def test_a_stalled_request_body_is_given_up(start_server):
    # Bodies past the module servers' --limit-max-body, and big enough not to be read ahead.
    asgi = start_server("raw_asgi:app", "--port", "0", "--no-reload")
    wsgi = start_server("raw_wsgi:app", "--port", "0", "--no-reload")
    streamed = head("/echo", "Content-Length: 200000", method="POST") + b"x" * 1000
    cases = {
        # The app waits in `receive()` / `wsgi.input.read()` when the body stops.
        "asgi-streamed": (asgi, streamed),
        "asgi-chunked": (
            asgi,
            head("/echo", "Transfer-Encoding: chunked", method="POST") + b"3e8\r\n" + b"y" * 500,
        ),
        "wsgi-streamed": (wsgi, for_app("wsgi", streamed)),
        # Small enough to be read before the app is called: the app never runs.
        "asgi-preread": (asgi, head("/echo", "Content-Length: 800", method="POST") + b"z" * 10),
    }
    with ThreadPoolExecutor(max_workers=len(cases)) as pool:
        futures = {name: pool.submit(_stalled_body, s.port, d) for name, (s, d) in cases.items()}
        results = {name: future.result() for name, future in futures.items()}
    for result in results.values():
        assert_refused(result, 408, b"stopped arriving")
    # The apps saw the client go: the ASGI test app raises on `http.disconnect`, the WSGI
    # app's read raised TimeoutError.
    disconnected = r"client disconnected while sending the body"
    assert asgi.wait_for_count(disconnected, 2) >= 2, asgi.output
    stopped = r"TimeoutError: the request body stopped arriving"
    assert wsgi.wait_for_count(stopped, 1) >= 1, wsgi.output
    get_ok(asgi.port)
    get_ok(wsgi.port)


def test_slow_head_is_cut_off(asgi):
    with connect(asgi.port) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nX-Slow: ")
        deadline = time.monotonic() + 20
        closed = False
        while time.monotonic() < deadline:
            try:
                sock.sendall(b"a")
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            sock.settimeout(0.5)
            try:
                if sock.recv(1024) == b"":
                    closed = True
                    break
            except TimeoutError:
                pass
            except ConnectionResetError:
                closed = True
                break
    assert closed, "a head trickling in byte by byte kept its connection for 20 s"
    get_ok(asgi.port)


def test_idle_keep_alive_connection_is_closed(asgi):
    with connect(asgi.port) as sock:
        sock.sendall(head("/"))
        first = sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200"), first
        result = read_until_closed(sock, 15)
    assert result.closed and result.data == b"", result
    get_ok(asgi.port)


def test_keep_alive_timeout_does_not_cut_a_long_request(asgi):
    with connect(asgi.port) as sock:
        sock.sendall(head("/slow?seconds=2.5"))
        result = read_until_closed(sock, 20)
    assert result.status == 200, result
    assert b"slow done" in result.data


def test_a_connection_that_never_sends_is_closed(asgi):
    with connect(asgi.port) as sock:
        result = read_until_closed(sock, 15)
    assert result.closed and result.data == b"", result


def test_slowloris_gets_only_its_share_of_connections(asgi):
    # Many connections from one address that never finish their head: past the per-address
    # cap (256), new ones from that address are told 503 at once; other addresses are not
    # affected.
    held = []
    try:
        for _ in range(300):
            sock = connect(asgi.port, source="127.0.0.2")
            sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n")
            held.append(sock)
        get_ok(asgi.port)  # from 127.0.0.1, while they are held
        answers = []
        for sock in held[256:]:
            answers.append(read_until_closed(sock, 10))
    finally:
        for sock in held:
            sock.close()
    refused = [a for a in answers if a.status == 503 and b"still sending" in a.body]
    assert len(refused) >= 40, answers[:3]
    get_ok(asgi.port)


def test_h11_flag_sets_the_header_limit(start_server):
    server = start_server("raw_asgi:app", "--port", "0", "--no-reload")
    # The default (64 KiB) takes what the module servers above refuse.
    big = head("/", "X-Big: " + "a" * (MAX_HEAD * 2), "Connection: close")
    assert exchange(server.port, big).status == 200
    over = head("/", "X-Big: " + "a" * (64 * 1024 + 1))
    assert_refused(exchange(server.port, over), 431, b"header section")
    # Past hyper's own 64 KiB limit on a request target.
    assert_refused(exchange(server.port, head("/" + "a" * 70_000)), 414, b"URI Too Long")
    # An app answering without reading a large body: the answer must reach the client even
    # though the connection then closes with the body unread.
    upload = head("/", "Content-Length: 300000", method="POST") + b"u" * 300_000
    result = exchange(server.port, upload)
    assert result.status == 200 and result.body == b"hello from raw asgi", result
    get_ok(server.port)


def test_limit_concurrency_answers_503_beyond_n_connections(start_server):
    server = start_server("raw_asgi:app", "--port", "0", "--no-reload", "--limit-concurrency", "2")
    first, second = connect(server.port), connect(server.port)
    try:
        for sock in (first, second):
            sock.sendall(head("/"))
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        third = exchange(server.port, head("/"))
        assert_refused(third, 503, b"--limit-concurrency")
        # The two admitted connections keep being served.
        first.sendall(head("/"))
        assert first.recv(65536).startswith(b"HTTP/1.1 200")
    finally:
        first.close()
        second.close()
    # Once they are gone, a new connection is admitted (the server notices the close at once;
    # retry briefly only to let it run).
    deadline = time.monotonic() + 10
    while True:
        result = exchange(server.port, head("/", "Connection: close"))
        if result.status == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert result.status == 200, result


def test_limit_flags_reject_nonsense(start_server):
    from conftest import run_cli

    for flag, value in [
        ("--limit-concurrency", "0"),
        ("--limit-max-body", "-1"),
        ("--timeout-keep-alive", "0"),
        ("--h11-max-incomplete-event-size", "zero"),
    ]:
        result = run_cli(["raw_asgi:app", flag, value])
        assert result.returncode == 2, result
        assert flag in result.stderr, result.stderr
