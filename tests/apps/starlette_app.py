"""Starlette test application, with a lifespan that yields state."""

from __future__ import annotations

import contextlib

from _markers import mark
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route


@contextlib.asynccontextmanager
async def lifespan(app):
    mark("starlette-startup")
    yield {"db": "connected"}
    mark("starlette-shutdown")


async def homepage(request: Request):
    return PlainTextResponse("hello from starlette")


async def user(request: Request):
    return JSONResponse(
        {"user_id": request.path_params["user_id"], "q": dict(request.query_params)}
    )


async def echo(request: Request):
    body = await request.body()
    return PlainTextResponse(body, media_type="application/octet-stream")


async def state(request: Request):
    return JSONResponse({"db": request.state.db})


async def background(request: Request):
    tag = request.query_params.get("tag", "bg")
    return PlainTextResponse("scheduled", background=BackgroundTask(mark, f"background:{tag}"))


async def url_for(request: Request):
    return JSONResponse({"url": str(request.url_for("user", user_id=7))})


app = Starlette(
    routes=[
        Route("/", homepage),
        Route("/users/{user_id:int}", user, name="user"),
        Route("/echo", echo, methods=["POST"]),
        Route("/state", state),
        Route("/background", background),
        Route("/url-for", url_for),
    ],
    lifespan=lifespan,
)
