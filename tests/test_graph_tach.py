"""`hmr-serve graph --lazy` against `tach map` on real trees: the sources of packages installed
in this venv (Django, Starlette), copied into a temporary directory. The static imports must
agree; every edge only one side has must fall into one of the known differences below, each
recognised here from the source independently of both tools:

Only tach has:
- string literals: tach counts any string with two dots or more that names a project module or
  a member of one (`"django.contrib.auth.backends.ModelBackend"` in settings, `name =
  "django.contrib.admin"` in an AppConfig; each part of an implicitly concatenated string on
  its own). They are data, not imports: nothing re-runs a settings module when the class it
  names is edited, so hmr-serve counts only literal `importlib.import_module(...)` and
  `__import__(...)` calls.
- self-imports: tach keeps a file's edge to itself (`from pkg import x` inside pkg/__init__.py,
  or a string naming the file's own module); a file re-running itself means nothing.

Only hmr-serve has:
- the package of a `from pkg import sub`: tach resolves `pkg.sub` to pkg/sub.py alone;
  hmr-serve also counts pkg/__init__.py, which Python runs first and from which it takes `sub`
  (an `__init__` that rebinds `sub` changes what the importer gets).
- imports in the `else:` of `if TYPE_CHECKING:`, which run (tach skips the whole `if`).
- literal dynamic imports with fewer than two dots (`import_module("pkg.mod")`), below tach's
  threshold for string literals.

Not counted by either: imports under `if TYPE_CHECKING:`. Lazy imports (inside functions) are
counted by both here because of `--lazy`; without it hmr-serve leaves them out.

tach is skipped with a reason if it is not installed (`pip install tach`).
"""

from __future__ import annotations

import ast
import io
import json
import os
import shutil
import subprocess
import sys
import tokenize
from collections import Counter
from pathlib import Path

import pytest
from conftest import CLI_TIMEOUT, server_env

BIN = Path(sys.executable).parent
TACH = shutil.which("tach", path=str(BIN))


def copy_sources(package: str, destination: Path) -> None:
    """The package's .py files, under destination/<package>."""
    module = pytest.importorskip(package)
    source = Path(module.__file__).parent

    def ignore(directory: str, names: list[str]) -> list[str]:
        return [
            name
            for name in names
            if name == "__pycache__"
            or not (name.endswith(".py") or os.path.isdir(os.path.join(directory, name)))
        ]

    shutil.copytree(source, destination / package, ignore=ignore)


def run_json(command: list[str], cwd: Path) -> dict[str, list[str]]:
    proc = subprocess.run(
        command, cwd=cwd, env=server_env(), capture_output=True, text=True, timeout=CLI_TIMEOUT
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout)


class SourceFacts(ast.NodeVisitor):
    """What one file's source says, for telling the known differences apart."""

    def __init__(self, root: Path, relative: str) -> None:
        self.module, self.is_package = module_of(relative)
        #: X of every `from X import ...`, relative ones resolved.
        self.from_modules: set[str] = set()
        #: Modules imported in the `else:` of an `if TYPE_CHECKING:`.
        self.type_checking_else: set[str] = set()
        #: Literal names given to `import_module(...)` / `__import__(...)`.
        self.dynamic: set[str] = set()
        self._in_else = 0
        source = (root / relative).read_text(encoding="utf-8")
        self.visit(ast.parse(source))
        #: Every string literal token: the parts of an implicit concatenation one by one.
        self.strings: set[str] = set()
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type == tokenize.STRING:
                try:
                    value = ast.literal_eval(token.string)
                except (ValueError, SyntaxError):
                    continue  # an f-string
                if isinstance(value, str):
                    self.strings.add(value)

    def _resolve(self, level: int, module: str | None) -> str | None:
        if not level:
            return module
        package = self.module if self.is_package else self.module.rpartition(".")[0]
        parts = package.split(".") if package else []
        if level - 1 > len(parts):
            return None
        return ".".join(parts[: len(parts) - (level - 1)] + ([module] if module else []))

    def visit_If(self, node: ast.If) -> None:
        test = node.test
        if (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
            isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
        ):
            self._in_else += 1
            for child in node.orelse:
                self.visit(child)
            self._in_else -= 1
        else:
            self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        if self._in_else:
            self.type_checking_else.update(alias.name for alias in node.names)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        target = self._resolve(node.level, node.module)
        if target:
            self.from_modules.add(target)
            if self._in_else:
                self.type_checking_else.add(target)
                self.type_checking_else.update(f"{target}.{a.name}" for a in node.names)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        if name in ("import_module", "__import__") and node.args:
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                self.dynamic.add(first.value)
        self.generic_visit(node)


