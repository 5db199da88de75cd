"""`--static /url=dir`: files served by the server itself. Content, types and validators (ETag,
304s), ranges, directory indexes, every traversal shape refused (raw sockets, so no client
normalises the path first), a mounted prefix owning its URLs, big files streamed, a file served
while a reload holds the gate, and edits under a static directory refreshing pages without
re-running any module."""

from __future__ import annotations

import hashlib
import os
import re
import threading
from pathlib import Path

import httpx
import pytest
from conftest import raw_request, read_markers, run_cli, wait_for_marker, write
from test_livereload import EventReader

SCRIPT_MARK = b"<script data-hmr-serve>"
DATA = bytes(range(256)) * 40  # 10240 bytes, every offset distinguishable
SECRET = "top-secret-outside-the-mount"

APP = """
    import os
    import pathlib

    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    import slow

    with open(os.environ["MARKERS"], "a") as markers:
        markers.write("main executed\\n")

    async def echo(request):
        return PlainTextResponse("echo:" + (await request.body()).decode())

    async def anything(request):
        return PlainTextResponse(f"app saw {request.url.path} {slow.VERSION}")

    app = Starlette(routes=[
        Route("/api/echo", echo, methods=["POST"]),
        Route("/{path:path}", anything, methods=["GET", "POST"]),
    ])
"""


def _layout(root: Path) -> Path:
    """project/ (the cwd: app, public/) and assets/ beside it; returns the project dir."""
    project = root / "project"
    write(project, "main.py", APP)
    write(project, "slow.py", 'VERSION = "v1"\n')
    public = project / "public"
    write(public, "hello.txt", "hello static\n")
    write(public, "style.css", "body { color: red }\n")
    write(public, "app.js", "console.log(1)\n")
    write(public, "index.html", "<html><body><p>root index</p></body></html>")
    write(public, "docs/index.html", "<html><body><p>docs index</p></body></html>")
    (public / "empty").mkdir()
    (public / "data.bin").write_bytes(DATA)
    (public / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 16)
    (public / "name with space.txt").write_text("spaced")
    write(root, "secret.txt", SECRET)
    (public / "link_out.txt").symlink_to(root / "secret.txt")
    # Not to `root` itself: inotify would then report the project's own edits under the link.
    write(root / "outside", "secret.txt", SECRET)
    (public / "link_dir").symlink_to(root / "outside")
    (public / "link_in.css").symlink_to(public / "style.css")
    write(root / "assets", "site.css", "assets v1\n")
    return project


@pytest.fixture
def site(tmp_path, start_server, markers_file):
    project = _layout(tmp_path)
    server = start_server(
        "main:app",
        "--port",
        "0",
        "--static",
        "/static=public",
        "--static",
        f"/assets={tmp_path / 'assets'}",
        "--reload-timeout",
        "0",
        cwd=project,
        env={"MARKERS": str(markers_file)},
    )
    server.project = project
    return server


def _raw(server, path: str, method: str = "GET") -> tuple[int, bytes]:
    request = f"{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    data = raw_request("127.0.0.1", server.port, request.encode("latin-1"))
    match = re.match(rb"HTTP/1\.1 (\d{3}) ", data)
    assert match, data
    return int(match.group(1)), data


def test_content_types_and_headers(site):
    with site.client() as client:
        hello = client.get("/static/hello.txt")
        css = client.get("/static/style.css")
        js = client.get("/static/app.js")
        png = client.get("/static/logo.png")
        spaced = client.get("/static/name%20with%20space.txt")
        linked = client.get("/static/link_in.css")
        assets = client.get("/assets/site.css")
    assert hello.status_code == 200 and hello.text == "hello static\n"
    assert hello.headers["content-type"] == "text/plain; charset=utf-8"
    assert hello.headers["content-length"] == str(len("hello static\n"))
    assert hello.headers["accept-ranges"] == "bytes"
    assert hello.headers["cache-control"] == "no-cache"
    assert hello.headers["etag"].startswith('"')
    assert hello.headers["last-modified"].endswith(" GMT")
    assert css.headers["content-type"] == "text/css; charset=utf-8"
    assert js.headers["content-type"] == "text/javascript; charset=utf-8"
    assert png.headers["content-type"] == "image/png" and png.content.startswith(b"\x89PNG")
    assert spaced.text == "spaced"
    assert linked.text == css.text  # a symlink that stays inside is fine
    assert assets.text == "assets v1\n"
    # The access log still sees them.
    site.wait_for_line(r'"GET /static/hello\.txt HTTP/1\.1" 200')


