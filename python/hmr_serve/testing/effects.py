"""Values a re-executed module may have changed in other modules while it ran.

A module's top-level code can change objects that live elsewhere: `registry.register("b", f)`,
`REGISTRY["b"] = f`, `@app.route("/b")`, a subclass registering itself with its base. The
engine reports the names whose values changed in the modules it re-ran; a registry filled by
them is the same object in a module that did not re-run, so its name is in no report. When a
re-run module's import-time effects may differ from last time, every mutable top-level value
of the first-party modules it imports (directly or not) may have changed: their names count as
changed, and a test whose code reads one of them runs again.

The effects may differ when the module's source changed outside function bodies (other
statements, a decorator or a base class from first-party code added, removed or edited;
docstrings and plain `def`s do not count), or when it re-ran because something it imports
changed and its import-time statements name what changed (what it passes to those calls, or
the function it calls, may have changed with it)."""

from __future__ import annotations

import ast
import builtins
import datetime
import decimal
import enum
import fractions
import pathlib
import re
import sys
import types
import uuid
from collections.abc import Callable, Iterable
from typing import Any

_IMMUTABLE = (
    datetime.date,
    datetime.time,
    datetime.timedelta,
    datetime.tzinfo,
    decimal.Decimal,
    fractions.Fraction,
    pathlib.PurePath,
    re.Pattern,
    uuid.UUID,
    enum.Enum,
    int,
    float,
    complex,
    bool,
    str,
    bytes,
    type(None),
    range,
    frozenset,
    types.FunctionType,
    types.BuiltinFunctionType,
    types.MethodType,
    types.ModuleType,
    types.CodeType,
)


_CONTAINERS = (dict, list, set)

# module -> (source, the names its top level binds other than by import).
_assigned_cache: dict[str, tuple[bytes, frozenset[str]]] = {}


def _assigned(module: str, source: bytes) -> frozenset[str]:
    cached = _assigned_cache.get(module)
    if cached is not None and cached[0] == source:
        return cached[1]
    found: set[str] = set()
    stack: list[ast.stmt] = list(ast.parse(source).body)
    while stack:
        stmt = stack.pop()
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            found.add(stmt.name)
            continue
        if isinstance(stmt, (ast.Import, ast.ImportFrom)):
            continue
        for node in ast.walk(stmt):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                found.add(node.id)
    names = frozenset(found)
    _assigned_cache[module] = (source, names)
    return names


_TYPING = frozenset({"typing", "types", "typing_extensions"})


def _root(expr: ast.expr) -> ast.expr:
    while True:
        if isinstance(expr, (ast.Attribute, ast.Subscript)):
            expr = expr.value
        elif isinstance(expr, ast.Call):
            expr = expr.func
        else:
            return expr


class _Shape:
    """The parts of a module's source that run at import and can reach other modules."""

    def __init__(self, namespace: dict[str, Any], first_party: Callable[[str], bool]) -> None:
        self.namespace = namespace
        self.first_party = first_party
        self.parts: list[str] = []

    def _reaches_first_party(self, expr: ast.expr) -> bool:
        root = _root(expr)
        if not isinstance(root, ast.Name):
            return True  # a lambda, a literal's method...: assume it may
        if root.id in self.namespace:
            value = self.namespace[root.id]
        elif hasattr(builtins, root.id):
            return False
        else:
            return True  # not bound now (bound later, or conditionally): assume it may
        if isinstance(value, types.ModuleType):
            return self.first_party(value.__name__)
        if isinstance(value, (types.FunctionType, type)):
            owner = getattr(value, "__module__", None)
        else:
            owner = type(value).__module__
        return isinstance(owner, str) and self.first_party(owner)

    def body(self, statements: Iterable[ast.stmt]) -> None:
        for stmt in statements:
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                reaching = [d for d in stmt.decorator_list if self._reaches_first_party(d)]
                if reaching:
                    self.parts.append(stmt.name + "".join(ast.dump(d) for d in reaching))
            elif isinstance(stmt, ast.ClassDef):
                reaching = [
                    e
                    for e in (*stmt.decorator_list, *stmt.bases, *(k.value for k in stmt.keywords))
                    if self._reaches_first_party(e)
                ]
                if reaching:
                    self.parts.append(stmt.name + "".join(ast.dump(e) for e in reaching))
                self.body(stmt.body)  # a class body runs at import
            elif isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
                continue  # a docstring
            else:
                self.parts.append(ast.dump(stmt))


def shape(
    source: bytes, namespace: dict[str, Any], first_party: Callable[[str], bool]
) -> list[str]:
    found = _Shape(namespace, first_party)
    found.body(ast.parse(source).body)
    return found.parts


# source -> the identifiers its import-time statements name (the last one looked at).
_named: dict[str, tuple[bytes, frozenset[str]]] = {}


def names_at_import(module: str, source: bytes) -> frozenset[str]:
    """The names and attribute names a module's top-level statements, class bodies,
    decorators and base classes mention (function bodies excluded)."""
    cached = _named.get(module)
    if cached is not None and cached[0] == source:
        return cached[1]
    found: set[str] = set()
    stack: list[ast.AST] = list(ast.parse(source).body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            if not isinstance(node, ast.Lambda):
                stack.extend(node.decorator_list)
                stack.extend(node.args.defaults)
                stack.extend(d for d in node.args.kw_defaults if d is not None)
            continue
        if isinstance(node, ast.Name):
            found.add(node.id)
        elif isinstance(node, ast.Attribute):
            found.add(node.attr)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            continue  # binding a name runs nothing of it
        stack.extend(ast.iter_child_nodes(node))
    names = frozenset(found)
    _named[module] = (source, names)
    return names


def may_differ(
    old: bytes | None,
    new: bytes | None,
    namespace: dict[str, Any],
    first_party: Callable[[str], bool],
) -> bool:
    """Whether a module whose source went from `old` to `new` may have other import-time
    effects than before."""
    if old is None or new is None:
        return True
    try:
        return shape(old, namespace, first_party) != shape(new, namespace, first_party)
    except (SyntaxError, ValueError):
        return True


def mutable_names(module: str, source: bytes | None) -> set[str]:
    """The top-level names `module` assigns (not those it imports: they belong to the module
    they come from) bound to values that can be changed in place: containers and other
    objects, and the classes it defines that hold a container (a registry can be a class
    attribute). Annotations (`typing` aliases) and value types (dates, paths) are not."""
    found: set[str] = set()
    target = sys.modules.get(module)
    if target is None:
        return found
    own = _assigned(module, source) if source is not None else None
    for name, value in list(vars(target).items()):
        if name.startswith("__") and name.endswith("__"):
            continue
        if own is not None and name not in own:
            continue
        if isinstance(value, type):
            if getattr(value, "__module__", None) == module and any(
                isinstance(attr, _CONTAINERS)
                for key, attr in vars(value).items()
                if not key.startswith("__")
            ):
                found.add(name)
        elif isinstance(value, tuple):
            if any(not isinstance(item, _IMMUTABLE) for item in value):
                found.add(name)
        elif not isinstance(value, _IMMUTABLE) and type(value).__module__ not in _TYPING:
            found.add(name)
    return found


def dependencies(engine: Any, module: str, first_party: Callable[[str], bool]) -> set[str]:
    """The first-party modules `module` imports, directly or not."""
    seen: set[str] = set()
    stack = [module]
    while stack:
        current = stack.pop()
        for dep in engine.dependencies(current):
            if dep not in seen and dep != module and first_party(dep):
                seen.add(dep)
                stack.append(dep)
    return seen
