"""Edit → first response when a save concerns few of many importers (issue 15's f and g).

hmr-serve against `uvicorn --reload` and hmr 0.7, the fine-grained reloader.

For each app size, a generated app (one copy per server, so one server's edits never reach
another) is served by hmr-serve, `uvicorn --reload` (up to 1,000 modules: each of its restarts
imports them all) and hmr at the same time. hmr serves ASGI
apps through its own front end, `uvicorn-hmr`, which needs Python 3.12+: it runs from its own
venv (bench/.work/venv-hmr, made by `make bench` or `make bench-hmr-venv` from
bench/requirements-hmr.txt). The edits are made in turns, server after server, so slow moments
of the noisy machine are spread over all of them. Each server also gets a steady background
client that counts the requests a user would have seen fail.

The generated app (package `benchapp`):
  cfg             constants: A, read at import by every m… module, and B, read by two.
  m0000 … m{N-1}  `from benchapp.cfg import A`, VALUE = A + i, and a fixed amount of CPU work
                  at import (~3 ms, calibrated for each interpreter). Two of them, the readers
                  (m{N/3} and m{2N/3}), also import B and define B_VIEW from it.
  loader          reads data.json at import (Path.read_text) and defines GREETING from it.
  app             imports every m… module, both readers' B_VIEW and loader's GREETING, and
                  answers them as JSON (a raw ASGI app).

The edits:
  f  B changes in cfg.py. What differs from the running process after it: cfg, the two
     readers and app (which imported their B_VIEW), 4 of N + 3 modules. Done when a response
     shows both readers' new B_VIEW.
  g  the greeting in data.json changes: loader and app differ. Done when a response shows it.

A server that shows no edit of a kind within its time limit (scaled to the app and to its own
cold start, which tells how busy the shared machine is), or hmr-serve logging that it gave up
on the reload, is marked "no reaction" for that kind and gets no more edits of it (each would
only wait out the limit again).

Every edit rewrites the whole file and makes it grow by at least one byte: Python validates a
cached .pyc by the source's mtime (whole seconds) and size, so a same-size edit within one
second could otherwise let a restarted worker import the stale bytecode.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    BENCH_DIR,
    VENV_BIN,
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

EDITS = {
    "f": "constant read by 2 of N importers",
    "g": "data file read at import",
}
KEYS = {"f": ("b_first", "b_second"), "g": ("greeting",)}  # response keys each edit changes
# Modules that differ from a fresh process after the edit: cfg, both readers, app; loader, app.
MINIMAL = {"f": 4, "g": 2}
SERVERS = ("hmr-serve", "uvicorn", "hmr")
HMR_VENV = BENCH_DIR / ".work" / "venv-hmr"
POLL_INTERVAL = 0.002  # how often the measuring client asks after an edit (resolution)
# The measuring client gives up on one request after this and asks again on a new connection:
# a request that arrives while uvicorn-hmr rebinds its server can hang (over 100 s seen with
# 0.1.1.8), and one hung request must not pass for a server that never reacted.
REQUEST_TIMEOUT = 2.0
# hmr-serve's log line that ends a reload, whichever way it ended.
RELOAD_OUTCOME = r"reloaded \d+ modules?|reload (failed|abandoned|crashed)|restarting the process"
GAVE_UP = re.compile(r"reload (failed|abandoned|crashed)")
RELOADED = re.compile(r"reloaded (\d+) modules? in ([\d.]+) ms")
UNAFFECTED = re.compile(r"\((\d+) importers? unaffected\)")
HMR_RERUN = re.compile(r"Reloading module '([^']+)'")  # uvicorn-hmr, once per re-execution

# --- The generated app ----------------------------------------------------------------------

# The work runs in a function called at import, not in a loop at module level: hmr executes
# module code with a reactive mapping as its namespace, where every global read and write of
# such a loop would be tracked, costing many times 3 ms. A function's locals are plain for all.
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

busy, ms = sys.argv[1], float(sys.argv[2])
probe = 10_000
code = compile(busy.format(iterations=probe, ms=ms), "<calibrate>", "exec")
best = float("inf")
for _ in range(101):  # the fastest run is the least disturbed one (short runs: fewer preemptions)
    started = time.perf_counter()
    exec(code, {})
    best = min(best, time.perf_counter() - started)
print(max(1, round(probe * ms / 1000 / best)))
"""

