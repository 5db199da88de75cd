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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    BENCH_DIR,
    Server,
    free_port,
    log_dir,
    machine_info,
    require_release_build,
    say,
    tool,
    update_results,
    wrk_version,
)
from throughput import (  # noqa: E402
    APPS_DIR,
    SCENARIOS,
    Scenario,
    ensure_wrk,
    make_server,
    measure,
    report,
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
    return measure(servers, scenario, rounds, seconds, "bridge")


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
    tables = report(results, baseline=CUSTOM, versus="custom bridge")
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
