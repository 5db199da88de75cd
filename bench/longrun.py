"""A long editing session: memory, threads and file descriptors of hmr-serve over 500 reloads,
and whether old versions of the code are freed.

The app is tests/versioned_app.py: a FastAPI app of six modules whose routes module is saved
with a new version number each time (a new class, instance, lambda and router per version, and
a new FastAPI app built around them). After each save the script waits for the `reloaded` log
line and checks that `/` answers the new version. RSS, threads and open fds are read from
/proc/<pid> after the first reload and at a few points up to the last; at the end `/debug/alive`
runs `gc.collect()` in the server and lists the tracked objects still alive, by version: old
versions should all be gone.

hmr-serve only: a restarting reloader (uvicorn --reload) starts a fresh process every time, so
it has no long session to measure. The target (issue 5): RSS grows < 20 MB from 1 to 500.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import httpx  # noqa: E402
import versioned_app  # noqa: E402
from common import (  # noqa: E402
    Server,
    fmt_ms,
    free_port,
    log_dir,
    machine_info,
    markdown_table,
    median,
    parse_bench_args,
    say,
    tool,
    write_results,
)

RELOAD_RE = re.compile(r"reloaded (\d+) modules? in ([\d.]+) ms")
TARGET_MB = 20
REPORT_AT = (1, 10, 50, 100, 200, 300, 400, 500)


def reload_lines(server: Server) -> list[str]:
    with server._lock:
        return [line for _, line in server.lines if RELOAD_RE.search(line)]


def wait_reloads(server: Server, count: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while len(reload_lines(server)) < count:
        if "reload failed" in server.tail(5):
            raise RuntimeError(f"reload {count} failed:\n{server.tail()}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"reload {count} never happened:\n{server.tail()}")
        if not server.alive():
            raise RuntimeError(f"hmr-serve exited:\n{server.tail()}")
        time.sleep(0.002)


def sample(pid: int) -> tuple[float, int, int]:
    return (
        versioned_app.rss_bytes(pid) / 2**20,
        versioned_app.thread_count(pid),
        versioned_app.fd_count(pid),
    )


def run(reloads: int, logs: Path) -> dict:
    with tempfile.TemporaryDirectory(prefix="hmr-bench-longrun-") as tmp:
        root = Path(tmp)
        versioned_app.create(root)
        port = free_port()
        server = Server(
            name="hmr-serve",
            argv=[
                tool("hmr-serve"),
                versioned_app.APP_SPEC,
                "--port",
                str(port),
                "--no-access-log",
            ],  # fmt: skip
            port=port,
            cwd=root,
            env={"PYTHONDONTWRITEBYTECODE": "1"},
            log_path=logs / "hmr-serve.log",
        )
        samples: dict[int, tuple[float, int, int]] = {}
        try:
            server.start()
            deadline = time.monotonic() + 60
            while not server.poll_ready():
                if time.monotonic() > deadline:
                    raise TimeoutError(f"hmr-serve not ready:\n{server.tail()}")
                time.sleep(0.02)
            pid = server.proc.pid
            samples[0] = sample(pid)
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", trust_env=False) as client:
                for version in range(1, reloads + 1):
                    versioned_app.set_version(root, version)
                    wait_reloads(server, version)
                    got = client.get("/").json()["version"]
                    if got != version:
                        raise RuntimeError(f"after edit {version}, / answers version {got}")
                    if version in REPORT_AT or version == reloads:
                        time.sleep(0.3)  # the static pass after the reload, on its thread
                        samples[version] = sample(pid)
                        rss, threads, fds = samples[version]
                        say(f"[longrun] after {version:4d} reloads: RSS {rss:.1f} MB, "
                            f"{threads} threads, {fds} fds")  # fmt: skip
                alive = client.get("/debug/alive").json()
            time.sleep(0.3)  # the client's connection has closed on the server side too
            samples[reloads] = sample(pid)
            durations = [float(RELOAD_RE.search(line)[2]) for line in reload_lines(server)]
            modules = {int(RELOAD_RE.search(line)[1]) for line in reload_lines(server)}
        finally:
            server.stop()
    return {"samples": samples, "alive": alive, "durations": durations, "modules": modules,
            "reloads": reloads}  # fmt: skip


def report(res: dict) -> str:
    samples, reloads = res["samples"], res["reloads"]
    after_one = samples[1]
    rows = [
        [
            str(n) if n else "0 (started)",
            f"{rss:.1f}",
            f"{rss - after_one[0]:+.1f}",
            str(threads),
            str(fds),
        ]
        for n, (rss, threads, fds) in sorted(samples.items())
    ]
    table = markdown_table(["reloads", "RSS (MB)", "vs after 1 (MB)", "threads", "open fds"], rows)
    last = samples[reloads]
    # The app the server started with, and its router, stay: its lifespan runs on it.
    first = [entry for entry in res["alive"] if entry in (["app", 0], ["router", 0])]
    old = [entry for entry in res["alive"] if entry[1] != reloads and entry not in first]
    growth = last[0] - after_one[0]
    lines = [
        table,
        "",
        f"- RSS growth from 1 to {reloads} reloads: {growth:+.1f} MB "
        f"({'within' if growth < TARGET_MB else '**over**'} the {TARGET_MB} MB target); "
        f"threads {after_one[1]} → {last[1]}, open fds {after_one[2]} → {last[2]} (after the "
        f"last client connection closed).",
        f"- Objects of old versions alive after `gc.collect()` (an app, a router, a class whose "
        f"shape changes, an instance of it and a lambda per version): {len(old)}"
        + (f" ({old[:10]})" if old else "")
        + f"; besides, the first app and its router (the lifespan runs on them): "
        f"{'alive' if first else 'freed'}.",
        f"- Reload (own log line): median {fmt_ms(median(res['durations']))}, "
        f"modules re-executed per reload: {', '.join(map(str, sorted(res['modules'])))}.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> str:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--reloads", type=int, default=500, help="edits to make (default: 500)")
    p.add_argument("--quick", action="store_true", help="50 reloads; RESULTS.md untouched")
    args = parse_bench_args(p, argv)
    reloads = 50 if args.quick else args.reloads
    logs = log_dir("longrun")
    say(f"[longrun] server log in {logs}")
    text = report(run(reloads, logs))
    print(text, flush=True)
    body = (
        f"{machine_info(['hmr-serve', 'fastapi', 'pydantic'])}\n\n"
        f"{reloads} saves of the routes module of a six-module FastAPI app "
        f"(tests/versioned_app.py), each waited for (log line, then `/` answers the new "
        f"version). RSS, threads and open fds of the server process from /proc.\n\n{text}"
    )
    write_results(args, "Long session", body)
    return body


if __name__ == "__main__":
    main()
