"""Helpers shared by the benchmarks: starting and stopping servers, waiting for readiness,
plain HTTP requests, statistics, Markdown output and the RESULTS.md sections.

Every wait here is bounded in time, and every server runs in its own process group so that a
reloader's worker processes die with it.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import http.client
import importlib.util
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
RESULTS = BENCH_DIR / "RESULTS.md"
# The venv's bin directory: the benchmarks run with the venv's Python, and every server CLI
# (hmr-serve, uvicorn, granian, gunicorn) is installed next to it. Not resolved: a venv's python
# is a symlink to the base interpreter, whose bin directory has none of these.
VENV_BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    """Absolute path of a console script of the venv, else from PATH."""
    candidate = VENV_BIN / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise SystemExit(f"{name} not found in {VENV_BIN} or on PATH")
    return found


def free_port() -> int:
    # The port is free when we close the probe socket; a race with another process is possible
    # but harmless on a bench machine (the server would fail to start, with a clear error).
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- HTTP -----------------------------------------------------------------------------------


def http_get(port: int, path: str = "/", timeout: float = 5.0) -> tuple[int, bytes]:
    """One GET on a fresh connection. Raises OSError / http.client errors on failure.

    A fresh connection per request means a server restart shows up as a refused or reset
    connection instead of a stale keep-alive socket, which is what a browser reload sees too.
    """
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


BACKGROUND_INTERVAL = 0.010  # the steady "browser tab" client of the reload benchmarks


def background_client(port: int, stop, counters, timeout: float = 120.0) -> None:
    """Runs in its own process (no GIL shared with the measuring client): one GET every
    10 ms on a fresh connection; counts answers, failures and the longest wait.

    counters: shared array [requests, failed, longest wait in ms, time.monotonic() at which
    the request in flight started (0: none), timed out]; a request not answered within
    `timeout` seconds counts as failed and as timed out.
    """
    next_at = time.monotonic()
    while not stop.is_set():
        started = time.monotonic()
        counters[3] = started
        timed_out = False
        try:
            status, _ = http_get(port, "/", timeout=timeout)
            failed = status >= 500
        except TimeoutError:
            failed = timed_out = True
        except Exception:  # refused, reset: failures a user would see as well
            failed = True
        waited_ms = (time.monotonic() - started) * 1000
        with counters.get_lock():
            counters[0] += 1
            counters[1] += failed
            counters[2] = max(counters[2], waited_ms)
            counters[3] = 0
            counters[4] += timed_out
        next_at = max(next_at + BACKGROUND_INTERVAL, time.monotonic())
        stop.wait(max(0.0, next_at - time.monotonic()))


# --- Servers --------------------------------------------------------------------------------


@dataclass
class Server:
    """A server process with its output captured, line by line, with arrival times."""

    name: str
    argv: list[str]
    port: int
    cwd: Path
    env: dict[str, str | None] = field(default_factory=dict)  # None: unset the variable
    log_path: Path | None = None
    proc: subprocess.Popen[bytes] | None = None
    lines: list[tuple[float, str]] = field(default_factory=list)
    started_at: float = 0.0
    ready_after: float | None = None  # seconds from start() to the first answer
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _reader: threading.Thread | None = None

    def start(self) -> None:
        env = dict(os.environ)
        for key, value in self.env.items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        # Python's own output buffering would delay the log lines we time reloads with.
        env["PYTHONUNBUFFERED"] = "1"
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(
            self.argv,
            cwd=self.cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group: stop() reaches reloader children
        )
        self._reader = threading.Thread(target=self._read, name=f"{self.name}-log", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        log = open(self.log_path, "w") if self.log_path else None  # noqa: SIM115
        try:
            for raw in self.proc.stdout:
                now = time.monotonic()
                line = raw.decode(errors="replace").rstrip("\n")
                with self._lock:
                    self.lines.append((now, line))
                if log:
                    log.write(f"{now - self.started_at:10.3f} {line}\n")
                    log.flush()
        finally:
            if log:
                log.close()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def tail(self, n: int = 20) -> str:
        with self._lock:
            return "\n".join(line for _, line in self.lines[-n:])

    def lines_since(self, since: float) -> list[str]:
        """Output lines that arrived at or after `since` (time.monotonic())."""
        with self._lock:
            return [line for at, line in self.lines if at >= since]

    def wait_line(self, pattern: str, since: float, timeout: float) -> tuple[float, re.Match[str]]:
        """First output line matching the regex that arrived at or after `since`
        (time.monotonic()); returns its arrival time and the match. Raises TimeoutError."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            with self._lock:
                fresh = self.lines[seen:]
                seen = len(self.lines)
            for at, line in fresh:
                if at >= since and (m := regex.search(line)):
                    return at, m
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name}: no line matching {pattern!r} in {timeout} s")
            if not self.alive():
                raise RuntimeError(f"{self.name} exited:\n{self.tail()}")
            time.sleep(0.002)

    def poll_ready(self, path: str = "/") -> bool:
        """One readiness probe: True once a request got a non-5xx answer (remembered)."""
        if self.ready_after is not None:
            return True
        if not self.alive():
            raise RuntimeError(f"{self.name} exited during start-up:\n{self.tail()}")
        with contextlib.suppress(OSError, http.client.HTTPException):
            status, _ = http_get(self.port, path, timeout=1.0)
            if status < 500:
                self.ready_after = time.monotonic() - self.started_at
        return self.ready_after is not None

    def stop(self, timeout: float = 10.0) -> None:
        """SIGINT (what Ctrl-C sends, so servers shut down as they would for a user), then
        SIGTERM, then SIGKILL, each to the whole process group and each bounded in time."""
        if self.proc is None:
            return
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
            if self.proc.poll() is not None:
                break
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout)
        # The leader may be gone while its children (a reloader's workers) linger.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        if self._reader:
            self._reader.join(timeout=2)


