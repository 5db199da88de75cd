"""Which modules a change re-executes: the changed ones, then each importer that read, while it
imported, a name that changes, repeated for that importer's own importers.

An importer re-runs when, at import time, it
- read a name that may change (`from m import x`, `m.x` at module level, in a class body, a
  decorator, a default or an annotation);
- depends on the whole module (`from m import *`, the module object itself used or passed
  around, a dynamic import, `exec`/`globals()`/`sys.modules` at module level, or an import the
  static pass did not see);
- called into code (a call, a decorator, a base class, a value passed to a call, an operator on
  a first-party object) whose functions read, when they run, a name that may change: what a
  function of module `o` reads is what all of `o`'s function bodies read, followed through every
  first-party function, class or instance they reach;
- shares an import cycle with a module that re-runs.
Which names may change is predicted from the sources before anything runs
(reload/prediction.py); the static reads come from the Rust pass (`ReloadEngine.reads`).

After the re-execution, `verify` takes the values' actual changes (reload/values.py): an
importer left out that read a name that did change makes the reload run again with it. An
importer that an integration can update in place (`Integration.absorb`: a FastAPI app whose
routers re-ran) is not re-run; the integration applies the change instead.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from hmr_serve import integrations
from hmr_serve.reload.prediction import ALL, predict


class Entry(NamedTuple):
    """What one module reads of another."""

    names: frozenset[str]
    exposed: frozenset[str]  # read where the value may be called or operated on
    whole: bool
    whole_exposed: bool


_EMPTY = Entry(frozenset(), frozenset(), False, False)
_WHOLE = Entry(frozenset(), frozenset(), True, True)


class Reads(NamedTuple):
    import_time: dict[str, Entry]
    call_time: dict[str, Entry]
    own_code_runs: bool
    dynamic: bool


_NOT_ANALYSED = Reads({}, {}, True, True)


def _first(changes: Mapping[str, frozenset[str]]) -> str:
    return next(module for module, names in changes.items() if names)


class ReadsCache:
    """The static pass's reads, converted once per parse of each module."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self._cache: dict[str, Reads | None] = {}
        # Equal summaries share one object (most importers of a settings module read the
        # same names), so a decision made for one holds for the others.
        self._interned: dict[Any, Reads] = {}

    def refresh(self) -> None:
        for name in self.engine.take_reparsed():
            self._cache.pop(name, None)

    def warm(self) -> None:
        """Converts every parsed module's reads now (start-up, off the event loop)."""
        self.refresh()
        for name in list(self.engine.parsed_modules()):
            self.get(name)

    def get(self, name: str) -> Reads | None:
        try:
            return self._cache[name]
        except KeyError:
            pass
        raw = self.engine.reads(name)
        reads = None
        if raw is not None:
            import_time, call_time, own_code_runs, dynamic = raw
            key = (
                tuple(sorted(import_time.items())),
                tuple(sorted(call_time.items())),
                own_code_runs,
                dynamic,
            )
            reads = self._interned.get(key)
            if reads is None:
                reads = self._interned[key] = Reads(
                    {m: Entry(*entry) for m, entry in import_time.items()},
                    {m: Entry(*entry) for m, entry in call_time.items()},
                    own_code_runs,
                    dynamic,
                )
        self._cache[name] = reads
        return reads


# -- which first-party code a value leads to ---------------------------------------------------


def _owners(value: Any, first_party: Callable[[str], bool], depth: int = 0) -> set[str]:
    """First-party modules whose code using `value` may run: a function's module, a class's
    (and its bases' and metaclass's), an instance's class's, a module itself."""
    if depth > 4:
        return set()
    found: set[str] = set()
    if isinstance(value, types.ModuleType):
        name = getattr(value, "__name__", None)
        if isinstance(name, str) and first_party(name):
            found.add(name)
        return found
    if isinstance(value, (int, float, complex, bool, str, bytes, type(None))):
        return found
    if isinstance(value, (tuple, list, set, frozenset)):
        for item in list(value)[:64]:
            found |= _owners(item, first_party, depth + 1)
        return found
    if isinstance(value, dict):
        for item in list(value.values())[:64]:
            found |= _owners(item, first_party, depth + 1)
        return found
    try:
        if isinstance(value, (types.FunctionType, types.BuiltinFunctionType)):
            module = getattr(value, "__module__", None)
            if isinstance(module, str) and first_party(module):
                found.add(module)
        elif isinstance(value, types.MethodType):
            found |= _owners(value.__func__, first_party, depth + 1)
            found |= _owners(value.__self__, first_party, depth + 1)
        if isinstance(value, type):  # its methods, its bases' and its metaclass's
            classes: tuple[type, ...] = (*value.__mro__, *type(value).__mro__)
        else:  # an instance: its class's methods and operators
            classes = type(value).__mro__
        for cls in classes:
            module = cls.__dict__.get("__module__")
            if isinstance(module, str) and first_party(module):
                found.add(module)
        if not isinstance(value, type):
            for attr in ("__wrapped__", "func", "__func__"):  # decorators, partial, methods
                inner = getattr(value, attr, None)
                if inner is not None and inner is not value:
                    found |= _owners(inner, first_party, depth + 1)
    except Exception:  # a proxy (flask.request) may raise when looked at
        pass
    return found


