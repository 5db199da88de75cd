"""The pytest plugin of the test mode: it takes over pytest's run loop (testing/loop.py) and,
through hooks only, records what each test and each wider fixture ran and read, and how each
test ended."""

from __future__ import annotations

import argparse
import os
from collections.abc import Generator
from typing import Any

import pytest
from _pytest import nodes

from hmr_serve.reload.data_files import DataFiles
from hmr_serve.reload.tracker import ImportTracker
from hmr_serve.testing.recorder import Recorder, Recording
from hmr_serve.testing.rewrite import TestCompiler
from hmr_serve.testing.selection import FixtureRecord, TestRecord, shape


class TestModePlugin:
    def __init__(
        self, tracker: ImportTracker, data_files: DataFiles, options: argparse.Namespace
    ) -> None:
        self.tracker = tracker
        self.engine = tracker.engine
        self.data_files = data_files
        self.options = options
        self.compiler = TestCompiler()
        self.recorder = Recorder(tracker.roots, self.engine.watch_file)
        self.records: dict[str, TestRecord] = {}
        self.fixtures: dict[int, FixtureRecord] = {}
        # Test files whose collection failed (an import error): collected again when they
        # change. By real path.
        self.failed_files: dict[str, Any] = {}
        self.restart_reason: str | None = None
        self.maxfail = 0
        self.failures = 0  # failed reports in the current run
        self._item: Any = None
        self._recording: Recording | None = None
        self._outcome: str | None = None

    # -- start-up ------------------------------------------------------------------------------

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_load_initial_conftests(self) -> Generator[None, Any, Any]:
        # pytest's assertion-rewriting finder went first in sys.meta_path: the tracker's finder,
        # which records when each module starts importing, must see test modules too.
        self.tracker.uninstall()
        self.tracker.install()
        return (yield)

    @pytest.hookimpl(trylast=True)
    def pytest_configure(self, config: pytest.Config) -> None:
        # -x/--maxfail apply per run (testing/runner.py): pytest's own stop tears down every
        # fixture, session ones included.
        self.maxfail = config.option.maxfail or 0
        config.option.maxfail = 0
        self.compiler.install()

    def pytest_unconfigure(self) -> None:
        self.compiler.uninstall()

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> bool | None:
        option = session.config.option
        if option.collectonly or getattr(option, "setupplan", False):
            return None  # nothing to watch: pytest's own loop
        from hmr_serve.testing.loop import WatchLoop

        WatchLoop(self, session).run()
        return True

    # -- recording -----------------------------------------------------------------------------

    def note_collected(self, items: list[pytest.Item]) -> dict[str, str]:
        """Records what freshly collected tests look like; returns the new and edited ones."""
        edited: dict[str, str] = {}
        for item in items:
            now = shape(item)
            record = self.records.get(item.nodeid)
            if record is None:
                self.records[item.nodeid] = TestRecord(shape=now)
                edited[item.nodeid] = "new"
            elif record.shape != now:
                record.shape = now
                edited[item.nodeid] = "edited"
        return edited

    def forget(self, nodeids: set[str]) -> None:
        for nodeid in nodeids:
            self.records.pop(nodeid, None)

    @pytest.hookimpl(wrapper=True)
    def pytest_make_collect_report(self, collector: Any) -> Generator[None, Any, Any]:
        report = yield
        if isinstance(collector, nodes.File):
            path = os.path.realpath(collector.path)
            if report.failed:
                self.failed_files[path] = collector
            else:
                self.failed_files.pop(path, None)
        return report

    def _phase(self, item: pytest.Item) -> Recording:
        if self._item is not item or self._recording is None:
            self._item = item
            self._recording = Recording()
            self._outcome = None
        return self._recording

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> Generator[None, Any, Any]:
        self._item = None  # a new test starts
        recording = self._phase(item)
        self.recorder.push(recording)
        try:
            return (yield)
        finally:
            self.recorder.pop(recording)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, Any, Any]:
        recording = self._phase(item)
        self.recorder.push(recording)
        try:
            return (yield)
        finally:
            self.recorder.pop(recording)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_teardown(self, item: pytest.Item) -> Generator[None, Any, Any]:
        recording = self._phase(item)
        request = getattr(item, "_request", None)
        used = tuple(request._fixture_defs.values()) if request else ()
        record = self.records.setdefault(item.nodeid, TestRecord(shape=shape(item)))
        record.fixtures = used
        self.recorder.push(recording)
        try:
            return (yield)
        finally:
            self.recorder.pop(recording)

    def pytest_runtest_logfinish(self, nodeid: str) -> None:
        recording = self._recording
        if recording is None or self._item is None or self._item.nodeid != nodeid:
            return
        record = self.records.setdefault(nodeid, TestRecord(shape=shape(self._item)))
        record.summary = self.recorder.summarise(recording)
        record.outcome = self._outcome or "passed"
        self._item = None
        self._recording = None

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.failed and not hasattr(report, "wasxfail"):
            self._outcome = "failed"
            self.failures += 1
        elif report.skipped and self._outcome is None:
            self._outcome = "skipped"

    @pytest.hookimpl(wrapper=True)
    def pytest_fixture_setup(self, fixturedef: Any, request: Any) -> Generator[None, Any, Any]:
        if fixturedef.scope == "function" or not self.recorder.active:
            return (yield)  # a function's fixtures are part of the test's recording
        recording = Recording()
        self.recorder.push(recording)
        try:
            return (yield)
        finally:
            self.recorder.pop(recording)
            summary = self.recorder.summarise(recording)
            defs = request._fixture_defs
            depends_on = tuple(defs[name] for name in fixturedef.argnames if name in defs)
            previous = self.fixtures.get(id(fixturedef))
            if previous is not None and previous.fixturedef is fixturedef:
                # Set up again (another parameter, another module): either run counts.
                summary = previous.summary.merged(summary)
                depends_on = tuple({id(d): d for d in previous.depends_on + depends_on}.values())
            self.fixtures[id(fixturedef)] = FixtureRecord(fixturedef, summary, depends_on)