CFG = """\
\"\"\"Constants: A is read at import by every m… module, B by two of them (edit f).\"\"\"
A = 1
B = {b!r}
"""

MODULE = """\
\"\"\"Generated module {i} of {n}.\"\"\"
from benchapp.cfg import {names}

VALUE = A + {i}
{extra}
{busy}"""

LOADER = """\
\"\"\"Reads data.json at import (edit g changes it).\"\"\"
import json
from pathlib import Path

GREETING = json.loads((Path(__file__).parent / "data.json").read_text())["greeting"]
"""

APP = """\
\"\"\"Imports every module; answers the readers' B_VIEW and the loader's GREETING.\"\"\"
import json

{imports}
from benchapp.{first} import B_VIEW as B_FIRST
from benchapp.{second} import B_VIEW as B_SECOND
from benchapp.loader import GREETING


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
        {{"b_first": B_FIRST, "b_second": B_SECOND, "greeting": GREETING}}
    ).encode()
    await send({{"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]}})
    await send({{"type": "http.response.body", "body": body}})
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


def mod(i: int) -> str:
    return f"m{i:04d}"


class App:
    """One copy of the generated app, and the edits made to it."""

    def __init__(self, root: Path, n: int, iterations: int, ms: float):
        self.pkg = root / "benchapp"
        self.readers = (n // 3, 2 * n // 3)
        self.values = {"b": "b-0", "greeting": "g-0"}
        self.saves: dict[str, int] = defaultdict(int)
        self.pkg.mkdir(parents=True)
        (self.pkg / "__init__.py").write_text("")
        busy = BUSY.format(iterations=iterations, ms=ms)
        for i in range(n):
            reader = i in self.readers
            text = MODULE.format(
                i=i,
                n=n,
                names="A, B" if reader else "A",
                extra=f'B_VIEW = f"{{B}}/{i}"\n' if reader else "",
                busy=busy,
            )
            (self.pkg / f"{mod(i)}.py").write_text(text)
        (self.pkg / "loader.py").write_text(LOADER)
        imports = "\n".join(f"from benchapp import {mod(i)}  # noqa: F401" for i in range(n))
        first, second = (mod(i) for i in self.readers)
        (self.pkg / "app.py").write_text(APP.format(imports=imports, first=first, second=second))
        self.write("cfg.py")
        self.write("data.json")

    def write(self, name: str) -> None:
        """(Re)writes an edited file from the current values; each save appends a longer
        trailer, so the file always grows (see the module docstring)."""
        self.saves[name] += 1
        pad = "." * self.saves[name]
        if name == "cfg.py":
            text = CFG.format(b=self.values["b"]) + f"# save {self.saves[name]} {pad}\n"
        else:
            text = json.dumps({"greeting": self.values["greeting"], "save": pad}) + "\n"
        (self.pkg / name).write_text(text)

    def edit(self, kind: str, seq: int) -> None:
        if kind == "f":
            self.values["b"] = f"b-{seq}"
            self.write("cfg.py")
        else:
            self.values["greeting"] = f"g-{seq}"
            self.write("data.json")

    def expected(self) -> dict[str, str]:
        """What a fresh process serves for the files as they are now."""
        b = self.values["b"]
        first, second = self.readers
        return {"b_first": f"{b}/{first}", "b_second": f"{b}/{second}",
                "greeting": self.values["greeting"]}  # fmt: skip


# --- hmr ------------------------------------------------------------------------------------

# uvicorn-hmr has no option to turn uvicorn's access log off; every other server here runs
# without one (100 background requests a second, 500 while polling, would only add noise).
HMR_LAUNCHER = """\
import sys

