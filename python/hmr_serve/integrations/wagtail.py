"""Wagtail: hooks, snippets, viewsets and admin menu items registered by a module that re-runs.

Wagtail keeps registries that modules fill while they import: `hooks.register` (hook lists),
`register_snippet` and `viewsets.register` (the viewset list, and whatever a viewset's
`on_register` adds: its menu item and permissions hooks, snippet models, admin URL finders,
chooser viewsets with their form widgets and telepath adapters, system checks), and the viewsets
that `register_admin_viewset` hooks return. A module that re-runs would register all of it a
second time (`ImproperlyConfigured: The BreadIngredient model is already registered as a
snippet`), or keep the old entries beside the new ones.

So every registration is attributed to the module whose code made it: the innermost module-level
frame on the stack when it is made (none for what an `AppConfig.ready()` registers; a deferred
`register_snippet` keeps the module that called it; a `register_admin_viewset` viewset is its
hook's module). Everything a registration changed in the registries below is recorded. Before a
module re-runs, what it registered is taken out, noting where its entries stood so that the new
ones take the same place (registration order decides menu order between equal `menu_order`s and
URL order). After it, what Wagtail built from those registries once is rebuilt: the admin menus,
search areas, the icon sprite, and the part of the admin URLconf that hooks made (the viewsets'
URLs, `register_admin_urls` hooks), decorated as `wagtail.admin.urls` decorates it. A reload that
rolls back puts every registry back as it was. The hooks Wagtail calls once (menu items, icons,
search areas, URLs, viewsets) and the methods of registered viewsets are marked run-once
(integrations/run_once.py): an edit of their bodies re-runs the module instead of patching them
in place, which would leave what Wagtail built from them as it was.

Not rebuilt (scanned once by Wagtail, an edit applies at the next restart): rich text features,
log actions, bulk actions, image operations, `construct_admin_api`.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import types
import weakref
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import FrameType, ModuleType
from typing import Any

from hmr_serve.integrations import Integration, run_once

_MISSING = object()
# Modules whose registrations are never a project's own: never re-run, never taken out.
_NOT_YOURS = ("wagtail.", "django.", "hmr_serve.")
# Registries keyed by class (wagtail.utils.registry and telepath) a viewset's on_register fills.
_KEYED_REGISTRIES = (
    ("wagtail.admin.admin_url_finder", "finder_classes"),
    ("wagtail.admin.viewsets.pages", "page_viewset_registry"),
    ("wagtail.admin.forms.models", "registry"),
    ("wagtail.admin.telepath", "registry"),
)
# Hooks whose results end up in the admin URLconf, built once when it is imported.
_URL_HOOKS = frozenset({"register_admin_urls", "register_admin_viewset"})
# Hooks Wagtail calls once, keeping what they return (in the URLconf, the menus, the icon
# sprite): an edit of one must re-run its module, never patch it in place.
_ONCE_HOOKS = _URL_HOOKS | {
    "register_admin_menu_item",
    "register_settings_menu_item",
    "register_reports_menu_item",
    "register_help_menu_item",
    "register_admin_search_area",
    "register_icons",
}


def _registering_module(frame: FrameType | None) -> str | None:
    """The module whose code makes a registration: the innermost module-level frame. None when
    Django's app registry is on the way there: an `AppConfig.ready()` registered it, once."""
    while frame is not None:
        name = frame.f_globals.get("__name__")
        if name == "django.apps.registry":
            return None
        if frame.f_code.co_name == "<module>":
            return name if isinstance(name, str) else None
        frame = frame.f_back
    return None


def _module_frame(frame: FrameType | None) -> FrameType | None:
    """The innermost frame running a module's top-level code."""
    while frame is not None and frame.f_code.co_name != "<module>":
        frame = frame.f_back
    return frame


def _defined_in(obj: Any) -> str | None:
    if isinstance(obj, str):  # register_snippet("app.models.Model")
        return obj.rpartition(".")[0] or None
    module = getattr(getattr(obj, "__func__", obj), "__module__", None)
    return module if isinstance(module, str) else None


