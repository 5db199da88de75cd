"""A raw ASGI 3 app (no framework) with WebSocket endpoints, for tests/test_websocket.py.

Each websocket path exercises one part of the ASGI websocket spec; what the app saw (disconnect
codes, exceptions on send) goes to the markers file so the tests can check it.
"""

from __future__ import annotations

import asyncio
import json

from _jsonable import jsonable
from _markers import mark

SUBPROTOCOLS = ("chat", "superchat")


async def lifespan(scope, receive, send):
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            # Each websocket scope must get a copy of this.
            scope["state"]["greeting"] = "hi"
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


# `/held` receives one message per GET /step, whose response is that message: a test controls
# exactly how far the app has read.
STEPS: asyncio.Queue[asyncio.Future] = asyncio.Queue()


async def step(scope, receive, send):
    taken = asyncio.get_running_loop().create_future()
    await STEPS.put(taken)
    text = await taken
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": text.encode()})


async def held(scope, receive, send):
    await expect_connect(receive)
    await send({"type": "websocket.accept"})
    while True:
        taken = await STEPS.get()
        message = await receive()
        taken.set_result(message.get("text") or message["type"])
        if message["type"] == "websocket.disconnect":
            return


async def http(scope, receive, send):
    if scope["path"] == "/step":
        await step(scope, receive, send)
        return
    headers = dict(scope["headers"])
    body = f"plain http {scope['path']} upgrade={headers.get(b'upgrade', b'').decode()}"
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain")],
        }
    )
    await send({"type": "http.response.body", "body": body.encode()})


async def expect_connect(receive):
    message = await receive()
    assert message["type"] == "websocket.connect", message


async def echo(scope, receive, send):
    """Echoes text and bytes; "close CODE REASON" makes the app close."""
    await expect_connect(receive)
    chosen = next((p for p in scope["subprotocols"] if p in SUBPROTOCOLS), None)
    await send(
        {
            "type": "websocket.accept",
            "subprotocol": chosen,
            "headers": [(b"x-ws-app", b"raw"), (b"set-cookie", b"session=1")],
        }
    )
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            mark(f"disconnect {scope['path']} {message['code']} {message.get('reason', '')}")
            return
        text = message.get("text")
        if text is not None:
            if text.startswith("close "):
                _, code, reason = text.split(" ", 2)
                await send({"type": "websocket.close", "code": int(code), "reason": reason})
                after = await receive()
                mark(f"after close {after['type']} {after['code']}")
                return
            await send({"type": "websocket.send", "text": "echo:" + text})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})


async def scope_report(scope, receive, send):
    await expect_connect(receive)
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.send", "text": json.dumps(jsonable(scope))})
    await send({"type": "websocket.close", "code": 1000})


async def reject(scope, receive, send):
    await expect_connect(receive)
    await send({"type": "websocket.close"})
    message = await receive()
    mark(f"rejected then {message['type']} {message['code']}")


async def deny(scope, receive, send):
    await expect_connect(receive)
    await send(
        {
            "type": "websocket.http.response.start",
            "status": 401,
            "headers": [(b"content-type", b"text/plain"), (b"x-denied", b"yes")],
        }
    )
    await send({"type": "websocket.http.response.body", "body": b"denied ", "more_body": True})
    await send({"type": "websocket.http.response.body", "body": b"by the app"})


async def raise_before_accept(scope, receive, send):
    await expect_connect(receive)
    raise RuntimeError("boom before accept")


async def raise_after_accept(scope, receive, send):
    await expect_connect(receive)
    await send({"type": "websocket.accept"})
    await receive()
    raise RuntimeError("boom after accept")


async def return_without_accept(scope, receive, send):
    await expect_connect(receive)


async def wait_before_accept(scope, receive, send):
    """Never answers the handshake: learns from receive() that the client left."""
    await expect_connect(receive)
    mark("waiting before accept")
    message = await receive()
    mark(f"before accept {message['type']} {message.get('code')}")


async def cancelled_receive(scope, receive, send):
    """A receive given up on (timeout) must not swallow the message that arrives after it."""
    await expect_connect(receive)
    await send({"type": "websocket.accept"})
    try:
        await asyncio.wait_for(receive(), 0.2)
    except asyncio.TimeoutError:
        pass
    else:
        raise AssertionError("the client sent nothing yet")
    await send({"type": "websocket.send", "text": "ready"})
    message = await receive()
    await send({"type": "websocket.send", "text": "got:" + message["text"]})
    await send({"type": "websocket.close"})


async def push(scope, receive, send):
    """Sends many messages without reading, then closes: exercises send-side backpressure."""
    await expect_connect(receive)
    await send({"type": "websocket.accept"})
    count = int(scope["query_string"].decode() or "1000")
    for i in range(count):
        await send({"type": "websocket.send", "text": f"m{i}"})
    await send({"type": "websocket.close", "code": 1000, "reason": "all sent"})


async def send_after_disconnect(scope, receive, send):
    await expect_connect(receive)
    await send({"type": "websocket.accept"})
    message = await receive()
    assert message["type"] == "websocket.disconnect", message
    # Let the server notice that the socket is gone for good.
    await asyncio.sleep(0.2)
    try:
        await send({"type": "websocket.send", "text": "too late"})
    except OSError as exc:
        mark(f"send raised {type(exc).__name__} OSError")
    else:
        mark("send did not raise")


async def state(scope, receive, send):
    await expect_connect(receive)
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.send", "text": json.dumps(sorted(scope["state"]))})
    scope["state"]["mutated"] = True  # a copy: the next connection must not see it
    await send({"type": "websocket.close"})


WEBSOCKET_ROUTES = {
    "/echo": echo,
    "/scope": scope_report,
    "/reject": reject,
    "/deny": deny,
    "/raise-before-accept": raise_before_accept,
    "/raise-after-accept": raise_after_accept,
    "/return-without-accept": return_without_accept,
    "/push": push,
    "/cancelled-receive": cancelled_receive,
    "/wait-before-accept": wait_before_accept,
    "/send-after-disconnect": send_after_disconnect,
    "/state": state,
    "/held": held,
}


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        await lifespan(scope, receive, send)
        return
    if scope["type"] == "http":
        await http(scope, receive, send)
        return
    handler = WEBSOCKET_ROUTES.get(scope["path"], echo)
    await handler(scope, receive, send)
