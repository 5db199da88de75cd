"""What a rebuilt app object inherits from the one it replaces. The ASGI lifespan ran once, on
the first app: what its startup put in `app.state` must survive the rebuild."""

from __future__ import annotations

from typing import Any


def carry_over(old: Any, new: Any) -> None:
    old_state = getattr(getattr(old, "state", None), "_state", None)
    new_state = getattr(getattr(new, "state", None), "_state", None)
    if isinstance(old_state, dict) and isinstance(new_state, dict):
        for key, value in old_state.items():
            new_state.setdefault(key, value)
