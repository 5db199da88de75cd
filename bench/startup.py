"""Cold start of the examples: process spawn → first 200 answer, side by side.

Apps: the examples (examples/fastapi with its simulated 2 s model load, examples/flask,
examples/django) and bench/apps/hello_fastapi.py (FastAPI without any load time, where the cost
of import tracking is not diluted). Servers, one worker each, access logs off:

  hmr-serve             reload on (watcher, import hooks, static pass): what a user runs
  hmr-serve --no-reload the same without them
  uvicorn               without reload; `--interface wsgi` for the WSGI apps
  granian               --interface asgi|wsgi

The target (issue 5): hmr-serve with reload on starts within 1.05× of uvicorn without reload.

Servers start one at a time (a start-up is mostly one busy core; overlapping starts would
measure the scheduler), in turns, a different one first each round, and the medians of the
rounds are reported. Ratios to uvicorn are paired: each round's start divided by uvicorn's in
the same round, then the median of those, because this machine's speed drifts over a run (one
run measured the same server at 800 ms in its first rounds and 500 ms in its last), and a
ratio of medians taken from different rounds measures that drift as much as the servers.
Every server is started once before the timed rounds so that all of them find the bytecode
caches warm, as a developer's machine has them; the caches live in a temporary
PYTHONPYCACHEPREFIX, so the source tree stays clean. Readiness is polled every 5 ms
on fresh connections.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    BENCH_DIR,
    Server,
    competitor_argv,
    fmt_ms,
    free_port,
    http_get,
    log_dir,
    log_slug,
    machine_info,
    markdown_table,
    median,
    parse_bench_args,
    say,
    write_results,
)

ROOT = BENCH_DIR.parent
EXAMPLES = ROOT / "examples"
SERVERS = ("hmr-serve", "hmr-serve --no-reload", "uvicorn", "granian")
BASELINE = "uvicorn"
TARGET = 1.05
POLL_INTERVAL = 0.005
READY_TIMEOUT = 60.0


@dataclass(frozen=True)
class Example:
    label: str
    cwd: Path
    target: str
    interface: str  # asgi | wsgi
    path: str  # answers 200 once the app is up


EXAMPLES_LIST = [
    Example("FastAPI example (2 s model load)", EXAMPLES / "fastapi", "app.main:app", "asgi", "/"),
    Example("FastAPI hello (bench/apps)", BENCH_DIR / "apps", "hello_fastapi:app", "asgi", "/"),
    Example("Flask example", EXAMPLES / "flask", "app:app", "wsgi", "/"),
    Example("Django example", EXAMPLES / "django", "mysite.wsgi:application", "wsgi", "/polls/"),
]


def answers_200(port: int, path: str) -> bool:
    with contextlib.suppress(OSError, http.client.HTTPException):
        return http_get(port, path, timeout=2.0)[0] == 200
    return False


def cold_start(name: str, ex: Example, pycache: Path, logs: Path, tag: str) -> float:
    """Seconds from spawning the server to its first 200 answer on `ex.path`."""
    port = free_port()
    server = Server(
        name=name,
        argv=competitor_argv(name, ex.target, ex.interface, port),
        port=port,
        cwd=ex.cwd,
        env={"PYTHONPYCACHEPREFIX": str(pycache), "PYTHONDONTWRITEBYTECODE": None},
        log_path=logs / f"{ex.cwd.name}-{ex.target.split(':')[0]}-{log_slug(name)}-{tag}.log",
    )
    try:
        server.start()
        deadline = server.started_at + READY_TIMEOUT
        while not answers_200(port, ex.path):
            if not server.alive():
                raise RuntimeError(f"{name} exited during start-up:\n{server.tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name}: no 200 on {ex.path} in {READY_TIMEOUT} s")
            time.sleep(POLL_INTERVAL)
        return time.monotonic() - server.started_at
    finally:
        server.stop()


def run_example(ex: Example, rounds: int, pycache: Path, logs: Path) -> dict[str, list[float]]:
    for name in SERVERS:  # warm-up: bytecode caches, page cache
        cold_start(name, ex, pycache, logs, "warm-up")
    times: dict[str, list[float]] = {name: [] for name in SERVERS}
    for rnd in range(rounds):
        order = SERVERS[rnd % len(SERVERS) :] + SERVERS[: rnd % len(SERVERS)]
        for name in order:
            took = cold_start(name, ex, pycache, logs, f"r{rnd + 1}")
            times[name].append(took)
            took_ms = fmt_ms(took * 1000)
            say(f"[startup] {ex.label:34s} round {rnd + 1}/{rounds} {name:22s} {took_ms}")
    return times


def paired_ratio(times: list[float], base: list[float]) -> float:
    """The median over rounds of each round's start divided by the base server's."""
    return median([t / b for t, b in zip(times, base, strict=True)])


def paired_difference(times: list[float], base: list[float]) -> float:
    return median([t - b for t, b in zip(times, base, strict=True)])


def report(results: dict[Example, dict[str, list[float]]]) -> tuple[str, list[str]]:
    rows, verdicts = [], []
    for ex, times in results.items():
        base = times[BASELINE]
        for i, name in enumerate(SERVERS):
            rows.append([
                ex.label if i == 0 else "",
                name,
                fmt_ms(median(times[name]) * 1000),
                fmt_ms(min(times[name]) * 1000),
                f"{paired_ratio(times[name], base):.2f}",
                f"{paired_difference(times[name], base) * 1000:+.0f} ms",
            ])  # fmt: skip
        ratio = paired_ratio(times["hmr-serve"], base)
        machinery = paired_difference(times["hmr-serve"], times["hmr-serve --no-reload"])
        verdicts.append(
            f"- {ex.label}: hmr-serve (reload on) {ratio:.2f}× uvicorn: "
            + ("within" if ratio <= TARGET else "**misses**")
            + f" the {TARGET}× target; reload machinery {machinery * 1000:+.0f} ms against"
            " --no-reload."
        )
    table = markdown_table(
        ["app", "server", "median", "best", f"vs {BASELINE}", f"− {BASELINE}"], rows
    )
    return table, verdicts


def main(argv: list[str] | None = None) -> str:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=9, help="timed starts per server (default: 9)")
    p.add_argument("--quick", action="store_true", help="2 rounds; RESULTS.md untouched")
    p.add_argument("--apps", help="comma-separated subset of: " + ", ".join(
        e.label for e in EXAMPLES_LIST))  # fmt: skip
    args = parse_bench_args(p, argv)
    rounds = 2 if args.quick else args.rounds
    wanted = [e for e in EXAMPLES_LIST if not args.apps or e.label in args.apps.split(",")]

    logs = log_dir("startup")
    say(f"[startup] server logs in {logs}")
    with tempfile.TemporaryDirectory(prefix="hmr-bench-pycache-") as pycache:
        results = {ex: run_example(ex, rounds, Path(pycache), logs) for ex in wanted}
    table, verdicts = report(results)
    print(table + "\n\n" + "\n".join(verdicts), flush=True)
    body = (
        f"{machine_info(['hmr-serve', 'uvicorn', 'granian', 'fastapi', 'flask', 'django'])}\n\n"
        f"Spawn → first 200 answer, {rounds} timed starts per server after one warm-up start "
        f"each (bytecode caches warm), servers one at a time and in turns, medians. "
        f"`vs {BASELINE}`: the median over rounds of the start divided by uvicorn's in the "
        f"same round (without reload; `--interface wsgi` for the WSGI apps), paired because "
        f"the machine's speed drifts over a run; `− {BASELINE}`: the same for the difference. "
        f"hmr-serve runs with reload on (as a user runs it: file watcher, import hooks, static "
        f"import pass) and with --no-reload. "
        f"Target: hmr-serve ≤ {TARGET}× uvicorn.\n\n{table}\n\n" + "\n".join(verdicts) + "\n"
    )
    write_results(args, "Cold start", body)
    return body


if __name__ == "__main__":
    main()
