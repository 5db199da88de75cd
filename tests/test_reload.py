"""Hot reload end to end: a real server on a generated app, real file edits, and after every
edit the response must equal what a fresh process gives for the same files (the oracle)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from conftest import Server, poll_until, reloads, served_tree, write
from fresh import asgi_get

FILES = {
    "pkg/__init__.py": "",
    "pkg/config.py": "VALUE = 1\n",
    "pkg/util.py": """
        from pkg.config import VALUE

        COMPUTED = VALUE + 100

        def compute():
            return VALUE * 10
    """,
    "pkg/service.py": """
        from pkg import util

        RESULT = util.COMPUTED * 2
    """,
    "pkg/expensive.py": """
        import os
        import time

        time.sleep(0.2)  # stands for a model that takes seconds to load
        with open(os.environ["COUNT_FILE"], "a") as f:
            f.write("loaded\\n")
        MODEL = "model-v1"
    """,
    "pkg/cycle_a.py": """
        from pkg import cycle_b

        A = "a1"

        def both():
            return A + "+" + cycle_b.B
    """,
    "pkg/cycle_b.py": """
        import pkg.cycle_a

        B = "b1"
    """,
    "pkg/lazy.py": 'X = "lazy1"\n',
    "pkg/main.py": """
        import importlib
        import json

        from pkg import cycle_a, expensive, service, util

        async def app(scope, receive, send):
            if scope["type"] != "http":
                return
            lazy = importlib.import_module("pkg.lazy")
            body = {
                "result": service.RESULT,
                "compute": util.compute(),
                "model": expensive.MODEL,
                "cycle": cycle_a.both(),
                "lazy": lazy.X,
            }
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": json.dumps(body).encode()})
    """,
}


def oracle(root: Path) -> dict:
    """What a fresh process answers for the files as they are now."""
    answer = asgi_get(root, env={"COUNT_FILE": str(root / "oracle-count")})
    return answer if "error" in answer else json.loads(answer["body"])


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    root = tmp_path_factory.mktemp("reload-app")
    env = {"COUNT_FILE": str(root / "count")}
    with served_tree(root, FILES, "pkg.main:app", "--no-access-log", env=env) as served:
        yield root, *served


def current(server: Server) -> dict:
    with server.client() as client:
        response = client.get("/")
        assert response.status_code == 200
        return response.json()


def settle(root: Path, server: Server, timeout: float = 15.0) -> dict:
    """Polls until the server answers what a fresh process answers; returns that answer."""
    return poll_until(lambda: current(server), oracle(root), server, timeout)


def test_initial_response_matches_a_fresh_process(session):
    root, server, _ = session
    assert settle(root, server)["result"] == 202


def test_deep_value_edit_propagates_through_every_layer(session):
    root, server, _ = session
    write(root, "pkg/config.py", "VALUE = 2\n")
    got = settle(root, server)
    assert got["result"] == 204 and got["compute"] == 20


def test_save_by_rename(session):
    root, server, _ = session
    tmp = root / "pkg" / ".config.py.tmp"
    tmp.write_text("VALUE = 3\n")
    os.replace(tmp, root / "pkg" / "config.py")
    assert settle(root, server)["result"] == 206


def test_burst_of_saves_ends_on_the_last_version(session):
    root, server, _ = session
    for i in range(20):
        write(root, "pkg/config.py", f"VALUE = {10 + i}\n")
        time.sleep(0.003)
    assert settle(root, server)["result"] == (29 + 100) * 2


def test_two_files_saved_together(session):
    root, server, _ = session
    write(root, "pkg/config.py", "VALUE = 4\n")
    write(root, "pkg/lazy.py", 'X = "lazy2"\n')
    got = settle(root, server)
    assert got["result"] == 208 and got["lazy"] == "lazy2"


def test_syntax_error_keeps_old_code_serving_until_fixed(session):
    root, server, _ = session
    before = current(server)
    write(root, "pkg/util.py", "def broken(:\n")
    server.wait_for_line(r"reload failed in pkg\.util .*SyntaxError")
    assert current(server) == before
    write(root, "pkg/util.py", FILES["pkg/util.py"].replace("VALUE * 10", "VALUE * 11"))
    assert settle(root, server)["compute"] == 44


def test_import_time_exception_rolls_back_then_fix_applies(session):
    root, server, _ = session
    before = current(server)
    write(root, "pkg/service.py", "from pkg import util\nRESULT = util.COMPUTED / 0\n")
    server.wait_for_line(r"reload failed in pkg\.service .*ZeroDivisionError")
    assert current(server) == before
    write(root, "pkg/service.py", "from pkg import util\nRESULT = util.COMPUTED * 3\n")
    assert settle(root, server)["result"] == 104 * 3


def test_new_module_added_and_imported(session):
    root, server, _ = session
    write(root, "pkg/extra.py", 'EXTRA = "new"\n')
    write(
        root,
        "pkg/service.py",
        "from pkg import util\nfrom pkg.extra import EXTRA\n"
        "RESULT = util.COMPUTED * 3\nNOTE = EXTRA\n",
    )
    settle(root, server)
    write(root, "pkg/extra.py", 'EXTRA = "newer"\n')
    write(
        root,
        "pkg/service.py",
        "from pkg import util\nfrom pkg.extra import EXTRA\nRESULT = len(EXTRA)\n",
    )
    assert settle(root, server)["result"] == 5


def test_deleted_module_fails_like_a_fresh_process_then_recovers(session):
    root, server, _ = session
    before = current(server)
    failures_before = server.count_lines("reload failed")
    (root / "pkg" / "extra.py").unlink()
    assert oracle(root) == {"error": "ModuleNotFoundError"}
    deadline = time.monotonic() + 10
    while server.count_lines("reload failed") == failures_before:
        assert time.monotonic() < deadline, server.output
        time.sleep(0.02)
    assert current(server) == before
    write(root, "pkg/service.py", "from pkg import util\nRESULT = util.COMPUTED * 5\n")
    assert settle(root, server)["result"] == 104 * 5


def test_import_cycle_members_reload(session):
    root, server, _ = session
    write(root, "pkg/cycle_b.py", 'import pkg.cycle_a\n\nB = "b2"\n')
    assert settle(root, server)["cycle"] == "a1+b2"
    write(root, "pkg/cycle_a.py", FILES["pkg/cycle_a.py"].replace('"a1"', '"a2"'))
    assert settle(root, server)["cycle"] == "a2+b2"


def test_lazily_imported_module_reloads(session):
    root, server, _ = session
    write(root, "pkg/lazy.py", 'X = "lazy3"\n')
    assert settle(root, server)["lazy"] == "lazy3"


def _edit_cycle_b_and_wait_for_its_reload(root: Path, server: Server, value: str) -> int:
    """Saves a real edit of pkg/cycle_b.py; once it is served and its reload line is logged,
    returns the index of that line."""
    start = len(server.lines)
    write(root, "pkg/cycle_b.py", f'import pkg.cycle_a\n\nB = "{value}"\n')
    settle(root, server)
    deadline = time.monotonic() + 10
    while True:
        with server._cond:
            for index in range(start, len(server.lines)):
                if "after changes to pkg/cycle_b.py" in server.lines[index]:
                    return index
        assert time.monotonic() < deadline, f"no reload line for pkg/cycle_b.py\n{server.output}"
        time.sleep(0.02)


def test_touch_and_identical_save_do_not_reload(session):
    root, server, _ = session
    # Reloads run and are logged one after another: once the real edit after the touch has its
    # line, a reload the touch or the identical save caused would have been logged before it (or
    # named in the same line); the edit before it makes earlier tests' reload lines land first.
    first = _edit_cycle_b_and_wait_for_its_reload(root, server, "b-before-touch")
    path = root / "pkg" / "lazy.py"
    os.utime(path)
    path.write_text(path.read_text())
    last = _edit_cycle_b_and_wait_for_its_reload(root, server, "b-after-touch")
    with server._cond:
        between = server.lines[first + 1 : last + 1]
    assert [line for line in between if "pkg/lazy.py" in line] == [], server.output


def test_deleted_name_is_gone_as_in_a_fresh_process(session):
    root, server, _ = session
    write(root, "pkg/lazy.py", 'X = "lazy4"\nGONE = 1\n')
    settle(root, server)
    write(root, "pkg/lazy.py", 'X = "kept" if "GONE" in globals() else "gone"\n')
    assert settle(root, server)["lazy"] == "gone"


def test_expensive_module_never_reimported_and_no_request_failed(session):
    root, server, background = session
    time.sleep(0.2)
    assert (root / "count").read_text().splitlines() == ["loaded"]
    assert background.sent > 50
    assert background.failures == []
    assert reloads(server) >= 10
