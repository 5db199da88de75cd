"""Save → the script's new output: `hmr-serve run` against hmr's script mode and a restart
with `watchfiles` (issue 16).

Each tool runs the same script on its own copy of reload.py's generated tree (300 modules of
~3 ms import each, a 3 s model module; see reload.py), all at the same time. One difference:
each module's work runs in a function it calls at import, not in a loop at module level. hmr
executes a module with every global it reads tracked, which makes reload.py's module-level loop
about a hundred times slower there (a 300-module tree would take minutes to import); a loop in
a function reads only locals, the same work for every tool. Its loop count is calibrated for
each interpreter (3.11 for hmr-serve and watchfiles, hmr's 3.12), at ~3 ms.

  hmr-serve   `hmr-serve run script.py hmr-serve`: re-executes the changed modules in place,
              then runs the script again, in the same interpreter.
  hmr         `hmr script.py hmr` (hmr 0.7, PyPI `hmr`): re-runs the modules, and the script,
              that read a name that changed. It needs Python 3.12+, so it runs from its own
              venv, bench/.work/venv-hmr-script, made here on first use from pyenv's newest
              3.12 (else 3.13, else python3.12/3.13 on PATH); without one hmr is skipped and
              the report says why.
  watchfiles  `watchfiles --filter python 'python script.py watchfiles'`: a new process on
              every save, which imports the whole tree and the model again.

The script imports the tree through its app module and prints one line: a value derived from
the leaf module (LEAF upper-cased and reversed), LEAF itself, DEEP, MODEL, its arguments and
how long that run took by its own clock, from its first line to the print (`own_ms`). The edit
is reload.py's (a): LEAF changes in benchapp/leaf.py. Time is measured from the write to the
arrival of the script's line with the new value on the tool's output (a pipe: none of the
three needs a terminal for this), edits in turns, a different tool first in each round.

Every edit rewrites the whole file and makes it grow by at least one byte: Python validates a
cached .pyc by the source's mtime (whole seconds) and size, so a same-size edit within one
second could otherwise let the restarted script import the stale bytecode.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    BENCH_DIR,
    Server,
    fmt_ms,
    fmt_ratio,
    log_dir,
    machine_info,
    markdown_table,
    median,
    parse_bench_args,
    percentile,
    say,
    tool,
    write_results,
)

from reload import RELOADED, App, Graph  # noqa: E402

TOOLS = ("hmr-serve", "hmr", "watchfiles")
HMR_VENV = BENCH_DIR / ".work" / "venv-hmr-script"
HMR_REQUIREMENT = "hmr>=0.7,<0.8"
# After the new line: how long to keep listening for a second run of the script caused by the
# same save (counted in "runs per save"), and to let the tool settle before the next edit.
SETTLE = 0.5
# The target of issue 16.
TARGET_OVERHEAD_MS = 10.0
TARGET_RATIO = 100.0

BUSY = """\
def _busy():  # deterministic work, calibrated to ~{ms} ms for this interpreter
    acc = 0
    for i in range({iterations}):
        acc = (acc * 31 + i) & 0xFFFFFFFF
    return acc


_busy()
"""
# Run by the interpreter that will execute the generated modules (3.11 and 3.12 differ).
CALIBRATE = """\
import sys
import time

template, ms = sys.argv[1], float(sys.argv[2])
probe = 20_000
code = compile(template.format(iterations=probe, ms=ms), "<calibrate>", "exec")
best = float("inf")
for _ in range(15):  # the fastest run is the least disturbed one
    time.sleep(0.005)  # each try starts on a fresh time slice of the busy machine
    started = time.perf_counter()
    exec(code, {})
    best = min(best, time.perf_counter() - started)
print(max(1, round(probe * ms / 1000 / best)))
"""

SCRIPT = """\
\"\"\"Imports the generated tree through its app module and prints a value derived from the
leaf module, with how long this run took by its own clock.\"\"\"
import sys
import time

