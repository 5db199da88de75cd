"""Shared helpers for the end-to-end tests.

Every test talks to a real ``python -m hmr_serve`` subprocess over real
sockets. ``start_server`` (function scope) and ``start_module_server``
(module scope) start one, wait for the ``serving ...`` line on stderr and
keep draining stderr/stdout in background threads so the pipes never fill
and tests can assert on the log. Servers are always killed at teardown.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
TESTS_DIR = ROOT / "tests"
APPS_DIR = TESTS_DIR / "apps"
EXAMPLES_DIR = ROOT / "examples"

READY_RE = re.compile(r"serving (http://\S+|unix:\S+) \((ASGI|WSGI)\b")
STARTUP_TIMEOUT = 60.0
CLI_TIMEOUT = 60.0


def server_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    # Never let the test clients or servers pick up a proxy from the environment.
    for key in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        env.pop(key, None)
    if extra:
        env.update(extra)
    return env


def spawn_in_pty(command: list[str], cwd: Path) -> tuple[subprocess.Popen, int]:
    """Starts `command` with a new pty as its stdin, stdout, stderr and controlling terminal
    (keys, colours, Ctrl-C as a terminal sends them); returns the process and the pty's master
    end, which the caller reads and writes."""
    import fcntl  # POSIX only: imported here so that the suite still loads elsewhere
    import pty
    import termios

    master, slave = pty.openpty()

    def controlling_tty() -> None:
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    proc = subprocess.Popen(
        command,
        cwd=cwd,
        env=server_env(),
        stdin=slave,
        stdout=slave,
        stderr=slave,
        preexec_fn=controlling_tty,
        close_fds=True,
    )
    os.close(slave)
    return proc, master


def hmr_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "hmr_serve", *args]


class Server:
    """One running ``hmr_serve`` process."""

    def __init__(
        self,
        app_spec: str,
        args: tuple[str, ...],
        cwd: Path | str,
        env: dict[str, str] | None,
    ) -> None:
        self.cmd = hmr_cmd(app_spec, *args)
        self.cwd = str(cwd)
        self.lines: list[str] = []  # stderr, one entry per line, without newline
        self.stdout_lines: list[str] = []
        self.url: str = ""
        self.uds: str | None = None
        self.interface: str = ""
        self._cond = threading.Condition()
        self._eof = {"stderr": False, "stdout": False}
        self.proc = subprocess.Popen(
            self.cmd,
            cwd=self.cwd,
            env=server_env(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
            bufsize=1,
            start_new_session=True,  # own process group, so cleanup can reach workers
        )
        self._threads = [
            threading.Thread(
                target=self._drain, args=(self.proc.stderr, self.lines, "stderr"), daemon=True
            ),
            threading.Thread(
                target=self._drain,
                args=(self.proc.stdout, self.stdout_lines, "stdout"),
                daemon=True,
            ),
        ]
        for t in self._threads:
            t.start()

    # -- output -----------------------------------------------------------
    def _drain(self, stream, sink: list[str], name: str) -> None:
        try:
            for line in stream:
                with self._cond:
                    sink.append(line.rstrip("\r\n"))
                    self._cond.notify_all()
        finally:
            with self._cond:
                self._eof[name] = True
                self._cond.notify_all()

    @property
    def output(self) -> str:
        """Everything captured so far (stderr, then stdout), for assertion messages."""
        with self._cond:
            err = "\n".join(self.lines)
            out = "\n".join(self.stdout_lines)
        return f"--- stderr ---\n{err}\n--- stdout ---\n{out}"

    def wait_for_line(self, pattern: str | re.Pattern[str], timeout: float = 10.0) -> str:
        """Wait until a stderr line matches ``pattern`` (regex); return that line."""
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        seen = 0
        with self._cond:
            while True:
                for line in self.lines[seen:]:
                    if regex.search(line):
                        return line
                seen = len(self.lines)
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._eof["stderr"]:
                    break
                self._cond.wait(min(remaining, 0.2))
        raise AssertionError(
            f"no stderr line matching {regex.pattern!r} within {timeout}s\n{self.output}"
        )

    def count_lines(self, pattern: str) -> int:
        regex = re.compile(pattern)
        with self._cond:
            return sum(1 for line in self.lines if regex.search(line))

    def wait_for_count(self, pattern: str, count: int, timeout: float = 10.0) -> int:
        """Waits until at least `count` stderr lines match `pattern` (or `timeout` passes);
        returns how many do: what the server logs may land after what it sent the client."""
        deadline = time.monotonic() + timeout
        while (seen := self.count_lines(pattern)) < count and time.monotonic() < deadline:
            with self._cond:
                self._cond.wait(min(deadline - time.monotonic(), 0.2))
        return seen

    # -- lifecycle --------------------------------------------------------
    def wait_ready(self, timeout: float = STARTUP_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        seen = 0
        with self._cond:
            while True:
                for line in self.lines[seen:]:
                    m = READY_RE.search(line)
                    if m:
                        target, self.interface = m.group(1), m.group(2)
                        if target.startswith("unix:"):
                            self.uds = target[len("unix:") :]
                            self.url = "http://localhost"
                        else:
                            self.url = target.rstrip("/")
                        return
                seen = len(self.lines)
                if self._eof["stderr"] and self.proc.poll() is not None:
                    reason = f"server exited with code {self.proc.returncode} before it was ready"
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    reason = f"server printed no 'serving ...' line within {timeout}s"
                    break
                self._cond.wait(min(remaining, 0.2))
        self.kill()
        raise AssertionError(f"{reason}\ncommand: {self.cmd}\n{self.output}")

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def client(self, **kwargs) -> httpx.Client:
        kwargs.setdefault("timeout", 30.0)
        if self.uds:
            kwargs.setdefault("transport", httpx.HTTPTransport(uds=self.uds))
        return httpx.Client(base_url=self.url, trust_env=False, **kwargs)

    def async_client(self, **kwargs) -> httpx.AsyncClient:
        kwargs.setdefault("timeout", 60.0)
        if self.uds:
            kwargs.setdefault("transport", httpx.AsyncHTTPTransport(uds=self.uds))
        return httpx.AsyncClient(base_url=self.url, trust_env=False, **kwargs)

    def _join_readers(self, timeout: float = 5.0) -> None:
        for t in self._threads:
            t.join(timeout)

    def _kill_group(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def stop(self, sig: int = signal.SIGINT, timeout: float = 10.0) -> int:
        """Send ``sig`` and wait for the exit; return the exit code.

        Fails the test if the server does not exit within ``timeout``.
        """
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise AssertionError(
                    f"server did not exit within {timeout}s after signal {sig}\n{self.output}"
                ) from None
        self._kill_group()  # leftover workers of this server's own process group, if any
        self._join_readers()
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            self._kill_group()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        else:
            self._kill_group()
        self._join_readers()


class ServerPool:
    """Starts servers and kills whatever is still running at teardown."""

    def __init__(self) -> None:
        self.servers: list[Server] = []

    def __call__(
        self,
        app_spec: str,
        *args: str,
        cwd: Path | str = APPS_DIR,
        env: dict[str, str] | None = None,
        startup_timeout: float = STARTUP_TIMEOUT,
    ) -> Server:
        server = Server(app_spec, args, cwd, env)
        self.servers.append(server)
        server.wait_ready(startup_timeout)
        return server

    def close(self) -> None:
        for server in self.servers:
            server.kill()


StartServer = Callable[..., Server]


@pytest.fixture
def start_server() -> Iterator[StartServer]:
    pool = ServerPool()
    yield pool
    pool.close()


@pytest.fixture(scope="module")
def start_module_server() -> Iterator[StartServer]:
    pool = ServerPool()
    yield pool
    pool.close()


@pytest.fixture
def client(server: Server) -> Iterator[httpx.Client]:
    """A client of the test module's own `server` fixture."""
    with server.client() as c:
        yield c


