"""How the reload engine compiles modules in the test mode.

pytest rewrites the asserts of test modules and conftests (and of modules registered with
`pytest.register_assert_rewrite`) when it imports them: such a module's loader is pytest's
`AssertionRewritingHook`. A re-executed module with that loader is compiled the same way, from
the same source bytes the engine reads, so a failing assert keeps its detailed message. Every
other module compiles as the engine does by default.

The code object each re-execution ran is kept: after a reload, the fingerprints it contains are
the file's code as it is now (testing/fingerprints.py)."""

from __future__ import annotations

import ast
import types
from collections.abc import Callable
from typing import Any

from _pytest.assertion.rewrite import AssertionRewritingHook, rewrite_asserts

from hmr_serve.reload import executor, identity

Compile = Callable[[str, bytes, str, dict[str, Any]], Any]


class TestCompiler:
    def __init__(self) -> None:
        self._default: Compile | None = None
        #: path -> the code object its latest re-execution ran.
        self.codes: dict[str, types.CodeType] = {}

    def __call__(self, name: str, source: bytes, path: str, namespace: dict[str, Any]) -> Any:
        loader = namespace.get("__loader__")
        if isinstance(loader, AssertionRewritingHook):
            tree = ast.parse(source, path)
            identity.instrument(tree)
            rewrite_asserts(tree, source, path, loader.config)
            code = compile(tree, path, "exec", dont_inherit=True)
        else:
            assert self._default is not None
            code = self._default(name, source, path, namespace)
        self.codes[path] = code
        return code

    def install(self) -> None:
        if self._default is None:
            self._default = executor.compile_module
            executor.compile_module = self

    def uninstall(self) -> None:
        if self._default is not None:
            executor.compile_module = self._default
            self._default = None
