"""The fresh-process oracle: what a new interpreter, importing the files as they are now, says
the server should answer. `run_fresh` runs any oracle script; `fresh` is the one for generated
raw-ASGI apps: every app module defines `body()` (what `/` answers, as JSON) and ends with
ASGI_APP; a fresh interpreter imports the module and calls `body()`."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from conftest import Server, poll_until, server_env

ASGI_APP = """

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    import json as _json

    data = _json.dumps(body()).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": data})
"""

_ORACLE = textwrap.dedent(
    """
    import importlib, json, sys
    sys.path.insert(0, ".")
    try:
        module = importlib.import_module(sys.argv[1])
    except BaseException as exc:
        print(json.dumps({"error": type(exc).__name__}))
        raise SystemExit(0)
    print(json.dumps(module.body()))
    """
)


_ASGI_GET = textwrap.dedent(
    """
    import asyncio, importlib, json, sys
    sys.path.insert(0, ".")
    module, _, name = sys.argv[1].partition(":")
    try:
        app = getattr(importlib.import_module(module), name)
    except BaseException as exc:
        print(json.dumps({"error": type(exc).__name__}))
        raise SystemExit(0)
    async def main():
        status, body = [], []
        async def receive():
            return {"type": "http.request", "body": b"", "more_body": False}
        async def send(message):
            if message["type"] == "http.response.start":
                status.append(message["status"])
            elif message["type"] == "http.response.body":
                body.append(message.get("body", b""))
        scope = {"type": "http", "method": "GET", "path": sys.argv[2], "raw_path": b"/",
                 "query_string": b"", "headers": [], "root_path": "", "scheme": "http",
                 "server": ("testserver", 80), "client": ("127.0.0.1", 1),
                 "http_version": "1.1", "asgi": {"version": "3.0"}}
        await app(scope, receive, send)
        print(json.dumps({"status": status[0], "body": b"".join(body).decode()}))
    asyncio.run(main())
    """
)


def asgi_get(
    root: Path, path: str = "/", app: str = "pkg.main:app", env: dict[str, str] | None = None
) -> dict:
    """What the ASGI `app` answers to GET `path` in a fresh process (no lifespan):
    {"status": ..., "body": text}, or {"error": exception name} when the import fails."""
    answer = run_fresh(root, _ASGI_GET, app, path, env=env)
    assert isinstance(answer, dict)
    return answer


def app_module(text: str) -> str:
    """A module's source (indented as in the test) followed by the ASGI app serving body()."""
    return textwrap.dedent(text).lstrip("\n") + ASGI_APP


def run_fresh(
    root: Path,
    script: str,
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 60,
) -> object:
    """Runs `script` with `args` in a fresh interpreter in `root` (the servers' environment plus
    `env`) and returns the JSON its last line of output holds."""
    out = subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=root,
        env=server_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.splitlines()[-1])


def fresh(root: Path, module: str = "pkg.main") -> object:
    """What a fresh process answers for the files as they are now."""
    return run_fresh(root, _ORACLE, module)


def served(server: Server) -> object:
    with server.client() as client:
        response = client.get("/")
        assert response.status_code == 200, response.text
        return response.json()


def settle(root: Path, server: Server, module: str = "pkg.main", timeout: float = 20.0) -> object:
    """Polls until the server answers what a fresh process answers; returns that answer."""
    expected = fresh(root, module)
    assert not (isinstance(expected, dict) and "error" in expected), expected
    return poll_until(lambda: served(server), expected, server, timeout)
