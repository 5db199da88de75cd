"""Records, while code imports, which first-party modules exist, the order in which they first
finished importing, and who imports whom. Hooks `builtins.__import__` (every import statement,
relative ones included) and `importlib.import_module` (which bypasses `__import__`)."""

from __future__ import annotations

import builtins
import importlib
import importlib.util
import os
import stat
import sys
from collections.abc import Iterable
from types import ModuleType
from typing import Any

# Directories whose modules are never the user's own code, even inside a watched directory.
_FOREIGN_DIRS = frozenset(
    {"site-packages", "dist-packages", ".venv", "venv", "env", ".tox", ".nox", "node_modules"}
)


class ImportTracker:
    def __init__(self, engine: Any, roots: Iterable[str]) -> None:
        self.engine = engine
        self._roots = tuple(os.path.join(os.path.realpath(r), "") for r in roots)
        # Module name -> its real source path, or None when it is not first-party.
        self._verdicts: dict[str, str | None] = {}
        self._real_dirs: dict[str, str] = {}
        self.tracked: set[str] = set()
        self._original_import = builtins.__import__
        self._original_import_module = importlib.import_module

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
        if origin and origin.endswith(".py") and getattr(spec, "has_location", False):
            path = self._real_path(origin)
            parts = path.split(os.sep)
            if path.startswith(self._roots) and not _FOREIGN_DIRS.intersection(parts):
                verdict = path
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
        self.tracked.discard(name)

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
        self.engine.add_module(name, path, hasattr(module, "__path__"))

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
        for name in list(sys.modules):
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
        if level:
            package = globals.get("__package__") if globals else None
            if not package:
                return module
            try:
                absolute = importlib.util.resolve_name("." * level + name, package)
            except ImportError:
                return module
        else:
            absolute = name
        targets = [absolute]
        # Only a package has submodules to import by `from`: not `from typing import Any`.
        if fromlist and getattr(module, "__path__", None) is not None:
            for item in fromlist:
                if item != "*" and f"{absolute}.{item}" in sys.modules:
                    targets.append(f"{absolute}.{item}")
        self._record(importer, targets)
        return module

    def _import_module(self, name: str, package: str | None = None) -> ModuleType:
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

    def uninstall(self) -> None:
        builtins.__import__ = self._original_import
        importlib.import_module = self._original_import_module  # type: ignore[assignment]