import uvicorn.config

_init = uvicorn.config.Config.__init__


def _without_access_log(self, *args, **kwargs):
    kwargs.setdefault("access_log", False)
    _init(self, *args, **kwargs)


uvicorn.config.Config.__init__ = _without_access_log
from uvicorn_hmr import app

sys.argv[0] = "uvicorn-hmr"
app()
"""

HMR_VERSIONS = """\
import platform
from importlib import metadata

import uvicorn_hmr  # noqa: F401

print(platform.python_version(), metadata.version("hmr"), metadata.version("uvicorn-hmr"))
"""


@dataclass
class Hmr:
    """The hmr venv: its interpreter and versions, or why it cannot be used."""

    python: str | None
    about: str  # versions, or the reason it is skipped

    @classmethod
    def find(cls, venv: Path) -> Hmr:
        python = venv / "bin" / "python"
        if not python.exists():
            return cls(None, f"skipped: no venv at {venv} (`make bench-hmr-venv` makes one)")
        out = subprocess.run(
            [str(python), "-c", HMR_VERSIONS], capture_output=True, text=True, timeout=60
        )
        if out.returncode != 0:
            reason = (out.stderr.strip().splitlines() or ["?"])[-1]
            return cls(None, f"skipped: {venv} cannot import uvicorn_hmr ({reason})")
        py, hmr, front = out.stdout.split()
        return cls(str(python), f"hmr {hmr} served by uvicorn-hmr {front} on Python {py}")


# --- Servers and measurement ----------------------------------------------------------------


def make_server(name: str, root: Path, logs: Path, hmr: Hmr) -> Server:
    port = free_port()
    target = "benchapp.app:app"
    argv = {
        "hmr-serve": [tool("hmr-serve"), target, "--port", str(port), "--app-dir", str(root),
                      "--no-access-log"],
        # uvicorn watches *.py only unless told: a user who wants data edits picked up says so.
        "uvicorn": [tool("uvicorn"), target, "--port", str(port), "--app-dir", str(root),
                    "--reload", "--reload-dir", str(root), "--reload-include", "*.json",
                    "--no-access-log"],
        "hmr": [str(hmr.python), "-c", HMR_LAUNCHER, target, "--host", "127.0.0.1",
                "--port", str(port), "--reload-include", str(root)],
    }[name]  # fmt: skip
    return Server(
        name=name,
        argv=argv,
        port=port,
        cwd=root,  # uvicorn-hmr finds the app module relative to the working directory
        # Bytecode caching on, as on a developer's machine (some environments turn it off).
        env={"PYTHONDONTWRITEBYTECODE": None},
        log_path=logs / f"{name}.log",
    )


@dataclass
class Sample:
    server: str
    kind: str
    ms: float | None  # None: no new value within the time limit
    mismatch: str  # what the final answer got wrong ("" when nothing)
    failed: int  # background requests refused, reset, answered with 5xx or hung
    hung: int = 0  # of which: not answered within the server's time limit
    modules: int | None = None  # re-executed, from the server's log (hmr-serve, hmr)
    reruns: int | None = None  # hmr: re-executions (a module can run twice in one reload)
    unaffected: int | None = None  # hmr-serve: importers it spared, from its log line
    log_ms: float | None = None  # hmr-serve: edit → `reloaded` line
    self_ms: float | None = None  # hmr-serve: duration in its own log line
    waited: float = 0.0  # seconds from the edit to its new value, or to giving up
    note: str = ""  # no reaction: what the server logged about the edit


class Target:
    """A running server together with its app copy and background client."""

    def __init__(self, name: str, server: Server, app: App, ctx) -> None:
        self.name, self.server, self.app, self.ctx = name, server, app, ctx
        # How long an edit may take to show, and a background request to be answered, before
        # it counts as never: set once the server is up (see start_client).
        self.timeout = 0.0
        self.patience = 0.0
        self.stop = ctx.Event()
        self.counters = ctx.Array("d", 5)
        self.client = None
        self.no_reaction: set[str] = set()  # edit kinds this server never showed

    def start_client(self, timeout: float, patience: float) -> None:
        self.timeout, self.patience = timeout, patience
        self.client = self.ctx.Process(
            target=background_client,
            args=(self.server.port, self.stop, self.counters, patience),
            daemon=True,
        )
        self.client.start()

    def stop_client(self) -> None:
        self.stop.set()
        if self.client is not None:
            self.client.join(5)
            if self.client.is_alive():
                self.client.kill()

    def failures(self) -> tuple[int, int]:
        """Background requests so far that failed, and that hung (part of the failed)."""
        return int(self.counters[1]), int(self.counters[4])

    def failures_since(self, since: float, before: tuple[int, int]) -> tuple[int, int]:
        """Background failures and hangs since `before` was read at `since`, once the
        request in flight (if it started after `since`) has ended: a hung request then
        counts for the edit it hung in, not for a later one."""
        in_flight = self.counters[3]
        if in_flight >= since:
            give_up = in_flight + self.patience + 1
            while self.counters[3] == in_flight and time.monotonic() < give_up:
                time.sleep(0.02)
        now = self.failures()
        return now[0] - before[0], now[1] - before[1]

    def get(self, timeout: float) -> dict:
        status, body = http_get(self.server.port, "/", timeout=timeout)
        if status != 200:
            raise OSError(f"status {status}")
        return json.loads(body)

    def settled(self, timeout: float) -> dict:
        """The first answer within `timeout`: a reloader that restarts its server (hmr does
        when the app module re-runs) may still be rebinding after the previous edit."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.get(min(REQUEST_TIMEOUT, max(0.1, deadline - time.monotonic())))
            except Exception:
                if time.monotonic() > deadline or not self.server.alive():
                    raise
                time.sleep(0.05)


