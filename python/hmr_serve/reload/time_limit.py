"""Bounds how long a reload's modules may run: an edit saved with an endless loop or a
`time.sleep(30)` at module level must not hold every request forever.

A watchdog (a Rust thread, src/reload/watchdog.rs) sends SIGALRM to the reloading (main)
thread itself with `pthread_kill`: a process-wide timer signal may land on any thread (tokio's),
which would not interrupt a sleep there. The handler raises ReloadTimeout, a BaseException so
that an `except Exception` in the user's code does not swallow it; the watchdog fires again every
half second until the reload has unwound, for code that swallows even that. Python runs signal
handlers only in the main thread; elsewhere there is no limit (a thread cannot interrupt another
thread's sleep).

The watchdog is started once and then armed and disarmed per reload: starting a thread waits
until the new thread is scheduled, which on a busy machine costs a reload milliseconds. Once
`time_limit` has left its block no alarm of ours is on its way (the watchdog sends only under
the lock that disarming takes), so the previous SIGALRM handler can come back safely.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from hmr_serve import _core


class ReloadTimeout(BaseException):
    def __init__(self, seconds: float) -> None:
        super().__init__(f"still running after {seconds:g} s")
        self.seconds = seconds


def available() -> bool:
    return hasattr(signal, "pthread_kill") and threading.current_thread() is threading.main_thread()


_watchdog: Any = None  # hmr_serve._core.ReloadWatchdog, made when first needed


def prepare() -> None:
    """Starts the watchdog ahead of the first reload, which then pays nothing for it."""
    global _watchdog
    if _watchdog is None and available():
        _watchdog = _core.ReloadWatchdog()


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raises ReloadTimeout inside the block once it has run for `seconds` (0: no limit)."""
    if seconds <= 0 or not available():
        yield
        return
    armed = True

    def on_alarm(signum: int, frame: Any) -> None:
        if armed:
            raise ReloadTimeout(seconds)

    prepare()
    previous = signal.signal(signal.SIGALRM, on_alarm)
    _watchdog.arm(seconds, threading.get_ident())
    try:
        yield
    finally:
        armed = False
        _watchdog.disarm()
        signal.signal(signal.SIGALRM, previous if previous is not None else signal.SIG_DFL)
