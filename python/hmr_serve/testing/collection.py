"""The tests of the session, kept collected between runs, and collected again where files
changed.

The collection tree stays: the session, its directories and the module nodes are the same
objects for the whole session (the fixtures scoped to them live as long as they do). A test
module the engine re-executed in place is collected again from its module object, under the
same module node: its tests, parameters, marks and module-level fixtures are read afresh (the
fixtures it defines get new definitions, so they are rebuilt; those of conftests stay). A new
test file is collected under its directory's node. Each newly collected batch goes through
`pytest_collection_modifyitems`, so `-k`, `-m`, `--lf` and the plugins' reordering and
deselection apply to it as to the first collection.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pytest
from _pytest import nodes
from _pytest.runner import collect_one_node


def _real(path: Any) -> str:
    return os.path.realpath(str(path))


class Universe:
    """The tests a full run would run now (collected, not deselected), in pytest's order."""

    def __init__(self, session: pytest.Session, failed_files: dict[str, Any]) -> None:
        self.session = session
        self.items: list[pytest.Item] = list(session.items)
        # Files whose collection failed (an import error), by real path: collected again when
        # they change (kept up to date by the plugin's collection hook).
        self.failed_files = failed_files

    def __len__(self) -> int:
        return len(self.items)

    # -- the tree ------------------------------------------------------------------------------

    def files(self) -> dict[str, nodes.File]:
        """File nodes by real path."""
        found: dict[str, nodes.File] = {}
        for item in self.items:
            node = item.getparent(nodes.File)
            if node is not None:
                found.setdefault(_real(node.path), node)
        return found

    def directories(self) -> dict[str, nodes.Directory]:
        found: dict[str, nodes.Directory] = {}
        for item in self.items:
            for node in item.listchain():
                if isinstance(node, nodes.Directory):
                    found.setdefault(_real(node.path), node)
        for node in self.failed_files.values():
            for parent in node.listchain():
                if isinstance(parent, nodes.Directory):
                    found.setdefault(_real(parent.path), parent)
        return found

    # -- collecting again ----------------------------------------------------------------------

    def recollect(self, node: nodes.Collector) -> list[pytest.Item]:
        """Collects `node` (a file) again; its items replace the old ones. Returns the new
        items that a full run would run (after `pytest_collection_modifyitems`)."""
        old = [item for item in self.items if node in item.listchain()]
        _forget_fixtures(self.session, node, old)
        if hasattr(node, "_obj"):
            node._obj = None  # read the module object (and its marks) again
        node.own_markers.clear()
        node.keywords._markers = {node.name: True}  # type: ignore[attr-defined]
        fresh = self._collect(node)
        self._replace(old, fresh)
        return fresh

    def collect_new(self, path: str) -> list[pytest.Item]:
        """Collects a file that was not part of the session: a new test file, or one in a new
        directory. Returns its items, or [] when it is no test file of this session."""
        parent, missing = self._parent_for(Path(path))
        if parent is None:
            return []
        config = self.session.config
        target = Path(path)
        ihook = parent.ihook
        if missing:  # a new directory: collect the directory, which collects the file
            first = missing[0]
            initial = self.session.isinitpath(first, with_parents=True)
            if not initial and ihook.pytest_ignore_collect(collection_path=first, config=config):
                return []
            directory = ihook.pytest_collect_directory(path=first, parent=parent)
            if directory is None:
                return []
            fresh = self._collect(directory)
        else:
            initial = self.session.isinitpath(target)
            if not initial and ihook.pytest_ignore_collect(collection_path=target, config=config):
                return []
            fresh = []
            for collector in ihook.pytest_collect_file(file_path=target, parent=parent):
                fresh += self._collect(collector)
        self._insert(fresh)
        return fresh

    def remove_file(self, path: str) -> list[pytest.Item]:
        """A deleted file: its tests leave the session. Returns them."""
        gone = [item for item in self.items if _real(item.path) == path]
        node = self.files().get(path)
        if node is not None:
            _forget_fixtures(self.session, node, gone)
        self.items = [item for item in self.items if item not in gone]
        self.failed_files.pop(path, None)
        return gone

    def _parent_for(self, path: Path) -> tuple[nodes.Collector | None, list[Path]]:
        """The directory node a new file belongs under, and the directories between them that
        have no node yet; None when the file is outside what the session collects."""
        if not any(
            path == arg or arg in path.parents
            for arg in self.session._initialpaths  # type: ignore[attr-defined]
        ):
            return None, []
        known = self.directories()
        missing: list[Path] = []
        for directory in (path.parent, *path.parent.parents):
            node = known.get(_real(directory))
            if node is not None:
                return node, list(reversed(missing))
            missing.append(directory)
        return None, []

    def _collect(self, node: nodes.Collector) -> list[pytest.Item]:
        session = self.session
        fresh: list[pytest.Item] = []
        report = collect_one_node(node)
        node.ihook.pytest_collectreport(report=report)
        if report.passed:
            for child in report.result:
                fresh.extend(session.genitems(child))
        session.config.hook.pytest_collection_modifyitems(
            session=session, config=session.config, items=fresh
        )
        return fresh

    def _replace(self, old: Sequence[pytest.Item], fresh: list[pytest.Item]) -> None:
        if not old:
            self._insert(fresh)
            return
        at = self.items.index(old[0])
        gone = set(map(id, old))
        before = [item for item in self.items[:at] if id(item) not in gone]
        after = [item for item in self.items[at:] if id(item) not in gone]
        self.items = before + fresh + after

    def _insert(self, fresh: list[pytest.Item]) -> None:
        """New items go where their file sorts among the others' (pytest collects files in
        name order)."""
        if not fresh:
            return
        key = str(fresh[0].path)
        at = len(self.items)
        for index, item in enumerate(self.items):
            if str(item.path) > key:
                at = index
                break
        self.items[at:at] = fresh


def _forget_fixtures(session: pytest.Session, node: nodes.Node, items: Iterable[Any]) -> None:
    """The fixtures a file defined (registered on its node and its classes' nodes) are torn
    down and dropped: collecting it again registers its current definitions."""
    below = {node}
    for item in items:
        chain = item.listchain()
        if node in chain:
            below.update(chain[chain.index(node) :])
    manager = session._fixturemanager
    for node2defs in manager._arg2node2fixturedefs.values():
        for owner in [owner for owner in node2defs if owner in below]:
            for fixturedef in node2defs.pop(owner):
                finish(fixturedef, session)
    for owner in below:
        manager._node_autousenames.pop(owner, None)


def finish(fixturedef: Any, session: pytest.Session) -> None:
    """Tears a fixture down now (and, through their finalizers, those that depend on it)."""
    if fixturedef.cached_result is None:
        return

    class _Request:  # `finish` reads only `request.node`, for its error message
        node = session

    try:
        fixturedef.finish(request=_Request())
    except Exception as exc:
        session.config.get_terminal_writer().line(
            f"teardown of fixture {fixturedef.argname!r} failed: {exc!r}", red=True
        )
