"""Turns a batch of changed files into one reload: closure, gate closed, modules re-executed,
app looked up again, gate opened. Runs on the event loop thread; batches that arrive during a
reload are queued for right after it."""

from __future__ import annotations

import asyncio
import functools
import os
import re
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from hmr_serve import browser, integrations
from hmr_serve.asgi import resolve
from hmr_serve.loading import resolve_attribute, split_import_string, user_traceback
from hmr_serve.logs import error_location, logger
from hmr_serve.reload import cutoff, executor, time_limit
from hmr_serve.reload.tracker import ImportTracker

#: A module that sets this to True at top level is never hot-reloaded: the server restarts.
RESTART_MARKER = "__hmr_restart__"
# The marker in a changed file, before the edit that added it ever ran.
_MARKER_LINE = re.compile(rb"^__hmr_restart__\s*(?::[^=\n]*)?=\s*True\b", re.MULTILINE)


def _module_path(name: str) -> str | None:
    spec = getattr(sys.modules.get(name), "__spec__", None)
    return getattr(spec, "origin", None)


class AppTarget:
    """How to find the app again after its module ran anew."""

    def __init__(self, spec: str, factory: bool, app: Any) -> None:
        self.module, self.attrs = split_import_string(spec)
        self.factory = factory
        self.app = app

    def refresh(self, reexecuted: set[str]) -> Any:
        if self.module not in reexecuted:
            return self.app
        obj = resolve_attribute(sys.modules[self.module], self.module, self.attrs)
        return obj() if self.factory else obj


class Reloader:
    def __init__(
        self,
        server: Any,
        engine: Any,
        tracker: ImportTracker,
        target: AppTarget,
        loop: asyncio.AbstractEventLoop,
        drain_timeout: float,
        restart: Callable[[str], None] | None = None,
        timeout: float = 0,
    ) -> None:
        self.server = server
        self.engine = engine
        self.tracker = tracker
        self.target = target
        self.loop = loop
        self.drain_timeout = drain_timeout
        self.restart = restart  # None: this process can only hot-reload
        self.timeout = timeout  # seconds the modules of one reload may run (0: no limit)
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

    async def _close_gate(self) -> None:
        future = self.loop.create_future()
        done = functools.partial(self.loop.call_soon_threadsafe, resolve, future)
        stuck = self.server.close_gate(self.drain_timeout, done)
        if stuck is None:
            stuck = await future
        if stuck:
            logger.warning(
                "%d request(s) still running after %.1f s; reloading anyway",
                stuck,
                self.drain_timeout,
            )

    async def _reload(self, batch: dict[str, str]) -> None:
        started = time.perf_counter()
        changed, deleted, others = self._classify(batch)
        active = integrations.active()
        done = integrations.call_all(active, "files_changed", others) if others else []
        for name in self._retry:  # a failed reload's modules, deleted ones included
            if name not in changed and name not in deleted:
                (changed if os.path.exists(_module_path(name) or "") else deleted).append(name)
        if not changed and not deleted:
            browser.files_changed(others)  # templates: nothing re-runs, pages refresh
            if others:  # what each integration did, e.g. "template caches cleared"
                what = [d if isinstance(d, str) else "handled" for d in done if d]
                files = ", ".join(sorted(os.path.relpath(p) for p in others))
                logger.info("%s changed: %s", files, ", ".join([*what, "pages refreshed"]))
            return
        if not deleted and await self._patch_in_place(changed, batch, active, started):
            return
        order = [n for n in self.engine.closure(changed + deleted) if n not in deleted]
        files = ", ".join(sorted(os.path.relpath(p) for p in batch))
        reason = next(
            (
                r
                for i in active
                if (r := integrations.call(i, "restart_reason", order, list(batch))) is not None
            ),
            None,
        )
        if reason is None:
            marked = self._marked_for_restart(order, changed)
            if marked:
                verb = "sets" if len(marked) == 1 else "set"
                reason = f"{', '.join(marked)} {verb} {RESTART_MARKER} = True"
        if reason is not None:
            if self.restart is not None:
                self.restart(f"{reason} ({files})")
                return
            logger.warning("%s; restart unavailable, trying a hot reload anyway", reason)
        await self._close_gate()
        failure = None
        count = 0
        new_threads: dict[str, list[threading.Thread]] = {}
        try:
            new_app = None

            def finish() -> None:
                nonlocal new_app
                new_app = self.target.refresh(set(order))

            integrations.call_all(active, "before_execute", order)
            threads_before = threading.active_count()

            def executed(name: str, module: Any) -> None:
                integrations.call_all(active, "module_executed", name, module)

            try:
                outcome = executor.run(
                    self.engine, self.tracker, deleted, order, finish, executed, self.timeout
                )
            except executor.ReloadFailed:
                integrations.call_all(active, "after_execute", order, False)
                raise
            integrations.call_all(active, "after_execute", order, True)
            if new_app is not self.target.app:
                integrations.call_all(active, "app_replaced", self.target.app, new_app)
                self.server.set_app(new_app)
                self.target.app = new_app
            self.tracker.sweep()
            count = outcome.count
            if threading.active_count() > threads_before:
                new_threads = outcome.threads
        except executor.ReloadFailed as exc:
            failure = exc
        finally:
            held = self.server.open_gate()
        if failure is not None:
            self.failures += 1
            self._retry = set(changed) | set(deleted)
            self._report(failure)
            return
        self._retry = set()
        self.reloads += 1
        elapsed = (time.perf_counter() - started) * 1000
        logger.info(
            "reloaded %d module%s in %.1f ms (held %d request%s) after changes to %s",
            count,
            "" if count == 1 else "s",
            elapsed,
            held,
            "" if held == 1 else "s",
            files,
        )
        browser.reloaded()
        if new_threads:
            self._warn_threads(new_threads)
        await self._scan(batch, changed)

    async def _patch_in_place(
        self, changed: list[str], batch: dict[str, str], active: list[Any], started: float
    ) -> bool:
        """Early cutoff (reload/cutoff.py): an edit of function bodies only patches the live
        functions, with the gate closed. False: the normal reload must run."""
        if any(
            integrations.call(i, "restart_reason", changed, list(batch)) is not None for i in active
        ):
            return False
        factory = self.target.attrs.rsplit(".", 1)[-1] if self.target.factory else None
        patch = cutoff.plan(self.engine, changed, frozenset([factory] if factory else []))
        if patch is None:
            return False
        await self._close_gate()
        try:
            cutoff.apply(self.engine, patch)
        except Exception as exc:  # undone already: the normal reload takes over
            logger.debug("patching in place failed, reloading instead: %r", exc)
            return False
        finally:
            held = self.server.open_gate()
        self._retry = set()
        self.reloads += 1
        files = ", ".join(sorted(os.path.relpath(p) for p in batch))
        elapsed = (time.perf_counter() - started) * 1000
        logger.info("%s", cutoff.describe(patch, files, elapsed, held))
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
        browser.reload_failed(failure.module, failure.path, failure.error)
