"""The pytest plugin of the test mode: it takes over pytest's run loop (testing/loop.py) and,
through hooks only, records what each test and each wider fixture ran and read, and how each
test ended."""

from __future__ import annotations

import argparse
import contextlib
import inspect
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
        # Function-scoped fixtures, by id of their FixtureDef: those whose setup may run the
        # project's code, and plugins' ones known to run none (kept alive with their id).
        self._project_fixtures: set[int] = set()
        self._plugin_only: dict[int, Any] = {}
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

    def _may_run_project_code(self, fixturedef: Any) -> bool | None:
        """Whether a function-scoped fixture's setup is recorded into its test's: a fixture of
        the project's (its function is in a first-party file, or it is one of pytest's
        xunit-style fixtures, which call the project's setup_method and the like), or one of a
        plugin's that ran project code the first time (a factory fixture). A plugin's fixture
        that ran none is not traced again: tracing costs most in pytest's and its plugins' own
        code. None: a plugin's fixture not set up yet."""
        key = id(fixturedef)
        if key in self._project_fixtures:
            return True
        if key in self._plugin_only:
            return False
        function = fixturedef.func
        with contextlib.suppress(Exception):
            function = inspect.unwrap(function)
        function = getattr(function, "__func__", function)
        code = getattr(function, "__code__", None)
        if fixturedef.argname.startswith("_xunit_setup") or (
            code is not None and self.recorder.first_party(code.co_filename)
        ):
            self._project_fixtures.add(key)
            return True
        return None

    def _phase(self, item: pytest.Item) -> Recording:
        if self._item is not item or self._recording is None:
            self._item = item
            self._recording = Recording()
            self._outcome = None
        return self._recording

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> Generator[None, Any, Any]:
        # Only the files read count here: pytest's own setup work (resolving fixtures, its
        # plugins' hooks) is where tracing costs most, and the project's code runs inside the
        # fixtures' setups, which record their code (pytest_fixture_setup).
        self._item = None  # a new test starts
        recording = self._phase(item)
        self.recorder.push(recording, code=False)
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
        # The project's code runs at teardown in its own fixtures' finalizers and in those the
        # test added (it asked for `request`), or in a unittest-style tearDown.
        code = (
            not isinstance(item, pytest.Function)
            or "request" in getattr(item, "fixturenames", ())
            or any(
                fixturedef.scope == "function"
                and self._may_run_project_code(fixturedef) is not False
                for fixturedef in used
            )
        )
        self.recorder.push(recording, code=code)
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
        if fixturedef.scope == "function":
            # Part of the test's recording.
            if self._recording is None:
                return (yield)
            project = self._may_run_project_code(fixturedef)
            if project is not None:
                self.recorder.push(self._recording, code=project)
                try:
                    return (yield)
                finally:
                    self.recorder.pop(self._recording)
            # A plugin's fixture, set up for the first time: recorded on its own, to learn
            # whether it runs any of the project's code at all.
            recording = Recording()
            self.recorder.push(recording)
            try:
                return (yield)
            finally:
                self.recorder.pop(recording)
                summary = self.recorder.summarise(recording)
                if summary.fingerprints:
                    self._project_fixtures.add(id(fixturedef))
                    self._recording.codes.extend(recording.codes)
                else:
                    self._plugin_only[id(fixturedef)] = fixturedef
                self._recording.files |= recording.files
        if self._recording is None:
            return (yield)  # not inside a test (a plugin's own use)
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
