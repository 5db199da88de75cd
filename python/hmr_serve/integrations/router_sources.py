"""What a module that includes routers does with them, read from its source. A router can be
replaced in place of a module re-running only when the module uses the changed routers for
nothing but `include_router` arguments, and reads no route table while it imports, except in a
loop over a router's routes that only sets attributes of each route (FastAPI's documented
`for route in app.routes: route.operation_id = route.name`, or mealie's tag de-duplication):
such a loop is run again for the routes that replace old ones."""

from __future__ import annotations

import ast
import importlib.util
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from types import CodeType, ModuleType
from typing import Any

#: Attributes through which code reads what a router or app serves.
_ROUTE_READERS = frozenset(
    {"routes", "openapi", "openapi_schema", "url_path_for", "url_for", "_get_routes_version"}
)
#: Builtins a route loop may call: they only compute a value from their arguments.
_PURE_BUILTINS = frozenset(
    {
        "all", "any", "bool", "dict", "enumerate", "frozenset", "getattr", "hasattr", "int",
        "isinstance", "issubclass", "len", "list", "max", "min", "repr", "reversed", "set",
        "sorted", "str", "tuple", "type", "zip",
    }
)  # fmt: skip
#: Methods of str a route loop may call on a value.
_STR_METHODS = frozenset(
    {
        "capitalize", "endswith", "format", "join", "lower", "lstrip", "removeprefix",
        "removesuffix", "replace", "rstrip", "split", "startswith", "strip", "title", "upper",
    }
)  # fmt: skip
_ROUTES_NAME = "__hmr_serve_routes"


@dataclass(frozen=True)
class RouteLoop:
    """`for <var> in <name>.<attr>...routes:` at the top level of a module, whose body only sets
    attributes of <var> from values computed by pure expressions."""

    line: int
    var: str
    iterated: tuple[str, ...]  # the names of `app.routes`: ("app", "routes")
    code: CodeType  # the same loop over the routes it is given
    calls: frozenset[str]  # builtins it calls, which the module must not shadow

    def iterates(self, namespace: dict[str, Any], routes: list[Any]) -> bool:
        """Whether, run in this module now, the loop would walk `routes` (that list object)."""
        if any(name in namespace for name in self.calls):
            return False
        try:
            value = namespace[self.iterated[0]]
            for attr in self.iterated[1:]:
                value = getattr(value, attr)
        except (KeyError, AttributeError):
            return False
        return value is routes

    def run(self, namespace: dict[str, Any], routes: list[Any]) -> None:
        """The loop's body for each of `routes`; the module's own names are left alone."""
        exec(self.code, namespace, {_ROUTES_NAME: list(routes)})


@dataclass
class ModuleFacts:
    tree: ast.Module
    loops: list[RouteLoop]
    reads_routes: bool  # while importing, outside the route loops


_cache: dict[str, tuple[tuple[int, int], ModuleFacts | None]] = {}


def facts(module: ModuleType) -> ModuleFacts | None:
    """What the module's current source says (None: no source, or it does not parse)."""
    path = getattr(getattr(module, "__spec__", None), "origin", None)
    if not isinstance(path, str) or not path.endswith(".py"):
        return None
    try:
        stat = os.stat(path)
    except OSError:
        return None
    key = (stat.st_mtime_ns, stat.st_size)
    cached = _cache.get(path)
    if cached is not None and cached[0] == key:
        return cached[1]
    try:
        with open(path, "rb") as file:
            tree = ast.parse(file.read(), path)
    except (OSError, SyntaxError, ValueError):
        found = None
    else:
        loops = [loop for node in tree.body if (loop := _route_loop(node, path)) is not None]
        found = ModuleFacts(tree, loops, _reads_routes(tree, {loop.line for loop in loops}))
    _cache[path] = (key, found)
    return found


# -- the changed routers: include_router arguments only ------------------------------------------


