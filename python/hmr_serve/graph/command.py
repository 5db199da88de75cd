"""`hmr-serve graph [PATH | MODULE[:ATTR]]`: the import map the reload engine works from,
printed as JSON shaped like `tach map` (or Graphviz), with what a save to one file re-runs
(`--closure`) and why one file imports another (`--why`)."""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from hmr_serve.graph import render, reruns
from hmr_serve.graph.model import Edge, ImportMap
from hmr_serve.graph.runtime import RuntimeImportError, import_target

PROG = "hmr-serve graph"
_DOTTED_NAME = re.compile(r"[^\W\d]\w*(\.[^\W\d]\w*)*")
# Exit codes: 1 when the question has no answer (no chain) or the app failed to import, 2 for
# bad input, as argparse does.
_NO_ANSWER, _BAD_INPUT = 1, 2


class GraphError(Exception):
    def __init__(self, message: str, code: int = _BAD_INPUT) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        usage=f"{PROG} [PATH | MODULE[:ATTR]] [options]",
        description=(
            "Print the import map of a source tree, as the reload engine sees it, in the shape "
            'of `tach map`: {"pkg/a.py": ["pkg/b.py", ...]}, paths relative to the current '
            "directory, keys and lists sorted. Every .py file is a key. Imports under `if "
            "TYPE_CHECKING:` never count; imports inside functions count only with --lazy. "
            "Files that do not parse are named on stderr and their own imports left out."
        ),
    )
    parser.add_argument(
        "target",
        nargs="?",
        metavar="PATH | MODULE[:ATTR]",
        help=(
            "a directory: map every .py file under it (default: the current directory); a .py "
            "file or a module (pkg.main, or pkg.main:app as served): map what it imports, "
            "transitively"
        ),
    )
    parser.add_argument(
        "--direction",
        choices=["dependencies", "dependents"],
        help=(
            "dependencies: each file lists what it imports; dependents: each file lists what "
            "imports it (default: dependencies; for --closure: dependents)"
        ),
    )
    question = parser.add_mutually_exclusive_group()
    question.add_argument(
        "--closure",
        metavar="FILE",
        help=(
            "what a save to FILE re-runs: FILE and every file importing it, transitively, in "
            "the order a reload runs them, each saying whether a reload re-runs it and why: "
            "the names it reads at import, a call, a whole-module use, an import cycle (FILE "
            "may be a module name)"
        ),
    )
    question.add_argument(
        "--why",
        nargs=2,
        metavar=("A", "B"),
        help="one shortest chain of imports by which A imports B",
    )
    parser.add_argument(
        "--names",
        metavar="A,B",
        help=(
            "with --closure: the save changes only these top-level names of FILE (and what FILE "
            "derives from them): list only the modules that re-run, the readers of those "
            "names and, transitively, the readers of what they re-bind"
        ),
    )
    parser.add_argument(
        "--dot", action="store_true", help="print Graphviz DOT (arrows: importer -> imported)"
    )
    parser.add_argument(
        "--runtime",
        nargs="?",
        const=True,
        metavar="TARGET",
        help=(
            "import TARGET (MODULE:ATTR or a module; default: the MODULE[:ATTR] mapped) with "
            "the server's import tracker first, so dynamic imports count too; imports seen only "
            "then are listed on stderr and dashed in --dot. This runs the app's import-time code"
        ),
    )
    parser.add_argument(
        "--lazy",
        action="store_true",
        help=(
            "count imports inside functions too, as tach does (a reload does not: they run "
            "later, against the live modules)"
        ),
    )
    parser.add_argument(
        "--source-root",
        "--app-dir",
        dest="source_roots",
        action="append",
        default=[],
        metavar="DIR",
        help=(
            "a directory module names are relative to, as on sys.path (repeatable; default: "
            "the mapped directory, the parent of its outermost package when it is inside one, "
            "and its src/ when there is one; for a module: the current directory)"
        ),
    )
    parser.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="GLOB",
        help=(
            "leave out matching files, as --reload-exclude: a glob without / matches file names, "
            "one with / the path under the mapped directory; ** spans directories (repeatable). "
            "Virtualenvs, site-packages, node_modules, __pycache__ and VCS directories are "
            "always left out"
        ),
    )
    parser.add_argument(
        "-o", "--output", default="-", metavar="FILE", help="write to FILE (default: stdout)"
    )
    return parser


