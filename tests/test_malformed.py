"""Replays a deterministic corpus of malformed and hostile requests (tests/malformed_corpus.py)
over raw sockets against both bridges: no crash, no hang, no 500 (or other server fault) for
any of them, and ordinary requests are served afterwards."""

from __future__ import annotations

import collections
from concurrent.futures import ThreadPoolExecutor

import pytest
from malformed_corpus import corpus
from raw_http import connect, get_ok, read_until_closed

# How long one input may leave its connection open without an answer: the server may rightly
# wait for the rest of a body it was promised. Heads are cut off by --timeout-header-read.
PER_INPUT = 4.0


def replay(port: int, data: bytes):
    try:
        with connect(port) as sock:
            try:
                sock.sendall(data)
            except (BrokenPipeError, ConnectionResetError):
                pass
            return read_until_closed(sock, PER_INPUT)
    except (ConnectionRefusedError, TimeoutError) as exc:
        raise AssertionError(f"server unreachable during the replay: {exc!r}") from None


@pytest.mark.parametrize(
    ("spec", "reader"),
    [("raw_asgi:app", b"/echo"), ("raw_wsgi:app", b"/read")],
    ids=["asgi", "wsgi"],
)
def test_malformed_corpus_gets_no_5xx_and_leaves_the_server_serving(start_server, spec, reader):
    server = start_server(
        spec,
        "--port",
        "0",
        "--no-reload",
        "--timeout-header-read",
        "2",
        "--limit-max-body",
        "100000",
    )
    inputs = [data.replace(b" /echo ", b" " + reader + b" ") for data in corpus()]
    with ThreadPoolExecutor(max_workers=32) as pool:
        results = list(pool.map(lambda data: replay(server.port, data), inputs))

    statuses = collections.Counter()
    for data, result in zip(inputs, results, strict=True):
        # 501 (transfer coding) and 505 (HTTP/2 preface) are refusals; any other 5xx is a fault.
        assert not any(s >= 500 and s not in (501, 505) for s in result.statuses), (
            data[:200],
            result,
        )
        for status in result.statuses or ["no answer, closed" if result.closed else "waiting"]:
            statuses[status] += 1
    assert server.proc.poll() is None, server.output
    assert "panicked" not in server.output
    get_ok(server.port)
    print(f"\n{spec}: {len(inputs)} inputs, answers: {dict(sorted(statuses.items(), key=str))}")
    assert len(inputs) >= 400
