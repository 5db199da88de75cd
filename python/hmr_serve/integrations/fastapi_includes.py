"""Every `APIRouter.include_router` call, recorded once the Starlette integration is active (the
first first-party module to finish importing after FastAPI did installs the wrapper), so that a
router module that re-ran can have its new router put in place of the old one in every router
and app that included it, exactly as the includes that built them would have.

FastAPI includes routers in one of two ways, depending on its version:
- copies (up to 0.12x): `include_router` appends to the parent a copy of each of the child's
  routes, built from the route, the child and the include's arguments. The record keeps, for each
  copy, its source route and its attributes right after the include, so that a later change to
  it (a loop over `app.routes` setting tags or operation ids) can be told apart;
- lazy entries (newer): `include_router` appends one `_IncludedRouter` entry holding the child
  and the include's context; the routes are derived on demand and cached by a routes version.

Records live on the parent router itself (attribute `_hmr_serve_includes`), so they go away with
it; a weak set of parents finds them by child."""

from __future__ import annotations

import functools
import sys
import weakref
from dataclasses import dataclass, field
from typing import Any

_RECORDS = "_hmr_serve_includes"

# What include_router reads from the parent, and from the child besides its routes (attributes a
# FastAPI version lacks read as _MISSING on both sides, so they always compare equal).
_PARENT_FIELDS = (
    "prefix",
    "tags",
    "dependencies",
    "default_response_class",
    "responses",
    "callbacks",
    "deprecated",
    "include_in_schema",
    "generate_unique_id_function",
    "dependency_overrides_provider",
    "route_class",
    "strict_content_type",
    "max_body_size",
    "form_limits",
)
_CHILD_FIELDS = (
    "default_response_class",
    "generate_unique_id_function",
    "strict_content_type",
    "max_body_size",
    "form_limits",
)
_MISSING = object()
_SCALARS = (str, bytes, int, float, bool, type(None))


@dataclass(eq=False)
class Copy:
    """One route a copying include_router added to the parent, and where it came from."""

    source: Any
    produced: Any
    state: dict[str, Any]  # the produced route's attributes right after the include


@dataclass(eq=False)
class Include:
    child: Any
    kwargs: dict[str, Any]
    module: str | None  # whose top-level code was running (None: not while a module imported)
    line: int  # the line of that module's top-level statement
    parent_state: tuple[Any, ...]
    child_state: tuple[Any, ...]
    exact: bool = True  # False: the call did not append what a replacement could rely on
    entry: Any = None  # lazy FastAPI: the `_IncludedRouter` the call appended
    entry_state: dict[str, Any] = field(default_factory=dict)  # its public attributes then
    copies: list[Copy] = field(default_factory=list)  # copying FastAPI


# id -> weak reference of every router with records (routers are unhashable: no WeakSet).
_parents: dict[int, weakref.ref[Any]] = {}
_original: Any = None


def lazy() -> bool:
    """Whether this FastAPI includes routers as lazy entries rather than copies."""
    from fastapi import routing

    return hasattr(routing, "_IncludedRouter")


def original_include_router() -> Any:
    """FastAPI's own include_router (records nothing): replacements call it directly."""
    return _original


def installed() -> bool:
    return _original is not None


