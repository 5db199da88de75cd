"""What a piece of code means, as a number: two code objects get the same fingerprint when they
would behave the same, wherever in their file they sit.

A test's record lists the fingerprints of the first-party code it ran. After a reload, the
fingerprints a file's new code no longer contains are "gone": every test that ran one of them
ran code that changed (or went away) and is affected. Line numbers are left out, so moving a
function or adding one above it affects nothing; the file and the qualified name are kept, so
two identical functions in different places stay apart (on 3.10, which has no `co_qualname`,
the first line stands in for it)."""

from __future__ import annotations

import opcode
import sys
import types
from collections.abc import Iterator

_HAS_QUALNAME = sys.version_info >= (3, 11)

# id(code) -> (code, fingerprint): the code is kept so its id is never reused while cached.
_cache: dict[int, tuple[types.CodeType, int]] = {}
_Reads = tuple[frozenset[tuple[str, str]], frozenset[tuple[str, str]]]
_names: dict[int, tuple[types.CodeType, _Reads]] = {}


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


def _opcodes(*names: str) -> frozenset[int]:
    return frozenset(opcode.opmap[name] for name in names if name in opcode.opmap)


# Instructions naming a global (of the code's own module, or a builtin) and an attribute.
_GLOBAL_OPS = _opcodes(
    "LOAD_GLOBAL", "LOAD_NAME", "STORE_GLOBAL", "DELETE_GLOBAL", "LOAD_FROM_DICT_OR_GLOBALS"
)
_ATTRIBUTE_OPS = _opcodes(
    "LOAD_ATTR", "LOAD_METHOD", "STORE_ATTR", "DELETE_ATTR", "LOAD_SUPER_ATTR", "IMPORT_FROM"
)
_NAMED_OPS = _GLOBAL_OPS | _ATTRIBUTE_OPS
_EXTENDED_ARG = opcode.opmap["EXTENDED_ARG"]
# From 3.11 LOAD_GLOBAL, from 3.12 LOAD_ATTR (and LOAD_SUPER_ATTR, by two) keep flags in the
# low bits of their argument.
_SHIFT = {
    op: shift
    for name, shift, since in (
        ("LOAD_GLOBAL", 1, (3, 11)),
        ("LOAD_ATTR", 1, (3, 12)),
        ("LOAD_SUPER_ATTR", 2, (3, 12)),
    )
    if name in opcode.opmap and sys.version_info >= since
    for op in (opcode.opmap[name],)
}


def reads_of(
    code: types.CodeType, path: str
) -> tuple[frozenset[tuple[str, str]], frozenset[tuple[str, str]]]:
    """The names `code` reads (its own instructions, not its nested functions'), each with
    `path`, the real path of its file: (as globals of its module, as attributes)."""
    cached = _names.get(id(code))
    if cached is not None and cached[0] is code:
        return cached[1]
    globals_: set[str] = set()
    attributes: set[str] = set()
    raw = code.co_code
    names = code.co_names
    extended = 0
    for at in range(0, len(raw), 2):
        op = raw[at]
        arg = raw[at + 1] | extended
        if op == _EXTENDED_ARG:
            extended = arg << 8
            continue
        extended = 0
        if op in _NAMED_OPS:
            index = arg >> _SHIFT.get(op, 0)
            if index < len(names):
                (globals_ if op in _GLOBAL_OPS else attributes).add(names[index])
    value = (
        frozenset((path, name) for name in globals_),
        frozenset((path, name) for name in attributes),
    )
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
