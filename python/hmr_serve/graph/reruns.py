"""`hmr-serve graph --closure FILE [--names A,B]`: which modules of a save's import closure a
reload re-runs, and the name-level reason for each, decided by the reload engine's own rules
(reload/propagation.py) from the Rust static pass's reads, without running the app.

A module re-runs when, while it imports, it reads a name of a re-run module that changes,
uses that module whole (`from m import *`, the module object passed around), calls code that
reads a changing name, or shares an import cycle with a re-run module. What a re-run module
changes in turn is predicted from its source (reload/prediction.py), so the question goes on
to its importers. A save changes everything its file binds, unless `--names` says which
names the edit touches.

Without `--runtime` nothing is imported, so what a value is stays unknown: `m.f` called at
import leads to the code of `m` when `m` defines `f` (or re-exports it), and a class of a
re-run module counts as a new object unless the source shows the reload keeps it (no
metaclass or decorator, bases from the module itself or the standard library); so does a
function under a decorator that may wrap it. With `--runtime` the live values decide, as in
the server."""

from __future__ import annotations

import ast
import builtins
import os
import sys
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from hmr_serve import _core
from hmr_serve.graph.model import ImportMap
from hmr_serve.reload import propagation
from hmr_serve.reload.prediction import ALL, predict


class NamesError(ValueError):
    """`--names` asks about a name the saved file does not bind, or a file that does not
    parse."""


@dataclass(frozen=True)
class Verdict:
    reruns: bool
    #: Why it re-runs; None for a module that does not (its import is the reason it is listed).
    reason: str | None
    #: The modules from the saved one to this one, each re-run because of the one before.
    chain: tuple[int, ...] = ()


def verdicts(
    graph: ImportMap, members: Iterable[int], saved: int, names: Collection[str] | None
) -> dict[int, Verdict]:
    """For each module of `members` (the saved file's import closure), whether a save to
    `saved` that changes `names` (None: anything it binds) re-runs it, and why."""
    members = set(members)
    reads = propagation.ReadsCache(_ParsedOnDemand(graph))
    first_party = {module for module in graph.modules if module}
    decider = _StaticDecider(graph, reads, first_party.__contains__)
    predicted: dict[str, frozenset[str]] = {}
    found: dict[int, Verdict] = {}
    for component in graph.components(members):
        if saved in component:
            found.update({index: Verdict(False, None) for index in component})
            found[saved] = Verdict(True, "saved", (saved,))
            predicted[graph.label(saved)] = _saved_changes(graph, saved, names)
        else:
            for index in component:
                found[index] = _decide(graph, decider, members, predicted, found, index)
        first = next((i for i in component if found[i].reruns), None)
        if first is None:
            continue
        for index in component:
            if not found[index].reruns:
                cycle = f"in an import cycle with {graph.label(first)}"
                found[index] = Verdict(True, cycle, (*found[first].chain, index))
        for index in component:
            # Only importers look at what it changes (predicting costs a parse).
            if index != saved and any(i in members for i in graph.importers[index]):
                predicted[graph.label(index)] = _changes_when_rerun(graph, index, predicted)
    return found


def _decide(
    graph: ImportMap,
    decider: _StaticDecider,
    members: set[int],
    predicted: Mapping[str, frozenset[str]],
    found: Mapping[int, Verdict],
    index: int,
) -> Verdict:
    deps = [d for d in graph.deps[index] if d in members]
    why, hits = decider.decide(graph.label(index), [graph.label(d) for d in deps], predicted)
    if why is None and hits:
        read = [f"{module}.{name}" for module, names in hits.items() for name in sorted(names)]
        why = f"reads {', '.join(read)} at import"
    if why is None:
        return Verdict(False, None)
    # The chain goes through the dependency whose change it reacts to: one whose names it
    # read, else any that re-runs (a call or a whole-module use may reach it another way).
    changed = [d for d in deps if d in found and found[d].reruns]
    through = next((d for d in changed if graph.label(d) in hits), None)
    if through is None:
        through = changed[0] if changed else None
    chain = found[through].chain if through is not None else ()
    return Verdict(True, why, (*chain, index))


