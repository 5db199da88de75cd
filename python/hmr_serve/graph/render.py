"""How `hmr-serve graph` prints: the map as JSON shaped like `tach map`, a closure and an import
chain as JSON records, and any of them as Graphviz DOT. `shown[i]` is file i as printed."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence

from hmr_serve.graph.model import Edge, ImportMap, Step
from hmr_serve.graph.reruns import Verdict


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


def closure_json(
    graph: ImportMap,
    shown: Sequence[str],
    steps: Sequence[Step],
    verdicts: Mapping[int, Verdict] | None = None,
) -> str:
    """One record per module, in the order a reload runs them. With `verdicts` (for a save's
    dependents): whether each re-runs and, for one that does, why, and the chain of re-run
    modules from the saved one to it."""
    records = []
    for step in steps:
        record: dict[str, object] = {
            "file": shown[step.index],
            "module": graph.modules[step.index],
            "reason": step.reason,
        }
        verdict = verdicts[step.index] if verdicts is not None else None
        if verdict is not None:
            record["reruns"] = verdict.reruns
            if verdict.reruns:
                record["reason"] = verdict.reason
                record["chain"] = [graph.label(index) for index in verdict.chain]
        records.append(record)
    return json.dumps(records, indent=2)


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
    shaded: Iterable[int] = (),
) -> str:
    """A digraph whose arrows point from importer to imported, whatever `--direction` says.
    Imports inside functions are dotted; imports seen only at run time dashed and blue.
    `highlight` nodes are filled, `shaded` ones (the modules a save re-runs) filled lighter."""
    highlight, shaded = set(highlight), set(shaded)
    lines = [
        "digraph imports {",
        "  rankdir=LR;",
        '  node [shape=box, fontname="monospace", fontsize=10];',
    ]
    for node in sorted(nodes, key=shown.__getitem__):
        if node in highlight:
            style = ' [style=filled, fillcolor="#ffd966"]'
        elif node in shaded:
            style = ' [style=filled, fillcolor="#fff2cc"]'
        else:
            style = ""
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
