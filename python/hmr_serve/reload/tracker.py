"""Records, while code imports, which first-party modules exist, the order in which they first
started importing, and who imports whom. Hooks `builtins.__import__` (every import statement,
relative ones included) and `importlib.import_module` (which bypasses `__import__`); a finder
first in `sys.meta_path` sees each module begin importing.

While a reload runs, `before_import` (set by the executor) hears of every import statement
before it executes, so a module it reaches that is due to re-run re-runs right there, as a fresh
process would import it at that point."""

from __future__ import annotations

import builtins
import importlib
import importlib.util
import itertools
import os
import stat
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from types import ModuleType
from typing import Any

# Directories whose modules are never the user's own code, even inside a watched directory.
FOREIGN_DIRS = frozenset(
    {"site-packages", "dist-packages", ".venv", "venv", "env", ".tox", ".nox", "node_modules"}
)


class _StartRecorder:
    """A meta path finder that finds nothing: the import system asks it first, exactly when a
    module begins importing (it is not in sys.modules yet), so it records that order."""

    def __init__(self) -> None:
        self.started: dict[str, int] = {}
        # When each began importing (time.time()): a file written since may not be what ran.
        self.started_at: dict[str, float] = {}
        self._counter = itertools.count()

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name not in self.started:
            self.started[name] = next(self._counter)
            self.started_at[name] = time.time()
        return None

    def position(self, name: str) -> int:
        """When `name` started importing; a module that never passed the finder counts from
        when it was first seen."""
        try:
            return self.started[name]
        except KeyError:
            position = self.started[name] = next(self._counter)
            return position


ImportListener = Callable[[str, Sequence[str]], None]