def _yours(origin: str | None) -> bool:
    return origin is not None and not origin.startswith(_NOT_YOURS)


@dataclass
class _Registration:
    """What one registration call changed, to take it out again."""

    origin: str
    hooks: list[tuple[str, Any]] = field(default_factory=list)  # (hook name, (fn, order))
    items: list[tuple[Any, Any]] = field(default_factory=list)  # (list or set, item added)
    keys: list[tuple[dict[Any, Any], Any, Any]] = field(default_factory=list)  # (dict, key, before)

    def __bool__(self) -> bool:
        return bool(self.hooks or self.items or self.keys)


class _Window:
    """One registration call in progress: the registries as they were when it began, and what
    calls nested in it that belong to other modules changed meanwhile."""

    def __init__(
        self,
        registration: _Registration | None,
        module_frame: Any,
        lists: list[list[Any]],
        sets: list[set[Any]],
        dicts: list[dict[Any, Any]],
    ) -> None:
        self.registration = registration  # None: not a project module's
        self.module_frame = module_frame
        self.lists = [(c, {id(item) for item in c}) for c in lists]
        self.sets = [(c, set(c)) for c in sets]
        self.dicts = [(c, dict(c)) for c in dicts]
        self.claimed: set[int] = set()  # ids of items added by nested calls of other modules
        self.claimed_keys: set[tuple[int, Any]] = set()

    def changes(self) -> tuple[list[tuple[Any, Any]], list[tuple[dict[Any, Any], Any, Any]]]:
        items = [(c, i) for c, seen in self.lists for i in c if id(i) not in seen]
        items += [(c, i) for c, seen in self.sets for i in c - seen]
        items = [(c, i) for c, i in items if id(i) not in self.claimed]
        keys = []
        for container, old in self.dicts:
            for key, value in container.items():
                previous = old.get(key, _MISSING)
                if previous is not value and (id(container), key) not in self.claimed_keys:
                    keys.append((container, key, previous))
        return items, keys

    def claim(self, items: list[tuple[Any, Any]], keys: list[Any], inner: _Window) -> None:
        self.claimed |= {id(item) for _, item in items} | inner.claimed
        self.claimed_keys |= {(id(c), key) for c, key, _ in keys} | inner.claimed_keys


@dataclass
class _Contribution:
    """The URL patterns one `register_admin_urls` hook added to wagtail.admin.urls."""

    fn: Any
    patterns: list[Any] = field(default_factory=list)
    viewsets: bool = False  # the hook that serves the viewsets' URLs


class _ImportWatch:
    """A meta path finder that finds nothing itself. For the Wagtail modules the integration
    wraps, it has the loader call back once the module has run, so the wrappers are in place
    before any project module can register anything through them. While a registration call is
    in progress, a module it imports (Wagtail searching for `wagtail_hooks` modules, a lazy
    import) runs in a window of its own: what that module's code changes is that module's."""

    def __init__(
        self, integration: WagtailIntegration, callbacks: dict[str, Callable[[ModuleType], None]]
    ) -> None:
        self.integration = weakref.ref(integration)
        self.callbacks = callbacks
        self._finding = threading.local()

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        integration = self.integration()
        callback = self.callbacks.get(name)
        inside = integration is not None and bool(integration._windows())
        if (callback is None and not inside) or getattr(self._finding, "active", False):
            return None
        self._finding.active = True
        try:
            spec = _find_elsewhere(self, name, path, target)
        finally:
            self._finding.active = False
        loader = getattr(spec, "loader", None)
        exec_module = getattr(loader, "exec_module", None)
        if exec_module is None or isinstance(loader, type):
            return spec  # a class as loader (built-in, frozen): shared, never patched

        def run(module: ModuleType) -> None:
            try:
                if inside and integration is not None:
                    with integration._window(name, None, own=True):
                        exec_module(module)
                else:
                    exec_module(module)
            finally:
                with contextlib.suppress(AttributeError):
                    del loader.exec_module
            if callback is not None and self.callbacks.pop(name, None) is not None:
                callback(module)

        loader.exec_module = run
        return spec


