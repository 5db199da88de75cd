"""Shared helper for the raw ASGI test apps: ASGI scope values as JSON, so an app can answer
with the scope it saw."""

from __future__ import annotations


def jsonable(value):
    """Convert an ASGI scope value to JSON, keeping bytes recognisable."""
    if isinstance(value, bytes):
        return {"bytes": value.decode("latin-1")}
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return repr(value)
