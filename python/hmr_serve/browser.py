"""What open browser pages learn about reloads: the reloader reports here, the server pushes it
to the pages (live reload events) and shows a failing reload's overlay in every HTML page until a
reload succeeds. Without a server attached (tests, plain imports) the reports go nowhere."""

from __future__ import annotations

import json
from typing import Any

from hmr_serve import overlay

_server: Any = None
_error_pages = False


def attach(server: Any, error_pages: bool) -> None:
    global _server, _error_pages
    _server, _error_pages = server, error_pages


def reload_failed(module: str, path: str | None, error: BaseException) -> None:
    if _server is None:
        return
    html = overlay.reload_failure_fragment(module, path, error) if _error_pages else None
    _server.set_reload_failure(html)
    _server.send_reload_event("failed", json.dumps({"html": html} if html else {}))


def reloaded() -> None:
    """A reload succeeded: pages refresh (and lose the failure banner)."""
    if _server is None:
        return
    _server.set_reload_failure(None)
    _server.send_reload_event("reload", "{}")


def files_changed(paths: list[str]) -> int:
    """Templates and other non-module files changed: pages refresh, nothing re-ran. Returns how
    many pages were told to."""
    if _server is None or not paths:
        return 0
    return int(_server.send_reload_event("reload", "{}"))
