"""Edit → first response with the new code: hmr-serve against restart-based reloaders.

For each app size, a generated app (one copy per server, so one server's edits never reach
another) is served by hmr-serve, `uvicorn --reload` and `granian --reload` at the same time.
The edits are made in turns, server after server, so slow moments of the noisy machine are
spread over all of them. Each server also gets a steady background client that counts the
requests a user would have seen fail while the code changed.

The generated app (package `benchapp`):
  m0000 … m{N-1}  a tree (fan-out 4) of modules that import their children, plus one forward
                  "cross" import each, so the graph is a DAG rather than a plain tree; every
                  module burns a fixed, calibrated amount of CPU (~3 ms) when executed.
  m{N-1}          the deepest module: DEEP (a value), TOKEN (random on every execution) and
                  deep_fn() (called by the app at request time). Its ancestors re-export all
                  three with `from … import`, up to m0000, so a new value only reaches the
                  response if every module on the way runs again.
  leaf            imported by the app module only: LEAF.
  model           sleeps ~3 s (a model being loaded) and appends a line to a counter file
                  outside the watched directory each time it executes.
  app             a raw ASGI app answering JSON with VERSION, LEAF, DEEP, TOKEN, the result
                  of deep_fn() and the line deep_fn's code starts at (DEEP_LINE).

The edits:
  a  leaf edit: LEAF changes (nothing but the app module imports leaf).
  b  comment-only edit of m{N-1}: one more comment line above deep_fn. No value changes, but
     deep_fn's code now starts one line lower, as tracebacks would show: for every server we
     time edit → first response whose DEEP_LINE is the new line, i.e. code compiled from the
     edited file. hmr-serve patches the code objects in place (nothing is re-executed, so
     TOKEN stays); restart-based reloaders run everything again.
  c  value edit of m{N-1}: DEEP changes and must travel up the whole import chain.
  d  edit of the module that builds the app: VERSION changes.
  e  function-body edit of m{N-1}: deep_fn returns another value. hmr-serve patches the live
     function (no module re-executed); the response calls it at request time.

Every edit rewrites the whole file and makes it grow by at least one byte: Python validates a
cached .pyc by the source's mtime (whole seconds) and size, so a same-size edit within one
second could otherwise let a restarted worker import the stale bytecode.
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
import re
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    Server,
    background_client,
    fmt_ms,
    fmt_ratio,
    free_port,
    http_get,
    log_dir,
    machine_info,
    markdown_table,
    median,
    parse_bench_args,
    percentile,
    running,
    say,
    tool,
    write_results,
)

FANOUT = 4
EDITS = {
    "a": "leaf edit",
    "b": "comment-only edit, deep",
    "c": "value edit, deep (propagates)",
    "d": "edit of the app module",
    "e": "function-body edit, deep",
}
SERVERS = ("hmr-serve", "uvicorn", "granian")
POLL_INTERVAL = 0.002  # how often the measuring client asks after an edit (resolution)
RELOADED = re.compile(r"reloaded (\d+) modules? in ([\d.]+) ms")

# --- The generated app ----------------------------------------------------------------------

BUSY = """\
_acc = 0
for _i in range({iterations}):  # deterministic work, calibrated to ~{ms} ms on this machine
    _acc = (_acc * 31 + _i) & 0xFFFFFFFF
"""

APP = """\
\"\"\"Builds the ASGI app; VERSION is what edit (d) changes.\"\"\"
import json
import os

from benchapp.leaf import LEAF
from benchapp.m0000 import DEEP, TOKEN, deep_fn
from benchapp.model import MODEL