def test_head_matches_get_without_body(site):
    with site.client() as client:
        get = client.get("/static/data.bin")
        head = client.head("/static/data.bin")
    assert head.status_code == 200 and head.content == b""
    for name in ("content-length", "content-type", "etag", "last-modified"):
        assert head.headers[name] == get.headers[name], name
    assert get.content == DATA


def test_etag_and_if_modified_since_give_304(site):
    path = site.project / "public" / "hello.txt"
    with site.client() as client:
        first = client.get("/static/hello.txt")
        etag, modified = first.headers["etag"], first.headers["last-modified"]
        cached = client.get("/static/hello.txt", headers={"if-none-match": etag})
        weak = client.get("/static/hello.txt", headers={"if-none-match": f'"x", W/{etag}'})
        since = client.get("/static/hello.txt", headers={"if-modified-since": modified})
        older = client.get(
            "/static/hello.txt", headers={"if-modified-since": "Mon, 01 Jan 2001 00:00:00 GMT"}
        )
        # A tag that does not match wins over a date that would.
        both = client.get(
            "/static/hello.txt", headers={"if-none-match": '"other"', "if-modified-since": modified}
        )
        path.write_text("hello again, longer now\n")
        changed = client.get("/static/hello.txt", headers={"if-none-match": etag})
    assert cached.status_code == 304 and cached.content == b""
    assert cached.headers["etag"] == etag
    assert weak.status_code == 304
    assert since.status_code == 304
    assert older.status_code == 200 and older.text == "hello static\n"
    assert both.status_code == 200
    assert changed.status_code == 200 and changed.text == "hello again, longer now\n"
    assert changed.headers["etag"] != etag


def test_ranges(site):
    n = len(DATA)
    with site.client() as client:
        first = client.get("/static/data.bin", headers={"range": "bytes=0-9"})
        suffix = client.get("/static/data.bin", headers={"range": "bytes=-10"})
        open_ended = client.get("/static/data.bin", headers={"range": "bytes=5-"})
        clamped = client.get("/static/data.bin", headers={"range": f"bytes={n - 3}-{n + 100}"})
        beyond = client.get("/static/data.bin", headers={"range": f"bytes={n}-"})
        several = client.get("/static/data.bin", headers={"range": "bytes=0-1,5-6"})
        garbage = client.get("/static/data.bin", headers={"range": "bytes=9-2"})
        etag = first.headers["etag"]
        if_range_ok = client.get(
            "/static/data.bin", headers={"range": "bytes=0-1", "if-range": etag}
        )
        if_range_stale = client.get(
            "/static/data.bin", headers={"range": "bytes=0-1", "if-range": '"stale"'}
        )
    assert first.status_code == 206 and first.content == DATA[:10]
    assert first.headers["content-range"] == f"bytes 0-9/{n}"
    assert first.headers["content-length"] == "10"
    assert suffix.status_code == 206 and suffix.content == DATA[-10:]
    assert suffix.headers["content-range"] == f"bytes {n - 10}-{n - 1}/{n}"
    assert open_ended.status_code == 206 and open_ended.content == DATA[5:]
    assert clamped.status_code == 206 and clamped.content == DATA[-3:]
    assert beyond.status_code == 416
    assert beyond.headers["content-range"] == f"bytes */{n}"
    assert several.status_code == 200 and several.content == DATA
    assert garbage.status_code == 200 and garbage.content == DATA
    assert if_range_ok.status_code == 206 and if_range_ok.content == DATA[:2]
    assert if_range_stale.status_code == 200 and if_range_stale.content == DATA


