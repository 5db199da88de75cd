"""The watch loop that replaces pytest's run loop: run every test once, then, on each save,
reload the changed modules in place, collect again what changed, run the affected tests and
print one line; until `q`, Ctrl-C, or a change that needs a fresh session."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from hmr_serve.reload.watch_thread import WatchThread
from hmr_serve.testing import selection
from hmr_serve.testing.collection import Universe, finish
from hmr_serve.testing.events import Event, Events
from hmr_serve.testing.plugins import PluginModules
from hmr_serve.testing.reloading import Outcome, Reloading
from hmr_serve.testing.report import RunReport, arrow, duration, plural
from hmr_serve.testing.runner import Runner

# Ctrl-C twice this close together quits even while tests run.
_DOUBLE_PRESS = 1.5


class WatchLoop:
    def __init__(self, plugin: Any, session: pytest.Session) -> None:
        self.plugin = plugin
        self.session = session
        self.config = session.config
        self.engine = plugin.engine
        self.universe = Universe(session, plugin.failed_files)
        self.runner = Runner(session, plugin.maxfail)
        self.report = RunReport(self.config)
        self.events = Events(keys=not plugin.options.no_keys)
        self.reloading = Reloading(
            self.engine,
            plugin.tracker,
            plugin.data_files,
            plugin.recorder,
            plugin.compiler,
            plugin.options.reload_timeout,
        )
        self.plugins = PluginModules(self.config, session, plugin.recorder.first_party)
        self.last_selection: list[str] = []
        self._last_interrupt = 0.0
        self._watcher: WatchThread | None = None

    # -- the loop ------------------------------------------------------------------------------

    def run(self) -> None:
        self.plugin.note_collected(self.universe.items)
        if self.universe.failed_files and not self.config.option.continue_on_collection_errors:
            self.report.finish()
            self._say_collection_errors()
        else:
            self._run(list(self.universe.items), "", show_header=False)
        self.engine.scan()
        self.reloading.note_classes()
        try:
            self._watch()
        except OSError as exc:
            self.report.line(f"cannot watch for changes: {exc}", red=True)
            return
        try:
            while True:
                try:
                    with self._terminal():
                        event = self.events.wait(self._say_waiting)
                except KeyboardInterrupt:
                    break
                if event.kind == "quit":
                    break
                if not self._handle(event):
                    break
        finally:
            self._stop_watching()
            self.events.close()
            self._finish_session()

    def _handle(self, event: Event) -> bool:
        """Acts on one event; False when the session must end (quit, restart)."""
        self.report.reset()
        if event.kind == "all":
            self._run(list(self.universe.items), "all tests", select_all=True)
        elif event.kind == "failed":
            failed = [
                item
                for item in self.universe.items
                if (record := self.plugin.records.get(item.nodeid)) and record.outcome == "failed"
            ]
            self._run(failed, "failed tests")
        elif event.kind == "again":
            wanted = set(self.last_selection)
            again = [item for item in self.universe.items if item.nodeid in wanted]
            self._run(again, "the last selection")
        elif event.batch:
            return self._on_change(event.batch)
        return True

    # -- a change ------------------------------------------------------------------------------

    def _on_change(self, batch: list[tuple[str, str]]) -> bool:
        written = self.plugin.recorder.written
        batch = [(path, kind) for path, kind in batch if os.path.realpath(path) not in written]
        if not batch:
            return True  # files the tests wrote themselves
        started = time.perf_counter()
        files = ", ".join(sorted({os.path.relpath(path) for path, _ in batch}))
        self.plugins.before_reload()
        outcome = self.reloading.apply(batch)
        if outcome.restart:
            return self._restart(f"{outcome.restart}")
        if outcome.failed is not None:
            error = outcome.failed.error
            self.report.summary(
                f"{files} changed {arrow()} reload failed in {outcome.failed.module} "
                f"({type(error).__name__}: {error}); no tests run, the previous code stays "
                "loaded until the next save",
                "red",
            )
            return True
        change = outcome.change
        plugins = self.plugins.after_reload(change.files, outcome.reexecuted)
        if plugins.restart:
            return self._restart(plugins.restart)
        edited = self._collect_again(batch, outcome, plugins.reshaped)
        where = self.plugin.recorder.file_of
        stale = selection.stale_fixtures(self.plugin.fixtures, change, where)
        for key in stale:
            record = self.plugin.fixtures.pop(key)
            finish(record.fixturedef, self.session)
        chosen = selection.affected(
            self.universe.items, self.plugin.records, change, stale, where, edited
        )
        items = [item for item in self.universe.items if item.nodeid in chosen]
        prepared = time.perf_counter() - started
        self._explain(chosen)
        self._run(
            items,
            f"{files} changed",
            reload_time=outcome.elapsed,
            prepare_time=prepared,
        )
        return True

    def _collect_again(
        self, batch: list[tuple[str, str]], outcome: Outcome, reshaped: list[Any]
    ) -> dict[str, str]:
        """Collects the test files the change touched; returns the new and edited tests."""
        universe = self.universe
        files = universe.files()
        to_collect: dict[str, Any] = {}
        touched = {_module_file(name) for name in outcome.reexecuted}
        if outcome.report is not None:
            touched |= {os.path.realpath(old.co_filename) for old, _ in outcome.report.patched}
        for path in touched:
            if path in files:
                to_collect[path] = files[path]
        for node in reshaped:  # a conftest's fixtures changed shape: every file below it
            for path, file_node in files.items():
                if node in file_node.listchain():
                    to_collect[path] = file_node
        new_paths: list[str] = []
        for path, kind in batch:
            real = os.path.realpath(path)
            if kind == "deleted":
                self.plugin.forget({item.nodeid for item in universe.remove_file(real)})
            elif real not in files and self.engine.module_at(path) is None:
                new_paths.append(real)
        # A file whose import failed may have failed because of another file: every save
        # tries them again.
        for path, node in list(universe.failed_files.items()):
            if os.path.exists(path):
                to_collect[path] = node
            else:
                del universe.failed_files[path]
        fresh: list[pytest.Item] = []
        for node in to_collect.values():
            before = {item.nodeid for item in universe.items if node in item.listchain()}
            items = universe.recollect(node)
            self.plugin.forget(before - {item.nodeid for item in items})
            fresh += items
        for path in new_paths:
            if path not in to_collect:
                fresh += universe.collect_new(path)
        self.session._collection_cache = {}  # type: ignore[attr-defined]
        return self.plugin.note_collected(fresh)

    # -- running -------------------------------------------------------------------------------

    def _run(
        self,
        items: list[pytest.Item],
        trigger: str,
        *,
        select_all: bool = False,
        show_header: bool = True,
        reload_time: float | None = None,
        prepare_time: float | None = None,
    ) -> None:
        total = len(self.universe)
        self.last_selection = [item.nodeid for item in items]
        if trigger:
            what = "tests" if total != 1 else "test"
            header = f"{trigger} {arrow()} {len(items)} of {total} {what} "
            header += "selected" if not trigger.endswith("changed") else "affected"
        else:
            header = None
        self.report.start(self.session, len(items), header if show_header else None)
        self.plugin.failures = 0
        result = None
        try:
            if items:
                result = self.runner.run(items, lambda: self.plugin.failures)
        finally:
            self.report.finish()
            # Modules the tests imported: known to the engine (and parsed) before the next save.
            self.plugin.tracker.sweep()
            self.engine.scan([])
        counts, color = self.report.counts()
        if result is not None:
            # Selected but not run (-x stopped the run, Ctrl-C): due in the next run.
            for item in items[result.ran :]:
                record = self.plugin.records.get(item.nodeid)
                if record is not None:
                    record.summary = None
            for where, exc in result.teardown_errors:
                self.report.line(f"tearing down {where} failed: {exc!r}", red=True)
        elapsed = result.elapsed if result is not None else 0.0
        if not trigger:
            line = f"{plural(total, 'test')}: {counts} in {duration(elapsed)}"
        else:
            line = f"{header}: {counts if items else 'nothing to run'}"
            if items:
                line += f" in {duration(elapsed)}"
            extra = []
            if reload_time is not None:
                extra.append(f"reload {duration(reload_time)}")
            if extra:
                line += f" ({', '.join(extra)})"
        if result is not None and result.stopped:
            line += f"; {result.stopped}"
        if result is not None and result.interrupted:
            line += "; interrupted"
            color = "yellow"
        self.session.testsfailed = self.plugin.failures
        self.report.summary(line, color if items else "green")
        if result is not None and result.interrupted:
            now = time.monotonic()
            if now - self._last_interrupt < _DOUBLE_PRESS:
                raise KeyboardInterrupt
            self._last_interrupt = now

    def _explain(self, chosen: dict[str, str]) -> None:
        if self.config.get_verbosity() < 2:
            return
        for nodeid, why in chosen.items():
            self.report.line(f"  {nodeid}: {why}")

    @contextlib.contextmanager
    def _terminal(self) -> Iterator[None]:
        """The real stdin while waiting: between tests pytest keeps capturing it (fd 0 reads
        /dev/null), as it does until a debugger asks for the terminal."""
        capture = self.config.pluginmanager.getplugin("capturemanager")
        if capture is None:
            yield
            return
        capture.suspend_global_capture(in_=True)
        try:
            yield
        finally:
            capture.resume_global_capture()
            capture.suspend_global_capture(in_=False)

    # -- talking -------------------------------------------------------------------------------

    def _say_waiting(self) -> None:
        """Once after each run (or message): what the session waits for."""
        if self.report.said_since_prompt:
            keys = " (a: all, f: failed, Enter: again, q: quit)" if self.events.keys else ""
            self.report.line(f"watching for changes{keys}")
            self.report.said_since_prompt = False

    def _say_collection_errors(self) -> None:
        count = len(self.universe.failed_files)
        self.report.summary(
            f"{plural(count, 'error')} during collection: no tests run; fix and save", "red"
        )

    # -- watching ------------------------------------------------------------------------------

    def _watch(self) -> None:
        watcher = self._watcher = WatchThread()
        options = self.plugin.options
        includes = ["*.py", *options.reload_includes]
        watcher.watch(
            self.engine,
            self.plugin.tracker.roots,
            includes,
            options.reload_excludes,
            self.events.deliver,
        )

    def _stop_watching(self) -> None:
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.stop(self.engine)

    # -- ending --------------------------------------------------------------------------------

    def _restart(self, reason: str) -> bool:
        self.report.line(f"{reason}: restarting the test session", yellow=True, bold=True)
        self.plugin.restart_reason = reason
        return False

    def _finish_session(self) -> None:
        """What pytest reports at the end is the last run's result."""
        self.session.testscollected = len(self.universe)
        self.config.option.no_summary = True


def _module_file(name: str) -> str | None:
    spec = getattr(sys.modules.get(name), "__spec__", None)
    origin = getattr(spec, "origin", None)
    return os.path.realpath(origin) if origin else None