def competitor_argv(
    name: str, target: str, interface: str, port: int, app_dir: Path | None = None
) -> list[str]:
    """The command line of one server in the side-by-side runs: one worker, access log off,
    no reload unless the name says so. `name`: hmr-serve, "hmr-serve --no-reload", uvicorn
    (uvloop + httptools; `--interface wsgi` for a WSGI app), granian or gunicorn (WSGI only).
    `app_dir` None: the app is imported from the working directory."""

    def at(flag: str) -> list[str]:
        return [flag, str(app_dir)] if app_dir is not None else []

    if name in ("hmr-serve", "hmr-serve --no-reload"):
        argv = [tool("hmr-serve"), target, "--port", str(port), *at("--app-dir"),
                "--interface", interface, "--no-access-log"]  # fmt: skip
        return argv + ["--no-reload"] if name.endswith("--no-reload") else argv
    if name == "uvicorn":
        return [tool("uvicorn"), target, "--port", str(port), *at("--app-dir"),
                "--interface", "asgi3" if interface == "asgi" else "wsgi",
                "--loop", "uvloop", "--http", "httptools", "--workers", "1",
                "--no-access-log"]  # fmt: skip
    if name == "granian":
        return [tool("granian"), "--interface", interface, "--port", str(port), "--workers", "1",
                *at("--working-dir"), "--no-access-log", target]  # fmt: skip
    if name == "gunicorn" and interface == "wsgi":
        return [tool("gunicorn"), target, "--bind", f"127.0.0.1:{port}", "--workers", "1",
                "--worker-class", "sync", *at("--chdir")]  # fmt: skip
    raise ValueError(f"{name} for {interface}")


def log_slug(name: str) -> str:
    """A server's name as part of a log file's: `hmr-serve --no-reload` → `hmr-serve-no-reload`."""
    return name.replace(" --", "-")


def wait_ready(servers: Sequence[Server], timeout: float, path: str = "/") -> None:
    """Probes all servers in turns until each has answered once, so each one's ready_after
    is measured as precisely as the others'."""
    deadline = time.monotonic() + timeout
    while not all([s.poll_ready(path) for s in servers]):
        if time.monotonic() > deadline:
            late = [s for s in servers if s.ready_after is None]
            raise TimeoutError(
                f"not ready after {timeout} s: " + "; ".join(f"{s.name}:\n{s.tail()}" for s in late)
            )
        time.sleep(0.02)


@contextlib.contextmanager
def running(servers: Sequence[Server], ready_timeout: float, path: str = "/") -> Iterator[None]:
    """Starts all servers at once (their start-ups overlap: fewer minutes of waiting), waits
    until each answers, and stops them all on the way out, whatever happened."""
    try:
        for s in servers:
            s.start()
        wait_ready(servers, ready_timeout, path)
        yield
    finally:
        for s in servers:
            s.stop()


# --- Statistics and output ------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); q in [0, 100]."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def fmt_ms(ms: float) -> str:
    if ms != ms:  # NaN: nothing measured
        return "–"
    if ms >= 1000:
        return f"{ms / 1000:.2f} s"
    if ms >= 10:
        return f"{ms:.0f} ms"
    return f"{ms:.1f} ms"


