"""Shared helper for the test apps: append a line to the markers file.

The file is named by the HMR_TEST_MARKERS environment variable, which the
tests set per server, so a test can see what ran inside the server process
(lifespan startup/shutdown, close() calls, background tasks, ...).
"""

from __future__ import annotations

import os


def mark(text: str) -> None:
    path = os.environ.get("HMR_TEST_MARKERS")
    if not path:
        return
    with open(path, "a", encoding="utf-8") as f:
        f.write(text + "\n")
        f.flush()