class ImportTracker:
    def __init__(self, engine: Any, roots: Iterable[str]) -> None:
        self.engine = engine
        self._roots = tuple(os.path.join(os.path.realpath(r), "") for r in roots)
        # Module name -> its real source path, or None when it is not first-party.
        self._verdicts: dict[str, str | None] = {}
        self._first_party: set[str] = set()  # verdict is a path; `sweep` checks them cheaply
        self._real_dirs: dict[str, str] = {}
        self.tracked: set[str] = set()
        self._original_import = builtins.__import__
        self._original_import_module = importlib.import_module
        self._starts = _StartRecorder()
        #: Called with (absolute module name, fromlist) before an import statement runs.
        self.before_import: ImportListener | None = None
        #: Called with (name, module) once a first-party module finished its first import.
        self.on_first_import: Callable[[str, ModuleType], None] | None = None

    @property
    def roots(self) -> tuple[str, ...]:
        """The watched directories, real paths ending in a separator."""
        return self._roots

    # -- first-party test ----------------------------------------------------------------------

    def source_path(self, name: str, namespace: dict[str, Any] | None = None) -> str | None:
        """The module's real source path if it is first-party, else None (cached by name)."""
        try:
            return self._verdicts[name]
        except KeyError:
            pass
        if namespace is None:
            module = sys.modules.get(name)
            if module is None:
                return None
            namespace = module.__dict__
        spec = namespace.get("__spec__")
        origin = getattr(spec, "origin", None) if spec is not None else None
        verdict = None
        # `__main__` is a script's entry (`hmr-serve run`), run anew by its front-end, never
        # re-executed in place (and, between runs, the name holds hmr-serve's own entry).
        located = origin and origin.endswith(".py") and getattr(spec, "has_location", False)
        if name != "__main__" and located:
            path = self._real_path(origin)
            parts = path.split(os.sep)
            if path.startswith(self._roots) and not FOREIGN_DIRS.intersection(parts):
                verdict = path
                self._first_party.add(name)
        self._verdicts[name] = verdict
        return verdict

    def _real_path(self, path: str) -> str:
        """os.path.realpath, with the directories' real paths cached: at start-up every imported
        module is judged, and realpath costs one lstat per path component."""
        directory, base = os.path.split(path)
        real_dir = self._real_dirs.get(directory)
        if real_dir is None:
            real_dir = self._real_dirs[directory] = os.path.realpath(directory)
        try:
            if stat.S_ISLNK(os.lstat(path).st_mode):
                return os.path.realpath(path)
        except OSError:
            return os.path.realpath(path)
        return os.path.join(real_dir, base)

    def forget(self, name: str) -> None:
        self._verdicts.pop(name, None)
        self._first_party.discard(name)
        self.tracked.discard(name)
        self._starts.started.pop(name, None)
        self._starts.started_at.pop(name, None)

    def start_position(self, name: str) -> int:
        """Where `name` began importing in the process's import order (a fresh process runs
        modules in this order, each importer pausing while what it imports runs)."""
        return self._starts.position(name)

    # -- recording -----------------------------------------------------------------------------

    def _note_finished(self, name: str) -> None:
        """Registers `name` (and its parent packages) if it has finished importing."""
        # Most imports are of modules already judged foreign (the stdlib, site-packages): done.
        if name in self.tracked or self._verdicts.get(name, "") is None:
            return
        dot = name.rfind(".")
        if dot > 0:
            self._note_finished(name[:dot])
        module = sys.modules.get(name)
        if module is None:
            return
        spec = getattr(module, "__spec__", None)
        if spec is None or getattr(spec, "_initializing", False):
            return  # still running (an import cycle): it is registered when it finishes
        path = self.source_path(name, module.__dict__)
        if path is None:
            return
        self.tracked.add(name)
        self._starts.position(name)
        self.engine.add_module(
            name, path, hasattr(module, "__path__"), self._starts.started_at.get(name)
        )
        if self.on_first_import is not None:
            self.on_first_import(name, module)

    def _record(self, importer: str | None, targets: list[str]) -> None:
        for target in targets:
            self._note_finished(target)
        if importer is None or self._verdicts.get(importer) is None:
            return
        for target in targets:
            if target != importer and self.source_path(target) is not None:
                self.engine.add_edge(importer, target)

    def sweep(self) -> None:
        """Registers first-party modules that were imported without passing the hooks."""
        # Set operations in C: only names never judged, and first-party ones not yet tracked.
        candidates = (sys.modules.keys() - self._verdicts.keys()) | (
            (self._first_party - self.tracked) & sys.modules.keys()
        )
        for name in candidates:
            if name not in self.tracked and self.source_path(name) is not None:
                self._note_finished(name)

    # -- hooks ---------------------------------------------------------------------------------

    def _import(
        self,
        name: str,
        globals: dict[str, Any] | None = None,  # noqa: A002 - the signature of __import__
        locals: Any = None,  # noqa: A002
        fromlist: Any = (),
        level: int = 0,
    ) -> ModuleType:
        listener = self.before_import
        if listener is not None:
            target = _absolute(name, globals, level)
            if target is not None:
                listener(target, fromlist or ())
        module = self._original_import(name, globals, locals, fromlist, level)
        importer = globals.get("__name__") if globals else None
        # Start-up fast path: foreign code importing a foreign module, most import statements.
        verdicts = self._verdicts
        if (
            not level
            and verdicts.get(name, "") is None
            and verdicts.get(importer, "") is None  # type: ignore[arg-type]
            and (not fromlist or getattr(module, "__path__", None) is None)
        ):
            return module
        if importer is not None and importer not in self._verdicts:
            self.source_path(importer, globals)
        absolute = _absolute(name, globals, level)
        if absolute is None:
            return module
        targets = [absolute]
        # Only a package has submodules to import by `from`: not `from typing import Any`.
        if fromlist and getattr(module, "__path__", None) is not None:
            for item in fromlist:
                if item != "*" and f"{absolute}.{item}" in sys.modules:
                    targets.append(f"{absolute}.{item}")
        self._record(importer, targets)
        return module

    def _import_module(self, name: str, package: str | None = None) -> ModuleType:
        listener = self.before_import
        if listener is not None:
            try:
                target = importlib.util.resolve_name(name, package) if name[:1] == "." else name
            except (ImportError, ValueError):
                target = None  # the real call raises the proper error
            if target:
                listener(target, ())
        module = self._original_import_module(name, package)
        caller = sys._getframe(1).f_globals
        importer = caller.get("__name__")
        if importer is not None and importer not in self._verdicts:
            self.source_path(importer, caller)
        self._record(importer, [module.__name__])
        return module

    def install(self) -> None:
        builtins.__import__ = self._import
        importlib.import_module = self._import_module  # type: ignore[assignment]
        sys.meta_path.insert(0, self._starts)  # type: ignore[arg-type]

    def uninstall(self) -> None:
        builtins.__import__ = self._original_import
        importlib.import_module = self._original_import_module  # type: ignore[assignment]
        if self._starts in sys.meta_path:
            sys.meta_path.remove(self._starts)  # type: ignore[arg-type]


def _absolute(name: str, globals: dict[str, Any] | None, level: int) -> str | None:  # noqa: A002
    """The absolute name an import statement names, or None when it cannot be resolved (the
    import itself then raises)."""
    if not level:
        return name
    package = globals.get("__package__") if globals else None
    if not package:
        return None
    try:
        return importlib.util.resolve_name("." * level + name, package)
    except (ImportError, ValueError):
        return None
