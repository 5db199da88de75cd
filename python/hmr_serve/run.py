"""`hmr-serve run script.py [args...]` and `hmr-serve run -m pkg.module [args...]`: a script
run as `python script.py args` would run it (`sys.argv`, `__main__`, `sys.path[0]`, stdin and
the terminal, the exit code), then run again on every save that affects it, in the same
interpreter: the modules the save changed are re-executed in place by the reload engine
(reload/reloader.py), so an expensive import (a model, a dataset) stays loaded.

The entry runs on the main thread. The watcher's batches arrive on a small event loop in a
thread of their own; one that arrives while the entry still runs (a loop, a bot, a long job)
interrupts it as Ctrl-C would (SIGINT to the main thread: `finally` blocks and `on_dispose`
hooks run), then the reload runs on the main thread and the entry starts again. Ctrl-C stops a
running entry; pressed again (or while nothing runs), it quits with the last run's exit code.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import runpy
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from hmr_serve import __version__, _core, integrations, state
from hmr_serve.config import LOG_LEVELS as _LEVELS
from hmr_serve.loading import user_traceback
from hmr_serve.logs import configure, logger
from hmr_serve.reload.data_files import DataFiles
from hmr_serve.reload.reloader import FrontEnd, Reloader, Report
from hmr_serve.reload.tracker import ImportTracker
from hmr_serve.reload.watch_thread import WatchThread

_CLEAR = "\x1b[2J\x1b[3J\x1b[H"
_INTERRUPTED = 130  # what a shell reports for a process ended by SIGINT
#: Two Ctrl-C this close together quit even while the entry keeps running.
_DOUBLE_PRESS = 1.5


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hmr-serve run",
        usage="hmr-serve run [options] (SCRIPT | -m MODULE) [args...]",
        description=(
            "Run a script like `python SCRIPT args`, then run it again on every save that "
            "affects it, in the same interpreter: only the changed modules are re-executed, "
            "so expensive imports stay loaded."
        ),
    )
    parser.add_argument("-m", dest="module", metavar="MODULE", help="run a module as a script")
    parser.add_argument("--clear", action="store_true", help="clear the terminal before each run")
    parser.add_argument(
        "--reload-dir",
        dest="reload_dirs",
        action="append",
        default=[],
        metavar="DIR",
        help="watch this directory too (repeatable; the script's directory is always watched)",
    )
    parser.add_argument(
        "--reload-include",
        dest="reload_includes",
        action="append",
        default=[],
        metavar="GLOB",
        help="watch files matching this glob too (besides *.py)",
    )
    parser.add_argument(
        "--reload-exclude",
        dest="reload_excludes",
        action="append",
        default=[],
        metavar="GLOB",
        help="ignore files matching this glob",
    )
    parser.add_argument(
        "--reload-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="a reload whose modules run longer is rolled back (default 10; 0: never)",
    )
    parser.add_argument("--log-level", choices=list(_LEVELS), default="info")
    parser.add_argument("--version", action="version", version=f"hmr-serve {__version__}")
    parser.add_argument("target", nargs="?", metavar="SCRIPT", help="the script to run")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="arguments for the script")
    return parser


class Entry:
    """The script or module run as `__main__`, as `python` would run it."""

    def __init__(self, script: str | None, module: str | None, args: list[str]) -> None:
        self.script = script
        self.module = module
        self.args = args
        if script is not None:
            self.path = os.path.realpath(script)
            self.directory = os.path.dirname(self.path)
            self.argv = [script, *args]
            self.name = os.path.relpath(script)
        else:
            self.path = ""
            self.directory = os.getcwd()
            self.argv = ["-m", *args]  # runpy puts the module's file in argv[0]
            self.name = f"-m {module}"

    def prepare(self) -> None:
        sys.argv = list(self.argv)
        if sys.path and sys.path[0] in ("", os.path.dirname(sys.argv[0] or "")):
            sys.path[0] = self.directory
        else:
            sys.path.insert(0, self.directory)

    def locate(self) -> None:
        """For `-m`: the module's file (found without running it), to know when it changes."""
        if self.module is None or self.path:
            return
        import importlib.util

        spec = importlib.util.find_spec(self.module)
        origin = getattr(spec, "origin", None) if spec is not None else None
        if spec is not None and spec.submodule_search_locations:
            main = importlib.util.find_spec(f"{self.module}.__main__")
            origin = getattr(main, "origin", None) if main is not None else None
        if origin:
            self.path = os.path.realpath(origin)

    def run(self) -> None:
        """Runs the entry once; raises what it raises."""
        state.dispose("__main__")
        if self.script is not None:
            runpy.run_path(self.script, run_name="__main__")
        else:
            sys.argv = list(self.argv)
            runpy.run_module(self.module, run_name="__main__", alter_sys=True)  # type: ignore[arg-type]


class ScriptFrontEnd(FrontEnd):
    """Script mode around a reload: nothing to hold (the entry was stopped first); after a
    reload that committed, or a save of the entry or of a file it read, the entry runs again."""

    def __init__(self, entry: Entry, data_files: DataFiles, say: Callable[[str], None]) -> None:
        self.entry = entry
        self.data_files = data_files
        self.say = say
        self.rerun = False

    def reloaded(self, report: Report) -> None:
        self.say(report.line)
        self.rerun = True

    def files_changed(self, paths: list[str]) -> str | None:
        for path in paths:
            real = os.path.realpath(path)
            if real == self.entry.path or "__main__" in self.data_files.readers_of(real):
                self.say(f"{os.path.relpath(path)} changed")
                self.rerun = True
        return None


