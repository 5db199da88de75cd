"""Router modules re-ran: their new routers take the old ones' places in the live app, instead of
the module that includes them re-running (and, its router being new, every module above it: on a
large app every router is included again, which takes seconds).

`absorb(importer, changes)` does it when every changed name is an APIRouter, old and new, that
`importer` included (recorded by fastapi_includes.py) into routers that reach a live app, and
`importer`'s source uses them for nothing else (router_sources.py). In each router that holds
routes derived from the old router, those are replaced at the same place by what the recorded
`include_router` call, made again with the same arguments, derives from the new one; on copying
FastAPI versions the replacement climbs every include above (app <- api router <- users router),
and route loops of the including modules run over the new copies. Anything that cannot be
reproduced exactly (a route table read or changed since, startup handlers, an include made
before recording started) leaves the importer to re-run."""

from __future__ import annotations

import copy
import dataclasses
import sys
from collections.abc import Callable
from typing import Any

from hmr_serve.integrations import fastapi_includes as includes
from hmr_serve.integrations import router_sources
from hmr_serve.integrations.fastapi_includes import Copy, Include, route_state, same, shallow
from hmr_serve.logs import logger


class CannotReproduce(Exception):
    """What a fresh process would build cannot be reproduced in place: the importer re-runs."""


class Undo:
    """The changes made so far, undone in reverse order when called."""

    def __init__(self) -> None:
        self._steps: list[Callable[[], None]] = []

    def step(self, undo: Callable[[], None]) -> None:
        self._steps.append(undo)

    def set_items(self, items: list[Any], new: list[Any]) -> None:
        saved = list(items)
        self._steps.append(lambda: items.__setitem__(slice(None), saved))
        items[:] = new

    def setattr(self, obj: Any, name: str, value: Any) -> None:
        saved = getattr(obj, name)
        self._steps.append(lambda: setattr(obj, name, saved))
        setattr(obj, name, value)

    def setitem(self, mapping: dict[str, Any], key: str, value: Any) -> None:
        saved = mapping[key]
        self._steps.append(lambda: mapping.__setitem__(key, saved))
        mapping[key] = value

    def __call__(self) -> None:
        while self._steps:
            self._steps.pop()()


def can_absorb(importer: str, names: dict[str, frozenset[str]]) -> bool:
    """Before the reload: whether a change of these names that `importer` read could be absorbed,
    judged from their present values (the routers about to be replaced)."""
    module = sys.modules.get(importer)
    if module is None:
        return False
    try:
        olds = [getattr(sys.modules[m], name) for m, listed in names.items() for name in listed]
    except (KeyError, AttributeError):
        return False
    if not _may_absorb(importer, module, olds, {m: set(listed) for m, listed in names.items()}):
        return False
    for old in olds:
        direct = includes.includes_of(old)
        if not direct or old.on_startup or old.on_shutdown:
            return False
        if any(include.module != importer or not include.exact for _, include in direct):
            return False
        found = router_sources.facts(module)
        if found is None or found.reads_routes:
            return False
    return True


def absorb(importer: str, changes: dict[str, dict[str, tuple[Any, Any]]]) -> Undo | None:
    """Integration.absorb for FastAPI: see the module docstring."""
    module = sys.modules.get(importer)
    if module is None:
        return None
    swaps = [pair for names in changes.values() for pair in names.values()]
    changed = {name: set(names) for name, names in changes.items()}
    if not _may_absorb(importer, module, [old for old, _ in swaps], changed):
        return None
    from fastapi import APIRouter

    if any(not isinstance(new, APIRouter) or new is old for old, new in swaps):
        return None
    undo = Undo()
    try:
        replacer = _Replacer(importer, undo)
        for old, new in swaps:
            replacer.swap(old, new)
        replacer.finish()
    except CannotReproduce as exc:
        undo()
        logger.debug("%s re-runs: %s", importer, exc)
        return None
    except BaseException:
        undo()
        raise
    return undo


