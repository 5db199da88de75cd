"""The full-restart fallback: the process replaces itself with exec (same PID), keeping its
listening socket, so no connection is refused and no request fails across a restart; a broken
edit after a restart answers 503 until it is fixed; `--fd` serves on a socket given by a parent.

Restarts are triggered with `--reload-strategy restart` (every change to a loaded module)."""

from __future__ import annotations

import functools
import os
import signal
import socket
import subprocess
import textwrap
import threading
import time
from pathlib import Path

import httpx
import pytest
from conftest import Server, StartServer

APP = """
import asyncio
import os

VERSION = "{version}"


def mark(what):
    path = os.environ.get("RESTART_MARKERS")
    if path:
        with open(path, "a") as f:
            f.write(f"{{what}} {{os.getpid()}}\\n")


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                mark("startup")
                await send({{"type": "lifespan.startup.complete"}})
            elif message["type"] == "lifespan.shutdown":
                mark("shutdown")
                await send({{"type": "lifespan.shutdown.complete"}})
                return
    if scope["type"] != "http":
        return
    if scope["path"] == "/slow":
        await asyncio.sleep(float(scope["query_string"].decode() or "1"))
    body = f"{{VERSION}} {{os.getpid()}}".encode()
    await send(
        {{
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain")],
        }}
    )
    await send({{"type": "http.response.body", "body": body}})
"""

RESTART_LINE = r"WARNING:  restarting the process: "


def write_app(root: Path, version: str) -> None:
    (root / "app.py").write_text(textwrap.dedent(APP).format(version=version))


def answer(server: Server, path: str = "/") -> httpx.Response:
    with server.client(timeout=10) as client:
        return client.get(path)


