"""A raw ASGI 3 application (no framework) used by the end-to-end tests."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
from types import SimpleNamespace
from urllib.parse import parse_qs

from _jsonable import jsonable
from _markers import mark

STREAM_CHUNKS = 4
STREAM_DELAY = 0.3


async def read_body(receive) -> tuple[bytes, int]:
    """Read the whole request body; return it and the number of messages."""
    chunks = []
    messages = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise RuntimeError("client disconnected while sending the body")
        messages += 1
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks), messages


async def respond(send, status: int, body: bytes, content_type: bytes = b"text/plain", headers=()):
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def respond_json(send, data, status: int = 200, headers=()):
    body = json.dumps(data).encode()
    await respond(send, status, body, b"application/json", headers)


async def lifespan(scope, receive, send):
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            mark("startup")
            state = scope.get("state")
            if state is not None:
                state["greeting"] = "hello from lifespan"
                state["answer"] = 42
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            mark("shutdown")
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        await lifespan(scope, receive, send)
        return
    if scope["type"] != "http":
        return

    path = scope["path"]
    root_path = scope.get("root_path", "")
    # Servers differ on whether `path` includes `root_path`; route on the rest.
    if root_path and path.startswith(root_path + "/"):
        path = path[len(root_path) :]
    query = parse_qs(scope["query_string"].decode("latin-1"))

    def arg(name: str, default: str) -> str:
        return query.get(name, [default])[0]

    if path == "/":
        await respond(send, 200, b"hello from raw asgi")
    elif path.startswith("/scope"):
        body, _ = await read_body(receive)
        info = {k: jsonable(v) for k, v in scope.items() if k != "state"}
        info["state"] = jsonable(dict(scope["state"])) if "state" in scope else None
        info["body"] = body.decode("latin-1")
        await respond_json(send, info)
    elif path == "/echo":
        body, messages = await read_body(receive)
        await respond(
            send,
            200,
            body,
            b"application/octet-stream",
            [(b"x-receive-messages", str(messages).encode())],
        )
    elif path == "/sha256":
        digest = hashlib.sha256()
        length = 0
        messages = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise RuntimeError("client disconnected")
            messages += 1
            chunk = message.get("body", b"")
            digest.update(chunk)
            length += len(chunk)
            if not message.get("more_body", False):
                break
        await respond_json(
            send, {"sha256": digest.hexdigest(), "length": length, "messages": messages}
        )
    elif path == "/download":
        size = int(arg("size", "0"))
        seed = int(arg("seed", "0"))
        data = random.Random(seed).randbytes(size)
        # No content-length: the server has to use chunked transfer encoding.
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/octet-stream")],
            }
        )
        step = 64 * 1024
        for start in range(0, size, step):
            await send(
                {
                    "type": "http.response.body",
                    "body": data[start : start + step],
                    "more_body": True,
                }
            )
        await send({"type": "http.response.body", "body": b""})
    elif path == "/stream":
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/plain")],
            }
        )
        for i in range(STREAM_CHUNKS):
            if i:
                await asyncio.sleep(STREAM_DELAY)
            await send(
                {"type": "http.response.body", "body": f"chunk-{i}\n".encode(), "more_body": True}
            )
        await send({"type": "http.response.body", "body": b""})
    elif path == "/slow":
        mark("slow-started")
        await asyncio.sleep(float(arg("seconds", "1")))
        mark("slow-finished")
        await respond(send, 200, b"slow done")
    elif path == "/sleep":
        await asyncio.sleep(int(arg("ms", "0")) / 1000)
        await respond_json(send, {"id": arg("id", "")})
    elif path == "/error-before":
        raise RuntimeError("boom before start")
    elif path == "/error-after":
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/plain")],
            }
        )
        await send({"type": "http.response.body", "body": b"partial body", "more_body": True})
        await asyncio.sleep(0.05)
        raise RuntimeError("boom after start")
    elif path == "/env":
        await respond_json(send, {"value": os.environ.get(arg("name", ""))})
    elif path == "/state":
        await respond_json(send, jsonable(dict(scope.get("state") or {})))
    elif path == "/multi-header":
        await respond(
            send,
            200,
            b"ok",
            headers=[(b"set-cookie", b"a=1"), (b"set-cookie", b"b=2"), (b"x-app", b"raw")],
        )
    else:
        await respond(send, 404, b"not found")


def create_app():
    """Zero-argument factory for --factory."""
    mark("factory-called")
    return app


# For a dotted attribute path: ``raw_asgi:namespace.inner.app``.
namespace = SimpleNamespace(inner=SimpleNamespace(app=app))
