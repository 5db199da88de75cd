"""The ASGI lifespan protocol: startup before the first request, shutdown after the last."""

from __future__ import annotations

import asyncio
from typing import Any

from hmr_serve.logs import log_exception, logger


class Lifespan:
    def __init__(self, app: Any, mode: str) -> None:
        self.app = app
        self.mode = mode  # "auto": an app that rejects lifespan is fine; "on": it must support it
        self.state: dict[str, Any] = {}
        self._receive_queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._startup_done = asyncio.Event()
        self._shutdown_done = asyncio.Event()
        self._failed: str | None = None
        self._unsupported = False
        self._task: asyncio.Task[None] | None = None

    async def startup(self) -> bool:
        """Runs the app's startup. False means the server must not start."""
        logger.info("Waiting for application startup.")
        self._task = asyncio.get_running_loop().create_task(self._main())
        await self._receive_queue.put({"type": "lifespan.startup"})
        await self._startup_done.wait()
        if self._failed is not None or (self._unsupported and self.mode == "on"):
            logger.error("Application startup failed. Exiting.")
            return False
        if not self._unsupported:
            logger.info("Application startup complete.")
        return True

    async def cancel(self) -> None:
        """Stops the app's lifespan task (a signal arrived while it was starting up)."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def shutdown(self) -> None:
        if self._task is None or self._unsupported or self._task.done():
            return
        logger.info("Waiting for application shutdown.")
        await self._receive_queue.put({"type": "lifespan.shutdown"})
        await self._shutdown_done.wait()
        if self._failed is None:
            logger.info("Application shutdown complete.")
        else:
            logger.error("Application shutdown failed.")

    async def _main(self) -> None:
        scope = {
            "type": "lifespan",
            "asgi": {"version": "3.0", "spec_version": "2.0"},
            "state": self.state,
        }
        try:
            await self.app(scope, self._receive, self._send)
        except BaseException as exc:
            if not self._startup_done.is_set() and self.mode == "auto":
                self._unsupported = True
                logger.info("ASGI 'lifespan' protocol appears unsupported.")
            elif isinstance(exc, asyncio.CancelledError):
                pass
            else:
                self._failed = self._failed or str(exc)
                log_exception(exc, "Exception in 'lifespan' protocol")
        finally:
            # An app that simply returns (a raw app ignoring lifespan scopes) is not a failure.
            self._startup_done.set()
            self._shutdown_done.set()

    async def _receive(self) -> dict[str, Any]:
        return await self._receive_queue.get()

    async def _send(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "lifespan.startup.complete":
            self._startup_done.set()
        elif kind == "lifespan.startup.failed":
            self._failed = message.get("message") or "startup failed"
            if message.get("message"):
                logger.error(message["message"])
            self._startup_done.set()
        elif kind == "lifespan.shutdown.complete":
            self._shutdown_done.set()
        elif kind == "lifespan.shutdown.failed":
            self._failed = message.get("message") or "shutdown failed"
            if message.get("message"):
                logger.error(message["message"])
            self._shutdown_done.set()
        else:
            raise RuntimeError(f"Unexpected ASGI lifespan message {kind!r}.")
