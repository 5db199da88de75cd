"""The full-restart fallback. When a change cannot be hot-reloaded (an integration says so, or
`--reload-strategy restart`), the process replaces itself with `exec`: same PID, same command
line, and the same listening socket, whose descriptor travels in `HMR_SERVE_INHERITED_FD`. No
connection is refused meanwhile: new ones wait in the kernel's backlog until the new process
accepts them.

A restarted process whose app fails to load does not exit (that would end the dev session on a
typo): it answers 503 with the error and restarts again on the next change."""

from __future__ import annotations

import os
import re
import socket
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

INHERITED_FD_ENV = "HMR_SERVE_INHERITED_FD"

# File timestamps come from a coarse kernel clock (a few ms behind); an edit this close to the
# start of loading may have been missed by the import, so it is checked again.
MTIME_SLACK = 0.05


@dataclass
class Launch:
    """How this process was started, to start the next one the same way."""

    executable: str
    argv: list[str]
    env: dict[str, str]
    cwd: str
    inherited_fd: int | None  # the socket a previous process of this session handed over


@dataclass
class Restart:
    """`_serve`'s result when the process must be replaced: the listening socket to pass on."""

    fd: int


def capture() -> Launch:
    """Reads (and removes, so the app's own subprocesses never see it) the inherited socket
    variable, and snapshots the command line, environment and working directory. Call before
    anything (an --env-file, the app) changes the environment."""
    inherited = os.environ.pop(INHERITED_FD_ENV, None)
    fd: int | None = None
    if inherited is not None:
        try:
            fd = int(inherited)
        except ValueError:
            fd = None
    # sys.orig_argv (3.10+) keeps the interpreter's own options and `-m hmr_serve`; for the
    # `hmr-serve` console script it is [python, /path/to/hmr-serve, ...].
    orig = list(getattr(sys, "orig_argv", None) or [sys.executable, *sys.argv])
    executable = sys.executable or orig[0]
    return Launch(
        executable=executable,
        argv=[executable, *orig[1:]],
        env=dict(os.environ),
        cwd=os.getcwd(),
        inherited_fd=fd,
    )


def prepare_socket(fd: int, backlog: int) -> None:
    """Checks that `fd` is a stream socket and makes it listen (like uvicorn's --fd; harmless on
    a socket that already listens). The descriptor stays open and is not inherited by the app's
    subprocesses. Raises OSError."""
    with socket.socket(fileno=os.dup(fd)) as sock:
        if sock.type != socket.SOCK_STREAM:
            raise OSError(f"file descriptor {fd} is not a stream socket")
        sock.listen(backlog)
    os.set_inheritable(fd, False)


def exec_with_socket(launch: Launch, fd: int) -> None:
    """Replaces this process with a fresh run of the same command, handing it `fd`. Returns only
    if exec failed (raises OSError then)."""
    os.set_inheritable(fd, True)
    env = dict(launch.env)
    env[INHERITED_FD_ENV] = str(fd)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass
    try:
        os.chdir(launch.cwd)
    except OSError:
        pass
    os.execve(launch.executable, launch.argv, env)


def fallback_app(error: str) -> Any:
    """A tiny ASGI app that answers every request with 503 and the load error."""
    first_line = error.strip().splitlines()[0] if error.strip() else "unknown error"
    body = f"app failed to load: {first_line}\n".encode()
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        (b"retry-after", b"1"),
    ]

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


def under(path: str, roots: Iterable[str]) -> bool:
    real = os.path.realpath(path)
    return any(real.startswith(os.path.join(os.path.realpath(r), "")) for r in roots)


def loaded_paths(roots: Iterable[str]) -> list[str]:
    """Source files of the modules loaded from under `roots`."""
    roots = list(roots)
    paths = []
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if isinstance(path, str) and path.endswith(".py") and under(path, roots):
            paths.append(os.path.realpath(path))
    return paths


_TRACEBACK_FILE = re.compile(r'^\s*File "([^"]+)", line \d+', re.MULTILINE)


def traceback_paths(details: str | None, roots: Iterable[str]) -> list[str]:
    """Files under `roots` that a formatted traceback mentions (where a load failed)."""
    if not details:
        return []
    roots = list(roots)
    found = []
    for path in _TRACEBACK_FILE.findall(details):
        if os.path.isfile(path) and under(path, roots):
            found.append(os.path.realpath(path))
    return found


def modified_since(paths: Iterable[str], since: float) -> list[str]:
    """The paths whose file changed after `since` (a time.time()): saved while the app loaded,
    before the watcher ran, so no change event will ever report them."""
    changed = []
    for path in dict.fromkeys(paths):
        try:
            mtime = os.stat(path).st_mtime
        except OSError:
            continue
        if mtime >= since - MTIME_SLACK:
            changed.append(path)
    return changed
