"""`--root-path` and the endpoints the server answers itself. uvicorn only passes the root path
into the scope (the proxy in front strips it); the live-reload event stream and `--static`
mounts answer at their own paths (what such a proxy forwards) and with the root path in front
(a direct visit), and the URLs they hand the browser (the script's event-stream URL, a static
directory's redirect) carry it, so a page served behind the proxy keeps working."""

from __future__ import annotations

import pytest
from conftest import write

APP = """
    from starlette.applications import Starlette
    from starlette.responses import HTMLResponse
    from starlette.routing import Route

    async def page(request):
        root = request.scope["root_path"]
        return HTMLResponse(f"<html><body><p>root={root}</p></body></html>")

    app = Starlette(routes=[Route("/{path:path}", page)])
"""

HTML = {"accept": "text/html"}


@pytest.fixture
def behind_api(tmp_path, start_server):
    write(tmp_path, "rooted.py", APP)
    write(tmp_path, "public/hello.txt", "hello static\n")
    write(tmp_path, "public/docs/index.html", "<html><body><p>docs</p></body></html>")
    return start_server(
        "rooted:app", "--port", "0", "--root-path", "/api", "--static", "/static=public",
        cwd=tmp_path,
    )  # fmt: skip


def test_the_page_script_asks_for_events_behind_the_root_path(behind_api):
    with behind_api.client() as client:
        page = client.get("/page", headers=HTML)
    assert b"root=/api" in page.content
    assert b"EventSource('/api/__hmr_serve/events')" in page.content, page.text


@pytest.mark.parametrize("path", ["/__hmr_serve/events", "/api/__hmr_serve/events"])
def test_the_event_stream_answers_with_and_without_the_root_path(behind_api, path):
    with behind_api.client() as client, client.stream("GET", path) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")


@pytest.mark.parametrize("prefix", ["", "/api"])
def test_static_mounts_answer_with_and_without_the_root_path(behind_api, prefix):
    with behind_api.client() as client:
        file = client.get(f"{prefix}/static/hello.txt")
        directory = client.get(f"{prefix}/static/docs?x=1")
        outside = client.get(f"{prefix}/other")
    assert file.status_code == 200 and file.text == "hello static\n"
    # The browser is sent where it can reach the directory through the proxy.
    assert directory.status_code == 307
    assert directory.headers["location"] == "/api/static/docs/?x=1"
    assert outside.status_code == 200 and b"root=/api" in outside.content