def run_cli(
    args: list[str],
    cwd: Path | str = APPS_DIR,
    env: dict[str, str] | None = None,
    timeout: float = CLI_TIMEOUT,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m hmr_serve ARGS`` expecting it to exit by itself.

    If it is still running after ``timeout`` (e.g. it started serving
    instead of failing) it is killed and the test fails.
    """
    cmd = hmr_cmd(*args)
    proc = subprocess.Popen(
        cmd,
        cwd=str(cwd),
        env=server_env(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        errors="replace",
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        out, err = proc.communicate()
        raise AssertionError(
            f"{cmd} did not exit within {timeout}s\n--- stderr ---\n{err}\n--- stdout ---\n{out}"
        ) from None
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def read_markers(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []


def wait_for_marker(path: Path, marker: str, timeout: float = 10.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        markers = read_markers(path)
        if marker in markers:
            return markers
        if time.monotonic() > deadline:
            raise AssertionError(f"marker {marker!r} not written within {timeout}s: {markers}")
        time.sleep(0.05)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def raw_request(host: str, port: int, data: bytes, timeout: float = 10.0) -> bytes:
    """Send raw bytes, read until the server closes the connection."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.fixture
def markers_file(tmp_path: Path) -> Path:
    return tmp_path / "markers.txt"


# -- shared by the reload tests: edits, a steady background client, polling for an answer --------


def write(root: Path, rel: str, text: str) -> None:
    """Writes `text` (dedented, leading newline dropped) to `root/rel`, creating directories."""
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))


