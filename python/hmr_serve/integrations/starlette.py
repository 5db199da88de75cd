"""Starlette and FastAPI: a rebuilt app keeps what the one-time lifespan put in `app.state` and
the test-style `dependency_overrides` a developer set at run time."""

from __future__ import annotations

from typing import Any

from hmr_serve.integrations import Integration


class StarletteIntegration(Integration):
    framework = "starlette"

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
