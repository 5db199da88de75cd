"""How `hmr-serve graph` prints: the map as JSON shaped like `tach map`, a closure and an import
chain as JSON records, and any of them as Graphviz DOT. `shown[i]` is file i as printed."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

from hmr_serve.graph.model import Edge, ImportMap, Step


def map_json(graph: ImportMap, shown: Sequence[str], members: set[int], dependents: bool) -> str:
    """`{"pkg/a.py": ["pkg/b.py", ...]}`: every mapped file a key (sorted), its dependencies
    (or dependents) sorted. A file that did not parse is no key of the dependencies map: what
    it imports is unknown."""
    neighbours = graph.importers if dependents else graph.deps
    result = {}
    for index in sorted(members, key=shown.__getitem__):
        if dependents or index not in graph.unparsed:
            result[shown[index]] = sorted(shown[n] for n in neighbours[index] if n in members)
    return json.dumps(result, indent=2)


def closure_json(graph: ImportMap, shown: Sequence[str], steps: Sequence[Step]) -> str:
    """One record per module, in the order a reload runs them."""
    return json.dumps(
        [
            {"file": shown[step.index], "module": graph.modules[step.index], "reason": step.reason}
            for step in steps
        ],
        indent=2,
    )


def chain_json(shown: Sequence[str], hops: Sequence[Edge]) -> str:
    """One record per import of the chain, from its start to its end."""
    return json.dumps(
        [
            {
                "file": shown[hop.importer],
                "imports": shown[hop.imported],
                "names": list(hop.names),
                "lazy": hop.lazy,
                "runtime_only": hop.runtime_only,
            }
            for hop in hops
        ],
        indent=2,
    )


def dot(
    shown: Sequence[str],
    nodes: Iterable[int],
    edges: Iterable[Edge],
    highlight: Iterable[int] = (),
) -> str:
    """A digraph whose arrows point from importer to imported, whatever `--direction` says.
    Imports inside functions are dotted; imports seen only at run time dashed and blue."""
    highlight = set(highlight)
    lines = [
        "digraph imports {",
        "  rankdir=LR;",
        '  node [shape=box, fontname="monospace", fontsize=10];',
    ]
    for node in sorted(nodes, key=shown.__getitem__):
        style = ' [style=filled, fillcolor="#ffd966"]' if node in highlight else ""
        lines.append(f"  {_quote(shown[node])}{style};")
    for edge in sorted(edges, key=lambda e: (shown[e.importer], shown[e.imported])):
        if edge.runtime_only:
            style = ' [style=dashed, color=blue, label="run time"]'
        elif edge.lazy:
            style = " [style=dotted]"
        else:
            style = ""
        lines.append(f"  {_quote(shown[edge.importer])} -> {_quote(shown[edge.imported])}{style};")
    lines.append("}")
    return "\n".join(lines)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
