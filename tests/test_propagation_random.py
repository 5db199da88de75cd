"""Property-based check of name-level propagation: generated module graphs that mix every read
style (from-import, attribute reads at module level and in class bodies, default arguments,
calls at import time, star imports, shared mutable values) get random edits (a value, a
function body, a class attribute, an added or deleted name); after each, every module's public
values, as the server holds them, must equal a fresh interpreter's. Seeds are fixed, so a
failure replays; `pytest --long` runs more of them."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from conftest import Server, reloads
from fresh import app_module, fresh, served

DUMP = """
import sys, types

def _dump(module):
    out = {}
    for key, value in sorted(vars(module).items()):
        if key.startswith("_") or isinstance(value, types.ModuleType):
            continue
        if isinstance(value, type):
            out[key] = [value.__module__, getattr(value, "LIM", None)]
        elif callable(value):
            out[key] = value()
        else:
            out[key] = value
        if key.endswith("_ITEMS"):  # imported from the module its prefix names
            origin = sys.modules["pkg." + key[: -len("_ITEMS")]]
            out[key + "_shared"] = value is origin.ITEMS
    return out
"""


class Project:
    """A generated package pkg.m0 … pkg.m{n-1}; module i imports only modules below i."""

    def __init__(self, rng: random.Random, size: int) -> None:
        self.rng = rng
        self.size = size
        self.extras: dict[int, list[str]] = {i: [] for i in range(size)}
        self.counter = 0
        self.sources = {i: self._module(i) for i in range(size)}

    def _module(self, i: int) -> str:
        rng = self.rng
        lines = []
        below = list(range(i))
        picks = rng.sample(below, min(len(below), rng.randint(1, 3))) if below else []
        reads = []
        for j in picks:
            style = rng.choice(["from", "attr", "class", "default", "call", "star", "items"])
            if style == "from":
                lines.append(f"from pkg.m{j} import V0 as m{j}_V0")
                reads.append(f"m{j}_V0")
            elif style == "attr":
                lines.append(f"import pkg.m{j}")
                reads.append(f"pkg.m{j}.V0")
            elif style == "class":
                lines.append(f"from pkg import m{j}")
                lines.append(f"class K{j}:\n    LIM = m{j}.C.LIM + 1")
            elif style == "default":
                lines.append(f"from pkg import m{j}")
                lines.append(f"def d{j}(x=m{j}.V0):\n    return x")
            elif style == "call":
                lines.append(f"from pkg.m{j} import f as m{j}_f")
                lines.append(f"CALLED{j} = m{j}_f()")
            elif style == "star":
                lines.append(f"from pkg.m{j} import *")
            else:
                lines.append(f"from pkg.m{j} import ITEMS as m{j}_ITEMS")
        lines.append(f"V0 = {rng.randint(0, 99)}")
        lines.append(f"V1 = {' + '.join(reads) if reads else '0'} + 1")
        if below and rng.random() < 0.5:
            # Reads another module's value when called: importers calling f at import time
            # depend on it without importing that module.
            k = rng.choice(below)
            lines.append(f"import pkg.m{k}")
            lines.append(f"def f():\n    return {rng.randint(0, 99)} + pkg.m{k}.V0")
        else:
            lines.append(f"def f():\n    return {rng.randint(0, 99)}")
        lines.append(f"class C:\n    LIM = {rng.randint(0, 99)}")
        lines.append(f"ITEMS = [{rng.randint(0, 9)}]")
        return "\n".join(lines) + "\n"

    def write(self, root: Path) -> None:
        (root / "pkg").mkdir(exist_ok=True)
        (root / "pkg/__init__.py").write_text("")
        for i, source in self.sources.items():
            (root / f"pkg/m{i}.py").write_text(source)
        imports = "".join(f"from pkg import m{i}\n" for i in reversed(range(self.size)))
        modules = ", ".join(f"m{i}" for i in range(self.size))
        (root / "pkg/main.py").write_text(
            imports
            + DUMP
            + app_module(
                f"""
                def body():
                    return [_dump(m) for m in ({modules},)]
                """
            )
        )

    def edit(self, root: Path) -> str:
        """One random edit of one module; returns a description."""
        rng = self.rng
        i = rng.randrange(self.size)
        source = self.sources[i]
        kind = rng.choice(["value", "body", "class", "add", "delete", "items"])
        if kind == "delete" and not self.extras[i]:
            kind = "add"
        if kind == "value":
            old = next(line for line in source.splitlines() if line.startswith("V0 = "))
            source = source.replace(old, f"V0 = {rng.randint(100, 999)}")
        elif kind == "body":
            old = source[source.index("def f():") :].split("\n")[1]
            tail = old.partition(" + ")[2]
            new = f"    return {rng.randint(100, 999)}" + (f" + {tail}" if tail else "")
            source = source.replace(old, new)
        elif kind == "class":
            old = source[source.index("class C:") :].split("\n")[1]
            source = source.replace(old, f"    LIM = {rng.randint(100, 999)}")
        elif kind == "items":
            old = next(line for line in source.splitlines() if line.startswith("ITEMS = "))
            source = source.replace(old, f"ITEMS = [{rng.randint(0, 9)}]")
        elif kind == "add":
            self.counter += 1
            name = f"EXTRA{self.counter}"
            self.extras[i].append(name)
            source += f"{name} = {self.counter}\n"
        else:
            name = self.extras[i].pop()
            source = "\n".join(ln for ln in source.split("\n") if not ln.startswith(name)) + "\n"
            source = source.rstrip("\n") + "\n"
        self.sources[i] = source
        # Grows or changes the bytes every time: an identical save is no change at all.
        (root / f"pkg/m{i}.py").write_text(source)
        return f"{kind} in m{i}"


def _check(root: Path, server: Server, project: Project, edits: int) -> None:
    for _ in range(edits):
        before = reloads(server) + server.count_lines(r"no code change")
        failures = server.count_lines("reload failed")
        what = project.edit(root)
        server.wait_for_count(
            r"reloaded \d+ modules?|reload failed|no code change", before + failures + 1
        )
        assert server.count_lines("reload failed") == failures, f"{what}\n{server.output}"
        expected = fresh(root)
        got = served(server)
        assert got == expected, f"after {what}:\nserver {got}\nfresh  {expected}"


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_random_graphs_equal_a_fresh_process(
    tmp_path: Path, start_server, seed: int, long_run: bool
) -> None:
    rng = random.Random(seed)
    project = Project(rng, size=7)
    project.write(tmp_path)
    server = start_server("pkg.main:app", "--port", "0", cwd=tmp_path)
    assert served(server) == fresh(tmp_path)
    _check(tmp_path, server, project, edits=40 if long_run else 10)
