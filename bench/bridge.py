"""The ASGI bridge: hmr-serve's custom one against pyo3-async-runtimes, with uvicorn and granian.

hmr-serve hands requests from its tokio threads to the asyncio loop either with its own
mechanism (the default: a job queue the loop watches through an eventfd, already-completed
awaitables, asyncio futures completed from the loop thread) or, built with the Cargo feature
`asgi-bridge-async-runtimes`, the way pyo3-async-runtimes servers do it (a tokio thread takes
the GIL and schedules the app with `into_future_with_locals`; `receive`/`send` return
`future_into_py_with_locals` futures). The feature build is made into a directory of its own
(`target/bridge-variant/site`, put first on PYTHONPATH for that server only), so the venv keeps
the default build.

Servers, one worker each, access logs off, all started at once and measured in turns:

  hmr-serve custom bridge        the venv's build, --no-reload (the bridge, not the watcher)
  hmr-serve pyo3-async-runtimes  the feature build, --no-reload
  uvicorn                        uvloop + httptools
  granian                        --interface asgi

Load: `wrk -t2 -c64 -d5s --latency` per server and round on the raw ASGI and the FastAPI JSON
hello worlds; for the raw app also a 1 MB streamed download and a 10 MB upload (httpx, one
keep-alive connection). Ratios are against the custom bridge.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    BENCH_DIR,
    Server,
    fmt_ms,
    free_port,
    log_dir,
    machine_info,
    markdown_table,
    median,
    require_release_build,
    running,
    say,
    tool,
    update_results,
    wrk_version,
)
from throughput import (  # noqa: E402
    APPS_DIR,
    SCENARIOS,
    Scenario,
    WrkRun,
    ensure_wrk,
    make_server,
    still_answers,
    transfer_rates,
    wrk,
)

REPO = BENCH_DIR.parent
FEATURE = "asgi-bridge-async-runtimes"
VARIANT_DIR = REPO / "target" / "bridge-variant"
CUSTOM = "hmr-serve custom bridge"
ASYNC_RUNTIMES = "hmr-serve pyo3-async-runtimes"
SERVERS = [CUSTOM, ASYNC_RUNTIMES, "uvicorn", "granian"]
APPS = [s for s in SCENARIOS if s.interface == "asgi"]


def build_variant() -> Path:
    """Builds hmr-serve with the feature (release, its own cargo target directory so the
    default build's cache stays) and unpacks the wheel into a directory of its own."""
    wheels, site = VARIANT_DIR / "wheels", VARIANT_DIR / "site"
    for old in wheels.glob("*.whl") if wheels.exists() else []:
        old.unlink()
    say(f"[bridge] building hmr-serve with --features {FEATURE} (release; minutes when cold)")
    env = dict(os.environ, CARGO_TARGET_DIR=str(VARIANT_DIR / "cargo"))
    subprocess.run(
        [tool("maturin"), "build", "--release", "--quiet", "--interpreter", sys.executable,
         "--features", f"extension-module,{FEATURE}", "--out", str(wheels)],
        cwd=REPO, env=env, check=True, timeout=3600,
    )  # fmt: skip
    (wheel,) = wheels.glob("*.whl")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--upgrade", "--target",
         str(site), str(wheel)],
        check=True, timeout=600,
    )  # fmt: skip
    return site


def imported_from(site: Path | None) -> str:
    """Where `hmr_serve._core` comes from with `site` first on the path (a check that the
    variant really runs the feature build)."""
    env = dict(os.environ)
    if site is not None:
        env["PYTHONPATH"] = str(site)
    out = subprocess.run(
        [sys.executable, "-c", "import hmr_serve._core as c; print(c.__file__)"],
        capture_output=True, text=True, env=env, check=True, timeout=60,
    )  # fmt: skip
    return out.stdout.strip()


def make_bridge_server(name: str, scenario: Scenario, site: Path, logs: Path) -> Server:
    if name not in (CUSTOM, ASYNC_RUNTIMES):
        return make_server(name, scenario, logs)
    port = free_port()
    slug = "custom" if name == CUSTOM else "async-runtimes"
    env: dict[str, str | None] = {"PYTHONDONTWRITEBYTECODE": "1"}
    if name == ASYNC_RUNTIMES:
        env["PYTHONPATH"] = str(site)
    return Server(
        name=name,
        argv=[
            sys.executable,
            "-m",
            "hmr_serve",
            scenario.target,
            "--port",
            str(port),
            "--app-dir",
            str(APPS_DIR),
            "--interface",
            "asgi",
            "--no-access-log",
            "--no-reload",
        ],  # fmt: skip
        port=port,
        cwd=APPS_DIR,
        env=env,
        log_path=logs / f"{scenario.target.split(':')[0]}-{slug}.log",
    )


