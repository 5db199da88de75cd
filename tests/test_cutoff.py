"""Early cutoff end to end: edits of function bodies only are patched into the live functions
without re-executing any module; everything else takes the normal reload. After every edit the
server must answer what a fresh process answers for the same files (the oracle), and every
module execution is counted in a file, so "nothing re-executed" is observed, not assumed."""

from __future__ import annotations

import re
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import Server, ServerPool, poll_until, write
from fresh import run_fresh

PATHS = ["/hello", "/state", "/boom"]

ORACLE = textwrap.dedent(
    f"""
    import json, sys
    sys.path.insert(0, ".")
    from fastapi.testclient import TestClient
    from pkg.main import app
    client = TestClient(app)
    answers = {{path: client.get(path).json() for path in {PATHS!r}}}
    answers["doc"] = client.get("/openapi.json").json()["paths"]["/hello"]["get"].get("description")
    print(json.dumps(answers))
    """
)

COUNTED = """
    import os

    with open(os.environ["COUNT_FILE"], "a") as _f:
        _f.write(__name__ + "\\n")
"""

SERVICES = '''
    """Services used by the routes."""
    import functools
    import os

    with open(os.environ["COUNT_FILE"], "a") as _f:
        _f.write(__name__ + "\\n")


    def greet(name):
        return f"hello {name}"


    def level():
        return 1


    LEVEL = level()


    def base():
        return "base1"


    def deco(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            return "deco1:" + fn(*args, **kwargs)

        return wrapper


    @deco
    def decorated():
        return "d"


    @functools.lru_cache
    def get_settings():
        return {"mode": "m1"}


    def with_default(x=1):
        return x


    def outer():
        def inner():
            return "inner1"

        return inner()


    def boom():
        return 1 / 0


    class Counter:
        instances = []

        def __init__(self):
            Counter.instances.append(self)

        def describe(self):
            return "counter1"
    '''


def _join(*parts: str) -> str:
    return "".join(textwrap.dedent(part).lstrip("\n") for part in parts)


FILES = {
    "pkg/__init__.py": "",
    "pkg/services.py": SERVICES,
    # Imports services and runs one of its functions while it imports.
    "pkg/importer_calls.py": _join(
        """
        from pkg.services import base as make_base

        VALUE = make_base() + "!"
    """,
        COUNTED,
    ),
    # An importer that must never run again when only bodies change.
    "pkg/counted.py": _join(
        """
        from pkg import services

        DERIVED = "derived"
    """,
        COUNTED,
    ),
    "pkg/routes.py": _join(
        '''
        import traceback

        from fastapi import APIRouter

        from pkg import counted, importer_calls, services

        router = APIRouter()


        @router.get("/hello")
        def hello():
            """Says hello."""
            return {"greet": services.greet("x")}


        @router.get("/state")
        def state():
            services.Counter()
            return {
                "level": services.LEVEL,
                "decorated": services.decorated(),
                "settings": services.get_settings(),
                "default": services.with_default(),
                "outer": services.outer(),
                "counted": counted.DERIVED,
                "importer": importer_calls.VALUE,
                "describe": sorted({c.describe() for c in services.Counter.instances}),
                "names": sorted(n for n in vars(services) if not n.startswith("_")),
            }


        @router.get("/boom")
        def boom():
            try:
                services.boom()
            except ZeroDivisionError as exc:
                return {"line": traceback.extract_tb(exc.__traceback__)[-1].lineno}
    ''',
        COUNTED,
    ),
    "pkg/main.py": _join(
        """
        from fastapi import FastAPI

        from pkg import routes

        app = FastAPI()
        app.include_router(routes.router)
    """,
        COUNTED,
    ),
}

RELOAD_LINE = re.compile(r"reloaded \d+ modules? in .* after changes to pkg/(services|routes)\.py")
PATCHED = "no module re-executed"


def oracle(root: Path) -> dict:
    return run_fresh(root, ORACLE, env={"COUNT_FILE": str(root / "oracle-count")})


def answers(server: Server) -> dict:
    with server.client() as client:
        got = {}
        for path in PATHS:
            response = client.get(path)
            assert response.status_code == 200, response.text
            got[path] = response.json()
        got["doc"] = client.get("/openapi.json").json()["paths"]["/hello"]["get"].get("description")
        return got


