"""Keeps the identity of a module's classes and functions across its re-execution.

Re-running `class User: ...` makes a new class object, but instances made before the reload,
enum members held elsewhere, and classes or functions stored by unchanged code (route tables,
registries, callbacks, default arguments, `isinstance` checks) still point at the old objects,
which would keep running the old code. So before a module is re-executed, every top-level
`def` and `class` statement gets one more, innermost decorator (`instrument`). It receives the
object the statement just made and, when the previous execution made one under the same name
with a compatible shape, updates that old object in place from the new one and returns the old
one. From that statement on, the outer decorators, the rest of the module and every other module
see one object, as in a fresh process, and it runs the new code. Decorated methods of those
classes get the hook too, so a decorator that registers a method (a route in a class-based view)
registers the function the kept class holds.

When the shapes differ (other bases or metaclass, other `__slots__`, changed fields or annotations,
changed enum members, a base with its own `__init_subclass__`), the new object is used as is:
that is what a fresh process has, and instances made before the reload keep their old class.

Every change made to an old object is recorded, so a reload that fails later rolls them back.
"""

from __future__ import annotations

import abc
import ast
import dataclasses
import enum
import functools
import inspect
import sys
import types
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

from hmr_serve.logs import logger

#: Name the injected decorator is looked up under in the module's globals while it executes.
HOOK = "__hmr_identity__"

_MISSING = object()

# Per module: name -> the object the hook returned at the last successful execution. This finds
# the old object even when outer decorators replaced it in the namespace (a click command, a
# task object) and nothing there leads back to it.
_anchors: dict[str, dict[str, Any]] = {}

# Metaclasses whose class creation has no side effect beyond building the class. A class made by
# any other metaclass (Django models, SQLAlchemy declarative) may have registered itself
# somewhere; keeping the old object would leave that registry pointing at the new one.
_PLAIN_METACLASSES = frozenset(
    {
        ("builtins", "type"),
        ("abc", "ABCMeta"),
        ("enum", "EnumType"),
        ("enum", "EnumMeta"),
        ("pydantic._internal._model_construction", "ModelMetaclass"),
    }
)
# Same for `__init_subclass__`: these only set attributes on the new class itself.
_PLAIN_INIT_SUBCLASS_MODULES = frozenset(
    {"builtins", "abc", "enum", "typing", "typing_extensions", "pydantic.main"}
)

# Class attributes never copied: the layout (slot descriptors, `__dict__`), names that cannot
# differ, and ABC bookkeeping (virtual subclasses registered on the old class must survive).
_NEVER_COPIED = frozenset({"__dict__", "__weakref__", "__module__", "__qualname__", "__slots__"})
_ABC_KEPT = frozenset({"_abc_impl"})
# Pydantic compiles a validator and serializer bound to the class they were built for; the old
# class keeps its own (valid: its fields are unchanged) and they reach the new method code
# through the old function objects, which are patched in place.
_PYDANTIC_KEPT = frozenset(
    {
        "model_config",
        "model_fields",
        "model_computed_fields",
        "__class_vars__",
        "__private_attributes__",
        "__signature__",
        "__abstractmethods__",
    }
)
# Enum bookkeeping: the members are unchanged (checked), so the old tables stay right.
_ENUM_KEPT = frozenset(
    {
        "__new__",
        "__new_member__",
        "_new_member_",
        "_member_map_",
        "_member_names_",
        "_member_type_",
        "_value2member_map_",
        "_unhashable_values_",
        "_use_args_",
        "_value_repr_",
        "_singles_mask_",
        "_all_bits_",
        "_boundary_",
        "_flag_mask_",
        "_inverted_",
        "_numeric_repr_",
        "_sort_order_",
    }
)
_MEMBER_OWN = frozenset({"_value_", "_name_", "__objclass__", "_sort_order_"})
# Fields that hold object ids or the object the value was built from, never its meaning.
_IGNORED_FIELDS = frozenset({"cls_ref", "_original_assignment"})