def wait_for_version(server: Server, version: str, timeout: float = 20.0) -> int:
    """Polls until the server answers `version`; returns the PID it reports."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            response = answer(server)
            last = f"{response.status_code} {response.text!r}"
            if response.status_code == 200 and response.text.split()[0] == version:
                return int(response.text.split()[1])
        except httpx.HTTPError as exc:
            last = repr(exc)
        time.sleep(0.02)
    raise AssertionError(f"never answered {version!r} (last: {last})\n{server.output}")


def wait_for_restarts(server: Server, count: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while server.count_lines(RESTART_LINE) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"expected {count} restarts\n{server.output}")
        time.sleep(0.02)


def raw_get(port: int) -> tuple[int, str]:
    """GET / on a new connection; (status, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    if not head:
        raise ValueError("connection closed without a response")
    return int(head.split()[1]), body.decode()


def as_pair(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.text


class Hammer:
    """Background clients: one opens a fresh connection per request, one reuses a keep-alive
    connection. Every error or non-200 answer is recorded."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.answers: list[str] = []
        self.failures: list[str] = []
        self.sent = {"fresh": 0, "keep-alive": 0}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._fresh, daemon=True),
            threading.Thread(target=self._keep_alive, daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _record(self, kind: str, get) -> None:
        try:
            status, text = get()
            with self._lock:
                if status == 200:
                    self.answers.append(text)
                else:
                    self.failures.append(f"{kind}: status {status} {text}")
        except (httpx.HTTPError, OSError, ValueError) as exc:
            with self._lock:
                self.failures.append(f"{kind}: {exc!r}")
        self.sent[kind] += 1

    def _fresh(self) -> None:
        while not self._stop.is_set():
            # A raw socket per request: a refused connection shows as ConnectionRefusedError.
            self._record("fresh", lambda: raw_get(self.server.port))
            time.sleep(0.005)

    def _keep_alive(self) -> None:
        with self.server.client(timeout=30) as client:
            while not self._stop.is_set():
                self._record("keep-alive", lambda: as_pair(client.get("/")))
                time.sleep(0.005)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(40)
            assert not thread.is_alive(), "a background client hung"


def assert_process_group_gone(server: Server) -> None:
    """No process of the server's own group (the server and anything it spawned) is left."""
    deadline = time.monotonic() + 5
    while True:
        try:
            os.killpg(server.proc.pid, 0)
        except ProcessLookupError:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"processes of the server's group survived\n{server.output}")
        time.sleep(0.05)


def sigint_and_wait(server: Server, timeout: float = 15.0) -> int:
    server.proc.send_signal(signal.SIGINT)
    try:
        return server.proc.wait(timeout)
    except subprocess.TimeoutExpired:
        server.kill()
        raise AssertionError(f"no exit within {timeout}s after SIGINT\n{server.output}") from None


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    root.mkdir()
    write_app(root, "v1")
    return root


def test_restarts_keep_socket_and_pid_and_fail_no_request(start_server: StartServer, app_dir):
    markers = app_dir.parent / "markers.txt"
    server = start_server(
        "app:app",
        "--port",
        "0",
        "--reload-strategy",
        "restart",
        "--no-access-log",
        cwd=app_dir,
        env={"RESTART_MARKERS": str(markers)},
    )
    pid = wait_for_version(server, "v1")
    assert pid == server.proc.pid
    hammer = Hammer(server)
    try:
        time.sleep(0.2)
        for n in range(2, 6):
            write_app(app_dir, f"v{n}")
            assert wait_for_version(server, f"v{n}") == pid
            wait_for_restarts(server, n - 1)
            time.sleep(0.15)  # let the clients run on the new process too
    finally:
        hammer.stop()
    assert not hammer.failures, f"{hammer.failures[:10]}\n{server.output}"
    assert hammer.sent["fresh"] >= 20 and hammer.sent["keep-alive"] >= 20, hammer.sent
    versions = {text.split()[0] for text in hammer.answers}
    pids = {int(text.split()[1]) for text in hammer.answers}
    assert pids == {pid}
    assert {"v1", "v5"} <= versions, versions
    assert server.count_lines(RESTART_LINE + r"--reload-strategy restart \(app\.py\)") == 4
    # Each process ran its lifespan startup, and each replaced one its shutdown, in order.
    lines = markers.read_text().split("\n")
    assert lines[:-1] == [f"startup {pid}", f"shutdown {pid}"] * 4 + [f"startup {pid}"]
    assert server.proc.poll() is None
    assert "panicked" not in server.output


def test_request_in_flight_finishes_on_the_old_code(start_server: StartServer, app_dir):
    server = start_server("app:app", "--port", "0", "--reload-strategy", "restart", cwd=app_dir)
    wait_for_version(server, "v1")
    result: dict[str, object] = {}

    def slow() -> None:
        try:
            result["response"] = answer(server, "/slow?0.8")
        except httpx.HTTPError as exc:
            result["error"] = exc

    thread = threading.Thread(target=slow)
    thread.start()
    time.sleep(0.3)  # the request is inside the app now
    write_app(app_dir, "v2")
    wait_for_restarts(server, 1)
    wait_for_version(server, "v2")
    thread.join(20)
    assert not thread.is_alive()
    assert "error" not in result, f"{result}\n{server.output}"
    response = result["response"]
    assert isinstance(response, httpx.Response)
    assert response.status_code == 200
    assert response.text.startswith("v1 ")


def test_broken_edit_after_restart_serves_503_until_fixed(start_server: StartServer, app_dir):
    server = start_server("app:app", "--port", "0", "--reload-strategy", "restart", cwd=app_dir)
    pid = wait_for_version(server, "v1")
    (app_dir / "app.py").write_text("VERSION = (\n")
    wait_for_restarts(server, 1)
    server.wait_for_line(r"the app failed to load", timeout=20)
    response = answer(server)
    assert response.status_code == 503
    assert response.text.startswith("app failed to load: ")
    assert "SyntaxError" in response.text
    assert response.headers["content-type"].startswith("text/plain")
    assert server.proc.poll() is None  # a broken edit does not end the session
    # A second broken edit restarts again and still answers 503.
    (app_dir / "app.py").write_text("raise RuntimeError('still broken')\n")
    wait_for_restarts(server, 2)
    deadline = time.monotonic() + 20
    while "still broken" not in (text := answer(server).text):
        assert time.monotonic() < deadline, f"{text}\n{server.output}"
        time.sleep(0.05)
    assert answer(server).status_code == 503
    write_app(app_dir, "v3")
    assert wait_for_version(server, "v3") == pid
    assert sigint_and_wait(server) == 0, server.output


def test_sigint_after_restart_exits_0_without_orphans(start_server: StartServer, app_dir):
    server = start_server("app:app", "--port", "0", "--reload-strategy", "restart", cwd=app_dir)
    pid = wait_for_version(server, "v1")
    write_app(app_dir, "v2")
    assert wait_for_version(server, "v2") == pid
    server.wait_for_line(r"serving http://", timeout=5)
    assert sigint_and_wait(server) == 0, server.output
    assert_process_group_gone(server)
    server.wait_for_line(rf"Finished server process \[{pid}\]", timeout=5)
    with socket.socket() as probe:
        probe.settimeout(5)
        assert probe.connect_ex(("127.0.0.1", server.port)) != 0, "the port still accepts"


def test_hot_strategy_does_not_restart(start_server: StartServer, app_dir):
    server = start_server("app:app", "--port", "0", cwd=app_dir)
    pid = wait_for_version(server, "v1")
    write_app(app_dir, "v2")
    assert wait_for_version(server, "v2") == pid
    server.wait_for_line(r"reloaded \d+ modules?", timeout=10)
    assert server.count_lines(RESTART_LINE) == 0


def test_uds_socket_file_survives_restarts_and_goes_at_exit(start_server: StartServer, app_dir):
    path = app_dir.parent / "s.sock"
    server = start_server(
        "app:app", "--uds", str(path), "--reload-strategy", "restart", cwd=app_dir
    )
    pid = wait_for_version(server, "v1")
    write_app(app_dir, "v2")
    assert wait_for_version(server, "v2") == pid
    assert path.exists()
    assert sigint_and_wait(server) == 0, server.output
    assert not path.exists(), "the socket file of --uds is left behind"


def start_with_fd(start_server: StartServer, sock: socket.socket, *args: str, **kwargs) -> Server:
    """Starts a server that inherits `sock` (as `--fd N` with the same number)."""
    fd = sock.fileno()
    real_popen = subprocess.Popen
    subprocess.Popen = functools.partial(real_popen, pass_fds=(fd,))  # type: ignore[misc]
    try:
        return start_server("app:app", "--fd", str(fd), *args, **kwargs)
    finally:
        subprocess.Popen = real_popen  # type: ignore[misc]


def test_fd_tcp_socket_from_parent(start_server: StartServer, app_dir):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        port = sock.getsockname()[1]
        server = start_with_fd(start_server, sock, "--reload-strategy", "restart", cwd=app_dir)
        assert server.url == f"http://127.0.0.1:{port}"
        pid = wait_for_version(server, "v1")
        write_app(app_dir, "v2")
        assert wait_for_version(server, "v2") == pid
        assert sigint_and_wait(server) == 0, server.output
        # The parent's copy of the socket is untouched: it still listens.
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass


def test_fd_unix_socket_from_parent(start_server: StartServer, app_dir):
    path = app_dir.parent / "parent.sock"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))
        sock.listen(16)
        server = start_with_fd(start_server, sock, cwd=app_dir)
        assert server.uds == str(path)
        wait_for_version(server, "v1")
        assert sigint_and_wait(server) == 0, server.output
        assert path.exists(), "the parent's socket file was removed"


def test_fd_that_is_not_a_socket_fails_cleanly(app_dir):
    from conftest import run_cli

    proc = run_cli(["app:app", "--fd", "987"], cwd=app_dir)
    assert proc.returncode != 0
    assert "file descriptor 987" in proc.stderr, proc.stderr
    assert "panicked" not in proc.stderr + proc.stdout


def test_startup_failure_after_restart_serves_503_until_fixed(start_server: StartServer, app_dir):
    server = start_server(
        "app:app", "--port", "0", "--reload-strategy", "restart", "--lifespan", "on", cwd=app_dir
    )
    pid = wait_for_version(server, "v1")
    source = (app_dir / "app.py").read_text()
    broken = source.replace('mark("startup")', 'raise RuntimeError("startup broke")')
    assert broken != source
    (app_dir / "app.py").write_text(broken)
    wait_for_restarts(server, 1)
    server.wait_for_line(r"the app failed to load", timeout=20)
    response = answer(server)
    assert response.status_code == 503
    assert response.text == "app failed to load: application startup failed\n"
    write_app(app_dir, "v2")
    assert wait_for_version(server, "v2") == pid
    assert sigint_and_wait(server) == 0, server.output
