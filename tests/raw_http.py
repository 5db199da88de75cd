"""Raw-socket HTTP/1.1 helpers for the input-limit and malformed-request tests: send exact
bytes, read back what the server answers (every wait bounded), and split the answer into
responses."""

from __future__ import annotations

import re
import socket
import time
from dataclasses import dataclass

STATUS_RE = re.compile(rb"HTTP/1\.[01] (\d{3}) ")


@dataclass
class Exchange:
    data: bytes  # everything the server sent
    closed: bool  # the server closed (or reset) the connection
    timed_out: bool  # nothing more arrived before the deadline, the connection still open

    @property
    def statuses(self) -> list[int]:
        return [int(m.group(1)) for m in STATUS_RE.finditer(self.data)]

    @property
    def status(self) -> int | None:
        statuses = self.statuses
        return statuses[0] if statuses else None

    @property
    def body(self) -> bytes:
        return self.data.partition(b"\r\n\r\n")[2]


def connect(port: int, host: str = "127.0.0.1", source: str | None = None) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if source is not None:
        sock.bind((source, 0))
    sock.settimeout(10)
    sock.connect((host, port))
    return sock


def read_until_closed(sock: socket.socket, timeout: float) -> Exchange:
    """Reads until the server closes, or `timeout` seconds pass without the connection closing."""
    chunks = []
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return Exchange(b"".join(chunks), closed=False, timed_out=True)
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            return Exchange(b"".join(chunks), closed=False, timed_out=True)
        except (ConnectionResetError, BrokenPipeError):
            return Exchange(b"".join(chunks), closed=True, timed_out=False)
        if not chunk:
            return Exchange(b"".join(chunks), closed=True, timed_out=False)
        chunks.append(chunk)


def exchange(
    port: int,
    data: bytes,
    *,
    timeout: float = 15.0,
    half_close: bool = False,
    source: str | None = None,
) -> Exchange:
    """Sends `data` on a fresh connection, then (with `half_close`) signals the end of input,
    and reads the answer. (hyper drops a connection whose client half-closes before its answer
    is written, so ordinary requests keep both directions open.)"""
    with connect(port, source=source) as sock:
        try:
            sock.sendall(data)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        except (ConnectionResetError, BrokenPipeError):
            pass  # the server answered and closed before taking everything
        return read_until_closed(sock, timeout)


def get_ok(port: int, path: str = "/") -> bytes:
    """One ordinary request; returns the body, fails unless the answer is 200."""
    request = f"GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode()
    result = exchange(port, request)
    assert result.status == 200, result
    return result.body
