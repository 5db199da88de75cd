"""conftest.py files and other first-party pytest plugins, across a reload.

The engine re-executes a changed conftest in place, like any module; its functions keep their
identity (reload/identity.py), so pluggy's hook implementations and the fixture definitions
that hold them run the new code. What the session cannot take in place:
- a hook implementation that changed, appeared or went away, or a new `pytest_plugins`: hooks
  such as `pytest_configure` or `pytest_collection_modifyitems` already ran; the session
  restarts (and says so);
- a conftest no plugin was registered for yet (a new file) or one that shares its module name
  with another (pytest imports such conftests under one name, so which one the engine re-ran
  cannot be told): the session restarts.

A fixture whose definition kept its shape (name, scope, parameters, autouse, the fixtures it
requests) keeps its `FixtureDef`, and with it its value: it is rebuilt only if what its setup
ran or read changed (testing/selection.py). One whose shape changed is defined anew, and the
tests below its conftest are collected again.
"""

from __future__ import annotations

import os
import types
from dataclasses import dataclass, field
from typing import Any

import pytest
from _pytest.fixtures import FixtureDef, FixtureFunctionDefinition

from hmr_serve.testing import fingerprints
from hmr_serve.testing.collection import finish


@dataclass
class Outcome:
    restart: str | None = None  # why the session must restart
    reshaped: list[Any] = field(default_factory=list)  # nodes whose tests need collecting again


def _hooks(module: types.ModuleType) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for name, value in list(vars(module).items()):
        if name.startswith("pytest_") and callable(value):
            code = getattr(value, "__code__", None)
            found[name] = fingerprints.all_of(code) if code is not None else id(value)
    found["pytest_plugins"] = repr(getattr(module, "pytest_plugins", None))
    return found


def _fixture_module(function: Any) -> Any:
    function = getattr(function, "__func__", function)
    return getattr(function, "__globals__", None)


class PluginModules:
    def __init__(self, config: pytest.Config, session: pytest.Session, first_party: Any) -> None:
        self.config = config
        self.session = session
        self.first_party = first_party  # (path) -> bool
        self._before: dict[str, dict[str, Any]] = {}

    def modules(self) -> dict[str, types.ModuleType]:
        """First-party modules registered as plugins, by real path."""
        found: dict[str, types.ModuleType] = {}
        for plugin in self.config.pluginmanager.get_plugins():
            if isinstance(plugin, types.ModuleType):
                path = getattr(plugin, "__file__", None)
                if path and self.first_party(path):
                    found[os.path.realpath(path)] = plugin
        return found

    def before_reload(self) -> None:
        self._before = {path: _hooks(module) for path, module in self.modules().items()}

    def after_reload(self, changed_paths: set[str], reexecuted: set[str]) -> Outcome:
        """`changed_paths`: real paths the save touched; `reexecuted`: module names that ran."""
        outcome = Outcome()
        modules = self.modules()
        for path in changed_paths:
            if os.path.basename(path) == "conftest.py" and path not in modules:
                if os.path.exists(path):
                    outcome.restart = f"{os.path.relpath(path)} is a new conftest.py"
                    return outcome
        for path, module in modules.items():
            if path not in changed_paths and module.__name__ not in reexecuted:
                continue
            if path in changed_paths and not os.path.exists(path):
                outcome.restart = f"{os.path.relpath(path)} was deleted"
                return outcome
            live = _live(module)
            if live is not module:
                outcome.restart = (
                    f"{os.path.relpath(path)} shares its module name {module.__name__!r} with "
                    "another conftest"
                )
                return outcome
            if _hooks(module) != self._before.get(path):
                outcome.restart = f"a pytest hook in {os.path.relpath(path)} changed"
                return outcome
            outcome.reshaped += self._refresh_fixtures(module)
        return outcome

    def _refresh_fixtures(self, module: types.ModuleType) -> list[Any]:
        """Points the plugin's fixture definitions at its current functions; returns the nodes
        whose definitions changed shape (their tests must be collected again)."""
        manager = self.session._fixturemanager
        namespace = vars(module)
        old: dict[str, list[tuple[Any, FixtureDef[Any]]]] = {}
        for name, node2defs in manager._arg2node2fixturedefs.items():
            for node, fixturedefs in node2defs.items():
                for fixturedef in fixturedefs:
                    if _fixture_module(fixturedef.func) is namespace:
                        old.setdefault(name, []).append((node, fixturedef))
        new: dict[str, tuple[Any, Any]] = {}
        for attr, value in list(namespace.items()):
            if type(value) is FixtureFunctionDefinition:
                marker = value._fixture_function_marker
                new[marker.name or attr] = (marker, value._get_wrapped_function())
        nodes = {node for pairs in old.values() for node, _ in pairs}
        if set(old) != set(new) or len(nodes) > 1 or any(len(p) > 1 for p in old.values()):
            return self._redefine(module, old, nodes)
        for name, [(node, fixturedef)] in old.items():
            marker, function = new[name]
            probe = FixtureDef(
                config=self.config,
                baseid=None,
                argname=name,
                func=function,
                scope=marker.scope,
                params=marker.params,
                ids=marker.ids,
                node=node,
                _ispytest=True,
            )
            autouse = name in manager._node_autousenames.get(node, ())
            if (
                probe.scope != fixturedef.scope
                or _differ(probe.params, fixturedef.params)
                or _differ(probe.ids, fixturedef.ids)
                or probe.argnames != fixturedef.argnames
                or bool(marker.autouse) != autouse
            ):
                return self._redefine(module, old, nodes)
        for name, [(_, fixturedef)] in old.items():
            fixturedef.func = new[name][1]  # type: ignore[misc]
        return []

    def _redefine(
        self, module: types.ModuleType, old: dict[str, list[tuple[Any, Any]]], nodes: set[Any]
    ) -> list[Any]:
        manager = self.session._fixturemanager
        if not nodes:
            nodes = {self._node_for(module)}
        for name, pairs in old.items():
            for node, fixturedef in pairs:
                finish(fixturedef, self.session)
                manager._arg2node2fixturedefs[name][node].remove(fixturedef)
                autouse = manager._node_autousenames.get(node)
                if autouse and name in autouse:
                    autouse.remove(name)
        for node in nodes:
            manager.parsefactories(holder=module, node=node)
        return list(nodes)

    def _node_for(self, module: types.ModuleType) -> Any:
        """Where a plugin's fixtures are visible: a conftest's directory (the session for the
        root directory's), any other plugin everywhere."""
        path = getattr(module, "__file__", "")
        if os.path.basename(path) != "conftest.py":
            return self.session
        directory = os.path.realpath(os.path.dirname(path))
        if directory == os.path.realpath(self.config.rootpath):
            return self.session
        for item in self.session.items:
            for node in item.listchain():
                if isinstance(node, pytest.Directory) and os.path.realpath(node.path) == directory:
                    return node
        return self.session


def _live(module: types.ModuleType) -> Any:
    import sys

    return sys.modules.get(module.__name__)


def _differ(a: Any, b: Any) -> bool:
    try:
        return bool(a != b)
    except Exception:
        return a is not b
