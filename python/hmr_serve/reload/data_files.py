"""Data files as dependencies: a file a first-party module opens for reading while it imports
(a JSON, YAML or TOML config, SQL, a prompt) is what its values were built from, so a change to
it re-runs that module, then propagates by names like a source edit.

Python raises the `open` audit event for `open`, `io.open`, `Path.read_text`/`read_bytes`,
`os.open` and `io.open_code`; one audit hook (they cannot be removed, so it is installed once
and does nothing outside the recording windows) attributes each read to the innermost module
whose top-level code is running, found by walking up to the nearest `<module>` frame. Files
under the watched directories count, except those in virtualenvs and site-packages and Python
sources and bytecode (imports read those). They are watched from then on, whatever
`--reload-include` says.

Files read during lifespan startup are recorded apart: startup does not re-run on a hot reload,
so a change to one of them takes the full restart a fresh process would amount to.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from hmr_serve.reload.tracker import FOREIGN_DIRS, ImportTracker

_CODE_SUFFIXES = (".py", ".pyc", ".pyo", ".pyd", ".so", ".pth")
_WRITE_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_TRUNC


class DataFiles:
    def __init__(self, engine: Any, tracker: ImportTracker, entry: str | None = None) -> None:
        self.engine = engine
        self.tracker = tracker
        self.entry = entry  # a `__main__` whose reads count too (script mode's entry)
        self.readers: dict[str, set[str]] = {}  # real path -> modules that read it at import
        self.startup_files: set[str] = set()  # read during lifespan startup
        self._importing = 0
        self._starting = 0
        self._installed = False

    def install(self) -> None:
        if not self._installed:
            sys.addaudithook(self._audit)
            self._installed = True

    @contextmanager
    def importing(self) -> Iterator[None]:
        """Reads made while modules import (the app loading, a reload) are recorded."""
        self._importing += 1
        try:
            yield
        finally:
            self._importing -= 1

    @contextmanager
    def starting(self) -> Iterator[None]:
        """Reads made during lifespan startup are recorded apart."""
        self._starting += 1
        try:
            yield
        finally:
            self._starting -= 1

    def readers_of(self, path: str) -> set[str]:
        return self.readers.get(os.path.realpath(path), set())

    def read_at_startup(self, path: str) -> bool:
        return os.path.realpath(path) in self.startup_files

    def _audit(self, event: str, args: tuple[Any, ...]) -> None:
        if event != "open" or not (self._importing or self._starting):
            return
        try:
            self._opened(*args[:3])
        except Exception:  # never break the user's open()
            pass

    def _opened(self, path: Any, mode: Any, flags: Any) -> None:
        if isinstance(path, int):
            return  # an fd: its file was opened (and judged) already
        if isinstance(mode, str):
            if any(c in mode for c in "wax") and "+" not in mode:
                return
        elif isinstance(flags, int) and flags & _WRITE_FLAGS and not flags & os.O_RDWR:
            return
        path = os.fsdecode(os.fspath(path))
        if path.endswith(_CODE_SUFFIXES):
            return
        real = os.path.realpath(path)
        if not self._watched(real) or not os.path.isfile(real):
            return
        if self._starting and not self._importing:
            if real not in self.startup_files:
                self.startup_files.add(real)
                self.engine.watch_file(real)
            return
        module = _importing_module()
        if module is None or (module != self.entry and self.tracker.source_path(module) is None):
            return
        readers = self.readers.setdefault(real, set())
        if module not in readers:
            readers.add(module)
            self.engine.watch_file(real)

    def _watched(self, real: str) -> bool:
        if not real.startswith(self.tracker.roots):
            return False
        return not FOREIGN_DIRS.intersection(real.split(os.sep))


def _importing_module() -> str | None:
    """The module whose top-level code the current call comes from, if any."""
    frame = sys._getframe(2)
    while frame is not None:
        if frame.f_code.co_name == "<module>":
            name = frame.f_globals.get("__name__")
            return name if isinstance(name, str) else None
        frame = frame.f_back
    return None
