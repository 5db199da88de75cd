"""Reloads under load: 64 keep-alive clients send requests back to back while the routes module
is saved again and again. No request may fail or get a 5xx, and once an edit's `reloaded` log
line is out, every request sent afterwards is answered by that version of the code (or a later
one); along each client's connection, versions never go back.

CI size: 50 edits; `pytest --long`: 500 (the figures in bench/RELIABILITY.md).
"""

from __future__ import annotations

import asyncio
import bisect
import time
from dataclasses import dataclass, field

import httpx
import versioned_app
from conftest import Server

CLIENTS = 64
RELOAD_LINE = r"reloaded \d+ modules?"


@dataclass
class Client:
    # (monotonic time the request was sent, version that answered)
    answers: list[tuple[float, int]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


async def hammer(server: Server, client: Client, stop: asyncio.Event) -> None:
    # One connection per client, kept alive for the whole run.
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with server.async_client(limits=limits) as http:
        while not stop.is_set():
            sent = time.monotonic()
            try:
                response = await http.get("/")
            except httpx.HTTPError as exc:
                client.failures.append(repr(exc))
                continue
            if response.status_code != 200:
                client.failures.append(f"status {response.status_code}: {response.text[:200]}")
                continue
            client.answers.append((sent, response.json()["version"]))


async def edit_storm(server: Server, root, edits: int, clients: list[Client]) -> list[float]:
    """Saves versions 1..edits one after another; returns, per version, when its reload line
    was seen (the gate had opened before it was written)."""
    seen_at = [0.0]
    for version in range(1, edits + 1):
        versioned_app.set_version(root, version)
        deadline = time.monotonic() + 30
        while server.count_lines(RELOAD_LINE) < version:
            assert server.count_lines("reload failed") == 0, server.output
            assert time.monotonic() < deadline, f"edit {version} never reloaded\n{server.output}"
            await asyncio.sleep(0.001)
        seen_at.append(time.monotonic())
        # Let every client get answers from this version before the next save.
        answered = sum(len(c.answers) for c in clients)
        deadline = time.monotonic() + 10
        while sum(len(c.answers) for c in clients) < answered + CLIENTS:
            assert time.monotonic() < deadline, "the clients stopped getting answers"
            await asyncio.sleep(0.002)
    return seen_at


async def run(server: Server, root, edits: int) -> tuple[list[Client], list[float]]:
    clients = [Client() for _ in range(CLIENTS)]
    stop = asyncio.Event()
    tasks = [asyncio.create_task(hammer(server, c, stop)) for c in clients]
    try:
        while sum(len(c.answers) for c in clients) < 2 * CLIENTS:  # all connected and served
            assert not any(t.done() for t in tasks), [t.exception() for t in tasks if t.done()]
            await asyncio.sleep(0.01)
        seen_at = await edit_storm(server, root, edits, clients)
        await asyncio.sleep(0.2)
    finally:
        stop.set()
        await asyncio.gather(*tasks)
    return clients, seen_at


def test_no_request_fails_or_sees_old_code_after_its_reload(tmp_path, start_server, long_run):
    edits = 500 if long_run else 50
    versioned_app.create(tmp_path)
    server = start_server(versioned_app.APP_SPEC, "--port", "0", "--no-access-log", cwd=tmp_path)
    clients, seen_at = asyncio.run(run(server, tmp_path, edits))

    sent = sum(len(c.answers) + len(c.failures) for c in clients)
    failures = [f for c in clients for f in c.failures]
    print(f"\n{edits} edits under {CLIENTS} clients: {sent} requests, {len(failures)} failed")
    assert failures == []
    assert server.count_lines(RELOAD_LINE) == edits

    stale = []
    for index, client in enumerate(clients):
        versions = [v for _, v in client.answers]
        assert versions == sorted(versions), f"client {index} saw a version go back"
        for sent_at, version in client.answers:
            # The newest reload whose line was out before this request was sent.
            expected = bisect.bisect_right(seen_at, sent_at) - 1
            if version < expected:
                stale.append((index, sent_at, version, expected))
    assert stale == [], f"answers from old code after its reload: {stale[:10]}"
    # Every client was served by the last version, and by many versions on the way.
    assert {c.answers[-1][1] for c in clients} == {edits}
    assert len({v for c in clients for _, v in c.answers}) > edits // 2
