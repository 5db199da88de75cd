"""Which top-level names of a module got another value when it re-executed.

Unchanged means the same object, or equal plain data: numbers, strings, bytes, None, and
tuples, frozensets, sets, lists and dicts of those (in the same order: iteration order is
observable). A function or class that the identity machinery kept (reload/identity.py) is the
same object but may hold other code: it counts as changed when its content differs (code
ignoring line numbers, defaults, class attributes). Anything else that is not the same object
changed: a comparison that could run user code, raise or be slow is never attempted.

Shared mutable values stay shared: in a fresh process `from cfg import ITEMS` in `shared.py`
holds the very list `cfg.ITEMS` is. When `cfg` re-runs and builds an equal list that nothing but
the namespace holds, the old list goes back into the namespace, so modules that were not
re-run still share it, as in a fresh process. An equal value that something else already holds
(a default argument, another structure) stays new and counts as changed: its holders must
follow.
"""

from __future__ import annotations

import sys
import types
from typing import Any

_MISSING = object()
# Import-system attributes: the same in every execution (and `__builtins__` is huge).
_SKIPPED = frozenset(
    {
        "__name__",
        "__spec__",
        "__loader__",
        "__file__",
        "__cached__",
        "__path__",
        "__package__",
        "__builtins__",
        "__hmr_identity__",
    }
)
_SCALARS = (int, float, complex, bool, str, bytes, type(None))
_CONTAINERS = (tuple, frozenset, set, list, dict)
_MUTABLE = (set, list, dict)
# Plain data bigger than this is taken as changed rather than compared element by element.
_BUDGET = 20_000


class _Budget:
    __slots__ = ("left",)

    def __init__(self) -> None:
        self.left = _BUDGET


def _plain_equal(old: Any, new: Any, budget: _Budget) -> bool:
    budget.left -= 1
    if budget.left < 0:
        return False
    kind = type(new)
    if type(old) is not kind:
        return False
    if kind in _SCALARS:
        # NaN != NaN: counted as changed, which only costs a re-run.
        return bool(old == new)
    if kind is dict:
        if len(old) != len(new) or list(old) != list(new):
            return False
        return all(_plain_equal(old[key], new[key], budget) for key in new)
    if kind in _CONTAINERS:
        if len(old) != len(new):
            return False
        # Sets too, element by element: their iteration order is observable.
        return all(_plain_equal(a, b, budget) for a, b in zip(old, new, strict=True))
    return False


def _references(value: Any) -> int:
    return sys.getrefcount(value)


def _calibrate() -> tuple[int, int]:
    """Reference counts a value held only by a namespace (root) or only by its parent container
    (inner) shows from inside `_solely_held`, measured through the same code path."""
    namespace = {"value": [[]]}
    after = namespace["value"]  # as `changed_names` holds the value it compares
    root = _references_of_entry(namespace, "value")
    del after
    inner = _inner_references(namespace["value"])
    return root, inner


def _references_of_entry(namespace: dict[str, Any], name: str) -> int:
    value = namespace[name]
    return _references(value) - 1  # this frame's own `value`


def _inner_references(container: Any) -> int:
    items = container.values() if type(container) is dict else container
    for item in items:
        if type(item) in _MUTABLE:
            return _references(item) - 1
    return 0


def _solely_held(namespace: dict[str, Any], name: str) -> bool:
    """Whether nothing but the namespace holds the new value (nor, below it, anything but its
    parent holds a mutable part): putting the old one in its place is then unobservable."""
    if _references_of_entry(namespace, name) > _ROOT_REFS:
        return False
    stack = [namespace[name]]
    while stack:
        container = stack.pop()
        if type(container) not in _CONTAINERS:
            continue
        items = container.values() if type(container) is dict else container
        for item in items:
            kind = type(item)
            if kind in _MUTABLE:
                if _references(item) - 1 > _INNER_REFS:
                    return False
                stack.append(item)
            elif kind in (tuple, frozenset):
                stack.append(item)
    return True


def _has_mutable(value: Any) -> bool:
    kind = type(value)
    if kind in _MUTABLE:
        return True
    if kind in (tuple, frozenset):
        return any(_has_mutable(item) for item in value)
    return False


# -- functions and classes ---------------------------------------------------------------------


def _code_key(code: types.CodeType) -> tuple[Any, ...]:
    """A code object's meaning without its line numbers: moving a function down a few lines
    changes nothing an importer could have computed from it."""
    consts = tuple(
        _code_key(const) if isinstance(const, types.CodeType) else (type(const), const)
        for const in code.co_consts
    )
    return (
        code.co_code,
        consts,
        code.co_names,
        code.co_varnames,
        code.co_freevars,
        code.co_cellvars,
        code.co_flags,
        code.co_argcount,
        code.co_posonlyargcount,
        code.co_kwonlyargcount,
        code.co_name,
    )