def measure(t: Target, kind: str, seq: int) -> Sample:
    timeout = t.timeout
    t.settled(timeout)
    failures0 = t.failures()
    started = time.monotonic()
    t.app.edit(kind, seq)
    want = t.app.expected()

    ms = None
    deadline = started + timeout
    next_log_check = started
    while time.monotonic() < deadline:
        try:
            response = t.get(min(REQUEST_TIMEOUT, max(0.1, deadline - time.monotonic())))
            if all(response[k] == want[k] for k in KEYS[kind]):
                ms = (time.monotonic() - started) * 1000
                break
        except Exception:  # the server is restarting; the background client counts these
            pass
        if t.name == "hmr-serve" and time.monotonic() >= next_log_check:
            # It said it keeps the previous code until the next save: no use waiting on.
            if any(GAVE_UP.search(line) for line in t.server.lines_since(started)):
                break
            next_log_check = time.monotonic() + 0.1
        time.sleep(POLL_INTERVAL)

    sample = Sample(t.name, kind, ms, mismatch="", failed=0, waited=time.monotonic() - started)
    if t.name == "hmr-serve":
        try:
            # No new value: a reload line, if any, is there by now.
            wait = 5 if ms is not None else 0
            at, m = t.server.wait_line(RELOAD_OUTCOME, started, wait)
            sample.log_ms = (at - started) * 1000
            if (done := RELOADED.search(m.string)) is not None:
                sample.modules, sample.self_ms = int(done[1]), float(done[2])
            if (spared := UNAFFECTED.search(m.string)) is not None:
                sample.unaffected = int(spared[1])
        except TimeoutError:
            pass
    if ms is None:
        t.no_reaction.add(kind)
        logged = [line.strip() for line in t.server.lines_since(started) if line.strip()]
        errors = [line for line in logged if "ERROR" in line or "Traceback" in line]
        sample.note = (errors or logged or ["(nothing logged)"])[0][:400]
    # Correctness: once the reload is over, what is served must be what a fresh process
    # serves, apart from the edits of a kind this server was already found not to show.
    compared = [k for k in want if not any(k in KEYS[g] for g in t.no_reaction)]
    try:
        final = t.settled(timeout)
        sample.mismatch = ", ".join(
            f"{k} {final[k]!r}, not {want[k]!r}" for k in compared if final[k] != want[k]
        )
    except Exception as e:
        sample.mismatch = f"no answer: {e!r}"
    time.sleep(0.2)  # let late failures and log lines of this edit land in its own count
    sample.failed, sample.hung = t.failures_since(started, failures0)
    if t.name == "hmr":
        reruns = [m[1] for line in t.server.lines_since(started) if (m := HMR_RERUN.search(line))]
        sample.modules, sample.reruns = len(set(reruns)), len(reruns)
    return sample


