"""Early cutoff: an edit that changes only function bodies is applied by giving the live function
objects their new code, without re-executing the module or any of its importers.

Re-executing a module makes new module-level objects (routers, registries, clients) that its
importers hold old copies of; when only bodies changed, every module-level object a fresh
process would build is the same as the live one, so patching `__code__` in place is the faithful
update. What counts as "only bodies": the module's AST with every function body reduced to its
docstring is unchanged (docstrings, decorators, arguments, defaults, annotations and the
non-`def` statements of class bodies all count as shape). A comment-only edit changes no shape
either; its functions are still patched so tracebacks show the new line numbers.

The new source is compiled, and its code objects are matched to the old source's by qualified
name (built by walking `co_consts`: `co_qualname` is 3.11+), then to the live functions whose
`__code__` equals the old one: top-level functions, methods (static, class, property accessors,
`functools.cached_property`/`partialmethod`, the functions other descriptors hold such as
Django's `classproperty`) of the module's classes, through `__wrapped__` chains. Any changed
code object without a live function, with other free variables, or of another kind
(sync/async/generator), and the edit takes the normal reload.

When the new code could have been called while some module imported, that module holds a value
the old code computed, and a fresh process would hold the new one: then the normal reload runs.
The rule is static and conservative. T, the changed names, starts with every top-level function
whose body changed and, for a changed method, its attribute name, plus its class's name when the
method is a dunder or the class name is used at import time anywhere below. T grows by every
function (and, by the same rule, method) in the changed modules or their transitive importers
whose body reads a name in T, until nothing is added (a module whose source text holds no name
of T, nor the class of a changed method, can neither read T nor add to it, so it is never
parsed: the first edit of a module with hundreds of importers reads the few that mention it).
If any of these modules reads a name in T outside function bodies (module-level statements,
class bodies, decorators, defaults, annotations, lambdas), by name, through a
`from m import x as y` alias (names a `from m import *` brings keep their own), or as an
attribute `.x`, or if T holds the app factory's name (the server calls it once to build the
app), the edit takes the normal reload.
Lifespan startup code that called a changed function keeps what it computed, as it does after
a normal reload. A cached function (with `cache_clear`, such as `functools.lru_cache`) whose
name is in T has its cache cleared: a fresh process would compute the value anew. Calls the
names cannot show (`getattr` with a computed string, a framework calling a method while a class
is created) are outside the rule; the class-name part covers the usual one, an instance made at
import time. A function in T that a framework called once and keeps the result of
(integrations/run_once.py: Wagtail's menu and URL hooks) sends the edit to the normal reload too.

The patch is applied with the gate closed and undone completely if any step fails.
"""

from __future__ import annotations

import ast
import functools
import inspect
import sys
import types
from dataclasses import dataclass, field
from typing import Any

from hmr_serve.integrations import run_once
from hmr_serve.logs import logger
from hmr_serve.reload import body_diff, identity

# What kind of callable a code object makes; frameworks cache it per function object.
_KIND_FLAGS = (
    inspect.CO_COROUTINE
    | inspect.CO_GENERATOR
    | inspect.CO_ASYNC_GENERATOR
    | inspect.CO_ITERABLE_COROUTINE
)


@dataclass
class Plan:
    """The functions to patch and what to do once they are patched."""

    modules: list[str]
    patches: list[tuple[types.FunctionType, types.CodeType]] = field(default_factory=list)
    caches: list[Any] = field(default_factory=list)  # wrappers whose cache_clear to call
    sources: list[tuple[str, bytes]] = field(default_factory=list)  # path -> bytes now running
    # T (module docstring): the names whose calls run changed code, for front-ends that track
    # what ran (the test mode).
    names: frozenset[str] = frozenset()

    @property
    def functions(self) -> int:
        return len({id(function) for function, _ in self.patches})


class _Fallback(Exception):
    """The edit needs the normal reload; the message says why (logged at debug level)."""


# -- code objects ------------------------------------------------------------------------------