@pytest.mark.parametrize(
    "path",
    [
        "/static/../secret.txt",
        "/static/public/../../secret.txt",
        "/static/%2e%2e/secret.txt",
        "/static/%2E%2E/secret.txt",
        "/static/.%2e/secret.txt",
        "/static/..%2fsecret.txt",
        "/static/%2e%2e%2fsecret.txt",
        "/static/docs/%2e%2e/%2e%2e/secret.txt",
        "/static/..%5csecret.txt",
        "/static/%2e%2e%5csecret.txt",
        "/static/hello.txt%00.css",
        "/static/%2f..%2fsecret.txt",
        "/static/link_out.txt",
        "/static/link_dir/secret.txt",
        "/static//etc/passwd",
        "/static/%2fetc%2fpasswd",
        "/assets/../project/main.py",
        "/assets/%2e%2e/secret.txt",
    ],
)
def test_traversal_is_refused(site, path):
    status, data = _raw(site, path)
    assert status == 404, data
    assert SECRET.encode() not in data
    assert b"app saw" not in data  # the mount owns the path: never handed to the app
    assert b"root:" not in data


def test_raw_backslash_is_refused(site):
    status, data = _raw(site, "/static/..\\secret.txt")
    # hyper may reject the byte itself (400); either way neither the file nor the app answers.
    assert status in (400, 404), data
    assert SECRET.encode() not in data and b"app saw" not in data


def test_directories_and_their_index(site):
    with site.client() as client:
        docs = client.get("/static/docs/")
        bare = client.get("/static/docs")
        query = client.get("/static/docs?x=1")
        root = client.get("/static/")
        root_bare = client.get("/static")
        empty = client.get("/static/empty/")
        empty_bare = client.get("/static/empty")
        file_slash = client.get("/static/hello.txt/")
        followed = client.get("/static/docs", follow_redirects=True)
    assert docs.status_code == 200 and b"docs index" in docs.content
    assert docs.headers["content-type"] == "text/html; charset=utf-8"
    assert bare.status_code == 307 and bare.headers["location"] == "/static/docs/"
    assert query.headers["location"] == "/static/docs/?x=1"
    assert root.status_code == 200 and b"root index" in root.content
    assert root_bare.status_code == 307 and root_bare.headers["location"] == "/static/"
    assert empty.status_code == 404 and empty_bare.status_code == 404
    assert file_slash.status_code == 404
    assert followed.status_code == 200 and b"docs index" in followed.content


def test_missing_files_and_other_methods_stay_with_the_mount(site):
    with site.client() as client:
        missing = client.get("/static/nope.txt")
        post = client.post("/static/hello.txt", content=b"x")
        post_missing = client.post("/static/nope", content=b"x")
        delete = client.delete("/assets/site.css")
    assert missing.status_code == 404 and b"app saw" not in missing.content
    assert post.status_code == 405 and post.headers["allow"] == "GET, HEAD"
    assert post_missing.status_code == 405
    assert delete.status_code == 405


def test_app_routes_outside_the_prefix_are_untouched(site):
    with site.client() as client:
        root = client.get("/")
        neighbour = client.get("/staticfoo/hello.txt")
        nested = client.get("/api/static/hello.txt")
        echo = client.post("/api/echo", content=b"payload")
    assert root.text == "app saw / v1"
    assert neighbour.text == "app saw /staticfoo/hello.txt v1"
    assert nested.text == "app saw /api/static/hello.txt v1"
    assert echo.text == "echo:payload"


def test_html_files_get_the_live_reload_script(site):
    page = b"<html><body><p>docs index</p></body></html>"
    with site.client() as client:
        browser = client.get("/static/docs/", headers={"accept": "text/html"})
        plain = client.get("/static/docs/", headers={"accept": "*/*"})
    assert browser.content.count(SCRIPT_MARK) == 1
    assert int(browser.headers["content-length"]) == len(browser.content)
    # What the browser got is not the file: no validator may make it reuse that copy later.
    assert "etag" not in browser.headers and "last-modified" not in browser.headers
    assert plain.content == page and "etag" in plain.headers