def _live(module: str, name: str) -> Any:
    target = sys.modules.get(module)
    if target is None:
        return None
    try:
        return target.__dict__.get(name)
    except Exception:
        return None


# -- the plan ----------------------------------------------------------------------------------


@dataclass
class Plan:
    order: list[str]  # modules to re-execute (the executor runs them in import order)
    predicted: dict[str, frozenset[str]]  # names each may change
    reasons: dict[str, str] = field(default_factory=dict)  # why each importer re-runs
    deferred: dict[str, dict[str, frozenset[str]]] = field(default_factory=dict)
    members: list[tuple[str, list[str], int]] = field(default_factory=list)  # the closure

    def prerequisites(self) -> dict[str, list[str]]:
        """For each module of `order`, the modules of `order` it depends on through the
        closure, outside its own import cycle: they run before it."""
        due = set(self.order)
        deps = {name: d for name, d, _ in self.members}
        component = {name: c for name, _, c in self.members}
        result: dict[str, list[str]] = {}
        for name in self.order:
            found: list[str] = []
            seen = {name}
            stack = list(deps.get(name, ()))
            while stack:
                dep = stack.pop()
                if dep in seen:
                    continue
                seen.add(dep)
                if component.get(dep) == component.get(name):
                    continue
                if dep in due:
                    found.append(dep)  # it pulls in what it depends on itself
                else:
                    stack.extend(deps.get(dep, ()))
            if found:
                result[name] = found
        return result

    @property
    def unaffected(self) -> int:
        return len(self.members) - len(self.order)


class _CallReads:
    """What the code of a first-party module reads when its functions run, followed through
    the first-party code those reads lead to; None where that cannot be known."""

    def __init__(self, reads: ReadsCache, first_party: Callable[[str], bool]) -> None:
        self.reads = reads
        self.first_party = first_party
        self._memo: dict[str, dict[str, Entry] | None] = {}

    def of(self, owner: str) -> dict[str, Entry] | None:
        if owner in self._memo:
            return self._memo[owner]
        result: dict[str, Entry] = {}
        self._memo[owner] = result  # a cycle back here adds nothing new
        reads = self.reads.get(owner)
        if reads is None or reads.dynamic:
            self._memo[owner] = None
            return None
        for module, entry in reads.call_time.items():
            if not self.first_party(module):
                continue
            _merge(result, module, entry)
            nested: set[str] = set()
            if entry.whole:
                nested.add(module)
            for name in entry.names:
                nested |= _owners(_live(module, name), self.first_party)
            for other in nested - {owner}:
                deeper = self.of(other)
                if deeper is None:
                    self._memo[owner] = None
                    return None
                for m, e in deeper.items():
                    _merge(result, m, e)
        return result


def _merge(into: dict[str, Entry], module: str, entry: Entry) -> None:
    current = into.get(module)
    if current is None:
        into[module] = entry
    else:
        into[module] = Entry(
            current.names | entry.names,
            current.exposed | entry.exposed,
            current.whole or entry.whole,
            current.whole_exposed or entry.whole_exposed,
        )


