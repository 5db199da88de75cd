"""Starlette and FastAPI: a rebuilt app keeps what the one-time lifespan put in `app.state` and
the test-style `dependency_overrides` a developer set at run time. With FastAPI, a router module
that re-ran has its new router put in place in the live app instead of the module including it
re-running (fastapi_routers.py), which spares re-including every router of a large app."""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

from hmr_serve.integrations import Integration, fastapi_includes, fastapi_routers


class StarletteIntegration(Integration):
    framework = "starlette"

    def __init__(self) -> None:
        self._record_includes()

    def module_executed(self, name: str, module: ModuleType) -> None:
        self._record_includes()

    @staticmethod
    def _record_includes() -> None:
        # As soon as FastAPI is there: the includes made from then on are the ones a router
        # replacement can reproduce (FastAPI is never imported on a Starlette app's behalf).
        if not fastapi_includes.installed() and "fastapi.routing" in sys.modules:
            fastapi_includes.install()

    def can_absorb(self, importer: str, names: dict[str, frozenset[str]]) -> bool:
        return fastapi_routers.can_absorb(importer, names)

    def absorb(
        self, importer: str, changes: dict[str, dict[str, tuple[Any, Any]]]
    ) -> Callable[[], None] | None:
        """`importer` would re-run only because these top-level names of these modules changed:
        {module name: {name: (old value, new value)}}. When they are all FastAPI routers it
        included, the new ones replace the old ones in the live app(s), as a fresh process's
        includes would have placed them; returns what undoes that, or None (it re-runs)."""
        return fastapi_routers.absorb(importer, changes)

    def app_replaced(self, old: Any, new: Any) -> None:
        old_state = getattr(getattr(old, "state", None), "_state", None)
        new_state = getattr(getattr(new, "state", None), "_state", None)
        if isinstance(old_state, dict) and isinstance(new_state, dict):
            for key, value in old_state.items():
                new_state.setdefault(key, value)
        old_overrides = getattr(old, "dependency_overrides", None)
        new_overrides = getattr(new, "dependency_overrides", None)
        if isinstance(old_overrides, dict) and isinstance(new_overrides, dict):
            for key, value in old_overrides.items():
                new_overrides.setdefault(key, value)


def integration() -> Integration:
    return StarletteIntegration()
