"""Why a module is among those a change re-runs, for the integrations' restart reasons: the file
that changed first, then the importers through which the change reached the module that cannot
be hot-reloaded ("app/settings.py changed → app.config → app.db → app.models"). Read from the
import statements of the project's modules, only once a restart has been decided (parsing them
costs nothing next to a restart)."""

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
    """The changed file, then the importers from it to `target` (one of `modules`):
    "app/settings.py changed → app.config → app.models"."""
    changed = changed_modules(modules, paths)
    if target in changed or not changed:
        file = _file(target) if target in changed else None
        return f"{file or target} changed"
    chain = _chain(set(changed), target)
    if not chain:  # reached by no import statement (a dynamic import): the ends only
        chain = [changed[0], "…", target]
    return " → ".join([f"{_file(chain[0]) or chain[0]} changed", *chain[1:]])


def _file(name: str) -> str | None:
    file = getattr(sys.modules.get(name), "__file__", None)
    return os.path.relpath(file) if file else None


def _chain(changed: set[str], target: str) -> list[str]:
    """The shortest import chain [changed module, importer, ..., target] through the project's
    modules (not only those that re-run: an importer that stays may pass the change on), found
    by walking back from `target` through what it imports."""
    came_from: dict[str, str | None] = {target: None}
    queue = deque([target])
    while queue:
        name = queue.popleft()
        for imported in sorted(_imports(name)):
            if imported in came_from or not _is_project_module(imported):
                continue
            came_from[imported] = name
            if imported in changed:
                chain = [imported]
                while (importer := came_from[chain[-1]]) is not None:
                    chain.append(importer)
                return chain
            queue.append(imported)
    return []


def _is_project_module(name: str) -> bool:
    file = getattr(sys.modules.get(name), "__file__", None)
    if not file or not file.endswith(".py"):
        return False
    real = os.path.realpath(file)
    if _INSTALLED.intersection(real.split(os.sep)):
        return False
    return not any(real.startswith(prefix) for prefix in _PREFIXES)


# Where installed code lives: never a project's modules.
_INSTALLED = frozenset({"site-packages", "dist-packages"})
_PREFIXES = tuple(
    os.path.join(os.path.realpath(p), "") for p in {sys.prefix, sys.base_prefix, sys.exec_prefix}
)


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
