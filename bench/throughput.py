"""Hello-world throughput and latency, plus streaming and upload bandwidth, side by side.

Apps (bench/apps): raw ASGI, FastAPI returning JSON, raw WSGI, Flask. For each app, every
competitor is started at once and measured in turns (a different one first each round), so a
noisy moment of the machine does not land on one server only:

  hmr-serve             --no-access-log, reload on: what a user runs
  hmr-serve --no-reload the same without the file watcher and import hooks, for comparison
  uvicorn               uvloop + httptools, --no-access-log, 1 worker; --interface wsgi for
                        the WSGI apps (its own WSGI middleware, requests run on a thread pool)
  granian               1 worker, --interface asgi|wsgi (access log off by default)
  gunicorn              1 sync worker                                           (WSGI only)

Load: `wrk -t2 -c64 -d5s --latency` per server and round; the best and the median of the
rounds' requests/s are reported, and the median of the rounds' p50 / p99 latencies. wrk and
the server share the machine's 2 cores, so absolute numbers are low; the ratios are the point.

Streaming (GET 1 MB sent as 16 × 64 KB chunks) and upload (POST 10 MB, the app reads it all)
run on the raw apps with a Python httpx client on one keep-alive connection; they report MB/s,
which a pure-Python client caps, so they show large gaps rather than exact server limits.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import httpx

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
    running,
    say,
    write_results,
    wrk_version,
)

APPS_DIR = BENCH_DIR / "apps"


@dataclass(frozen=True)
class Scenario:
    label: str
    target: str
    interface: str  # asgi | wsgi
    transfers: bool  # also run the streaming and upload measurements


SCENARIOS = [
    Scenario("raw ASGI", "hello_asgi:app", "asgi", True),
    Scenario("FastAPI JSON", "hello_fastapi:app", "asgi", False),
    Scenario("raw WSGI", "hello_wsgi:app", "wsgi", True),
    Scenario("Flask", "hello_flask:app", "wsgi", False),
]
SERVERS = {
    "asgi": ["hmr-serve", "hmr-serve --no-reload", "uvicorn", "granian"],
    "wsgi": ["hmr-serve", "hmr-serve --no-reload", "uvicorn", "granian", "gunicorn"],
}
STREAM_BYTES = 1 << 20
UPLOAD_BYTES = 10 << 20


def ensure_wrk() -> None:
    """wrk comes from Debian's packages; install it when missing (we are root on bench
    machines). The package lists are refreshed only if the first attempt fails."""
    if shutil.which("wrk"):
        return
    say("[throughput] wrk missing: apt-get install -y wrk")
    install = ["apt-get", "install", "-y", "-q", "wrk"]
    if subprocess.run(install, timeout=600).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], timeout=600, check=True)
        subprocess.run(install, timeout=600, check=True)
    if not shutil.which("wrk"):
        raise SystemExit("wrk could not be installed")


def make_server(name: str, scenario: Scenario, logs: Path) -> Server:
    port = free_port()
    return Server(
        name=name,
        argv=competitor_argv(name, scenario.target, scenario.interface, port, APPS_DIR),
        port=port,
        cwd=APPS_DIR,
        # No __pycache__ left in the source tree; start-up time is not measured here.
        env={"PYTHONDONTWRITEBYTECODE": "1"},
        log_path=logs / f"{scenario.target.split(':')[0]}-{log_slug(name)}.log",
    )


# --- wrk ------------------------------------------------------------------------------------

UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(value: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value)
    if m is None:
        raise ValueError(f"unexpected wrk duration {value!r}")
    return float(m[1]) * UNITS[m[2]]


@dataclass
class WrkRun:
    rps: float
    p50: float  # ms
    p99: float  # ms
    errors: int  # socket errors plus non-2xx/3xx answers


def wrk(port: int, seconds: float, path: str = "/") -> WrkRun:
    cmd = ["wrk", "-t2", "-c64", f"-d{seconds:g}s", "--latency", f"http://127.0.0.1:{port}{path}"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if rps is None:
        raise RuntimeError(f"could not parse wrk output:\n{out}")
    # With no answer at all wrk prints no latency distribution.
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    errors = 0
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        errors += sum(int(x) for x in m.groups())
    if m := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        errors += int(m[1])
    nan = float("nan")
    return WrkRun(float(rps[1]), _ms(p50[1]) if p50 else nan, _ms(p99[1]) if p99 else nan, errors)


def still_answers(port: int) -> bool:
    """After a load run: does a plain request on a new connection still get an answer?"""
    try:
        return http_get(port, "/", timeout=5)[0] == 200
    except Exception:
        return False


# --- Streaming and upload -------------------------------------------------------------------


def transfer_rates(port: int, budget_s: float) -> tuple[float, float]:
    """MB/s for repeated 1 MB streamed downloads and 10 MB uploads, each loop bounded by a
    count and by `budget_s` seconds. Sizes are checked: a short body is an error, not speed."""
    base = f"http://127.0.0.1:{port}"
    payload = b"u" * UPLOAD_BYTES
    with httpx.Client(timeout=20) as client:
        client.get(base + "/")  # open the keep-alive connection outside the timing
        got, started = 0, time.perf_counter()
        for _ in range(200):
            with client.stream("GET", base + "/stream") as r:
                size = sum(len(chunk) for chunk in r.iter_raw())
            if r.status_code != 200 or size != STREAM_BYTES:
                raise RuntimeError(f"/stream: status {r.status_code}, {size} bytes")
            got += size
            if time.perf_counter() - started > budget_s:
                break
        stream = got / (1 << 20) / (time.perf_counter() - started)

        sent, started = 0, time.perf_counter()
        for _ in range(50):
            r = client.post(base + "/upload", content=payload)
            if r.status_code != 200 or r.text != str(UPLOAD_BYTES):
                raise RuntimeError(f"/upload: status {r.status_code}, body {r.text[:80]!r}")
            sent += UPLOAD_BYTES
            if time.perf_counter() - started > budget_s:
                break
        upload = sent / (1 << 20) / (time.perf_counter() - started)
    return stream, upload


# --- Driver ---------------------------------------------------------------------------------


def run_scenario(scenario: Scenario, rounds: int, seconds: float, logs: Path) -> dict:
    servers = [make_server(name, scenario, logs) for name in SERVERS[scenario.interface]]
    return measure(servers, scenario, rounds, seconds, "throughput")


def measure(
    servers: list[Server], scenario: Scenario, rounds: int, seconds: float, tag: str
) -> dict:
    """Runs `servers` together and measures them in turns (wrk, then the transfers), `rounds`
    times; `tag` prefixes the progress lines."""
    runs: dict[str, list[WrkRun]] = defaultdict(list)
    rates: dict[str, list[tuple[float, float]]] = defaultdict(list)
    broken: dict[str, str] = {}  # server → what went wrong; it is not measured any further
    width = max(len(s.name) for s in servers)

    def check(s: Server, what: str) -> bool:
        if s.name not in broken and not still_answers(s.port):
            broken[s.name] = f"stopped answering after {what}"
            say(f"[{tag}] {s.name}: {broken[s.name]}")
        return s.name not in broken

    with running(servers, ready_timeout=60):
        for s in servers:  # warm-up: first connections, lazy imports, caches
            wrk(s.port, 1)
            check(s, "the warm-up wrk run")
        for rnd in range(rounds):
            order = servers[rnd % len(servers) :] + servers[: rnd % len(servers)]
            for s in order:
                if s.name in broken:
                    continue
                r = wrk(s.port, seconds)
                runs[s.name].append(r)
                say(
                    f"[{tag}] {scenario.label:12s} round {rnd + 1}/{rounds} {s.name:{width}s} "
                    f"{r.rps:8.0f} req/s  p50 {fmt_ms(r.p50)}  p99 {fmt_ms(r.p99)}"
                    f"{f'  errors {r.errors}' if r.errors else ''}"
                )
                check(s, "a wrk run")
            if not scenario.transfers:
                continue
            for s in order:
                if s.name in broken:
                    continue
                try:
                    rates[s.name].append(transfer_rates(s.port, budget_s=min(seconds, 3)))
                except Exception as exc:  # a hung or wrong answer: report it, go on
                    broken[s.name] = f"stream/upload failed: {type(exc).__name__}: {exc}"
                    say(f"[{tag}] {s.name}: {broken[s.name]}")
                    continue
                stream, upload = rates[s.name][-1]
                say(
                    f"[{tag}] {scenario.label:12s} round {rnd + 1}/{rounds} "
                    f"{s.name:{width}s} stream {stream:.0f} MB/s  upload {upload:.0f} MB/s"
                )
    return {"runs": runs, "rates": rates, "broken": broken, "servers": [s.name for s in servers]}


def _num(x: float, fmt: str = ",.0f") -> str:
    return "–" if x != x else format(x, fmt)


def report(
    results: dict[Scenario, dict], baseline: str = "hmr-serve", versus: str = "hmr-serve"
) -> str:
    """The tables; ratios are to `baseline`'s figures, headed "vs `versus`"."""
    rows, transfer_rows, notes = [], [], []
    for scenario, res in results.items():
        runs_of, rates_of = res["runs"], res["rates"]
        base = median([r.rps for r in runs_of[baseline]])
        base_s = median([s for s, _ in rates_of[baseline]])
        base_u = median([u for _, u in rates_of[baseline]])
        for i, name in enumerate(res["servers"]):
            runs = runs_of[name]
            med = median([r.rps for r in runs])
            errors = str(sum(r.errors for r in runs))
            if name in res["broken"]:
                errors += " (see note)"
                notes.append(f"- {scenario.label}, {name}: {res['broken'][name]}.")
            rows.append([
                scenario.label if i == 0 else "",
                name,
                _num(max((r.rps for r in runs), default=float("nan"))),
                _num(med),
                _num(med / base, ".2f"),
                fmt_ms(median([r.p50 for r in runs])),
                fmt_ms(median([r.p99 for r in runs])),
                errors,
            ])  # fmt: skip
            if scenario.transfers:
                stream = median([s for s, _ in rates_of[name]])
                upload = median([u for _, u in rates_of[name]])
                transfer_rows.append([
                    scenario.label if i == 0 else "",
                    name,
                    _num(stream),
                    _num(stream / base_s, ".2f"),
                    _num(upload),
                    _num(upload / base_u, ".2f"),
                ])  # fmt: skip
    table = markdown_table(
        ["app", "server", "req/s best", "req/s median", f"median vs {versus}", "p50", "p99",
         "errors"],
        rows,
    )  # fmt: skip
    text = table + "\n"
    if transfer_rows:
        transfers = markdown_table(
            ["app", "server", "stream 1 MB (MB/s)", f"vs {versus}", "upload 10 MB (MB/s)",
             f"vs {versus}"],
            transfer_rows,
        )  # fmt: skip
        text += f"\nStreaming and upload (httpx client, median of the rounds):\n\n{transfers}\n"
    if notes:
        text += "\nServers that went wrong (not measured further):\n\n" + "\n".join(notes) + "\n"
    return text