@dataclass(frozen=True)
class Scope:
    """What to walk, how to name it, and the file or module the map is limited to."""

    roots: list[str]
    source_roots: list[str]
    start_file: str | None = None
    start_module: str | None = None
    runtime_target: str | None = None


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except GraphError as exc:
        sys.stderr.write(f"{PROG}: error: {exc.message}\n")
        return exc.code
    except RuntimeImportError as exc:
        if exc.details:
            sys.stderr.write(exc.details)
        sys.stderr.write(f"{PROG}: error: --runtime: {exc.message}\n")
        return _NO_ANSWER


def _run(args: argparse.Namespace) -> int:
    if args.why and args.direction:
        raise GraphError("--direction does not apply to --why (it follows A's imports to B)")
    names = _names(args)
    scope = _scope(args)
    try:
        graph, errors = ImportMap.scan(scope.roots, scope.source_roots, args.exclude, args.lazy)
    except ValueError as exc:  # a bad --exclude glob
        raise GraphError(str(exc)) from None
    shown = [_display(path) for path in graph.files]
    for index, message in errors:
        sys.stderr.write(f"{PROG}: {shown[index]}: {message} (its own imports are left out)\n")
    if scope.runtime_target:
        _add_runtime_imports(graph, scope)
    members = set(range(len(graph)))
    if scope.start_file or scope.start_module:
        members = graph.reach(_start(graph, scope))
    if scope.runtime_target:
        _report_runtime_only(graph, shown, members)

    if args.closure:
        saved = _find(graph, args.closure, members, scope)
        steps = graph.closure(saved, args.direction != "dependencies", members)
        found = None
        if args.direction != "dependencies":
            try:
                found = reruns.verdicts(graph, (step.index for step in steps), saved, names)
            except reruns.NamesError as exc:
                raise GraphError(str(exc)) from None
            if names is not None:
                steps = [step for step in steps if found[step.index].reruns]
        if args.dot:
            nodes = {step.index for step in steps}
            shaded = [i for i in nodes if found[i].reruns] if found else []
            output = render.dot(
                shown, nodes, _edges_among(graph, nodes), highlight=[saved], shaded=shaded
            )
        else:
            output = render.closure_json(graph, shown, steps, found)
    elif args.why:
        start, end = (_find(graph, spec, members, scope) for spec in args.why)
        hops = graph.chain(start, end, members)
        if hops is None:
            raise GraphError(_no_chain(graph, shown, start, end, members), _NO_ANSWER)
        if args.dot:
            nodes = {start} | {hop.imported for hop in hops}
            output = render.dot(shown, nodes, hops, highlight=[start, end])
        else:
            output = render.chain_json(shown, hops)
    elif args.dot:
        output = render.dot(shown, members, _edges_among(graph, members))
    else:
        output = render.map_json(graph, shown, members, args.direction == "dependents")
    _write(args.output, output + "\n")
    return 0


def _names(args: argparse.Namespace) -> frozenset[str] | None:
    if args.names is None:
        return None
    if not args.closure or args.direction == "dependencies":
        raise GraphError("--names goes with --closure FILE (the names of FILE a save changes)")
    names = frozenset(name.strip() for name in args.names.split(",") if name.strip())
    bad = sorted(name for name in names if not name.isidentifier())
    if not names or bad:
        raise GraphError(f"--names {args.names}: expected names separated by commas (A,B)")
    return names


# -- what to map ---------------------------------------------------------------------------------


def _scope(args: argparse.Namespace) -> Scope:
    given_roots = [os.path.abspath(root) for root in args.source_roots]
    for root in given_roots:
        if not os.path.isdir(root):
            raise GraphError(f"--source-root {_display(root)}: no such directory")
    target, runtime = args.target, args.runtime
    if target is not None and not os.path.exists(target):
        module, colon, attribute = target.partition(":")
        if not _DOTTED_NAME.fullmatch(module) or (colon and not attribute):
            raise GraphError(f"{target}: no such file or directory, nor a MODULE[:ATTR]")
        roots = given_roots or [os.path.abspath(".")]
        return Scope(
            roots, roots, start_module=module, runtime_target=target if runtime is True else runtime
        )
    if runtime is True:
        raise GraphError("--runtime needs a TARGET (MODULE:ATTR or a module) to import")
    if target is None or os.path.isdir(target):
        directory = os.path.abspath(target or ".")
        roots = given_roots or _default_source_roots(directory)
        return Scope([directory], roots, runtime_target=runtime)
    if not target.endswith(".py"):
        raise GraphError(f"{target} is not a Python file (.py) nor a directory")
    path = os.path.abspath(target)
    roots = given_roots or [_outside_packages(os.path.dirname(path))]
    return Scope(roots, roots, start_file=path, runtime_target=runtime)


def _default_source_roots(directory: str) -> list[str]:
    outside = _outside_packages(directory)
    roots = [outside]
    src = os.path.join(directory, "src")
    if outside == directory and os.path.isdir(src) and not _is_package(src):
        roots.append(src)
    return roots


