"""Error pages for requests whose app call failed: the overlay (or a JSON body) instead of a plain
500, for ASGI and WSGI apps. Exceptions that frameworks catch and answer with a 500 themselves
(Flask) are recorded through the framework's signal and shown the same way."""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from typing import Any

from hmr_serve import overlay

#: The environ key a framework-caught exception is recorded under, for the WSGI side.
_ENVIRON_KEY = "hmr_serve.exception"


class ErrorPages:
    def __init__(self, show_to_all: bool) -> None:
        self.show_to_all = show_to_all

    # -- WSGI ---------------------------------------------------------------------------------

    def install_framework_hooks(self) -> None:
        """Flask answers an exception from a view with its own 500: have it tell us which."""
        flask = sys.modules.get("flask")
        if flask is not None:
            flask.got_request_exception.connect(_record_flask_exception, weak=False)

    def wsgi_page(
        self, environ: dict[str, Any], exc: BaseException | None
    ) -> tuple[list[tuple[str, str]], bytes] | None:
        """Called by the WSGI bridge for a 500 (exc None: only if the framework recorded one)."""
        if exc is None:
            exc = environ.pop(_ENVIRON_KEY, None)
            if exc is None:
                return None
        return overlay.request_error(
            exc, environ.get("HTTP_ACCEPT"), environ.get("REMOTE_ADDR"), self.show_to_all
        )

    # -- ASGI ---------------------------------------------------------------------------------

    def asgi_send(self, scope: dict[str, Any], send: Callable[[Any], Awaitable[None]]) -> HeldSend:
        return HeldSend(self, scope, send)


def _record_flask_exception(sender: Any, exception: BaseException, **extra: Any) -> None:
    from flask import request

    request.environ[_ENVIRON_KEY] = exception


class HeldSend:
    """Wraps an ASGI `send`: a complete 500 is kept back until the app call ends, so when the app
    then raises (as Starlette does after sending its plain 500) the error page replaces it."""

    def __init__(
        self, pages: ErrorPages, scope: dict[str, Any], send: Callable[[Any], Awaitable[None]]
    ) -> None:
        self._pages = pages
        self._scope = scope
        self._send = send
        self._held: list[Any] = []
        self._holding = False
        self.started = False

    def __call__(self, message: Any) -> Awaitable[None]:
        kind = message.get("type")
        if kind == "http.response.start":
            self.started = True
            if message.get("status") == 500:
                self._holding = True
                self._held.append(message)
                return _done()
        elif self._holding and kind == "http.response.body":
            self._held.append(message)
            if not message.get("more_body", False):
                return _done()  # whole: wait for the app call to end
            return self._flush()  # a streaming 500 is the app's own business
        return self._send(message)

    async def _flush(self) -> None:
        held, self._held, self._holding = self._held, [], False
        for message in held:
            await self._send(message)

    async def finish(self) -> None:
        """The app returned: send what was held as it was."""
        if self._held:
            await self._flush()

    async def fail(self, exc: BaseException) -> bool:
        """The app raised: answer with the error page if the response can still be replaced."""
        if self.started and not self._holding:
            return False
        self._held, self._holding = [], False
        accept = None
        for name, value in self._scope.get("headers", ()):
            if name == b"accept":
                accept = value.decode("latin-1")
                break
        client = self._scope.get("client")
        headers, body = overlay.request_error(
            exc, accept, client[0] if client else None, self._pages.show_to_all
        )
        raw_headers = [(k.encode(), v.encode()) for k, v in headers]
        raw_headers.append((b"content-length", str(len(body)).encode()))
        await self._send({"type": "http.response.start", "status": 500, "headers": raw_headers})
        await self._send({"type": "http.response.body", "body": body})
        return True


async def _done() -> None:
    return None
