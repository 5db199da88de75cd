"""Finding the app: `module:attr`, the factory call, and ASGI-or-WSGI detection."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import os
import sys
import traceback
from types import TracebackType
from typing import Any

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


class AppLoadError(Exception):
    """The app could not be loaded. `details` holds the user's traceback, if there was one."""

    def __init__(self, message: str, details: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


def user_traceback(exc: BaseException) -> str:
    """The traceback without the import machinery's and hmr-serve's own frames."""
    tb: TracebackType | None = exc.__traceback__
    frames = []
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        internal = filename.startswith("<frozen importlib") or filename.startswith(_PACKAGE_DIR)
        if not internal:
            frames.append(tb)
        tb = tb.tb_next
    # Relink the kept frames into a fresh chain so `traceback` prints only those.
    chain: TracebackType | None = None
    for frame_tb in reversed(frames):
        chain = TracebackType(chain, frame_tb.tb_frame, frame_tb.tb_lasti, frame_tb.tb_lineno)
    return "".join(traceback.format_exception(type(exc), exc, chain))


def split_import_string(spec: str) -> tuple[str, str]:
    module, _, attrs = spec.partition(":")
    if not module or not attrs:
        raise AppLoadError(f'Import string "{spec}" must be in format "<module>:<attribute>".')
    return module, attrs


def import_module(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        # Only a missing *target* module is the user's typo; a missing dependency inside it is
        # an ordinary import-time error and keeps its traceback.
        if exc.name is not None and (name == exc.name or name.startswith(exc.name + ".")):
            raise AppLoadError(f'Could not import module "{name}".') from None
        raise AppLoadError(
            f'Error while importing "{name}": {type(exc).__name__}: {exc}', user_traceback(exc)
        ) from None
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise AppLoadError(
            f'Error while importing "{name}": {type(exc).__name__}: {exc}', user_traceback(exc)
        ) from None


def resolve_attribute(module: Any, module_name: str, attrs: str) -> Any:
    obj = module
    for part in attrs.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise AppLoadError(
                f'Attribute "{attrs}" not found in module "{module_name}".'
            ) from None
    return obj


def call_factory(factory: Any, spec: str) -> Any:
    if not callable(factory):
        raise AppLoadError(f'"{spec}" is not callable, so it cannot be used with --factory.')
    try:
        return factory()
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise AppLoadError(
            f'The factory "{spec}" raised {type(exc).__name__}: {exc}', user_traceback(exc)
        ) from None


def load_app(spec: str, factory: bool) -> Any:
    module_name, attrs = split_import_string(spec)
    module = import_module(module_name)
    app = resolve_attribute(module, module_name, attrs)
    if factory:
        app = call_factory(app, spec)
    if not callable(app):
        raise AppLoadError(f'"{spec}" is a {type(app).__name__}, not an ASGI or WSGI app.')
    return app


def detect_interface(app: Any) -> str | None:
    """ "asgi" for ASGI 3 apps, "wsgi" for WSGI apps, None when the shape does not tell."""
    if inspect.isclass(app):
        # An ASGI 3 class: instantiated with (scope, receive, send), then awaited.
        return "asgi" if hasattr(app, "__await__") else None
    target = app if inspect.isroutine(app) else getattr(app, "__call__", None)  # noqa: B004
    if asyncio.iscoroutinefunction(target) or inspect.iscoroutinefunction(target):
        return "asgi"
    try:
        params = [
            p
            for p in inspect.signature(app).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
    except (TypeError, ValueError):
        return None
    return {3: "asgi", 2: "wsgi"}.get(len(params))


def prepend_app_dir(app_dir: str) -> None:
    path = os.path.abspath(app_dir)
    if path not in sys.path:
        sys.path.insert(0, path)
