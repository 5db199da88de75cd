"""Tasks an app leaves running at shutdown (background schedulers started in lifespan, as mealie
does) are cancelled and awaited like `asyncio.run` does: their clean-up runs on the loop, and
Python never reports "Task was destroyed but it is pending!". Both when the server stops and
when it restarts (execve would otherwise discard them unfinished)."""

from __future__ import annotations

import signal
from pathlib import Path

from conftest import StartServer, edit, poll_until, wait_for_marker, write

APP = """
import asyncio
import os
from contextlib import asynccontextmanager

from fastapi import FastAPI

import settings

MARKERS = os.environ["TASK_MARKERS"]


def mark(what):
    with open(MARKERS, "a") as f:
        f.write(f"{what} {os.getpid()}\\n")


async def scheduler(name):
    try:
        mark(f"{name} started")
        while True:
            await asyncio.sleep(3600)
    except asyncio.CancelledError:
        mark(f"{name} cancelled")
        raise
    finally:
        # An await in `finally` only completes when the loop runs the task to its end; a task
        # destroyed pending has its coroutine closed instead, where an await cannot run.
        await asyncio.sleep(0)
        mark(f"{name} cleaned up")


@asynccontextmanager
async def lifespan(app):
    # Nothing keeps these: the app never stops them (fire and forget, like mealie's scheduler).
    asyncio.create_task(scheduler("daily"))
    asyncio.ensure_future(scheduler("minutely"))
    yield


app = FastAPI(lifespan=lifespan)


@app.get("/")
def root():
    return {"version": settings.VERSION}
"""

DESTROYED = "Task was destroyed but it is pending"


def count(path: Path, line: str) -> int:
    return path.read_text().splitlines().count(line)


def markers_of(path: Path, pid: int) -> set[str]:
    lines = path.read_text().splitlines() if path.exists() else []
    return {line.rsplit(" ", 1)[0] for line in lines if line.endswith(f" {pid}")}


def test_stopping_cancels_and_awaits_leftover_tasks(tmp_path: Path, start_server: StartServer):
    write(tmp_path, "app.py", APP)
    write(tmp_path, "settings.py", 'VERSION = "1"\n')
    markers = tmp_path / "markers.txt"
    server = start_server(
        "app:app", "--port", "0", cwd=tmp_path, env={"TASK_MARKERS": str(markers)}
    )
    wait_for_marker(markers, f"minutely started {server.proc.pid}")
    wait_for_marker(markers, f"daily started {server.proc.pid}")
    assert server.stop(signal.SIGINT) == 0
    assert DESTROYED not in server.output
    assert markers_of(markers, server.proc.pid) == {
        f"{name} {what}"
        for name in ("daily", "minutely")
        for what in ("started", "cancelled", "cleaned up")
    }, server.output


def test_restarting_cancels_and_awaits_leftover_tasks(tmp_path: Path, start_server: StartServer):
    write(tmp_path, "app.py", APP)
    write(tmp_path, "settings.py", 'VERSION = "1"\n')
    markers = tmp_path / "markers.txt"
    server = start_server(
        "app:app", "--port", "0", cwd=tmp_path, env={"TASK_MARKERS": str(markers)}
    )
    pid = server.proc.pid
    wait_for_marker(markers, f"daily started {pid}")
    wait_for_marker(markers, f"minutely started {pid}")
    # A module marked for restart: the process re-execs itself (same PID, new interpreter).
    edit(tmp_path, "settings.py", 'VERSION = "1"', 'VERSION = "2"\n__hmr_restart__ = True')
    server.wait_for_line(r"restarting the process")
    assert server.wait_for_count(r"serving http://", 2, timeout=60) == 2, server.output
    with server.client() as client:
        assert client.get("/").json() == {"version": "2"}
    for name in ("daily", "minutely"):
        poll_until(lambda name=name: count(markers, f"{name} started {pid}"), 2, server)
    # The old interpreter's tasks ran their clean-up before the exec, so before the new
    # interpreter started its own.
    lines = markers.read_text().splitlines()
    for name in ("daily", "minutely"):
        started = [i for i, line in enumerate(lines) if line == f"{name} started {pid}"]
        assert len(started) == 2, lines
        assert started[0] < lines.index(f"{name} cancelled {pid}") < started[1], lines
        assert lines.index(f"{name} cleaned up {pid}") < started[1], lines
    assert server.stop(signal.SIGINT) == 0
    assert DESTROYED not in server.output
