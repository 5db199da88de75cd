"""Bounds how long a reload's modules may run: an edit saved with an endless loop or a
`time.sleep(30)` at module level must not hold every request forever.

A watchdog thread sends SIGALRM to the reloading (main) thread itself with `pthread_kill`: a
process-wide timer signal may land on any thread (tokio's), which would not interrupt a sleep
there. The handler raises ReloadTimeout, a BaseException so that an `except Exception` in the
user's code does not swallow it; the watchdog fires again every half second until the reload has
unwound, for code that swallows even that. Python runs signal handlers only in the main thread;
elsewhere there is no limit (a thread cannot interrupt another thread's sleep).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_REFIRE = 0.5


class ReloadTimeout(BaseException):
    def __init__(self, seconds: float) -> None:
        super().__init__(f"still running after {seconds:g} s")
        self.seconds = seconds


def available() -> bool:
    return hasattr(signal, "pthread_kill") and threading.current_thread() is threading.main_thread()


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raises ReloadTimeout inside the block once it has run for `seconds` (0: no limit)."""
    if seconds <= 0 or not available():
        yield
        return
    target = threading.get_ident()
    done = threading.Event()
    armed = True

    def on_alarm(signum: int, frame: Any) -> None:
        if armed:
            raise ReloadTimeout(seconds)

    def watch() -> None:
        wait = seconds
        while not done.wait(wait):
            signal.pthread_kill(target, signal.SIGALRM)
            wait = _REFIRE

    previous = signal.signal(signal.SIGALRM, on_alarm)
    watchdog = threading.Thread(target=watch, name="hmr-serve reload time limit", daemon=True)
    watchdog.start()
    try:
        yield
    finally:
        armed = False
        done.set()
        # Joined before the old handler is back: no alarm may arrive under SIG_DFL (which
        # would end the process).
        watchdog.join()
        signal.signal(signal.SIGALRM, previous if previous is not None else signal.SIG_DFL)
