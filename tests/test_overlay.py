"""The error overlay: a raising view or a failed reload shows the exception (user frames, source
lines) to HTML clients, a short JSON body to others, never secrets; the status stays 500; after
the fix pages serve normally. Real servers on generated FastAPI and Flask apps."""

from __future__ import annotations

import json
import textwrap
import time
from pathlib import Path

import pytest
from conftest import Server
from hmr_serve import overlay

HTML = {"accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
JSON = {"accept": "application/json"}
SECRET_ENV = "hmr-serve-test-secret-env-value"

FASTAPI_FILES = {
    "web/__init__.py": "",
    "web/words.py": 'GREETING = "hello-v1"\n',
    "web/helpers.py": """
        def explode(n):
            token = "tok-" + "x9" * n  # a local value: must never appear on the page
            raise LookupError(f"no such token ({len(token)} chars)")
    """,
    "web/main.py": """
        from fastapi import FastAPI
        from fastapi.responses import HTMLResponse

        from web import helpers, words

        app = FastAPI()

        @app.get("/", response_class=HTMLResponse)
        async def index():
            return f"<html><body><h1>{words.GREETING}</h1></body></html>"

        @app.get("/api")
        async def api():
            return {"greeting": words.GREETING}

        @app.get("/boom")
        async def boom():
            return helpers.explode(3)

        @app.get("/markup")
        async def markup():
            raise ValueError("<script>alert('x')</script>")
    """,
}

FLASK_FILES = {
    "shopweb/__init__.py": "",
    "shopweb/app.py": """
        from flask import Flask

        from flask_words import GREETING

        app = Flask(__name__)

        @app.get("/")
        def index():
            return f"<html><body><h1>{GREETING}</h1></body></html>"

        @app.get("/boom")
        def boom():
            return {"ratio": 1 / len([])}
    """,
    "flask_words.py": 'GREETING = "flask-v1"\n',
}


def write_files(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")


def edit(server: Server, path: Path, text: str, outcome: str, timeout: float = 20.0) -> None:
    """Write `path` and wait for the reload's log line (`reloaded` or `reload failed`)."""
    before = server.count_lines(outcome)
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    deadline = time.monotonic() + timeout
    while server.count_lines(outcome) == before:
        if time.monotonic() > deadline:
            raise AssertionError(f"no {outcome!r} line after editing {path}\n{server.output}")
        time.sleep(0.02)


@pytest.fixture
def fastapi_server(tmp_path, start_server):
    write_files(tmp_path, FASTAPI_FILES)
    return start_server(
        "web.main:app", "--port", "0", cwd=tmp_path, env={"HMR_SECRET_TOKEN": SECRET_ENV}
    )


def test_raising_view_shows_the_overlay_to_a_browser(fastapi_server):
    with fastapi_server.client() as client:
        r = client.get("/boom", headers=HTML)
    assert r.status_code == 500
    assert r.headers["content-type"].startswith("text/html")
    page = r.text
    assert int(r.headers["content-length"]) == len(r.content)
    assert f'id="{overlay.OVERLAY_ID}"' in page
    assert "LookupError: no such token (10 chars)" in page
    # The user's frames, with their source lines; the framework's collapsed.
    assert "web/main.py, line 18, in boom" in page
    assert "web/helpers.py, line 3, in explode" in page
    assert "raise LookupError(" in page
    assert "library frames hidden" in page
    assert "starlette" not in page and "fastapi/routing.py" not in page
    # Nothing but the traceback: no local values, no environment.
    assert "tok-x9x9x9" not in page
    assert SECRET_ENV not in page
    # The server log keeps the full traceback.
    fastapi_server.wait_for_line(r"LookupError: no such token")
    fastapi_server.wait_for_line(r'"GET /boom HTTP/1.1" 500')


def test_raising_view_gives_other_clients_json_or_text(fastapi_server):
    with fastapi_server.client() as client:
        r = client.get("/boom", headers=JSON)
        default = client.get("/boom")
    assert r.status_code == 500
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert body == {"error": "no such token (10 chars)", "type": "LookupError"}
    assert "<" not in r.text
    # Neither HTML nor JSON asked for (curl, httpx): a short text.
    assert default.status_code == 500
    assert default.headers["content-type"].startswith("text/plain")
    assert default.text == "Internal Server Error\nLookupError: no such token (10 chars)\n"


def test_everything_on_the_page_is_escaped(fastapi_server):
    with fastapi_server.client() as client:
        r = client.get("/markup", headers=HTML)
    assert r.status_code == 500
    assert "<script>alert" not in r.text
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in r.text


def test_no_error_page_gives_the_plain_500(tmp_path, start_server):
    write_files(tmp_path, FASTAPI_FILES)
    server = start_server("web.main:app", "--port", "0", "--no-error-page", cwd=tmp_path)
    with server.client() as client:
        r = client.get("/boom", headers=HTML)
        page = client.get("/", headers=HTML)
    assert r.status_code == 500
    assert r.text == "Internal Server Error"
    assert f'id="{overlay.OVERLAY_ID}"' not in page.text
    server.wait_for_line(r"LookupError: no such token")


def test_syntax_error_at_reload_shows_on_pages_until_fixed(fastapi_server, tmp_path):
    words = tmp_path / "web" / "words.py"
    edit(fastapi_server, words, 'GREETING = "hello-v2"\n', "reloaded")
    edit(fastapi_server, words, 'GREETING = ("hello-v3"\n', "reload failed")
    with fastapi_server.client() as client:
        page = client.get("/", headers=HTML)
        api = client.get("/api", headers=JSON)
    # The previous code keeps serving, and the page says the reload failed and where.
    assert page.status_code == 200
    assert "<h1>hello-v2</h1>" in page.text
    assert "Reload failed in web.words (web/words.py)" in page.text
    assert "SyntaxError" in page.text
    assert "GREETING = (&quot;hello-v3&quot;" in page.text
    assert int(page.headers["content-length"]) == len(page.content)
    # JSON stays JSON: no banner in API answers.
    assert api.json() == {"greeting": "hello-v2"}

    edit(fastapi_server, words, 'GREETING = "hello-v4"\n', "reloaded")
    with fastapi_server.client() as client:
        page = client.get("/", headers=HTML)
    assert "<h1>hello-v4</h1>" in page.text
    assert f'id="{overlay.OVERLAY_ID}"' not in page.text


@pytest.fixture
def flask_server(tmp_path, start_server):
    write_files(tmp_path, FLASK_FILES)
    return start_server("shopweb.app:app", "--port", "0", cwd=tmp_path)


def test_flask_raising_view_shows_the_overlay(flask_server):
    with flask_server.client() as client:
        html = client.get("/boom", headers=HTML)
        data = client.get("/boom", headers=JSON)
        fine = client.get("/", headers=HTML)
    assert html.status_code == 500
    assert "ZeroDivisionError" in html.text
    assert "shopweb/app.py, line 13, in boom" in html.text
    assert "return {&quot;ratio&quot;: 1 / len([])}" in html.text
    assert "flask/app.py" not in html.text
    assert data.status_code == 500
    assert data.json() == {"error": "division by zero", "type": "ZeroDivisionError"}
    assert fine.status_code == 200 and "ZeroDivisionError" not in fine.text
    # Flask logged it itself, as it does under any server.
    flask_server.wait_for_line(r"ZeroDivisionError: division by zero")


def test_flask_import_time_exception_at_reload(flask_server, tmp_path):
    words = tmp_path / "flask_words.py"
    edit(flask_server, words, 'GREETING = {}["missing"]\n', "reload failed")
    with flask_server.client() as client:
        page = client.get("/", headers=HTML)
    assert page.status_code == 200
    assert "<h1>flask-v1</h1>" in page.text
    assert "Reload failed in flask_words (flask_words.py)" in page.text
    assert "KeyError" in page.text
    assert "flask_words.py, line 1, in &lt;module&gt;" in page.text

    edit(flask_server, words, 'GREETING = "flask-v2"\n', "reloaded")
    with flask_server.client() as client:
        page = client.get("/", headers=HTML)
    assert "<h1>flask-v2</h1>" in page.text
    assert "Reload failed" not in page.text


# -- who may see tracebacks (the decision itself; tests can only connect from loopback) --------


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("127.0.0.1", True),
        ("127.10.0.3", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        (None, True),  # a Unix socket peer
        ("192.168.1.7", False),
        ("10.0.0.2", False),
        ("2001:db8::5", False),
        ("::ffff:192.168.1.7", False),
        ("", False),
        ("not-an-address", False),
    ],
)
def test_only_loopback_clients_see_tracebacks(host, allowed):
    assert overlay.may_see_errors(host, show_to_all=False) is allowed
    assert overlay.may_see_errors(host, show_to_all=True) is True


def test_a_remote_client_gets_a_plain_500_unless_shown_to_all():
    try:
        raise RuntimeError("details only for the developer")
    except RuntimeError as exc:
        error = exc
    headers, body = overlay.request_error(error, "text/html", "192.168.1.7", show_to_all=False)
    assert body == b"Internal Server Error"
    assert dict(headers)["content-type"].startswith("text/plain")
    headers, body = overlay.request_error(error, "text/html", "192.168.1.7", show_to_all=True)
    assert b"details only for the developer" in body
    headers, body = overlay.request_error(error, "application/json", "::1", show_to_all=False)
    assert json.loads(body) == {"error": "details only for the developer", "type": "RuntimeError"}


def test_show_errors_to_all_still_serves_the_overlay(tmp_path, start_server):
    write_files(tmp_path, FASTAPI_FILES)
    server = start_server("web.main:app", "--port", "0", "--show-errors-to-all", cwd=tmp_path)
    with server.client() as client:
        r = client.get("/boom", headers=HTML)
    assert r.status_code == 500 and "web/helpers.py, line 3" in r.text
