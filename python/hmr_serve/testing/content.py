"""Whether a value a re-execution made holds the same as the one it replaced.

The engine counts a top-level name as changed when its value is a new object (a class it could
not keep, an app built at import, a dict of instances): its importers must follow. For test
selection the question is another: does anything a test could observe differ from before? A
fresh process would build the very same object from the same code, so a test that passed with
the old one passes with the new one. Two values hold the same when they are equal plain data,
functions with the same code (and defaults and closure contents), classes with the same
attributes, or objects of the same class (by content) whose attributes hold the same, compared
recursively. Nothing here calls the objects' own code (no `__eq__` of user classes, no
properties); what cannot be compared that way counts as changed. The walk is bounded: past
the budget, values count as changed.
"""

from __future__ import annotations

import datetime
import decimal
import enum
import fractions
import functools
import pathlib
import re
import types
import uuid
from typing import Any

from hmr_serve.testing import fingerprints

_BUDGET = 20_000
_PLAIN = (int, float, complex, bool, str, bytes, type(None), range)
# Objects without an instance dict whose equality is the stdlib's own and safe to call.
_SAFE_EQUALITY = (
    re.Pattern,
    datetime.date,
    datetime.time,
    datetime.timedelta,
    datetime.tzinfo,
    decimal.Decimal,
    fractions.Fraction,
    uuid.UUID,
    pathlib.PurePath,
)
_REDUCIBLE_MODULES = frozenset({"_collections", "collections", "operator"})
# Where annotation objects (generic aliases, unions, TypeVars) come from.
_TYPING_MODULES = frozenset({"typing", "types", "typing_extensions"})
# What every class has; it says nothing of what the class does.
_CLASS_BOOKKEEPING = frozenset({"__dict__", "__weakref__", "__module__", "__doc__", "_abc_impl"})


def same(old: Any, new: Any, code: bool = True) -> bool:
    """Whether `new` holds the same as `old` (see the module docstring). Without `code`, a
    function's code is left out (what it holds besides: defaults, closure, attributes)."""
    return _Comparison(code).same(old, new, 0)


