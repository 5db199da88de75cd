"""Save → test summary: `hmr-serve test` against `ptw` (pytest-watcher), `pytest --testmon` and
a plain full `pytest`, on one generated project.

The project (one copy per tool, so one tool's edits and caches never reach another):
  app/m000 … m299   300 modules; each imports up to two lower-numbered ones (a DAG) and
                    defines `K`, `g(x) = x * K` and `f(x)`, which calls its imports' `g`.
  tests/test_mNNN   two tests per module (600): `test_f` (runs the module's `f`, so its
                    imports' `g`) and `test_g`.
  tests/conftest.py an autouse session fixture that takes 3 s (a database, a model), as
                    every run of a fresh process pays it.
  app/leaf.py       imported by one module only: the module edited.

The edits, alternating (every one keeps all tests passing):
  body   `g`'s body in app/leaf.py: `return x * K` ↔ `return K * x`.
  value  app/leaf.py's `K = 3` ↔ `K = 3.0`: a module-level value its importer reads.

What is timed, from the write of the file to the line with the run's result:
  hmr-serve test  the session's summary line (it watches);
  ptw             pytest's `N passed in ...` line of the run ptw starts (`--delay 0`);
  testmon         `pytest --testmon`, started right after the save, to its exit (a warm
                  .testmondata from a first run);
  pytest          a full `pytest` run, started right after the save, to its exit.
The tools take turns (a different one first each round) so slow moments of the shared machine
spread over all of them; medians are reported.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    fmt_ms,
    fmt_ratio,
    machine_info,
    markdown_table,
    median,
    parse_bench_args,
    say,
    write_results,
)

MODULES = 300
LEAF_IMPORTER = 7  # app/m007 imports app/leaf
TOOLS = ("hmr-serve", "ptw", "testmon", "pytest")
EDITS = ("body", "value")
SUMMARY = {
    "hmr-serve": re.compile(r"app/leaf\.py changed → .* in \S+ m?s"),
    "ptw": re.compile(r"\d+ passed.* in [\d.]+s"),
}


# -- the project -------------------------------------------------------------------------------


def module_source(index: int) -> str:
    deps = sorted({index // 2, index // 3} - {index}) if index else []
    lines = [f"from app import m{d:03d}" for d in deps]
    if index == LEAF_IMPORTER:
        lines.append("from app import leaf")
    lines += ["", f"K = {index % 7 + 1}", "", "", "def g(x):", "    return x * K", "", ""]
    calls = [f"m{d:03d}.g(x)" for d in deps]
    if index == LEAF_IMPORTER:
        calls.append("leaf.g(x)")
    lines += ["def f(x):", f"    return x + {index} + " + (" + ".join(calls) or "0"), ""]
    return "\n".join(lines)


def test_source(index: int) -> str:
    deps = sorted({index // 2, index // 3} - {index}) if index else []
    expected = " + ".join(f"m{d:03d}.g(2)" for d in deps) or "0"
    imports = ", ".join([f"m{index:03d}", *(f"m{d:03d}" for d in deps)])
    if index == LEAF_IMPORTER:
        imports += ", leaf"
        expected += " + leaf.g(2)"
    return (
        f"from app import {imports}\n\n\n"
        f"def test_f():\n    assert m{index:03d}.f(2) == 2 + {index} + {expected}\n\n\n"
        f"def test_g():\n    assert m{index:03d}.g(2) == 2 * m{index:03d}.K\n"
    )


CONFTEST = """\
import time

import pytest


@pytest.fixture(scope="session", autouse=True)
def database():
    time.sleep({seconds})
    return "ready"
