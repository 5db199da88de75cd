"""How fast is `hmr-serve graph` on a big tree, beside `tach map`?

    .venv/bin/python bench/graph_map.py TREE [--source-root DIR ...] [--rounds 7]

Runs `hmr-serve graph --lazy` (tach counts imports inside functions too) and `tach map`
interleaved in TREE, each round one of each, and prints wall times (best, median) and files per
second; then the Rust pass alone (`_core.project_map`, in this process, no interpreter start-up
or JSON). For a like-for-like count of files, TREE should hold a `tach.toml` with the same
source roots and `exclude = []` (tach leaves out `**/tests` and `**/docs` by default). Not part
of `run.py`: it needs a large tree, which this repository does not ship.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from hmr_serve import _core

BIN = Path(sys.executable).parent


def cpu_seconds(usage: resource.struct_rusage) -> float:
    return usage.ru_utime + usage.ru_stime


def timed(command: list[str], cwd: Path) -> tuple[float, float]:
    """(wall, CPU) seconds of one run. CPU time (all threads, user + system) is the steadier
    figure on a shared machine, where the wall time is mostly waiting for a core."""
    before = cpu_seconds(resource.getrusage(resource.RUSAGE_CHILDREN))
    started = time.perf_counter()
    subprocess.run(
        command, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    elapsed = time.perf_counter() - started
    return elapsed, cpu_seconds(resource.getrusage(resource.RUSAGE_CHILDREN)) - before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("tree", type=Path)
    parser.add_argument("--source-root", action="append", default=[], metavar="DIR")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    tree = args.tree.resolve()
    source_roots = [str(tree / r) for r in args.source_root] or [str(tree)]
    ours = [str(BIN / "hmr-serve"), "graph", "--lazy"]
    for root in args.source_root:
        ours += ["--source-root", root]
    tach = shutil.which("tach", path=str(BIN)) or shutil.which("tach")

    scanned = _core.project_map([str(tree)], source_roots, [])
    files = len(scanned.files)
    times: dict[str, list[tuple[float, float]]] = {"hmr-serve graph": [], "tach map": []}
    rust: list[tuple[float, float]] = []
    for _ in range(args.rounds):
        times["hmr-serve graph"].append(timed(ours, tree))
        if tach:
            times["tach map"].append(timed([tach, "map"], tree))
        before = cpu_seconds(resource.getrusage(resource.RUSAGE_SELF))
        started = time.perf_counter()
        _core.project_map([str(tree)], source_roots, [])
        elapsed = time.perf_counter() - started
        rust.append((elapsed, cpu_seconds(resource.getrusage(resource.RUSAGE_SELF)) - before))

    print(f"{tree}: {files} .py files, {len(scanned.errors)} not parsed, {os.cpu_count()} cores")
    print("| command | wall best (s) | wall median (s) | files/s (wall best) | CPU best (s) |")
    print("|---|---|---|---|---|")
    for name, runs in [*times.items(), ("_core.project_map (in process)", rust)]:
        if runs:
            walls = [w for w, _ in runs]
            best = min(walls)
            cpu = min(c for _, c in runs)
            print(
                f"| {name} | {best:.3f} | {statistics.median(walls):.3f} | "
                f"{files / best:,.0f} | {cpu:.3f} |"
            )
    if not tach:
        print("tach is not installed: pip install tach")


if __name__ == "__main__":
    main()
