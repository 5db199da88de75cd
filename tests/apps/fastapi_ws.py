"""FastAPI app with WebSocket endpoints beside plain HTTP routes, for tests/test_websocket.py."""

from __future__ import annotations

from _markers import mark
from fastapi import FastAPI, WebSocket, WebSocketDisconnect, WebSocketException, status

app = FastAPI()


@app.get("/")
async def root():
    return {"hello": "http"}


@app.websocket("/rooms/{room}")
async def room(websocket: WebSocket, room: str, name: str = "anon"):
    await websocket.accept(
        subprotocol="chat" if "chat" in websocket.scope["subprotocols"] else None
    )
    count = 0
    try:
        while True:
            text = await websocket.receive_text()
            count += 1
            await websocket.send_json({"room": room, "name": name, "text": text, "n": count})
    except WebSocketDisconnect as exc:
        mark(f"fastapi disconnect {room} {exc.code} {exc.reason or ''}")


@app.websocket("/bytes")
async def reverse_bytes(websocket: WebSocket):
    await websocket.accept()
    async for data in websocket.iter_bytes():
        await websocket.send_bytes(data[::-1])


@app.websocket("/private")
async def private(websocket: WebSocket, token: str = ""):
    if token != "secret":
        # Starlette sends websocket.close before accept: the handshake is refused with 403.
        raise WebSocketException(code=status.WS_1008_POLICY_VIOLATION)
    await websocket.accept()
    await websocket.send_text("welcome")
    await websocket.close(code=4000, reason="bye")
