"""Framework fix-ups around a reload. Each integration is used only once its framework has been
imported by the app, so an app that never imports Django never loads the Django integration.
An app or library can add its own with `register()`. An exception inside a hook is logged with
its traceback and that hook is skipped: the reload goes on (or rolls back) as without it."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

from hmr_serve.logs import logger


class Integration:
    """What a framework integration may do; every hook is optional."""

    #: The top-level package whose presence in sys.modules activates the integration.
    framework = ""

    def restart_reason(self, modules: list[str], paths: list[str]) -> str | None:
        """Why this change cannot be hot-reloaded (the server restarts instead), or None."""
        return None

    def before_execute(self, modules: list[str]) -> None:
        """Runs with the gate closed, before the closure `modules` is re-executed."""

    def after_execute(self, modules: list[str], succeeded: bool) -> None:
        """Runs after the re-execution committed (`succeeded`) or rolled back."""

    def module_executed(self, name: str, module: ModuleType) -> None:
        """A first-party module finished running: its first import (from the first module
        imported after the framework was) or a re-execution, so what it registers at start-up
        can be told apart from what its re-execution will register again."""

    def can_absorb(self, importer: str, names: dict[str, frozenset[str]]) -> bool:
        """Whether this integration may apply, in place, a change of these names (module ->
        names) that `importer` read while importing, instead of re-running `importer`. Asked
        before the reload runs, from the values the names have now."""
        return False

    def absorb(
        self, importer: str, changes: dict[str, dict[str, tuple[Any, Any]]]
    ) -> Callable[[], None] | None:
        """`importer` would re-run only because these top-level names changed: {module: {name:
        (old value, new value)}}. Called with the request gate closed, after the changed
        modules re-ran. Return None to let it re-run, or update the live objects so that they
        equal what a fresh process would build and return what undoes exactly that update
        (called if the reload later rolls back)."""
        return None

    def app_replaced(self, old: object, new: object) -> None:
        """The reload rebuilt the app object: carry over what the old one held at run time."""

    def files_changed(self, paths: list[str]) -> bool:
        """Changed files that are not loaded modules (templates, translations). True when this
        integration dealt with them, so the pages must be refreshed but nothing re-executed."""
        return False

    def watch_patterns(self) -> list[str]:
        """Extra globs to watch (besides *.py) once the framework is active."""
        return []


# (framework package, integration module) in the order they run.
_KNOWN = (
    ("django", "hmr_serve.integrations.django"),
    ("wagtail", "hmr_serve.integrations.wagtail"),
    ("flask", "hmr_serve.integrations.flask"),
    ("starlette", "hmr_serve.integrations.starlette"),
    ("sqlalchemy", "hmr_serve.integrations.sqlalchemy"),
)
_active: dict[str, Integration] = {}
_registered: list[Integration] = []


def register(integration: Integration) -> None:
    """Adds an integration of the app's own (for its own registries), active from now on."""
    if integration not in _registered:
        _registered.append(integration)


def active() -> list[Integration]:
    for framework, module_name in _KNOWN:
        if framework in sys.modules and framework not in _active:
            try:
                module = importlib.import_module(module_name)
                _active[framework] = module.integration()
            except Exception as exc:
                # None written for it (yet), or a broken one (reported once): a no-op stands in.
                if not (isinstance(exc, ModuleNotFoundError) and exc.name == module_name):
                    _failed(module_name, "import", exc)
                _active[framework] = Integration()
    return [*_active.values(), *_registered]


def _failed(name: str, hook: str, exc: BaseException) -> None:
    logger.error("integration %s: %s raised; skipped", name, hook, exc_info=exc)


def call(integration: Integration, hook: str, *args: Any) -> Any:
    """`integration.<hook>(*args)`, or None (logged with its traceback) if it raises."""
    try:
        return getattr(integration, hook)(*args)
    except Exception as exc:
        _failed(type(integration).__name__, hook, exc)
        return None


def call_all(integrations: list[Integration], hook: str, *args: Any) -> list[Any]:
    return [call(integration, hook, *args) for integration in integrations]


def module_executed(name: str, module: ModuleType) -> None:
    """The tracker's report of a first import."""
    try:
        current = active()
    except Exception as exc:  # never break the app's own import
        _failed("hmr_serve.integrations", "activation", exc)
        return
    call_all(current, "module_executed", name, module)
