"""FastAPI test application."""

from __future__ import annotations

import asyncio
import hashlib
from types import SimpleNamespace
from typing import Annotated

from fastapi import FastAPI, File, Form, HTTPException, UploadFile
from fastapi.responses import PlainTextResponse, StreamingResponse
from pydantic import BaseModel

STREAM_CHUNKS = 4
STREAM_DELAY = 0.3


class Item(BaseModel):
    name: str
    price: float
    tags: list[str] = []


def create_app() -> FastAPI:
    api = FastAPI()

    @api.get("/")
    async def root():
        return {"hello": "fastapi"}

    @api.get("/items/{item_id}")
    async def read_item(item_id: int, q: str | None = None, limit: int = 10):
        return {"item_id": item_id, "q": q, "limit": limit}

    @api.post("/items")
    async def create_item(item: Item):
        return {"created": item.model_dump(), "total": item.price * 2}

    @api.post("/form")
    async def form(username: Annotated[str, Form()], age: Annotated[int, Form()]):
        return {"username": username, "age": age}

    @api.post("/upload")
    async def upload(file: Annotated[UploadFile, File()], note: Annotated[str, Form()] = ""):
        data = await file.read()
        return {
            "filename": file.filename,
            "content_type": file.content_type,
            "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "note": note,
        }

    @api.get("/stream")
    async def stream():
        async def gen():
            for i in range(STREAM_CHUNKS):
                if i:
                    await asyncio.sleep(STREAM_DELAY)
                yield f"part-{i}\n".encode()

        return StreamingResponse(gen(), media_type="text/plain")

    @api.get("/sync")
    def sync_endpoint():
        return {"sync": True}

    @api.get("/missing")
    async def missing():
        raise HTTPException(status_code=404, detail="custom missing")

    @api.get("/boom")
    async def boom():
        raise RuntimeError("fastapi boom")

    @api.get("/text", response_class=PlainTextResponse)
    async def text():
        return "plain text"

    return api


app = create_app()

# For a dotted attribute path: ``fastapi_app:namespace.inner.app``.
namespace = SimpleNamespace(inner=SimpleNamespace(app=app))
