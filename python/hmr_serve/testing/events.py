"""What the idle session waits for: a batch of changed files from the watcher (delivered on its
own thread), or, when stdin is a terminal, a key: `a` runs every test, `f` the failed ones,
Enter the last selection again, `q` quits. Ctrl-C while waiting quits too.

The terminal is in cbreak mode (keys arrive unbuffered and unechoed, Ctrl-C still signals) only
while the session waits; tests run with the terminal as it was."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

KEYS = {
    b"a": "all",
    b"A": "all",
    b"f": "failed",
    b"F": "failed",
    b"\n": "again",
    b"\r": "again",
    b"q": "quit",
    b"Q": "quit",
}


@dataclass
class Event:
    kind: str  # "batch", "all", "failed", "again", "quit"
    batch: list[tuple[str, str]] | None = None


class Events:
    def __init__(self, keys: bool) -> None:
        self._lock = threading.Lock()
        self._pending: dict[str, str] = {}
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        self.keys = keys  # wanted, and while waiting stdin is a terminal

    def deliver(self, batch: list[tuple[str, str]]) -> None:
        """Called on the watcher's delivery thread."""
        with self._lock:
            for path, kind in batch:
                self._pending[str(path)] = kind
        os.write(self._wake_w, b"x")

    def pending(self) -> list[tuple[str, str]]:
        """The changes delivered since the last call (saves made while tests ran)."""
        with self._lock:
            batch, self._pending = list(self._pending.items()), {}
        with contextlib.suppress(BlockingIOError):
            while os.read(self._wake_r, 4096):
                pass
        return batch

    def wait(self, prompt: Callable[[], None]) -> Event:
        """Blocks until something happens; KeyboardInterrupt on Ctrl-C. pytest's capture of
        stdin must be suspended meanwhile (testing/loop.py). `prompt` is called once the keys
        can be read (a key pressed before would be echoed, and lost in the line buffer)."""
        self.keys = self.keys and _is_tty(0)
        _reclaim_ctrl_c()
        with self._cbreak():
            batch = self.pending()
            if batch:  # saved while the last run ran
                return Event("batch", batch)
            prompt()
            while True:
                batch = self.pending()
                if batch:
                    return Event("batch", batch)
                fds = [self._wake_r] + ([0] if self.keys else [])
                ready, _, _ = select.select(fds, [], [], 1.0)
                if 0 in ready:
                    key = os.read(0, 1)
                    if not key:  # stdin closed: no more keys
                        self.keys = False
                        continue
                    action = KEYS.get(key)
                    if action is not None:
                        return Event(action)

    @contextlib.contextmanager
    def _cbreak(self) -> Iterator[None]:
        if not self.keys:
            yield
            return
        import termios
        import tty

        try:
            saved = termios.tcgetattr(0)
            tty.setcbreak(0)
        except (termios.error, OSError):
            yield
            return
        try:
            yield
        finally:
            with contextlib.suppress(termios.error, OSError):
                termios.tcsetattr(0, termios.TCSADRAIN, saved)

    def close(self) -> None:
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)


def _reclaim_ctrl_c() -> None:
    """Puts Python's own SIGINT handler back in the C-level slot. A native plugin can take the
    signal from under it (tach's pytest plugin, autoloaded wherever tach is installed, starts
    the Rust `ctrlc` crate's handler on import), and Ctrl-C would then never reach this loop."""
    if threading.current_thread() is threading.main_thread():
        handler = signal.getsignal(signal.SIGINT)
        if handler is not None:  # None: set outside Python, nothing to put back
            signal.signal(signal.SIGINT, handler)


def _is_tty(fd: int) -> bool:
    try:
        return os.isatty(fd) and sys.platform != "win32"
    except OSError:
        return False