def _find_elsewhere(finder: Any, name: str, path: Any, target: Any) -> Any:
    for other in sys.meta_path:
        find = getattr(other, "find_spec", None)
        if other is finder or find is None:
            continue
        spec = find(name, path, target)
        if spec is not None:
            return spec
    return None


class _DeferredRegistrations(list):  # type: ignore[type-arg]
    """Stands in for `wagtail.snippets.models.DEFERRED_REGISTRATIONS`: `register_snippet` calls
    made before the models are loaded wait there until the snippets app is ready, when no trace
    of the module that made them is left on the stack. This notes it."""

    def __init__(self, items: list[Any], origins: deque[tuple[Any, str | None]]) -> None:
        super().__init__(items)
        self.origins = origins

    def append(self, entry: Any) -> None:
        super().append(entry)
        self.origins.append((entry, _registering_module(sys._getframe(1))))


class WagtailIntegration(Integration):
    framework = "wagtail"

    def __init__(self) -> None:
        self._registrations: list[_Registration] = []
        self._local = threading.local()  # the registration calls in progress (per thread)
        self._deferred: deque[tuple[Any, str | None]] = deque()
        self._populated: dict[int, Any] = {}  # register_admin_viewset hooks run, by id
        self._populate_ran = False
        self._contributions: list[_Contribution] | None = None  # None: URLconf not built yet
        self._building: _Contribution | None = None
        self._original_get_hooks: Callable[[str], list[Any]] | None = None
        # One reload: the closure, what was taken out, where, and how to put it back.
        self._closure: set[str] | None = None
        self._mark = 0
        self._undone: list[_Registration] = []
        self._anchors: dict[tuple[int, Any], Any] = {}  # (list id, place) -> the entry after
        self._saved: dict[str, Any] | None = None
        self._install()

    # -- wrappers, installed as each Wagtail module finishes importing ---------------------------

    def _install(self) -> None:
        wrappers = {
            "wagtail.hooks": self._wrap_hooks,
            "wagtail.snippets.models": self._wrap_snippets,
            "wagtail.admin.viewsets": self._wrap_viewsets,
        }
        waiting = {}
        for name, wrap in wrappers.items():
            module = sys.modules.get(name)
            spec = getattr(module, "__spec__", None)
            if spec is not None and not getattr(spec, "_initializing", False):
                wrap(module)  # type: ignore[arg-type]
            else:
                waiting[name] = wrap
        sys.meta_path.insert(0, _ImportWatch(self, waiting))  # type: ignore[arg-type]

    def _wrap_hooks(self, hooks: ModuleType) -> None:
        original_register = hooks.register
        original_get_hooks = self._original_get_hooks = hooks.get_hooks
        this = weakref.ref(self)
        # Registered before this integration saw them (a module's first lines): by whoever
        # defined the function.
        for name, entries in hooks._hooks.items():
            for entry in entries:
                if name in _ONCE_HOOKS:
                    run_once.mark(entry[0])
                origin = _defined_in(entry[0])
                if _yours(origin):
                    self._add(_Registration(origin, hooks=[(name, entry)]))  # type: ignore[arg-type]

        def register(hook_name: str, fn: Any = None, order: int = 0) -> Any:
            result = original_register(hook_name, fn, order)
            integration = this()
            if fn is not None and integration is not None:  # without fn: a decorator (comes back)
                entry = hooks._hooks[hook_name][-1]
                integration._hook_registered(hook_name, entry, sys._getframe(1))
            return result

        def get_hooks(hook_name: str) -> list[Any]:
            fns = original_get_hooks(hook_name)
            if hook_name != "register_admin_urls":
                return fns
            integration = this()
            if integration is None or integration._contributions is not None:
                return fns
            if sys._getframe(1).f_globals.get("__name__") != "wagtail.admin.urls":
                return fns
            # The admin URLconf being built: note which patterns each hook adds, to rebuild the
            # part that re-running modules made.
            contributions: list[_Contribution] = []
            integration._contributions = contributions

            def recorder(fn: Any) -> Callable[[], Any]:
                def call() -> list[Any]:
                    contribution = integration._contribute(fn)
                    contributions.append(contribution)
                    return contribution.patterns

                return call

            return [recorder(fn) for fn in fns]

        hooks.register = register
        hooks.get_hooks = get_hooks

    def _wrap_snippets(self, snippets: ModuleType) -> None:
        for registerable, viewset in snippets.DEFERRED_REGISTRATIONS:
            self._deferred.append(((registerable, viewset), _defined_in(registerable)))
        snippets.DEFERRED_REGISTRATIONS = _DeferredRegistrations(
            snippets.DEFERRED_REGISTRATIONS, self._deferred
        )
        original = snippets._register_snippet_immediately
        this = weakref.ref(self)

        def register_now(registerable: Any, viewset: Any = None) -> Any:
            integration = this()
            if integration is None:
                return original(registerable, viewset)
            caller = sys._getframe(1)
            origin = integration._deferred_origin(registerable, viewset)
            if origin is _MISSING:
                origin = _registering_module(caller)
            with integration._window(origin, caller):  # type: ignore[arg-type]
                return original(registerable, viewset)

        snippets._register_snippet_immediately = register_now

    def _wrap_viewsets(self, module: ModuleType) -> None:
        registry_class = module.ViewSetRegistry
        original_register = registry_class.register
        original_urlpatterns = registry_class.get_urlpatterns
        original_populate = registry_class.populate
        this = weakref.ref(self)

        def register(registry: Any, viewset: Any) -> Any:
            integration = this()
            if integration is None:
                return original_register(registry, viewset)
            caller = sys._getframe(1)
            with integration._window(_registering_module(caller), caller):
                return original_register(registry, viewset)

        def populate(registry: Any) -> None:
            integration = this()
            if integration is None:
                return original_populate(registry)
            integration._populate(registry)

        def get_urlpatterns(registry: Any) -> list[Any]:
            integration = this()
            if integration is not None and integration._building is not None:
                integration._building.viewsets = True
            return original_urlpatterns(registry)

        registry_class.register = register
        registry_class.populate = populate
        registry_class.get_urlpatterns = get_urlpatterns

    # -- recording ---------------------------------------------------------------------------------

    def _add(self, registration: _Registration) -> None:
        self._registrations.append(registration)

    def _hook_registered(self, name: str, entry: Any, frame: FrameType | None) -> None:
        if name in _ONCE_HOOKS:
            run_once.mark(entry[0])
        windows = self._windows()
        if windows and windows[-1].module_frame is _module_frame(frame):
            registration = windows[-1].registration
            if registration is not None:
                registration.hooks.append((name, entry))
            return
        origin = _registering_module(frame)
        if _yours(origin):
            self._add(_Registration(origin, hooks=[(name, entry)]))  # type: ignore[arg-type]

    def _deferred_origin(self, registerable: Any, viewset: Any) -> Any:
        """The module a deferred `register_snippet` came from, when this call processes it."""
        if self._deferred:
            (first, second), origin = self._deferred[0]
            if first is registerable and second is viewset:
                self._deferred.popleft()
                return origin
        return _MISSING

    @staticmethod
    def _containers() -> tuple[list[list[Any]], list[set[Any]], list[dict[Any, Any]]]:
        """The registries (other than the hook lists) a registration may change."""
        lists, sets, dicts = [], [], []
        viewsets = sys.modules.get("wagtail.admin.viewsets")
        if viewsets is not None:
            lists.append(viewsets.viewsets.viewsets)
        snippets = sys.modules.get("wagtail.snippets.models")
        if snippets is not None:
            lists.append(snippets.SNIPPET_MODELS)
        checks = sys.modules.get("django.core.checks.registry")
        if checks is not None:
            sets += [checks.registry.registered_checks, checks.registry.deployment_checks]
        for module_name, attr in _KEYED_REGISTRIES:
            registry = getattr(sys.modules.get(module_name), attr, None)
            if registry is not None:
                dicts += [v for v in vars(registry).values() if type(v) is dict]
        return lists, sets, dicts

    def _windows(self) -> list[_Window]:
        windows = getattr(self._local, "windows", None)
        if windows is None:
            windows = self._local.windows = []
        return windows

    @contextlib.contextmanager
    def _window(
        self, origin: str | None, frame: FrameType | None, own: bool = False
    ) -> Iterator[None]:
        """Attributes to `origin` whatever the call inside changes. Calls nested in it join it,
        unless another module's code makes them (a module that the call imports): those are
        that module's, and not this call's. `own`: a module running, which nothing joins."""
        windows = self._windows()
        module_frame = object() if own else _module_frame(frame)
        if windows and windows[-1].module_frame is module_frame:
            yield
            return
        registration = _Registration(origin) if _yours(origin) else None  # type: ignore[arg-type]
        window = _Window(registration, module_frame, *self._containers())
        windows.append(window)
        try:
            yield
        finally:
            windows.pop()
            items, keys = window.changes()
            if windows:
                windows[-1].claim(items, keys, window)
            viewset_list = _viewset_list()
            for container, item in items:
                if container is viewset_list:
                    _mark_viewset(item)
            if registration is not None:
                registration.items, registration.keys = items, keys
                if registration:
                    self._add(registration)

    def _populate(self, registry: Any) -> None:
        """ViewSetRegistry.populate (run once, when the admin URLconf is built), attributing each
        viewset to its hook's module; again after a reload, for the hooks it has not run."""
        self._populate_ran = True
        for fn in self._get_hooks("register_admin_viewset"):
            if id(fn) in self._populated:
                continue
            self._populated[id(fn)] = fn
            with self._window(_defined_in(fn), sys._getframe(1)):
                viewset = fn()
                for item in viewset if isinstance(viewset, (list, tuple)) else [viewset]:
                    registry.register(item)

    def _get_hooks(self, name: str) -> list[Any]:
        get_hooks = self._original_get_hooks
        if get_hooks is None:
            from wagtail import hooks

            get_hooks = hooks.get_hooks
        return get_hooks(name)

    def _contribute(self, fn: Any) -> _Contribution:
        """Runs a `register_admin_urls` hook, noting whether it serves the viewsets' URLs."""
        contribution = _Contribution(fn)
        self._building = contribution
        try:
            contribution.patterns = list(fn() or [])
        finally:
            self._building = None
        return contribution

    # -- restart -----------------------------------------------------------------------------------

    def restart_reason(self, modules: list[str], paths: list[str]) -> str | None:
        if "wagtail.admin.urls" not in sys.modules or self._contributions is not None:
            return None
        closure = set(modules)
        for registration in self._registrations:
            if registration.origin in closure:
                return (
                    f"{registration.origin} registers with Wagtail, whose admin URLconf was built "
                    "before hmr-serve could see how: Wagtail registrations cannot be hot-reloaded"
                )
        return None

    # -- around the re-execution -------------------------------------------------------------------

    def before_execute(self, modules: list[str]) -> None:
        closure = set(modules)
        self._closure = closure
        self._mark = len(self._registrations)
        self._undone = [r for r in self._registrations if r.origin in closure]
        self._anchors = {}
        self._saved = None
        dropped = [key for key, fn in self._populated.items() if _defined_in(fn) in closure]
        if not self._undone and not dropped:
            return
        hooks = sys.modules["wagtail.hooks"]._hooks
        lists, sets, dicts = self._containers()
        self._saved = {
            "registrations": list(self._registrations),
            "hooks": {name: list(entries) for name, entries in hooks.items()},
            "lists": [(c, list(c)) for c in lists],
            "sets": [(c, set(c)) for c in sets],
            "dicts": [(c, dict(c)) for c in dicts],
            "populated": dict(self._populated),
            "snippet_viewsets": [],
        }
        for key in dropped:
            del self._populated[key]
        places = _place_keys(self._undone)
        for registration, place in reversed(list(zip(self._undone, places, strict=True))):
            self._take_out(registration, hooks, place)
        undone = {id(r) for r in self._undone}
        self._registrations = [r for r in self._registrations if id(r) not in undone]
        self._mark = len(self._registrations)

    def _take_out(
        self, registration: _Registration, hooks: dict[str, list[Any]], place: Any = None
    ) -> None:
        """Undoes a registration; with `place`, noting where its entries were."""
        for name, entry in reversed(registration.hooks):
            entries = hooks.get(name, [])
            if place is not None:
                self._note_place(entries, entry, place)
            _remove(entries, entry)
        for container, item in reversed(registration.items):
            if isinstance(container, set):
                container.discard(item)
                continue
            if place is not None and container is _viewset_list():
                self._note_place(container, item, place)
            _remove(container, item)
            model = getattr(item, "model", None)
            if model is not None and model.__dict__.get("snippet_viewset") is item:
                # Set by on_register; a fresh process has it only once a viewset registers.
                if self._saved is not None:
                    self._saved["snippet_viewsets"].append((model, item))
                del model.snippet_viewset
        for container, key, previous in reversed(registration.keys):
            if previous is _MISSING:
                container.pop(key, None)
            else:
                container[key] = previous

    def _note_place(self, entries: list[Any], entry: Any, place: tuple[str, Any, int]) -> None:
        """Notes the entry after this one: the registration's successor goes before it (and a
        registration of the module that has no predecessor, before the module's first one).
        Entries are taken out last first, so what follows is one that stays, and the note that
        lasts is the one for the first entry."""
        index = next((i for i, e in enumerate(entries) if e is entry), None)
        if index is not None:
            following = entries[index + 1] if index + 1 < len(entries) else None
            self._anchors[(id(entries), place)] = following
            self._anchors[(id(entries), place[0])] = following

    def after_execute(self, modules: list[str], succeeded: bool) -> None:
        closure, self._closure = self._closure, None
        if closure is None:
            return
        added = self._registrations[self._mark :]
        undone, self._undone = self._undone, []
        if not succeeded:
            self._roll_back(added)
            return
        self._saved = None
        if not added and not undone:
            return
        viewsets = sys.modules.get("wagtail.admin.viewsets")
        if self._populate_ran and viewsets is not None:
            # As when the URLconf was built: the register_admin_viewset hooks of re-run modules.
            self._populate(viewsets.viewsets)
            added = self._registrations[self._mark :]
        self._put_in_place(added)
        touched = {name for r in (*undone, *added) for name, _ in r.hooks}
        viewset_list = _viewset_list()
        changed_viewsets = {
            id(item) for r in (*undone, *added) for c, item in r.items if c is viewset_list
        }
        self._refresh_caches(touched, closure)
        urls_by_closure = self._contributions is not None and any(
            _defined_in(c.fn) in closure for c in self._contributions
        )
        if changed_viewsets or touched & _URL_HOOKS or urls_by_closure:
            self._rebuild_admin_urls(closure, changed_viewsets)

    def _roll_back(self, added: list[_Registration]) -> None:
        hooks = sys.modules["wagtail.hooks"]._hooks if "wagtail.hooks" in sys.modules else {}
        for registration in reversed(added):
            self._take_out(registration, hooks)
        del self._registrations[self._mark :]
        saved, self._saved = self._saved, None
        if saved is None:
            return
        self._registrations = saved["registrations"]
        for name in list(hooks):
            if name not in saved["hooks"]:
                del hooks[name]
        for name, entries in saved["hooks"].items():
            hooks.setdefault(name, [])[:] = entries
        for container, items in saved["lists"]:
            container[:] = items
        for container, items in saved["sets"]:
            container.clear()
            container.update(items)
        for container, items in saved["dicts"]:
            container.clear()
            container.update(items)
        self._populated = saved["populated"]
        for model, viewset in saved["snippet_viewsets"]:
            model.snippet_viewset = viewset

    def _put_in_place(self, added: list[_Registration]) -> None:
        """New entries of a re-run module go where their predecessors were."""
        hooks = sys.modules["wagtail.hooks"]._hooks
        viewset_list = _viewset_list()
        for registration, place in zip(added, _place_keys(added), strict=True):
            moves = [(hooks.get(name, []), entry) for name, entry in registration.hooks]
            moves += [(c, item) for c, item in registration.items if c is viewset_list]
            for entries, entry in moves:
                anchor = self._anchors.get((id(entries), place), _MISSING)
                if anchor is _MISSING:
                    anchor = self._anchors.get((id(entries), place[0]))
                if anchor is None:
                    continue  # nothing followed: appended is right
                index = next((i for i, e in enumerate(entries) if e is anchor), None)
                if index is not None:
                    _remove(entries, entry)
                    entries.insert(index, entry)
        self._anchors = {}

    # -- what Wagtail built from the registries -------------------------------------------------

    @staticmethod
    def _refresh_caches(touched: set[str], closure: set[str]) -> None:
        """Drops what Wagtail computed once from the hooks: the menus' items and the search
        areas (Wagtail's own menus live in two modules; a project's, in its modules that ran),
        the icon sprite, the workflow-enabled snippet models."""
        menu = sys.modules.get("wagtail.admin.menu")
        search = sys.modules.get("wagtail.admin.search")
        kinds = tuple(
            kind for kind in (getattr(menu, "Menu", None), getattr(search, "Search", None)) if kind
        )
        for name in ("wagtail.admin.menu", "wagtail.admin.search", *closure):
            for value in list(getattr(sys.modules.get(name), "__dict__", {}).values()):
                # type(), not isinstance(): a lazy object would be evaluated.
                if kinds and issubclass(type(value), kinds):
                    value.__dict__.pop("registered_menu_items", None)
                    value.__dict__.pop("registered_search_areas", None)
        icons = sys.modules.get("wagtail.admin.icons")
        if icons is not None and "register_icons" in touched:
            icons.get_icons.cache_clear()
            icons.get_icon_sprite_hash.cache_clear()
        snippets = sys.modules.get("wagtail.snippets.models")
        if snippets is not None:
            snippets.get_workflow_enabled_models.cache_clear()

    def _rebuild_admin_urls(self, closure: set[str], changed_viewsets: set[int]) -> None:
        """The hook-made part of wagtail.admin.urls, as importing it now would make it: patterns
        of hooks from re-run modules, and of the viewsets that changed, made anew and decorated
        as that module decorates them; the others kept (building every viewset's views again
        would cost tens of milliseconds)."""
        module = sys.modules.get("wagtail.admin.urls")
        if module is None or self._contributions is None:
            return  # not built yet: it will be from the registries as they are now
        old = {id(c.fn): c for c in self._contributions}
        old_patterns = {id(p) for c in self._contributions for p in c.patterns}
        places = [i for i, p in enumerate(module.urlpatterns) if id(p) in old_patterns]
        if not places:
            return
        rebuilt = []
        for fn in self._get_hooks("register_admin_urls"):
            kept = old.get(id(fn))
            if kept is None or _defined_in(fn) in closure:
                contribution = self._contribute(fn)
                _decorate(contribution.patterns, module)
            elif kept.viewsets and changed_viewsets:
                contribution = _Contribution(fn, viewsets=True)
                patterns = _viewset_patterns(kept.patterns, changed_viewsets, module)
                contribution.patterns = patterns if patterns is not None else fn()
                if patterns is None:
                    _decorate(contribution.patterns, module)
            else:
                contribution = kept
            rebuilt.append(contribution)
        module.urlpatterns[places[0] : places[-1] + 1] = [p for c in rebuilt for p in c.patterns]
        # In place: the resolver including it holds this list. The Django integration reset
        # every resolver's caches before this ran, and nothing has resolved a URL since.
        self._contributions = rebuilt


