"""The reload engine as the test mode drives it: a batch of changed files in, the modules
re-executed in place, and what changed in the terms test recordings are compared with
(testing/selection.Change) out.

- Code: for each re-executed module, the fingerprints recorded for its file that its new code
  no longer contains; for functions patched in place, their old code's fingerprints that the
  new code lacks; for a deleted file, all of its fingerprints.
- Names: the names whose values changed in the re-executed modules, the cached functions an
  in-place patch cleared (their next call runs code no test recorded), and the mutable values
  of the modules a re-executed module imports when its import-time effects may differ
  (testing/effects.py); each for the files that can name it. The attributes of a class that
  changed, for every file.
- Files: every changed file.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from hmr_serve.logs import logger
from hmr_serve.reload import executor
from hmr_serve.reload.data_files import DataFiles
from hmr_serve.reload.reloader import FrontEnd, Reloader, Report
from hmr_serve.reload.tracker import ImportTracker
from hmr_serve.testing import content, effects, fingerprints
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
        self.restart_reason: str | None = None

    def _restart(self, reason: str) -> None:
        self.restart_reason = reason

    def reloaded(self, report: Report) -> None:
        logger.debug("%s", report.line)  # the run's summary line says it shorter
        self.report = report

    def failed(self, failure: executor.ReloadFailed) -> None:
        self.failure = failure


@dataclass
class Outcome:
    change: Change = field(default_factory=Change)
    report: Report | None = None
    failed: executor.ReloadFailed | None = None
    restart: str | None = None
    elapsed: float = 0.0  # seconds
    reexecuted: set[str] = field(default_factory=set)


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
        # (module, class name) -> its attributes when last seen.
        self._classes: dict[tuple[str, str], dict[str, Any]] = {}

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
        self._names(report, old_sources, outcome.change)
        self.note_classes(outcome.reexecuted)
        return outcome

    def _code_changes(self, report: Report, change: Change) -> None:
        for name in report.modules:
            path = _module_path(name)
            if path is None:
                continue
            known = self.recorder.by_file.get(os.path.realpath(path))
            if not known:
                continue
            code = self.compiler.codes.get(path)
            now = fingerprints.all_of(code) if code is not None else set()
            change.gone |= known - now
        for old, new in report.patched:
            change.gone |= fingerprints.all_of(old) - fingerprints.all_of(new)

    def _names(self, report: Report, old_sources: dict[str, bytes | None], change: Change) -> None:
        """The names whose values changed, each where code can read it (selection.Change)."""
        changed: dict[str, set[str]] = {}
        for module, names in report.changes.items():
            names = _differing(module, names, report.before.get(module, {}))
            if names:
                logger.debug("values that changed in %s: %s", module, ", ".join(sorted(names)))
                changed.setdefault(module, set()).update(names)
                self._class_attributes(module, names, change)
        for module, name in report.cleared:
            changed.setdefault(module, set()).add(name)
        for names in self._effects(report, old_sources).values():
            change.mutated |= names
        if not changed:
            return
        importers = self._importers(set(changed))
        for module, names in changed.items():
            own = _real(module)
            if own is not None:
                change.globals |= {(own, name) for name in names}
            files = {path for m in importers.get(module, ()) if (path := _real(m))}
            change.attributes |= {(path, name) for path in files for name in names}
            short = module.rpartition(".")[2]
            change.chains |= {(short, name) for name in names}

    def _importers(self, modules: set[str]) -> dict[str, set[str]]:
        """The modules that import each of `modules` directly."""
        found: dict[str, set[str]] = {}
        for name, deps, _ in self.engine.closure_plan(sorted(modules)):
            for dep in deps:
                if dep in modules and dep != name:
                    found.setdefault(dep, set()).add(name)
        return found

    def _class_attributes(self, module: str, names: set[str], change: Change) -> None:
        """A class that changed (kept in place, or new): its attributes that were added,
        removed or hold something else count wherever they are read, since its instances go
        everywhere. A method whose code alone changed is not among them: a test that called it
        ran that code (its fingerprint is gone)."""
        namespace = vars(sys.modules[module]) if module in sys.modules else {}
        for name in names:
            value = namespace.get(name)
            before = self._classes.pop((module, name), {})
            now = dict(vars(value)) if isinstance(value, type) else {}
            if now:
                self._classes[(module, name)] = now
            differing = {
                attr
                for attr in before.keys() | now.keys()
                if attr not in before
                or attr not in now
                or not content.same(before[attr], now[attr], code=False)
            }
            change.names |= differing - _CLASS_BOOKKEEPING

    def note_classes(self, modules: set[str] | None = None) -> None:
        """Remembers the attributes of the classes of `modules` (default: every first-party
        module), to tell later which ones a change added, removed or replaced."""
        names = self.tracker.tracked if modules is None else modules
        for module in list(names):
            target = sys.modules.get(module)
            if target is None:
                continue
            for name, value in list(vars(target).items()):
                if isinstance(value, type) and getattr(value, "__module__", None) == module:
                    self._classes[(module, name)] = dict(vars(value))

    def _effects(self, report: Report, old_sources: dict[str, bytes | None]) -> dict[str, set[str]]:
        """Per module, the values a re-executed module may have changed in it while it ran."""
        first_party = self.first_party
        found: dict[str, set[str]] = {}
        for name in report.modules:
            module = sys.modules.get(name)
            if module is None:
                continue
            if name in old_sources:
                path = _module_path(name)
                new = self.engine.recorded_source(path) if path else None
                differ = effects.may_differ(old_sources[name], new, vars(module), first_party)
            else:  # re-run for what it imports: effects differ if its top level names a change
                changed_there: set[str] = set()
                for dep in self.engine.dependencies(name):
                    changed_there |= report.changes.get(dep, frozenset())
                path = _module_path(name)
                source = self.engine.recorded_source(path) if path and changed_there else None
                differ = bool(changed_there) and (
                    source is None
                    or not changed_there.isdisjoint(effects.names_at_import(name, source))
                )
            if differ:
                for dep in effects.dependencies(self.engine, name, first_party):
                    dep_path = _module_path(dep)
                    dep_source = self.engine.recorded_source(dep_path) if dep_path else None
                    mutable = effects.mutable_names(dep, dep_source)
                    if mutable:
                        found.setdefault(dep, set()).update(mutable)
        return found


# What every class has: no reader of these could tell two versions apart by them.
_CLASS_BOOKKEEPING = frozenset(
    {"__module__", "__dict__", "__weakref__", "__doc__", "__qualname__", "__annotations__"}
)


def _differing(module: str, names: frozenset[str], before: dict[str, Any]) -> set[str]:
    """Of the names the engine reports changed, those whose new value holds something else:
    a new object equal in content to the old one (a class that could not be kept, an app
    built at import) changes nothing a test can observe (testing/content.py)."""
    target = sys.modules.get(module)
    namespace = vars(target) if target is not None else {}
    differing = set()
    for name in names:
        if name == "__warningregistry__":  # what `warnings` noted: no test reads it
            continue
        if name in before and name in namespace:
            old, new = before[name], namespace[name]
            if old is not new and content.same(old, new):
                continue
        differing.add(name)
    return differing


def _module_path(name: str) -> str | None:
    spec = getattr(sys.modules.get(name), "__spec__", None)
    return getattr(spec, "origin", None)


def _real(name: str) -> str | None:
    path = _module_path(name)
    return os.path.realpath(path) if path else None
