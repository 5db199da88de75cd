"""The state API end to end: `hmr_serve.keep`, `hmr_serve.on_dispose`, `__hmr_restart__`, and
the warning about threads that module code starts on every re-execution. A real server on a
generated app, real edits; the non-kept part of every answer is compared with a fresh process."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import hmr_serve
import pytest
from conftest import (
    Server,
    edit,
    read_markers,
    served_tree,
    server_env,
    wait_for_marker,
    write,
)
from fresh import asgi_get
from hmr_serve import state

MAIN = """
    import json

    from pkg import leaky, resources, worker

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        body = {
            "resources": resources.VERSION,
            "model": resources.MODEL["name"],
            "pool": resources.pool["name"],
            "worker": worker.VERSION,
            "leaky": leaky.VERSION,
        }
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": json.dumps(body).encode()})
"""

FILES = {
    "pkg/__init__.py": "",
    "pkg/marks.py": """
        import os

        def mark(text):
            path = os.environ.get("MARKERS")
            if path:
                with open(path, "a") as f:
                    f.write(text + "\\n")
    """,
    "pkg/resources.py": """
        import hmr_serve

        from pkg.marks import mark

        def load_model():
            mark("load model")
            return {"name": "model-1"}

        MODEL = hmr_serve.keep("model", load_model)

        @hmr_serve.keep
        def pool():
            mark("open pool")
            return {"name": "pool-1"}

        VERSION = 1
    """,
    "pkg/worker.py": """
        import threading

        import hmr_serve

        from pkg.marks import mark

        VERSION = 1
        stop = threading.Event()
        thread = threading.Thread(target=stop.wait, name=f"worker-{VERSION}", daemon=True)
        thread.start()

        def stop_thread():
            stop.set()
            thread.join(5)
            mark(f"stopped worker {VERSION}")

        hmr_serve.on_dispose(stop_thread)

        @hmr_serve.on_dispose
        def second():
            mark(f"second {VERSION}")

        def broken():
            raise RuntimeError("dispose boom")

        hmr_serve.on_dispose(broken)
    """,
    "pkg/leaky.py": """
        import threading
        import time

        VERSION = 1
        threading.Thread(target=time.sleep, args=(3600,), name="leaky-thread", daemon=True).start()
    """,
    "pkg/main.py": MAIN,
}


def oracle(root: Path) -> dict:
    answer = asgi_get(root)
    assert "error" not in answer, answer
    return json.loads(answer["body"])


def current(server: Server) -> dict:
    with server.client() as client:
        response = client.get("/")
        assert response.status_code == 200
        return response.json()


def settle(root: Path, server: Server, timeout: float = 20.0) -> dict:
    expected = oracle(root)
    deadline = time.monotonic() + timeout
    got = None
    while time.monotonic() < deadline:
        try:
            got = current(server)
        except Exception as exc:  # a restarting server may drop a connection
            got = repr(exc)
        if got == expected:
            return got
        time.sleep(0.05)
    raise AssertionError(f"server answers {got}, a fresh process {expected}\n{server.output}")


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    root = tmp_path_factory.mktemp("state-app")
    markers = root / "markers.txt"
    with served_tree(root, FILES, "pkg.main:app", env={"MARKERS": str(markers)}) as served:
        yield root, *served, markers


def test_kept_values_survive_a_reexecution(session):
    root, server, _, markers = session
    settle(root, server)
    edit(root, "pkg/resources.py", "VERSION = 1", "VERSION = 2")
    assert settle(root, server)["resources"] == 2
    assert read_markers(markers).count("load model") == 1
    assert read_markers(markers).count("open pool") == 1


def test_kept_values_stay_after_a_failed_reload(session):
    root, server, _, markers = session
    failures = server.count_lines("reload failed")
    edit(root, "pkg/resources.py", "VERSION = 2", 'VERSION = 3\nraise RuntimeError("half done")')
    server.wait_for_line(r"reload failed in pkg\.resources .*half done")
    assert server.count_lines("reload failed") == failures + 1
    edit(root, "pkg/resources.py", 'VERSION = 3\nraise RuntimeError("half done")', "VERSION = 4")
    assert settle(root, server)["resources"] == 4
    assert read_markers(markers).count("load model") == 1
    assert read_markers(markers).count("open pool") == 1


def test_dispose_callbacks_run_newest_first_before_the_reexecution(session):
    root, server, _, markers = session
    lines = server.count_lines("started threads")
    edit(root, "pkg/worker.py", "VERSION = 1", "VERSION = 2")
    assert settle(root, server)["worker"] == 2
    wait_for_marker(markers, "stopped worker 1")
    disposed = [m for m in read_markers(markers) if m.startswith(("second", "stopped"))]
    # They saw the old namespace (VERSION 1): they ran before the new code did.
    assert disposed == ["second 1", "stopped worker 1"]
    server.wait_for_line(r"dispose callback broken of pkg\.worker failed: RuntimeError")
    # The worker thread was stopped, so the new one is no leak.
    assert server.count_lines("started threads") == lines


def test_dispose_callbacks_registered_by_the_last_run_are_the_ones_run(session):
    root, server, _, markers = session
    edit(root, "pkg/worker.py", "VERSION = 2", "VERSION = 3")
    assert settle(root, server)["worker"] == 3
    wait_for_marker(markers, "stopped worker 2")
    disposed = [m for m in read_markers(markers) if m.startswith(("second", "stopped"))]
    assert disposed == ["second 1", "stopped worker 1", "second 2", "stopped worker 2"]


def test_thread_started_at_import_is_reported(session):
    root, server, _, _ = session
    edit(root, "pkg/leaky.py", "VERSION = 1", "VERSION = 2")
    assert settle(root, server)["leaky"] == 2
    line = server.wait_for_line("started threads that are still running")
    assert "pkg.leaky: 'leaky-thread'" in line
    assert "pkg.worker" not in line
    assert "hmr_serve.on_dispose" in line


def test_no_request_failed(session):
    _, server, background, _ = session
    time.sleep(0.2)
    assert background.sent > 20
    assert background.failures == []


# -- __hmr_restart__ -----------------------------------------------------------------------------

RESTART_FILES = {
    "pkg/__init__.py": "",
    "pkg/config.py": "DSN = 'db-1'\n",
    "pkg/db.py": """
        from pkg import config

        __hmr_restart__ = True  # a connection the app cannot rebuild in place

        CONNECTION = "connected to " + config.DSN
    """,
    "pkg/plain.py": "VALUE = 1\n",
    "pkg/main.py": """
        import json

        from pkg import db, plain

        async def app(scope, receive, send):
            if scope["type"] != "http":
                return
            body = {"db": db.CONNECTION, "plain": plain.VALUE}
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": json.dumps(body).encode()})
    """,
}

# Whichever way the server handles it: a real restart or, without one, a hot reload anyway.
RESTART_LINE = r"restarting the process: .*__hmr_restart__|__hmr_restart__.*restart unavailable"


def test_restart_marker_in_the_closure_takes_the_restart_path(tmp_path, start_server):
    for rel, text in RESTART_FILES.items():
        write(tmp_path, rel, text)
    server = start_server("pkg.main:app", "--port", "0", cwd=tmp_path)
    settle(tmp_path, server)
    # pkg.db is not edited, but it imports pkg.config, so it would be re-executed.
    write(tmp_path, "pkg/config.py", "DSN = 'db-2'\n")
    line = server.wait_for_line(RESTART_LINE)
    assert "pkg.db sets __hmr_restart__ = True" in line
    assert settle(tmp_path, server)["db"] == "connected to db-2"


def test_restart_marker_added_by_the_edit_itself(tmp_path, start_server):
    for rel, text in RESTART_FILES.items():
        write(tmp_path, rel, text)
    server = start_server("pkg.main:app", "--port", "0", cwd=tmp_path)
    settle(tmp_path, server)
    write(tmp_path, "pkg/plain.py", "__hmr_restart__ = True\nVALUE = 2\n")
    line = server.wait_for_line(RESTART_LINE)
    assert "pkg.plain sets __hmr_restart__ = True" in line
    assert settle(tmp_path, server)["plain"] == 2


def test_module_without_the_marker_hot_reloads(tmp_path, start_server):
    files = dict(RESTART_FILES)
    files["pkg/db.py"] = files["pkg/db.py"].replace("__hmr_restart__ = True", "OTHER = True")
    for rel, text in files.items():
        write(tmp_path, rel, text)
    server = start_server("pkg.main:app", "--port", "0", cwd=tmp_path)
    write(tmp_path, "pkg/config.py", "DSN = 'db-3'\n")
    assert settle(tmp_path, server)["db"] == "connected to db-3"
    assert server.count_lines("__hmr_restart__") == 0
    assert server.count_lines(r"reloaded \d+ modules?") == 1


# -- without the server --------------------------------------------------------------------------


def test_plain_python_calls_each_factory_once_and_never_disposes(tmp_path):
    for rel, text in FILES.items():
        write(tmp_path, rel, text)
    markers = tmp_path / "markers.txt"
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import pkg.main as m, pkg.resources as r, pkg.worker as w;"
            "print(r.MODEL['name'], r.pool['name'], w.VERSION)",
        ],
        cwd=tmp_path,
        env=server_env({"MARKERS": str(markers), "PYTHONPATH": str(tmp_path)}),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert out.stdout.split() == ["model-1", "pool-1", "1"]
    assert read_markers(markers) == ["load model", "open pool"]


def test_keep_in_process():
    calls = []

    def factory():
        calls.append(1)
        return object()

    first = hmr_serve.keep("test-key", factory)
    assert hmr_serve.keep("test-key", factory) is first
    assert len(calls) == 1

    @hmr_serve.keep
    def decorated():
        return ["value"]

    assert decorated == ["value"]
    assert state._kept[__name__]["decorated"] is decorated
    with pytest.raises(TypeError):
        hmr_serve.keep("no factory")  # type: ignore[call-overload]
    state._kept.pop(__name__, None)


def test_on_dispose_in_process():
    ran = []
    hmr_serve.on_dispose(lambda: ran.append("first"))

    @hmr_serve.on_dispose
    def failing():
        raise RuntimeError("logged, not raised")

    hmr_serve.on_dispose(lambda: ran.append("last"))
    assert ran == []
    assert state.dispose(__name__) == 3
    assert ran == ["last", "first"]
    assert state.dispose(__name__) == 0


def test_restart_marker_pattern():
    from hmr_serve.reload.reloader import _MARKER_LINE

    assert _MARKER_LINE.search(b"x = 1\n__hmr_restart__ = True\n")
    assert _MARKER_LINE.search(b"__hmr_restart__: bool = True  # why\n")
    assert not _MARKER_LINE.search(b"__hmr_restart__ = False\n")
    assert not _MARKER_LINE.search(b"    __hmr_restart__ = True\n")


# -- the FastAPI example -------------------------------------------------------------------------


def test_fastapi_example_keeps_its_model_and_items_across_edits(tmp_path, start_server):
    import shutil

    from conftest import EXAMPLES_DIR

    root = tmp_path / "fastapi"
    shutil.copytree(EXAMPLES_DIR / "fastapi", root, ignore=shutil.ignore_patterns("__pycache__"))
    server = start_server("app.main:app", "--port", "0", cwd=root)
    with server.client() as client:
        load_time = client.get("/").json()["model_load_s"]
        created = client.post("/items", json={"name": "widget", "price": 9.5}).json()

        # routes.py runs again: the kept items are still valid StoredItems for the response.
        edit(root, "app/routes.py", "hello from the hmr-serve", "hi from the hmr-serve")
        deadline = time.monotonic() + 15
        while client.get("/").json()["message"].startswith("hello"):
            assert time.monotonic() < deadline, server.output
            time.sleep(0.05)
        response = client.get("/items")
        assert response.status_code == 200, response.text
        assert response.json() == [created]

        # model.py runs again without the two-second load.
        edit(root, "app/model.py", '"great",', '"great", "superb",')
        deadline = time.monotonic() + 15
        while client.get("/predict", params={"text": "superb"}).json()["label"] != "positive":
            assert time.monotonic() < deadline, server.output
            time.sleep(0.05)
        assert client.get("/").json()["model_load_s"] == load_time
    line = server.wait_for_line(r"reloaded \d+ modules? in .* after changes to app/model\.py")
    assert float(re.search(r"in ([\d.]+) ms", line).group(1)) < 1000
    assert server.count_lines("reload failed") == 0
