"""Django: after a hot reload the server must answer what a fresh `runserver` process answers.

Hot-reloaded: views, URLconfs, forms, template tags, context processors, middleware, admin
modules, signal receivers, templates and `.mo` catalogs. Django keeps much of that in caches
built on first use (URL resolvers, template engines and their loaders, the middleware chain, the
admin registry), which hold the objects of the old code; the hooks below drop or rebuild them.

Restart instead (a fresh process is the only faithful answer):
- the settings module or anything it imports: settings are read once, into every subsystem;
- models (`*.models` or any module defining a Model): the app registry refuses a second class
  for a model, and relations, managers and migrations state are bound to the first one;
- migrations (`*.migrations.*`): they describe the models;
- an edited AppConfig module (`*.apps`): `ready()` ran once at start-up and will not run again.
  An apps module that only imports the edited module (`from . import signals` in `ready()`)
  is merely re-executed: that redefines its class and changes nothing else.
"""

from __future__ import annotations

import gc
import os
import sys
import weakref
from pathlib import Path
from typing import Any

from hmr_serve.integrations import Integration, import_chain

_NOT_YOURS = ("django.", "hmr_serve.")


def _origin(receiver: Any) -> str | None:
    """The module that defined a signal receiver (function, bound method or callable)."""
    target = receiver
    while hasattr(target, "func") and not hasattr(target, "__code__"):  # functools.partial
        target = target.func
    target = getattr(target, "__func__", target)
    module = getattr(target, "__module__", None)
    if isinstance(module, str):
        return module
    return type(target).__module__


def _caller_module() -> str | None:
    """The first module outside Django on the stack: who called `admin.site.register` (also
    through `@admin.register`)."""
    frame = sys._getframe(2)
    while frame is not None:
        name = frame.f_globals.get("__name__", "")
        if not name.startswith(_NOT_YOURS):
            return name
        frame = frame.f_back
    return None


