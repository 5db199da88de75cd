"""The import map `hmr-serve graph` prints: files, who imports whom (from the Rust static pass,
plus what a run-time import saw), and the walks over it: what a file reaches, what a save
may re-run (in the order a reload runs it), one shortest import chain."""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from hmr_serve import _core


@dataclass(frozen=True)
class Edge:
    importer: int
    imported: int
    #: Every import statement behind it runs only when a function is called.
    lazy: bool
    #: What the importer takes from the imported module (`from m import a, b`); empty for a
    #: whole-module import.
    names: tuple[str, ...]
    #: Seen while the target imported (`--runtime`), not found by the static pass.
    runtime_only: bool = False


@dataclass(frozen=True)
class Step:
    """One module of a closure and why it is there."""

    index: int
    #: The closure's edge that brought it in (None for the saved file itself).
    edge: Edge | None
    reason: str


class ImportMap:
    def __init__(
        self, files: Sequence[str], modules: Sequence[str], unparsed: Iterable[int] = ()
    ) -> None:
        self.files = list(files)
        self.modules = list(modules)
        #: Files whose own imports are unknown (they did not parse).
        self.unparsed = set(unparsed)
        self.deps: list[dict[int, Edge]] = [{} for _ in self.files]
        self.importers: list[dict[int, Edge]] = [{} for _ in self.files]
        #: Where each module began importing when the target was imported (`--runtime`): the
        #: order a reload follows. Files it never imported sort after, by path.
        self.import_order: dict[int, int] = {}
        self._by_path = {path: index for index, path in enumerate(self.files)}
        self._by_real_path: dict[str, int] | None = None
        self._by_module: dict[str, int] | None = None

    @classmethod
    def scan(
        cls,
        roots: Sequence[str],
        source_roots: Sequence[str],
        excludes: Sequence[str] = (),
        lazy: bool = False,
    ) -> tuple[ImportMap, list[tuple[int, str]]]:
        """Every `.py` file under `roots` and its static imports (those inside functions only
        with `lazy`). Also returns (file, message) for each file that did not parse."""
        scanned = _core.project_map(list(roots), list(source_roots), list(excludes))
        errors = scanned.errors
        found = cls(scanned.files, scanned.modules, (index for index, _ in errors))
        for importer, imported, is_lazy, names in scanned.edges:
            if lazy or not is_lazy:
                found.add(Edge(importer, imported, is_lazy, tuple(names)))
        return found, errors

    def add(self, edge: Edge) -> None:
        self.deps[edge.importer][edge.imported] = edge
        self.importers[edge.imported][edge.importer] = edge

    def __len__(self) -> int:
        return len(self.files)

    # -- lookups -------------------------------------------------------------------------------

    def index_of(self, path: str) -> int | None:
        """The file at `path` (any spelling of it, symlinks included), if mapped."""
        path = os.path.abspath(path)
        found = self._by_path.get(path)
        if found is None:
            found = self.index_of_real_path(os.path.realpath(path))
        return found

    def index_of_real_path(self, real_path: str) -> int | None:
        if self._by_real_path is None:
            self._by_real_path = {os.path.realpath(f): i for i, f in enumerate(self.files)}
        return self._by_real_path.get(real_path)

    def index_of_module(self, name: str) -> int | None:
        """The file `import name` reaches, as the static pass named them (the package wins
        over a same-named module, as in Python)."""
        if self._by_module is None:
            self._by_module = {}
            for index, module in enumerate(self.modules):
                known = self._by_module.get(module)
                if module and (known is None or self.files[index].endswith("__init__.py")):
                    self._by_module[module] = index
        return self._by_module.get(name)

    def label(self, index: int) -> str:
        """The module name, or the file's path when it has no importable name."""
        return self.modules[index] or self.files[index]

    # -- walks ---------------------------------------------------------------------------------

    def reach(self, start: int) -> set[int]:
        """`start` and everything it imports, transitively."""
        seen = {start}
        stack = [start]
        while stack:
            for imported in self.deps[stack.pop()]:
                if imported not in seen:
                    seen.add(imported)
                    stack.append(imported)
        return seen

    def closure(
        self,
        start: int,
        dependents: bool = True,
        within: set[int] | None = None,
    ) -> list[Step]:
        """What a save to `start` may re-run: it and everything that imports it, transitively
        (with `dependents=False`: everything it imports), in the order a reload runs them,
        each with the import that brought it in (graph/reruns.py says which of them do re-run,
        and why)."""
        neighbours = self.importers if dependents else self.deps
        brought: dict[int, Edge | None] = {start: None}
        queue = deque([start])
        while queue:
            current = queue.popleft()
            for other, edge in sorted(neighbours[current].items(), key=self._sort_key_item):
                if other not in brought and (within is None or other in within):
                    brought[other] = edge
                    queue.append(other)
        steps = []
        for index in self.execution_order(brought):
            edge = brought[index]
            if edge is None:
                reason = "saved" if dependents else "the file itself"
            else:
                reason = static_reason(self, index, edge)
            steps.append(Step(index, edge, reason))
        return steps

    def chain(self, start: int, end: int, within: set[int] | None = None) -> list[Edge] | None:
        """One shortest chain of imports from `start` to `end` (breadth first; ties broken by
        path), or None when `start` does not import `end`, even indirectly."""
        came_by: dict[int, Edge | None] = {start: None}
        queue = deque([start])
        while queue and end not in came_by:
            current = queue.popleft()
            for imported, edge in sorted(self.deps[current].items(), key=self._sort_key_item):
                if imported not in came_by and (within is None or imported in within):
                    came_by[imported] = edge
                    queue.append(imported)
        if end not in came_by:
            return None
        hops: list[Edge] = []
        current = end
        while (edge := came_by[current]) is not None:
            hops.append(edge)
            current = edge.importer
        return hops[::-1]

    def execution_order(self, members: Iterable[int]) -> list[int]:
        """Dependencies before their importers; inside an import cycle, the order the modules
        began importing (`--runtime`), else by path."""
        return [index for component in self.components(members) for index in component]

    def components(self, members: Iterable[int]) -> list[list[int]]:
        """The import cycles (strongly connected components; a module in none is one alone)
        of `members`, each after everything it depends on, as `graph.rs` orders a reload:
        Tarjan's algorithm emits them in that order."""
        members = set(members)
        roots = sorted(members, key=self._sort_key)
        deps = {
            m: sorted((d for d in self.deps[m] if d in members), key=self._sort_key)
            for m in members
        }
        order: list[list[int]] = []
        number: dict[int, int] = {}
        low: dict[int, int] = {}
        stack: list[int] = []
        on_stack: set[int] = set()
        for root in roots:
            if root in number:
                continue
            # Iterative, so a deep import chain cannot hit the recursion limit.
            work = [(root, 0)]
            while work:
                node, next_dep = work.pop()
                if next_dep == 0:
                    number[node] = low[node] = len(number)
                    stack.append(node)
                    on_stack.add(node)
                for position in range(next_dep, len(deps[node])):
                    dep = deps[node][position]
                    if dep not in number:
                        work.append((node, position + 1))
                        work.append((dep, 0))
                        break
                    if dep in on_stack:
                        low[node] = min(low[node], number[dep])
                else:
                    if low[node] == number[node]:
                        component = []
                        while True:
                            member = stack.pop()
                            on_stack.discard(member)
                            component.append(member)
                            if member == node:
                                break
                        order.append(sorted(component, key=self._sort_key))
                    if work:
                        parent = work[-1][0]
                        low[parent] = min(low[parent], low[node])
        return order

    def _sort_key(self, index: int) -> tuple[int, str]:
        return (self.import_order.get(index, 1 << 62), self.files[index])

    def _sort_key_item(self, item: tuple[int, Edge]) -> tuple[int, str]:
        return self._sort_key(item[0])


def static_reason(graph: ImportMap, index: int, edge: Edge) -> str:
    """Why a module is in a closure, as far as imports tell: the import that brought it in."""
    if index == edge.importer:
        reason = f"imports {graph.label(edge.imported)}"
    else:
        reason = f"imported by {graph.label(edge.importer)}"
    if edge.names:
        reason += f" ({', '.join(edge.names)})"
    if edge.lazy:
        reason += ", inside a function"
    if edge.runtime_only:
        reason += ", seen at run time"
    return reason