def run_size(n: int, servers: list[str], reps: int, module_ms: float, hmr: Hmr) -> dict:
    pythons = {name: str(hmr.python) if name == "hmr" else str(VENV_BIN / "python")
               for name in servers}  # fmt: skip
    iterations = {py: calibrate(py, module_ms) for py in set(pythons.values())}
    logs = log_dir(f"propagation-{n}")
    work = Path(tempfile.mkdtemp(prefix=f"hmr-bench-propagation-{n}-"))
    ctx = multiprocessing.get_context("spawn")  # no fork of a process that runs threads
    say(f"[propagation] {n} modules: generating apps in {work}, server logs in {logs}")
    targets = []
    for name in servers:
        root = work / name
        app = App(root, n, iterations[pythons[name]], module_ms)
        targets.append(Target(name, make_server(name, root, logs, hmr), app, ctx))

    # Bounded waits, scaled to the app (a restart imports every module) and to how busy the
    # shared machine is now, as each server's own start-up shows (hmr's is the slowest: every
    # module runs through its reactive namespace).
    cold = n * module_ms / 1000
    ready_timeout = 60 + 20 * cold
    samples: list[Sample] = []
    startup: dict[str, float] = {}
    try:
        with running([t.server for t in targets], ready_timeout):
            for t in targets:
                startup[t.name] = t.server.ready_after or float("nan")
                say(f"[propagation] {t.name} ready after {startup[t.name]:.1f} s")
            for t in targets:
                # A request waits at most for a whole restart, which costs less than a cold
                # start of all servers at once.
                ready = t.server.ready_after or ready_timeout
                t.start_client(timeout=10 + 4 * cold + 2 * ready, patience=10 + ready)
            time.sleep(0.5)
            seq = 0
            for rep in range(reps):
                for kind in EDITS:
                    # A different server goes first in each repetition.
                    order = targets[rep % len(targets) :] + targets[: rep % len(targets)]
                    for t in order:
                        if kind in t.no_reaction:
                            continue
                        seq += 1
                        s = measure(t, kind, seq)
                        samples.append(s)
                        shown = fmt_ms(s.ms) if s.ms is not None else (
                            f"NO REACTION in {s.waited:.0f} s, not edited again")  # fmt: skip
                        say(
                            f"[propagation] n={n} rep {rep + 1}/{reps} {kind} {t.name:9s} "
                            f"{shown}{f'  MISMATCH ({s.mismatch})' if s.mismatch else ''}"
                            f"{f'  failed={s.failed}' if s.failed else ''}"
                            f"{f' (hung={s.hung})' if s.hung else ''}"
                            f"{f'  modules={s.modules}' if s.modules is not None else ''}"
                        )
            background = {t.name: list(t.counters) for t in targets}
    finally:
        for t in targets:
            t.stop_client()
        shutil.rmtree(work, ignore_errors=True)
    return {
        "n": n,
        "samples": samples,
        "startup": startup,
        "background": background,
        "iterations": {name: iterations[py] for name, py in pythons.items()},
        "timeouts": {t.name: (t.timeout, t.patience) for t in targets},
    }


# --- Report ---------------------------------------------------------------------------------


