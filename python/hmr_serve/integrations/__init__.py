"""Framework fix-ups around a reload. Each integration is used only once its framework has been
imported by the app, so an app that never imports Django never loads the Django integration."""

from __future__ import annotations

import importlib
import sys


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
    ("flask", "hmr_serve.integrations.flask"),
    ("starlette", "hmr_serve.integrations.starlette"),
    ("sqlalchemy", "hmr_serve.integrations.sqlalchemy"),
)
_active: dict[str, Integration] = {}


def active() -> list[Integration]:
    for framework, module_name in _KNOWN:
        if framework in sys.modules and framework not in _active:
            try:
                module = importlib.import_module(module_name)
            except ModuleNotFoundError as exc:
                if exc.name != module_name:
                    raise
                continue  # no integration written for it (yet)
            _active[framework] = module.integration()
    return list(_active.values())
