"""State that outlives a hot reload: `keep` values and `on_dispose` callbacks, per module.

A hot reload re-runs a module's code in the same module object, so anything its top level builds
(a connection pool, a loaded model, a background thread) would be built again on every save.
`keep` hands the previous execution's value back instead; `on_dispose` lets the module clean up
what it started before it runs again. Both are keyed by the calling module's `__name__`, taken
from the caller's globals, so they need no setup and do nothing surprising without hmr-serve: a
module that runs once calls each factory once and never has its callbacks run.

See docs/STATE_API.md for the user-facing description.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Any, TypeVar, overload

from hmr_serve.logs import logger

T = TypeVar("T")

# Module name -> key -> value. Kept for the life of the process: a key that a new version of the
# module stops using still holds its value, so bringing the line back finds it again.
_kept: dict[str, dict[str, Any]] = {}
# Module name -> callbacks registered since the module's last execution started, in order.
_disposers: dict[str, list[Callable[[], Any]]] = {}
# `keep` may also be called lazily from request handlers on several threads at once: the factory
# must still run once. One lock per key, so a slow factory holds up only its own key.
_locks: dict[tuple[str, str], threading.Lock] = {}
_locks_lock = threading.Lock()


def _caller_module(depth: int) -> str:
    name = sys._getframe(depth + 1).f_globals.get("__name__")
    if not isinstance(name, str):
        raise RuntimeError("hmr_serve.keep/on_dispose must be called from a module's code")
    return name


def _keep(module: str, key: str, factory: Callable[[], T]) -> T:
    store = _kept.setdefault(module, {})
    try:
        return store[key]
    except KeyError:
        pass
    with _locks_lock:
        lock = _locks.setdefault((module, key), threading.Lock())
    with lock:
        try:
            return store[key]
        except KeyError:
            pass
        # Stored only once the factory returned: a failing factory is retried next time.
        value = factory()
        store[key] = value
        return value


@overload
def keep(key: Callable[[], T], factory: None = None) -> T: ...


@overload
def keep(key: str, factory: Callable[[], T]) -> T: ...


def keep(key: str | Callable[[], T], factory: Callable[[], T] | None = None) -> T:
    """The value kept under `key` for the calling module, or `factory()` the first time.

    `keep("pool", make_pool)` calls `make_pool()` the first time the module runs and returns the
    same object on every hot reload of the module after that. As a decorator on a zero-argument
    function, `@keep def model(): ...` binds `model` to the function's result, kept under the
    function's name. Editing the factory does not call it again; change the key for that.
    """
    if factory is None:
        if isinstance(key, str) or not callable(key):
            raise TypeError("keep(key, factory), or @keep on a zero-argument function")
        func = key
        module = getattr(func, "__module__", None) or _caller_module(1)
        return _keep(module, func.__name__, func)
    if not isinstance(key, str):
        raise TypeError(f"keep() key must be a str, not {type(key).__name__}")
    return _keep(_caller_module(1), key, factory)


def on_dispose(callback: Callable[[], Any]) -> Callable[[], Any]:
    """Runs `callback()` right before the calling module is next re-executed by a hot reload.

    Callbacks run in reverse order of registration; one that raises is logged and the others
    still run. Returns `callback`, so it also works as a decorator.
    """
    if not callable(callback):
        raise TypeError("on_dispose() needs a callable")
    _disposers.setdefault(_caller_module(1), []).append(callback)
    return callback


# -- used by the reload executor ---------------------------------------------------------------


def dispose(module: str) -> int:
    """Runs and forgets the module's dispose callbacks, newest first. Returns how many ran."""
    callbacks = _disposers.pop(module, [])
    for callback in reversed(callbacks):
        try:
            callback()
        except Exception as exc:  # one broken cleanup must not stop the reload or the others
            logger.error(
                "dispose callback %s of %s failed: %s: %s",
                getattr(callback, "__qualname__", repr(callback)),
                module,
                type(exc).__name__,
                exc,
                exc_info=exc,
            )
    return len(callbacks)


def forget(module: str) -> None:
    """The module's source file is gone: clean up after it and drop what it kept."""
    dispose(module)
    _kept.pop(module, None)
    with _locks_lock:
        for lock_key in [k for k in _locks if k[0] == module]:
            del _locks[lock_key]