VERSION = {version!r}


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({{"type": "lifespan.startup.complete"}})
            elif message["type"] == "lifespan.shutdown":
                await send({{"type": "lifespan.shutdown.complete"}})
                return
    body = json.dumps(
        {{"version": VERSION, "leaf": LEAF, "deep": DEEP, "token": TOKEN, "model": MODEL,
          "deep_fn": deep_fn(), "deep_line": deep_fn.__code__.co_firstlineno,
          "pid": os.getpid()}}
    ).encode()
    await send({{"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]}})
    await send({{"type": "http.response.body", "body": body}})
"""

LEAF = """\
\"\"\"Imported by the app module only; LEAF is what edit (a) changes.\"\"\"
LEAF = {leaf!r}
"""

DEEP = """\
\"\"\"The deepest module of the tree; DEEP is what edit (c) changes.\"\"\"
import os

DEEP = {deep!r}
TOKEN = os.urandom(8).hex()  # new on every execution of this module
{comments}

def deep_fn():  # called at request time; edit (e) changes its body
    return {fn!r}
"""

MODEL = """\
\"\"\"Stands for an expensive model load; each execution is counted in a file.\"\"\"
import os
import time

time.sleep({seconds})
with open(os.environ["BENCH_MODEL_COUNTER"], "a") as _f:
    _f.write(f"{{os.getpid()}} {{time.time()}}\\n")
MODEL = "loaded"
"""


def calibrate(ms: float) -> int:
    """Loop iterations that take `ms` milliseconds here, executed as module-level code."""
    probe = 20_000
    code = compile(BUSY.format(iterations=probe, ms=ms), "<calibrate>", "exec")
    best = float("inf")
    for _ in range(7):  # the fastest run is the least disturbed one
        started = time.perf_counter()
        exec(code, {})
        best = min(best, time.perf_counter() - started)
    return max(1, round(probe * ms / 1000 / best))


@dataclass
class Graph:
    """Who imports whom among m0000 … m{n-1}: children (fan-out) plus one forward cross edge."""

    n: int
    imports: dict[int, list[int]] = field(default_factory=dict)
    path: list[int] = field(default_factory=list)  # m0000 → … → m{n-1}

    @classmethod
    def build(cls, n: int) -> Graph:
        g = cls(n)
        for i in range(n):
            children = [c for c in range(FANOUT * i + 1, FANOUT * i + FANOUT + 1) if c < n]
            cross = (i * 37 + 11) % n
            if cross > i and cross not in children:  # forward only: the graph stays acyclic
                children.append(cross)
            g.imports[i] = children
        node = n - 1
        while node > 0:
            g.path.append(node)
            node = (node - 1) // FANOUT
        g.path = [0, *reversed(g.path)]
        return g

    def importers_closure(self, target: int) -> int:
        """How many of the tree modules must run again when `target` changes (itself
        included): everything that transitively imports it."""
        importers: dict[int, list[int]] = defaultdict(list)
        for i, deps in self.imports.items():
            for d in deps:
                importers[d].append(i)
        seen, stack = {target}, [target]
        while stack:
            for parent in importers[stack.pop()]:
                if parent not in seen:
                    seen.add(parent)
                    stack.append(parent)
        return len(seen)


def mod(i: int) -> str:
    return f"m{i:04d}"


class App:
    """One copy of the generated app, and the edits made to it."""

    def __init__(
        self,
        root: Path,
        graph: Graph,
        iterations: int,
        ms: float,
        model_s: float,
        busy_template: str = BUSY,  # another form of the work: see script_mode.py
    ):
        self.root = root
        self.pkg = root / "benchapp"
        self.graph = graph
        self.deep = mod(graph.n - 1)
        self.values = {"version": "v0", "leaf": "leaf-0", "deep": "deep-0", "deep_fn": "fn-0"}
        self.comments = 0  # comment lines above deep_fn (edit b)
        self.saves: dict[str, int] = defaultdict(int)
        self.pkg.mkdir(parents=True)
        (self.pkg / "__init__.py").write_text("")
        busy = busy_template.format(iterations=iterations, ms=ms)
        on_path = dict(itertools.pairwise(graph.path))  # parent → its child on the path
        for i in range(graph.n - 1):
            lines = [f'"""Generated module {i} of {graph.n}."""']
            if graph.imports[i]:
                lines.append(f"from benchapp import {', '.join(mod(c) for c in graph.imports[i])}")
            if i in on_path:
                lines.append(f"from benchapp.{mod(on_path[i])} import DEEP, TOKEN, deep_fn")
            (self.pkg / f"{mod(i)}.py").write_text("\n".join(lines) + "\n\n" + busy)
        self.busy = busy
        (self.pkg / "model.py").write_text(MODEL.format(seconds=model_s))
        self.write("app")
        self.write("leaf")
        self.write(self.deep)

    def write(self, name: str) -> None:
        """(Re)writes one of the edited files from the current values. Each save appends a
        longer trailing comment, so the file always grows (see the module docstring)."""
        self.saves[name] += 1
        if name == "app":
            text = APP.format(version=self.values["version"])
        elif name == "leaf":
            text = LEAF.format(leaf=self.values["leaf"])
        else:
            comments = "".join(f"\n# comment {i}" for i in range(self.comments))
            text = DEEP.format(
                deep=self.values["deep"], comments=comments, fn=self.values["deep_fn"]
            )
            lines = text.splitlines()
            self.values["deep_line"] = next(
                n for n, line in enumerate(lines, 1) if line.startswith("def deep_fn(")
            )
            text += "\n" + self.busy
        text += f"# save {self.saves[name]} {'.' * self.saves[name]}\n"
        (self.pkg / f"{name}.py").write_text(text)

    def edit(self, kind: str, seq: int) -> None:
        if kind == "a":
            self.values["leaf"] = f"leaf-{seq}"
            self.write("leaf")
        elif kind == "b":
            self.comments += 1  # only comments change
            self.write(self.deep)
        elif kind == "c":
            self.values["deep"] = f"deep-{seq}"
            self.write(self.deep)
        elif kind == "e":
            self.values["deep_fn"] = f"fn-{seq}"
            self.write(self.deep)
        else:
            self.values["version"] = f"v{seq}"
            self.write("app")

    def expected_closure(self, kind: str) -> int:
        """Modules a minimal reload re-executes: the edited one and its importers, app
        module included."""
        if kind == "a":
            return 2  # leaf, app
        if kind == "d":
            return 1  # app
        return self.graph.importers_closure(self.graph.n - 1) + 1  # … + app


# --- Measurement ----------------------------------------------------------------------------


@dataclass
class Sample:
    server: str
    kind: str
    ms: float | None  # None: timed out
    mismatch: bool
    failed: int
    model_loads: int
    log_ms: float | None = None  # hmr-serve: edit → `reloaded` line
    self_ms: float | None = None  # hmr-serve: duration in its own log line
    modules: int | None = None  # hmr-serve: modules it re-executed


class Target:
    """A running server together with its app copy, counter file and background client."""

    def __init__(self, name: str, server: Server, app: App, counter: Path, ctx) -> None:
        self.name, self.server, self.app, self.counter = name, server, app, counter
        self.stop = ctx.Event()
        self.counters = ctx.Array("d", 5)
        self.client = ctx.Process(
            target=background_client, args=(server.port, self.stop, self.counters), daemon=True
        )

    def model_loads(self) -> int:
        return len(self.counter.read_text().splitlines()) if self.counter.exists() else 0

    def failed(self) -> int:
        return int(self.counters[1])

    def get(self, timeout: float) -> dict:
        status, body = http_get(self.server.port, "/", timeout=timeout)
        if status != 200:
            raise OSError(f"status {status}")
        return json.loads(body)


def make_server(name: str, root: Path, counter: Path, logs: Path) -> Server:
    port = free_port()
    target = "benchapp.app:app"
    # Access logs off everywhere: 100 background requests a second would only add noise.
    argv = {
        "hmr-serve": [tool("hmr-serve"), target, "--port", str(port), "--app-dir", str(root)],
        "uvicorn": [tool("uvicorn"), target, "--port", str(port), "--app-dir", str(root),
                    "--reload", "--reload-dir", str(root)],
        "granian": [tool("granian"), "--interface", "asgi", "--port", str(port),
                    "--working-dir", str(root), "--reload", "--reload-paths", str(root), target],
    }[name]  # fmt: skip
    argv.append("--no-access-log")
    return Server(
        name=name,
        argv=argv,
        port=port,
        cwd=root,
        # Bytecode caching on, as on a developer's machine (some environments turn it off):
        # restarts then import cached bytecode, as they would for a user.
        env={"BENCH_MODEL_COUNTER": str(counter), "PYTHONDONTWRITEBYTECODE": None},
        log_path=logs / f"{name}.log",
    )


def measure(t: Target, kind: str, seq: int, timeout: float) -> Sample:
    # The request before the edit also waits out anything still settling from the last one.
    t.get(timeout)
    failed0, loads0 = t.failed(), t.model_loads()
    app = t.app
    started = time.monotonic()
    app.edit(kind, seq)
    want = dict(app.values)

    def arrived(r: dict) -> bool:
        key = {"a": "leaf", "b": "deep_line", "c": "deep", "d": "version", "e": "deep_fn"}[kind]
        return r[key] == want[key]

    ms = None
    deadline = started + timeout
    while time.monotonic() < deadline:
        try:
            if arrived(t.get(max(0.1, deadline - time.monotonic()))):
                ms = (time.monotonic() - started) * 1000
                break
        except Exception:  # the server is restarting; the background client counts these
            pass
        time.sleep(POLL_INTERVAL)

    sample = Sample(t.name, kind, ms, mismatch=True, failed=0, model_loads=0)
    if t.name == "hmr-serve":
        try:
            at, m = t.server.wait_line(r"reloaded \d+ modules?|reload failed", started, 5)
            sample.log_ms = (at - started) * 1000
            if (done := RELOADED.search(m.string)) is not None:
                sample.modules, sample.self_ms = int(done[1]), float(done[2])
        except TimeoutError:
            pass
    # Correctness: what is served once the reload is over must be exactly the edited code.
    try:
        final = t.get(timeout)
        sample.mismatch = ms is None or any(final[k] != v for k, v in want.items())
    except Exception:
        pass
    time.sleep(0.2)  # let late failures of this edit land in its own count
    sample.failed = t.failed() - failed0
    sample.model_loads = t.model_loads() - loads0
    return sample


def run_size(n: int, servers: list[str], reps: int, module_ms: float, model_s: float) -> dict:
    iterations = calibrate(module_ms)
    graph = Graph.build(n)
    logs = log_dir(f"reload-{n}")
    work = Path(tempfile.mkdtemp(prefix=f"hmr-bench-reload-{n}-"))
    ctx = multiprocessing.get_context("spawn")  # no fork of a process that runs threads
    say(f"[reload] {n} modules: generating apps in {work}, server logs in {logs}")
    targets = []
    for name in servers:
        root = work / name
        counter = work / f"{name}-model-loads.txt"  # outside the watched directory
        app = App(root, graph, iterations, module_ms, model_s)
        targets.append(Target(name, make_server(name, root, counter, logs), app, counter, ctx))

    # Bounded waits, scaled to the app: a restart imports every module and the model.
    cold = n * module_ms / 1000 + model_s
    ready_timeout = 60 + 6 * cold
    edit_timeout = 30 + 4 * cold
    samples: list[Sample] = []
    startup: dict[str, float] = {}
    try:
        with running([t.server for t in targets], ready_timeout):
            for t in targets:
                startup[t.name] = t.server.ready_after or float("nan")
                say(f"[reload] {t.name} ready after {startup[t.name]:.1f} s")
            for t in targets:
                t.client.start()
            time.sleep(0.5)
            seq = 0
            for rep in range(reps):
                for kind in EDITS:
                    # A different server goes first in each repetition.
                    order = targets[rep % len(targets) :] + targets[: rep % len(targets)]
                    for t in order:
                        seq += 1
                        s = measure(t, kind, seq, edit_timeout)
                        samples.append(s)
                        say(
                            f"[reload] n={n} rep {rep + 1}/{reps} {kind} {t.name:9s} "
                            f"{fmt_ms(s.ms) if s.ms is not None else 'TIMEOUT'}"
                            f"{'  MISMATCH' if s.mismatch else ''}"
                            f"{f'  failed={s.failed}' if s.failed else ''}"
                            f"  model loads={s.model_loads}"
                        )
            background = {t.name: list(t.counters) for t in targets}
    finally:
        for t in targets:
            t.stop.set()
        for t in targets:
            if t.client.pid is not None:
                t.client.join(5)
                if t.client.is_alive():
                    t.client.kill()
        shutil.rmtree(work, ignore_errors=True)
    return {
        "n": n,
        "samples": samples,
        "startup": startup,
        "background": background,
        "closure": {k: targets[0].app.expected_closure(k) for k in EDITS},
        "iterations": iterations,
        "depth": len(graph.path),
    }


# --- Report ---------------------------------------------------------------------------------


def report(result: dict, servers: list[str], module_ms: float, model_s: float) -> str:
    n, samples = result["n"], result["samples"]
    by: dict[tuple[str, str], list[Sample]] = defaultdict(list)
    for s in samples:
        by[(s.server, s.kind)].append(s)

    rows = []
    for kind, label in EDITS.items():
        base = median([s.ms for s in by[("hmr-serve", kind)] if s.ms is not None])
        for name in servers:
            group = by[(name, kind)]
            times = [s.ms for s in group if s.ms is not None]
            med = median(times)
            rows.append([
                f"({kind}) {label}" if name == servers[0] else "",
                name,
                fmt_ms(med),
                fmt_ms(percentile(times, 90)),
                "1×" if name == "hmr-serve" else fmt_ratio(med / base),
                sum(s.failed for s in group),
                sum(s.model_loads for s in group),
                f"{sum(s.mismatch for s in group)}/{len(group)}",
            ])  # fmt: skip
    main = markdown_table(
        ["edit", "server", "median", "p90", "vs hmr-serve", "failed requests", "model loads",
         "mismatches"],
        rows,
    )  # fmt: skip

    hmr_rows = []
    for kind, label in EDITS.items():
        group = by[("hmr-serve", kind)]
        modules = sorted({s.modules for s in group if s.modules is not None})
        hmr_rows.append([
            f"({kind}) {label}",
            result["closure"][kind],
            ", ".join(map(str, modules)) or "–",
            fmt_ms(median([s.self_ms for s in group if s.self_ms is not None])),
            fmt_ms(median([s.log_ms for s in group if s.log_ms is not None])),
            fmt_ms(median([s.ms for s in group if s.ms is not None])),
        ])  # fmt: skip
    detail = markdown_table(
        ["edit", "importers closure", "modules re-executed", "reload (own log)",
         "edit → log line", "edit → new response"],
        hmr_rows,
    )  # fmt: skip

    starts = ", ".join(f"{k} {v:.1f} s" for k, v in result["startup"].items())
    bg = ", ".join(
        f"{k} {int(v[0])} requests / {int(v[1])} failed / longest wait {fmt_ms(v[2])}"
        for k, v in result["background"].items()
    )
    reps = max(len(g) for g in by.values())
    return (
        f"### {n} modules\n\n"
        f"Tree of {n} modules (fan-out {FANOUT} plus one cross import each, depth "
        f"{result['depth']}), ~{module_ms:g} ms of CPU per module ({result['iterations']} loop "
        f"iterations), model load {model_s:g} s; {reps} repetitions of each edit per server, "
        f"servers in turns. Cold start (spawn → first answer, all servers starting at once): "
        f"{starts}.\n\n{main}\n\n"
        f"hmr-serve in detail (closure = the edited module and everything that transitively "
        f"imports it, computed by the generator):\n\n{detail}\n\n"
        f"Background client (one GET every 10 ms on a fresh connection, whole run): {bg}.\n"
    )


def main(argv: list[str] | None = None) -> str:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="300,3000", help="module counts (default: 300,3000)")
    p.add_argument("--reps", type=int, default=5, help="repetitions of each edit per server")
    p.add_argument(
        "--quick", action="store_true", help="300 modules, 3 repetitions; RESULTS.md untouched"
    )
    p.add_argument("--servers", default=",".join(SERVERS), help="comma-separated subset")
    p.add_argument(
        "--granian-max-size",
        type=int,
        default=1000,
        help="skip granian for bigger apps: each of its restarts costs as much as uvicorn's "
        "(default: 1000)",
    )
    p.add_argument("--module-ms", type=float, default=3.0, help="CPU per module import")
    p.add_argument("--model-seconds", type=float, default=3.0, help="model load time")
    args = parse_bench_args(p, argv)
    sizes = [300] if args.quick else [int(s) for s in args.sizes.split(",")]
    reps = 3 if args.quick else args.reps
    wanted = [s for s in args.servers.split(",") if s]
    if "hmr-serve" not in wanted or any(s not in SERVERS for s in wanted):
        p.error(f"--servers: a subset of {','.join(SERVERS)} that includes hmr-serve")

    sections = []
    for n in sizes:
        servers = [s for s in wanted if s != "granian" or n <= args.granian_max_size]
        result = run_size(n, servers, reps, args.module_ms, args.model_seconds)
        section = report(result, servers, args.module_ms, args.model_seconds)
        print(section, flush=True)
        sections.append(section)

    body = "\n".join(
        [
            machine_info(["hmr-serve", "uvicorn", "granian", "watchfiles"]),
            "",
            "Time from an edit being written to the first response that shows it (for the "
            "comment-only edit: the first response from code compiled from the edited file, "
            "seen in the line number its function starts at). hmr-serve applies (b) and (e) "
            "by patching function code in place, re-executing no module. "
            "`failed requests`: background requests refused, reset, timed out or answered "
            "with 5xx during that edit's measurement. `model loads`: executions of the slow "
            "model module caused by the edits. `mismatches`: edits after which the served "
            "content was not exactly the expected one (or never arrived).",
            "",
            *sections,
        ]
    )
    write_results(args, "Reload latency", body)
    return body


if __name__ == "__main__":
    main()