class _Decider:
    def __init__(self, reads: ReadsCache, first_party: Callable[[str], bool]) -> None:
        self.reads = reads
        self.first_party = first_party
        self.calls = _CallReads(reads, first_party)
        # (module, name) -> first-party modules its value leads to; the values do not change
        # while one plan (or one check) is made.
        self._owners: dict[tuple[str, str], set[str]] = {}
        # Decisions by (summary, changed dependencies, how many modules change so far): the
        # same answer for every importer that reads the same, unless its own code may run.
        self._decisions: dict[tuple[Any, ...], tuple[str | None, dict[str, frozenset[str]]]] = {}

    def owners(self, module: str, attr: str) -> set[str]:
        key = (module, attr)
        found = self._owners.get(key)
        if found is None:
            found = self._owners[key] = _owners(_live(module, attr), self.first_party)
        return found

    def entry(self, reads: Reads, dep: str) -> Entry | None:
        entry = reads.import_time.get(dep)
        if entry is None:
            # `from pkg import sub` names the submodule as an attribute of its package.
            parent, _, short = dep.rpartition(".")
            parent_entry = reads.import_time.get(parent) if parent else None
            if parent_entry is not None and short in parent_entry.names:
                return _EMPTY
        return entry

    def decide(
        self,
        name: str,
        deps: Iterable[str],
        changes: Mapping[str, frozenset[str]],
    ) -> tuple[str | None, dict[str, frozenset[str]]]:
        """(why `name` must re-run, or None; and the plain name reads that changed)."""
        if not any(changes.values()):
            return None, {}
        changed_deps = [d for d in deps if changes.get(d)]
        reads = self.reads.get(name)
        if reads is None:
            if changed_deps:
                return f"imports {changed_deps[0]} (its source was not analysed)", {}
            reads = _NOT_ANALYSED
        if reads.dynamic:
            return f"reads modules dynamically (and {_first(changes)} changes)", {}
        key = None
        if not reads.own_code_runs:
            key = (id(reads), tuple(changed_deps), len(changes))
            decided = self._decisions.get(key)
            if decided is not None:
                return decided
        hits: dict[str, frozenset[str]] = {}
        for dep in changed_deps:
            entry = self.entry(reads, dep)
            if entry is None:
                return f"imports {dep} in a way the static pass does not see", {}
            if entry.whole:
                return f"uses the whole module {dep}", {}
            # A package used whole reaches its submodules as attributes.
            package = dep.rpartition(".")[0]
            while package:
                outer = reads.import_time.get(package)
                if outer is not None and outer.whole:
                    return f"uses the whole package {package}", {}
                package = package.rpartition(".")[0]
            hit = entry.names & changes[dep]
            if hit:
                hits[dep] = frozenset(hit)
        # Calls into code reading a changed name: through any module, changed or not.
        why = self._calls(name, reads, changes)
        if key is not None:
            self._decisions[key] = (why, hits)
        return why, hits

    def _calls(self, name: str, reads: Reads, changes: Mapping[str, frozenset[str]]) -> str | None:
        exposed: list[tuple[str, str | None]] = []
        sources = [reads.import_time]
        if reads.own_code_runs:
            sources.append(reads.call_time)
        for table in sources:
            for module, entry in table.items():
                if not self.first_party(module) and module != name:
                    continue
                names = entry.names if table is reads.call_time else entry.exposed
                exposed.extend((module, n) for n in names)
                if entry.whole_exposed or (table is reads.call_time and entry.whole):
                    exposed.append((module, None))
        for module, attr in exposed:
            owners = {module} if attr is None else self.owners(module, attr)
            for owner in owners:
                if owner == name and attr is not None and module == name:
                    continue  # its own functions: their reads are listed here already
                read = self.calls.of(owner)
                if read is None:
                    if any(changes.values()):
                        return f"calls into {owner}, whose reads are not known"
                    continue
                for other, entry in read.items():
                    changed = changes.get(other)
                    if not changed:
                        continue
                    if entry.whole:
                        return f"calls {_dotted(module, attr)}, which uses all of {other}"
                    hit = entry.names & changed
                    if hit:
                        return (
                            f"calls {_dotted(module, attr)}, which reads {other}.{sorted(hit)[0]}"
                        )
        return None


def _dotted(module: str, attr: str | None) -> str:
    return module if attr is None else f"{module}.{attr}"


def _first_party(tracker: Any) -> Callable[[str], bool]:
    tracked = tracker.tracked
    return tracked.__contains__