def spread(values: set[int]) -> str:
    if not values:
        return "–"
    lo, hi = min(values), max(values)
    return f"{lo}" if lo == hi else f"{lo}–{hi}"


def modules_cell(name: str, group: list[Sample], n: int) -> str:
    if name == "uvicorn":
        return f"all {n + 3} (restart)"
    shown = [s for s in group if s.ms is not None]
    counts = {s.modules for s in shown if s.modules is not None}
    runs = {s.reruns for s in shown if s.reruns is not None}
    # hmr can run a module twice in one reload (once per changed name it read).
    return spread(counts) + (f" ({spread(runs)} runs)" if runs and runs != counts else "")


def failed_cell(group: list[Sample]) -> str:
    hung = sum(s.hung for s in group)
    return f"{sum(s.failed for s in group)}" + (f" ({hung} hung)" if hung else "")


def report(result: dict, servers: list[str], module_ms: float, missing: list[str]) -> str:
    """One size's section; `missing`: why a server asked for is not in it."""
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
                fmt_ms(med) if times else "no reaction",
                fmt_ms(percentile(times, 90)) if times else "–",
                fmt_ratio(med / base) if name != "hmr-serve" else "1×" if times else "–",
                modules_cell(name, group, n),
                failed_cell(group),
                f"{sum(bool(s.mismatch) for s in group)}/{len(group)}",
                f"{sum(s.ms is None for s in group)}/{len(group)}",
            ])  # fmt: skip
    main = markdown_table(
        ["edit", "server", "median", "p90", "vs hmr-serve", "modules re-executed",
         "failed requests", "mismatches", "no reaction"],
        rows,
    )  # fmt: skip
    notes = "\n".join(
        f"- ({s.kind}) {s.server}: the response still showed the old value after "
        f"{s.waited:.0f} s; its log after the edit: `{s.note}`"
        for s in samples
        if s.ms is None
    )
    if notes:
        main += f"\n\nNo reaction (that server got no more edits of that kind):\n\n{notes}"

    hmr_rows = []
    for kind, label in EDITS.items():
        group = by[("hmr-serve", kind)]
        unaffected = sorted({s.unaffected for s in group if s.unaffected is not None})
        hmr_rows.append([
            f"({kind}) {label}",
            MINIMAL[kind],
            modules_cell("hmr-serve", group, n),
            ", ".join(map(str, unaffected)) or "–",
            fmt_ms(median([s.self_ms for s in group if s.self_ms is not None])),
            fmt_ms(median([s.log_ms for s in group if s.log_ms is not None])),
            fmt_ms(median([s.ms for s in group if s.ms is not None])),
        ])  # fmt: skip
    detail = markdown_table(
        ["edit", "minimal", "modules re-executed", "importers unaffected", "reload (own log)",
         "edit → log line", "edit → new response"],
        hmr_rows,
    )  # fmt: skip

    starts = ", ".join(f"{k} {v:.1f} s" for k, v in result["startup"].items())
    bg = ", ".join(
        f"{k} {int(v[0])} requests / {int(v[1])} failed ({int(v[4])} hung) / longest wait "
        f"{fmt_ms(v[2])}"
        for k, v in result["background"].items()
    )
    loops = ", ".join(f"{k} {v}" for k, v in result["iterations"].items())
    limits = ", ".join(f"{k} {v[0]:.0f} s / {v[1]:.0f} s" for k, v in result["timeouts"].items())
    reps = max((len(g) for g in by.values()), default=0)
    return (
        f"### {n} importers\n\n"
        f"{n} modules importing cfg (2 of them read B), ~{module_ms:g} ms of CPU each at "
        f"import (loop iterations per interpreter: {loops}); up to {reps} edits of each kind "
        f"per server, servers in turns. Cold start (spawn → first answer, all servers "
        f"starting at once): {starts}. Time limits for an edit to show (10 s + 4 × the "
        f"modules' import work + 2 × the server's cold start) and for a background request "
        f"before it counts as hung (10 s + the cold start): {limits}.\n\n{main}\n\n"
        f"hmr-serve in detail (minimal = the modules that differ from a fresh process after "
        f"the edit):\n\n{detail}\n\n"
        f"Background client (one GET every 10 ms on a fresh connection, whole run): {bg}.\n"
        + "".join(f"\n{why}\n" for why in missing)
    )


