"""The oracle for generated raw-ASGI apps: every app module defines `body()` (what `/` answers,
as JSON) and ends with ASGI_APP; a fresh interpreter imports the module and calls `body()`."""

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


def app_module(text: str) -> str:
    """A module's source (indented as in the test) followed by the ASGI app serving body()."""
    return textwrap.dedent(text).lstrip("\n") + ASGI_APP


def fresh(root: Path, module: str = "pkg.main") -> object:
    """What a fresh process answers for the files as they are now."""
    out = subprocess.run(
        [sys.executable, "-c", _ORACLE, module],
        cwd=root,
        env=server_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


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
