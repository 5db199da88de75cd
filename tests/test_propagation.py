"""Name-level propagation: after a module re-runs, only the importers that read, while they
imported, a name whose value changed re-run (then theirs, by the same rule). Every check is
differential: after each edit the server answers what a fresh interpreter answers, and the
modules that ran are counted from what each module's own code wrote while it ran."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import Server, edit, reloads, write
from fresh import app_module, fresh, served

RUNS = "runs.log"


def counted(name: str) -> str:
    """A module prologue that records each execution of the module."""
    return f'open({RUNS!r}, "a").write({name!r} + "\\n")\n'


def runs(root: Path) -> list[str]:
    path = root / RUNS
    return path.read_text().split() if path.exists() else []


class Tree:
    def __init__(self, root: Path, server: Server) -> None:
        self.root = root
        self.server = server

    def edit(self, rel: str, old: str, new: str) -> tuple[list[str], str]:
        """Applies an edit, waits for its reload line, checks the server answers what a fresh
        process answers; returns the modules that ran and the reload line."""
        before = reloads(self.server)
        failures = self.server.count_lines("reload failed")
        ran_before = len(runs(self.root))
        edit(self.root, rel, old, new)
        self.server.wait_for_count(r"reloaded \d+ modules?|reload failed", before + failures + 1)
        assert self.server.count_lines("reload failed") == failures, self.server.output
        line = [ln for ln in self.server.lines if "reloaded" in ln][-1]
        # Only after the reload line: the fresh interpreter must not write the runs log first.
        ran = runs(self.root)[ran_before:]
        assert served(self.server) == fresh(self.root), self.server.output
        return ran, line


CFG = """
ITEMS = []
A = 1
B = 2
"""


def _readers(count: int) -> dict[str, str]:
    files = {}
    for i in range(count):
        files[f"pkg/a{i}.py"] = counted(f"a{i}") + f"from pkg.cfg import A\nVALUE = A * {i}\n"
    files["pkg/b0.py"] = counted("b0") + "from pkg import cfg\nVALUE = cfg.B + 100\n"
    files["pkg/b1.py"] = counted("b1") + (
        "import pkg.cfg\n\nclass Limits:\n    B = pkg.cfg.B * 2\n\n"
        "def default(x=pkg.cfg.B):\n    return x\n"
    )
    files["pkg/shared.py"] = counted("shared") + "from pkg.cfg import ITEMS\n"
    return files


@pytest.fixture
def cfg_tree(tmp_path: Path, start_server) -> Tree:
    files = {"pkg/__init__.py": "", "pkg/cfg.py": counted("cfg") + CFG, **_readers(12)}
    imports = "".join(f"from pkg import a{i}\n" for i in range(12))
    files["pkg/main.py"] = (
        counted("main")
        + imports
        + app_module(
            f"""
        from pkg import b0, b1, cfg, shared

        def body():
            return {{
                "a": [m.VALUE for m in ({", ".join(f"a{i}" for i in range(12))})],
                "b0": b0.VALUE,
                "b1": [b1.Limits.B, b1.default()],
                "items_shared": shared.ITEMS is cfg.ITEMS,
                "items": cfg.ITEMS,
            }}
        """
        )
    )
    for rel, text in files.items():
        write(tmp_path, rel, text)
    server = start_server("pkg.main:app", "--port", "0", cwd=tmp_path)
    return Tree(tmp_path, server)


def test_only_readers_of_the_changed_name_rerun(cfg_tree: Tree) -> None:
    ran, line = cfg_tree.edit("pkg/cfg.py", "B = 2", "B = 3")
    # main reads only submodules of pkg while importing: it answers from them at request time.
    assert sorted(ran) == ["b0", "b1", "cfg"], ran
    assert "(14 importers unaffected)" in line, line
    ran, _ = cfg_tree.edit("pkg/cfg.py", "A = 1", "A = 5")
    assert sorted(ran) == sorted(["cfg", *(f"a{i}" for i in range(12))]), ran


def test_shared_mutable_value_stays_shared(cfg_tree: Tree) -> None:
    ran, _ = cfg_tree.edit("pkg/cfg.py", "B = 2", "B = 4")
    assert "shared" not in ran
    assert served(cfg_tree.server)["items_shared"] is True
    ran, _ = cfg_tree.edit("pkg/cfg.py", "ITEMS = []", "ITEMS = [1]")
    assert "shared" in ran


def test_an_equal_value_reruns_nobody(cfg_tree: Tree) -> None:
    ran, _ = cfg_tree.edit("pkg/cfg.py", "B = 2", "B = 1 + 1")
    assert ran == ["cfg"], ran


SOUNDNESS = {
    "pkg/__init__.py": "",
    "pkg/base.py": counted("base")
    + """
class Base:
    LIMIT = 10

    def scale(self):
        return 1

def compute():
    return 7
""",
    # A subclass reading the base's class attribute at import.
    "pkg/sub.py": counted("sub")
    + """
from pkg.base import Base

class Sub(Base):
    DOUBLE = Base.LIMIT * 2
