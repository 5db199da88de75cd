"""Live browser reload: the script spliced into HTML pages (Content-Length right, compressed and
streaming pages left alone), the server-sent-events endpoint the server answers itself, and a
real headless Chromium page that shows an edit without a manual refresh."""

from __future__ import annotations

import base64
import contextlib
import gzip
import json
import os
import shutil
import subprocess
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import EXAMPLES_DIR, Server

EVENTS = "/__hmr_serve/events"
SCRIPT_MARK = b"<script data-hmr-serve>"
PAGE_BYTES = b"<!doctype html><html><head></head><body><h1>words-v1</h1></BODY></html>"
HTML = {"accept": "text/html"}

PAGES = {
    "pages/__init__.py": "",
    "pages/words.py": 'TEXT = "words-v1"\n',
    "pages/main.py": """
        import gzip

        from starlette.applications import Starlette
        from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
        from starlette.routing import Route

        from pages import words

        PAGE = "<!doctype html><html><head></head><body><h1>{}</h1></BODY></html>"

        async def index(request):
            return HTMLResponse(PAGE.format(words.TEXT))

        async def fragment(request):
            return HTMLResponse("<li>no body tag here</li>")

        async def compressed(request):
            body = gzip.compress(PAGE.format("zipped").encode())
            return Response(body, media_type="text/html", headers={"content-encoding": "gzip"})

        async def streamed(request):
            async def parts():
                yield b"<html><body><p>streamed</p>"
                yield b"</body></html>"
            return StreamingResponse(parts(), media_type="text/html")

        async def data(request):
            return JSONResponse({"text": words.TEXT, "html": "</body>"})

        app = Starlette(routes=[
            Route("/", index), Route("/fragment", fragment), Route("/gzip", compressed),
            Route("/stream", streamed), Route("/json", data),
        ])
    """,
}

FLASK_PAGES = {
    "tplsite.py": """
        from flask import Flask, render_template

        app = Flask(__name__)

        @app.get("/")
        def index():
            return render_template("index.html")
    """,
    "templates/index.html": "<html><body><p>template-v1</p></body></html>\n",
}


