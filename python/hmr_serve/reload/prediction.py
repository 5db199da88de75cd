"""Which top-level names of a module may get another value when it re-executes, read from its
source before anything runs, so the modules of a reload are known before the request gate
closes and the framework integrations are told (reload/propagation.py).

A name may change when a statement binding it changed in the source (or went away), when that
statement makes new objects each time it runs (it calls something: `router = APIRouter()`, a
decorator that wraps, a class the identity machinery cannot keep), or when it reads, while the
module imports, a name that may change: one of this module's own, or one of another module's
that changes in the same reload. A statement that calls something may also change what it
calls methods on (`app.include_router(...)`, `ITEMS.append(...)`) and, through an own function
with `global` declarations, those globals.

A prediction may be too large (it only costs re-runs); after the re-execution the values
themselves are compared (reload/values.py) and a name the prediction missed that a skipped
importer read makes the reload run again with that importer.
"""

from __future__ import annotations

import ast
import builtins
import importlib.util
from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Any

from hmr_serve.reload import identity


class _AllNames(frozenset):  # type: ignore[type-arg]
    """Every name: what a module whose changes cannot be told apart is taken to change."""

    def __contains__(self, item: object) -> bool:
        return True

    def __and__(self, other: Any) -> frozenset[str]:  # type: ignore[override]
        return frozenset(other)

    __rand__ = __and__

    def __ge__(self, other: Any) -> bool:
        return True

    def __bool__(self) -> bool:
        return True

    def __repr__(self) -> str:
        return "ALL"


ALL: frozenset[str] = _AllNames()

_BUILTINS = frozenset(dir(builtins))
_DYNAMIC_CALLS = frozenset({"globals", "locals", "vars", "exec", "eval", "setattr", "delattr"})
# Decorators that never make a new object of their own around a top-level def/class.
_PLAIN_DECORATORS = frozenset({"staticmethod", "classmethod", "property"})


def _bound_names(target: ast.AST) -> Iterator[str]:
    for node in ast.walk(target):
        if isinstance(node, ast.Name):
            yield node.id
        elif isinstance(node, ast.Starred) and isinstance(node.value, ast.Name):
            yield node.value.id


class _Statement:
    """What one top-level statement binds, reads and calls while the module imports."""

    __slots__ = (
        "binds",
        "imported",
        "reads",
        "external",
        "receivers",
        "calls",
        "own_calls",
        "star",
        "dynamic",
    )

    def __init__(self) -> None:
        self.binds: set[str] = set()
        self.imported: dict[str, tuple[str, str]] = {}  # `from m import x as y`: y -> (m, x)
        self.reads: set[str] = set()  # own-scope names read (Name loads)
        self.external: set[tuple[str, str]] = set()  # (module, name) read through bindings
        self.receivers: set[str] = set()  # own names whose objects it may mutate
        self.calls = False
        self.own_calls: set[str] = set()  # names called directly: `setup()`
        self.star: list[str] = []  # modules it star-imports
        self.dynamic = False