def includes_only(module: ModuleType, changed: dict[str, set[str]]) -> bool:
    """Whether `module`'s source refers to the changed names (module -> names) only as the
    router argument of `include_router` calls, through module attributes (`users.router`),
    never binding them to names of its own or handing their modules elsewhere."""
    found = facts(module)
    if found is None:
        return False
    spec = getattr(module, "__spec__", None)
    package = spec.parent if spec is not None else (module.__package__ or "")
    aliases: dict[str, str] = {}  # local name -> the module it is bound to
    for node in ast.walk(found.tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                local = alias.asname or alias.name.partition(".")[0]
                aliases[local] = alias.name if alias.asname else local
        elif isinstance(node, ast.ImportFrom):
            try:
                base = importlib.util.resolve_name("." * node.level + (node.module or ""), package)
            except (ImportError, ValueError):
                return False
            for alias in node.names:
                if base in changed and (alias.name == "*" or alias.name in changed[base]):
                    return False  # the importer binds the old router, or everything, itself
                if _is_module(f"{base}.{alias.name}", changed):
                    aliases[alias.asname or alias.name] = f"{base}.{alias.name}"
    relevant = {
        local: name
        for local, name in aliases.items()
        if any(c == name or c.startswith(name + ".") for c in changed)
    }
    if not relevant:
        return False
    parents = {child: node for node in ast.walk(found.tree) for child in ast.iter_child_nodes(node)}
    hits = 0
    for node in ast.walk(found.tree):
        if not isinstance(node, ast.Name) or node.id not in relevant:
            continue
        if not isinstance(node.ctx, ast.Load):
            return False
        verdict = _reference(node, relevant[node.id], changed, parents)
        if verdict is None:
            return False
        hits += verdict
    return hits > 0


def _reference(
    node: ast.Name, module: str, changed: dict[str, set[str]], parents: dict[ast.AST, ast.AST]
) -> int | None:
    """1: a changed name used as include_router's router; 0: something else of the module;
    None: the module itself, or a changed name, used otherwise."""
    top: ast.AST = node
    while True:
        above = parents.get(top)
        if not isinstance(above, ast.Attribute) or above.value is not top:
            return None  # the module object itself escapes
        top = above
        if module in changed and above.attr in changed[module]:
            return 1 if _router_argument(above, parents) else None
        deeper = f"{module}.{above.attr}"
        if not _is_module(deeper, changed):
            return 0  # another attribute of the module
        module = deeper


def _router_argument(node: ast.Attribute, parents: dict[ast.AST, ast.AST]) -> bool:
    above = parents.get(node)
    if isinstance(above, ast.keyword):
        if above.arg != "router":
            return False
        above = parents.get(above)
        if not isinstance(above, ast.Call):
            return False
    elif not isinstance(above, ast.Call) or not above.args or above.args[0] is not node:
        return False
    func = above.func
    return isinstance(func, ast.Attribute) and func.attr == "include_router"


def _is_module(name: str, changed: dict[str, set[str]]) -> bool:
    return name in sys.modules or any(c == name or c.startswith(name + ".") for c in changed)


# -- route tables read while importing -----------------------------------------------------------


def _reads_routes(tree: ast.Module, loop_lines: set[int]) -> bool:
    """Whether the code that runs while the module imports (top-level statements, class bodies,
    and the module's functions they call) reads a route table other than in a route loop."""
    functions = {
        node.name: node
        for node in tree.body
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
    }
    pending: list[ast.AST] = [
        node
        for node in tree.body
        if getattr(node, "lineno", None) not in loop_lines
        and not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
    ]
    # Decorators and defaults of the functions run at import; their bodies only when called.
    for function in functions.values():
        pending += function.decorator_list + function.args.defaults + function.args.kw_defaults
    pending = [node for node in pending if node is not None]
    called: set[str] = set()
    while pending:
        node = pending.pop()
        for inner in _executed(node):
            if isinstance(inner, ast.Attribute) and inner.attr in _ROUTE_READERS:
                return True
            if (
                isinstance(inner, ast.Call)
                and isinstance(inner.func, ast.Name)
                and inner.func.id in functions
                and inner.func.id not in called
            ):
                called.add(inner.func.id)
                pending += functions[inner.func.id].body
    return False


def _executed(node: ast.AST) -> Iterator[ast.AST]:
    """`node` and what it contains, without the bodies of functions and lambdas it defines."""
    yield node
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for part in child.decorator_list + child.args.defaults + child.args.kw_defaults:
                if part is not None:
                    yield from _executed(part)
        elif not isinstance(child, ast.Lambda):
            yield from _executed(child)


# -- route loops ---------------------------------------------------------------------------------


def _route_loop(node: ast.stmt, path: str) -> RouteLoop | None:
    if not isinstance(node, ast.For) or node.orelse or not isinstance(node.target, ast.Name):
        return None
    iterated = _names(node.iter)
    if iterated is None or len(iterated) < 2 or iterated[-1] != "routes":
        return None
    var = node.target.id
    calls: set[str] = set()
    if not all(_pure_statement(statement, var, calls) for statement in node.body):
        return None
    loop = ast.For(
        target=ast.Name(var, ast.Store()),
        iter=ast.Name(_ROUTES_NAME, ast.Load()),
        body=node.body,
        orelse=[],
    )
    ast.copy_location(loop, node)
    ast.copy_location(loop.target, node.target)
    ast.copy_location(loop.iter, node.iter)
    module = ast.fix_missing_locations(ast.Module(body=[loop], type_ignores=[]))
    code = compile(module, path, "exec", dont_inherit=True)
    return RouteLoop(node.lineno, var, iterated, code, frozenset(calls))


def _names(node: ast.expr) -> tuple[str, ...] | None:
    """("app", "router", "routes") for `app.router.routes`; None for anything else."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return tuple(reversed(parts))


def _pure_statement(node: ast.stmt, var: str, calls: set[str]) -> bool:
    if isinstance(node, (ast.Pass, ast.Continue)):
        return True
    if isinstance(node, ast.If):
        return _pure(node.test, calls) and all(
            _pure_statement(s, var, calls) for s in node.body + node.orelse
        )
    if isinstance(node, ast.Assign):
        targets = node.targets
    elif isinstance(node, ast.AugAssign):
        targets = [node.target]
    else:
        return False
    return all(
        isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == var
        for t in targets
    ) and _pure(node.value, calls)


def _pure(node: ast.AST, calls: set[str]) -> bool:
    """An expression that reads and computes, and calls only harmless builtins and str methods."""
    if isinstance(node, ast.Call):
        func = node.func
        if isinstance(func, ast.Name) and func.id in _PURE_BUILTINS:
            calls.add(func.id)
        elif not (isinstance(func, ast.Attribute) and func.attr in _STR_METHODS):
            return False
        else:
            if not _pure(func.value, calls):
                return False
        return all(_pure(a, calls) for a in node.args) and all(
            _pure(k.value, calls) for k in node.keywords
        )
    if isinstance(node, (ast.NamedExpr, ast.Lambda, ast.Await, ast.Yield, ast.YieldFrom)):
        return False
    if isinstance(node, (ast.expr_context, ast.operator, ast.boolop, ast.cmpop, ast.unaryop)):
        return True
    return all(_pure(child, calls) for child in ast.iter_child_nodes(node))
