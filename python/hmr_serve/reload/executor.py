"""Re-executes modules inside their existing module objects, all or nothing.

Running the new code in the old module object keeps every `import x` reference elsewhere valid;
clearing the namespace first makes a name deleted from the source disappear, as in a fresh
process. The module's top-level classes and functions keep their identity (reload/identity.py),
and its `hmr_serve.on_dispose` callbacks run first (hmr_serve/state.py). Every namespace is
snapshotted first and every in-place update recorded, so a failing edit rolls back completely
and the last good code keeps serving.

The order is a fresh process's: modules run in the order they first started importing, and an
import statement that reaches a module still due to re-run runs it right there, first (its
parents, then it, then the submodules a `from pkg import sub` names). A module whose re-execution
is under way is, to an import that reaches it, what a partially initialised module in a cycle is
in a fresh process: returned as it is.
"""

from __future__ import annotations

import ast
import importlib
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from hmr_serve import state
from hmr_serve.reload import identity, values
from hmr_serve.reload.time_limit import time_limit
from hmr_serve.reload.tracker import ImportTracker

# What the import system put in the namespace; everything else comes from running the code.
_IMPORT_ATTRS = (
    "__name__",
    "__spec__",
    "__loader__",
    "__file__",
    "__cached__",
    "__path__",
    "__package__",
    "__builtins__",
)


class NeedsMore(Exception):
    """The modules ran, but importers left out read names that changed: run again with them."""

    def __init__(self, modules: list[str]) -> None:
        super().__init__(", ".join(modules))
        self.modules = modules


class ReloadFailed(Exception):
    def __init__(self, module: str, path: str | None, error: BaseException) -> None:
        super().__init__(f"{module}: {type(error).__name__}: {error}")
        self.module = module
        self.path = path
        self.error = error


@dataclass
class _Snapshot:
    module: ModuleType
    namespace: dict[str, Any]
    edges: list[str]


