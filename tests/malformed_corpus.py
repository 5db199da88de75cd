"""A deterministic corpus of malformed and hostile HTTP/1.1 requests, generated from a seed (so
a failure names an input that can be regenerated), for tests/test_malformed.py.

Families: hand-written smuggling and framing shapes; mutations of valid requests (byte flips,
inserted CR/LF/NUL/space, truncation, duplicated and reordered lines); random methods, targets,
versions and header values; conflicting Content-Length/Transfer-Encoding combinations; broken
chunked bodies; oversized parts; plain noise."""

from __future__ import annotations

import random

SEED = 20261201

BASES = [
    b"GET / HTTP/1.1\r\nHost: t\r\n\r\n",
    b"GET /scope?x=1&y=%20 HTTP/1.1\r\nHost: t\r\nCookie: a=1\r\nAccept: */*\r\n\r\n",
    b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello",
    b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    b"PUT /echo HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc",
]

SHAPES = [
    # both framings, in both orders, with smuggled follow-ups
    b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n",
    b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"
    b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n",
    b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n\r\n"
    b"0\r\n\r\n",
    b"POST /echo HTTP/1.1\r\nhost: t\r\ncontent-length: 5\r\ntransfer-encoding: CHUNKED\r\n"
    b"content-length: 5\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n"
    b"5\r\nhello\r\n0\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: t\r\n\r\nPOST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n",
    b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
    b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
    b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding:\tchunked\r\n\r\n0\r\n\r\n",
    b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: y\r\n\r\n",
    b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
    b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5;ext=1\r\nhello\r\n0\r\n\r\n",
    b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n",
    b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\n0\n\n",
    b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n",
    b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5, 5\r\n\r\nhello",
    b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 0x5\r\n\r\nhello",
    b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 99999999999999999999\r\n\r\n",
    b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length:\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: t\r\nX: a\r\n b\r\n\r\n",
    b"GET / HTTP/1.1\r\n Host: t\r\n\r\n",
    b"GET / HTTP/1.1\nHost: t\n\n",
    b"GET / HTTP/1.1\rHost: t\r\r\n",
    b"GET / HTTP/1.1\r\nHost: t\r\n\n",
    b"GET  /  HTTP/1.1\r\nHost: t\r\n\r\n",
    b"GET / HTTP/1.1 \r\nHost: t\r\n\r\n",
    b"GET /\x00 HTTP/1.1\r\nHost: t\r\n\r\n",
    b"GET http://other/ HTTP/1.1\r\nHost: t\r\n\r\n",
    b"GET //// HTTP/1.1\r\nHost: t\r\n\r\n",
    b"GET /%zz%00%ff HTTP/1.1\r\nHost: t\r\n\r\n",
    b"GET * HTTP/1.1\r\nHost: t\r\n\r\n",
    b"CONNECT t:443 HTTP/1.1\r\nHost: t:443\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: t\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n",
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    b"GET / HTTP/0.9\r\n\r\n",
    b"GET /\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
    b"GET / HTTP/1.1\r\nHost: t\r\nExpect: bogus\r\n\r\n",
    b"\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: t\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(64)),
    b"GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n",
    b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: t\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: t\r\n" + b"X: y\r\n" * 300 + b"\r\n",
]

METHODS = [b"GET", b"POST", b"get", b"G ET", b"", b"\xffGET", b"GET\x00", b"A" * 300, b"PATCH"]
TARGETS = [b"/", b"", b"/a b", b"/\r", b"/\xff\xfe", b"/?" + b"q" * 200, b"%", b"/..%2f..", b"\t/"]
VERSIONS = [
    b"HTTP/1.1",
    b"HTTP/1.0",
    b"HTTP/2",
    b"HTTP/1.10",
    b"http/1.1",
    b"HTTP/",
    b"",
    b"HTTP/1.1x",
]
VALUES = [b"", b" ", b"\x00", b"\x7f", b"\xff", b"a\rb", b"a\nb", b"\t", b"v" * 100, b":"]
NAMES = [b"X", b"", b" X", b"X ", b"X\x00", b"(", b"Content-Length", b"Transfer-Encoding", b"Host"]
INSERTS = [b"\r", b"\n", b"\x00", b" ", b"\t", b":", b"\r\n", b"\xff", b"\r\n\r\n"]


def _mutate(rng: random.Random, data: bytes) -> bytes:
    data = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        op = rng.randrange(5)
        pos = rng.randrange(len(data) + 1)
        if op == 0 and data:
            data[min(pos, len(data) - 1)] = rng.randrange(256)
        elif op == 1:
            data[pos:pos] = rng.choice(INSERTS)
        elif op == 2 and data:
            del data[pos : pos + rng.randint(1, 4)]
        elif op == 3:
            lines = bytes(data).split(b"\r\n")
            i = rng.randrange(len(lines))
            lines.insert(rng.randrange(len(lines) + 1), lines[i])
            data = bytearray(b"\r\n".join(lines))
        else:
            data = data[: rng.randrange(len(data) + 1)]
    return bytes(data)


def _assembled(rng: random.Random) -> bytes:
    line = b" ".join([rng.choice(METHODS), rng.choice(TARGETS), rng.choice(VERSIONS)])
    headers = [b"Host: t"]
    for _ in range(rng.randint(0, 4)):
        headers.append(rng.choice(NAMES) + b":" + rng.choice(VALUES))
    return (
        line
        + b"\r\n"
        + b"\r\n".join(headers)
        + b"\r\n\r\n"
        + rng.choice([b"", b"abc", b"0\r\n\r\n"])
    )


def _framing(rng: random.Random) -> bytes:
    lengths = [b"0", b"3", b"10", b"-1", b"1e3", b" 3", b"3 ", b"+3", b"", b"18446744073709551616"]
    codings = [
        b"chunked",
        b"gzip",
        b"gzip, chunked",
        b"chunked, gzip",
        b"identity",
        b"CHUNKED",
        b"",
    ]
    headers = [b"POST /echo HTTP/1.1", b"Host: t"]
    for _ in range(rng.randint(1, 3)):
        if rng.random() < 0.5:
            headers.append(b"Content-Length: " + rng.choice(lengths))
        else:
            headers.append(b"Transfer-Encoding: " + rng.choice(codings))
    body = rng.choice([b"", b"abc", b"3\r\nabc\r\n0\r\n\r\n", b"zz\r\n", b"3\r\nabcdef\r\n"])
    return b"\r\n".join(headers) + b"\r\n\r\n" + body


def _noise(rng: random.Random) -> bytes:
    return bytes(rng.randrange(256) for _ in range(rng.randint(1, 200)))


def corpus(count: int = 400, seed: int = SEED) -> list[bytes]:
    """`count` inputs (at least the hand-written shapes), the same for the same seed."""
    rng = random.Random(seed)
    inputs = list(SHAPES)
    makers = [
        lambda: _mutate(rng, rng.choice(BASES)),
        lambda: _assembled(rng),
        lambda: _framing(rng),
        lambda: _noise(rng),
    ]
    while len(inputs) < count:
        inputs.append(rng.choice(makers)())
    return inputs