def _qualnames(code: types.CodeType) -> dict[tuple[str, int], types.CodeType]:
    """Function code objects of a module by (qualname, n-th of that name in source order).
    Nested functions are part of their parent's code and are not listed."""
    found: dict[tuple[str, int], types.CodeType] = {}
    counts: dict[str, int] = {}

    def walk(parent: types.CodeType, prefix: str) -> None:
        consts = [c for c in parent.co_consts if isinstance(c, types.CodeType)]
        for const in sorted(consts, key=lambda c: c.co_firstlineno):
            if const.co_name.startswith("<generic parameters of "):
                # 3.12+ (PEP 695): `def f[T]` and `class C[T]` are made inside a hidden
                # function that binds the type parameters; the definition is one level down.
                walk(const, prefix)
                continue
            if const.co_name.startswith("<"):
                continue  # lambdas, comprehensions: part of the module-level shape
            qualname = prefix + const.co_name
            if const.co_flags & inspect.CO_OPTIMIZED:
                index = counts.get(qualname, 0)
                counts[qualname] = index + 1
                found[(qualname, index)] = const
            else:  # a class body
                walk(const, qualname + ".")

    walk(code, "")
    return found


def _same(a: types.CodeType, b: types.CodeType) -> bool:
    """Equal including every line number, nested code objects included (on 3.10 `==` ignores
    the line table)."""
    if a != b or list(a.co_lines()) != list(b.co_lines()):
        return False
    inner_a = [c for c in a.co_consts if isinstance(c, types.CodeType)]
    inner_b = [c for c in b.co_consts if isinstance(c, types.CodeType)]
    return len(inner_a) == len(inner_b) and all(map(_same, inner_a, inner_b))


# -- live functions ----------------------------------------------------------------------------


def _live_functions(module: types.ModuleType, name: str) -> list[tuple[types.FunctionType, Any]]:
    """Every function object the module's namespace and classes lead to, each with the
    outermost object that wraps it (for `cache_clear`)."""
    found: list[tuple[types.FunctionType, Any]] = []
    seen: set[int] = set()

    def add(value: Any, outer: Any, depth: int = 0) -> None:
        if depth > 8 or id(value) in seen:
            return
        seen.add(id(value))
        if isinstance(value, types.FunctionType):
            if value.__module__ == name:
                found.append((value, outer))
        elif isinstance(value, (classmethod, staticmethod)):
            add(value.__func__, outer, depth + 1)
        elif isinstance(value, property):
            for accessor in (value.fget, value.fset, value.fdel):
                if accessor is not None:
                    add(accessor, accessor, depth + 1)
        elif isinstance(value, (functools.cached_property, functools.partialmethod)):
            add(value.func, outer, depth + 1)
        elif isinstance(value, type):
            if value.__module__ == name:
                for attr in list(vars(value).values()):
                    add(attr, attr, depth + 1)
            return
        elif hasattr(type(value), "__get__"):  # another descriptor (Django's classproperty)
            for _, function in identity.held_functions(value):
                add(function, function, depth + 1)
        wrapped = _safe_getattr(value, "__wrapped__")
        if wrapped is not None:
            add(wrapped, outer, depth + 1)

    values = list(vars(module).values()) + list(identity._anchors.get(name, {}).values())
    for value in values:
        add(value, value)
    return found


def _safe_getattr(value: Any, attr: str) -> Any:
    try:
        return getattr(value, attr, None)
    except Exception:  # a proxy (flask.request) may raise outside its context
        return None


# -- analysis ----------------------------------------------------------------------------------


@dataclass
class _Analysis:
    """What the cutoff knows of one version of a module's source, each part computed when
    first needed. The version an edit produces is the one the next edit is compared with."""

    source: bytes
    shape: body_diff.Shape | None = None
    uses: body_diff.Uses | None = None
    codes: dict[tuple[str, int], types.CodeType] | None = None


# Per module: the analysis of the latest source looked at.
_analyses: dict[str, _Analysis] = {}


def _analysis(name: str, source: bytes) -> _Analysis:
    cached = _analyses.get(name)
    if cached is not None and cached.source == source:
        return cached
    analysis = _Analysis(source)
    _analyses[name] = analysis
    return analysis


def _uses(name: str, source: bytes, path: str) -> body_diff.Uses:
    analysis = _analysis(name, source)
    if analysis.uses is None:
        analysis.uses = body_diff.uses(ast.parse(source, path))
    return analysis.uses


def _source_of(engine: Any, module: types.ModuleType) -> tuple[str, bytes]:
    spec = module.__spec__
    path = getattr(spec, "origin", None) if spec is not None else None
    if not path:
        raise _Fallback(f"{module.__name__} has no source file")
    source = engine.recorded_source(path)
    if source is None:
        raise _Fallback(f"{module.__name__}: the source it ran from is unknown")
    return path, source


