"""Why a module is among those a change re-runs, for the integrations' restart reasons: the file
that changed first, then the importers through which the change reached the module that cannot
be hot-reloaded ("app/settings.py changed; its importers re-run: app.config → app.db →
app.models"). Read from the import statements of the modules about to re-run, only once a
restart has been decided (parsing them costs nothing next to a restart)."""

from __future__ import annotations

import ast
import importlib.util
import os
import sys
from collections import deque


def changed_modules(modules: list[str], paths: list[str]) -> list[str]:
    """The modules among `modules` whose source file is one of `paths` (the edited ones)."""
    real = {os.path.realpath(p) for p in paths}
    found = []
    for name in modules:
        file = getattr(sys.modules.get(name), "__file__", None)
        if file and os.path.realpath(file) in real:
            found.append(name)
    return found


def describe(target: str, modules: list[str], paths: list[str]) -> str:
    """The changed file, and the chain of importers from it to `target` (one of `modules`)."""
    changed = changed_modules(modules, paths)
    if target in changed or not changed:
        file = _file(target) if target in changed else None
        return f"{file or target} changed"
    chain = _chain(changed, target, set(modules)) or _chain(changed, target, _first_party())
    first = chain[0] if chain else changed[0]
    importers = " → ".join(chain[1:]) if chain else f"… → {target}"
    return f"{_file(first) or first} changed; its importers re-run: {importers}"


def _first_party() -> set[str]:
    """Every loaded module with a source file outside installed packages: a change can reach a
    module through ones that do not re-run (a function it calls at import reads the change)."""
    from hmr_serve.reload.tracker import FOREIGN_DIRS

    found = set()
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if isinstance(file, str) and file.endswith(".py"):
            if not FOREIGN_DIRS.intersection(file.split(os.sep)):
                found.add(name)
    return found


def _file(name: str) -> str | None:
    file = getattr(sys.modules.get(name), "__file__", None)
    return os.path.relpath(file) if file else None


def _chain(changed: list[str], target: str, modules: set[str]) -> list[str]:
    """The shortest import chain [changed module, importer, ..., target] within `modules`."""
    importers: dict[str, list[str]] = {}
    for name in modules:
        for imported in _imports(name) & modules:
            importers.setdefault(imported, []).append(name)
    came_from: dict[str, str | None] = dict.fromkeys(changed)
    queue = deque(changed)
    while queue:
        name = queue.popleft()
        if name == target:
            chain = [name]
            while (previous := came_from[chain[-1]]) is not None:
                chain.append(previous)
            return chain[::-1]
        for importer in sorted(importers.get(name, ())):
            if importer not in came_from:
                came_from[importer] = name
                queue.append(importer)
    return []


def _imports(name: str) -> set[str]:
    """The modules a module's import statements name (each package on the way included)."""
    module = sys.modules.get(name)
    path = getattr(module, "__file__", None)
    if not path or not path.endswith(".py"):
        return set()
    try:
        with open(path, "rb") as file:
            tree = ast.parse(file.read(), path)
    except (OSError, SyntaxError, ValueError):
        return set()
    package = getattr(module, "__package__", None) or ""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            try:
                base = importlib.util.resolve_name("." * node.level + (node.module or ""), package)
            except (ImportError, ValueError):
                continue
            targets = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        else:
            continue
        for target in targets:
            parts = target.split(".")
            found.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return found