def main(argv: list[str] | None = None) -> str:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=5, help="wrk runs per server (default: 5)")
    p.add_argument("--duration", type=float, default=5, help="seconds per wrk run (default: 5)")
    p.add_argument("--quick", action="store_true", help="2 rounds of 2 s; RESULTS.md untouched")
    p.add_argument("--apps", help="comma-separated subset of: " + ", ".join(
        s.label for s in SCENARIOS))  # fmt: skip
    args = parse_bench_args(p, argv)
    rounds, seconds = (2, 2.0) if args.quick else (args.rounds, args.duration)
    wanted = [s for s in SCENARIOS if not args.apps or s.label in args.apps.split(",")]

    ensure_wrk()
    logs = log_dir("throughput")
    say(f"[throughput] server logs in {logs}")
    results = {s: run_scenario(s, rounds, seconds, logs) for s in wanted}
    tables = report(results)
    print(tables, flush=True)
    body = (
        f"{machine_info(['hmr-serve', 'uvicorn', 'granian', 'gunicorn', 'fastapi', 'flask'])} "
        f"{wrk_version()}.\n\n"
        f"`wrk -t2 -c64 -d{seconds:g}s --latency`, {rounds} rounds per server, servers in "
        f"turns; wrk and the server share the machine. `req/s best` / `median`: over the "
        f"rounds; `median vs hmr-serve`: median req/s divided by hmr-serve's (reload on); "
        f"p50 / p99: medians of the rounds' latency percentiles; `errors`: wrk socket errors "
        f"plus non-2xx answers. hmr-serve runs with reload on (as a user runs it), and again "
        f"with --no-reload to show what the watcher and import hooks cost.\n\n{tables}"
    )
    write_results(args, "Throughput", body)
    return body


if __name__ == "__main__":
    main()
