"""The reload engine as the test mode drives it: a batch of changed files in, the modules
re-executed in place, and what changed in the terms test recordings are compared with
(testing/selection.Change) out.

- Code: for each re-executed module, the fingerprints recorded for its file that its new code
  no longer contains; for functions patched in place, their old code's fingerprints that the
  new code lacks; for a deleted file, all of its fingerprints.
- Names: the names whose values changed in the re-executed modules, the names an in-place
  patch changed (whose calls now run other code), and the mutable values of the modules a
  re-executed module imports when its import-time effects may differ (testing/effects.py).
- Files: every changed file.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from hmr_serve.reload import executor
from hmr_serve.reload.data_files import DataFiles
from hmr_serve.reload.reloader import FrontEnd, Reloader, Report
from hmr_serve.reload.tracker import ImportTracker
from hmr_serve.testing import effects, fingerprints
from hmr_serve.testing.recorder import Recorder
from hmr_serve.testing.rewrite import TestCompiler
from hmr_serve.testing.selection import Change


class TestFrontEnd(FrontEnd):
    """Nothing runs during a reload (the session is single-threaded): no holding; the outcome
    is kept for the session to act on."""

    held_noun = None

    def __init__(self) -> None:
        self.restart = self._restart
        self.reset()

    def reset(self) -> None:
        self.report: Report | None = None
        self.failure: executor.ReloadFailed | None = None
        self.others: list[str] = []
        self.restart_reason: str | None = None

    def _restart(self, reason: str) -> None:
        self.restart_reason = reason

    def reloaded(self, report: Report) -> None:
        self.report = report

    def failed(self, failure: executor.ReloadFailed) -> None:
        self.failure = failure

    def files_changed(self, paths: list[str]) -> None:
        self.others = list(paths)


@dataclass
class Outcome:
    change: Change = field(default_factory=Change)
    report: Report | None = None
    failed: executor.ReloadFailed | None = None
    restart: str | None = None
    elapsed: float = 0.0  # seconds
    reexecuted: set[str] = field(default_factory=set)
    other_files: list[str] = field(default_factory=list)  # changed, but no loaded module


class Reloading:
    def __init__(
        self,
        engine: Any,
        tracker: ImportTracker,
        data_files: DataFiles,
        recorder: Recorder,
        compiler: TestCompiler,
        timeout: float,
    ) -> None:
        self.engine = engine
        self.tracker = tracker
        self.recorder = recorder
        self.compiler = compiler
        self.front = TestFrontEnd()
        self.loop = asyncio.new_event_loop()
        self.reloader = Reloader(self.front, engine, tracker, self.loop, timeout, data_files)

    def first_party(self, name: str) -> bool:
        return name in self.tracker.tracked

    def apply(self, batch: list[tuple[str, str]]) -> Outcome:
        old_sources: dict[str, bytes | None] = {}
        for path, _ in batch:
            name = self.engine.module_at(path)
            if name is not None:
                old_sources[name] = self.engine.recorded_source(path)
        self.front.reset()
        self.compiler.codes.clear()
        started = time.perf_counter()
        self.loop.run_until_complete(self.reloader.apply(batch))
        outcome = Outcome(
            report=self.front.report,
            failed=self.front.failure,
            restart=self.front.restart_reason,
            other_files=self.front.others,
        )
        outcome.elapsed = time.perf_counter() - started
        outcome.change.files = {os.path.realpath(path) for path, _ in batch}
        for path, kind in batch:
            if kind == "deleted":
                outcome.change.gone |= self.recorder.by_file.get(os.path.realpath(path), set())
        report = self.front.report
        if report is None:
            return outcome
        outcome.reexecuted = set(report.modules)
        self._code_changes(report, outcome.change)
        self._effects(report, old_sources, outcome.change)
        return outcome

    def _code_changes(self, report: Report, change: Change) -> None:
        for name in report.modules:
            path = _module_path(name)
            if path is None:
                continue
            real = os.path.realpath(path)
            known = self.recorder.by_file.get(real)
            if not known:
                continue
            code = self.compiler.codes.get(path)
            now = fingerprints.all_of(code) if code is not None else set()
            change.gone |= known - now
        for old, new in report.patched:
            change.gone |= fingerprints.all_of(old) - fingerprints.all_of(new)
        for names in report.changes.values():
            change.names |= names
        change.names |= report.patched_names

    def _effects(
        self, report: Report, old_sources: dict[str, bytes | None], change: Change
    ) -> None:
        first_party = self.first_party
        for name in report.modules:
            module = sys.modules.get(name)
            if module is None:
                continue
            if name in old_sources:
                path = _module_path(name)
                new = self.engine.recorded_source(path) if path else None
                differ = effects.may_differ(old_sources[name], new, vars(module), first_party)
            else:  # re-run for what it imports: whatever it passes on may have changed
                differ = any(report.changes.get(dep) for dep in self.engine.dependencies(name))
            if differ:
                for dep in effects.dependencies(self.engine, name, first_party):
                    change.names |= effects.mutable_names(dep)


def _module_path(name: str) -> str | None:
    spec = getattr(sys.modules.get(name), "__spec__", None)
    return getattr(spec, "origin", None)