@dataclass
class Outcome:
    """What a committed reload did."""

    count: int  # modules re-executed
    # Threads each module started while it ran that were still running when it finished.
    threads: dict[str, list[threading.Thread]]
    # The top-level names whose values changed, per module that ran (reload/values.py).
    changes: dict[str, frozenset[str]] = field(default_factory=dict)
    # Their values before (a name that did not exist is absent), for front-ends that compare
    # what the new objects hold (the test mode).
    before: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class Transaction:
    """One reload: modules removed, modules re-executed, and how to undo both."""

    engine: Any
    tracker: ImportTracker
    snapshots: list[_Snapshot] = field(default_factory=list)
    patchers: list[identity.Patcher] = field(default_factory=list)
    removed: dict[str, ModuleType] = field(default_factory=dict)
    modules_before: set[str] = field(default_factory=set)
    threads: dict[str, list[threading.Thread]] = field(default_factory=dict)
    pending: set[str] = field(default_factory=set)  # due to re-run, not started yet
    running: list[str] = field(default_factory=list)  # re-running now, innermost last
    executed: list[str] = field(default_factory=list)  # in the order they ran
    # The first failure, kept even if the code that imported the failing module swallowed it.
    failure: ReloadFailed | None = None
    on_executed: Callable[[str, ModuleType], None] | None = None
    changes: dict[str, frozenset[str]] = field(default_factory=dict)
    # Per module due to run, the modules due to run that it depends on through modules that
    # are not (they must run first: nothing else would pull them in before it).
    prerequisites: dict[str, list[str]] = field(default_factory=dict)
    # Updates made outside the modules' namespaces (integrations absorbing a change), undone
    # on rollback, last first.
    undo: list[Callable[[], None]] = field(default_factory=list)
    _thread: int = 0

    def __post_init__(self) -> None:
        self.modules_before = set(sys.modules)
        self._thread = threading.get_ident()

    def before_import(self, absolute: str, fromlist: Sequence[str]) -> None:
        """An import statement is about to run: what it reaches that is due to re-run runs now,
        in the order the import system would load it."""
        if threading.get_ident() != self._thread:
            return  # another thread importing meanwhile re-runs nothing
        dot = -1
        while True:
            dot = absolute.find(".", dot + 1)
            self._reach(absolute if dot < 0 else absolute[:dot])
            if dot < 0:
                break
        if not fromlist:
            return
        package = sys.modules.get(absolute)
        if package is None or not hasattr(package, "__path__"):
            return
        items = [item for item in fromlist if isinstance(item, str) and item != "*"]
        if "*" in fromlist:
            items += [i for i in getattr(package, "__all__", ()) if isinstance(i, str)]
        for item in items:
            child = f"{absolute}.{item}"
            current = package.__dict__.get(item, _MISSING)
            # The import system imports `pkg.item` only when `pkg` has no attribute `item`.
            if current is _MISSING or current is sys.modules.get(child):
                self._reach(child)

    def _reach(self, name: str) -> None:
        if name in self.pending:
            self.reexecute(name)
        # The import system sets a submodule on its package once it has loaded; a package whose
        # namespace was cleared to re-run gets it back the same way.
        parent_name, _, short = name.rpartition(".")
        if parent_name:
            module = sys.modules.get(name)
            parent = sys.modules.get(parent_name)
            if module is not None and parent is not None and short not in parent.__dict__:
                setattr(parent, short, module)

    def remove(self, name: str) -> None:
        """A deleted source file: its module leaves sys.modules and its parent package."""
        module = sys.modules.pop(name, None)
        if module is None:
            return
        self.removed[name] = module
        parent_name, _, short = name.rpartition(".")
        parent = sys.modules.get(parent_name) if parent_name else None
        if parent is not None and getattr(parent, short, None) is module:
            delattr(parent, short)

    def reexecute(self, name: str) -> None:
        # The import system runs a package before any of its submodules: a prerequisite
        # submodule reached first (from an importer that starts earlier) would otherwise run
        # while its package is still pending, and the package, pulled in by the submodule's
        # own `from . import ...`, would import it back half run.
        dot = name.find(".")
        while dot > 0:
            if name[:dot] in self.pending:
                self.reexecute(name[:dot])
            dot = name.find(".", dot + 1)
        if name not in self.pending:
            return  # it ran while its package did
        self.pending.discard(name)
        for first in self.prerequisites.get(name, ()):
            if first in self.pending:
                self.reexecute(first)
        module = sys.modules.get(name)
        if module is None:
            return  # never imported, or removed in this reload
        self.running.append(name)
        try:
            self._reexecute(name, module)
        except ReloadFailed as exc:
            if self.failure is None:
                self.failure = exc
            raise
        finally:
            self.running.pop()
        if self.failure is not None:
            raise self.failure  # a module it imported failed, and its code caught the error
        self.executed.append(name)
        if self.on_executed is not None:
            self.on_executed(name, module)

    def _reexecute(self, name: str, module: ModuleType) -> None:
        spec = module.__spec__
        path = spec.origin if spec is not None else None
        namespace = module.__dict__
        try:
            source = _read_source(path, namespace)  # type: ignore[arg-type]
            # From the source bytes, never a cached .pyc: CPython trusts a .pyc whose mtime
            # (whole seconds) and size match, which two quick same-size saves defeat.
            code = compile_module(name, source, path, namespace)  # type: ignore[arg-type]
        except BaseException as exc:
            raise ReloadFailed(name, path, exc) from exc
        snapshot = dict(namespace)
        self.snapshots.append(_Snapshot(module, snapshot, self.engine.take_edges(name)))
        content = values.content_keys(snapshot, name)
        # With the old namespace still in place: callbacks look up what they close by name.
        state.dispose(name)
        patcher = identity.Patcher(name, snapshot)
        self.patchers.append(patcher)
        kept = {key: namespace[key] for key in _IMPORT_ATTRS if key in namespace}
        namespace.clear()
        namespace.update(kept)
        namespace["__doc__"] = None
        namespace[identity.HOOK] = patcher
        threads_before = set(threading.enumerate())
        # Seen as "initializing" by the import system while it runs, as on a first import.
        spec._initializing = True
        try:
            exec(code, namespace)
        except ReloadFailed:
            raise  # a module this one imported failed: that one is named
        except BaseException as exc:
            raise ReloadFailed(name, path, exc) from exc
        finally:
            spec._initializing = False
            if namespace.get(identity.HOOK) is patcher:
                del namespace[identity.HOOK]
        started = [t for t in threading.enumerate() if t not in threads_before]
        if started:
            self.threads[name] = started
        self._restore_submodules(name, namespace)
        self.engine.record_source(path, source)
        self.changes[name] = frozenset(values.changed_names(name, snapshot, content, namespace))

    def old_value(self, module: str, name: str) -> Any:
        """What `module.name` was before this reload ran the module (None if it did not)."""
        for snapshot in self.snapshots:
            if snapshot.module.__name__ == module:
                return snapshot.namespace.get(name)
        return None

    @staticmethod
    def _restore_submodules(name: str, namespace: dict[str, Any]) -> None:
        # A fresh process has `pkg.sub` as an attribute once `pkg.sub` was imported.
        if "__path__" not in namespace:
            return
        prefix = name + "."
        for child_name, child in list(sys.modules.items()):
            if child_name.startswith(prefix) and "." not in child_name[len(prefix) :]:
                namespace.setdefault(child_name[len(prefix) :], child)

    def rollback(self) -> None:
        # Dispose callbacks that ran are not run back; values kept by `keep` stay kept.
        for undo in reversed(self.undo):
            undo()
        self.undo.clear()
        for patcher in reversed(self.patchers):
            patcher.undo()
        self.patchers.clear()
        for snapshot in reversed(self.snapshots):
            namespace = snapshot.module.__dict__
            namespace.clear()
            namespace.update(snapshot.namespace)
            self.engine.set_edges(snapshot.module.__name__, snapshot.edges)
        for name in set(sys.modules) - self.modules_before:
            if name in self.tracker.tracked:
                del sys.modules[name]
                self.engine.remove_module(name)
                self.tracker.forget(name)
        for name, module in self.removed.items():
            sys.modules[name] = module
            parent_name, _, short = name.rpartition(".")
            if parent_name in sys.modules:
                setattr(sys.modules[parent_name], short, module)
        self.snapshots.clear()

    def commit(self) -> None:
        for patcher in self.patchers:
            identity.commit(patcher)
        for name in self.removed:
            self.engine.remove_module(name)
            self.tracker.forget(name)
            identity.forget(name)
            state.forget(name)
            _compiled.pop(name, None)
        self.patchers.clear()
        self.snapshots.clear()


