"""The Python half of the ASGI bridge: runs each request's app call as a task on the loop."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Coroutine
from typing import Any

from hmr_serve.error_pages import ErrorPages
from hmr_serve.logs import log_exception, logger


def resolve(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    """Completes a future from Rust, unless the app stopped waiting for it (cancelled)."""
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class Dispatcher:
    """Rust calls `dispatch` on the loop thread once per request."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        fresh_context: bool = False,
        error_pages: ErrorPages | None = None,
    ) -> None:
        self._loop = loop
        self._fresh_context = fresh_context  # --reset-contextvars
        self._error_pages = error_pages
        # asyncio keeps only weak references to tasks: hold them, by protocol, until they finish.
        # Each task removes itself as its last step: a done callback would cost a loop round
        # per request, and asyncio.current_task() a getpid() system call.
        self._tasks: dict[Any, asyncio.Task[Any]] = {}

    @property
    def fresh_context(self) -> bool:
        return self._fresh_context

    def dispatch(self, app: Any, scope: dict[str, Any], protocol: Any) -> None:
        run = self._app_call(app, scope, protocol)
        if self._fresh_context:
            # The task copies the context current at creation: an empty one here.
            task = contextvars.Context().run(self._loop.create_task, run)
        else:
            task = self._loop.create_task(run)
        self._tasks[protocol] = task

    async def run(self, app: Any, scope: dict[str, Any], protocol: Any) -> None:
        """The same as a coroutine, for a bridge that schedules it itself (the
        pyo3-async-runtimes one, a Cargo feature)."""
        task = asyncio.current_task()
        if task is not None:
            self._tasks[protocol] = task
        await self._app_call(app, scope, protocol)

    def _app_call(
        self, app: Any, scope: dict[str, Any], protocol: Any
    ) -> Coroutine[Any, Any, None]:
        if self._error_pages is not None and scope["type"] == "http":
            return _run_with_error_page(app, scope, protocol, self._error_pages, self._tasks)
        return _run(app, scope, protocol, self._tasks)

    async def cancel_all(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        # A task cancelled before its first step never ran the step that removes it.
        self._tasks.clear()


async def _run(
    app: Any, scope: dict[str, Any], protocol: Any, tasks: dict[Any, asyncio.Task[Any]]
) -> None:
    try:
        await app(scope, protocol.receive, protocol.send)
    except asyncio.CancelledError:
        protocol.complete(True)
        raise
    except BaseException as exc:
        log_exception(exc, "Exception in ASGI application")
        protocol.complete(True)
    else:
        complaint = protocol.complete(False)
        if complaint:
            logger.error(complaint)
    finally:
        tasks.pop(protocol, None)


async def _run_with_error_page(
    app: Any,
    scope: dict[str, Any],
    protocol: Any,
    pages: ErrorPages,
    tasks: dict[Any, asyncio.Task[Any]],
) -> None:
    send = pages.asgi_send(scope, protocol.send)
    try:
        await app(scope, protocol.receive, send)
        await send.finish()
    except asyncio.CancelledError:
        protocol.complete(True)
        raise
    except BaseException as exc:
        log_exception(exc, "Exception in ASGI application")
        try:
            answered = await send.fail(exc)
        except Exception as page_exc:  # the page must never hide the app's own error
            log_exception(page_exc, "Cannot render the error page")
            answered = False
        protocol.complete(not answered)
    else:
        complaint = protocol.complete(False)
        if complaint:
            logger.error(complaint)
    finally:
        tasks.pop(protocol, None)
