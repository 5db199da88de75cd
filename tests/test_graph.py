"""`hmr-serve graph` on generated trees, through the installed console script: the map checked
against one computed by hand, both directions, --closure, --why, --dot, --runtime, and clear
errors for bad input."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import CLI_TIMEOUT, server_env

SCRIPT = Path(sys.executable).parent / "hmr-serve"

# A package with relative imports, `from pkg import submodule`, `import a.b.c`, an `__init__`
# re-export, an import cycle, TYPE_CHECKING and lazy imports, a namespace package, a file that
# does not parse, and directories that are never mapped.
TREE = {
    "app.py": """
        import pkg.api
        from pkg.models import *
    """,
    "ns/tool.py": "import app\n",  # ns/ has no __init__.py: a namespace package
    "pkg/__init__.py": "from .api import handler\n",
    "pkg/api.py": """
        from typing import TYPE_CHECKING
        from pkg import models
        import pkg.util.text
        from .util import helpers
        if TYPE_CHECKING:
            from pkg import typing_only
        def handler():
            from pkg import lazy_dep
            return lazy_dep
    """,
    "pkg/models.py": "from pkg.util import text\n",
    "pkg/util/__init__.py": "",
    "pkg/util/text.py": "import os\n",
    "pkg/util/helpers.py": "from . import text\n",
    "pkg/typing_only.py": "",
    "pkg/lazy_dep.py": "",
    "pkg/cycle_a.py": "from pkg import cycle_b\n",
    "pkg/cycle_b.py": "import pkg.cycle_a\n",
    "pkg/broken.py": "def oops(:\n    pass\n",
    ".venv/lib/python3.11/site-packages/dep.py": "import app\n",
    "node_modules/x.py": "import app\n",
    "pkg/__pycache__/stale.py": "import app\n",
}

# Worked out by hand from TREE: what each file imports at import time.
DEPENDENCIES = {
    "app.py": ["pkg/api.py", "pkg/models.py"],
    "ns/tool.py": ["app.py"],
    "pkg/__init__.py": ["pkg/api.py"],
    # `from pkg import models` is pkg/__init__.py (run first, `models` taken from it) and
    # pkg/models.py; `from .util import helpers` likewise; TYPE_CHECKING and lazy ones are out.
    "pkg/api.py": [
        "pkg/__init__.py",
        "pkg/models.py",
        "pkg/util/__init__.py",
        "pkg/util/helpers.py",
        "pkg/util/text.py",
    ],
    "pkg/cycle_a.py": ["pkg/__init__.py", "pkg/cycle_b.py"],
    "pkg/cycle_b.py": ["pkg/cycle_a.py"],
    "pkg/lazy_dep.py": [],
    "pkg/models.py": ["pkg/util/__init__.py", "pkg/util/text.py"],
    "pkg/typing_only.py": [],
    "pkg/util/__init__.py": [],
    "pkg/util/helpers.py": ["pkg/util/__init__.py", "pkg/util/text.py"],
    "pkg/util/text.py": [],
}


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for relative, source in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
    return root


def graph(cwd: Path, *args: str, user_traceback: bool = False) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [str(SCRIPT), "graph", *args],
        cwd=cwd,
        env=server_env(),
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
    )
    if not user_traceback:
        assert "Traceback" not in proc.stderr, proc.stderr
    assert "hmr_serve/" not in proc.stderr, proc.stderr  # no frame of hmr-serve's own
    assert "panicked" not in proc.stderr, proc.stderr
    return proc


def graph_json(cwd: Path, *args: str):
    proc = graph(cwd, *args)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def inverted(dependencies: dict[str, list[str]], keys) -> dict[str, list[str]]:
    result: dict[str, list[str]] = {key: [] for key in keys}
    for importer, imported in dependencies.items():
        for target in imported:
            result[target].append(importer)
    return {key: sorted(value) for key, value in sorted(result.items())}


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return write_tree(tmp_path, TREE)


def test_map_is_the_hand_computed_one(tree):
    proc = graph(tree)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == DEPENDENCIES
    assert list(json.loads(proc.stdout)) == sorted(DEPENDENCIES)  # keys printed sorted
    # The file that does not parse is named, with where, and left out as a key.
    assert re.search(r"pkg/broken\.py.*line 1", proc.stderr), proc.stderr


def test_default_direction_is_tachs_and_dependents_invert_it(tree):
    assert graph_json(tree, "--direction", "dependencies") == DEPENDENCIES
    # The unparsable file is a key here: what imports it is known (nothing does).
    keys = [*DEPENDENCIES, "pkg/broken.py"]
    assert graph_json(tree, "--direction", "dependents") == inverted(DEPENDENCIES, keys)


def test_lazy_imports_count_only_when_asked(tree):
    with_lazy = graph_json(tree, "--lazy")
    expected = {
        **DEPENDENCIES,
        "pkg/api.py": sorted([*DEPENDENCIES["pkg/api.py"], "pkg/lazy_dep.py"]),
    }
    assert with_lazy == expected


def test_closure_is_every_dependent_in_reload_order_with_reasons(tree):
    steps = graph_json(tree, "--closure", "pkg/util/text.py")
    files = [step["file"] for step in steps]
    dependents = inverted(DEPENDENCIES, DEPENDENCIES)
    reached, todo = set(), ["pkg/util/text.py"]
    while todo:
        current = todo.pop()
        if current not in reached:
            reached.add(current)
            todo.extend(dependents[current])
    assert sorted(files) == sorted(reached)
    assert len(files) == len(set(files))
    assert files[0] == "pkg/util/text.py" and steps[0]["reason"] == "saved"
    # Dependencies before importers, except inside the two cycles.
    cycles = [{"pkg/__init__.py", "pkg/api.py"}, {"pkg/cycle_a.py", "pkg/cycle_b.py"}]
    position = {file: i for i, file in enumerate(files)}
    for file in files:
        for dep in DEPENDENCIES[file]:
            if dep in position and not any({file, dep} <= cycle for cycle in cycles):
                assert position[dep] < position[file], (dep, file, files)
    reasons = {step["file"]: step["reason"] for step in steps}
    assert reasons["pkg/models.py"] == "imports pkg.util.text"
    assert reasons["pkg/__init__.py"] == "imports pkg.api (handler)"
    assert reasons["pkg/cycle_a.py"] == "imports pkg (cycle_b)"
    assert {step["module"] for step in steps} >= {"pkg", "pkg.util.text", "ns.tool", "app"}
    # A module name works as well as a path.
    assert graph_json(tree, "--closure", "pkg.util.text") == steps


def test_closure_of_a_leaf_nobody_imports_is_itself(tree):
    # tach refuses this ("File not found in dependent map"); a save still re-runs the file.
    assert graph_json(tree, "--closure", "pkg/typing_only.py") == [
        {
            "file": "pkg/typing_only.py",
            "module": "pkg.typing_only",
            "reason": "saved",
            "reruns": True,
            "chain": ["pkg.typing_only"],
        }
    ]


def test_closure_with_direction_dependencies_is_what_the_file_imports(tree):
    steps = graph_json(tree, "--closure", "pkg/models.py", "--direction", "dependencies")
    assert [step["file"] for step in steps] == [
        "pkg/util/__init__.py",
        "pkg/util/text.py",
        "pkg/models.py",
    ]


def test_why_is_one_shortest_chain(tree):
    hops = graph_json(tree, "--why", "ns/tool.py", "pkg/util/text.py")
    chain = [hops[0]["file"]] + [hop["imports"] for hop in hops]
    assert chain[0] == "ns/tool.py" and chain[-1] == "pkg/util/text.py"
    assert len(hops) == 3  # ns/tool.py -> app.py -> pkg/{api,models}.py -> pkg/util/text.py
    for hop in hops:
        assert hop["imports"] in DEPENDENCIES[hop["file"]], hop
        assert hop["lazy"] is False and hop["runtime_only"] is False
    first = graph_json(tree, "--why", "pkg/api.py", "pkg/util/__init__.py")
    assert first == [
        {
            "file": "pkg/api.py",
            "imports": "pkg/util/__init__.py",
            "names": ["helpers"],
            "lazy": False,
            "runtime_only": False,
        }
    ]


def test_why_without_a_chain_says_so_and_points_the_other_way(tree):
    proc = graph(tree, "--why", "pkg/util/text.py", "app.py")
    assert proc.returncode == 1
    assert "does not import" in proc.stderr
    assert "--why app.py pkg/util/text.py" in proc.stderr
    assert proc.stdout == ""
    # An import only inside a function is no chain, unless --lazy.
    assert graph(tree, "--why", "pkg/api.py", "pkg/lazy_dep.py").returncode == 1
    hops = graph_json(tree, "--lazy", "--why", "pkg/api.py", "pkg/lazy_dep.py")
    assert hops[0]["lazy"] is True


def dot_edges(text: str) -> set[tuple[str, str, str]]:
    assert text.startswith("digraph imports {") and text.rstrip().endswith("}"), text
    return set(re.findall(r'^  "([^"]+)" -> "([^"]+)"(.*);$', text, re.M))


def test_dot_draws_the_same_edges(tree):
    proc = graph(tree, "--dot")
    assert proc.returncode == 0, proc.stderr
    edges = dot_edges(proc.stdout)
    assert {(a, b) for a, b, _ in edges} == {
        (importer, imported) for importer, deps in DEPENDENCIES.items() for imported in deps
    }
    assert all(style == "" for _, _, style in edges)
    nodes = set(re.findall(r'^  "([^"]+)";$', proc.stdout, re.M))
    assert nodes == set(DEPENDENCIES) | {"pkg/broken.py"}
    # Lazy imports dotted; the closure's and the chain's subgraphs with their ends filled.
    lazy = dot_edges(graph(tree, "--dot", "--lazy").stdout)
    assert ("pkg/api.py", "pkg/lazy_dep.py", " [style=dotted]") in lazy
    closure = graph(tree, "--dot", "--closure", "pkg/cycle_b.py").stdout
    assert {(a, b) for a, b, _ in dot_edges(closure)} == {
        ("pkg/cycle_a.py", "pkg/cycle_b.py"),
        ("pkg/cycle_b.py", "pkg/cycle_a.py"),
    }
    assert '"pkg/cycle_b.py" [style=filled' in closure
    chain = graph(tree, "--dot", "--why", "app.py", "pkg/util/helpers.py").stdout
    assert {(a, b) for a, b, _ in dot_edges(chain)} == {
        ("app.py", "pkg/api.py"),
        ("pkg/api.py", "pkg/util/helpers.py"),
    }


def test_a_file_or_module_target_maps_what_it_reaches(tree):
    reach_of_app = {
        key: value
        for key, value in DEPENDENCIES.items()
        if key == "app.py" or key.startswith(("pkg/api", "pkg/models", "pkg/__init__", "pkg/util"))
    }
    assert graph_json(tree, "app") == reach_of_app
    assert graph_json(tree, "app.py") == reach_of_app
    assert graph_json(tree, "pkg/models.py") == {
        key: DEPENDENCIES[key]
        for key in ("pkg/models.py", "pkg/util/__init__.py", "pkg/util/text.py")
    }
    # A closure inside the app's map leaves out what the app never imports.
    files = [step["file"] for step in graph_json(tree, "app", "--closure", "pkg/util/text.py")]
    assert "ns/tool.py" not in files and "pkg/cycle_a.py" not in files and "app.py" in files


def test_mapping_a_subdirectory_keeps_paths_relative_to_the_current_directory(tree):
    # pkg/util is inside a package: module names still start at the tree's root.
    assert graph_json(tree, "pkg/util") == {
        "pkg/util/__init__.py": [],
        "pkg/util/helpers.py": ["pkg/util/__init__.py", "pkg/util/text.py"],
        "pkg/util/text.py": [],
    }
    assert graph_json(tree / "pkg", "util") == {
        "util/__init__.py": [],
        "util/helpers.py": ["util/__init__.py", "util/text.py"],
        "util/text.py": [],
    }


def test_src_layout_and_explicit_source_roots(tmp_path):
    write_tree(
        tmp_path,
        {
            "src/shop/__init__.py": "",
            "src/shop/cart.py": "from shop import prices\n",
            "src/shop/prices.py": "",
            "tests/test_cart.py": "from shop.cart import total\n",
            "scripts/run.py": "import tests.test_cart\n",
        },
    )
    found = graph_json(tmp_path)
    assert found["src/shop/cart.py"] == ["src/shop/__init__.py", "src/shop/prices.py"]
    assert found["tests/test_cart.py"] == ["src/shop/cart.py"]
    assert found["scripts/run.py"] == ["tests/test_cart.py"]
    # With tests/ as a root of its own, `tests.test_cart` is no longer its name; scripts/ lies
    # under no root, so its file has no name, yet its own imports still resolve.
    explicit = graph_json(tmp_path, "--source-root", "src", "--source-root", "tests")
    assert explicit["tests/test_cart.py"] == ["src/shop/cart.py"]
    assert explicit["scripts/run.py"] == []
    assert graph_json(tmp_path, "--source-root", "src", "--why", "tests/test_cart.py", "shop")


def test_excludes_leave_files_out(tree):
    found = graph_json(tree, "--exclude", "pkg/cycle_*.py", "--exclude", "tool.py")
    assert "pkg/cycle_a.py" not in found and "ns/tool.py" not in found
    assert found["app.py"] == DEPENDENCIES["app.py"]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["no_such_dir/"], "no such file or directory"),
        (["no_such_module"], "no module no_such_module"),
        (["README.txt"], "is not a Python file"),
        (["--closure", "missing.py"], "missing.py: no such file"),
        (["--closure", "node_modules/x.py"], "is not one of the"),
        (["--closure", "no.such.module"], "no mapped module"),
        (["--closure", "pkg/util"], "is a directory: name a .py file or a module (pkg.util)"),
        (["--why", "app.py", "missing.py"], "missing.py: no such file"),
        (["--why", "app.py", "pkg/api.py", "--direction", "dependents"], "--direction"),
        (["app", "--closure", "ns/tool.py"], "is not imported by app"),
        (["--source-root", "nowhere"], "no such directory"),
        (["--runtime"], "--runtime needs a TARGET"),
        (["--exclude", "[", "--closure", "app.py"], "bad exclude glob"),
    ],
)
def test_bad_input_is_a_clear_error(tree, args, needle):
    (tree / "README.txt").write_text("not python\n")
    proc = graph(tree, *args)
    assert proc.returncode == 2, (args, proc.returncode, proc.stderr)
    assert needle in proc.stderr, proc.stderr
    assert proc.stdout == ""


def test_runtime_sees_dynamic_imports_and_marks_them(tmp_path):
    write_tree(
        tmp_path,
        {
            "app/__init__.py": "",
            "app/core.py": "VALUE = 1\n",
            "app/main.py": """
                import importlib
                from app import core
                PLUGINS = ["alpha", "beta"]
                plugins = [importlib.import_module("app.plugins." + name) for name in PLUGINS]
                print("main ran")  # must not end up in the JSON on stdout

                async def app(scope, receive, send):
                    pass
            """,
            "app/plugins/__init__.py": "",
            "app/plugins/alpha.py": "from app import core\n",
            "app/plugins/beta.py": "",
            "app/plugins/unused.py": "",
        },
    )
    static = graph_json(tmp_path, "app.main:app")
    assert static["app/main.py"] == ["app/__init__.py", "app/core.py"]
    assert "app/plugins/alpha.py" not in static

    proc = graph(tmp_path, "app.main:app", "--runtime")
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout)
    assert found["app/main.py"] == [
        "app/__init__.py",
        "app/core.py",
        "app/plugins/alpha.py",
        "app/plugins/beta.py",
    ]
    assert found["app/plugins/alpha.py"] == ["app/__init__.py", "app/core.py"]
    assert "app/plugins/unused.py" not in found
    assert "main ran" in proc.stderr
    assert "app/main.py -> app/plugins/alpha.py" in proc.stderr  # listed as run-time only
    assert "app/main.py -> app/core.py" not in proc.stderr

    # A save to core re-runs the plugin that imports it, before main, which loaded it.
    steps = graph_json(tmp_path, "--runtime", "app.main:app", "--closure", "app/core.py")
    assert [step["file"] for step in steps] == [
        "app/core.py",
        "app/plugins/alpha.py",
        "app/main.py",
    ]
    hops = graph_json(tmp_path, "--runtime", "app.main", "--why", "app.main", "app.core")
    assert len(hops) == 1 and hops[0]["runtime_only"] is False
    hops = graph_json(tmp_path, "--runtime", "app.main", "--why", "app.main", "app.plugins.beta")
    assert hops[0]["runtime_only"] is True
    dot = graph(tmp_path, "--runtime", "app.main:app", "--dot").stdout
    assert '"app/main.py" -> "app/plugins/beta.py" [style=dashed' in dot


def test_runtime_import_failures_are_clear(tmp_path):
    write_tree(
        tmp_path,
        {"boom.py": "def helper():\n    raise RuntimeError('broken on purpose')\nhelper()\n"},
    )
    proc = graph(tmp_path, "--runtime", "boom:app", user_traceback=True)
    assert proc.returncode == 1
    assert "broken on purpose" in proc.stderr and "--runtime" in proc.stderr
    assert 'boom.py", line 2, in helper' in proc.stderr  # the user's own frames
    assert proc.stdout == ""
    proc = graph(tmp_path, "boom:app", "--runtime", user_traceback=True)
    assert proc.returncode == 1 and "broken on purpose" in proc.stderr
    write_tree(tmp_path, {"fine.py": "x = 1\n"})
    proc = graph(tmp_path, "fine:nope", "--runtime")
    assert proc.returncode == 1 and '"nope" not found' in proc.stderr


def test_output_file(tree):
    proc = graph(tree, "-o", "map.json")
    assert proc.returncode == 0 and proc.stdout == ""
    written = json.loads((tree / "map.json").read_text())
    assert written == DEPENDENCIES