class DjangoIntegration(Integration):
    framework = "django"

    def __init__(self) -> None:
        # (site, model) -> the module that registered it, learned from every registration made
        # once the admin was loaded (module_executed wraps `register` as soon as it is, before
        # autodiscover imports the admin modules); earlier ones are guessed.
        self._admin_origins: dict[tuple[Any, Any], str] = {}
        self._closure: set[str] = set()
        self._reloading = False
        self._saved_registries: list[tuple[Any, dict[Any, Any]]] = []
        self._saved_origins: dict[tuple[Any, Any], str] = {}
        self._saved_receivers: list[tuple[Any, list[Any]]] = []
        self._admin_wrapped = False
        self._dropped: set[tuple[Any, Any]] = set()  # registrations before_execute removed
        # Module name -> (its namespace, the Signals it held when last looked through), and the
        # modules that ran again since (their Signals may be new objects).
        self._signals_seen: dict[str, tuple[dict[str, Any], list[Any]]] = {}
        self._signals_rerun: set[str] = set()
        self._template_directories: list[Path] | None = None

    # -- restart -------------------------------------------------------------------------------

    def restart_reason(self, modules: list[str], paths: list[str]) -> str | None:
        from django.conf import settings

        if not settings.configured:
            return None

        def because(name: str, why: str) -> str:
            return f"{import_chain.describe(name, modules, paths)}: {why}"

        settings_module = getattr(settings, "SETTINGS_MODULE", None) or os.environ.get(
            "DJANGO_SETTINGS_MODULE"
        )
        if settings_module in modules:
            return because(settings_module, "Django settings cannot be hot-reloaded")
        model_modules = self._model_modules()
        for name in modules:
            if name in model_modules or name.endswith(".models") or ".models." in name:
                return because(name, "Django models cannot be hot-reloaded")
            if ".migrations." in name or name.endswith(".migrations"):
                return because(name, "Django migrations cannot be hot-reloaded")
        app_modules = self._app_config_modules()
        for name in import_chain.changed_modules(modules, paths):
            if name in app_modules or name.endswith(".apps"):
                return because(name, "a Django AppConfig runs ready() only at start-up")
        return None

    @staticmethod
    def _model_modules() -> set[str]:
        from django.apps import apps

        return {
            model.__module__ for models in apps.all_models.values() for model in models.values()
        }

    @staticmethod
    def _app_config_modules() -> set[str]:
        from django.apps import apps

        if not apps.ready:
            return set()
        return {type(config).__module__ for config in apps.get_app_configs()}

    def module_executed(self, name: str, module: Any) -> None:
        # The first first-party module to finish after the admin loaded: from here on every
        # registration is seen with the module that made it, instead of guessed later.
        if not self._admin_wrapped and "django.contrib.admin.sites" in sys.modules:
            self._wrap_admin_register()

    # -- around the re-execution ---------------------------------------------------------------

    def before_execute(self, modules: list[str]) -> None:
        from django.conf import settings

        if not settings.configured:
            return
        if not self._admin_wrapped and "django.contrib.admin.sites" in sys.modules:
            self._wrap_admin_register()
        self._closure = set(modules)
        self._reloading = True
        self._unregister_admin()
        self._disconnect_receivers()

    def after_execute(self, modules: list[str], succeeded: bool) -> None:
        if not self._reloading:
            return  # Django was not configured: nothing was touched
        self._reloading = False
        self._signals_rerun |= set(modules)  # ran, or were put back as they were: look again
        if succeeded:
            self._saved_registries = []
            self._saved_origins = {}
            self._saved_receivers = []
            self._reload_middleware(modules)
            self._reset_templates()
            self._refresh_urls()
            return
        # Rolled back: the old code is back, so is everything it had registered and connected.
        for registry, saved in self._saved_registries:
            registry.clear()
            registry.update(saved)
        self._admin_origins = self._saved_origins
        for signal, receivers in self._saved_receivers:
            with signal.lock:
                signal.receivers[:] = receivers
                signal.sender_receivers_cache.clear()
        self._saved_registries = []
        self._saved_receivers = []

    # -- admin ---------------------------------------------------------------------------------

    def _wrap_admin_register(self) -> None:
        # Only once the app has loaded the admin: importing it uninvited would define its models
        # in a project that does not install it.
        from django.contrib.admin.sites import AdminSite
        from django.db.models.base import ModelBase

        self._admin_wrapped = True
        original = AdminSite.register
        if getattr(original, "_hmr_serve", False):
            return
        integration = weakref.ref(self)

        def as_models(model_or_iterable: Any) -> list[Any]:
            if isinstance(model_or_iterable, ModelBase):
                return [model_or_iterable]
            return list(model_or_iterable)

        def register(site: Any, model_or_iterable: Any, admin_class: Any = None, **options: Any):
            this = integration()
            if this is None:
                return original(site, model_or_iterable, admin_class, **options)
            caller = _caller_module()
            models = as_models(model_or_iterable)
            if this._reloading and caller in this._closure:
                for model in models:
                    # Registered before we could see by whom; a module now re-running registers
                    # it again, so that module was the one: replace, as a fresh process would.
                    if site.is_registered(model) and (site, model) not in this._admin_origins:
                        del site._registry[model]
            try:
                return original(site, models, admin_class, **options)
            finally:
                if caller is not None:
                    for model in models:
                        if site.is_registered(model):
                            this._admin_origins.setdefault((site, model), caller)

        def unregister(site: Any, model_or_iterable: Any) -> None:
            this = integration()
            models = as_models(model_or_iterable)
            if this is not None and this._reloading and _caller_module() in this._closure:
                # `admin.site.unregister(User)` before registering its own UserAdmin: the
                # registration it removes in a fresh process is the default one, which this
                # module's own (dropped before it re-ran) had replaced. Already gone, then.
                models = [
                    model
                    for model in models
                    if site.is_registered(model) or (site, model) not in this._dropped
                ]
            original_unregister(site, models)
            if this is not None:
                for model in models:
                    this._admin_origins.pop((site, model), None)

        register._hmr_serve = True  # type: ignore[attr-defined]
        original_unregister = AdminSite.unregister
        AdminSite.register = register  # type: ignore[method-assign]
        AdminSite.unregister = unregister  # type: ignore[method-assign]

    @staticmethod
    def _sites() -> list[Any]:
        if "django.contrib.admin" not in sys.modules:
            return []
        from django.contrib.admin.sites import all_sites

        return list(all_sites)

    def _guess_origin(self, site: Any, model: Any, model_admin: Any) -> str | None:
        known = self._admin_origins.get((site, model))
        if known is not None:
            return known
        module = type(model_admin).__module__
        if not module.startswith(_NOT_YOURS):
            return module  # a ModelAdmin subclass lives where it was registered, as a rule
        # `admin.site.register(Model)` from the app's admin module, which autodiscover imports.
        config = getattr(model._meta, "app_config", None)
        return f"{config.name}.admin" if config is not None else None

    def _unregister_admin(self) -> None:
        self._dropped = set()
        self._saved_origins = dict(self._admin_origins)
        self._saved_registries = []
        for site in self._sites():
            registry = site._registry
            self._saved_registries.append((registry, dict(registry)))
            for model, model_admin in list(registry.items()):
                if self._guess_origin(site, model, model_admin) in self._closure:
                    del registry[model]
                    self._admin_origins.pop((site, model), None)
                    self._dropped.add((site, model))

    # -- signals -------------------------------------------------------------------------------

    def _signals(self) -> list[Any]:
        """Every Signal held by a module: Django's own (model, request, auth...) and the app's.
        A module's Signals change only when it runs, so only modules imported or re-executed
        since the last look are looked through (the whole heap of a big app costs milliseconds
        a reload)."""
        from django.dispatch import Signal

        seen = self._signals_seen
        rerun, self._signals_rerun = self._signals_rerun, set()
        for name, module in list(sys.modules.items()):
            namespace = getattr(module, "__dict__", None)
            if not isinstance(namespace, dict):
                continue
            known = seen.get(name)
            if known is not None and known[0] is namespace and name not in rerun:
                continue
            # type(), not isinstance(): that would evaluate every lazy object it meets.
            held = [value for value in list(namespace.values()) if issubclass(type(value), Signal)]
            seen[name] = (namespace, held)
        for name in seen.keys() - sys.modules.keys():
            del seen[name]
        found: dict[int, Any] = {}
        for _, held in seen.values():
            for signal in held:
                found[id(signal)] = signal
        return list(found.values())

    def _disconnect_receivers(self) -> None:
        """Receivers defined by re-running modules leave their signal: the new code connects its
        own, and one connected with a `dispatch_uid` would otherwise keep the old function."""
        self._saved_receivers = []
        for signal in self._signals():
            with signal.lock:
                kept = []
                for entry in signal.receivers:
                    receiver = entry[1]
                    if isinstance(receiver, weakref.ReferenceType):
                        receiver = receiver()
                    if receiver is not None and _origin(receiver) in self._closure:
                        continue
                    kept.append(entry)
                if len(kept) != len(signal.receivers):
                    self._saved_receivers.append((signal, list(signal.receivers)))
                    signal.receivers[:] = kept
                    signal.sender_receivers_cache.clear()

    # -- caches built from the old code ---------------------------------------------------------

    @staticmethod
    def _reload_middleware(modules: list[str]) -> None:
        """Handlers instantiate the middleware classes once; rebuild the chain when a middleware
        module re-ran (they are imported by dotted path, so nothing else re-runs with them)."""
        from django.conf import settings

        middleware_modules = {path.rpartition(".")[0] for path in settings.MIDDLEWARE}
        if middleware_modules.isdisjoint(modules):
            return
        from django.core.handlers.asgi import ASGIHandler
        from django.core.handlers.base import BaseHandler

        for obj in gc.get_objects():
            # type(), not isinstance(): isinstance() asks a lazy object (request.user) for its
            # __class__, which evaluates it.
            if issubclass(type(obj), BaseHandler) and obj._middleware_chain is not None:
                obj.load_middleware(is_async=isinstance(obj, ASGIHandler))

    @staticmethod
    def _reset_templates() -> None:
        """Engines hold the template tag libraries and context processors of the old code, and
        their cached loaders hold templates compiled against them: start over, as Django's own
        `reset_template_engines` does when TEMPLATES changes in tests."""
        if "django.template" not in sys.modules:
            return
        from django.forms.renderers import get_default_renderer
        from django.template import engines
        from django.template.engine import Engine

        engines.__dict__.pop("templates", None)
        engines._templates = None
        engines._engines = {}
        Engine.get_default.cache_clear()
        get_default_renderer.cache_clear()

    def _refresh_urls(self) -> None:
        """URL resolvers cache their patterns, and an `include()` inside a URLconf that did not
        re-run still holds the patterns of the one that did: forget them all, and rebuild the
        admin's patterns from its (possibly changed) registry."""
        from django.conf import settings
        from django.conf.urls.i18n import is_language_prefix_patterns_used
        from django.urls import URLResolver, clear_url_caches, set_urlconf

        sites = {}
        for site in self._sites():
            sites.setdefault(site.name, []).append(site)
        seen: set[int] = set()

        def walk(patterns: Any) -> None:
            for pattern in patterns:
                if not isinstance(pattern, URLResolver) or id(pattern) in seen:
                    continue
                seen.add(id(pattern))
                same_name = sites.get(pattern.namespace, [])
                if pattern.app_name == "admin" and len(same_name) == 1:
                    pattern.urlconf_name = same_name[0].get_urls()
                pattern.__dict__.pop("url_patterns", None)
                pattern.__dict__.pop("urlconf_module", None)
                pattern._reverse_dict = {}
                pattern._namespace_dict = {}
                pattern._app_dict = {}
                pattern._callback_strs = set()
                pattern._populated = False
                try:
                    children = pattern.url_patterns
                except Exception:
                    continue  # a broken URLconf fails on the request, as in a fresh process
                walk(children)

        root = sys.modules.get(getattr(settings, "ROOT_URLCONF", "") or "")
        if root is not None:
            walk(getattr(root, "urlpatterns", ()))
        clear_url_caches()
        is_language_prefix_patterns_used.cache_clear()
        set_urlconf(None)

    # -- files that are not modules ------------------------------------------------------------

    def files_changed(self, paths: list[str]) -> str | None:
        from django.conf import settings

        if not settings.configured:
            return None
        from django.utils.translation.reloader import translation_file_changed

        done = []
        templates = set()
        for path in paths:
            candidates = {Path(path), Path(os.path.realpath(path))}
            # Django's own autoreloader receiver for a `.mo`: drops the translation caches.
            if any(translation_file_changed(None, candidate) for candidate in candidates):
                done.append("translation catalogs reloaded")
            elif any(d in c.parents for c in candidates for d in self._template_dirs()):
                templates.add(os.path.realpath(path))
        if templates:
            _forget_templates(templates)
            done.append("template caches cleared")
        return ", ".join(dict.fromkeys(done)) or None

    def _template_dirs(self) -> list[Path]:
        """Django's template directories (as its autoreloader watches them), found once: they
        come from the settings and the installed apps, which a hot reload never changes."""
        if self._template_directories is None:
            from django.template.autoreload import get_template_directories

            self._template_directories = list(get_template_directories())
        return self._template_directories

    def watch_patterns(self) -> list[str]:
        patterns = ["**/templates/**", "*.mo"]
        try:
            from django.template.autoreload import get_template_directories

            names = {directory.name for directory in get_template_directories()}
        except Exception:  # settings not usable yet: the default names still apply
            names = set()
        patterns += [f"**/{name}/**" for name in sorted(names) if name and name != "templates"]
        return patterns


