"""What an edit changed in a module's source, at the level the early cutoff (reload/cutoff.py)
needs: whether only function bodies changed, which ones, and which names each module uses while
it imports (outside function bodies) or inside each function body."""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef)


def _docstring(body: list[ast.stmt]) -> list[ast.stmt]:
    first = body[0] if body else None
    if (
        isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Constant)
        and isinstance(first.value.value, str)
    ):
        return [first]  # frameworks read it when the function is defined (FastAPI: description)
    return []


@dataclass
class Shape:
    """A module's source with every function body set aside."""

    skeleton: str  # ast.dump of the module, each function body reduced to its docstring
    bodies: dict[tuple[str, int], str]  # (qualname, n-th of that qualname) -> ast.dump of body


def shape(tree: ast.Module) -> Shape:
    """The tree is left as it was (bodies are set aside only while the skeleton is dumped)."""
    bodies: dict[tuple[str, int], str] = {}
    seen: dict[str, int] = {}
    stripped: list[tuple[ast.FunctionDef | ast.AsyncFunctionDef, list[ast.stmt]]] = []

    def strip(stmts: list[ast.stmt], prefix: str) -> None:
        for stmt in stmts:
            if isinstance(stmt, _DEFS):
                qualname = prefix + stmt.name
                index = seen.get(qualname, 0)
                seen[qualname] = index + 1
                bodies[(qualname, index)] = ast.dump(ast.Module(stmt.body, []))
                stripped.append((stmt, stmt.body))
                stmt.body = _docstring(stmt.body) or [ast.Pass()]
            elif isinstance(stmt, ast.ClassDef):
                strip(stmt.body, f"{prefix}{stmt.name}.")
            else:
                # Definitions nested in if/try/with/match at this level keep this level's prefix.
                for name in ("body", "orelse", "finalbody", "handlers", "cases"):
                    inner = getattr(stmt, name, None)
                    if isinstance(inner, list):
                        for item in inner:
                            if isinstance(item, ast.stmt):
                                strip([item], prefix)
                            elif hasattr(item, "body"):  # except handler, match case
                                strip(item.body, prefix)

    strip(tree.body, "")
    skeleton = ast.dump(tree)
    for stmt, body in stripped:
        stmt.body = body
    return Shape(skeleton, bodies)


@dataclass
class Uses:
    """Names a module reads, by where they are read."""

    import_time: set[str] = field(default_factory=set)  # outside any function body
    # Each function body: (function name, enclosing class names, names read inside it).
    bodies: list[tuple[str, tuple[str, ...], set[str]]] = field(default_factory=list)
    aliases: dict[str, str] = field(default_factory=dict)  # `from m import a as b`: b -> a

    def expand(self, names: set[str]) -> set[str]:
        """`names` plus what the aliases among them stand for."""
        return names | {self.aliases[n] for n in names if n in self.aliases}


def _names(node: ast.AST) -> set[str]:
    found: set[str] = set()
    for child in ast.walk(node):
        if isinstance(child, ast.Name):
            found.add(child.id)
        elif isinstance(child, ast.Attribute):
            found.add(child.attr)
    return found


def _accessor_of(decorator: ast.expr, name: str) -> bool:
    return (
        isinstance(decorator, ast.Attribute)
        and decorator.attr in ("setter", "getter", "deleter")
        and isinstance(decorator.value, ast.Name)
        and decorator.value.id == name
    )


def uses(tree: ast.Module) -> Uses:
    result = Uses()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if alias.asname and alias.name != "*":
                    result.aliases[alias.asname] = alias.name

    def visit(stmts: list[ast.stmt], classes: tuple[str, ...]) -> None:
        for stmt in stmts:
            if isinstance(stmt, _DEFS):
                # Decorators, defaults and annotations run when the `def` does; `@x.setter`
                # on a `def x` only reads the property, it calls none of its accessors.
                decorators = [d for d in stmt.decorator_list if not _accessor_of(d, stmt.name)]
                for part in (*decorators, stmt.args, stmt.returns):
                    if part is not None:
                        result.import_time |= _names(part)
                inside: set[str] = set()
                for inner in stmt.body:
                    inside |= _names(inner)
                result.bodies.append((stmt.name, classes, inside))
            elif isinstance(stmt, ast.ClassDef):
                for part in (*stmt.decorator_list, *stmt.bases, *stmt.keywords):
                    result.import_time |= _names(part)
                visit(stmt.body, (*classes, stmt.name))
            elif isinstance(stmt, (ast.Import, ast.ImportFrom)):
                continue  # binds names, calls nothing of ours
            else:
                nested: list[ast.stmt] = []
                for _, value in ast.iter_fields(stmt):
                    items = value if isinstance(value, list) else [value]
                    for item in items:
                        if isinstance(item, ast.stmt):
                            nested.append(item)
                        elif isinstance(item, (ast.excepthandler, ast.match_case)):
                            if isinstance(item, ast.excepthandler) and item.type is not None:
                                result.import_time |= _names(item.type)
                            if isinstance(item, ast.match_case):
                                result.import_time |= _names(item.pattern)
                                if item.guard is not None:
                                    result.import_time |= _names(item.guard)
                            nested.extend(item.body)
                        elif isinstance(item, ast.AST):
                            result.import_time |= _names(item)
                visit(nested, classes)

    visit(tree.body, ())
    return result