def settle(root: Path, server: Server, timeout: float = 20.0) -> dict:
    return poll_until(lambda: answers(server), oracle(root), server, timeout, 0.05)


def executions(root: Path) -> list[str]:
    path = root / "count"
    return path.read_text().splitlines() if path.exists() else []


class Session:
    def __init__(self, root: Path, server: Server) -> None:
        self.root = root
        self.server = server
        self.services = textwrap.dedent(SERVICES).lstrip("\n")

    def edit(self, text: str, rel: str = "pkg/services.py", pattern=RELOAD_LINE) -> str:
        """Saves `text`, waits for the reload it causes and returns its log line."""
        before = self.server.count_lines(pattern.pattern)
        (self.root / rel).write_text(text)
        if rel == "pkg/services.py":
            self.services = text
        deadline = time.monotonic() + 20
        while self.server.count_lines(pattern.pattern) <= before:
            assert time.monotonic() < deadline, f"no reload after the edit\n{self.server.output}"
            time.sleep(0.02)
        with self.server._cond:
            return [line for line in self.server.lines if pattern.search(line)][-1]

    def reset(self) -> None:
        base = textwrap.dedent(SERVICES).lstrip("\n")
        if self.services != base:
            self.edit(base)
        settle(self.root, self.server)

    def patched(self, old: str, new: str) -> str:
        """Applies a replacement expected to be patched in place; checks that nothing ran."""
        self.reset()
        ran = executions(self.root)
        assert old in self.services
        line = self.edit(self.services.replace(old, new))
        assert PATCHED in line, line
        settle(self.root, self.server)
        assert executions(self.root) == ran, "a module was re-executed"
        return line

    def reloaded(self, old: str, new: str) -> str:
        """Applies a replacement expected to re-execute modules; checks the result."""
        self.reset()
        assert old in self.services
        line = self.edit(self.services.replace(old, new))
        assert PATCHED not in line, line
        settle(self.root, self.server)
        return line


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    root = tmp_path_factory.mktemp("cutoff-app")
    for rel, text in FILES.items():
        write(root, rel, text)
    pool = ServerPool()
    server = pool(
        "pkg.main:app",
        "--port",
        "0",
        "--no-access-log",
        "--log-level",
        "debug",
        cwd=root,
        env={"COUNT_FILE": str(root / "count")},
    )
    yield Session(root, server)
    pool.close()


def test_initial_answers_match_a_fresh_process(session):
    got = settle(session.root, session.server)
    assert got["/hello"] == {"greet": "hello x"}


def test_body_only_edit_reexecutes_no_importer(session):
    line = session.patched('f"hello {name}"', 'f"hi {name}"')
    assert "1 function patched in place" in line
    assert answers(session.server)["/hello"] == {"greet": "hi x"}


def test_fastapi_route_handler_body_edit(session):
    session.reset()
    ran = executions(session.root)
    routes = (session.root / "pkg/routes.py").read_text()
    line = session.edit(
        routes.replace('{"greet": services.greet("x")}', '{"greet": services.greet("route")}'),
        rel="pkg/routes.py",
    )
    assert PATCHED in line, line
    assert settle(session.root, session.server)["/hello"] == {"greet": "hello route"}
    assert executions(session.root) == ran
    session.edit(routes, rel="pkg/routes.py")
    settle(session.root, session.server)


def test_method_edit_reaches_instances_made_before(session):
    session.reset()
    for _ in range(3):
        answers(session.server)  # instances made before the edit
    session.patched('return "counter1"', 'return "counter2"')
    assert answers(session.server)["/state"]["describe"] == ["counter2"]


def test_function_called_at_module_level_propagates(session):
    session.reloaded("return 1\n", "return 2\n")
    assert answers(session.server)["/state"]["level"] == 2


def test_function_an_importer_calls_while_importing_propagates(session):
    ran = len(executions(session.root))
    session.reloaded('"base1"', '"base2"')
    assert answers(session.server)["/state"]["importer"] == "base2!"
    assert "pkg.importer_calls" in executions(session.root)[ran:]


def test_decorator_body_edit_propagates(session):
    session.reloaded('"deco1:"', '"deco2:"')
    assert answers(session.server)["/state"]["decorated"] == "deco2:d"