def _decorate(patterns: list[Any], admin_urls: ModuleType) -> None:
    """As wagtail.admin.urls decorates the patterns its hooks return."""
    from django.views.decorators.cache import never_cache
    from wagtail.admin.auth import require_admin_access
    from wagtail.utils.urlpatterns import decorate_urlpatterns

    for decorator in (require_admin_access, admin_urls.display_custom_404, never_cache):
        decorate_urlpatterns(patterns, decorator)


def _viewset_patterns(
    old: list[Any], changed: set[int], admin_urls: ModuleType
) -> list[Any] | None:
    """The viewsets' URL patterns, in the registry's order: each changed viewset's made anew,
    the others' kept (found by URL prefix and namespace). None when that cannot be told."""
    module = sys.modules["wagtail.admin.viewsets"]
    by_key: dict[tuple[str, Any], Any] = {}
    for pattern in old:
        key = (str(getattr(pattern, "pattern", "")), getattr(pattern, "namespace", None))
        if key in by_key:
            return None
        by_key[key] = pattern
    patterns = []
    for viewset in module.viewsets.viewsets:
        if id(viewset) in changed:
            registry = module.ViewSetRegistry()
            registry.viewsets = [viewset]
            made = registry.get_urlpatterns()
            _decorate(made, admin_urls)
            patterns += made
            continue
        try:
            key = (f"{viewset.url_prefix}/", viewset.url_namespace)
        except Exception:  # no name: it has no URLs (it would have failed at start-up)
            continue
        if key in by_key:
            patterns.append(by_key[key])
    return patterns


