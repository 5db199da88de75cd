"""The server as a front-end of the reload engine (reload/reloader.py): a reload closes the
request gate (running requests get `--reload-drain-timeout`, new ones wait), looks the app up
again where its module re-ran, swaps it in, opens the gate and tells open pages."""

from __future__ import annotations

import functools
import sys
import time
from collections.abc import Callable
from typing import Any

from hmr_serve import browser, integrations
from hmr_serve.asgi import resolve
from hmr_serve.loading import resolve_attribute, split_import_string
from hmr_serve.logs import logger
from hmr_serve.reload import executor
from hmr_serve.reload.reloader import FrontEnd, Report


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


class ServerFrontEnd(FrontEnd):
    held_noun = "request"

    def __init__(
        self,
        server: Any,
        target: AppTarget,
        loop: Any,
        drain_timeout: float,
        restart: Callable[[str], None] | None,
    ) -> None:
        self.server = server
        self.target = target
        self.loop = loop
        self.drain_timeout = drain_timeout
        self.restart = restart
        factory = target.attrs.rsplit(".", 1)[-1] if target.factory else None
        self.called_at_start = frozenset([factory] if factory else [])
        self._new_app: Any = None

    async def hold(self) -> float:
        future = self.loop.create_future()
        done = functools.partial(self.loop.call_soon_threadsafe, resolve, future)
        stuck = self.server.close_gate(self.drain_timeout, done)
        waited = 0.0
        if stuck is None:
            started = time.perf_counter()
            stuck = await future
            waited = (time.perf_counter() - started) * 1000
        if stuck:
            logger.warning(
                "%d request(s) still running after %.1f s; reloading anyway",
                stuck,
                self.drain_timeout,
            )
        return waited

    def release(self) -> int:
        return self.server.open_gate()

    def refresh(self, reexecuted: set[str]) -> None:
        self._new_app = self.target.refresh(reexecuted)

    def committed(self) -> None:
        new_app, self._new_app = self._new_app, None
        if new_app is not None and new_app is not self.target.app:
            integrations.call_all(integrations.active(), "app_replaced", self.target.app, new_app)
            self.server.set_app(new_app)
            self.target.app = new_app

    def reloaded(self, report: Report) -> None:
        logger.info("%s", report.line)
        browser.reloaded()

    def failed(self, failure: executor.ReloadFailed) -> None:
        browser.reload_failed(failure.module, failure.path, failure.error)

    def files_changed(self, paths: list[str]) -> str | None:
        pages = browser.files_changed(paths)
        return f"{pages} page{'s' if pages != 1 else ''} refreshed"