def install() -> None:
    """Wraps `APIRouter.include_router` (once; FastAPI.include_router goes through it)."""
    global _original
    if _original is not None:
        return
    from fastapi import routing

    original = routing.APIRouter.include_router
    if getattr(original, "_hmr_serve", False):  # a second integration object, same process
        _original = original.__wrapped__
        return
    copying = not lazy()

    @functools.wraps(original)
    def include_router(self: Any, router: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            before = _before(self, router, copying)
        except Exception:  # recording must never break the app: this include stays unknown
            before = None
        result = original(self, router, *args, **kwargs)
        if before is not None:
            try:
                _record(self, router, args, kwargs, before)
            except Exception:
                pass
        return result

    include_router._hmr_serve = True  # type: ignore[attr-defined]
    routing.APIRouter.include_router = include_router  # type: ignore[method-assign]
    _original = original


def _before(parent: Any, child: Any, copying: bool) -> tuple[Any, ...]:
    sources = copyable(child.routes) if copying else None
    return len(parent.routes), sources, state_of(parent, _PARENT_FIELDS), child_state(child)


def _record(
    parent: Any, child: Any, args: tuple[Any, ...], kwargs: dict[str, Any], before: tuple[Any, ...]
) -> None:
    start, sources, parent_state, child_fields = before
    module, line = _running_module()
    include = Include(child, dict(kwargs), module, line, parent_state, child_fields)
    include.exact = not args
    appended = parent.routes[start:]
    if sources is not None:
        if len(appended) == len(sources):
            include.copies = [
                Copy(s, p, route_state(p)) for s, p in zip(sources, appended, strict=True)
            ]
        else:
            include.exact = False
    elif len(appended) == 1 and getattr(appended[0], "original_router", None) is child:
        include.entry = appended[0]
        include.entry_state = entry_state(appended[0])
    else:
        include.exact = False
    records(parent).append(include)
    key = id(parent)
    if key not in _parents:
        _parents[key] = weakref.ref(parent, functools.partial(_dropped, key))


def _dropped(key: int, _: Any) -> None:
    _parents.pop(key, None)


def records(parent: Any) -> list[Include]:
    """The includes into `parent`, in call order (the list is the parent's own)."""
    found = vars(parent).get(_RECORDS)
    if found is None:
        found = vars(parent)[_RECORDS] = []
    return found


def includes_of(child: Any) -> list[tuple[Any, Include]]:
    """(parent, include) for every recorded include of `child`."""
    found = []
    for ref in list(_parents.values()):
        parent = ref()
        if parent is not None:
            found += [(parent, i) for i in vars(parent).get(_RECORDS, ()) if i.child is child]
    return found


def forget(router: Any) -> None:
    """A copy of a router must not share its records."""
    vars(router).pop(_RECORDS, None)


def copyable(routes: list[Any]) -> list[Any]:
    """The routes a copying include_router copies (it skips mounts and hosts)."""
    from fastapi.routing import APIWebSocketRoute
    from starlette.routing import Route, WebSocketRoute

    return [r for r in routes if isinstance(r, (Route, APIWebSocketRoute, WebSocketRoute))]


def _running_module() -> tuple[str | None, int]:
    """The innermost module whose top-level code is running, and its line."""
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_name == "<module>":
            return frame.f_globals.get("__name__"), frame.f_lineno or 0
        frame = frame.f_back
    return None, 0


# -- snapshots compared later ------------------------------------------------------------------


def shallow(value: Any) -> Any:
    """`value`, or a copy of it one level deep when it is a container (so that changing what it
    holds in place shows)."""
    kind = type(value)
    return kind(value) if kind in (list, dict, set) else value


def entry_state(entry: Any) -> dict[str, Any]:
    """An included-router entry's own attributes (its caches left out)."""
    return {k: shallow(v) for k, v in vars(entry).items() if not k.startswith("_")}


def state_of(obj: Any, names: tuple[str, ...]) -> tuple[Any, ...]:
    return tuple(shallow(getattr(obj, name, _MISSING)) for name in names)


def route_state(route: Any) -> dict[str, Any]:
    return {name: shallow(value) for name, value in vars(route).items()}


def same(a: Any, b: Any) -> bool:
    """The same object, an equal scalar, or containers of the same kind holding the same."""
    if a is b:
        return True
    if type(a) is not type(b):
        return False
    if isinstance(a, _SCALARS):
        return bool(a == b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(v, b[k]) for k, v in a.items())
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, (set, frozenset)):
        return a == b
    return False


def child_state(child: Any) -> tuple[Any, ...]:
    return state_of(child, _CHILD_FIELDS)


def parent_unchanged(parent: Any, include: Include) -> bool:
    return same(state_of(parent, _PARENT_FIELDS), include.parent_state)


def child_unchanged(child: Any, include: Include) -> bool:
    return same(state_of(child, _CHILD_FIELDS), include.child_state)