class _Scanner(ast.NodeVisitor):
    """Walks one top-level statement, skipping function bodies (they run later)."""

    def __init__(self, module: str, package: str | None, aliases: dict[str, Any]) -> None:
        self.module = module
        self.package = package
        # Own name -> ("module", dotted name) for `import`, ("value", module, name) for `from`.
        self.aliases = aliases
        self.out = _Statement()
        self.class_depth = 0  # names stored in a class body are the class's, not the module's

    # -- bindings ------------------------------------------------------------------------------

    def _resolve(self, level: int, name: str | None) -> str | None:
        if not level:
            return name
        if not self.package:
            return None
        try:
            return importlib.util.resolve_name("." * level + (name or ""), self.package)
        except (ImportError, ValueError):
            return None

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.asname:
                self.aliases[alias.asname] = ("module", alias.name)
                self.out.binds.add(alias.asname)
            else:
                root = alias.name.split(".")[0]
                self.aliases[root] = ("module", root)
                self.out.binds.add(root)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = self._resolve(node.level, node.module)
        for alias in node.names:
            if alias.name == "*":
                if module is not None:
                    self.out.star.append(module)
                continue
            bound = alias.asname or alias.name
            self.out.binds.add(bound)
            if module is not None:
                self.aliases[bound] = ("value", module, alias.name)
                self.out.external.add((module, alias.name))
                self.out.imported[bound] = (module, alias.name)

    # -- definitions ---------------------------------------------------------------------------

    def _definition(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> None:
        if not self.class_depth:
            self.out.binds.add(node.name)
        for decorator in node.decorator_list:
            if not (isinstance(decorator, ast.Name) and decorator.id in _PLAIN_DECORATORS):
                self.out.calls = True
            self.visit(decorator)
        if isinstance(node, ast.ClassDef):
            for part in (*node.bases, *node.keywords):
                self.visit(part)
            self.class_depth += 1
            for stmt in node.body:
                self.visit(stmt)
            self.class_depth -= 1
            return
        self.visit(node.args)
        if node.returns is not None:
            self.visit(node.returns)

    visit_FunctionDef = _definition
    visit_AsyncFunctionDef = _definition
    visit_ClassDef = _definition

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self.visit(node.args)
        self.visit(node.body)  # may be called while the module imports

    # -- reads and writes ----------------------------------------------------------------------

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load):
            self.out.reads.add(node.id)
            alias = self.aliases.get(node.id)
            if alias is not None and alias[0] == "value":
                self.out.external.add((alias[1], alias[2]))
        elif isinstance(node.ctx, (ast.Store, ast.Del)) and not self.class_depth:
            self.out.binds.add(node.id)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        chain = [node.attr]
        base: ast.AST = node.value
        while isinstance(base, ast.Attribute):
            chain.append(base.attr)
            base = base.value
        if isinstance(base, ast.Name):
            alias = self.aliases.get(base.id)
            chain.reverse()
            if alias is not None:
                prefix = alias[1] if alias[0] == "module" else f"{alias[1]}.{alias[2]}"
                for attr in chain:  # `a.b.c`: a's b, a.b's c (which prefixes are modules is
                    self.out.external.add((prefix, attr))  # unknown here)
                    prefix = f"{prefix}.{attr}"
            if not isinstance(node.ctx, ast.Load):
                self.out.receivers.add(base.id)
        self.generic_visit(node)

    def visit_Subscript(self, node: ast.Subscript) -> None:
        if not isinstance(node.ctx, ast.Load):
            root = node.value
            while isinstance(root, (ast.Attribute, ast.Subscript)):
                root = root.value
            if isinstance(root, ast.Name):
                self.out.receivers.add(root.id)
        self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        if not self.class_depth:
            self.out.binds.update(_bound_names(node.target))
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        self.out.calls = True
        func = node.func
        if isinstance(func, ast.Name):
            self.out.own_calls.add(func.id)
            if func.id in _DYNAMIC_CALLS:
                self.out.dynamic = True
        elif isinstance(func, ast.Attribute):
            root = func.value
            while isinstance(root, (ast.Attribute, ast.Subscript, ast.Call)):
                root = root.func if isinstance(root, ast.Call) else root.value
            if isinstance(root, ast.Name):
                self.out.receivers.add(root.id)  # `app.include_router(...)` mutates `app`
        self.generic_visit(node)

    def visit_Global(self, node: ast.Global) -> None:
        self.out.binds.update(node.names)


def _package(module: str, is_package: bool) -> str | None:
    if is_package:
        return module
    return module.rpartition(".")[0] or None