def _function_key(function: types.FunctionType) -> tuple[Any, ...]:
    return (
        "function",
        _code_key(function.__code__),
        _frozen(function.__defaults__),
        _frozen(function.__kwdefaults__),
    )


def _frozen(value: Any) -> Any:
    """A comparable stand-in: plain data as itself, functions by their content, else identity."""
    if isinstance(value, types.FunctionType):
        return _function_key(value)
    if type(value) in (tuple, list):
        return (type(value), tuple(_frozen(item) for item in value))
    if type(value) is dict:
        return (dict, tuple((key, _frozen(item)) for key, item in value.items()))
    if type(value) in _SCALARS:
        return (type(value), value)
    return ("object", id(value))


def _descriptor_key(value: Any, owner: str, depth: int) -> Any:
    if isinstance(value, types.FunctionType):
        return _function_key(value)
    if isinstance(value, (classmethod, staticmethod)):
        return (type(value), _descriptor_key(value.__func__, owner, depth + 1))
    if isinstance(value, property):
        return (
            property,
            tuple(
                _descriptor_key(part, owner, depth + 1) if part is not None else None
                for part in (value.fget, value.fset, value.fdel)
            ),
        )
    if isinstance(value, type) and value.__module__ == owner and depth < 4:
        return _class_key(value, owner, depth + 1)
    wrapped = getattr(value, "__wrapped__", None) if not isinstance(value, type) else None
    if isinstance(wrapped, types.FunctionType):
        return ("wrapper", type(value), id(value), _function_key(wrapped))
    return _frozen(value)


# Bookkeeping a class carries that says nothing of what importers could read from it.
_CLASS_SKIPPED = frozenset({"__dict__", "__weakref__", "__module__", "_abc_impl", "__doc__"})


def _class_key(cls: type, owner: str, depth: int = 0) -> tuple[Any, ...]:
    attrs = []
    for key, value in list(vars(cls).items()):
        if key in _CLASS_SKIPPED or key.startswith("__pydantic_"):
            continue
        attrs.append((key, _descriptor_key(value, owner, depth)))
    return (
        "class",
        type(cls),
        tuple(id(base) for base in cls.__bases__),
        tuple(attrs),
    )


def content_keys(namespace: dict[str, Any], module: str) -> dict[str, Any]:
    """Before a re-execution: the content of the module's own functions and classes, which the
    identity machinery may update in place (the same object with other code)."""
    keys: dict[str, Any] = {}
    for name, value in namespace.items():
        try:
            if isinstance(value, types.FunctionType) and value.__module__ == module:
                keys[name] = _function_key(value)
            elif isinstance(value, type) and value.__module__ == module:
                keys[name] = _class_key(value, module)
        except Exception:  # an exotic metaclass: the object counts as changed if touched
            keys[name] = _MISSING
    return keys


def _content_changed(value: Any, module: str, before: Any) -> bool:
    if before is _MISSING:
        return True
    try:
        if isinstance(value, types.FunctionType):
            return _function_key(value) != before
        if isinstance(value, type):
            return _class_key(value, module) != before
    except Exception:
        return True
    return False


# -- the comparison ----------------------------------------------------------------------------


def changed_names(
    module: str,
    old: dict[str, Any],
    keys_before: dict[str, Any],
    namespace: dict[str, Any],
) -> set[str]:
    """The names whose value differs from `old` (the namespace before the re-execution); equal
    plain values that can be swapped back silently are put back into `namespace`."""
    changed: set[str] = set()
    for name in old.keys() | namespace.keys():
        if name in _SKIPPED:
            continue
        before = old.get(name, _MISSING)
        after = namespace.get(name, _MISSING)
        if before is _MISSING or after is _MISSING:
            changed.add(name)
            continue
        if before is after:
            if name in keys_before and _content_changed(after, module, keys_before[name]):
                changed.add(name)
            continue
        if type(after) not in _SCALARS and type(after) not in _CONTAINERS:
            changed.add(name)
            continue
        if not _plain_equal(before, after, _Budget()):
            changed.add(name)
            continue
        if _solely_held(namespace, name):
            namespace[name] = before
        elif _has_mutable(after):
            changed.add(name)  # an equal copy someone else holds: its holders must follow
    return changed


_ROOT_REFS, _INNER_REFS = _calibrate()