# How long a file that reads empty, although its module had code, may take to get its content.
_MID_SAVE_WAIT = 0.5


def _read_source(path: str, namespace: dict[str, Any]) -> bytes:
    """The file's bytes. A save that truncates and then writes (editors, `git checkout`, most
    tools) shows an empty file in between, which a busy machine can stretch to milliseconds:
    an empty read of a module that had code waits briefly for the content, instead of serving
    an empty module until the next reload."""
    with open(path, "rb") as file:
        source = file.read()
    if source or not any(key not in _IMPORT_ATTRS for key in namespace):
        return source
    deadline = time.monotonic() + _MID_SAVE_WAIT
    while not source and time.monotonic() < deadline:
        time.sleep(0.005)
        with open(path, "rb") as file:
            source = file.read()
    return source


# Per module: the source, path and instrumented code of its last compilation. An importer re-run
# for what it imports runs the same text again; parsing and compiling it anew (an app module of
# 2,000 imports) would cost more than running it.
_compiled: dict[str, tuple[bytes, str, Any]] = {}


def _compile(name: str, source: bytes, path: str, namespace: dict[str, Any]) -> Any:
    if not identity.known(name) and not any(_defined_here(v, name) for v in namespace.values()):
        # Nothing whose identity could be kept: skip the parse to an AST (about twice the cost).
        return compile(source, path, "exec", dont_inherit=True)
    last = _compiled.get(name)
    if last is not None and last[0] == source and last[1] == path:
        return last[2]
    tree = ast.parse(source, path)
    identity.instrument(tree)
    code = compile(tree, path, "exec", dont_inherit=True)
    _compiled[name] = (source, path, code)
    return code


#: How a re-executed module's source becomes the code it runs: (name, source bytes, path,
#: namespace) -> code object. A front-end that compiles some modules its own way replaces it (the
#: test mode rewrites the asserts of test modules as pytest does, and keeps the code objects).
compile_module: Callable[[str, bytes, str, dict[str, Any]], Any] = _compile


def _defined_here(value: Any, module: str) -> bool:
    if not callable(value):
        return False
    try:
        return getattr(value, "__module__", None) == module
    except Exception:  # a proxy (flask.request) may raise outside its context
        return False


_MISSING = object()


def run(
    engine: Any,
    tracker: ImportTracker,
    deleted: list[str],
    order: list[str],
    finish: Callable[[], None],
    on_executed: Callable[[str, ModuleType], None] | None = None,
    timeout: float = 0,
    check: Callable[[Transaction], None] | None = None,
    prerequisites: dict[str, list[str]] | None = None,
) -> Outcome:
    """Removes `deleted`, re-executes `order` (in the order its modules first started importing,
    each pulling in what it imports), then calls `finish` (which re-resolves the app); any
    failure rolls everything back and raises ReloadFailed. `on_executed(name, module)` hears of
    every module that ran. Past `timeout` seconds (0: none) the modules are interrupted and
    everything rolls back. `check(transaction)` runs once the modules ran, before `finish`: it
    may raise NeedsMore (everything rolls back and it propagates) or add undo steps.
    `prerequisites[name]`: modules of `order` that must run before `name` does."""
    # Directory listings cached by the path finders may predate a file just created in the
    # same clock tick as the last listing (a module turned into a package, a new dependency).
    importlib.invalidate_caches()
    transaction = Transaction(engine, tracker, on_executed=on_executed)
    transaction.pending = set(order)
    transaction.prerequisites = prerequisites or {}
    current = "<app>"
    tracker.before_import = transaction.before_import
    try:
        for name in deleted:
            transaction.remove(name)
        # Rollback runs outside the limit: an alarm must never interrupt it.
        with time_limit(timeout):
            for name in sorted(order, key=tracker.start_position):
                current = name
                if name in transaction.pending:
                    transaction.reexecute(name)
            if transaction.failure is None and check is not None:
                current = "<propagation>"
                check(transaction)
            current = "<app>"
            finish()
        if transaction.failure is not None:
            raise transaction.failure  # raised inside the factory and swallowed there
    except (ReloadFailed, NeedsMore):
        tracker.before_import = None
        transaction.rollback()
        raise
    except BaseException as exc:
        tracker.before_import = None
        transaction.rollback()
        raise ReloadFailed(current, None, exc) from exc
    finally:
        tracker.before_import = None
    outcome = Outcome(len(transaction.snapshots), transaction.threads, transaction.changes)
    for snapshot in transaction.snapshots:
        old = snapshot.namespace
        changed = transaction.changes.get(snapshot.module.__name__, ())
        outcome.before[snapshot.module.__name__] = {n: old[n] for n in changed if n in old}
    transaction.commit()
    return outcome
