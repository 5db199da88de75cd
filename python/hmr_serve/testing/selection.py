"""Which tests a change affects, from what each test ran and read last time.

A test runs again when
- it is new, or was edited (its function's code, its parameters, its marks or its fixtures
  differ from the last collection), or it never ran (deselected by `-x`, interrupted);
- it failed last time;
- it ran code that changed or went away (a fingerprint of its recording is gone);
- code it ran reads a name whose value changed: a re-executed module's changed names, the
  cached functions an in-place patch cleared, the values another module's import may have
  mutated. A name of module `m` counts where code can name it: as a global in `m`'s own file;
  as an attribute in the files of the modules that import `m`, or anywhere the code also names
  `m` (`app.config.LIMIT` reads `config` and `LIMIT`). (A module that imports the name itself,
  `from m import LIMIT`, re-ran and has its own changed names.) An attribute of a class that
  changed counts wherever it is read as an attribute: instances travel; and so does a value
  another module may have mutated in place, wherever it is read: `from m import REGISTRY` shares
  the object;
- it read a data file that changed;
- it uses a fixture that is rebuilt: a fixture wider than a function keeps its value across
  runs, so it is rebuilt when its own setup ran code that changed, read a changed name or a
  changed file, or when a fixture it depends on is rebuilt;
- its file changed and it is not a Python function (a doctest, a plugin's item).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pytest

from hmr_serve.testing import fingerprints
from hmr_serve.testing.recorder import Summary


@dataclass
class Change:
    """What a reload changed, in the terms recordings are compared with."""

    gone: set[int] = field(default_factory=set)  # fingerprints no longer in the code
    # (real path, name): code in that file reading that name (as a global, as an attribute)
    # reads a changed value.
    globals: set[tuple[str, str]] = field(default_factory=set)
    attributes: set[tuple[str, str]] = field(default_factory=set)
    # (module's short name, name): code in one file reading both reads a changed value.
    chains: set[tuple[str, str]] = field(default_factory=set)
    # Attribute names read anywhere: a changed class's attributes.
    names: set[str] = field(default_factory=set)
    # Names read anywhere, as globals or attributes: values mutated in place, which every
    # `from m import NAME` anywhere shares.
    mutated: set[str] = field(default_factory=set)
    files: set[str] = field(default_factory=set)  # real paths of changed files


@dataclass
class TestRecord:
    summary: Summary | None = None  # None: never ran
    outcome: str | None = None  # "passed", "failed", "skipped"
    fixtures: tuple[Any, ...] = ()  # the FixtureDefs its last run used
    shape: Any = None  # what its collection looked like (testing/selection.shape)


@dataclass
class FixtureRecord:
    fixturedef: Any
    summary: Summary
    depends_on: tuple[Any, ...]


_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def _stable_repr(value: Any) -> str:
    try:
        return _ADDRESS.sub("", repr(value))
    except Exception:
        return type(value).__qualname__


def shape(item: pytest.Item) -> Any:
    """What a test is, as collected: its function's code, its parameters, marks and fixtures."""
    function = getattr(item, "function", None)
    code = getattr(function, "__code__", None)
    callspec = getattr(item, "callspec", None)
    params = tuple((k, _stable_repr(v)) for k, v in callspec.params.items()) if callspec else None
    marks = tuple(
        (mark.name, _stable_repr(mark.args), _stable_repr(mark.kwargs))
        for mark in item.iter_markers()
        if mark.name != "parametrize"  # its values for this test are in `params`
    )
    return (
        type(item).__qualname__,
        frozenset(fingerprints.all_of(code)) if code is not None else None,
        params,
        marks,
        tuple(getattr(item, "fixturenames", ())),
    )


def _summary_reason(summary: Summary, change: Change, where: dict[int, str]) -> str | None:
    if change.gone and not change.gone.isdisjoint(summary.fingerprints):
        hit = next(iter(change.gone & summary.fingerprints))
        return f"ran code that changed in {os.path.relpath(where.get(hit, '?'))}"
    pairs = ((change.globals, summary.globals), (change.attributes, summary.attributes))
    for mine, theirs in pairs:
        if mine and not mine.isdisjoint(theirs):
            path, name = sorted(mine & theirs)[0]
            return f"reads {name} (in {os.path.relpath(path)}), which changed"
    names = summary.attribute_names
    for short, name in change.chains:
        if name in names:
            for path in {path for path, read in summary.attributes if read == name}:
                if (path, short) in summary.attributes or (path, short) in summary.globals:
                    return f"reads {short}.{name} (in {os.path.relpath(path)}), which changed"
    if change.names and not change.names.isdisjoint(names):
        return f"reads .{sorted(change.names & names)[0]}, which changed"
    if change.mutated:
        hit = change.mutated & (names | summary.global_names)
        if hit:
            return f"reads {sorted(hit)[0]}, which another module's import may have changed"
    if change.files and not change.files.isdisjoint(summary.files):
        return f"read {os.path.relpath(sorted(change.files & summary.files)[0])}"
    return None


def stale_fixtures(
    records: dict[int, FixtureRecord], change: Change, where: dict[int, str]
) -> dict[int, str]:
    """The fixtures (by id of their FixtureDef) that must be rebuilt, with the reason."""
    stale: dict[int, str] = {}
    for key, record in records.items():
        reason = _summary_reason(record.summary, change, where)
        if reason is not None:
            stale[key] = reason
    grown = True
    while grown:  # the fixtures that depend on a rebuilt one are rebuilt with it
        grown = False
        for key, record in records.items():
            if key in stale:
                continue
            for dep in record.depends_on:
                if id(dep) in stale:
                    stale[key] = f"depends on {dep.argname}, which is rebuilt"
                    grown = True
                    break
    return stale


def affected(
    items: Iterable[pytest.Item],
    records: dict[str, TestRecord],
    change: Change,
    stale: dict[int, str],
    where: dict[int, str],
    edited: dict[str, str],
) -> dict[str, str]:
    """The tests to run (nodeid -> why), in the order of `items`."""
    chosen: dict[str, str] = {}
    for item in items:
        nodeid = item.nodeid
        reason = edited.get(nodeid)
        record = records.get(nodeid)
        if reason is None:
            if record is None or record.summary is None:
                reason = "never ran"
            elif record.outcome == "failed":
                reason = "failed last time"
            else:
                reason = _summary_reason(record.summary, change, where)
                if reason is None and stale:
                    for fixturedef in record.fixtures:
                        why = stale.get(id(fixturedef))
                        if why is not None:
                            reason = f"uses {fixturedef.argname}, rebuilt: it {why}"
                            break
                if reason is None and change.files and getattr(item, "function", None) is None:
                    if os.path.realpath(item.path) in change.files:
                        reason = "its file changed"
        if reason is not None:
            chosen[nodeid] = reason
    return chosen
