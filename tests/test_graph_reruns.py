"""`hmr-serve graph --closure FILE [--names A,B]` on a generated tree: which importers a save
re-runs and why, by the reload's name-level rules, checked against what was worked out by hand
from the sources; and `hmr-serve run` re-running exactly those modules after a real edit."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from test_graph import graph, graph_json, write_tree
from test_run import terminals  # noqa: F401  (a fixture)

# A settings module and its importers: each reads it at import in another way (or not at all).
TREE = {
    "cfg.py": """
        A = 1
        B = 2
        C = B * 2
        LIMITS = {"a": A}

        def scale(x):
            return x * B
    """,
    "views.py": 'from cfg import B\nTITLE = f"b={B}"\n',
    "derived.py": "import cfg\nDOUBLE = cfg.C\n",
    "caller.py": "import cfg\nSCALED = cfg.scale(3)\n",
    "star.py": "from cfg import *\n",
    "holder.py": "import cfg\n\ndef later():\n    return cfg.B\n",
    "limits.py": 'from cfg import LIMITS\nMAX = LIMITS["a"]\n',
    "main.py": "import holder\nimport views\nPAGE = views.TITLE\n",
    "late.py": "from holder import later\nX = 1\n",
    "cyc_a.py": "import cyc_b\nfrom cfg import B\nV = B\n",
    "cyc_b.py": "import cyc_a\nW = 1\n",
    "unrelated.py": "Y = 1\n",
}

# Worked out by hand: what a change of B re-runs, and why.
RERUN_FOR_B = {
    "cfg": "saved",
    "views": "reads cfg.B at import",
    # C is computed from B while cfg imports, so it changes with it.
    "derived": "reads cfg.C at import",
    # scale's body reads B; calling it at import makes SCALED depend on B.
    "caller": "calls cfg.scale, which reads cfg.B",
    "star": "uses the whole module cfg",
    "cyc_a": "reads cfg.B at import",
    "cyc_b": "in an import cycle with cyc_a",
    # TITLE changes with B, and main reads it.
    "main": "reads views.TITLE at import",
}
# A change of A: LIMITS is computed from it; nothing reads A itself.
RERUN_FOR_A = {
    "cfg": "saved",
    "limits": "reads cfg.LIMITS at import",
    "star": "uses the whole module cfg",
}
# Import it but read nothing at import that changes: listed without --names, never re-run.
NOT_RERUN = {"holder": "imports cfg", "late": "imports holder (later)"}


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return write_tree(tmp_path, TREE)


def by_module(steps):
    return {step["module"]: step for step in steps}


def test_a_change_of_one_name_reruns_its_readers_and_theirs(tree):
    steps = graph_json(tree, "--closure", "cfg.py", "--names", "B")
    assert {m: s["reason"] for m, s in by_module(steps).items()} == RERUN_FOR_B
    assert all(step["reruns"] for step in steps)
    chains = {m: s["chain"] for m, s in by_module(steps).items()}
    assert chains["cfg"] == ["cfg"]
    assert chains["views"] == ["cfg", "views"]
    assert chains["main"] == ["cfg", "views", "main"]
    assert chains["cyc_b"] == ["cfg", "cyc_a", "cyc_b"]
    # In the order a reload runs them: what a module imports first.
    order = [step["module"] for step in steps]
    assert order[0] == "cfg" and order.index("views") < order.index("main")

    steps = graph_json(tree, "--closure", "cfg", "--names", "A")
    assert {m: s["reason"] for m, s in by_module(steps).items()} == RERUN_FOR_A


def test_several_names_rerun_the_readers_of_any(tree):
    steps = graph_json(tree, "--closure", "cfg.py", "--names", "A, B")
    assert {m: s["reason"] for m, s in by_module(steps).items()} == {
        **RERUN_FOR_B,
        **RERUN_FOR_A,
    }


def test_without_names_every_importer_is_listed_and_readers_of_anything_rerun(tree):
    steps = graph_json(tree, "--closure", "cfg.py")
    found = by_module(steps)
    assert set(found) == set(RERUN_FOR_A) | set(RERUN_FOR_B) | set(NOT_RERUN)
    for module, reason in {**RERUN_FOR_B, **RERUN_FOR_A}.items():
        assert found[module]["reruns"] is True, found[module]
        assert found[module]["reason"] == reason
    for module, reason in NOT_RERUN.items():
        assert found[module] == {
            "file": f"{module}.py",
            "module": module,
            "reason": reason,
            "reruns": False,
        }


def test_a_derived_name_and_a_function_the_save_changes(tree):
    # C is derived from B: its own readers only.
    steps = graph_json(tree, "--closure", "cfg.py", "--names", "C")
    assert {m: s["reason"] for m, s in by_module(steps).items()} == {
        "cfg": "saved",
        "derived": "reads cfg.C at import",
        "star": "uses the whole module cfg",
    }
    # A new scale: the module calling it at import re-runs, not those reading B.
    steps = graph_json(tree, "--closure", "cfg.py", "--names", "scale")
    assert {m: s["reason"] for m, s in by_module(steps).items()} == {
        "cfg": "saved",
        "caller": "reads cfg.scale at import",
        "star": "uses the whole module cfg",
    }


def test_dot_fills_the_modules_that_rerun(tree):
    dot = graph(tree, "--dot", "--closure", "cfg.py").stdout
    assert '"cfg.py" [style=filled, fillcolor="#ffd966"]' in dot
    assert '"views.py" [style=filled, fillcolor="#fff2cc"]' in dot
    assert '"holder.py";' in dot  # imports cfg, never re-runs


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--closure", "cfg.py", "--names", "NOPE"], "cfg binds no top-level NOPE"),
        (["--closure", "cfg.py", "--names", "1x"], "expected names separated by commas"),
        (["--closure", "cfg.py", "--names", ","], "expected names separated by commas"),
        (["--names", "B"], "--names goes with --closure FILE"),
        (
            ["--closure", "cfg.py", "--names", "B", "--direction", "dependencies"],
            "--names goes with --closure FILE",
        ),
        (["--closure", "broken.py", "--names", "B"], "broken does not parse"),
    ],
)
def test_bad_names_are_clear_errors(tree, args, message):
    write_tree(tree, {"broken.py": "B = (\n"})
    proc = graph(tree, *args)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert proc.stdout == ""


@pytest.mark.parametrize(
    ("name", "before", "after"),
    [("B", "B = 2", "B = 3"), ("A", "A = 1", "A = 5"), ("scale", "x * B", "x * B + 1")],
)
def test_the_reload_reruns_what_the_graph_says(tree, terminals, name, before, after):  # noqa: F811
    # The graph's answer, then a real edit of that name under `hmr-serve run`: the modules its
    # reload re-runs (as `--log-level debug` names them) and how many it leaves unaffected.
    everything = graph_json(tree, "--closure", "cfg.py")
    steps = graph_json(tree, "--closure", "cfg.py", "--names", name)
    expected = {step["module"]: step["reason"] for step in steps if step["module"] != "cfg"}
    write_tree(tree, {"entry.py": f"import {', '.join(sorted(TREE_MODULES))}\nprint('ran')\n"})
    term = terminals(tree, "--log-level", "debug", "entry.py")
    term.wait_for("watching for changes")
    source = (tree / "cfg.py").read_text()
    assert before in source
    (tree / "cfg.py").write_text(source.replace(before, after))
    text = re.sub(r"\x1b\[[0-9;]*m", "", term.wait_for(r"reloaded \d+ modules?"))  # colours
    reran = dict(re.findall(r"DEBUG: +(\w+) re-runs: it (.*)", text))
    # The reload words a cycle and a read without "at import".
    reran = {
        module: why.replace("shares an import cycle", "in an import cycle")
        for module, why in reran.items()
    }
    assert reran == {m: why.replace(" at import", "") for m, why in expected.items()}
    count = re.search(r"reloaded (\d+) modules? in [\d.]+ ms \((\d+) importers", text)
    assert count is not None, text
    assert int(count.group(1)) == len(steps)
    assert int(count.group(2)) == len(everything) - len(steps)


TREE_MODULES = [path.removesuffix(".py") for path in TREE]


def test_classes_the_reload_keeps_are_no_change_without_runtime(tmp_path):
    # models re-runs (it reads cfg.B). Its plain class, and one based on the standard
    # library's, are patched in place by the reload, so their readers stay; a class whose base
    # comes from elsewhere may be registered by it, so without --runtime it counts as new.
    write_tree(
        tmp_path,
        {
            "cfg.py": "B = 2\n",
            "base.py": "class Base:\n    pass\n",
            "models.py": """
                import io
                from base import Base
                from cfg import B
                LIMIT = B
                class Plain:
                    pass
                class Buffer(io.BytesIO):
                    pass
                class Model(Base):
                    pass
            """,
            "uses_plain.py": "from models import Buffer, Plain\nKINDS = (Plain, Buffer)\n",
            "uses_model.py": "from models import Model\nKIND = Model\n",
            "uses_limit.py": "import models\nDOUBLE = models.LIMIT * 2\n",
        },
    )
    steps = graph_json(tmp_path, "--closure", "cfg.py", "--names", "B")
    assert {m: s["reason"] for m, s in by_module(steps).items()} == {
        "cfg": "saved",
        "models": "reads cfg.B at import",
        "uses_limit": "reads models.LIMIT at import",
        "uses_model": "reads models.Model at import",
    }