def test_cached_settings_function_gives_the_new_value(session):
    answers(session.server)  # the old value is cached
    line = session.patched('{"mode": "m1"}', '{"mode": "m2"}')
    assert "1 cache cleared" in line
    assert answers(session.server)["/state"]["settings"] == {"mode": "m2"}


def test_default_argument_change_reloads(session):
    session.reloaded("def with_default(x=1):", "def with_default(x=2):")
    assert answers(session.server)["/state"]["default"] == 2


def test_docstring_change_reloads(session):
    session.reset()
    routes = (session.root / "pkg/routes.py").read_text()
    line = session.edit(routes.replace("Says hello.", "Says hello again."), rel="pkg/routes.py")
    assert PATCHED not in line, line
    assert settle(session.root, session.server)["doc"] == "Says hello again."
    session.edit(routes, rel="pkg/routes.py")
    settle(session.root, session.server)


def test_signature_change_reloads(session):
    session.reloaded("def greet(name):", "def greet(name, end=''):")


def test_added_and_removed_functions_reload(session):
    session.reloaded("def base():", "def added():\n    return 0\n\n\ndef base():")
    assert "added" in answers(session.server)["/state"]["names"]
    line = session.edit(textwrap.dedent(SERVICES).lstrip("\n"))  # removes it again
    assert PATCHED not in line, line
    assert "added" not in settle(session.root, session.server)["/state"]["names"]


def test_nested_closure_edit_is_patched(session):
    session.patched('"inner1"', '"inner2"')
    assert answers(session.server)["/state"]["outer"] == "inner2"


def test_comment_only_edit_moves_traceback_lines(session):
    session.reset()
    before = answers(session.server)["/boom"]["line"]
    line = session.patched(
        '"""Services used by the routes."""', '"""Services used by the routes."""\n# one\n# two\n'
    )
    assert "patched in place" in line
    assert answers(session.server)["/boom"]["line"] == before + 3


def test_syntax_error_rolls_back_then_a_body_edit_patches(session):
    session.reset()
    good = answers(session.server)
    session.edit(
        session.services.replace("return 1 / 0", "return (1 /"),
        pattern=re.compile(r"reload failed in pkg\.services .*SyntaxError"),
    )
    assert answers(session.server) == good
    ran = executions(session.root)
    line = session.edit(
        textwrap.dedent(SERVICES).lstrip("\n").replace('"hello {name}"', '"hey {name}"')
    )
    assert PATCHED in line, line
    assert settle(session.root, session.server)["/hello"] == {"greet": "hey x"}
    assert executions(session.root) == ran


# -- PEP 695 generics (3.12+): `def f[T]` / `class C[T]` are built inside a hidden function ------

GENERIC_APP = """
    import json

    from generic import Box, first


    async def app(scope, receive, send):
        body = json.dumps({"first": first(["a", "b"]), "box": Box().get()}).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})
"""

GENERIC = """
    def first[T](items: list[T]) -> T:
        return items[0]


    class Box[T]:
        def get(self) -> str:
            return "box1"
"""


@pytest.mark.skipif(sys.version_info < (3, 12), reason="PEP 695 syntax is Python 3.12+")
@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("return items[0]", "return items[-1]", {"first": "b", "box": "box1"}),
        ('return "box1"', 'return "box2"', {"first": "a", "box": "box2"}),
    ],
    ids=["generic-function", "generic-class-method"],
)
def test_generic_definition_body_edit_is_applied(tmp_path, start_server, old, new, expected):
    write(tmp_path, "app.py", GENERIC_APP)
    write(tmp_path, "generic.py", GENERIC)
    server = start_server(
        "app:app", "--port", "0", "--lifespan", "off", "--no-access-log", cwd=tmp_path
    )
    with server.client() as client:
        assert client.get("/").json() == {"first": "a", "box": "box1"}
        before = server.count_lines(r"reloaded \d+ modules?")
        text = (tmp_path / "generic.py").read_text()
        (tmp_path / "generic.py").write_text(text.replace(old, new))
        line = server.wait_for_line(r"reloaded \d+ modules? .*after changes to generic\.py", 20)
        assert server.count_lines(r"reloaded \d+ modules?") == before + 1
        assert PATCHED in line, line
        assert client.get("/").json() == expected, server.output