def _is_dunder(name: str) -> bool:
    return name.startswith("__") and name.endswith("__")


def _changed_names(
    qualnames: set[str], everyone: list[body_diff.Uses]
) -> tuple[set[str], set[str]]:
    """T: the names whose calls run changed code (see the module docstring), and the top-level
    function names among them (whose caches need clearing)."""
    import_time: set[str] = set()
    for uses in everyone:
        import_time |= uses.expand(uses.import_time)

    def names_for(function: str, classes: tuple[str, ...]) -> set[str]:
        if not classes:
            return {function}
        # Methods: the attribute; the class when constructing it may call the method.
        names = {function}
        if _is_dunder(function) or any(c in import_time for c in classes):
            names.update(classes)
        return names

    changed: set[str] = set()
    for qualname in qualnames:
        *classes, function = qualname.split(".")
        changed |= names_for(function, tuple(classes))
    grown = True
    while grown:
        grown = False
        for uses in everyone:
            for function, classes, inside in uses.bodies:
                if function in changed and (not classes or classes[-1] in changed):
                    continue
                if uses.expand(inside) & changed:
                    new = names_for(function, classes) - changed
                    if new:
                        changed |= new
                        grown = True
    return changed, import_time


def plan(
    engine: Any, changed: list[str], called_at_start: frozenset[str] = frozenset()
) -> Plan | None:
    """A patch that applies the edits of `changed` without re-executing anything, or None when
    they need the normal reload. `called_at_start`: names the server itself calls once to get
    the app (an app factory), which count as running at import time."""
    try:
        return _plan(engine, changed, called_at_start)
    except _Fallback as why:
        logger.debug("full reload: %s", why)
        return None
    except Exception as exc:  # a bug of ours must never cost the user a reload
        logger.debug("full reload (cutoff analysis failed): %r", exc)
        return None


def _plan(engine: Any, changed: list[str], called_at_start: frozenset[str]) -> Plan:
    result = Plan(list(changed))
    qualnames: set[str] = set()
    new_sources: dict[str, bytes] = {}
    for name in changed:
        module = sys.modules.get(name)
        if module is None:
            raise _Fallback(f"{name} is not loaded")
        if getattr(module, "__hmr_restart__", False) is True:
            raise _Fallback(f"{name} asks for a restart")
        path, old_source = _source_of(engine, module)
        try:
            with open(path, "rb") as file:
                new_source = file.read()
            new_tree = ast.parse(new_source, path)  # a syntax error: the normal reload reports it
            old = _analysis(name, old_source)
            if old.shape is None:
                old.shape = body_diff.shape(ast.parse(old_source, path))
            new = _analysis(name, new_source)  # kept: the next edit is compared with it
            if new.shape is None:
                new.shape = body_diff.shape(new_tree)
        except (OSError, SyntaxError, ValueError) as exc:
            raise _Fallback(f"{name}: {exc}") from exc
        old_shape, new_shape = old.shape, new.shape
        if old_shape.skeleton != new_shape.skeleton:
            raise _Fallback(f"{name}: more than function bodies changed")
        if new.uses is None:
            new.uses = body_diff.uses(new_tree)
        new_sources[name] = new_source
        bodies_changed = {
            key for key, body in new_shape.bodies.items() if old_shape.bodies.get(key) != body
        }
        qualnames |= {qualname for qualname, _ in bodies_changed}
        old_codes = old.codes
        if old_codes is None:
            old_codes = _qualnames(compile(old_source, path, "exec", dont_inherit=True))
        new_codes = new.codes
        if new_codes is None:
            new_codes = new.codes = _qualnames(compile(new_tree, path, "exec", dont_inherit=True))
        if old_codes.keys() != new_codes.keys():
            raise _Fallback(f"{name}: the functions do not line up")
        unseen = bodies_changed - new_codes.keys()
        if unseen:  # a changed body whose code object this walk cannot find is never patched
            raise _Fallback(f"{name}: no code object found for {sorted(unseen)[0][0]}")
        live = _live_functions(module, name)
        for key, new_code in new_codes.items():
            old_code = old_codes[key]
            if _same(old_code, new_code):
                continue
            if old_code.co_freevars != new_code.co_freevars:
                raise _Fallback(f"{name}.{key[0]}: its free variables changed")
            if (old_code.co_flags ^ new_code.co_flags) & _KIND_FLAGS:
                raise _Fallback(f"{name}.{key[0]}: sync/async/generator kind changed")
            twins = [k for k, c in old_codes.items() if k != key and c == old_code]
            if twins:
                raise _Fallback(f"{name}.{key[0]}: cannot tell identical functions apart")
            targets = [f for f, _ in live if f.__code__ == old_code]
            if not targets:
                raise _Fallback(f"{name}.{key[0]}: no live function runs this code")
            result.patches.extend((f, new_code) for f in targets)
        result.sources.append((path, new_source))

    if qualnames:
        sources: dict[str, tuple[bytes, str]] = {}
        for member in engine.closure(list(changed)):
            module = sys.modules.get(member)
            if module is None:
                continue
            if member in new_sources:
                sources[member] = (new_sources[member], "")
            else:
                path, source = _source_of(engine, module)
                sources[member] = (source, path)
        names, import_time, read = _changed_names_in(qualnames, sources)
        result.names = frozenset(names)
        used = names & (import_time | called_at_start)
        if used:
            raise _Fallback(f"{', '.join(sorted(used))} may run while a module imports")
        for function in run_once.marked():
            if function.__name__ in names and function.__module__ in sources:
                raise _Fallback(f"{function.__module__}.{function.__qualname__} ran once")
        for member in read:
            for value in list(vars(sys.modules[member]).values()):
                if callable(_safe_getattr(value, "cache_clear")):
                    inner = inspect.unwrap(value) if hasattr(value, "__wrapped__") else None
                    if getattr(inner, "__name__", None) in names:
                        result.caches.append(value)
    return result