def _may_absorb(importer: str, module: Any, olds: list[Any], changed: dict[str, set[str]]) -> bool:
    """The checks that need no new value: every changed name a router included while FastAPI's
    includes were recorded, used by the importer's source only as include_router's argument,
    and held by none of its names."""
    if not olds or not includes.installed() or "fastapi" not in sys.modules:
        return False
    from fastapi import APIRouter

    if any(not isinstance(old, APIRouter) for old in olds):
        return False
    if not router_sources.includes_only(module, changed):
        logger.debug("%s re-runs: it uses the changed routers otherwise than included", importer)
        return False
    if _holds(vars(module), {id(old) for old in olds}):
        logger.debug("%s re-runs: one of its names holds a changed router", importer)
        return False
    return True


def _holds(namespace: dict[str, Any], ids: set[int]) -> bool:
    """Whether a name, or a container a name holds, refers to one of the objects."""
    for value in namespace.values():
        if id(value) in ids:
            return True
        kind = type(value)
        if kind is dict:
            value = value.values()
        elif kind not in (list, tuple, set, frozenset):
            continue
        if any(id(item) in ids for item in value):
            return True
    return False


class _Replacer:
    def __init__(self, importer: str, undo: Undo) -> None:
        self.importer = importer
        self.undo = undo
        self.copying = not includes.lazy()
        self.include_router = includes.original_include_router()
        self.touched: list[Any] = []  # routers whose routes changed

    def swap(self, old: Any, new: Any) -> None:
        if old.on_startup or old.on_shutdown or new.on_startup or new.on_shutdown:
            raise CannotReproduce("a changed router has startup or shutdown handlers")
        direct = includes.includes_of(old)
        if not direct:
            raise CannotReproduce("a changed router was included before hmr-serve recorded it")
        for parent, include in direct:
            if include.module != self.importer:
                raise CannotReproduce(f"a changed router is also included by {include.module}")
            self._check(parent, include)
            if self.copying:
                self._swap_copies(parent, include, new)
            else:
                self._swap_entry(parent, include, new)

    def finish(self) -> None:
        from fastapi import FastAPI

        apps: dict[int, Any] = {}
        seen: set[int] = set()
        pending = list(self.touched)
        while pending:
            router = pending.pop()
            if id(router) in seen:
                continue
            seen.add(id(router))
            app = getattr(router, "dependency_overrides_provider", None)
            if isinstance(app, FastAPI) and app.router is router:
                apps[id(app)] = app
            pending += [parent for parent, _ in includes.includes_of(router)]
        if not apps:
            raise CannotReproduce("the changed routers reach no app")
        for app in apps.values():
            self.undo.setattr(app, "openapi_schema", None)

    # -- checks --------------------------------------------------------------------------------

    def _check(self, parent: Any, include: Include) -> None:
        """The include can be made again as it was: same arguments, same parent, and a module
        that read no route table while it imported (none of it would be read again)."""
        if not include.exact:
            raise CannotReproduce("an include_router call did what was not recorded")
        if not includes.parent_unchanged(parent, include):
            raise CannotReproduce("a router changed since it included a changed one")
        if include.module is None:
            return  # made at run time (an app factory): nothing to read again
        found = router_sources.facts(sys.modules.get(include.module))  # type: ignore[arg-type]
        if found is None or found.reads_routes:
            raise CannotReproduce(f"{include.module} reads a route table while it imports")

    # -- lazy FastAPI: one entry per include --------------------------------------------------

    def _swap_entry(self, parent: Any, include: Include, new: Any) -> None:
        routes = parent.routes
        index = _index(routes, include.entry)
        if index is None or include.entry.original_router is not include.child:
            raise CannotReproduce("an included router's entry moved")
        if not same(includes.entry_state(include.entry), include.entry_state):
            raise CannotReproduce("an included router's entry was changed after the include")
        before = parent._get_routes_version()
        appended = self._include(parent, new, include.kwargs)
        if len(appended) != 1 or getattr(appended[0], "original_router", None) is not new:
            raise CannotReproduce("include_router did not add one entry")
        items = list(routes)
        items[index] = appended[0]
        # Undone last: the old entry back in place, its version above any seen since.
        seen = [before]
        self.undo.step(lambda: _raise_version(parent, seen[0]))
        self.undo.set_items(routes, items)
        _raise_version(parent, before)
        seen[0] = parent._get_routes_version()
        self._replace_record(
            parent,
            include,
            dataclasses.replace(
                include,
                child=new,
                entry=appended[0],
                entry_state=includes.entry_state(appended[0]),
                child_state=includes.child_state(new),
            ),
        )
        self.touched.append(parent)
        self._check_above(parent, set())

    def _check_above(self, router: Any, seen: set[int]) -> None:
        """The routes of the includes above change too (derived on demand): the modules that
        made them must not have read them while importing either."""
        for parent, include in includes.includes_of(router):
            if id(parent) not in seen:
                seen.add(id(parent))
                self._check(parent, include)
                self._check_above(parent, seen)

    # -- copying FastAPI: one copy per route, climbing the includes above -----------------------

    def _swap_copies(self, parent: Any, include: Include, new: Any) -> None:
        old_block = [c.produced for c in include.copies]
        if not old_block:
            raise CannotReproduce("a changed router had no routes (their place is unknown)")
        start = _locate(parent.routes, old_block)
        loops = self._loops(parent, include, include.copies)
        produced = self._include(parent, new, include.kwargs)
        sources = includes.copyable(new.routes)
        if len(produced) != len(sources):
            raise CannotReproduce("include_router copied an unexpected number of routes")
        copies = [Copy(s, p, route_state(p)) for s, p in zip(sources, produced, strict=True)]
        self._run_loops(include, loops, old_block, produced)
        self._splice(parent.routes, start, len(old_block), produced)
        self._replace_record(
            parent,
            include,
            dataclasses.replace(
                include,
                child=new,
                copies=copies,
                child_state=includes.child_state(new),
            ),
        )
        self.touched.append(parent)
        self._climb(parent, old_block, produced)

    def _climb(self, router: Any, old_block: list[Any], new_block: list[Any]) -> None:
        """`router`'s routes `old_block` became `new_block`: so do their copies above."""
        old_ids = {id(route) for route in old_block}
        for parent, include in includes.includes_of(router):
            hits = [i for i, c in enumerate(include.copies) if id(c.source) in old_ids]
            if not hits:
                continue  # included before those routes were added to `router`
            first, last = hits[0], hits[-1]
            if len(hits) != len(old_block) or last - first + 1 != len(hits):
                raise CannotReproduce("an include copied part of a replaced router's routes")
            self._check(parent, include)
            if not includes.child_unchanged(router, include):
                raise CannotReproduce("an included router changed since it was included")
            copies = include.copies[first : last + 1]
            above_old = [c.produced for c in copies]
            start = _locate(parent.routes, above_old)
            loops = self._loops(parent, include, copies)
            produced = self._include(parent, _stand_in(router, new_block), include.kwargs)
            if len(produced) != len(new_block):
                raise CannotReproduce("include_router copied an unexpected number of routes")
            new_copies = [
                Copy(s, p, route_state(p)) for s, p in zip(new_block, produced, strict=True)
            ]
            self._run_loops(include, loops, above_old, produced)
            self._splice(parent.routes, start, len(above_old), produced)
            self._replace_record(
                parent,
                include,
                dataclasses.replace(
                    include,
                    copies=[*include.copies[:first], *new_copies, *include.copies[last + 1 :]],
                ),
            )
            self.touched.append(parent)
            self._climb(parent, above_old, produced)

    def _loops(
        self, parent: Any, include: Include, copies: list[Copy]
    ) -> list[router_sources.RouteLoop]:
        """The route loops the including module ran over these copies after the include; they
        must account for every change made to the copies since."""
        module = sys.modules.get(include.module or "")
        found = router_sources.facts(module) if module is not None else None
        loops = [
            loop
            for loop in (found.loops if found is not None else [])
            if loop.line > include.line and loop.iterates(vars(module), parent.routes)  # type: ignore[arg-type]
        ]
        if not loops:
            if any(not same(route_state(c.produced), c.state) for c in copies):
                raise CannotReproduce("included routes were changed after the include")
            return []
        for c in copies:
            # The route as the include left it, taken through the loops again.
            clone = object.__new__(type(c.produced))
            vars(clone).update({name: shallow(value) for name, value in c.state.items()})
            for loop in loops:
                loop.run(vars(module), [clone])  # type: ignore[arg-type]
            if not same(route_state(clone), route_state(c.produced)):
                raise CannotReproduce("included routes were changed other than by a route loop")
        return loops

    def _run_loops(
        self,
        include: Include,
        loops: list[router_sources.RouteLoop],
        old_block: list[Any],
        produced: list[Any],
    ) -> None:
        if not loops:
            return
        namespace = vars(sys.modules[include.module])  # type: ignore[index]
        for loop in loops:
            loop.run(namespace, produced)
            # A loop leaves its variable on the last route it saw, as a fresh run would.
            last = namespace.get(loop.var)
            if any(last is route for route in old_block):
                if last is not old_block[-1] or not produced:
                    raise CannotReproduce("a route loop's variable holds a replaced route")
                self.undo.setitem(namespace, loop.var, produced[-1])

    # -- edits ---------------------------------------------------------------------------------

    def _include(self, parent: Any, child: Any, kwargs: dict[str, Any]) -> list[Any]:
        """What FastAPI's include_router appends for `child`, taken back off the parent's
        routes; its other effect (a merged lifespan, for a lifespan that ran already) undone."""
        routes = parent.routes
        start = len(routes)
        lifespan = parent.lifespan_context
        try:
            self.include_router(parent, child, **kwargs)
        except Exception as exc:
            raise CannotReproduce(f"include_router raised {exc!r}") from exc
        finally:
            appended = routes[start:]
            del routes[start:]
            parent.lifespan_context = lifespan
        return appended

    def _splice(self, routes: list[Any], start: int, count: int, produced: list[Any]) -> None:
        self.undo.set_items(routes, routes[:start] + produced + routes[start + count :])

    def _replace_record(self, parent: Any, old: Include, new: Include) -> None:
        records = includes.records(parent)
        index = _index(records, old)
        if index is None:
            raise CannotReproduce("an include record went missing")
        items = list(records)
        items[index] = new
        self.undo.set_items(records, items)


def _index(items: list[Any], target: Any) -> int | None:
    return next((i for i, item in enumerate(items) if item is target), None)


def _locate(routes: list[Any], block: list[Any]) -> int:
    """Where `block` sits in `routes`, whole and in order."""
    start = _index(routes, block[0])
    found = routes[start : start + len(block)] if start is not None else []
    if len(found) != len(block) or any(a is not b for a, b in zip(found, block, strict=True)):
        raise CannotReproduce("included routes were moved or removed since the include")
    return start  # type: ignore[return-value]


def _stand_in(router: Any, routes: list[Any]) -> Any:
    """`router` as include_router sees it, holding only `routes`."""
    stand_in = copy.copy(router)
    includes.forget(stand_in)
    stand_in.routes = list(routes)
    stand_in.on_startup = []
    stand_in.on_shutdown = []
    return stand_in


def _raise_version(router: Any, floor: int) -> None:
    """Lazy FastAPI caches derived routes by a sum of routes versions: make `router`'s (and so
    every includer's) sum exceed `floor`, so no cache built before can be taken as current."""
    version = router._get_routes_version()
    if version <= floor:
        router._routes_version += floor - version + 1