def test_big_file_is_streamed(site):
    size = 256 * 1024 * 1024
    path = site.project / "public" / "big.bin"
    with open(path, "wb") as file:  # sparse: no disk space, reads as zeros
        file.seek(size - 16)
        file.write(b"the-last-16bytes")

    def peak_rss_kib() -> int:
        status = Path(f"/proc/{site.proc.pid}/status").read_text()
        return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1))

    before = peak_rss_kib()
    digest = hashlib.sha256()
    received = 0
    with httpx.Client(base_url=site.url, trust_env=False, timeout=120) as client:
        with client.stream("GET", "/static/big.bin") as response:
            assert response.status_code == 200
            assert response.headers["content-length"] == str(size)
            for chunk in response.iter_raw():
                received += len(chunk)
                digest.update(chunk)
        tail = client.get("/static/big.bin", headers={"range": "bytes=-16"})
    expected = hashlib.sha256()
    zeros = bytes(1024 * 1024)
    for _ in range(size // len(zeros) - 1):
        expected.update(zeros)
    expected.update(bytes(len(zeros) - 16) + b"the-last-16bytes")
    assert received == size
    assert digest.hexdigest() == expected.hexdigest()
    assert tail.status_code == 206 and tail.content == b"the-last-16bytes"
    # Held whole, the file would have added 256 MiB to the peak; streamed, a few chunks.
    assert peak_rss_kib() - before < 64 * 1024


def test_static_files_do_not_wait_for_a_reload(site, markers_file):
    release = site.project / "release"
    write(
        site.project,
        "slow.py",
        f"""
        import os, time
        with open({str(markers_file)!r}, "a") as markers:
            markers.write("slow started\\n")
        deadline = time.monotonic() + 60
        while not os.path.exists({str(release)!r}) and time.monotonic() < deadline:
            time.sleep(0.01)
        VERSION = "v2"
        """,
    )
    try:
        wait_for_marker(markers_file, "slow started", timeout=30)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{site.output}") from None
    held: dict[str, str] = {}

    def app_request() -> None:
        with site.client() as client:
            held["text"] = client.get("/").text

    waiting = threading.Thread(target=app_request, daemon=True)
    waiting.start()
    try:
        with site.client() as client:
            served = client.get("/static/hello.txt")
        # Served while the reload still runs: the app request cannot have been answered yet.
        assert served.status_code == 200 and served.text == "hello static\n"
        assert "text" not in held
    finally:
        release.write_text("go")
    waiting.join(60)
    assert held["text"] == "app saw / v2"


@pytest.mark.parametrize("where", ["public/style.css", "../assets/site.css"])
def test_edit_under_a_static_dir_refreshes_pages_only(site, markers_file, where):
    reader = EventReader(site)
    path = site.project / where
    path.write_text("edited\n")
    first, _ = reader.wait("reload")
    url = "/static/style.css" if where.startswith("public") else "/assets/site.css"
    with site.client() as client:
        assert client.get(url).text == "edited\n"
    # A new file that no --reload-include names counts too.
    (path.parent / "new.svg").write_text("<svg/>")
    reader.wait("reload", after=first + 1)
    assert read_markers(markers_file).count("main executed") == 1
    assert site.count_lines(r"reloaded \d+ module") == 0


def test_bad_static_options_are_refused(tmp_path):
    project = _layout(tmp_path)
    cases = {
        "/s=missing-dir": "is not a directory",
        "static=public": "is not /URL=DIR",
        "/=public": "is not /URL=DIR",
        "/s": "is not /URL=DIR",
        "/a/../b=public": "must not hold //, . or ..",
        "//a=public": "must not hold //, . or ..",
    }
    for value, message in cases.items():
        result = run_cli(["main:app", "--static", value], cwd=project, env={"MARKERS": os.devnull})
        assert result.returncode == 2, (value, result.stderr)
        assert message in result.stderr, (value, result.stderr)
        assert "Traceback" not in result.stderr
    twice = run_cli(
        ["main:app", "--static", "/s=public", "--static", "/s/=public"],
        cwd=project,
        env={"MARKERS": os.devnull},
    )
    assert twice.returncode == 2 and "mounted twice" in twice.stderr, twice.stderr
