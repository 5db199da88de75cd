"""Functions a framework calls once and keeps what they returned: Wagtail's menu item, icon,
search area, admin URL and viewset hooks. The early cutoff (reload/cutoff.py) patches an edited
function body in place without re-running anything; for these that would leave the old result
where the framework keeps it (the old viewset, the old menu item), so an edit reaching one
re-runs its module instead, and the integration rebuilds what was built from it."""

from __future__ import annotations

import weakref
from typing import Any

_functions: weakref.WeakSet[Any] = weakref.WeakSet()


def mark(function: Any) -> None:
    """`function` (or a bound method's function) is called once; what it returns is kept."""
    target = getattr(function, "__func__", function)
    try:
        _functions.add(target)
    except TypeError:  # cannot be weakly referenced (a builtin): never patched in place anyway
        pass


def marked() -> list[Any]:
    return list(_functions)