_started = time.perf_counter()
from benchapp.app import DEEP, LEAF, MODEL  # noqa: E402

print(
    f"result {LEAF.upper()[::-1]} leaf={LEAF} deep={DEEP} model={MODEL} "
    f"args={','.join(sys.argv[1:])} own_ms={(time.perf_counter() - _started) * 1000:.3f}",
    flush=True,
)
"""
RESULT = re.compile(
    r"^result (?P<derived>\S+) leaf=(?P<leaf>\S+) deep=(?P<deep>\S+) model=(?P<model>\S+) "
    r"args=(?P<args>\S*) own_ms=(?P<own_ms>[\d.]+)$"
)

HMR_VERSIONS = """\
import platform
from importlib import metadata

print(platform.python_version(), metadata.version("hmr"))
"""


def calibrate(python: str, ms: float) -> int:
    """Loop iterations of BUSY that take `ms` milliseconds when `python` runs them."""
    out = subprocess.run(
        [python, "-c", CALIBRATE, BUSY, str(ms)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return int(out.stdout)


# --- hmr's venv -----------------------------------------------------------------------------


def newest_python(versions: tuple[str, ...] = ("3.12", "3.13")) -> str | None:
    """pyenv's newest patch release of the first of `versions` installed, else that version's
    `pythonX.Y` on PATH."""
    pyenv = Path.home() / ".pyenv" / "versions"
    for version in versions:
        found = sorted(
            (p for p in pyenv.glob(f"{version}.*/bin/python3") if p.parent.parent.name[-1:] != "t"),
            key=lambda p: tuple(int(x) for x in re.findall(r"\d+", p.parent.parent.name)),
        )
        if found:
            return str(found[-1])
        if on_path := shutil.which(f"python{version}"):
            return on_path
    return None


@dataclass
class Hmr:
    """hmr's `hmr` command, its venv's Python and what they are, or (command None) why hmr is
    skipped."""

    command: str | None
    python: str | None
    about: str

    @classmethod
    def find_or_make(cls, venv: Path) -> Hmr:
        command, python = venv / "bin" / "hmr", venv / "bin" / "python"
        try:
            if not command.exists():
                base = newest_python()
                if base is None:
                    return cls(None, None, "hmr skipped: no Python 3.12+ for its venv")
                say(f"[script] making {venv} from {base} with {HMR_REQUIREMENT}")
                subprocess.run([base, "-m", "venv", "--clear", str(venv)], check=True, timeout=300)
                subprocess.run(
                    [str(python), "-m", "pip", "install", "-q", HMR_REQUIREMENT],
                    check=True,
                    timeout=600,
                )
            out = subprocess.run(
                [str(python), "-c", HMR_VERSIONS],
                capture_output=True,
                text=True,
                check=True,
                timeout=60,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            return cls(None, None, f"hmr skipped: no working venv at {venv} ({exc})")
        py, hmr = out.stdout.split()
        return cls(str(command), str(python), f"hmr {hmr} on Python {py}")


# --- Measurement ----------------------------------------------------------------------------


@dataclass
class Sample:
    tool: str
    ms: float | None  # save → the new line; None: timed out
    own_ms: float | None  # the script's own run, from its line
    runs: int  # script lines caused by the save
    mismatch: bool  # the new line was not exactly what a fresh run prints
    model_loads: int
    log_ms: float | None = None  # hmr-serve: save → its `reloaded` line
    rerun_ms: float | None = None  # hmr-serve: save → its `running script.py` line
    self_ms: float | None = None  # hmr-serve: reload duration in that line
    modules: int | None = None  # hmr-serve: modules it re-executed


class Target:
    """A tool running the script on its own copy of the tree."""

    def __init__(self, name: str, proc: Server, tree: App, counter: Path) -> None:
        self.name, self.proc, self.tree, self.counter = name, proc, tree, counter
        self.cold_ms: float | None = None

    def model_loads(self) -> int:
        return len(self.counter.read_text().splitlines()) if self.counter.exists() else 0

    def results_since(self, since: float) -> list[re.Match[str]]:
        lines = list(self.proc.lines)  # one copy, atomic under the GIL; the reader only appends
        return [m for at, line in lines if at >= since and (m := RESULT.match(line))]

    def expected(self) -> dict[str, str]:
        """What a fresh `python script.py NAME` would print now."""
        leaf = self.tree.values["leaf"]
        return {"derived": leaf.upper()[::-1], "leaf": leaf, "deep": self.tree.values["deep"],
                "model": "loaded", "args": self.name}  # fmt: skip


def make_target(name: str, root: Path, tree: App, counter: Path, logs: Path, hmr: Hmr) -> Target:
    (root / "script.py").write_text(SCRIPT)
    python = shlex.quote(sys.executable)  # the project's venv, which has watchfiles too
    argv = {
        "hmr-serve": [tool("hmr-serve"), "run", "script.py", name],
        "hmr": [str(hmr.command), "script.py", name],
        "watchfiles": [tool("watchfiles"), "--filter", "python", "--target-type", "command",
                       f"{python} script.py {name}", "."],
    }[name]  # fmt: skip
    proc = Server(
        name=name,
        argv=argv,
        port=0,  # nothing listens: only the output is read
        cwd=root,  # hmr and watchfiles watch the working directory
        # Bytecode caching on, as on a developer's machine (some environments turn it off):
        # restarts then import cached bytecode, as they would for a user.
        env={"BENCH_MODEL_COUNTER": str(counter), "PYTHONDONTWRITEBYTECODE": None},
        log_path=logs / f"{name}.log",
    )
    return Target(name, proc, tree, counter)


def measure(t: Target, seq: int, timeout: float) -> Sample:
    loads0 = t.model_loads()
    started = time.monotonic()
    t.tree.edit("a", seq)
    want = t.expected()
    ms = None
    try:
        at, _ = t.proc.wait_line(rf"^result \S+ leaf={re.escape(want['leaf'])} ", started, timeout)
        ms = (at - started) * 1000
    except TimeoutError:
        pass
    time.sleep(SETTLE)
    results = t.results_since(started)
    new = [m for m in results if m["leaf"] == want["leaf"]]
    sample = Sample(
        t.name,
        ms,
        own_ms=float(new[0]["own_ms"]) if new else None,
        runs=len(results),
        mismatch=not new or any(m[k] != v for m in new for k, v in want.items()),
        model_loads=t.model_loads() - loads0,
    )
    if t.name == "hmr-serve":
        try:
            at, m = t.proc.wait_line(r"reloaded \d+ modules?|reload failed", started, 1)
            sample.log_ms = (at - started) * 1000
            if (done := RELOADED.search(m.string)) is not None:
                sample.modules, sample.self_ms = int(done[1]), float(done[2])
        except TimeoutError:
            pass
        try:
            at, _ = t.proc.wait_line(r"\[hmr-serve\] running script\.py", started, 1)
            sample.rerun_ms = (at - started) * 1000
        except TimeoutError:
            pass
    return sample


def run(tools: list[str], reps: int, n: int, module_ms: float, model_s: float, hmr: Hmr) -> dict:
    pythons = {name: hmr.python if name == "hmr" else sys.executable for name in tools}
    iterations = {py: calibrate(py, module_ms) for py in set(pythons.values())}
    graph = Graph.build(n)
    logs = log_dir("script")
    work = Path(tempfile.mkdtemp(prefix="hmr-bench-script-"))
    say(f"[script] {n} modules: trees in {work}, output of each tool in {logs}")
    targets = []
    for name in tools:
        root = work / name
        counter = work / f"{name}-model-loads.txt"  # outside the watched directory
        tree = App(root, graph, iterations[pythons[name]], module_ms, model_s, BUSY)
        targets.append(make_target(name, root, tree, counter, logs, hmr))

    # Bounded waits, scaled to the tree: a restart imports every module and the model.
    cold = n * module_ms / 1000 + model_s
    samples: list[Sample] = []
    load = [os.getloadavg()[0]]
    try:
        for t in targets:
            t.proc.start()
        for t in targets:  # all start at once, as in reload.py: fewer minutes of waiting
            at, _ = t.proc.wait_line(r"^result ", t.proc.started_at, 60 + 6 * cold)
            t.cold_ms = (at - t.proc.started_at) * 1000
            say(f"[script] {t.name} first output after {fmt_ms(t.cold_ms)}")
        time.sleep(SETTLE)
        seq = 0
        for rep in range(reps):
            order = targets[rep % len(targets) :] + targets[: rep % len(targets)]
            for t in order:
                seq += 1
                s = measure(t, seq, 30 + 4 * cold)
                samples.append(s)
                say(
                    f"[script] round {rep + 1}/{reps} {t.name:10s} "
                    f"{fmt_ms(s.ms) if s.ms is not None else 'TIMEOUT'}"
                    f" (own run {fmt_ms(s.own_ms) if s.own_ms is not None else '–'})"
                    f"  runs={s.runs}  model loads={s.model_loads}"
                    f"{'  MISMATCH' if s.mismatch else ''}"
                )
        load.append(os.getloadavg()[0])
    finally:
        for t in targets:
            t.proc.stop()
        shutil.rmtree(work, ignore_errors=True)
    return {
        "samples": samples,
        "cold": {t.name: t.cold_ms for t in targets},
        "iterations": {name: iterations[py] for name, py in pythons.items()},
        "depth": len(graph.path),
        "load": load,
    }


# --- Report ---------------------------------------------------------------------------------


def report(result: dict, tools: list[str], n: int, module_ms: float, model_s: float, hmr: Hmr):
    by: dict[str, list[Sample]] = {name: [] for name in tools}
    for s in result["samples"]:
        by[s.tool].append(s)
    times = {name: [s.ms for s in group if s.ms is not None] for name, group in by.items()}
    # Per save, what the tool added to the script's own run (an unfinished save counts in none).
    rest = {
        name: median([s.ms - s.own_ms for s in group if s.ms is not None and s.own_ms is not None])
        for name, group in by.items()
    }
    base = median(times["hmr-serve"])
    rows = [
        [
            name,
            fmt_ms(median(times[name])),
            fmt_ms(percentile(times[name], 90)),
            "1×" if name == "hmr-serve" else fmt_ratio(median(times[name]) / base),
            fmt_ms(median([s.own_ms for s in group if s.own_ms is not None])),
            fmt_ms(rest[name]),
            f"{sum(s.runs for s in group)}/{len(group)}",
            sum(s.model_loads for s in group),
            f"{sum(s.mismatch for s in group)}/{len(group)}",
        ]
        for name, group in by.items()
    ]
    table = markdown_table(
        ["tool", "median", "p90", "vs hmr-serve", "script's own run", "the rest", "runs / saves",
         "model loads", "mismatches"],
        rows,
    )  # fmt: skip

    verdicts = [
        f"hmr-serve's median beyond the script's own run: {fmt_ms(rest['hmr-serve'])} (target "
        f"≤ {TARGET_OVERHEAD_MS:g} ms: "
        f"{'met' if rest['hmr-serve'] <= TARGET_OVERHEAD_MS else 'NOT met'})"
    ]
    if "watchfiles" in by:
        ratio = median(times["watchfiles"]) / base
        verdicts.append(
            f"the restart takes {fmt_ratio(ratio)} as long (target ≥ {TARGET_RATIO:g}×: "
            f"{'met' if ratio >= TARGET_RATIO else 'NOT met'})"
        )
    ours = by["hmr-serve"]
    detail = markdown_table(
        ["modules re-executed", "reload (own log)", "save → log line", "save → `running` line",
         "save → new output"],
        [[
            ", ".join(map(str, sorted({s.modules for s in ours if s.modules is not None}))) or "–",
            fmt_ms(median([s.self_ms for s in ours if s.self_ms is not None])),
            fmt_ms(median([s.log_ms for s in ours if s.log_ms is not None])),
            fmt_ms(median([s.rerun_ms for s in ours if s.rerun_ms is not None])),
            fmt_ms(base),
        ]],
    )  # fmt: skip
    cold = ", ".join(f"{k} {fmt_ms(v) if v else '–'}" for k, v in result["cold"].items())
    loops = ", ".join(f"{k} {v}" for k, v in result["iterations"].items())
    skipped = "" if "hmr" in tools else f" {hmr.about}."
    return (
        f"Tree of {n} modules (reload.py's generator: fan-out 4 plus one cross import each, "
        f"depth {result['depth']}), ~{module_ms:g} ms of CPU per module "
        f"(loop iterations: {loops}), model load {model_s:g} s; "
        f"{max(map(len, by.values()))} leaf edits per tool, tools in turns.{skipped} "
        f"First output (spawn → the script's first line, all tools starting at once): "
        f"{cold}. The machine's load average (1 min) before and after: "
        f"{' and '.join(f'{x:.1f}' for x in result['load'])}.\n\n"
        f"{table}\n\n{'; '.join(verdicts)}.\n\n"
        f"hmr-serve in detail (the leaf's importers closure is leaf and app: 2 modules):\n\n"
        f"{detail}\n"
    )


def main(argv: list[str] | None = None) -> str:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--reps", type=int, default=9, help="leaf edits per tool (default: 9)")
    p.add_argument("--quick", action="store_true", help="3 edits per tool; RESULTS.md untouched")
    p.add_argument("--tools", default=",".join(TOOLS), help="comma-separated subset")
    p.add_argument("--modules", type=int, default=300, help="modules in the tree")
    p.add_argument("--module-ms", type=float, default=3.0, help="CPU per module import")
    p.add_argument("--model-seconds", type=float, default=3.0, help="model load time")
    p.add_argument("--hmr-venv", type=Path, default=HMR_VENV, help="hmr's venv (made if missing)")
    args = parse_bench_args(p, argv)
    reps = 3 if args.quick else args.reps
    wanted = [s for s in args.tools.split(",") if s]
    if "hmr-serve" not in wanted or any(s not in TOOLS for s in wanted):
        p.error(f"--tools: a subset of {','.join(TOOLS)} that includes hmr-serve")
    hmr = Hmr.find_or_make(args.hmr_venv) if "hmr" in wanted else Hmr(None, None, "hmr not run")
    if hmr.command is None and "hmr" in wanted:
        say(f"[script] {hmr.about}")
        wanted.remove("hmr")

    result = run(wanted, reps, args.modules, args.module_ms, args.model_seconds, hmr)
    section = report(result, wanted, args.modules, args.module_ms, args.model_seconds, hmr)
    print(section, flush=True)
    body = "\n".join(
        [
            machine_info(["hmr-serve", "watchfiles"]) + f" {hmr.about}.",
            "",
            "Time from a save of the leaf module to the line the script prints with the new "
            "value arriving on the tool's output. `script's own run`: how long that run of the "
            "script took by its own clock (for a restart: importing the tree and the model); "
            "`the rest`: the median of each save's time minus that (watching, reloading, "
            "starting a process). `runs / saves`: the script's runs caused by the saves (1 "
            "each is right). `model loads`: executions of the slow model module caused by the "
            "saves. `mismatches`: saves after which the script's line was not exactly what a "
            "fresh run prints (or never came).",
            "",
            section,
        ]
    )
    write_results(args, "Script mode", body)
    return body


if __name__ == "__main__":
    main()
