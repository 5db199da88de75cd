"""Raises at import time, to test how the server reports user errors."""


def helper():
    raise RuntimeError("broken on purpose at import time")


helper()

app = None
