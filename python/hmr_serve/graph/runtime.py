"""`hmr-serve graph --runtime TARGET`: import the target under the server's own import tracker,
so imports the static pass cannot see (`importlib.import_module(name)` with a computed name,
plugins found at run time) join the map, and the order modules began importing is known."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from hmr_serve import _core
from hmr_serve.loading import (
    AppLoadError,
    import_module,
    resolve_attribute,
    split_import_string,
)
from hmr_serve.reload.tracker import ImportTracker


class RuntimeImportError(Exception):
    def __init__(self, message: str, details: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


@dataclass(frozen=True)
class RuntimeImports:
    #: First-party module name → its real source path.
    paths: dict[str, str]
    #: (importer, imported) module names, as recorded while they ran.
    edges: list[tuple[str, str]]
    #: Module name → where it began importing (0 first).
    order: dict[str, int]


def import_target(target: str, roots: Sequence[str], sys_path: Sequence[str]) -> RuntimeImports:
    """Imports `target` (MODULE:ATTR, or a module) with `sys_path` in front of `sys.path`,
    recording first-party modules: those under `roots`, as the server judges them. What the
    app prints while importing goes to stderr, so the map on stdout stays clean."""
    try:
        module_name, attribute = split_import_string(target) if ":" in target else (target, "")
    except AppLoadError as exc:
        raise RuntimeImportError(exc.message) from None
    sys.path[:0] = [path for path in sys_path if path not in sys.path]
    tracker = ImportTracker(_core.ReloadEngine(), roots)
    tracker.install()
    try:
        with contextlib.redirect_stdout(sys.stderr):
            module = import_module(module_name)
            if attribute:
                resolve_attribute(module, module_name, attribute)
    except AppLoadError as exc:
        raise RuntimeImportError(exc.message, exc.details) from None
    finally:
        tracker.uninstall()
    tracker.sweep()
    paths = {name: tracker.source_path(name) for name in tracker.tracked}
    edges = [
        (importer, imported)
        for importer in sorted(tracker.tracked)
        for imported in tracker.engine.dependencies(importer)
    ]
    order = {name: tracker.start_position(name) for name in tracker.tracked}
    return RuntimeImports({k: v for k, v in paths.items() if v}, edges, order)
