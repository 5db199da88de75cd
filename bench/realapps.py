"""Real apps, from local copies where present: save → first response showing the change,
hmr-serve beside the app's usual reloader in the same run, each result checked against a
freshly started server.

For each app found (see realapps_mealie.py for where it is looked for and how to set it up;
a missing app is named and skipped, and the script still exits 0):
- two copies of the app's files, one per server, served at once by hmr-serve and by the app's
  usual reloader (`uvicorn --reload` for mealie), each with a background client GETting a page
  every 20 ms throughout and counting failures (errors, 5xx);
- each edit, in turns (the server going first alternates): the file is saved and the time to
  the first response that shows the change is taken by polling a probe URL on fresh
  connections; hmr-serve's own log line for it is kept; then the edit is undone (waited for,
  not timed). In the first round, while hmr-serve serves the edit, a server without reload is
  started on the same files and the compared requests (public pages, signed-in pages and
  /openapi.json, less what differs between any two processes) must answer the same;
- when the servers stop, their output is searched for "Task was destroyed but it is pending!";
- in one interpreter of the app, without the reload engine (realapps_absorb.py), every router
  module re-run in place and its routers replaced in place of re-running the module that
  includes them: what that costs, and whether the result equals a fresh import.

    .venv/bin/python bench/realapps.py [--apps mealie] [--rounds 3] [--quick] [--no-write]

Writes the "Real apps: <name>" sections of RESULTS.md."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import realapps_mealie  # noqa: E402
from common import (  # noqa: E402
    Server,
    fmt_ms,
    free_port,
    log_dir,
    machine_info,
    markdown_table,
    median,
    parse_bench_args,
    running,
    say,
    write_results,
)
from realapps_absorb import normalised_openapi  # noqa: E402
from realapps_common import Edit, RealApp, request  # noqa: E402

APPS = {"mealie": realapps_mealie.app}
REALAPPS_DIR = Path(os.environ.get("REALAPPS_DIR", "/work/realapps"))
READY_TIMEOUT = 300.0
EDIT_TIMEOUT = 120.0
DESTROYED = "Task was destroyed but it is pending!"
RELOAD_LINE = r"reloaded \d+ modules? in|patched in place|restarting the process"


class Background:
    """GETs `path` every 20 ms on fresh connections; counts what a user would see fail."""

    def __init__(self, port: int, path: str) -> None:
        self.port, self.path = port, path
        self.sent = 0
        self.failed = 0
        self.reasons: list[str] = []  # the first few
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                status, _ = request(self.port, self.path, timeout=120)
                failure = f"status {status}" if status >= 500 else None
            except OSError as exc:
                failure = repr(exc)
            if failure is not None:
                self.failed += 1
                if len(self.reasons) < 3:
                    self.reasons.append(failure)
            self.sent += 1
            self._stop.wait(0.02)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(40)


def wait_for(port: int, path: str, done: Any, timeout: float = EDIT_TIMEOUT) -> float:
    """Polls until `done(status, body)`; the time it first was, or TimeoutError."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            status, body = request(port, path, timeout=5)
        except OSError:  # restarting
            time.sleep(0.005)
            continue
        if done(status, body):
            return time.monotonic()
        time.sleep(0.005)
    raise TimeoutError(f"{path} on port {port}: not there after {timeout} s")


def timed_edit(server: Server, root: Path, edit: Edit) -> tuple[float, str]:
    """Saves the edit; seconds until it shows, and the server's reload log line (if any)."""
    path = root / edit.path
    text = edit.apply(path.read_text())
    started = time.monotonic()
    path.write_text(text)
    shown = wait_for(server.port, edit.probe, edit.shows)
    try:
        _, match = server.wait_line(RELOAD_LINE, started, timeout=0.5)
        line = match.string.split("INFO:", 1)[-1].split("WARNING:", 1)[-1].strip()
    except TimeoutError:
        line = ""
    return shown - started, line


def undo_edit(server: Server, root: Path, edit: Edit, original: str) -> None:
    (root / edit.path).write_text(original)
    undone = lambda status, body: status < 500 and not edit.shows(status, body)  # noqa: E731
    wait_for(server.port, edit.probe, undone)


def snapshot(app: RealApp, port: int) -> dict[str, Any]:
    """The compared requests' answers (status, JSON or text)."""
    answers: dict[str, Any] = {path: request(port, path) for path in app.public}
    if app.login is not None:
        path, form = app.login
        status, body = request(port, path, method="POST", form=form)
        token = body.get("access_token") if isinstance(body, dict) else None
        answers["login"] = status
        headers = {"authorization": f"Bearer {token}"}
        for path in app.signed_in:
            answers[path] = request(port, path, headers=headers)
    status, openapi = request(port, "/openapi.json")
    answers["/openapi.json"] = (status, normalised_openapi(openapi) if status == 200 else openapi)
    return answers