# -- instrumentation ---------------------------------------------------------------------------


def _top_level_definitions(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    for stmt in body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            yield stmt
        elif isinstance(stmt, ast.If):
            yield from _top_level_definitions(stmt.body)
            yield from _top_level_definitions(stmt.orelse)
        elif isinstance(stmt, (ast.Try, getattr(ast, "TryStar", ast.Try))):
            yield from _top_level_definitions(stmt.body)
            for handler in stmt.handlers:
                yield from _top_level_definitions(handler.body)
            yield from _top_level_definitions(stmt.orelse)
            yield from _top_level_definitions(stmt.finalbody)
        elif isinstance(stmt, (ast.With, ast.AsyncWith)):
            yield from _top_level_definitions(stmt.body)
        elif isinstance(stmt, ast.Match):
            for case in stmt.cases:
                yield from _top_level_definitions(case.body)
        # Loop bodies are left alone: a `def` that runs several times makes several objects.


def _hook_at(node: ast.stmt) -> ast.Name:
    # On the `def` line, which no other decorator precedes: line numbers stay as they were.
    return ast.Name(
        id=HOOK,
        ctx=ast.Load(),
        lineno=node.lineno,
        col_offset=node.col_offset,
        end_lineno=node.lineno,
        end_col_offset=node.col_offset,
    )


def _unique(definitions: list[ast.stmt]) -> Iterator[ast.stmt]:
    counts = Counter(node.name for node in definitions)  # type: ignore[attr-defined]
    return (node for node in definitions if counts[node.name] == 1)  # type: ignore[attr-defined]


def _instrument_methods(cls: ast.ClassDef) -> int:
    """Decorated methods get the hook too: a decorator that registers the function it sees (a
    route, a signal receiver, a class-based view's endpoint) must see the object the class
    keeps, as in a fresh process, where the two are one."""
    instrumented = 0
    for node in _unique(list(_top_level_definitions(cls.body))):
        if isinstance(node, ast.ClassDef):
            instrumented += _instrument_methods(node)
        elif node.decorator_list:  # type: ignore[attr-defined]
            node.decorator_list.append(_hook_at(node))  # type: ignore[attr-defined]
            instrumented += 1
    return instrumented


def instrument(tree: ast.Module) -> int:
    """Adds the hook as innermost decorator of each top-level `def`/`class` whose name is
    defined by exactly one statement (`@overload` stubs and if/else variants are left alone),
    and of the decorated methods in those classes. Returns how many statements got it."""
    instrumented = 0
    for node in _unique(list(_top_level_definitions(tree.body))):
        node.decorator_list.append(_hook_at(node))  # type: ignore[attr-defined]
        instrumented += 1
        if isinstance(node, ast.ClassDef):
            instrumented += _instrument_methods(node)
    return instrumented


# -- functions ---------------------------------------------------------------------------------


# What kind of callable a function is. Frameworks cache it by identity (FastAPI decides once per
# function object whether to await it or run it in a thread), so `def` -> `async def` needs a
# new object.
_KIND_FLAGS = (
    inspect.CO_COROUTINE
    | inspect.CO_GENERATOR
    | inspect.CO_ASYNC_GENERATOR
    | inspect.CO_ITERABLE_COROUTINE
)


def _patchable(old: types.FunctionType, new: types.FunctionType) -> bool:
    if (old.__code__.co_flags ^ new.__code__.co_flags) & _KIND_FLAGS:
        return False
    # A closure's cells belong to the old function; only the `__class__` cell of a method (which
    # points at the old class, the one kept) means the same thing for the new code.
    freevars = old.__code__.co_freevars
    return freevars == new.__code__.co_freevars and freevars in ((), ("__class__",))


_FUNCTION_ATTRS = ("__code__", "__defaults__", "__kwdefaults__", "__dict__", "__doc__")
# Since 3.14 annotations are evaluated lazily by `__annotate__`; reading `__annotations__` to
# copy them would evaluate them early (and fail on names defined later in the module).
_ANNOTATIONS = "__annotate__" if hasattr(types.FunctionType, "__annotate__") else "__annotations__"


def _patch_function(
    old: types.FunctionType, new: types.FunctionType, undo: list[Callable[[], None]]
) -> None:
    """Makes `old` run `new`'s code with its defaults, annotations, attributes and docstring.
    `__globals__` needs nothing: both share the module's dict, which is executed in place."""
    if old is new:
        return
    attrs = [*_FUNCTION_ATTRS, _ANNOTATIONS]
    if hasattr(new, "__type_params__"):
        attrs.append("__type_params__")
    saved = [(attr, getattr(old, attr)) for attr in attrs]

    def restore() -> None:
        for attr, value in saved:
            setattr(old, attr, value)

    undo.append(restore)
    for attr in attrs:
        setattr(old, attr, getattr(new, attr))


def _pairs(old: Any, new: Any, depth: int = 0) -> Iterator[tuple[Any, Any]]:
    """Functions at the same place inside two class attributes (a method, the function of a
    classmethod, a property's getter, what a functools wrapper wraps, what another descriptor
    holds)."""
    if depth > 4 or old is None or new is None:
        return
    if isinstance(old, types.FunctionType) and isinstance(new, types.FunctionType):
        yield old, new
        return
    if type(old) is not type(new):
        return
    if isinstance(old, (classmethod, staticmethod)):
        yield from _pairs(old.__func__, new.__func__, depth + 1)
    elif isinstance(old, property):
        for attr in ("fget", "fset", "fdel"):
            yield from _pairs(getattr(old, attr), getattr(new, attr), depth + 1)
    elif isinstance(old, (functools.cached_property, functools.partialmethod)):
        yield from _pairs(old.func, new.func, depth + 1)
    elif hasattr(old, "__wrapped__"):
        yield from _pairs(old.__wrapped__, getattr(new, "__wrapped__", None), depth + 1)
    elif hasattr(type(old), "__get__"):
        # Another kind of descriptor (Django's classproperty): the functions it holds.
        for key, value in held_functions(old):
            yield from _pairs(value, _own_attrs(new).get(key), depth + 1)


def _own_attrs(obj: Any) -> dict[str, Any]:
    attrs = getattr(obj, "__dict__", None)
    return attrs if isinstance(attrs, dict) else {}


def held_functions(obj: Any) -> list[tuple[str, types.FunctionType]]:
    """The functions an object (a descriptor) holds as its own attributes."""
    return [(k, v) for k, v in _own_attrs(obj).items() if isinstance(v, types.FunctionType)]


def _unwrapped(value: Any) -> list[Any]:
    """What a wrapper made by functools.wraps (lru_cache, most decorators) wraps, innermost
    first: it carries the name of the function, which is at the end of the `__wrapped__` chain."""
    chain = [value]
    for _ in range(8):
        wrapped = getattr(chain[-1], "__wrapped__", None)
        if wrapped is None:
            break
        chain.append(wrapped)
    return [c for c in reversed(chain) if "__wrapped__" not in getattr(c, "__dict__", {})]


def _functions(value: Any) -> Iterator[types.FunctionType]:
    for function, _ in _pairs(value, value):
        yield function


def _repoint_class_cell(value: Any, new_cls: type, old_cls: type) -> None:
    # `super()` and `__class__` in a method read the class body's `__class__` cell; moved to the
    # old class, the method must find the old class there or `super()` rejects old instances.
    for function in _functions(value):
        code = function.__code__
        if "__class__" not in code.co_freevars or function.__closure__ is None:
            continue
        cell = function.__closure__[code.co_freevars.index("__class__")]
        try:
            if cell.cell_contents is new_cls:
                cell.cell_contents = old_cls
        except ValueError:  # an empty cell: nothing to repoint
            pass


# -- equivalence of shapes ---------------------------------------------------------------------


def _same_function(a: types.FunctionType, b: types.FunctionType) -> bool:
    if a.__module__ != b.__module__ or a.__qualname__ != b.__qualname__:
        return False
    # A lambda or a local function is recreated each time with no old object to patch, so its
    # code must match; a named method is patched in place, so only its place matters.
    return "<" not in a.__qualname__ or a.__code__ == b.__code__


def _equivalent(a: Any, b: Any, same: dict[int, Any], depth: int = 0) -> bool:
    """Whether two parts of a class's shape (field specs, configs, enum values) mean the same.
    `same` maps the id of a new object to the old one it stands for (the class itself)."""
    if a is b or same.get(id(b), _MISSING) is a:
        return True
    if depth > 8 or type(a) is not type(b):
        return False
    if isinstance(a, types.FunctionType):
        return _same_function(a, b)
    if isinstance(a, types.MethodType):
        return _equivalent(a.__func__, b.__func__, same, depth + 1) and _equivalent(
            a.__self__, b.__self__, same, depth + 1
        )
    if isinstance(a, property):
        return all(
            _equivalent(getattr(a, attr), getattr(b, attr), same, depth + 1)
            for attr in ("fget", "fset", "fdel")
        )
    if isinstance(a, dict):
        return list(a) == list(b) and all(_equivalent(a[key], b[key], same, depth + 1) for key in a)
    if isinstance(a, (list, tuple)):
        pairs = zip(a, b, strict=True) if len(a) == len(b) else None
        return pairs is not None and all(_equivalent(x, y, same, depth + 1) for x, y in pairs)
    if isinstance(a, type):
        return False  # classes are the same object or different classes
    # Dataclasses are compared field by field: their generated `__eq__` compares the functions
    # and classes inside by identity, which a re-execution always changes.
    if not dataclasses.is_dataclass(a) and type(a).__eq__ is not object.__eq__:
        try:
            return bool(a == b)
        except Exception:
            return False
    state_a, state_b = _state(a), _state(b)
    if state_a is None or state_b is None:
        return False
    return _equivalent(state_a, state_b, same, depth + 1)


def _state(obj: Any) -> dict[str, Any] | None:
    """The attributes of an object that has no `__eq__` of its own (FieldInfo, Decorator)."""
    state: dict[str, Any] = {}
    found = False
    if dataclasses.is_dataclass(obj):
        found = True
        for f in dataclasses.fields(obj):
            state[f.name] = getattr(obj, f.name, _MISSING)
    for klass in type(obj).__mro__:
        slots = klass.__dict__.get("__slots__", ())
        for slot in (slots,) if isinstance(slots, str) else slots:
            if slot not in ("__dict__", "__weakref__"):
                found = True
                state[slot] = getattr(obj, slot, _MISSING)
    if hasattr(obj, "__dict__"):
        found = True
        state.update(vars(obj))
    for name in _IGNORED_FIELDS:
        state.pop(name, None)
    return state if found else None


def _own_annotations(cls: type) -> dict[str, Any]:
    if sys.version_info >= (3, 14):
        import annotationlib

        try:
            return annotationlib.get_annotations(cls, format=annotationlib.Format.FORWARDREF)
        except Exception:
            return {"<unreadable>": object()}  # never equivalent: the class is replaced
    return cls.__dict__.get("__annotations__", {})


def _is_enum(cls: type) -> bool:
    return isinstance(cls, enum.EnumMeta)


def _is_pydantic(cls: type) -> bool:
    meta = type(cls)
    return meta.__name__ == "ModelMetaclass" and meta.__module__.startswith("pydantic.")


def _slots(cls: type) -> tuple[str, ...] | None:
    slots = cls.__dict__.get("__slots__")
    if slots is None:
        return None
    return (slots,) if isinstance(slots, str) else tuple(slots)


def _incompatibility(old: type, new: type) -> str | None:
    """Why `old` cannot be updated into `new`'s shape, or None when it can."""
    meta = type(new)
    if type(old) is not meta:
        return "other metaclass"
    if (meta.__module__, meta.__qualname__) not in _PLAIN_METACLASSES:
        return f"metaclass {meta.__qualname__} may register the class"
    if len(old.__bases__) != len(new.__bases__) or any(
        a is not b for a, b in zip(old.__bases__, new.__bases__, strict=True)
    ):
        return "other base classes"
    for base in new.__mro__[1:]:
        hook = base.__dict__.get("__init_subclass__")
        if hook is not None and base.__module__ not in _PLAIN_INIT_SUBCLASS_MODULES:
            return f"{base.__qualname__}.__init_subclass__ may register the class"
    if _slots(old) != _slots(new) or any(
        getattr(old, attr) != getattr(new, attr)
        for attr in ("__basicsize__", "__itemsize__", "__dictoffset__", "__weakrefoffset__")
    ):
        return "other instance layout"
    same = {id(new): old}
    if not _equivalent(_own_annotations(old), _own_annotations(new), same):
        return "fields or annotations changed"
    if "_fields" in new.__dict__ and not _equivalent(
        old.__dict__.get("_fields"), new.__dict__["_fields"], same
    ):
        return "named tuple fields changed"
    if _is_enum(new):
        return _enum_incompatibility(old, new, same)
    if _is_pydantic(new):
        return _pydantic_incompatibility(old, new, same)
    return None


def _enum_incompatibility(old: Any, new: Any, same: dict[int, Any]) -> str | None:
    old_members = list(old.__members__.items())
    new_members = list(new.__members__.items())
    if [name for name, _ in old_members] != [name for name, _ in new_members]:
        return "enum members changed"
    for (name, a), (_, b) in zip(old_members, new_members, strict=True):
        if a._name_ != b._name_ or not _equivalent(a._value_, b._value_, same):
            return f"enum member {name} changed"
    return None


# Hooks that shape the compiled schema, or run as the class is made, beyond what is compared.
_PYDANTIC_HOOKS = ("__get_pydantic_core_schema__", "__pydantic_init_subclass__")


def _pydantic_incompatibility(old: Any, new: Any, same: dict[int, Any]) -> str | None:
    for hook in _PYDANTIC_HOOKS:
        if any(
            hook in base.__dict__ and not base.__module__.startswith("pydantic.")
            for base in (old, *new.__mro__)
        ):
            return f"{hook} defined"
    if not (
        old.__dict__.get("__pydantic_complete__") and new.__dict__.get("__pydantic_complete__")
    ):
        return "pydantic model not complete"
    for attr in (
        "__pydantic_fields__",
        "__pydantic_computed_fields__",
        "model_config",
        "__private_attributes__",
        "__class_vars__",
        "__pydantic_generic_metadata__",
        "__pydantic_post_init__",
        "__pydantic_custom_init__",
        "__pydantic_root_model__",
    ):
        if not _equivalent(
            old.__dict__.get(attr, _MISSING), new.__dict__.get(attr, _MISSING), same
        ):
            return f"pydantic {attr.strip('_')} changed"
    old_decorators = old.__dict__.get("__pydantic_decorators__")
    new_decorators = new.__dict__.get("__pydantic_decorators__")
    if not _equivalent(old_decorators, new_decorators, same):
        return "pydantic validators or serializers changed"
    # The old compiled validator calls the old method objects: each must take the new code.
    for key, value in new.__dict__.items():
        for a, b in _pairs(old.__dict__.get(key), value):
            if not _patchable(a, b):
                return f"method {key} cannot be updated in place"
    return None


# -- the hook ----------------------------------------------------------------------------------


class Patcher:
    """The hook for one execution of one module, and the undo log of what it changed."""

    def __init__(self, module: str, old_namespace: dict[str, Any]) -> None:
        self.module = module
        self.old_namespace = old_namespace
        self.previous = _anchors.get(module, {})
        self.anchors: dict[str, Any] = {}
        self._undo: list[Callable[[], None]] = []

    def __call__(self, obj: Any) -> Any:
        # A method's hook receives `Class.method`: qualified names keep it apart from a function.
        name = getattr(obj, "__qualname__", None)
        if not isinstance(name, str) or name in self.anchors:
            return obj
        result = obj
        mark = len(self._undo)
        try:
            if isinstance(obj, types.FunctionType):
                result = self._function(name, obj)
            elif isinstance(obj, type):
                result = self._class(name, obj)
        except Exception as exc:  # a bug here must not cost the user a reload
            self._rewind(mark)
            logger.debug("%s.%s: identity not kept: %r", self.module, name, exc)
            result = obj
        self.anchors[name] = result
        return result

    def _old(self, name: str, new: Any) -> Any:
        """The previous execution's object for this definition, if it is one of ours."""
        candidates = [self.previous.get(name)]
        if "." in name:
            candidates += self._old_methods(name)
        elif isinstance(new, types.FunctionType):
            candidates += _unwrapped(self.old_namespace.get(name))
        else:
            candidates.append(self.old_namespace.get(name))
        kind = types.FunctionType if isinstance(new, types.FunctionType) else type
        for candidate in candidates:
            if (
                isinstance(candidate, kind)
                and getattr(candidate, "__module__", None) == self.module
                and getattr(candidate, "__qualname__", None) == name
            ):
                return candidate
        return None

    def _old_methods(self, qualname: str) -> list[Any]:
        """The functions the old class holds under a method's name, unwrapped."""
        path = qualname.split(".")
        owner = self.previous.get(path[0]) or self.old_namespace.get(path[0])
        for part in path[1:-1]:
            owner = _own_attrs(owner).get(part)
        if not isinstance(owner, type):
            return []
        attr = owner.__dict__.get(path[-1])
        return [inner for function in _functions(attr) for inner in _unwrapped(function)]

    def _function(self, name: str, new: types.FunctionType) -> Any:
        if new.__module__ != self.module or new.__qualname__ != name:
            return new
        old = self._old(name, new)
        if old is None or old is new:
            return new
        if "." in name and "__class__" in new.__code__.co_freevars:
            # `super()` reads the cell of the class being made, the old function's cell holds
            # the old class: only the new function is right if the class turns out replaced.
            # The class takes it (`_merge`), so the decorator and the class still agree.
            return new
        if not _patchable(old, new):
            logger.debug(
                "%s.%s is a new function (sync/async/generator kind or closure changed)",
                self.module,
                name,
            )
            return new
        _patch_function(old, new, self._undo)
        return old

    def _class(self, name: str, new: type) -> Any:
        if new.__module__ != self.module or new.__qualname__ != name:
            return new
        old = self._old(name, new)
        if old is None or old is new:
            return new
        reason = _incompatibility(old, new)
        if reason is not None:
            logger.debug(
                "%s.%s is a new class (%s); objects made before the reload keep the old one",
                self.module,
                name,
                reason,
            )
            return new
        self._update_class(old, new)
        return old

    def _update_class(self, old: type, new: type) -> None:
        saved = dict(old.__dict__)
        self._undo.append(functools.partial(_restore_class, old, saved))
        is_enum = _is_enum(new)
        kept = set(_NEVER_COPIED | _ABC_KEPT)
        if _is_pydantic(new):
            internal = {*new.__dict__, *saved}
            kept |= _PYDANTIC_KEPT | {k for k in internal if k.startswith("__pydantic_")}
        if is_enum:
            kept |= _ENUM_KEPT | set(new.__members__) | set(old.__members__)
        taken: list[Any] = []
        for key, value in new.__dict__.items():
            if key in kept or _is_layout_descriptor(value, new):
                continue
            current = saved.get(key, _MISSING)
            merged = self._merge(old, new, key, current, value)
            if merged is not current:
                setattr(old, key, merged)
            if merged is value:
                taken.append(value)
                set_name = getattr(type(value), "__set_name__", None)
                if set_name is not None:
                    set_name(value, old, key)
        for key, value in saved.items():
            if (
                key not in new.__dict__
                and key not in kept
                and not _is_layout_descriptor(value, old)
            ):
                delattr(old, key)
        if is_enum:
            self._update_members(old, new)
        if isinstance(old, abc.ABCMeta):
            old._abc_caches_clear()  # type: ignore[attr-defined]  # answers of the old hooks
        # Last, as it cannot be undone: nothing above may fail after the cells point elsewhere.
        for value in taken:
            _repoint_class_cell(value, new, old)

    def _merge(self, old_cls: type, new_cls: type, key: str, current: Any, value: Any) -> Any:
        """What the old class's attribute `key` becomes: the old object updated, or `value`."""
        if current is _MISSING:
            return value
        qualname = f"{new_cls.__qualname__}.{key}"
        if (
            isinstance(current, types.FunctionType)
            and isinstance(value, types.FunctionType)
            and current.__qualname__ == value.__qualname__ == qualname
            and current.__module__ == self.module
        ):
            if _patchable(current, value):
                _patch_function(current, value, self._undo)
                # `Cls.method` stored anywhere stays the method, unless a decorator was
                # handed the new one: then what it registered and the class must agree.
                return value if self.anchors.get(qualname) is value else current
            return value
        if (
            isinstance(current, type)
            and isinstance(value, type)
            and current.__qualname__ == value.__qualname__ == qualname
            and current.__module__ == value.__module__ == self.module
        ):
            if _incompatibility(current, value) is None:
                self._update_class(current, value)
                return current
            return value
        # Descriptors are rebuilt freely, but the functions inside the old ones may be held
        # elsewhere (a pydantic validator holds its classmethod's function): they get the code.
        for a, b in _pairs(current, value):
            if (
                a is not b
                and a.__module__ == self.module
                and a.__qualname__ == b.__qualname__
                and _patchable(a, b)
            ):
                _patch_function(a, b, self._undo)
        return value

    def _update_members(self, old: Any, new: Any) -> None:
        # Members keep their identity; attributes their `__init__` sets follow the new code.
        for name, member in old._member_map_.items():
            fresh = new._member_map_[name]
            if not hasattr(member, "__dict__") or not hasattr(fresh, "__dict__"):
                continue
            saved = dict(member.__dict__)
            self._undo.append(functools.partial(_restore_dict, member.__dict__, saved))
            for key in list(member.__dict__):
                if key not in _MEMBER_OWN and key not in fresh.__dict__:
                    del member.__dict__[key]
            for key, value in fresh.__dict__.items():
                if key not in _MEMBER_OWN:
                    member.__dict__[key] = value

    def _rewind(self, mark: int) -> None:
        while len(self._undo) > mark:
            self._undo.pop()()

    def undo(self) -> None:
        """Puts every old object back as it was before this execution."""
        self._rewind(0)


def _is_layout_descriptor(value: Any, owner: type) -> bool:
    # Slot and `__dict__` descriptors work only on instances of the class that made them.
    return (
        isinstance(value, (types.MemberDescriptorType, types.GetSetDescriptorType))
        and value.__objclass__ is owner
    )


def _restore_class(cls: type, saved: dict[str, Any]) -> None:
    for key in list(cls.__dict__):
        if key not in saved and key not in _NEVER_COPIED:
            delattr(cls, key)
    for key, value in saved.items():
        if key not in _NEVER_COPIED and cls.__dict__.get(key, _MISSING) is not value:
            setattr(cls, key, value)


def _restore_dict(target: dict[str, Any], saved: dict[str, Any]) -> None:
    target.clear()
    target.update(saved)


def commit(patcher: Patcher) -> None:
    _anchors[patcher.module] = patcher.anchors


def known(module: str) -> bool:
    """Whether the module's last execution left objects whose identity can be kept."""
    return bool(_anchors.get(module))


def forget(module: str) -> None:
    _anchors.pop(module, None)