# -- what a re-run changes -------------------------------------------------------------------


def _saved_changes(graph: ImportMap, saved: int, names: Collection[str] | None) -> frozenset[str]:
    """The names the save changes: `names` and what the file derives from them while it
    imports (`C = B * 2`), or every name when the edit is not known."""
    if names is None:
        return ALL
    path = graph.files[saved]
    source = _source(path)
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError) as exc:
        raise NamesError(
            f"{graph.label(saved)} does not parse ({exc}), so --names cannot be checked against it"
        ) from None
    binding = {name: [stmt for stmt in tree.body if name in _binds(stmt)] for name in names}
    unbound = sorted(name for name, statements in binding.items() if not statements)
    if unbound:
        raise NamesError(f"--names: {graph.label(saved)} binds no top-level {', '.join(unbound)}")
    # Without the statements binding them, the file is "what it was before the edit": the
    # prediction then takes those statements, and every statement reading what they bind, as
    # edited.
    dropped: set[int] = set()
    for statements in binding.values():
        for stmt in statements:
            first = min([stmt.lineno, *(d.lineno for d in getattr(stmt, "decorator_list", ()))])
            dropped.update(range(first, (stmt.end_lineno or stmt.lineno) + 1))
    lines = source.splitlines(keepends=True)
    before = b"".join(line for number, line in enumerate(lines, 1) if number not in dropped)
    changes = predict(
        graph.label(saved),
        _is_package(path),
        source,
        before,
        _namespace_or_stand_ins(graph, saved, source),
        {},
    )
    return changes | frozenset(names)


def _changes_when_rerun(
    graph: ImportMap, index: int, changes: Mapping[str, frozenset[str]]
) -> frozenset[str]:
    path = graph.files[index]
    try:
        source = _source(path)
    except OSError:
        return ALL
    return predict(
        graph.label(index),
        _is_package(path),
        source,
        None,
        _namespace_or_stand_ins(graph, index, source),
        changes,
    )


def _binds(stmt: ast.stmt) -> set[str]:
    """The top-level names a statement of a module binds (not those of its functions)."""
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {stmt.name}
    found: set[str] = set()
    todo: list[ast.AST] = [stmt]
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            found.add(node.name)
            continue
        if isinstance(
            node, (ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)
        ):
            continue  # their own scopes
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            found.add(node.id)
        elif isinstance(node, ast.alias):
            found.add((node.asname or node.name).partition(".")[0])
        todo.extend(ast.iter_child_nodes(node))
    return found


def _namespace(graph: ImportMap, index: int) -> Mapping[str, Any]:
    """The module's live namespace when `--runtime` imported this very file, else nothing."""
    module = sys.modules.get(graph.label(index))
    origin = getattr(getattr(module, "__spec__", None), "origin", None)
    if not origin or graph.index_of_real_path(os.path.realpath(origin)) != index:
        return {}
    return module.__dict__