def differences_from_fresh(app: RealApp, root: Path, server: Server, logs: Path) -> list[str]:
    """Starts a server without reload on the same files: which compared answers differ."""
    port = free_port()
    fresh = Server(
        "fresh",
        [str(app.python), *app.fresh_args, "--port", str(port)],
        port,
        root,
        env=app.env,
        log_path=logs / f"{app.name}-fresh-{port}.log",
    )
    with running([fresh], READY_TIMEOUT, app.background):
        expected = snapshot(app, port)
        served = snapshot(app, server.port)
    return [key for key in expected if json.dumps(served.get(key)) != json.dumps(expected[key])]


def end_to_end(app: RealApp, rounds: int, logs: Path) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix=f"hmr-realapps-{app.name}-"))
    servers = []
    for name, args in (
        # A reload of a large app on this loaded machine can outlast the default 10 s guard
        # against modules that hang; it is measured here, not abandoned.
        ("hmr-serve", ["-m", "hmr_serve", app.spec, "--reload-timeout", "300"]),
        (app.reloader, app.reloader_args),
    ):
        root = app.make_copy(work / name.split()[0])
        port = free_port()
        argv = [str(app.python), *args, "--port", str(port)]
        servers.append(
            Server(name, argv, port, root, env=app.env, log_path=logs / f"{app.name}-{port}.log")
        )
    times: dict[str, dict[str, list[float]]] = {
        e.name: {s.name: [] for s in servers} for e in app.edits
    }
    lines: dict[str, list[str]] = {e.name: [] for e in app.edits}
    fresh: dict[str, list[str]] = {}
    load = [os.getloadavg()[0]]
    say(f"{app.name}: starting {', '.join(s.name for s in servers)}")
    with running(servers, READY_TIMEOUT, app.background):
        backgrounds = {s.name: Background(s.port, app.background) for s in servers}
        for edit in app.edits:
            for round_ in range(rounds):
                for server in servers if round_ % 2 == 0 else servers[::-1]:
                    original = (server.cwd / edit.path).read_text()
                    seconds, line = timed_edit(server, server.cwd, edit)
                    times[edit.name][server.name].append(seconds)
                    say(f"  {edit.name}: {server.name} {fmt_ms(seconds * 1000)} {line}")
                    if server is servers[0]:
                        lines[edit.name].append(line)
                        if round_ == 0:
                            fresh[edit.name] = differences_from_fresh(app, server.cwd, server, logs)
                            say(f"  {edit.name}: differs from a fresh server in {fresh[edit.name]}")
                    undo_edit(server, server.cwd, edit, original)
        for background in backgrounds.values():
            background.stop()
    load.append(os.getloadavg()[0])
    return {
        "load": load,
        "servers": [s.name for s in servers],
        "times": times,
        "lines": lines,
        "fresh": fresh,
        "background": {n: (b.failed, b.sent, b.reasons) for n, b in backgrounds.items()},
        "destroyed": {s.name: sum(DESTROYED in line for _, line in s.lines) for s in servers},
        "root": str(servers[0].cwd),
    }


def in_process(app: RealApp, root: Path, logs: Path) -> dict[str, Any]:
    """realapps_absorb.py in the app's interpreter, and a fresh import to compare with."""
    script = str(Path(__file__).with_name("realapps_absorb.py"))
    env = {**os.environ, **app.env}
    results = {}
    for kind, args in (("absorbed", [app.spec]), ("fresh", ["--fresh", app.spec])):
        out = logs / f"{app.name}-{kind}.json"
        with open(logs / f"{app.name}-{kind}.log", "w") as log:
            subprocess.run(
                [str(app.python), script, str(out), *args],
                cwd=root,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=1800,
                check=True,
            )
        results[kind] = json.loads(out.read_text())
    absorbed, fresh = results["absorbed"], results["fresh"]
    absorbed["equals_fresh"] = absorbed["app"] == fresh
    return absorbed


