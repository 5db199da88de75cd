"""Flask: blueprints and apps that outlive a reload, and Jinja templates.

A module that re-runs decorates objects it imported: `@bp.route` on a blueprint, `@app.get` on
an app, defined in a module that does not re-run. Flask refuses setup on a blueprint already
registered ("The setup method 'route' can no longer be called on the blueprint") or an app that
has served ("... on the application. It has already handled its first request"), and if it did
not, the old view would still be there beside the new one. So before the re-execution every such
object loses what the re-running modules put into it (deferred registrations, request hooks,
error handlers, nested blueprints, routes) and accepts setup again; after it, it is as a fresh
process would have built it, and the (re-called) factory registers it on the new app.

Templates: Flask apps cache compiled templates and, outside debug mode, never look at the files
again; a changed file under a template folder clears the cache of every Flask app, so the next
render reads it, without re-executing any module.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import weakref
from typing import Any

from hmr_serve.integrations import Integration

# Scaffold dicts of `{scope: [function, ...]}` that blueprints merge into the app.
_FUNCTION_LISTS = (
    "before_request_funcs",
    "after_request_funcs",
    "teardown_request_funcs",
    "template_context_processors",
    "url_value_preprocessors",
    "url_default_functions",
)


def _defined_in(obj: Any, modules: set[str], depth: int = 0) -> bool:
    """Whether a function (or a closure Flask built around one, as its deferred registrations
    are) comes from one of `modules`."""
    if depth > 4:
        return False
    target = getattr(obj, "__func__", obj)
    if getattr(target, "__module__", None) in modules:
        return True
    for cell in getattr(target, "__closure__", None) or ():
        try:
            value = cell.cell_contents
        except ValueError:  # an empty cell
            continue
        if callable(value) and _defined_in(value, modules, depth + 1):
            return True
    return False


def _blueprint_module(bp: Any) -> str:
    return getattr(bp, "import_name", "")


class FlaskIntegration(Integration):
    framework = "flask"

    def __init__(self) -> None:
        self._saved: list[tuple[Any, dict[str, Any]]] = []
        # Every app's Jinja environment, as it is made (a cached property, made at the first
        # render): a template change then never has to search the heap for apps.
        self._environments: weakref.WeakSet[Any] = weakref.WeakSet()
        self._watch_environments()

    def _watch_environments(self) -> None:
        from flask import Flask

        environments = self._environments
        for app in self._scaffolds()[0]:  # apps that rendered while their module imported
            if "jinja_env" in app.__dict__:
                environments.add(app.__dict__["jinja_env"])
        original = Flask.create_jinja_environment
        if getattr(original, "_hmr_serve", False):
            original = original.__wrapped__  # a previous integration's wrapper

        @functools.wraps(original)
        def create_jinja_environment(app: Any) -> Any:
            environment = original(app)
            environments.add(environment)
            return environment

        create_jinja_environment._hmr_serve = True  # type: ignore[attr-defined]
        Flask.create_jinja_environment = create_jinja_environment  # type: ignore[method-assign]

    # -- objects that outlive the reload ---------------------------------------------------------

    @staticmethod
    def _scaffolds() -> tuple[list[Any], list[Any]]:
        """Flask apps and blueprints held by module globals (and nested in those)."""
        from flask import Blueprint, Flask

        apps: dict[int, Any] = {}
        blueprints: dict[int, Any] = {}

        def add_blueprint(bp: Any) -> None:
            if id(bp) in blueprints:
                return
            blueprints[id(bp)] = bp
            for child, _ in getattr(bp, "_blueprints", ()):
                add_blueprint(child)

        for module in list(sys.modules.values()):
            namespace = getattr(module, "__dict__", None)
            if not isinstance(namespace, dict):
                continue
            for value in list(namespace.values()):
                kind = type(value)
                if issubclass(kind, Flask):
                    apps[id(value)] = value
                elif issubclass(kind, Blueprint):
                    add_blueprint(value)
        for app in apps.values():
            for bp in app.blueprints.values():
                add_blueprint(bp)
        return list(apps.values()), list(blueprints.values())

    @staticmethod
    def _snapshot(obj: Any) -> dict[str, Any]:
        saved = {}
        for name in (*_FUNCTION_LISTS, "error_handler_spec", "view_functions"):
            value = getattr(obj, name, None)
            if isinstance(value, dict):
                saved[name] = {
                    scope: (
                        {code: dict(handlers) for code, handlers in entries.items()}
                        if name == "error_handler_spec"
                        else list(entries)
                        if isinstance(entries, list)
                        else entries
                    )
                    for scope, entries in value.items()
                }
        for name in ("deferred_functions", "_blueprints"):
            if hasattr(obj, name):
                saved[name] = list(getattr(obj, name))
        for name in ("_got_registered_once", "_got_first_request"):
            if name in obj.__dict__:
                saved[name] = obj.__dict__[name]
        rules = getattr(getattr(obj, "url_map", None), "_rules_by_endpoint", None)
        if rules is not None:
            saved["_rules_by_endpoint"] = {endpoint: list(r) for endpoint, r in rules.items()}
        return saved

    @staticmethod
    def _strip(obj: Any, modules: set[str]) -> None:
        for name in _FUNCTION_LISTS:
            for functions in getattr(obj, name, {}).values():
                functions[:] = [f for f in functions if not _defined_in(f, modules)]
        for codes in getattr(obj, "error_handler_spec", {}).values():
            for handlers in codes.values():
                for exc_class, handler in list(handlers.items()):
                    if _defined_in(handler, modules):
                        del handlers[exc_class]
        if hasattr(obj, "deferred_functions"):
            obj.deferred_functions[:] = [
                f for f in obj.deferred_functions if not _defined_in(f, modules)
            ]
        if hasattr(obj, "_blueprints"):
            # A nested blueprint defined by a re-running module is about to be a new object,
            # which its (re-running) registrar nests again.
            obj._blueprints[:] = [
                (child, options)
                for child, options in obj._blueprints
                if _blueprint_module(child) not in modules
            ]

    @staticmethod
    def _strip_routes(app: Any, modules: set[str]) -> None:
        stale = {
            endpoint for endpoint, view in app.view_functions.items() if _defined_in(view, modules)
        }
        if not stale:
            return
        for endpoint in stale:
            del app.view_functions[endpoint]
        url_map = app.url_map
        kept = [rule for rule in url_map._rules if rule.endpoint not in stale]
        # Werkzeug's matcher can only add rules: build it again from the ones that stay.
        url_map._matcher = type(url_map._matcher)(url_map.merge_slashes)
        url_map._rules_by_endpoint = {}
        for rule in kept:
            if not rule.build_only:
                url_map._matcher.add(rule)
            url_map._rules_by_endpoint.setdefault(rule.endpoint, []).append(rule)
        url_map._remap = True

    def before_execute(self, modules: list[str]) -> None:
        closure = set(modules)
        self._saved = []
        apps, blueprints = self._scaffolds()
        for bp in blueprints:
            if _blueprint_module(bp) in closure:
                # Defined by a re-running module: a new object replaces it. Until then a module
                # that runs earlier may still decorate it; let it, the object is discarded.
                self._saved.append((bp, {"_got_registered_once": bp._got_registered_once}))
                bp._got_registered_once = False
                continue
            self._saved.append((bp, self._snapshot(bp)))
            self._strip(bp, closure)
            bp._got_registered_once = False
        for app in apps:
            if app.import_name in closure:
                continue  # rebuilt by its own module
            self._saved.append((app, self._snapshot(app)))
            self._strip(app, closure)
            try:
                self._strip_routes(app, closure)
            except AttributeError:  # a Werkzeug whose Map internals differ: routes stay
                pass
            app._got_first_request = False

    def after_execute(self, modules: list[str], succeeded: bool) -> None:
        saved, self._saved = self._saved, []
        if succeeded:
            for obj, state in saved:
                # Setup stays closed where Flask had closed it; a blueprint the new app
                # registered is closed by that registration already.
                for name in ("_got_registered_once", "_got_first_request"):
                    if state.get(name):
                        setattr(obj, name, True)
            return
        for obj, state in saved:
            self._restore(obj, state)

    @staticmethod
    def _restore(obj: Any, state: dict[str, Any]) -> None:
        for name, value in state.items():
            if name == "_rules_by_endpoint":
                url_map = obj.url_map
                url_map._matcher = type(url_map._matcher)(url_map.merge_slashes)
                url_map._rules_by_endpoint = {}
                for rules in value.values():
                    for rule in rules:
                        if not rule.build_only:
                            url_map._matcher.add(rule)
                        url_map._rules_by_endpoint.setdefault(rule.endpoint, []).append(rule)
                url_map._remap = True
            elif isinstance(value, list):
                getattr(obj, name)[:] = value
            elif isinstance(value, dict):
                current = getattr(obj, name)
                current.clear()
                current.update(value)
            else:
                setattr(obj, name, value)

    # -- templates -------------------------------------------------------------------------------

    def files_changed(self, paths: list[str]) -> str | None:
        """Drops the changed templates from every Jinja environment's cache. Templates that
        extend, include or import a changed one look it up at each render, so the rest of the
        cache stays valid and the next page compiles only what changed."""
        real = {os.path.realpath(p) for p in paths}
        names = {os.path.basename(p) for p in real}
        handled = False
        for environment in list(self._environments):
            app = getattr(environment, "app", None)
            cache = environment.cache
            if app is None or cache is None:
                continue
            dirs = tuple(self._template_dirs(app))
            if not any(path.startswith(dirs) for path in real):
                continue
            handled = True
            for key, template in list(cache.items()):
                filename = getattr(template, "filename", None)
                if not isinstance(filename, str) or (
                    os.path.basename(filename) in names and os.path.realpath(filename) in real
                ):
                    with contextlib.suppress(KeyError):  # LRUCache has no pop()
                        del cache[key]
        return "template caches cleared" if handled else None

    @staticmethod
    def _template_dirs(app: Any) -> list[str]:
        dirs = []
        for scaffold in (app, *app.blueprints.values()):
            folder = getattr(scaffold, "template_folder", None)
            root = getattr(scaffold, "root_path", None)
            if folder and root:
                dirs.append(os.path.join(os.path.realpath(os.path.join(root, folder)), ""))
        return dirs

    def watch_patterns(self) -> list[str]:
        return ["**/templates/**"]


def integration() -> Integration:
    return FlaskIntegration()