""",
    # A re-export chain.
    "pkg/reexport1.py": counted("reexport1") + "from pkg.base import compute\n",
    "pkg/reexport2.py": counted("reexport2") + "from pkg.reexport1 import compute\n",
    # A call at import time of a function whose body changes.
    "pkg/caller.py": counted("caller") + "from pkg.reexport2 import compute\nRESULT = compute()\n",
    # A star import sees added names.
    "pkg/star.py": counted("star")
    + "from pkg.base import *\nNAMES = sorted(n for n in dir() if not n.startswith('_'))\n",
    # A call at import time into a function that reads another module's name when it runs.
    "pkg/knobs.py": counted("knobs") + "K = 1\n",
    "pkg/helpers.py": counted("helpers")
    + "from pkg import knobs\n\ndef knob():\n    return knobs.K * 3\n",
    "pkg/uses_helper.py": counted("uses_helper") + "from pkg.helpers import knob\nKNOB = knob()\n",
    # Only reads inside a function that runs at request time: never re-run for a value.
    "pkg/late.py": counted("late")
    + "from pkg import base\n\ndef limit():\n    return base.Base.LIMIT\n",
}
SOUNDNESS_MAIN = app_module(
    """
    from pkg import caller, late, reexport2, star, sub, uses_helper

    def body():
        return {
            "double": sub.Sub.DOUBLE,
            "result": caller.RESULT,
            "reexported": reexport2.compute(),
            "star": star.NAMES,
            "late": late.limit(),
            "knob": uses_helper.KNOB,
        }
    """
)


@pytest.fixture
def soundness_tree(tmp_path: Path, start_server) -> Tree:
    for rel, text in {**SOUNDNESS, "pkg/main.py": counted("main") + SOUNDNESS_MAIN}.items():
        write(tmp_path, rel, text)
    server = start_server("pkg.main:app", "--port", "0", cwd=tmp_path)
    return Tree(tmp_path, server)


def test_soundness_traps(soundness_tree: Tree) -> None:
    ran, _ = soundness_tree.edit("pkg/base.py", "LIMIT = 10", "LIMIT = 11")
    assert "sub" in ran and "late" not in ran, ran
    ran, _ = soundness_tree.edit("pkg/base.py", "return 7", "return 8")
    assert {"reexport1", "reexport2", "caller"} <= set(ran), ran
    ran, _ = soundness_tree.edit("pkg/base.py", "def compute", "EXTRA = 1\n\ndef compute")
    assert "star" in ran, ran
    ran, _ = soundness_tree.edit("pkg/base.py", "EXTRA = 1\n", "")
    assert "star" in ran, ran
    ran, _ = soundness_tree.edit("pkg/knobs.py", "K = 1", "K = 2")
    assert "uses_helper" in ran and "helpers" not in ran, ran


@pytest.mark.parametrize(
    "filename, content, new_content, loader",
    [
        ("settings.json", '{"n": 1}', '{"n": 2}', "json.loads(path.read_text())['n']"),
        ("settings.toml", "n = 1\n", "n = 2\n", "_toml(path.read_bytes())['n']"),
        ("settings.yaml", "n: 1\n", "n: 2\n", "yaml.safe_load(open(path))['n']"),
        ("prompt.txt", "one", "two", "open(path).read()"),
    ],
)
def test_data_files_read_at_import_are_dependencies(
    tmp_path: Path, start_server, filename: str, content: str, new_content: str, loader: str
) -> None:
    files = {
        "pkg/__init__.py": "",
        f"pkg/{filename}": content,
        "pkg/reader.py": counted("reader")
        + f"""
import json
import pathlib

import yaml

try:
    from tomllib import loads as _toml_loads
except ImportError:
    from tomli import loads as _toml_loads


def _toml(data):
    return _toml_loads(data.decode())


path = pathlib.Path(__file__).with_name({filename!r})
VALUE = {loader}
""",
        "pkg/user.py": counted("user") + "from pkg.reader import VALUE\nDOUBLE = VALUE * 2\n",
        "pkg/other.py": counted("other") + "from pkg import reader\nX = 1\n",
        "pkg/main.py": counted("main")
        + app_module(
            """
            from pkg import other, reader, user

            def body():
                return {"value": reader.VALUE, "double": user.DOUBLE, "x": other.X}
            """
        ),
    }
    for rel, text in files.items():
        write(tmp_path, rel, text)
    server = start_server("pkg.main:app", "--port", "0", cwd=tmp_path)
    tree = Tree(tmp_path, server)
    ran, line = tree.edit(f"pkg/{filename}", content, new_content)
    assert "reader" in ran and "user" in ran and "other" not in ran, ran
    assert filename in line, line


def test_file_read_during_lifespan_startup_restarts(tmp_path: Path, start_server) -> None:
    write(tmp_path, "pkg/__init__.py", "")
    write(tmp_path, "pkg/limits.json", '{"n": 1}')
    write(
        tmp_path,
        "pkg/main.py",
        """
        import json
        import pathlib

        STATE = {}

        async def app(scope, receive, send):
            if scope["type"] == "lifespan":
                while True:
                    message = await receive()
                    if message["type"] == "lifespan.startup":
                        path = pathlib.Path(__file__).with_name("limits.json")
                        STATE["n"] = json.loads(path.read_text())["n"]
                        await send({"type": "lifespan.startup.complete"})
                    elif message["type"] == "lifespan.shutdown":
                        await send({"type": "lifespan.shutdown.complete"})
                        return
            body = json.dumps(STATE).encode()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": body})
        """,
    )
    server = start_server("pkg.main:app", "--port", "0", cwd=tmp_path)
    assert served(server) == {"n": 1}
    (tmp_path / "pkg/limits.json").write_text('{"n": 2}')
    server.wait_for_line(r"restarting the process: pkg/limits\.json was read during lifespan")
    server.wait_for_count(r"serving http", 2, timeout=60)
    assert json.loads(server.client().get("/").text) == {"n": 2}