"""

VALUES = ("3", "3.0")  # the value edit flips K
BODIES = ("x * K", "K * x")  # the body edit flips g's expression


def leaf_source(state: dict[str, int]) -> str:
    """app/leaf.py for the current flips; a trailing comment of varying length makes every
    version differ in size too (Python trusts a cached .pyc whose mtime and size match)."""
    return (
        f"K = {VALUES[state['value']]}\n\n\ndef g(x):\n    return {BODIES[state['body']]}\n"
        + "#" * (state["edits"] % 7 + 1)
        + "\n"
    )


def generate(root: Path, fixture_seconds: float) -> None:
    (root / "app").mkdir(parents=True)
    (root / "tests").mkdir()
    (root / "app/__init__.py").write_text("")
    for index in range(MODULES):
        (root / f"app/m{index:03d}.py").write_text(module_source(index))
        (root / f"tests/test_m{index:03d}.py").write_text(test_source(index))
    (root / "app/leaf.py").write_text(leaf_source({"value": 0, "body": 0, "edits": 0}))
    (root / "tests/conftest.py").write_text(CONFTEST.format(seconds=fixture_seconds))
    ini = "[pytest]\ntestpaths = tests\npythonpath = .\n"
    if importlib.util.find_spec("pytest_asyncio") is not None:
        ini += "asyncio_default_fixture_loop_scope = function\n"  # else it warns each run
    (root / "pytest.ini").write_text(ini)


def edit(root: Path, kind: str, state: dict[str, int]) -> None:
    """Flips one part of app/leaf.py and rewrites the whole file."""
    state[kind] = 1 - state[kind]
    state["edits"] += 1
    (root / "app/leaf.py").write_text(leaf_source(state))


# -- the tools ---------------------------------------------------------------------------------


class Watcher:
    """A watching tool's process; its output is read in a thread."""

    def __init__(self, argv: list[str], cwd: Path) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONDONTWRITEBYTECODE="1")
        self.proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            text=True,
        )
        self.lines: list[tuple[float, str]] = []
        self._cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append((time.perf_counter(), line.rstrip("\n")))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def wait(self, pattern: re.Pattern[str], after: float, timeout: float) -> float:
        """When the first line matching `pattern` written after `after` arrived."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for at, line in self.lines:
                    if at >= after and pattern.search(line):
                        return at
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    tail = "\n".join(line for _, line in self.lines[-30:])
                    raise SystemExit(f"no {pattern.pattern!r} within {timeout} s:\n{tail}")
                self._cond.wait(min(left, 0.5))

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


def run_to_exit(argv: list[str], cwd: Path, timeout: float) -> float:
    """Seconds from now until the process exits (it must pass)."""
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    return elapsed


def python_bin(name: str) -> str:
    candidate = Path(sys.executable).parent / name
    if not candidate.exists():
        raise SystemExit(f"{name} is not installed in this venv: pip install {name}")
    return str(candidate)


# -- the benchmark -----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="edits per kind and tool")
    parser.add_argument("--fixture-seconds", type=float, default=3.0)
    parser.add_argument("--tools", default=",".join(TOOLS), help="comma-separated subset")
    parser.add_argument("--quick", action="store_true", help="2 rounds, a 1 s fixture")
    args = parse_bench_args(parser, argv)
    if args.quick:
        args.rounds, args.fixture_seconds = 2, 1.0
    tools = [t for t in args.tools.split(",") if t]
    for name in tools:
        if name not in TOOLS:
            raise SystemExit(f"unknown tool {name!r} (known: {', '.join(TOOLS)})")
    load = [os.getloadavg()[0]]
    workdir = Path(tempfile.mkdtemp(prefix="hmr-bench-testmode-"))
    roots = {name: workdir / name for name in tools}
    states = {name: {"value": 0, "body": 0, "edits": 0} for name in tools}
    for root in roots.values():
        generate(root, args.fixture_seconds)
    say(f"generated {len(roots)} copies of the project under {workdir}")
    timeout = 120 + 10 * args.fixture_seconds
    first_run = float("nan")
    python = sys.executable
    watchers: dict[str, Watcher] = {}
    times: dict[tuple[str, str], list[float]] = {(t, k): [] for t in tools for k in EDITS}
    try:
        if "hmr-serve" in tools:
            spawned = time.perf_counter()
            watchers["hmr-serve"] = Watcher(
                [python, "-m", "hmr_serve.testing", "--no-keys", "-q", "-p", "no:cacheprovider"],
                roots["hmr-serve"],
            )
        if "ptw" in tools:
            argv = [python_bin("ptw"), "--delay", "0", "--runner", python_bin("pytest")]
            argv += [str(roots["ptw"]), "-q", "-p", "no:cacheprovider"]
            watchers["ptw"] = Watcher(argv, roots["ptw"])
        if "testmon" in tools:
            say("testmon: first run (builds .testmondata)")
            run_to_exit([python, "-m", "pytest", "-q", "--testmon"], roots["testmon"], timeout)
        ready = re.compile(r"watching for changes|\[ptw\]|Waiting for file changes")
        for name, watcher in watchers.items():
            if name == "hmr-serve":
                first_run = watcher.wait(ready, 0, timeout) - spawned
            else:
                time.sleep(1.0)  # ptw watches once started; it prints nothing until a change
        say("all tools ready")
        rounds = [(kind, r) for r in range(args.rounds) for kind in EDITS]
        for number, (kind, r) in enumerate(rounds):
            order = tools[number % len(tools) :] + tools[: number % len(tools)]
            for name in order:
                root = roots[name]
                time.sleep(0.3)  # let the previous edit's events settle
                if name in watchers:
                    started = time.perf_counter()
                    edit(root, kind, states[name])
                    at = watchers[name].wait(SUMMARY[name], started, timeout)
                    elapsed = at - started
                elif name == "testmon":
                    edit(root, kind, states[name])
                    argv = [python, "-m", "pytest", "-q", "--testmon"]  # it needs the cache
                    elapsed = run_to_exit(argv, root, timeout)
                else:
                    edit(root, kind, states[name])
                    argv = [python, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
                    elapsed = run_to_exit(argv, root, timeout)
                times[(name, kind)].append(elapsed * 1000)
                say(f"{kind} edit #{r + 1}: {name} {fmt_ms(elapsed * 1000)}")
        summaries = _summaries(watchers.get("hmr-serve"))
    finally:
        for watcher in watchers.values():
            watcher.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    load.append(os.getloadavg()[0])
    extra = {"first_run": first_run if "hmr-serve" in tools else float("nan"), "load": load}
    body = report(tools, times, args, summaries, extra)
    print(body)
    write_results(args, "Test mode", body)


_SUMMARY_PARTS = re.compile(
    r"→ (\d+) of \d+ tests affected: .* in (\S+) (ms|s) \(reload (\S+) (ms|s)\)"
)


def _summaries(watcher: Watcher | None) -> dict[str, list[float]]:
    """From hmr-serve's summary lines: how many tests each edit ran, how long they took, and
    how long the reload took (ms)."""
    found: dict[str, list[float]] = {"affected": [], "tests": [], "reload": []}
    if watcher is None:
        return found
    for _, line in watcher.lines:
        match = _SUMMARY_PARTS.search(line)
        if match:
            count, run, run_unit, reload_, reload_unit = match.groups()
            found["affected"].append(float(count))
            found["tests"].append(float(run) * (1000 if run_unit == "s" else 1))
            found["reload"].append(float(reload_) * (1000 if reload_unit == "s" else 1))
    return found


def report(
    tools: list[str],
    times: dict[tuple[str, str], list[float]],
    args: argparse.Namespace,
    summaries: dict[str, list[float]],
    extra: dict[str, float],
) -> str:
    rows = []
    for kind in EDITS:
        base = median(times.get(("hmr-serve", kind), []))
        row: list[object] = [f"{kind} edit of app/leaf.py"]
        for name in tools:
            value = median(times[(name, kind)])
            cell = fmt_ms(value)
            if name != "hmr-serve" and base == base:
                cell += f" ({fmt_ratio(value / base)})"
            row.append(cell)
        rows.append(row)
    table = markdown_table(["save → summary (median)", *tools], rows)
    lines = [
        machine_info(["pytest", "pytest-watcher", "pytest-testmon", "watchdog"]),
        "",
        f"{MODULES} modules, {2 * MODULES} tests, a {args.fixture_seconds:g} s autouse session "
        f"fixture; {args.rounds} edits of each kind per tool, tools in turns. Ratios: times "
        "hmr-serve's.",
        "",
        table,
        "",
    ]
    if summaries.get("affected"):
        lines.append(
            f"hmr-serve ran {min(summaries['affected']):.0f}-{max(summaries['affected']):.0f} "
            f"tests per edit; of its save → summary time, the tests' run took "
            f"{fmt_ms(median(summaries['tests']))} and the reload "
            f"{fmt_ms(median(summaries['reload']))} (medians); the rest is the watcher's "
            "debounce, collecting again, selecting and printing."
        )
    first = extra.get("first_run", float("nan"))
    if first == first and ("pytest", "body") in times:
        full = median(times[("pytest", "body")] + times[("pytest", "value")])
        lines.append(
            f"First run of `hmr-serve test` (start → summary, every test recorded): "
            f"{fmt_ms(first * 1000)}; a plain full `pytest` run: {fmt_ms(full)}."
        )
    lines.append(
        "The machine's load average (1 min) before and after: "
        + " and ".join(f"{x:.1f}" for x in extra["load"])
        + "."
    )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
