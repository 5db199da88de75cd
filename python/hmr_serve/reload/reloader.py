"""The reload engine's entry point: a batch of changed files in, one reload, a report out.
Changed modules and what they affect are planned (reload/propagation.py), the front-end holds
its work (the server closes its request gate, script mode stops its entry), the modules
re-execute all or nothing (reload/executor.py), the front-end picks up what changed and lets
its work go on. Runs on the event loop thread; batches that arrive during a reload are queued
for right after it. Nothing here knows about HTTP: each front-end (serve, run, test) gives its
own `FrontEnd`."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sys
import threading
import time
import traceback
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hmr_serve import integrations
from hmr_serve.loading import user_traceback
from hmr_serve.logs import error_location, logger
from hmr_serve.reload import cutoff, executor, propagation, time_limit
from hmr_serve.reload.data_files import DataFiles
from hmr_serve.reload.tracker import FOREIGN_DIRS, ImportTracker

#: A module that sets this to True at top level is never hot-reloaded: the server restarts.
RESTART_MARKER = "__hmr_restart__"
# The marker in a changed file, before the edit that added it ever ran.
_MARKER_LINE = re.compile(rb"^__hmr_restart__\s*(?::[^=\n]*)?=\s*True\b", re.MULTILINE)
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
# A plan whose check keeps finding importers it left out runs again at most this often; then
# every transitive importer re-runs, as before name-level propagation.
_REPLANS = 2


def _module_path(name: str) -> str | None:
    spec = getattr(sys.modules.get(name), "__spec__", None)
    return getattr(spec, "origin", None)


@dataclass
class Report:
    """What one committed reload did."""

    files: str  # the changed files, relative, comma-separated
    modules: list[str]  # re-executed, in the order they ran
    changes: dict[str, frozenset[str]]  # per re-executed module, the names whose value changed
    elapsed_ms: float  # the reload itself
    waited_ms: float  # waiting for the front-end's running work before it
    held: int  # work the front-end held meanwhile (requests)
    unaffected: int  # importers that were candidates and did not need to re-run
    line: str  # the log line
    # An edit of function bodies patched in place (reload/cutoff.py): each function's (old, new)
    # code, and the cached functions whose caches were cleared, as (module, name).
    patched: list[tuple[types.CodeType, types.CodeType]] = field(default_factory=list)
    cleared: frozenset[tuple[str, str]] = frozenset()
    # The values the changed names had before (reload/executor.Outcome.before).
    before: dict[str, dict[str, Any]] = field(default_factory=dict)


class FrontEnd:
    """What a front-end does around a reload; every hook has a neutral default."""

    #: Called with a reason when a change can only be applied by a fresh process; None: hot
    #: reloads only.
    restart: Callable[[str], None] | None = None
    #: Names the front-end itself calls once when it starts (an app factory): a function body
    #: edit to one of them cannot be patched in place.
    called_at_start: frozenset[str] = frozenset()
    #: What the front-end holds during a reload, for the log line ("request"); None: nothing.
    held_noun: str | None = None

    async def hold(self) -> float:
        """Stops new work and waits for running work; returns how long that took (ms)."""
        return 0.0

    def release(self) -> int:
        """Lets work go on; returns how much was held meanwhile."""
        return 0

    def refresh(self, reexecuted: set[str]) -> None:
        """Inside the reload, after the modules ran: look up again what the front-end runs.
        An exception rolls the whole reload back."""

    def committed(self) -> None:
        """The reload committed: switch to what `refresh` found."""

    def reloaded(self, report: Report) -> None:
        logger.info("%s", report.line)

    def failed(self, failure: executor.ReloadFailed) -> None:
        """The reload failed and rolled back (already logged)."""

    def files_changed(self, paths: list[str]) -> str | None:
        """Files that are no module and no module's data changed (templates). Returns what the
        front-end did about it, for the log line ("2 pages refreshed")."""
        return None


class Reloader:
    def __init__(
        self,
        front: FrontEnd,
        engine: Any,
        tracker: ImportTracker,
        loop: asyncio.AbstractEventLoop,
        timeout: float = 0,
        data_files: DataFiles | None = None,
    ) -> None:
        self.front = front
        self.engine = engine
        self.tracker = tracker
        self.loop = loop
        self.timeout = timeout  # seconds the modules of one reload may run (0: no limit)
        self.data_files = data_files
        self.reads = propagation.ReadsCache(engine)
        #: The first static pass, when it runs beside the start (a save that arrives first
        #: waits for it: without it every importer would count as reading everything).
        self.initial_scan: asyncio.Future[Any] | None = None
        if timeout > 0:
            time_limit.prepare()
        self._pending: dict[str, str] = {}
        self._retry: set[str] = set()  # modules of a failed reload, retried with the next save
        self._task: asyncio.Task[None] | None = None
        self.reloads = 0
        self.failures = 0

    def on_change(self, batch: list[tuple[str, str]]) -> None:
        for path, kind in batch:
            self._pending[str(path)] = kind
        if self._task is None or self._task.done():
            self._task = self.loop.create_task(self._drain())

    async def apply(self, batch: list[tuple[str, str]]) -> None:
        """Reloads for `batch` (and what arrives meanwhile); returns once that is done."""
        self.on_change(batch)
        if self._task is not None:
            await self._task

    async def _drain(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, {}
            try:
                await self._reload(batch)
            except Exception as exc:  # a bug of ours must not stop future reloads
                logger.error("reload crashed: %s", exc, exc_info=exc)

    def _classify(self, batch: dict[str, str]) -> tuple[list[str], list[str], list[str]]:
        """Changed modules, deleted modules, and changed files that are no loaded module."""
        changed: list[str] = []
        deleted: list[str] = []
        others: list[str] = []
        for path, kind in batch.items():
            name = self.engine.module_at(path)
            if kind == "deleted":
                names = [name] if name else self.engine.modules_under(path)
                deleted.extend(n for n in names if n not in deleted)
            elif name:
                if name not in changed:
                    changed.append(name)
            else:
                others.append(path)
        return changed, deleted, others

    def _data_changes(self, others: list[str]) -> tuple[set[str], list[str], list[str]]:
        """Modules that read changed data files while importing; the files that are no
        module's data; the files lifespan startup read."""
        readers: set[str] = set()
        rest: list[str] = []
        startup: list[str] = []
        for path in others:
            if self.data_files is None:
                rest.append(path)
                continue
            if self.data_files.read_at_startup(path):
                startup.append(path)
            found = self.data_files.readers_of(path) & self.tracker.tracked
            if found:
                readers |= found
            else:
                rest.append(path)
        return readers, rest, startup

    async def _reload(self, batch: dict[str, str]) -> None:
        started = time.perf_counter()
        changed, deleted, others = self._classify(batch)
        readers, others, startup = self._data_changes(others)
        files = ", ".join(sorted(os.path.relpath(p) for p in batch))
        if startup and self.front.restart is not None:
            read = ", ".join(sorted(os.path.relpath(p) for p in startup))
            self.front.restart(
                f"{read} was read during lifespan startup, which a hot reload does not run "
                f"again ({files})"
            )
            return
        active = integrations.active()
        done = integrations.call_all(active, "files_changed", others) if others else []
        for name in self._retry:  # a failed reload's modules, deleted ones included
            if name not in changed and name not in deleted:
                (changed if os.path.exists(_module_path(name) or "") else deleted).append(name)
        readers -= set(changed) | set(deleted)
        if not changed and not deleted and not readers:
            refreshed = self.front.files_changed(others)  # templates: nothing re-runs
            if others:  # what each integration did, e.g. "template caches cleared"
                what = [d if isinstance(d, str) else "handled" for d in done if d]
                names = ", ".join(sorted(os.path.relpath(p) for p in others))
                done_text = ", ".join([*what, refreshed] if refreshed else what)
                logger.info("%s changed: %s", names, done_text or "no module re-runs")
            return
        if (
            not deleted
            and not readers
            and await self._patch_in_place(changed, batch, active, started)
        ):
            return
        if self.initial_scan is not None:
            await asyncio.shield(self.initial_scan)
        plan = propagation.plan(self.engine, self.tracker, self.reads, changed, deleted, readers)
        for _ in range(_REPLANS + 1):
            reason = self._restart_reason(active, plan.order, changed, list(batch))
            if reason is not None:
                if self.front.restart is not None:
                    self.front.restart(f"{reason} ({files})")
                    return
                logger.warning("%s; restart unavailable, trying a hot reload anyway", reason)
            if logger.isEnabledFor(10):  # DEBUG
                for line in propagation.describe_reasons(plan):
                    logger.debug("%s", line)
            result = await self._execute(plan, deleted, active)
            if not isinstance(result, executor.NeedsMore):
                break
            logger.debug(
                "re-running because importers read names that changed after all: %s", result
            )
            more = [name for name in result.modules if name not in plan.order]
            plan.order += more
            plan.reasons.update({name: "read a name that changed" for name in more})
            for name in more:
                plan.deferred.pop(name, None)
        else:  # the checks kept finding more: every transitive importer, as before
            plan.order = [n for n in self.engine.closure(changed + deleted) if n not in deleted]
            plan.deferred = {}
            result = await self._execute(plan, deleted, active, check=False)
        if isinstance(result, executor.ReloadFailed):
            self.failures += 1
            self._retry = set(changed) | set(deleted)
            if not self._restart_for_foreign_failure(result, files):
                self._report(result)
            return
        assert isinstance(result, tuple)
        outcome, held, waited = result
        self._retry = set()
        self.reloads += 1
        elapsed = (time.perf_counter() - started) * 1000 - waited
        count = outcome.count
        details = []
        noun = self.front.held_noun
        if waited >= 0.1:
            details.append(f"+ {waited:.1f} ms waiting for running {noun or 'work'}s")
        if plan.unaffected:
            unaffected = plan.unaffected
            details.append(f"{unaffected} importer{'' if unaffected == 1 else 's'} unaffected")
        if noun is not None:
            details.append(f"held {held} {noun}{'' if held == 1 else 's'}")
        line = (
            f"reloaded {count} module{'' if count == 1 else 's'} in {elapsed:.1f} ms "
            + "".join(f"({detail}) " for detail in details)
            + f"after changes to {files}"
        )
        executed = [name for name in plan.order if name in outcome.changes]
        self.front.reloaded(
            Report(
                files,
                executed,
                outcome.changes,
                elapsed,
                waited,
                held,
                plan.unaffected,
                line,
                before=outcome.before,
            )
        )
        if outcome.threads:
            self._warn_threads(outcome.threads)
        await self._scan(batch, changed)

    def _restart_reason(
        self, active: list[Any], order: list[str], changed: list[str], paths: list[str]
    ) -> str | None:
        reason = next(
            (
                r
                for i in active
                if (r := integrations.call(i, "restart_reason", order, paths)) is not None
            ),
            None,
        )
        if reason is None:
            marked = self._marked_for_restart(order, changed)
            if marked:
                verb = "sets" if len(marked) == 1 else "set"
                reason = f"{', '.join(marked)} {verb} {RESTART_MARKER} = True"
        return reason

    async def _execute(
        self,
        plan: propagation.Plan,
        deleted: list[str],
        active: list[Any],
        check: bool = True,
    ) -> tuple[executor.Outcome, int, float] | executor.ReloadFailed | executor.NeedsMore:
        """Runs the plan with the front-end's work held: (outcome, work held, ms waited for
        running work), or why it did not commit."""
        order = plan.order
        waited = await self.front.hold()
        result: Any = None
        try:

            def finish() -> None:
                self.front.refresh(set(order))

            def executed(name: str, module: Any) -> None:
                integrations.call_all(active, "module_executed", name, module)

            def verify(transaction: executor.Transaction) -> None:
                verdict = propagation.verify(
                    self.tracker,
                    self.reads,
                    plan,
                    set(transaction.executed),
                    transaction.changes,
                    transaction.old_value,
                )
                transaction.undo.extend(verdict.undo)
                if verdict.missing:
                    raise executor.NeedsMore(verdict.missing)

            integrations.call_all(active, "before_execute", order)
            threads_before = threading.active_count()
            recording = self.data_files.importing() if self.data_files else contextlib.nullcontext()
            try:
                with recording:
                    outcome = executor.run(
                        self.engine,
                        self.tracker,
                        deleted,
                        order,
                        finish,
                        executed,
                        self.timeout,
                        verify if check else None,
                        plan.prerequisites(),
                    )
            except (executor.ReloadFailed, executor.NeedsMore):
                integrations.call_all(active, "after_execute", order, False)
                raise
            integrations.call_all(active, "after_execute", order, True)
            self.front.committed()
            self.tracker.sweep()
            if threading.active_count() <= threads_before:
                outcome.threads = {}
            result = outcome
        except (executor.ReloadFailed, executor.NeedsMore) as exc:
            result = exc
        finally:
            held = self.front.release()
        if isinstance(result, executor.Outcome):
            return result, held, waited
        return result

    def _restart_for_foreign_failure(self, failure: executor.ReloadFailed, files: str) -> bool:
        """A re-execution that failed inside an installed package (a registry refusing a second
        registration, say) says nothing about the user's code: a fresh process is the faithful
        answer. Restarts (keeping the socket) and returns True when that is the case."""
        if self.front.restart is None or isinstance(failure.error, (SyntaxError, SystemExit)):
            return False
        if isinstance(failure.error, time_limit.ReloadTimeout):
            return False
        innermost = None
        tb = failure.error.__traceback__
        while tb is not None:
            filename = tb.tb_frame.f_code.co_filename
            # The import system's frames and hmr-serve's own say nothing of whose code raised.
            if not (filename.startswith("<") or filename.startswith(_PACKAGE_DIR)):
                innermost = filename
            tb = tb.tb_next
        if innermost is None or not FOREIGN_DIRS.intersection(innermost.split(os.sep)):
            return False
        sys.stderr.write(user_traceback(failure.error))
        self.front.restart(
            f"reloading {failure.module} failed with {type(failure.error).__name__} raised in "
            f"installed code ({os.path.relpath(innermost)}): {failure.error}; a fresh process "
            f"loads the new code instead ({files})"
        )
        return True

    async def _patch_in_place(
        self, changed: list[str], batch: dict[str, str], active: list[Any], started: float
    ) -> bool:
        """Early cutoff (reload/cutoff.py): an edit of function bodies only patches the live
        functions, with the gate closed. False: the normal reload must run."""
        if any(
            integrations.call(i, "restart_reason", changed, list(batch)) is not None for i in active
        ):
            return False
        patch = cutoff.plan(self.engine, changed, self.front.called_at_start)
        if patch is None:
            return False
        waited = await self.front.hold()
        replaced = [(function.__code__, code) for function, code in patch.patches]
        try:
            cutoff.apply(self.engine, patch)
        except Exception as exc:  # undone already: the normal reload takes over
            logger.debug("patching in place failed, reloading instead: %r", exc)
            return False
        finally:
            held = self.front.release()
        self._retry = set()
        self.reloads += 1
        files = ", ".join(sorted(os.path.relpath(p) for p in batch))
        elapsed = (time.perf_counter() - started) * 1000 - waited
        line = cutoff.describe(patch, files, elapsed, held, self.front.held_noun)
        cleared = frozenset(
            (getattr(cached, "__module__", ""), getattr(cached, "__name__", ""))
            for cached in patch.caches
        )
        self.front.reloaded(
            Report(files, [], {}, elapsed, waited, held, 0, line, replaced, cleared)
        )
        await self._scan(batch, changed)  # lazy imports may have changed
        return True

    async def _scan(self, batch: dict[str, str], changed: list[str]) -> None:
        """The static pass over the edited files (a retried module's among them) and modules new
        since the last pass; off the loop and the GIL."""
        paths = list(batch) + [p for name in changed if (p := _module_path(name)) is not None]
        await self.loop.run_in_executor(None, self.engine.scan, paths)

    def _marked_for_restart(self, order: list[str], changed: list[str]) -> list[str]:
        marked = []
        for name in order:
            module = sys.modules.get(name)
            if module is None:
                continue
            if getattr(module, RESTART_MARKER, False) is True:
                marked.append(name)
            elif name in changed:
                path = getattr(module.__spec__, "origin", None)
                try:
                    with open(path, "rb") as file:  # type: ignore[arg-type]
                        if _MARKER_LINE.search(file.read()):
                            marked.append(name)
                except (OSError, TypeError):
                    pass  # unreadable now: the re-execution reports it
        return marked

    @staticmethod
    def _warn_threads(started: dict[str, list[threading.Thread]]) -> None:
        running = {
            name: alive
            for name, threads in started.items()
            if (alive := [t for t in threads if t.is_alive()])
        }
        if not running:
            return  # started by something else than the modules' code
        where = "; ".join(
            f"{name}: {', '.join(repr(t.name) for t in threads)}"
            for name, threads in running.items()
        )
        logger.warning(
            "re-executed modules started threads that are still running (%s); every reload "
            "starts another: stop the old one in a hmr_serve.on_dispose callback, or start it "
            "once with hmr_serve.keep",
            where,
        )

    def _report(self, failure: executor.ReloadFailed) -> None:
        where = f" ({os.path.relpath(failure.path)})" if failure.path else ""
        error = failure.error
        if isinstance(error, time_limit.ReloadTimeout):
            module, at = failure.module, ""
            for frame, lineno in traceback.walk_tb(error.__traceback__):
                name = frame.f_globals.get("__name__", "")
                if name.startswith(("hmr_serve.", "importlib.")):
                    continue  # the alarm handler, the import system
                at = f" at {os.path.relpath(frame.f_code.co_filename)}:{lineno}"
                if frame.f_code.co_name == "<module>" and name and name != module:
                    # The innermost module running (a new one, maybe).
                    module, where = name, f" ({os.path.relpath(frame.f_code.co_filename)})"
            logger.error(
                "reload abandoned: %s%s was still running after %g s (--reload-timeout)%s; "
                "rolled back, the previous code keeps serving; the next save retries",
                module,
                where,
                error.seconds,
                at,
            )
            return
        sys.stderr.write(user_traceback(error))
        if isinstance(error, SystemExit):
            logger.error(
                "reload failed in %s%s: it called sys.exit(%s) while running; rolled back, the "
                "server keeps running and the previous code keeps serving",
                failure.module,
                where,
                "" if error.code is None else repr(error.code),
            )
            return
        at = error_location(error)
        if at is None:
            logger.error(
                "reload failed in %s%s: %s: %s; the previous code keeps serving",
                failure.module,
                where,
                type(error).__name__,
                error,
            )
        else:
            detail = error.msg if isinstance(error, SyntaxError) and error.msg else error
            logger.error(
                "reload failed in %s with %s at %s: %s; the previous code keeps serving",
                failure.module,
                type(error).__name__,
                at,
                detail,
            )
        self.front.failed(failure)
