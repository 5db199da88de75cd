"""Hot reload with real frameworks: the module that builds the app re-runs, the server swaps in
the rebuilt app object, and lifespan state survives."""

from __future__ import annotations

import time

from conftest import Server, write


def wait_for_json(server: Server, path: str, expected: dict, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    got = None
    with server.client() as client:
        while time.monotonic() < deadline:
            response = client.get(path)
            got = (response.status_code, response.json() if response.content else None)
            if got == (200, expected):
                return
            time.sleep(0.02)
    raise AssertionError(f"{path}: got {got}, expected {expected}\n{server.output}")


FASTAPI_MAIN = """
    from contextlib import asynccontextmanager

    from fastapi import FastAPI, Request

    from api import routes

    @asynccontextmanager
    async def lifespan(app):
        app.state.started = "once"
        yield {"db": "connection-1"}

    app = FastAPI(lifespan=lifespan)
    app.include_router(routes.router)

    @app.get("/state")
    async def state(request: Request):
        return {"db": request.state.db, "started": request.app.state.started}
"""


def test_fastapi_route_edit_rebuilds_app_and_keeps_lifespan_state(tmp_path, start_server):
    write(tmp_path, "api/__init__.py", "")
    write(tmp_path, "api/main.py", FASTAPI_MAIN)
    write(
        tmp_path,
        "api/routes.py",
        """
        from fastapi import APIRouter

        router = APIRouter()

        @router.get("/hello")
        async def hello():
            return {"msg": "v1"}
        """,
    )
    server = start_server("api.main:app", "--port", "0", cwd=tmp_path)
    wait_for_json(server, "/hello", {"msg": "v1"})
    write(
        tmp_path,
        "api/routes.py",
        """
        from fastapi import APIRouter

        router = APIRouter()

        @router.get("/hello")
        async def hello():
            return {"msg": "v2"}

        @router.get("/added")
        async def added():
            return {"added": True}
        """,
    )
    wait_for_json(server, "/hello", {"msg": "v2"})
    wait_for_json(server, "/added", {"added": True})
    wait_for_json(server, "/state", {"db": "connection-1", "started": "once"})
    assert server.count_lines("Waiting for application startup") == 1


def test_flask_blueprint_edit_rebuilds_app(tmp_path, start_server):
    write(
        tmp_path,
        "webapp/__init__.py",
        "",
    )
    write(
        tmp_path,
        "webapp/app.py",
        """
        from flask import Flask

        from site_views import bp

        app = Flask(__name__)
        app.register_blueprint(bp)
        """,
    )
    write(
        tmp_path,
        "site_views.py",
        """
        from flask import Blueprint

        bp = Blueprint("main", __name__)

        @bp.get("/hello")
        def hello():
            return {"msg": "v1"}
        """,
    )
    server = start_server("webapp.app:app", "--port", "0", cwd=tmp_path)
    assert server.interface == "WSGI"
    wait_for_json(server, "/hello", {"msg": "v1"})
    write(
        tmp_path,
        "site_views.py",
        """
        from flask import Blueprint

        bp = Blueprint("main", __name__)

        @bp.get("/hello")
        def hello():
            return {"msg": "v2"}
        """,
    )
    wait_for_json(server, "/hello", {"msg": "v2"})
    assert server.count_lines("reload failed") == 0