def report(app: RealApp, e2e: dict[str, Any], mechanism: dict[str, Any], rounds: int) -> str:
    hmr, reloader = e2e["servers"]
    rows = []
    for edit in app.edits:
        mine, theirs = e2e["times"][edit.name][hmr], e2e["times"][edit.name][reloader]
        differs = e2e["fresh"].get(edit.name)
        rows.append(
            [
                edit.name,
                _spread(mine),
                _short(_median_line(mine, e2e["lines"][edit.name])) or "–",
                _spread(theirs),
                "yes" if differs == [] else f"no: {', '.join(differs)}" if differs else "–",
            ]
        )
    table = markdown_table(
        ["edit", "hmr-serve", "hmr-serve's log", reloader, "hmr-serve = fresh server"], rows
    )
    failed = "; ".join(
        f"{n}: {f} of {s} failed" + (f" ({', '.join(reasons)}...)" if reasons else "")
        for n, (f, s, reasons) in e2e["background"].items()
    )
    destroyed = ", ".join(f"{n} {c}" for n, c in e2e["destroyed"].items())
    one = mechanism["one_by_one"]
    absorbed = [r for r in one if r["absorbed"]]
    refused = [f"{r['module']} (by {r['includer']})" for r in one if not r["absorbed"]]
    by_size = sorted(absorbed, key=lambda r: r["routes"])
    example = next((r for r in one if r["module"].endswith("app_about")), None)
    lines = [
        f"Load average over the run: {e2e['load'][0]:.1f} at the start, {e2e['load'][1]:.1f} at "
        "the end (2 CPUs shared with other work: compare within a row).",
        machine_info(["hmr-serve"]) + f" {app.name} served with its own venv ({app.python}: "
        f"{app_versions(app)}); {rounds} round(s), median (min–max) from save to the first "
        "response showing the change, polled every 5 ms on fresh connections.",
        "",
        table,
        "",
        f"Background GETs of {app.background} every 20 ms: {failed}.",
        f'"{DESTROYED}" at shutdown: {destroyed}.',
        "",
        "Routers replaced in place, without the reload engine (realapps_absorb.py: each router "
        "module re-run in place, then `absorb` for the module including it, in one "
        f"interpreter): {len(absorbed)} of {len(one)} router modules absorbed"
        + (f"; refused, as they must be: {', '.join(refused)}" if refused else "")
        + f". absorb took {fmt_ms(median([r['absorb_ms'] for r in absorbed]))} median, "
        f"{fmt_ms(min(r['absorb_ms'] for r in by_size))}–"
        f"{fmt_ms(max(r['absorb_ms'] for r in by_size))} "
        f"({by_size[0]['routes']}–{by_size[-1]['routes']} routes per module)"
        + (
            f"; {example['module']} ({example['routes']} routes): {fmt_ms(example['absorb_ms'])}"
            if example
            else ""
        )
        + f". Every router module at once: {fmt_ms(mechanism['at_once_total_ms'])} "
        f"(re-runs included). The app then equals a fresh import (routes and OpenAPI): "
        f"{'yes' if mechanism['equals_fresh'] else 'NO'}.",
    ]
    return "\n".join(lines)


def app_versions(app: RealApp) -> str:
    code = (
        "from importlib import metadata as m\n"
        "print(', '.join(f'{d} {m.version(d)}' for d in ('fastapi', 'pydantic', 'uvicorn')))"
    )
    out = subprocess.run([str(app.python), "-c", code], capture_output=True, text=True, timeout=60)
    return out.stdout.strip() or "versions unknown"


def _median_line(seconds: list[float], lines: list[str]) -> str:
    """The log line of the run whose time is the median."""
    if not lines:
        return ""
    ranked = sorted(range(len(seconds)), key=seconds.__getitem__)
    return lines[ranked[len(ranked) // 2]]


def _short(line: str) -> str:
    """A reload line without what the table says elsewhere (the file, requests held)."""
    line = line.split(" after changes to ")[0].split(" (mealie/")[0]
    line = re.sub(r" \((\+ [\d.]+ ms waiting for running requests|held \d+ requests?)\)", "", line)
    return line if len(line) <= 120 else line[:117] + "..."


def _spread(seconds: list[float]) -> str:
    if not seconds:
        return "–"
    ms = [s * 1000 for s in seconds]
    if len(ms) == 1:
        return fmt_ms(ms[0])
    return f"{fmt_ms(median(ms))} ({fmt_ms(min(ms))}–{fmt_ms(max(ms))})"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--apps", default=",".join(APPS), help="comma-separated: " + ", ".join(APPS))
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="one round, RESULTS.md left alone")
    args = parse_bench_args(p, argv)
    rounds = 1 if args.quick else args.rounds
    logs = log_dir("realapps")
    for name in args.apps.split(","):
        found = APPS[name](REALAPPS_DIR)
        if isinstance(found, str):
            say(f"{name}: skipped, {found} (set-up: bench/realapps_{name}.py)")
            continue
        e2e = end_to_end(found, rounds, logs)
        mechanism = in_process(found, Path(e2e["root"]), logs)
        body = report(found, e2e, mechanism, rounds)
        print(f"## Real apps: {name}\n\n{body}\n")
        write_results(args, f"Real apps: {name}", body)
    say(f"logs in {logs}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