def _namespace_or_stand_ins(graph: ImportMap, index: int, source: bytes) -> Mapping[str, Any]:
    """What the prediction judges kept objects by: the live namespace, or without one,
    stand-ins for the classes a reload surely keeps (patched in place): those whose metaclass
    and bases' `__init_subclass__` cannot register them, as far as the source tells (no
    keywords, no decorators, bases from this module or the standard library)."""
    live = _namespace(graph, index)
    if live:
        return live
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return {}
    module = graph.label(index)
    # Each name an import binds: whether it comes from the standard library.
    plain_sources: dict[str, bool] = {}
    for stmt in tree.body:
        if isinstance(stmt, ast.Import):
            for alias in stmt.names:
                top = alias.name.partition(".")[0]
                plain_sources[alias.asname or top] = top in sys.stdlib_module_names
        elif isinstance(stmt, ast.ImportFrom) and stmt.module and not stmt.level:
            top = stmt.module.partition(".")[0]
            for alias in stmt.names:
                plain_sources[alias.asname or alias.name] = top in sys.stdlib_module_names
    stand_ins: dict[str, Any] = {}
    for stmt in tree.body:
        if not isinstance(stmt, ast.ClassDef):
            continue
        if (
            not stmt.keywords
            and not stmt.decorator_list
            and all(_plain_base(base, stand_ins, plain_sources) for base in stmt.bases)
        ):
            stand_ins[stmt.name] = type(
                stmt.name, (), {"__module__": module, "__qualname__": stmt.name}
            )
        else:
            stand_ins.pop(stmt.name, None)
    return stand_ins


def _plain_base(base: ast.expr, own: Mapping[str, Any], imported: Mapping[str, bool]) -> bool:
    while isinstance(base, ast.Attribute):
        base = base.value
    if not isinstance(base, ast.Name):
        return False
    if base.id in own:
        return True
    if base.id in imported:
        return imported[base.id]
    return isinstance(getattr(builtins, base.id, None), type)


def _source(path: str) -> bytes:
    with open(path, "rb") as file:
        return file.read()


def _is_package(path: str) -> bool:
    return os.path.basename(path) == "__init__.py"


# -- the static pass's reads, and the code a value leads to --------------------------------------


class _ParsedOnDemand:
    """What `propagation.ReadsCache` asks of the reload engine: the reads of a module, parsed
    by the Rust static pass the first time they are asked for, so a closure parses only the
    modules it looks at."""

    def __init__(self, graph: ImportMap) -> None:
        self.graph = graph
        self.engine = _core.ReloadEngine()

    def reads(self, name: str) -> Any:
        index = self.graph.index_of_module(name)
        if index is None:
            return None
        path = self.graph.files[index]
        if self.engine.add_module(name, path, _is_package(path)):
            self.engine.scan([path])
        return self.engine.reads(name)

    def take_reparsed(self) -> list[str]:
        return []  # the sources do not change while the map is made

    def parsed_modules(self) -> list[str]:
        return self.engine.parsed_modules()


class _StaticDecider(propagation._Decider):
    """The reload's decisions, with the code `m.attr` leads to found from the sources when
    `m` was not imported: `m` itself when it defines `attr` with `def` or `class`, or the
    module it takes `attr` from."""

    def __init__(self, graph: ImportMap, reads: propagation.ReadsCache, first_party: Any) -> None:
        super().__init__(reads, first_party)
        self.graph = graph
        self._definitions: dict[str, frozenset[str]] = {}

    def owners(self, module: str, attr: str) -> set[str]:
        index = self.graph.index_of_module(module)
        if index is not None and _namespace(self.graph, index):
            return super().owners(module, attr)
        return self._static_owners(module, attr, set())

    def _static_owners(self, module: str, attr: str, seen: set[str]) -> set[str]:
        if module in seen or not self.first_party(module):
            return set()
        seen.add(module)
        if attr in self._defined(module):
            return {module}
        found: set[str] = set()
        reads = self.reads.get(module)
        for other, entry in reads.import_time.items() if reads is not None else ():
            if attr in entry.names and other != module:
                found |= self._static_owners(other, attr, seen)
        return found

    def _defined(self, module: str) -> frozenset[str]:
        known = self._definitions.get(module)
        if known is None:
            index = self.graph.index_of_module(module)
            try:
                tree = ast.parse(_source(self.graph.files[index])) if index is not None else None
            except (OSError, SyntaxError, ValueError):
                tree = None
            known = frozenset(
                stmt.name
                for stmt in (tree.body if tree is not None else ())
                if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
            )
            self._definitions[module] = known
        return known