def _place_keys(registrations: list[_Registration]) -> list[tuple[str, Any, int]]:
    """What pairs a registration of a module with its successor after the module re-ran: what
    it registers (hook names, kinds of item), and which of the module's such it is."""
    seen: dict[tuple[str, Any], int] = {}
    keys = []
    for registration in registrations:
        kind = (
            tuple(name for name, _ in registration.hooks),
            tuple(type(item).__qualname__ for _, item in registration.items),
        )
        count = seen.get((registration.origin, kind), 0)
        seen[(registration.origin, kind)] = count + 1
        keys.append((registration.origin, kind, count))
    return keys


def _mark_viewset(viewset: Any) -> None:
    """A viewset's views and menu item are built from its methods once (the URLconf, the menus):
    an edit of one of its project classes' functions re-runs their module."""
    for cls in type(viewset).__mro__:
        if not _yours(cls.__module__):
            continue
        for value in list(vars(cls).values()):
            if isinstance(value, (classmethod, staticmethod)):
                value = value.__func__
            if isinstance(value, types.FunctionType):
                run_once.mark(value)
            elif isinstance(value, property):
                for accessor in (value.fget, value.fset, value.fdel):
                    if accessor is not None:
                        run_once.mark(accessor)
            elif hasattr(type(value), "__get__"):  # Django's classproperty, cached_property
                for held in vars(value).values() if hasattr(value, "__dict__") else ():
                    if isinstance(held, types.FunctionType):
                        run_once.mark(held)


def _viewset_list() -> list[Any] | None:
    module = sys.modules.get("wagtail.admin.viewsets")
    return module.viewsets.viewsets if module is not None else None


def _remove(entries: list[Any], entry: Any) -> None:
    for index, candidate in enumerate(entries):
        if candidate is entry:
            del entries[index]
            return


def integration() -> Integration:
    return WagtailIntegration()