def _globals_declared(tree: ast.Module) -> set[str]:
    """Names some function of the module declares `global` (it may rebind them when called)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Global):
            names.update(node.names)
    return names


def _kept_by_identity(module: str, name: str, old: Any) -> bool:
    """Whether re-running an unchanged `def`/`class` statement of `name` gives back the very
    object the namespace holds now (the identity machinery updates it in place)."""
    if getattr(old, "__module__", None) != module or getattr(old, "__qualname__", None) != name:
        return False  # a wrapper (lru_cache, a framework's object) is made anew
    if isinstance(old, type):
        meta = type(old)
        if (meta.__module__, meta.__qualname__) not in identity._PLAIN_METACLASSES:
            return False
        for base in old.__mro__[1:]:
            hook = base.__dict__.get("__init_subclass__")
            if hook is not None and base.__module__ not in identity._PLAIN_INIT_SUBCLASS_MODULES:
                return False
        return True
    return callable(old)


def _statements(tree: ast.Module, module: str, is_package: bool) -> list[_Statement]:
    package = _package(module, is_package)
    aliases: dict[str, Any] = {}
    scanned = []
    for stmt in tree.body:
        scanner = _Scanner(module, package, aliases)
        scanner.visit(stmt)
        scanned.append(scanner.out)
    return scanned


class _Parsed:
    """What prediction needs of one source, kept while it is the module's source: an importer
    re-run for what it imports (an app module importing 2,000 others) is predicted again on
    every save, from the same text."""

    def __init__(self, source: bytes, module: str, is_package: bool) -> None:
        self.source = source
        self.tree = ast.parse(source)
        self.dumps = [ast.dump(stmt) for stmt in self.tree.body]
        self.statements = _statements(self.tree, module, is_package)
        self.declared = _globals_declared(self.tree)
        self.own_defs = {
            stmt.name
            for stmt in self.tree.body
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
        }
        self._constants: dict[str, Any] | None = None

    @property
    def constants(self) -> dict[str, Any]:
        if self._constants is None:
            self._constants = _constants(self.tree)
        return self._constants


# Per module: the analyses of the sources it last ran and is about to run.
_parsed: dict[tuple[str, bool], list[_Parsed]] = {}


def _parse(source: bytes, module: str, is_package: bool) -> _Parsed:
    kept = _parsed.setdefault((module, is_package), [])
    for parsed in kept:
        if parsed.source == source:
            return parsed
    parsed = _Parsed(source, module, is_package)
    kept.append(parsed)
    del kept[:-2]
    return parsed


def predict(
    module: str,
    is_package: bool,
    new_source: bytes,
    old_source: bytes | None,
    namespace: Mapping[str, Any],
    changes: Mapping[str, frozenset[str]],
) -> frozenset[str]:
    """The names of `module` that may change when it re-executes from `new_source` (it last ran
    `old_source`; None: the same source), given what `changes` says other modules change."""
    try:
        old = _parse(old_source, module, is_package) if old_source is not None else None
        new = _parse(new_source, module, is_package)
    except (SyntaxError, ValueError):
        return ALL  # the re-execution reports it and rolls back
    tree = new.tree
    changed: set[str] = set()
    edited = [False] * len(tree.body)
    if old is not None:
        unmatched = Counter(old.dumps)
        for index, dump in enumerate(new.dumps):
            if unmatched[dump] > 0:
                unmatched[dump] -= 1
            else:
                edited[index] = True
        # A constant rewritten to an equal one (`B = 2` -> `B = 1 + 1`) changes nothing.
        for index, stmt in enumerate(tree.body):
            name = _constant_target(stmt)
            if edited[index] and name is not None and name in old.constants:
                if _same_constant(old.constants[name], new.constants.get(name)):
                    edited[index] = False
                    unmatched[_dump_of_constant(old.tree, name)] -= 1
        # Statements that went away: what they bound may now be gone or bound elsewhere.
        for info, dump in zip(old.statements, old.dumps, strict=True):
            if unmatched[dump] > 0:
                unmatched[dump] -= 1
                changed |= info.binds
    declared = new.declared
    own_defs = new.own_defs
    for stmt, info, was_edited in zip(tree.body, new.statements, edited, strict=True):
        for star in info.star:
            if changes.get(star):
                return ALL  # which names it brings is only known by running it
        affected = was_edited or bool(info.reads & changed)
        if not affected:
            affected = any(name in changes.get(other, ()) for other, name in info.external)
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
            # A function the identity machinery keeps is the same object again; new default
            # objects (`Depends(...)`) still make it another function.
            wrapped = any(not _plain_decorator(d) for d in stmt.decorator_list)
            volatile = _has_call(stmt.args) or (
                wrapped and not _kept_by_identity(module, stmt.name, namespace.get(stmt.name))
            )
        elif isinstance(stmt, ast.ClassDef):
            volatile = info.calls or not _kept_by_identity(
                module, stmt.name, namespace.get(stmt.name)
            )
        else:
            volatile = info.calls
        if (affected or info.calls) and info.dynamic:
            return ALL
        if info.calls:  # whatever it calls runs again: what it calls methods on may change
            changed |= info.receivers - _BUILTINS
            if info.own_calls & own_defs:
                changed |= declared
        if info.imported and not was_edited:
            # `from m import a, b`: only the names that change in m.
            changed |= {
                bound
                for bound, (other, name) in info.imported.items()
                if name in changes.get(other, ())
            }
        elif affected or volatile:
            changed |= info.binds | (info.receivers - _BUILTINS)
    return frozenset(changed)


_NO_CONSTANT = object()


def _constant_target(stmt: ast.stmt) -> str | None:
    """`NAME = <literal>` (or annotated): the name, else None."""
    if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
        target, value = stmt.targets[0], stmt.value
    elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
        target, value = stmt.target, stmt.value
    else:
        return None
    if not isinstance(target, ast.Name) or _literal(value) is _NO_CONSTANT:
        return None
    return target.id


_OPERATORS: dict[type, Any] = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
    ast.FloorDiv: lambda a, b: a // b,
    ast.Mod: lambda a, b: a % b,
    ast.BitOr: lambda a, b: a | b,
    ast.BitAnd: lambda a, b: a & b,
    ast.BitXor: lambda a, b: a ^ b,
}


def _literal(node: ast.expr, depth: int = 0) -> Any:
    """The value of an expression made only of literals and arithmetic on numbers, else
    _NO_CONSTANT (never runs anything but int/float/str operators on small values)."""
    if depth > 20:
        return _NO_CONSTANT
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        operand = _literal(node.operand, depth + 1)
        if isinstance(operand, (int, float)) and not isinstance(operand, bool):
            return -operand if isinstance(node.op, ast.USub) else operand
        return _NO_CONSTANT
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        left, right = _literal(node.left, depth + 1), _literal(node.right, depth + 1)
        numbers = all(
            isinstance(x, (int, float)) and not isinstance(x, bool) and abs(x) < 2**64
            for x in (left, right)
        )
        strings = isinstance(left, str) and isinstance(right, str) and type(node.op) is ast.Add
        if numbers or strings:
            try:
                return _OPERATORS[type(node.op)](left, right)
            except (ArithmeticError, TypeError, ValueError):
                return _NO_CONSTANT
        return _NO_CONSTANT
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        items = [_literal(item, depth + 1) for item in node.elts]
        if any(item is _NO_CONSTANT for item in items):
            return _NO_CONSTANT
        kind = {ast.Tuple: tuple, ast.List: list, ast.Set: set}[type(node)]
        try:
            return kind(items)
        except TypeError:
            return _NO_CONSTANT
    if isinstance(node, ast.Dict) and all(key is not None for key in node.keys):
        keys = [_literal(key, depth + 1) for key in node.keys]  # type: ignore[arg-type]
        values = [_literal(value, depth + 1) for value in node.values]
        if any(item is _NO_CONSTANT for item in (*keys, *values)):
            return _NO_CONSTANT
        try:
            return dict(zip(keys, values, strict=True))
        except TypeError:
            return _NO_CONSTANT
    return _NO_CONSTANT


def _constants(tree: ast.Module) -> dict[str, Any]:
    """Names bound exactly once at top level, by a literal, with their values."""
    counts = Counter(name for stmt in tree.body for name in _statements_binds(stmt))
    found: dict[str, Any] = {}
    for stmt in tree.body:
        name = _constant_target(stmt)
        if name is not None and counts[name] == 1:
            found[name] = _literal(stmt.value)  # type: ignore[attr-defined]
    return found


def _statements_binds(stmt: ast.stmt) -> set[str]:
    scanner = _Scanner("", None, {})
    scanner.visit(stmt)
    return scanner.out.binds


def _same_constant(old: Any, new: Any) -> bool:
    if type(old) is not type(new):
        return False
    if isinstance(old, (list, tuple, set, frozenset)):
        return len(old) == len(new) and all(
            _same_constant(a, b) for a, b in zip(old, new, strict=True)
        )
    if isinstance(old, dict):
        return list(old) == list(new) and all(_same_constant(old[k], new[k]) for k in old)
    try:
        return bool(old == new)
    except Exception:
        return False


def _dump_of_constant(tree: ast.Module, name: str) -> str:
    return next(ast.dump(stmt) for stmt in tree.body if _constant_target(stmt) == name)


def _plain_decorator(decorator: ast.expr) -> bool:
    return isinstance(decorator, ast.Name) and decorator.id in _PLAIN_DECORATORS


def _has_call(node: ast.AST) -> bool:
    return any(isinstance(child, ast.Call) for child in ast.walk(node))