def plan(
    engine: Any,
    tracker: Any,
    reads: ReadsCache,
    changed: list[str],
    deleted: list[str],
    data_readers: Iterable[str] = (),
) -> Plan:
    """The modules to re-execute for a change of `changed` (their sources), `deleted` and the
    data files `data_readers` read (same source, new data)."""
    reads.refresh()
    readers = [name for name in data_readers if name not in changed]
    members = engine.closure_plan(changed + readers + deleted)
    predicted: dict[str, frozenset[str]] = {name: ALL for name in deleted}
    due: set[str] = set(changed) | set(readers)
    reasons: dict[str, str] = {}
    deferred: dict[str, dict[str, frozenset[str]]] = {}
    decider = _Decider(reads, _first_party(tracker))
    active = integrations.active()
    components: dict[int, list[tuple[str, list[str]]]] = {}
    component_order: list[int] = []
    for name, deps, component in members:
        if component not in components:
            components[component] = []
            component_order.append(component)
        components[component].append((name, deps))
    for component in component_order:
        group = components[component]
        names = [name for name, _ in group]
        if not any(name in due for name in names):
            for name, deps in group:
                if name in deleted:
                    continue
                why, hits = decider.decide(name, deps, predicted)
                if why is None and hits:
                    if len(group) == 1 and _absorbable(active, name, hits):
                        deferred[name] = hits
                        continue
                    dep, hit = next(iter(hits.items()))
                    why = f"reads {dep}.{sorted(hit)[0]}"
                if why is not None:
                    due.add(name)
                    reasons[name] = why
            if not any(name in due for name in names):
                continue
        first = next(name for name in names if name in due)
        for name in names:
            if name not in due:
                due.add(name)
                reasons[name] = f"shares an import cycle with {first}"
        for name in names:
            if name not in deleted:
                predicted[name] = _predict(engine, name, name in changed, predicted)
    order = [name for name, _, _ in members if name in due and name not in deleted]
    return Plan(order, predicted, reasons, deferred, list(members))


def _absorbable(active: list[Any], importer: str, hits: dict[str, frozenset[str]]) -> bool:
    return any(
        integrations.call(integration, "can_absorb", importer, hits) for integration in active
    )


def _predict(
    engine: Any, name: str, source_changed: bool, changes: Mapping[str, frozenset[str]]
) -> frozenset[str]:
    module = sys.modules.get(name)
    if module is None:
        return ALL
    spec = getattr(module, "__spec__", None)
    path = getattr(spec, "origin", None)
    if not path:
        return ALL
    recorded = engine.recorded_source(path)
    try:
        with open(path, "rb") as file:
            current = file.read()
    except OSError:
        return ALL
    if source_changed:
        if recorded is None:
            return ALL
        return predict(
            name, hasattr(module, "__path__"), current, recorded, module.__dict__, changes
        )
    return predict(
        name, hasattr(module, "__path__"), recorded or current, None, module.__dict__, changes
    )


# -- after the re-execution --------------------------------------------------------------------


@dataclass
class Verdict:
    missing: list[str]  # importers that must re-run after all
    undo: list[Callable[[], None]]  # what absorbing integrations changed, to undo on rollback
    absorbed: list[str]


def verify(
    tracker: Any,
    reads: ReadsCache,
    the_plan: Plan,
    executed: set[str],
    actual: Mapping[str, frozenset[str]],
    old_values: Callable[[str, str], Any],
) -> Verdict:
    """Checks the plan against what actually changed: every importer left out must not have
    read a changed name; the deferred ones are handed to the integrations that absorb them."""
    decider = _Decider(reads, _first_party(tracker))
    missing: list[str] = []
    # Every check is monotone in the changes: where each module changed only names the plan
    # expected it might, the modules the plan left out stay out.
    foreseen = all(
        actual.get(name, frozenset()) <= the_plan.predicted.get(name, frozenset())
        for name in executed
    )
    for name, deps, _ in the_plan.members if not foreseen else ():
        if name in executed or name in the_plan.deferred:
            continue
        why, hits = decider.decide(name, deps, actual)
        if why is not None or hits:
            missing.append(name)
    undo: list[Callable[[], None]] = []
    absorbed: list[str] = []
    active = integrations.active()
    for importer, _ in the_plan.deferred.items():
        deps = next(d for n, d, _ in the_plan.members if n == importer)
        why, hits = decider.decide(importer, deps, actual)
        if why is not None:
            missing.append(importer)
            continue
        if not hits:
            continue  # nothing it read changed after all
        changes = {
            module: {n: (old_values(module, n), _live(module, n)) for n in names}
            for module, names in hits.items()
        }
        for integration in active:
            undo_one = integrations.call(integration, "absorb", importer, changes)
            if undo_one is not None:
                undo.append(undo_one)
                absorbed.append(importer)
                break
        else:
            missing.append(importer)
    return Verdict(missing, undo, absorbed)


def describe_reasons(the_plan: Plan) -> list[str]:
    """One line per re-run importer, for `--log-level debug`."""
    return [f"{name} re-runs: it {why}" for name, why in the_plan.reasons.items()]


__all__ = ["ALL", "Plan", "ReadsCache", "Verdict", "describe_reasons", "plan", "verify"]
