"""A long editing session: after many reloads the server holds no more threads or file
descriptors than after the first ones, its memory has grown only a little, and every object of
an old version of the code has been freed (nothing in the reload machinery keeps it alive).

CI size: 100 reloads; `pytest --long`: 500 (the figures in bench/RELIABILITY.md).
"""

from __future__ import annotations

import time

import versioned_app
from conftest import Server

WARM_UP = 3  # reloads before the start values are taken: first-use threads and caches
RSS_BOUND_MB = 100  # generous on purpose: this reports growth, it is not a benchmark
LIFESPAN_HELD = (["app", 0], ["router", 0])


def wait_reloads(server: Server, count: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while server.count_lines(r"reloaded \d+ modules?") < count:
        assert server.count_lines("reload failed") == 0, server.output
        assert time.monotonic() < deadline, f"reload {count} never happened\n{server.output}"
        time.sleep(0.005)


def settle_counts(pid: int, threads: int, fds: int, timeout: float = 15.0) -> tuple[int, int]:
    """Thread and fd counts, once they are back to the given values or the deadline passed:
    a closed connection or a finished worker leaves the server a moment after the client."""
    deadline = time.monotonic() + timeout
    while True:
        now = versioned_app.thread_count(pid), versioned_app.fd_count(pid)
        if now == (threads, fds) or time.monotonic() > deadline:
            return now
        time.sleep(0.05)


def test_many_reloads_leak_no_threads_fds_or_old_code(tmp_path, start_server, long_run):
    reloads = 500 if long_run else 100
    versioned_app.create(tmp_path)
    server = start_server(versioned_app.APP_SPEC, "--port", "0", "--no-access-log", cwd=tmp_path)
    pid = server.proc.pid

    def check_version(version: int) -> None:
        with server.client() as client:
            body = client.get("/").json()
        assert body["version"] == version, server.output

    for version in range(1, WARM_UP + 1):
        versioned_app.set_version(tmp_path, version)
        wait_reloads(server, version)
        check_version(version)
    with server.client() as client:
        client.get("/debug/alive")
    time.sleep(0.5)  # the static pass after the last reload runs on a worker thread
    rss_start = versioned_app.rss_bytes(pid)
    threads_start = versioned_app.thread_count(pid)
    fds_start = versioned_app.fd_count(pid)

    for version in range(WARM_UP + 1, WARM_UP + reloads + 1):
        versioned_app.set_version(tmp_path, version)
        wait_reloads(server, version)
        check_version(version)
    last = WARM_UP + reloads

    with server.client() as client:
        alive = client.get("/debug/alive").json()
    threads_end, fds_end = settle_counts(pid, threads_start, fds_start)
    rss_end = versioned_app.rss_bytes(pid)
    growth_mb = (rss_end - rss_start) / 2**20
    print(
        f"\n{reloads} reloads: RSS {rss_start / 2**20:.1f} -> {rss_end / 2**20:.1f} MB "
        f"({growth_mb:+.1f} MB), threads {threads_start} -> {threads_end}, "
        f"fds {fds_start} -> {fds_end}, objects alive {sorted(alive)}"
    )

    assert server.count_lines(r"reloaded \d+ modules?") == last
    assert (threads_end, fds_end) == (threads_start, fds_start), server.output
    # The app the lifespan started on stays alive with its router: its lifespan task runs
    # until shutdown, as in any server. Nothing else of an old version may.
    old = [entry for entry in alive if entry[1] != last and entry not in LIFESPAN_HELD]
    assert old == [], f"objects of old versions still alive: {old}"
    current = sorted(kind for kind, version in alive if version == last)
    assert current == ["app", "class", "instance", "lambda", "router"]
    assert growth_mb < RSS_BOUND_MB


def test_the_probe_sees_what_the_current_code_holds(tmp_path, start_server):
    """Without this, an empty list from /debug/alive would prove nothing."""
    versioned_app.create(tmp_path)
    server = start_server(versioned_app.APP_SPEC, "--port", "0", "--no-access-log", cwd=tmp_path)
    with server.client() as client:
        alive = client.get("/debug/alive").json()
    assert sorted(alive) == [[k, 0] for k in ("app", "class", "instance", "lambda", "router")]
