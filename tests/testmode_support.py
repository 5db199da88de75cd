"""Drives `hmr-serve test` end to end: a real process on a generated project, real file edits,
and after each edit the check that makes the mode trustworthy: every test it ran ended as in a
fresh `pytest` run, and every test a fresh full run would now end differently was among them.

Outcomes are read from pytest's own verbose lines (`tests/test_a.py::test_x PASSED`), in the
watch session and in the fresh runs alike."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

from conftest import server_env, spawn_in_pty

RESULT = re.compile(r"^(\S+::\S+) (PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)\b", re.MULTILINE)
WAITING = "watching for changes"
# The worst outcome of a test's phases (a teardown error after a pass is an error).
_RANK = {"PASSED": 0, "XFAIL": 1, "XPASS": 1, "SKIPPED": 1, "FAILED": 2, "ERROR": 3}
TIMEOUT = 60.0


def write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))


def outcomes(text: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for nodeid, outcome in RESULT.findall(text.replace("\r", "\n")):
        if _RANK[outcome] >= _RANK.get(found.get(nodeid, "PASSED"), 0):
            found[nodeid] = outcome
    return found


def fresh_run(project: Path, *args: str) -> dict[str, str]:
    """A full `pytest` run in a new process: the reference."""
    verbose = [] if "-v" in args else ["-v"]
    done = subprocess.run(
        [sys.executable, "-m", "pytest", *verbose, *args],
        cwd=project,
        env=server_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT * 2,
    )
    return outcomes(done.stdout)


class Session:
    """`python -m hmr_serve.testing -v ARGS` in `project`; with `tty`, its stdin, stdout and
    stderr are a pty that is its controlling terminal (keys, colours, Ctrl-C)."""

    def __init__(self, project: Path, *args: str, tty: bool = False) -> None:
        self.project = project
        command = [sys.executable, "-m", "hmr_serve.testing", *args]
        self.master: int | None = None
        if tty:
            self.proc, self.master = spawn_in_pty(command, project)
        else:
            self.proc = subprocess.Popen(
                [*command, "--no-keys"],
                cwd=project,
                env=server_env(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
        self.text = ""
        self._eof = False
        self._cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        while True:
            try:
                if self.master is not None:
                    data = os.read(self.master, 65536)
                else:
                    assert self.proc.stdout is not None
                    data = self.proc.stdout.read1(65536)  # type: ignore[attr-defined]
            except OSError:
                data = b""
            with self._cond:
                if not data:
                    self._eof = True
                    self._cond.notify_all()
                    return
                self.text += data.decode(errors="replace").replace("\r\n", "\n")
                self._cond.notify_all()

    def count(self, pattern: str) -> int:
        with self._cond:
            return len(re.findall(pattern, self.text))

    def wait_for(self, pattern: str, count: int = 1, timeout: float = TIMEOUT) -> str:
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(re.findall(pattern, self.text)) < count:
                left = deadline - time.monotonic()
                if left <= 0 or self._eof:
                    raise AssertionError(f"no {count}x {pattern!r} in:\n{self.text}")
                self._cond.wait(min(left, 0.2))
            return self.text

    def ready(self) -> str:
        """Waits for the first run to end; returns its output."""
        return self.wait_for(WAITING)

    def after(self, action, waits: int = 1) -> str:  # noqa: ANN001 - a callable
        """Does `action` (an edit, a key) and returns the output until the session waits
        again (`waits` times)."""
        start = len(self.text)
        before = self.count(WAITING)
        action()
        self.wait_for(WAITING, before + waits)
        with self._cond:
            return self.text[start:]

    def edit(self, rel: str, text: str | None) -> str:
        def change() -> None:
            path = self.project / rel
            if text is None:
                path.unlink()
            else:
                write(self.project, rel, text)

        return self.after(change)

    def press(self, keys: bytes) -> None:
        assert self.master is not None
        os.write(self.master, keys)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        if self.master is not None:
            os.close(self.master)


class Oracle:
    """What each test's outcome is, as far as the session has shown it; checked after each
    edit against a fresh full run."""

    def __init__(self, project: Path, args: tuple[str, ...], initial: str) -> None:
        self.project = project
        self.args = args
        self.known = outcomes(initial)
        reference = fresh_run(project, *args)
        assert self.known == reference, (self.known, reference)

    def check(self, output: str) -> dict[str, str]:
        """The tests the session ran after an edit (nodeid -> outcome), once checked."""
        ran = outcomes(output)
        reference = fresh_run(self.project, *self.args)
        for nodeid, outcome in ran.items():
            assert reference.get(nodeid) == outcome, (
                f"{nodeid} ended {outcome}, a fresh run says {reference.get(nodeid)}\n{output}"
            )
        for nodeid, outcome in reference.items():
            if nodeid not in ran:
                assert self.known.get(nodeid) == outcome, (
                    f"{nodeid} now ends {outcome} (was {self.known.get(nodeid)}) but was not "
                    f"run\n{output}"
                )
        self.known = dict(reference)
        return ran