def main(argv: list[str] | None = None) -> str:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="200,2000", help="importers of cfg (default: 200,2000)")
    p.add_argument("--reps", type=int, default=5, help="edits of each kind per server")
    p.add_argument(
        "--quick", action="store_true", help="200 importers, 3 edits each; RESULTS.md untouched"
    )
    p.add_argument("--servers", default=",".join(SERVERS), help="comma-separated subset")
    p.add_argument(
        "--uvicorn-max-size",
        type=int,
        default=1000,
        help="skip uvicorn for bigger apps: each of its restarts imports every module, "
        "~N × 3 ms per edit (default: 1000)",
    )
    p.add_argument("--module-ms", type=float, default=3.0, help="CPU per module import")
    p.add_argument(
        "--hmr-venv", type=Path, default=HMR_VENV, help=f"uvicorn-hmr's venv (default: {HMR_VENV})"
    )
    args = parse_bench_args(p, argv)
    sizes = [200] if args.quick else [int(s) for s in args.sizes.split(",")]
    reps = 3 if args.quick else args.reps
    wanted = [s for s in args.servers.split(",") if s]
    if "hmr-serve" not in wanted or any(s not in SERVERS for s in wanted):
        p.error(f"--servers: a subset of {','.join(SERVERS)} that includes hmr-serve")
    hmr = Hmr.find(args.hmr_venv) if "hmr" in wanted else Hmr(None, "not asked for")
    missing = []
    if "hmr" in wanted and hmr.python is None:
        say(f"[propagation] hmr {hmr.about}")
        missing.append(f"hmr {hmr.about}.")
        wanted.remove("hmr")

    sections = []
    for n in sizes:
        servers, absent = wanted, list(missing)
        if "uvicorn" in wanted and n > args.uvicorn_max_size:
            servers = [s for s in wanted if s != "uvicorn"]
            absent.append(
                f"uvicorn skipped above {args.uvicorn_max_size} modules (`--uvicorn-max-size`): "
                "each of its restarts imports every module."
            )
        result = run_size(n, servers, reps, args.module_ms, hmr)
        section = report(result, servers, args.module_ms, absent)
        print(section, flush=True)
        sections.append(section)

    body = "\n".join(
        [
            machine_info(["hmr-serve", "uvicorn", "watchfiles"]) + f" hmr: {hmr.about}.",
            "",
            "Time from an edit being written to the first response that shows it: (f) a new "
            "value of B in cfg.py, read at import by 2 of the N modules that import cfg (all "
            "read A); (g) a new value in data.json, read at import by one module. Commands: "
            "`hmr-serve benchapp.app:app --no-access-log`, `uvicorn benchapp.app:app --reload "
            "--reload-dir DIR --reload-include '*.json' --no-access-log`, `uvicorn-hmr "
            "benchapp.app:app --reload-include DIR` (access log turned off in uvicorn's "
            "Config). `modules re-executed`: from hmr-serve's log line and uvicorn-hmr's "
            "`Reloading module` lines. `failed requests`: background requests refused, reset, "
            "timed out or answered with 5xx during that edit's measurement. `mismatches`: "
            "edits after which the served content was not what a fresh process serves. `no "
            "reaction`: edits never shown within the time limit (a server gets no more edits "
            "of that kind after one). Targets of issue 15: (f) ≤ 20 ms at 200 importers and "
            "still flat at 2,000, (g) ≤ 15 ms.",
            "",
            *sections,
        ]
    )
    write_results(args, "Name-level propagation", body)
    return body


if __name__ == "__main__":
    main()