class _Batches:
    """Change batches from the watcher (on the delivery thread) to the main thread; one that
    arrives while the entry runs interrupts it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)
        self._pending: list[tuple[str, str]] = []
        self._entry_running = False
        self.interrupted_by_change = False

    def deliver(self, batch: list[tuple[str, str]]) -> None:
        with self._lock:
            self._pending.extend(batch)
            if self._entry_running and not self.interrupted_by_change:
                self.interrupted_by_change = True
                signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)  # type: ignore[arg-type]
            self._ready.notify_all()

    @contextmanager
    def entry_running(self) -> Iterator[None]:
        with self._lock:
            self._entry_running = True
            self.interrupted_by_change = bool(self._pending)
        try:
            if self.interrupted_by_change:
                raise KeyboardInterrupt  # a change arrived before it even started
            yield
        finally:
            with self._lock:
                self._entry_running = False

    def wait(self, timeout: float) -> list[tuple[str, str]] | None:
        with self._lock:
            if not self._pending:
                self._ready.wait(timeout)
            batch, self._pending = self._pending, []
            self.interrupted_by_change = False
            return batch or None


class ScriptRunner:
    def __init__(self, entry: Entry, options: argparse.Namespace) -> None:
        self.entry = entry
        self.options = options
        self.exit_code = 0
        self.batches = _Batches()
        self._last_interrupt = 0.0
        self._colors = sys.stderr.isatty()

    def say(self, message: str) -> None:
        prefix = "\x1b[2m[hmr-serve]\x1b[0m " if self._colors else "[hmr-serve] "
        sys.stderr.write(f"{prefix}{message}\n")
        sys.stderr.flush()

    def run(self) -> int:
        self.entry.prepare()
        roots = [self.entry.directory]
        roots += [os.path.abspath(d) for d in self.options.reload_dirs if os.path.isdir(d)]
        tracker = ImportTracker(_core.ReloadEngine(), roots)
        tracker.on_first_import = integrations.module_executed
        tracker.install()
        data_files = DataFiles(tracker.engine, tracker, entry="__main__")
        data_files.install()
        self.entry.locate()
        front = ScriptFrontEnd(self.entry, data_files, self.say)
        loop = asyncio.new_event_loop()
        reloader = Reloader(
            front, tracker.engine, tracker, loop, self.options.reload_timeout, data_files
        )
        watcher = WatchThread()
        includes = ["*.py", *self.options.reload_includes]
        try:
            watcher.watch(
                tracker.engine, roots, includes, self.options.reload_excludes, self.batches.deliver
            )
        except OSError as exc:
            logger.error("cannot watch for changes: %s", exc)
            return 1
        self._run_entry(data_files, tracker)
        tracker.engine.scan()  # what the entry imported: the static reads propagation needs
        try:
            while True:
                batch = self._wait_for_change()
                if batch is None:
                    return self.exit_code
                front.rerun = False
                loop.run_until_complete(reloader.apply(batch))
                if front.rerun:
                    self._run_entry(data_files, tracker)
        finally:
            watcher.stop(tracker.engine)
            loop.close()

    def _wait_for_change(self) -> list[tuple[str, str]] | None:
        """The next batch of changes; None once the user asked to quit."""
        while True:
            try:
                batch = self.batches.wait(0.2)
            except KeyboardInterrupt:
                self.say(f"quitting (exit code {self.exit_code})")
                return None
            if batch:
                return batch

    def _run_entry(self, data_files: DataFiles, tracker: ImportTracker) -> None:
        if self.options.clear:
            sys.stdout.write(_CLEAR)
            sys.stdout.flush()
        self.say(f"running {self.entry.name}")
        started = time.perf_counter()
        outcome = "finished"
        try:
            with self.batches.entry_running(), data_files.importing():
                self.entry.run()
            self.exit_code = 0
        except SystemExit as exc:
            self.exit_code = _exit_code(exc)
            outcome = f"exited with code {self.exit_code}"
        except KeyboardInterrupt:
            if self.batches.interrupted_by_change:
                outcome = "stopped by a change"
            else:
                self.exit_code = _INTERRUPTED
                outcome = "interrupted (Ctrl-C again to quit)"
                now = time.monotonic()
                if now - self._last_interrupt < _DOUBLE_PRESS:
                    raise
                self._last_interrupt = now
        except BaseException as exc:
            self.exit_code = 1
            sys.stderr.write(user_traceback(exc))
            outcome = f"failed with {type(exc).__name__}"
        finally:
            tracker.sweep()
        elapsed = time.perf_counter() - started
        if outcome != "stopped by a change":
            self.say(f"{self.entry.name} {outcome} in {elapsed:.2f} s; watching for changes")


def _exit_code(exc: SystemExit) -> int:
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    sys.stderr.write(f"{code}\n")
    return 1


def main(argv: list[str]) -> int:
    parser = build_parser()
    options = parser.parse_args(argv)
    if options.module is not None and options.target is not None:
        options.args = [options.target, *options.args]
        options.target = None
    if options.module is None and options.target is None:
        parser.error("give a script (hmr-serve run app.py) or a module (hmr-serve run -m pkg.app)")
    if options.target is not None and not os.path.isfile(options.target):
        parser.error(f"no such script: {options.target}")
    configure(_LEVELS[options.log_level])
    entry = Entry(options.target, options.module, options.args)
    try:
        return ScriptRunner(entry, options).run()
    except KeyboardInterrupt:
        return _INTERRUPTED
