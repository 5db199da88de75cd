"""The WSGI worker pool: one thread serves the queue while it keeps up, but requests that block
(the app sleeps, waits on a database, reads a slow upload) must not hold up the others: the
pool wakes more threads, up to --wsgi-threads."""

from __future__ import annotations

import threading
import time

from conftest import read_markers

SLOW_SECONDS = 8
CONCURRENT = 12


def test_blocking_requests_run_at_the_same_time(start_server, markers_file):
    server = start_server(
        "raw_wsgi:app",
        "--port",
        "0",
        "--no-access-log",
        env={"HMR_TEST_MARKERS": str(markers_file)},
    )
    results: list[str] = []

    def slow() -> None:
        with server.client() as client:
            results.append(client.get("/slow", params={"seconds": SLOW_SECONDS}).text)

    threads = [threading.Thread(target=slow) for _ in range(CONCURRENT)]
    for t in threads:
        t.start()
    try:
        deadline = time.monotonic() + SLOW_SECONDS - 1
        while read_markers(markers_file).count("wsgi-slow-started") < CONCURRENT:
            assert time.monotonic() < deadline, read_markers(markers_file)
            time.sleep(0.02)
        # All of them are inside the app at once: none had to wait for another to finish.
        assert "wsgi-slow-finished" not in read_markers(markers_file)
    finally:
        for t in threads:
            t.join(SLOW_SECONDS + 30)
    assert results == ["slow done"] * CONCURRENT


def test_pool_size_bounds_the_requests_in_the_app(start_server, markers_file):
    server = start_server(
        "raw_wsgi:app",
        "--port",
        "0",
        "--no-access-log",
        "--wsgi-threads",
        "3",
        env={"HMR_TEST_MARKERS": str(markers_file)},
    )
    results: list[str] = []

    def slow() -> None:
        with server.client() as client:
            results.append(client.get("/slow", params={"seconds": 2}).text)

    threads = [threading.Thread(target=slow) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    markers = read_markers(markers_file)
    # Three ran first; the other two started only as those finished.
    assert markers[:3] == ["wsgi-slow-started"] * 3, markers
    assert results == ["slow done"] * 5