def fmt_ratio(x: float) -> str:
    if x != x:
        return "–"
    if x < 1:  # faster than the reference: two decimals, or 0.04× would read 0.0×
        return f"{x:.2f}×"
    return f"{x:.0f}×" if x >= 10 else f"{x:.1f}×"


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(c) for c in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(cells[0]), sep, *(line(r) for r in cells[1:])])


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def wrk_version() -> str:
    path = shutil.which("wrk")
    if path is None:
        return "not installed"
    # wrk has no --version; its usage banner (exit status 1) starts with the version.
    out = subprocess.run([path, "-v"], capture_output=True, text=True, timeout=10)
    first = (out.stdout or out.stderr).strip().splitlines()
    return first[0].split(" [")[0] if first else "unknown"


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def extension_is_debug_build() -> bool | None:
    """Whether hmr-serve's Rust extension was built without optimizations (`maturin develop`
    without --release): its numbers would say nothing about hmr-serve. The release profile
    carries no DWARF, so a `.debug_info` section means the dev profile. None if unknown (not
    an ELF file, not found)."""
    try:
        import hmr_serve._core as core

        data = Path(core.__file__).read_bytes()
    except (ImportError, OSError, AttributeError, TypeError):
        return None
    if data[:5] != b"\x7fELF\x02":  # 64-bit ELF only
        return None
    shoff = struct.unpack_from("<Q", data, 0x28)[0]
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    strtab = struct.unpack_from("<QQ", data, shoff + shstrndx * shentsize + 0x18)
    names = data[strtab[0] : strtab[0] + strtab[1]]
    for i in range(shnum):
        name_at = struct.unpack_from("<I", data, shoff + i * shentsize)[0]
        if names[name_at : names.index(b"\0", name_at)] == b".debug_info":
            return True
    return False


def require_release_build(allowed: bool) -> None:
    """Stops a benchmark that would measure an unoptimized hmr-serve, unless allowed."""
    if extension_is_debug_build():
        message = (
            "hmr-serve's extension is a debug build (maturin develop without --release); "
            "its numbers would be meaningless. Rebuild with `make install`"
        )
        if not allowed:
            raise SystemExit(message + ", or pass --allow-debug-build.")
        say("WARNING: " + message + ".")


def machine_info(packages: Sequence[str]) -> str:
    """One paragraph for RESULTS.md: when, where, with which versions."""
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    versions = ", ".join(f"{p} {_version(p)}" for p in packages)
    build = {True: "DEBUG build", False: "release build", None: "build unknown"}
    return (
        f"Run {now} on {os.cpu_count()} CPUs ({cpu_model()}), {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}; {versions}; hmr-serve "
        f"{hmr_serve_source()}, extension: {build[extension_is_debug_build()]}."
    )


def hmr_serve_source() -> str:
    """Which hmr-serve is measured: where it is imported from and, for this repository's
    working tree, its commit and whether src/ or python/ have uncommitted changes."""
    spec = importlib.util.find_spec("hmr_serve")
    if spec is None or spec.origin is None:
        return "not found"
    where = Path(spec.origin).parent.parent
    try:
        git = ["git", "-C", str(where)]
        head = subprocess.run(
            [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10
        )
        dirty = subprocess.run(
            [*git, "status", "--porcelain", "--", ":/src", ":/python"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except OSError:
        return f"from {where}"
    if head.returncode != 0:
        return f"from {where}"
    changes = " + uncommitted changes" if dirty.stdout.strip() else ""
    return f"from {where} (commit {head.stdout.strip()}{changes})"


def parse_bench_args(p: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """Adds the options every benchmark script takes besides its own `--quick` (--no-write,
    --allow-debug-build), parses `argv` and stops on a debug build unless allowed."""
    p.add_argument("--no-write", action="store_true", help="do not update bench/RESULTS.md")
    p.add_argument(
        "--allow-debug-build", action="store_true", help="measure an unoptimized hmr-serve anyway"
    )
    args = p.parse_args(argv)
    require_release_build(args.allow_debug_build)
    return args


def write_results(args: argparse.Namespace, section: str, body: str) -> None:
    """`update_results`, unless the run was --quick (it checks that all works, nothing more) or
    --no-write."""
    if not (args.no_write or args.quick):
        update_results(section, body)


def update_results(section: str, body: str, path: Path = RESULTS) -> None:
    """Replaces the `## {section}` section of RESULTS.md (up to the next `## ` heading) or
    appends it, so each script rewrites only its own numbers."""
    header = "# Benchmark results\n\nWritten by the scripts in bench/; see bench/README.md.\n"
    text = path.read_text() if path.exists() else header
    block = f"## {section}\n\n{body.strip()}\n"
    pattern = re.compile(rf"^## {re.escape(section)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: block + "\n", text, count=1).rstrip() + "\n"
    else:
        text = text.rstrip() + "\n\n" + block
    path.write_text(text)


def log_dir(prefix: str) -> Path:
    """Where server logs of one run go: kept after the run, for looking into odd numbers."""
    d = Path(os.environ.get("BENCH_LOG_DIR", "/tmp")) / f"hmr-bench-{prefix}-{os.getpid()}"
    d.mkdir(parents=True, exist_ok=True)
    return d


def say(msg: str) -> None:
    """Progress goes to stderr; stdout carries only the Markdown tables."""
    print(msg, file=sys.stderr, flush=True)