def _forget_templates(paths: set[str]) -> None:
    """Drops the changed templates (real paths) from every cached template loader, and the
    cached answers "does not exist" (a new file may answer one now). Templates that extend or
    include a changed one look it up by name at each render, so the rest of the cache stays
    valid: the next page compiles only what changed, where Django's own `reset_loaders` has
    every template of the page compiled again (hundreds of milliseconds on a Wagtail page)."""
    from django.forms.renderers import get_default_renderer
    from django.template import TemplateDoesNotExist, engines
    from django.template.backends.django import DjangoTemplates

    backends = [*engines.all(), getattr(get_default_renderer(), "engine", None)]
    names = {os.path.basename(path) for path in paths}

    def stale(template: Any) -> bool:
        if isinstance(template, TemplateDoesNotExist) or (
            isinstance(template, type) and issubclass(template, TemplateDoesNotExist)
        ):
            return True
        name = getattr(getattr(template, "origin", None), "name", None)
        if not isinstance(name, str):
            return True  # nothing says where it came from: compiled again, to be safe
        return os.path.basename(name) in names and os.path.realpath(name) in paths

    for backend in backends:
        if not isinstance(backend, DjangoTemplates):
            continue
        for loader in backend.engine.template_loaders:
            cache = getattr(loader, "get_template_cache", None)
            if isinstance(cache, dict):
                for key, template in list(cache.items()):
                    if stale(template):
                        del cache[key]
            elif hasattr(loader, "reset"):
                loader.reset()  # a caching loader of another kind: as Django's autoreloader


def integration() -> Integration:
    return DjangoIntegration()