class _Comparison:
    def __init__(self, code: bool = True) -> None:
        self.code = code
        self.left = _BUDGET
        self.assumed: set[tuple[int, int]] = set()  # pairs under comparison (cycles)

    def same(self, old: Any, new: Any, depth: int) -> bool:
        if old is new:
            return True
        self.left -= 1
        if self.left < 0 or depth > 40:
            return False
        pair = (id(old), id(new))
        if pair in self.assumed:
            return True
        self.assumed.add(pair)
        try:
            return self._same(old, new, depth + 1)
        except Exception:  # an object that refuses to be looked at counts as changed
            return False

    def _same(self, old: Any, new: Any, depth: int) -> bool:
        kind = type(new)
        if isinstance(new, type):
            return isinstance(old, type) and self._classes(old, new, depth)
        if type(old) is not kind and not self._classes(type(old), kind, depth):
            return False
        if isinstance(new, _PLAIN):
            return bool(old == new)
        if isinstance(new, (tuple, list)):
            return len(old) == len(new) and all(
                self.same(a, b, depth) for a, b in zip(old, new, strict=True)
            )
        if isinstance(new, dict):
            if len(old) != len(new) or list(map(_key, old)) != list(map(_key, new)):
                return False
            pairs = zip(old.values(), new.values(), strict=True)
            return all(self.same(a, b, depth) for a, b in pairs)
        if isinstance(new, (set, frozenset)):
            return len(old) == len(new) and set(map(_key, old)) == set(map(_key, new))
        if isinstance(new, types.FunctionType):
            return self._functions(old, new, depth)
        if isinstance(new, types.MethodType):
            return self.same(old.__func__, new.__func__, depth) and self.same(
                old.__self__, new.__self__, depth
            )
        if isinstance(new, functools.partial):
            return (
                self.same(old.func, new.func, depth)
                and self.same(old.args, new.args, depth)
                and self.same(old.keywords, new.keywords, depth)
            )
        if isinstance(new, (types.ModuleType, enum.Enum)):
            return False  # not the same object: another module, another member
        if isinstance(new, _SAFE_EQUALITY):
            return bool(old == new)
        if kind.__module__ in _TYPING_MODULES:
            return self._typing(old, new, depth)
        if kind.__module__ in _REDUCIBLE_MODULES:
            # C objects of the stdlib that say what they are made of (a namedtuple's field
            # accessors, itemgetter, attrgetter).
            return self.same(old.__reduce__(), new.__reduce__(), depth)
        return self._objects(old, new, depth)

    def _typing(self, old: Any, new: Any, depth: int) -> bool:
        """Annotations and generic bases: `dict[str, Any]`, `Convertor[str]`, a TypeVar made
        at import, a forward reference."""
        for attr in ("__origin__", "__args__", "__forward_arg__", "__name__", "__bound__"):
            a = getattr(old, attr, _UNSET)
            b = getattr(new, attr, _UNSET)
            if (a is _UNSET) != (b is _UNSET) or not self.same(a, b, depth):
                return False
        return True

    def _functions(self, old: Any, new: Any, depth: int) -> bool:
        if self.code and fingerprints.all_of(old.__code__) != fingerprints.all_of(new.__code__):
            return False
        if not self.same(old.__defaults__, new.__defaults__, depth):
            return False
        if not self.same(old.__kwdefaults__, new.__kwdefaults__, depth):
            return False
        cells_old = old.__closure__ or ()
        cells_new = new.__closure__ or ()
        if len(cells_old) != len(cells_new):
            return False
        for a, b in zip(cells_old, cells_new, strict=True):
            try:
                left, right = a.cell_contents, b.cell_contents
            except ValueError:  # an empty cell
                return False
            if not self.same(left, right, depth):
                return False
        return self.same(vars(old), vars(new), depth)

    def _classes(self, old: type, new: type, depth: int) -> bool:
        if old is new:
            return True
        if (old.__module__, old.__qualname__) != (new.__module__, new.__qualname__):
            return False
        if type(old) is not type(new) and not self._classes(type(old), type(new), depth):
            return False
        if len(old.__bases__) != len(new.__bases__):
            return False
        for a, b in zip(old.__bases__, new.__bases__, strict=True):
            if not self._classes(a, b, depth):
                return False
        attrs_old = {k: v for k, v in vars(old).items() if k not in _CLASS_BOOKKEEPING}
        attrs_new = {k: v for k, v in vars(new).items() if k not in _CLASS_BOOKKEEPING}
        if attrs_old.keys() != attrs_new.keys():
            return False
        return all(self.same(attrs_old[k], attrs_new[k], depth) for k in attrs_new)

    def _objects(self, old: Any, new: Any, depth: int) -> bool:
        state_old = _state(old)
        state_new = _state(new)
        if state_old is None or state_new is None:
            return False
        return self.same(state_old, state_new, depth)


def _state(value: Any) -> dict[str, Any] | None:
    """An object's attributes as stored (its `__dict__` and slots), never through properties."""
    state: dict[str, Any] = {}
    found = False
    try:
        state.update(object.__getattribute__(value, "__dict__"))
        found = True
    except AttributeError:
        pass
    for cls in type(value).__mro__:
        slots = cls.__dict__.get("__slots__", ())
        for slot in (slots,) if isinstance(slots, str) else slots:
            if slot in ("__dict__", "__weakref__"):
                continue
            descriptor = cls.__dict__.get(slot)
            if isinstance(descriptor, types.MemberDescriptorType):
                found = True
                try:
                    state[slot] = descriptor.__get__(value, type(value))
                except AttributeError:
                    state[slot] = _UNSET
    return state if found else None


_UNSET = object()


def _key(value: Any) -> Any:
    """A dict key or set element, as plain data when it is, else by identity."""
    return value if isinstance(value, _PLAIN) or isinstance(value, tuple) else ("id", id(value))