def _changed_names_in(
    qualnames: set[str], sources: dict[str, tuple[bytes, str]]
) -> tuple[set[str], set[str], list[str]]:
    """`_changed_names` over the closure, reading only the modules whose source mentions one of
    the names that matter (T, and the classes of its methods) at all: a name a module reads is
    in its text, so any other module adds nothing to T nor to the import-time uses of T. The
    first edit of a module with hundreds of importers parses a few of them, not all. Returns
    T, the import-time names of the modules read, and those modules."""
    read: dict[str, body_diff.Uses] = {}
    names, import_time = _changed_names(qualnames, [])
    watched = {part for qualname in qualnames for part in qualname.split(".")}
    while True:
        words = [name.encode() for name in watched]
        new = [m for m, (text, _) in sources.items() if m not in read and _mentions(text, words)]
        if not new:
            return names, import_time, list(read)
        for member in new:
            source, path = sources[member]
            read[member] = _uses(member, source, path)
        names, import_time = _changed_names(qualnames, list(read.values()))
        classes = {
            cls
            for uses in read.values()
            for function, enclosing, _ in uses.bodies
            if function in names
            for cls in enclosing
        }
        watched |= names | classes


def _mentions(source: bytes, words: list[bytes]) -> bool:
    return any(word in source for word in words)


def apply(engine: Any, patch: Plan) -> None:
    """Patches every function, all or nothing; then clears the caches and records the sources."""
    done: list[tuple[types.FunctionType, types.CodeType]] = []
    try:
        for function, code in patch.patches:
            done.append((function, function.__code__))
            function.__code__ = code
    except BaseException:
        for function, code in reversed(done):
            function.__code__ = code
        raise
    for cached in patch.caches:
        try:
            cached.cache_clear()
        except Exception as exc:
            logger.debug("cache_clear of %r failed: %r", cached, exc)
    for path, source in patch.sources:
        engine.record_source(path, source)


def describe(
    patch: Plan, files: str, elapsed_ms: float, held: int, held_noun: str | None = "request"
) -> str:
    """The log line (it starts like a normal reload's, so anything counting reloads sees it)."""
    count = patch.functions
    if not count and not patch.caches:
        # The code is what already runs (a save reverted before it was reloaded, a whitespace
        # change inside an expression): say so rather than count zeros.
        return f"no code change in {files} ({elapsed_ms:.1f} ms)"
    cleared = f", {len(patch.caches)} cache{'s' if len(patch.caches) != 1 else ''} cleared"
    held_part = f"(held {held} {held_noun}{'' if held == 1 else 's'}) " if held_noun else ""
    return (
        f"reloaded 0 modules in {elapsed_ms:.1f} ms {held_part}"
        f"after changes to {files}: {count} function{'' if count == 1 else 's'} patched in "
        f"place{cleared if patch.caches else ''}, no module re-executed"
    )