def module_of(relative: str) -> tuple[str, bool]:
    parts = relative[: -len(".py")].split("/")
    is_package = parts[-1] == "__init__"
    if is_package:
        parts.pop()
    return ".".join(parts), is_package


def file_of(root: Path, module: str) -> str | None:
    base = root / module.replace(".", "/")
    for path in (base / "__init__.py", base.with_suffix(".py")):
        if path.is_file():
            return path.relative_to(root).as_posix()
    return None


def tach_string_target(root: Path, text: str) -> str | None:
    """The file tach takes a string literal to name: a module, else the module holding the
    last part as a member."""
    if text.count(".") < 2 or not all(
        part and all(c.isalnum() or c in "_*" for c in part) for part in text.split(".")
    ):
        return None
    return file_of(root, text) or file_of(root, text.rpartition(".")[0])


def classify(root: Path, tach: dict, ours: dict) -> tuple[set, Counter, list]:
    """(edges both have, count of each known difference, the differences left unexplained)."""
    tach_edges = {(a, b) for a, deps in tach.items() for b in deps}
    our_edges = {(a, b) for a, deps in ours.items() for b in deps}
    facts: dict[str, SourceFacts] = {}

    def of(relative: str) -> SourceFacts:
        if relative not in facts:
            facts[relative] = SourceFacts(root, relative)
        return facts[relative]

    known: Counter[str] = Counter()
    unexplained = []
    for importer, imported in sorted(tach_edges - our_edges):
        source = of(importer)
        if importer == imported:
            known["tach only: self-import"] += 1
        elif any(tach_string_target(root, s) == imported for s in source.strings):
            known["tach only: string literal naming a module"] += 1
        else:
            unexplained.append(("only tach", importer, imported))
    for importer, imported in sorted(our_edges - tach_edges):
        source = of(importer)
        module, is_package = module_of(imported)
        if is_package and module in source.from_modules:
            known["hmr-serve only: package of `from package import sub`"] += 1
        elif module in source.type_checking_else:
            known["hmr-serve only: else of `if TYPE_CHECKING:`"] += 1
        elif module in source.dynamic:
            known["hmr-serve only: literal import_module/__import__ under two dots"] += 1
        else:
            unexplained.append(("only hmr-serve", importer, imported))
    return tach_edges & our_edges, known, unexplained


@pytest.mark.skipif(TACH is None, reason="tach is not installed in this venv (pip install tach)")
@pytest.mark.parametrize("package", ["django", "starlette"])
def test_static_imports_agree_with_tach(tmp_path, package):
    copy_sources(package, tmp_path)
    # tach's defaults leave out **/tests and **/docs; both tools map every file here.
    (tmp_path / "tach.toml").write_text('exclude = []\nsource_roots = ["."]\n')
    tach = run_json([TACH, "map"], tmp_path)
    ours = run_json([str(BIN / "hmr-serve"), "graph", "--lazy"], tmp_path)
    common, known, unexplained = classify(tmp_path, tach, ours)
    print(f"\n{package}: {len(common)} edges agree; known differences: {dict(known)}")
    assert not unexplained, unexplained
    assert len(common) > 100
    # tach's keys are the files with an edge; ours are every file.
    assert set(tach) <= set(ours)
