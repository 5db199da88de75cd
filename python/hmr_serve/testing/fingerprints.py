"""What a piece of code means, as a number: two code objects get the same fingerprint when they
would behave the same, wherever in their file they sit.

A test's record lists the fingerprints of the first-party code it ran. After a reload, the
fingerprints a file's new code no longer contains are "gone": every test that ran one of them
ran code that changed (or went away) and is affected. Line numbers are left out, so moving a
function or adding one above it affects nothing; the file and the qualified name are kept, so
two identical functions in different places stay apart (on 3.10, which has no `co_qualname`,
the first line stands in for it)."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator

_HAS_QUALNAME = sys.version_info >= (3, 11)

# id(code) -> (code, fingerprint): the code is kept so its id is never reused while cached.
_cache: dict[int, tuple[types.CodeType, int]] = {}
_names: dict[int, tuple[types.CodeType, frozenset[tuple[str, str]]]] = {}


def _key(code: types.CodeType) -> tuple[object, ...]:
    consts = tuple(
        ("code", of(const)) if isinstance(const, types.CodeType) else (type(const), repr(const))
        for const in code.co_consts
    )
    where = code.co_qualname if _HAS_QUALNAME else (code.co_name, code.co_firstlineno)
    return (
        code.co_filename,
        where,
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
        getattr(code, "co_exceptiontable", b""),
    )


def of(code: types.CodeType) -> int:
    """The fingerprint of `code` (its nested code objects included)."""
    cached = _cache.get(id(code))
    if cached is not None and cached[0] is code:
        return cached[1]
    value = hash(_key(code))
    _cache[id(code)] = (code, value)
    return value


def reads_of(code: types.CodeType, path: str) -> frozenset[tuple[str, str]]:
    """The global and attribute names `code` reads (its own, not its nested functions'), each
    with `path`, the real path of its file."""
    cached = _names.get(id(code))
    if cached is not None and cached[0] is code:
        return cached[1]
    value = frozenset((path, name) for name in code.co_names)
    _names[id(code)] = (code, value)
    return value


def walk(code: types.CodeType) -> Iterator[types.CodeType]:
    """`code` and every code object nested in it."""
    stack = [code]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(c for c in current.co_consts if isinstance(c, types.CodeType))


def all_of(code: types.CodeType) -> set[int]:
    """The fingerprints of `code` and of everything nested in it."""
    return {of(c) for c in walk(code)}