def run_app(scenario: Scenario, site: Path, rounds: int, seconds: float, logs: Path) -> dict:
    servers = [make_bridge_server(name, scenario, site, logs) for name in SERVERS]
    runs: dict[str, list[WrkRun]] = defaultdict(list)
    rates: dict[str, list[tuple[float, float]]] = defaultdict(list)
    broken: dict[str, str] = {}

    def check(s: Server, what: str) -> None:
        if s.name not in broken and not still_answers(s.port):
            broken[s.name] = f"stopped answering after {what}"
            say(f"[bridge] {s.name}: {broken[s.name]}")

    with running(servers, ready_timeout=60):
        for s in servers:
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
                    f"[bridge] {scenario.label:12s} round {rnd + 1}/{rounds} {s.name:30s} "
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
                    say(f"[bridge] {s.name}: {broken[s.name]}")
                    continue
                stream, upload = rates[s.name][-1]
                say(
                    f"[bridge] {scenario.label:12s} round {rnd + 1}/{rounds} {s.name:30s} "
                    f"stream {stream:.0f} MB/s  upload {upload:.0f} MB/s"
                )
    return {"runs": runs, "rates": rates, "broken": broken}


def _num(x: float, fmt: str = ",.0f") -> str:
    return "–" if x != x else format(x, fmt)


def report(results: dict[Scenario, dict]) -> str:
    rows, transfer_rows, notes = [], [], []
    for scenario, res in results.items():
        runs_of, rates_of = res["runs"], res["rates"]
        base = median([r.rps for r in runs_of[CUSTOM]])
        base_s = median([s for s, _ in rates_of[CUSTOM]])
        base_u = median([u for _, u in rates_of[CUSTOM]])
        for i, name in enumerate(SERVERS):
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
        ["app", "server", "req/s best", "req/s median", "median vs custom bridge", "p50",
         "p99", "errors"],
        rows,
    )  # fmt: skip
    text = table + "\n"
    if transfer_rows:
        transfers = markdown_table(
            ["app", "server", "stream 1 MB (MB/s)", "vs custom bridge", "upload 10 MB (MB/s)",
             "vs custom bridge"],
            transfer_rows,
        )  # fmt: skip
        text += f"\nStreaming and upload (httpx client, median of the rounds):\n\n{transfers}\n"
    if notes:
        text += "\nServers that went wrong (not measured further):\n\n" + "\n".join(notes) + "\n"
    return text


def main(argv: list[str] | None = None) -> str:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=3, help="wrk runs per server (default: 3)")
    p.add_argument("--duration", type=float, default=5, help="seconds per wrk run (default: 5)")
    p.add_argument("--quick", action="store_true", help="2 rounds of 2 s; RESULTS.md untouched")
    p.add_argument("--apps", help="comma-separated subset of: " + ", ".join(
        s.label for s in APPS))  # fmt: skip
    p.add_argument(
        "--no-build",
        action="store_true",
        help=f"reuse the feature build already in {VARIANT_DIR / 'site'}",
    )
    p.add_argument("--no-write", action="store_true", help="do not update bench/RESULTS.md")
    p.add_argument(
        "--allow-debug-build", action="store_true", help="measure an unoptimized hmr-serve anyway"
    )
    args = p.parse_args(argv)
    require_release_build(args.allow_debug_build)
    rounds, seconds = (2, 2.0) if args.quick else (args.rounds, args.duration)
    wanted = [s for s in APPS if not args.apps or s.label in args.apps.split(",")]

    ensure_wrk()
    site = VARIANT_DIR / "site" if args.no_build else build_variant()
    default_core, variant_core = imported_from(None), imported_from(site)
    if not variant_core.startswith(str(site)):
        raise SystemExit(f"the feature build is not what runs: {variant_core}")
    say(f"[bridge] custom bridge: {default_core}\n[bridge] pyo3-async-runtimes: {variant_core}")
    logs = log_dir("bridge")
    say(f"[bridge] server logs in {logs}")
    results = {s: run_app(s, site, rounds, seconds, logs) for s in wanted}
    tables = report(results)
    print(tables, flush=True)
    body = (
        f"{machine_info(['hmr-serve', 'uvicorn', 'granian', 'fastapi'])} {wrk_version()}.\n\n"
        f"`wrk -t2 -c64 -d{seconds:g}s --latency`, {rounds} rounds per server, servers in "
        f"turns; wrk and the servers share the machine. `{CUSTOM}`: the default build; "
        f"`{ASYNC_RUNTIMES}`: built with `--features {FEATURE}` (tokio threads start requests "
        f"with `into_future_with_locals`, receive/send return `future_into_py_with_locals` "
        f"futures). Both hmr-serve run with --no-reload. `median vs custom bridge`: median "
        f"req/s divided by the custom bridge's.\n\n{tables}"
    )
    if not (args.no_write or args.quick):
        update_results("ASGI bridge", body)
    return body


if __name__ == "__main__":
    main()