def write_files(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")


class EventReader:
    """Reads the event stream on a thread; `wait` for an event by name."""

    def __init__(self, server: Server) -> None:
        self.events: list[tuple[str, str]] = []
        self.status: int | None = None
        self.ended = threading.Event()
        self._cond = threading.Condition()
        self._opened = threading.Event()
        self._server = server
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        if not self._opened.wait(20):
            raise AssertionError(f"event stream did not open\n{server.output}")

    def _read(self) -> None:
        try:
            with httpx.Client(base_url=self._server.url, trust_env=False, timeout=None) as client:
                with client.stream("GET", EVENTS) as response:
                    self.status = response.status_code
                    self.content_type = response.headers.get("content-type")
                    self._opened.set()
                    name, data = "message", []
                    for line in response.iter_lines():
                        if line.startswith("event:"):
                            name = line[6:].strip()
                        elif line.startswith("data:"):
                            data.append(line[5:].strip())
                        elif line == "" and data:
                            with self._cond:
                                self.events.append((name, "\n".join(data)))
                                self._cond.notify_all()
                            name, data = "message", []
        except httpx.HTTPError:
            pass
        finally:
            self._opened.set()
            self.ended.set()

    def wait(self, name: str, after: int = 0, timeout: float = 20.0) -> tuple[int, str]:
        """The first event called `name` at index >= `after`: (index, data)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for index, (event, data) in enumerate(self.events[after:], after):
                    if event == name:
                        return index, data
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"no {name!r} event within {timeout}s: {self.events}\n{self._server.output}"
                    )
                self._cond.wait(min(remaining, 0.2))


@pytest.fixture
def pages_server(tmp_path, start_server):
    write_files(tmp_path, PAGES)
    return start_server(
        "pages.main:app", "--port", "0", "--reload-drain-timeout", "30", cwd=tmp_path
    )


def test_script_is_injected_and_content_length_follows(pages_server):
    with pages_server.client() as client:
        r = client.get("/", headers=HTML)
    assert r.status_code == 200
    assert r.content.count(SCRIPT_MARK) == 1
    # Before the (last, case-insensitive) closing body tag, nothing lost around it.
    assert r.content.startswith(b"<!doctype html><html><head></head><body><h1>words-v1</h1>")
    assert r.content.endswith(b"</script></BODY></html>")
    assert int(r.headers["content-length"]) == len(r.content)


def test_other_responses_are_left_alone(pages_server):
    with pages_server.client(headers=HTML) as client:
        fragment = client.get("/fragment")
        data = client.get("/json")
        stream = client.get("/stream")
        zipped = client.get("/gzip", headers={"accept-encoding": "gzip"})
        head = client.head("/")
        # Not a browser loading a page (an API client, fetch(), a test client): untouched.
        plain = client.get("/", headers={"accept": "*/*"})
    assert plain.content == PAGE_BYTES
    assert fragment.content == b"<li>no body tag here</li>"
    assert int(fragment.headers["content-length"]) == len(fragment.content)
    assert data.json() == {"text": "words-v1", "html": "</body>"}
    assert stream.content == b"<html><body><p>streamed</p></body></html>"
    assert "content-length" not in stream.headers
    # httpx decoded it: the compressed bytes reached the client as the app made them.
    assert zipped.headers["content-encoding"] == "gzip"
    assert SCRIPT_MARK not in zipped.content and b"<h1>zipped</h1>" in zipped.content
    raw = gzip.decompress(_raw_body(pages_server, "/gzip"))
    assert SCRIPT_MARK not in raw
    assert head.status_code == 200 and head.content == b""


def _raw_body(server: Server, path: str) -> bytes:
    with httpx.Client(base_url=server.url, trust_env=False, headers=HTML) as client:
        with client.stream("GET", path, headers={"accept-encoding": "gzip"}) as response:
            length = int(response.headers["content-length"])
            raw = b"".join(response.iter_raw())
    assert len(raw) == length
    return raw


def test_no_livereload_leaves_pages_alone(tmp_path, start_server):
    write_files(tmp_path, PAGES)
    server = start_server("pages.main:app", "--port", "0", "--no-livereload", cwd=tmp_path)
    with server.client() as client:
        page = client.get("/", headers=HTML)
        events = client.get(EVENTS)
    assert SCRIPT_MARK not in page.content
    # Without live reload the path is the app's like any other (here: Starlette's 404).
    assert events.status_code == 404


def test_events_on_reload_failure_and_recovery(pages_server, tmp_path):
    reader = EventReader(pages_server)
    assert reader.status == 200
    assert reader.content_type == "text/event-stream"
    words = tmp_path / "pages" / "words.py"

    words.write_text('TEXT = "words-v2"\n')
    first, _ = reader.wait("reload")
    pages_server.wait_for_line(r"reloaded \d+ modules?")
    with pages_server.client() as client:
        assert b"<h1>words-v2</h1>" in client.get("/").content

    words.write_text('TEXT = ("words-v3"\n')
    failed, data = reader.wait("failed", after=first + 1)
    html = json.loads(data)["html"]
    assert "Reload failed in pages.words (pages/words.py)" in html
    assert "SyntaxError" in html

    words.write_text('TEXT = "words-v4"\n')
    reader.wait("reload", after=failed + 1)
    # The stream never counted as a request the reloads had to wait for.
    assert pages_server.count_lines(r"still running after") == 0


def test_template_change_refreshes_pages(tmp_path, start_server):
    write_files(tmp_path, FLASK_PAGES)
    server = start_server("tplsite:app", "--port", "0", cwd=tmp_path)
    readers = [EventReader(server), EventReader(server)]
    with server.client() as client:
        assert b"template-v1" in client.get("/").content  # Jinja has it cached now
    (tmp_path / "templates" / "index.html").write_text(
        "<html><body><p>template-v2</p></body></html>"
    )
    for reader in readers:
        reader.wait("reload")
    with server.client() as client:
        assert b"template-v2" in client.get("/").content
    # One line says what happened, counting the open pages told to refresh.
    server.wait_for_line("templates/index.html changed: template caches cleared, 2 pages refreshed")


def test_open_event_stream_does_not_hold_shutdown(tmp_path, start_server):
    write_files(tmp_path, PAGES)
    server = start_server(
        "pages.main:app", "--port", "0", "--timeout-graceful-shutdown", "120", cwd=tmp_path
    )
    reader = EventReader(server)
    assert server.stop(timeout=60) == 0
    assert reader.ended.wait(20)
    assert server.count_lines("graceful shutdown timed out") == 0


# -- a real browser ---------------------------------------------------------------------------

CHROMIUM = next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None
)

PAGE_ROUTE = """

from fastapi.responses import HTMLResponse  # noqa: E402

PAGE_TEXT = "browser-v1"


@router.get("/page", response_class=HTMLResponse)
async def page() -> str:
    return f"<html><body><h1 id='text'>{PAGE_TEXT}</h1></body></html>"
"""


class DevTools:
    """A minimal Chrome DevTools protocol client for one page target."""

    def __init__(self, ws_url: str) -> None:
        from websockets.sync.client import connect

        self._stack = contextlib.ExitStack()
        self._ws = self._stack.enter_context(connect(ws_url, max_size=None, open_timeout=30))
        self._next = 0

    def call(self, method: str, **params: object) -> dict:
        self._next += 1
        ident = self._next
        self._ws.send(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            message = json.loads(self._ws.recv(timeout=30))
            if message.get("id") == ident:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]

    def evaluate(self, expression: str) -> object:
        try:
            result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        except RuntimeError:
            return None  # the page is navigating (a reload): ask again
        return result.get("result", {}).get("value")

    def wait_for(self, expression: str, expected: object, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        value = None
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value == expected:
                return
            time.sleep(0.1)
        raise AssertionError(f"{expression} is {value!r}, never {expected!r} within {timeout}s")

    def close(self) -> None:
        self._stack.close()


def _launch_chromium(profile: Path, url: str) -> tuple[subprocess.Popen[bytes], str]:
    proc = subprocess.Popen(
        [
            CHROMIUM,
            "--headless=new",
            "--no-sandbox",  # tests run as root in CI containers
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            "--window-size=1100,720",
            f"--user-data-dir={profile}",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
            url,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    port_file = profile / "DevToolsActivePort"
    deadline = time.monotonic() + 60
    while not (port_file.exists() and port_file.read_text().count("\n") >= 1):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("chromium did not open its DevTools port")
        time.sleep(0.1)
    port = int(port_file.read_text().splitlines()[0])
    while True:
        targets = httpx.get(f"http://127.0.0.1:{port}/json/list", trust_env=False).json()
        pages = [t for t in targets if t.get("type") == "page" and t.get("url") == url]
        if pages:
            return proc, pages[0]["webSocketDebuggerUrl"]
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"chromium never opened {url}: {targets}")
        time.sleep(0.1)


TEXT = "document.getElementById('text') && document.getElementById('text').textContent"
OVERLAY = "!!document.getElementById('hmr-serve-overlay')"


@contextlib.contextmanager
def _browser_project(tmp_path: Path, start_server) -> Iterator[tuple[Server, Path, str, DevTools]]:
    """The FastAPI example with an HTML route, served, and a Chromium page open on that route:
    (server, routes.py, its original text, the page)."""
    project = tmp_path / "fastapi"
    shutil.copytree(EXAMPLES_DIR / "fastapi", project)
    routes = project / "app" / "routes.py"
    original = routes.read_text() + PAGE_ROUTE
    routes.write_text(original)
    server = start_server("app.main:app", "--port", "0", cwd=project)
    url = server.url + "/page"
    browser, ws_url = _launch_chromium(tmp_path / "profile", url)
    devtools = None
    try:
        devtools = DevTools(ws_url)
        devtools.wait_for(TEXT, "browser-v1")
        server.wait_for_line(r'"GET /__hmr_serve/events HTTP/1.1" 200')
        yield server, routes, original, devtools
    finally:
        if devtools is not None:
            devtools.close()
        browser.kill()
        browser.wait(30)


needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="needs Chromium for the browser test (apt-get install -y chromium)"
)


@needs_chromium
def test_open_page_follows_edits_in_a_real_browser(tmp_path, start_server):
    with _browser_project(tmp_path, start_server) as (server, routes, original, devtools):
        routes.write_text(original.replace('"browser-v1"', '"browser-v2"'))
        devtools.wait_for(TEXT, "browser-v2")

        # A failing reload: the open page shows the overlay, sent with the event.
        broken = original.replace('PAGE_TEXT = "browser-v1"', "PAGE_TEXT = model.predict(42)")
        routes.write_text(broken)
        devtools.wait_for(OVERLAY, True)
        shown = devtools.evaluate("document.getElementById('hmr-serve-overlay').innerText")
        assert "Reload failed in app.routes (app/routes.py)" in shown
        assert "AttributeError" in shown
        assert "app/model.py" in shown and "app/routes.py" in shown
        shot = devtools.call("Page.captureScreenshot", format="png")
        png = base64.b64decode(shot["data"])
        assert png.startswith(b"\x89PNG\r\n\x1a\n")
        (tmp_path / "overlay.png").write_bytes(png)
        if os.environ.get("HMR_SERVE_SCREENSHOT"):
            Path(os.environ["HMR_SERVE_SCREENSHOT"]).write_bytes(png)

        # The fix: the page reloads by itself, without the overlay.
        routes.write_text(original.replace('"browser-v1"', '"browser-v3"'))
        devtools.wait_for(TEXT, "browser-v3")
        assert devtools.evaluate(OVERLAY) is False


NAVIGATIONS = 20


def _save_delays(count: int) -> list[float]:
    """0 to 50 ms, evenly spread: a save lands before, during and after the page's script
    connects to the event stream."""
    return [0.050 * i / (count - 1) for i in range(count)]


@needs_chromium
def test_a_save_right_after_navigation_is_never_lost(tmp_path, start_server):
    """The HTML is served, a save is reloaded, and only then does the page connect to the event
    stream: the page must still end on the newest version (and, for a save that breaks the
    code, show the overlay)."""
    with _browser_project(tmp_path, start_server) as (server, routes, original, devtools):
        url = server.url + "/page"
        for n, delay in enumerate(_save_delays(NAVIGATIONS)):
            version = f"race-{n}"
            devtools.call("Page.navigate", url=f"{url}?n={n}")
            time.sleep(delay)
            routes.write_text(original.replace('"browser-v1"', f'"{version}"'))
            devtools.wait_for(TEXT, version)

        broken = original.replace('PAGE_TEXT = "browser-v1"', "PAGE_TEXT = model.predict(42)")
        for n, delay in enumerate(_save_delays(NAVIGATIONS // 2)):
            devtools.call("Page.navigate", url=f"{url}?broken={n}")
            time.sleep(delay)
            routes.write_text(broken)
            devtools.wait_for(OVERLAY, True)
            version = f"fixed-{n}"
            routes.write_text(original.replace('"browser-v1"', f'"{version}"'))
            devtools.wait_for(TEXT, version)
            assert devtools.evaluate(OVERLAY) is False


@needs_chromium
def test_a_page_shown_again_from_the_back_forward_cache_catches_up(tmp_path, start_server):
    """Pages left behind close their event stream (else, kept in the back/forward cache, they
    hold the browser's six connections to the server and the seventh navigation hangs) and
    open it again when shown, so a save made meanwhile still reaches them."""
    with _browser_project(tmp_path, start_server) as (server, routes, original, devtools):
        url = server.url + "/page"
        for n in range(8):
            devtools.call("Page.navigate", url=f"{url}?n={n}")
            devtools.wait_for(TEXT, "browser-v1")
        devtools.call("Page.navigate", url=f"{url}?away")
        devtools.wait_for(TEXT, "browser-v1")
        routes.write_text(original.replace('"browser-v1"', '"while-away"'))
        devtools.wait_for(TEXT, "while-away")
        devtools.evaluate("history.back()")
        where = "location.search + ' ' + document.getElementById('text').textContent"
        devtools.wait_for(where, "?n=7 while-away")
