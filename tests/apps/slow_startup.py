"""An ASGI app whose lifespan startup takes a minute: for stopping the server while it starts."""

from __future__ import annotations

import asyncio

from _markers import mark


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        message = await receive()
        if message["type"] == "lifespan.startup":
            mark("slow-startup-began")
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                mark("slow-startup-cancelled")
                raise
            await send({"type": "lifespan.startup.complete"})
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"started"})