def _outside_packages(directory: str) -> str:
    """The directory whose subdirectory is the outermost package holding `directory` (itself
    when it is no package): where `import` starts from to reach it."""
    while _is_package(directory) and os.path.dirname(directory) != directory:
        directory = os.path.dirname(directory)
    return directory


def _is_package(directory: str) -> bool:
    return os.path.isfile(os.path.join(directory, "__init__.py"))


def _start(graph: ImportMap, scope: Scope) -> int:
    if scope.start_file:
        index = graph.index_of(scope.start_file)
        if index is None:
            raise GraphError(
                f"{_display(scope.start_file)} lies outside the source roots "
                f"({', '.join(map(_display, scope.source_roots))}) or is excluded"
            )
        return index
    assert scope.start_module is not None
    index = graph.index_of_module(scope.start_module)
    if index is None:
        raise GraphError(
            f"no module {scope.start_module} under "
            f"{', '.join(map(_display, scope.source_roots))} (--source-root sets where to look)"
        )
    return index


def _find(graph: ImportMap, spec: str, members: set[int], scope: Scope) -> int:
    """A file named on the command line: a path to a .py file, or a module name."""
    if spec.endswith(".py") or os.path.isfile(spec):
        index = graph.index_of(spec)
        if index is None and not os.path.exists(spec):
            raise GraphError(f"{spec}: no such file")
    else:
        index = graph.index_of_module(spec)
        if index is None and not os.path.exists(spec):
            raise GraphError(f"{spec}: no such file, and no mapped module of that name")
    if index is None and os.path.isdir(spec):
        package = graph.index_of(os.path.join(spec, "__init__.py"))
        hint = f" ({graph.modules[package]})" if package is not None else ""
        raise GraphError(f"{spec} is a directory: name a .py file or a module{hint}")
    if index is None:
        raise GraphError(
            f"{spec} is not one of the {len(graph)} Python files mapped under "
            f"{', '.join(map(_display, scope.roots))} (outside it, excluded, or no .py file)"
        )
    if index not in members:
        start = _display(scope.start_file) if scope.start_file else scope.start_module
        raise GraphError(f"{spec} is not imported by {start}, so it is not in its map")
    return index


# -- --runtime -----------------------------------------------------------------------------------


def _add_runtime_imports(graph: ImportMap, scope: Scope) -> None:
    assert scope.runtime_target is not None
    seen = import_target(scope.runtime_target, scope.roots, scope.source_roots)
    index = {name: graph.index_of_real_path(path) for name, path in seen.paths.items()}
    for importer, imported in seen.edges:
        a, b = index.get(importer), index.get(imported)
        if a is None or b is None or a == b:
            continue
        static = graph.deps[a].get(b)
        if static is None:
            graph.add(Edge(a, b, lazy=False, names=(), runtime_only=True))
        elif static.lazy:
            # It ran while the target imported, so for a reload it is an import-time import.
            graph.add(Edge(a, b, lazy=False, names=static.names))
    graph.import_order = {i: seen.order[name] for name, i in index.items() if i is not None}


def _report_runtime_only(graph: ImportMap, shown: Sequence[str], members: set[int]) -> None:
    found = sorted(
        (shown[edge.importer], shown[edge.imported])
        for edge in _edges_among(graph, members)
        if edge.runtime_only
    )
    if found:
        sys.stderr.write(
            f"{PROG}: {len(found)} import(s) seen only at run time (dashed in --dot):\n"
        )
        for importer, imported in found:
            sys.stderr.write(f"  {importer} -> {imported}\n")


# -- helpers -------------------------------------------------------------------------------------


def _edges_among(graph: ImportMap, nodes: set[int]) -> list[Edge]:
    return [edge for node in nodes for edge in graph.deps[node].values() if edge.imported in nodes]


def _no_chain(
    graph: ImportMap, shown: Sequence[str], start: int, end: int, members: set[int]
) -> str:
    message = f"{shown[start]} does not import {shown[end]}, directly or indirectly"
    if graph.chain(end, start, members) is not None:
        message += f" (the other way round, it does: --why {shown[end]} {shown[start]})"
    return message


def _display(path: str) -> str:
    """Relative to the current directory, with `/`, as tach prints paths."""
    return os.path.relpath(path).replace(os.sep, "/")


def _write(destination: str, text: str) -> None:
    if destination == "-":
        sys.stdout.write(text)
        return
    try:
        with open(destination, "w", encoding="utf-8") as file:
            file.write(text)
    except OSError as exc:
        raise GraphError(f"--output {destination}: {exc.strerror}") from None