def edit(root: Path, rel: str, old: str, new: str) -> None:
    path = root / rel
    text = path.read_text()
    assert old in text, f"{old!r} not in {rel}"
    path.write_text(text.replace(old, new))


class Background:
    """A steady client: every failed request (error or non-200) is counted."""

    def __init__(self, url: str, path: str = "/", interval: float = 0.005) -> None:
        self.url = url
        self.path = path
        self.interval = interval
        self.sent = 0
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30, trust_env=False) as client:
            while not self._stop.is_set():
                try:
                    response = client.get(self.path)
                    if response.status_code != 200:
                        self.failures.append(f"status {response.status_code}")
                except httpx.HTTPError as exc:
                    self.failures.append(repr(exc))
                self.sent += 1
                time.sleep(self.interval)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


@contextlib.contextmanager
def served_tree(
    root: Path, files: dict[str, str], app_spec: str, *args: str, env: dict[str, str] | None = None
) -> Iterator[tuple[Server, Background]]:
    """Writes `files` under `root` and serves `app_spec` from there (`--port 0` plus `args`)
    with a steady background client, for a test module's session; both stop on the way out."""
    for rel, text in files.items():
        write(root, rel, text)
    pool = ServerPool()
    try:
        server = pool(app_spec, "--port", "0", *args, cwd=root, env=env)
        background = Background(server.url)
        try:
            yield server, background
        finally:
            background.stop()
    finally:
        pool.close()


def poll_until(
    fetch: Callable[[], object],
    expected: object,
    server: Server,
    timeout: float = 15.0,
    interval: float = 0.02,
) -> object:
    """Calls `fetch` until it returns `expected` (what a fresh process answers); returns it."""
    deadline = time.monotonic() + timeout
    got = None
    while time.monotonic() < deadline:
        got = fetch()
        if got == expected:
            return got
        time.sleep(interval)
    raise AssertionError(f"server answers {got}, a fresh process {expected}\n{server.output}")


def reloads(server: Server) -> int:
    return server.count_lines(r"reloaded \d+ modules?")


# -- long runs (reliability tests) ----------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--long",
        action="store_true",
        default=False,
        help="run the reliability tests at full size (hundreds of reloads) instead of CI size",
    )


@pytest.fixture
def long_run(request: pytest.FixtureRequest) -> bool:
    """True with `pytest --long`: reliability tests run at full size."""
    return bool(request.config.getoption("--long"))
