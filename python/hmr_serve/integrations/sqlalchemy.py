"""SQLAlchemy (and SQLModel, which builds on it): models modules that run again.

A MetaData refuses a second `Table('user', ...)` ("Table 'user' is already defined for this
MetaData instance") and a declarative registry warns about a second class of the same name and
module, keeping both mappers. A fresh process has neither the old table nor the old class, so
before the re-execution every MetaData and registry forgets what the re-running modules defined:
their mapped classes (out of the registry and of the string lookup `relationship("User")` uses;
the old mapper is marked disposed once the reload commits) and their tables, Core tables
included when no module that stays holds them. The new code then defines them anew, new columns,
defaults and methods included; a mapped class is always a new class object (identity.py keeps
only classes whose creation registers nothing). A reload that fails puts every class and table
back. Engines that a re-running module replaced are disposed, so the old pool's connections do
not linger.

Restart instead when a re-running mapped class is tied to one that stays: a relationship, a
foreign key or inheritance across the boundary. The class that stays would keep pointing at the
old mapper and table, which a fresh process would not; only a restart rebuilds both sides.
Classes related within the re-running modules (one models module, or several that import each
other) reload hot.

The database schema is not migrated, as in a fresh process: a new column needs its table created
or altered the way the app normally does it.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from typing import Any

from hmr_serve.integrations import Integration, import_chain


def _registries() -> list[Any]:
    # By module path: `sqlalchemy.orm.mapper` the attribute is a function of that name.
    mapperlib = importlib.import_module("sqlalchemy.orm.mapper")
    return list(mapperlib._mapper_registries)


def _mappers(registry: Any) -> list[Any]:
    return [manager.mapper for manager in list(registry._managers) if manager.is_mapped]


def _module_values() -> Iterator[tuple[str, Any]]:
    """(module name, value) for every module global. Callers test `type(value)`, never
    `isinstance`, which asks a proxy (flask.request, a Django lazy object) for its `__class__`
    and so evaluates it."""
    for name, module in list(sys.modules.items()):
        if name.startswith(("sqlalchemy.", "sqlmodel.", "hmr_serve.")):
            continue
        namespace = getattr(module, "__dict__", None)
        if isinstance(namespace, dict):
            for value in list(namespace.values()):
                yield name, value


class SQLAlchemyIntegration(Integration):
    framework = "sqlalchemy"

    def __init__(self) -> None:
        self._closure: set[str] = set()
        self._removed: list[tuple[Any, Any]] = []  # (registry, class manager) unmapped
        self._metadata_state: list[tuple[Any, dict[str, Any], dict[Any, list[Any]]]] = []
        self._engines: list[Any] = []

    # -- restart ---------------------------------------------------------------------------------

    def restart_reason(self, modules: list[str], paths: list[str]) -> str | None:
        problem = self._partial_mapping(set(modules))
        if problem is None:
            return None
        rerun, why = problem
        return (
            f"{import_chain.describe(rerun, modules, paths)}: {why}; "
            "SQLAlchemy mappings cannot be hot-reloaded in part"
        )

    def _partial_mapping(self, closure: set[str]) -> tuple[str, str] | None:
        """A re-running mapped class tied to one that stays: the re-running module it is in,
        and how they are tied."""
        inside_tables: dict[Any, Any] = {}
        outside: list[Any] = []
        inside: list[Any] = []
        for registry in _registries():
            for mapper in _mappers(registry):
                if mapper.class_.__module__ in closure:
                    inside.append(mapper)
                    inside_tables.setdefault(mapper.local_table, mapper.class_)
                else:
                    outside.append(mapper)
        if not inside:
            return None
        inside_classes = {m.class_ for m in inside}
        for mapper in outside:
            if mapper.inherits is not None and mapper.inherits.class_ in inside_classes:
                return _tied(mapper.inherits.class_, mapper.class_, "inherits from it")
            for target in self._related(mapper):
                if target in inside_classes:
                    return _tied(target, mapper.class_, "has a relationship to it")
            for table in self._foreign_keys(mapper):
                if table in inside_tables:
                    return _tied(inside_tables[table], mapper.class_, "has a foreign key to it")
        outside_classes = {m.class_ for m in outside}
        for mapper in inside:
            if mapper.inherits is not None and mapper.inherits.class_ in outside_classes:
                # The base class keeps the subclass in its polymorphic map.
                return _tied(mapper.class_, mapper.inherits.class_, "is its base class")
            for target in self._related(mapper):
                if target in outside_classes:
                    return _tied(mapper.class_, target, "it has a relationship to")
        return None

    @staticmethod
    def _related(mapper: Any) -> Iterator[Any]:
        from sqlalchemy.orm import RelationshipProperty

        for prop in list(mapper._props.values()):
            if not isinstance(prop, RelationshipProperty):
                continue
            try:
                # Resolves a string target ("User") through the registry: the class it names.
                yield prop.entity.class_
            except Exception:  # unresolvable yet: configuring would fail in a fresh process too
                continue

    @staticmethod
    def _foreign_keys(mapper: Any) -> Iterator[Any]:
        table = mapper.local_table
        for fk in getattr(table, "foreign_keys", ()):
            try:
                yield fk.column.table
            except Exception:  # names a table that does not exist (yet)
                continue

    # -- around the re-execution -----------------------------------------------------------------

    def before_execute(self, modules: list[str]) -> None:
        from sqlalchemy import MetaData, Table
        from sqlalchemy.engine import Engine

        closure = set(modules)
        self._closure = closure
        self._engines = [
            value
            for name, value in _module_values()
            if name in closure and issubclass(type(value), Engine)
        ]
        metadatas: dict[int, Any] = {}
        # Tables that a module which stays holds (its own, or imported): those stay.
        held_outside: set[int] = set()
        defined_inside: dict[int, Any] = {}
        for name, value in _module_values():
            kind = type(value)
            if issubclass(kind, MetaData):
                metadatas[id(value)] = value
            elif issubclass(kind, Table):
                metadatas[id(value.metadata)] = value.metadata
                if name in closure:
                    defined_inside[id(value)] = value
                else:
                    held_outside.add(id(value))
        self._removed = []
        for registry in _registries():
            metadatas[id(registry.metadata)] = registry.metadata
            for manager in list(registry._managers):
                cls = manager.class_
                if cls.__module__ not in closure:
                    if manager.is_mapped:
                        held_outside.add(id(manager.mapper.local_table))
                    continue
                if manager.is_mapped:
                    mapper = manager.mapper
                    table = mapper.local_table
                    # A single-table subclass shares its parent's table: not its to drop.
                    if mapper.inherits is None or mapper.inherits.local_table is not table:
                        defined_inside[id(table)] = table
                    for prop in list(mapper._props.values()):
                        secondary = getattr(prop, "secondary", None)
                        if isinstance(secondary, Table):
                            defined_inside.setdefault(id(secondary), secondary)
                self._removed.append((registry, manager))
                self._unmap(registry, manager)
        self._metadata_state = [
            (metadata, dict(metadata.tables), {k: list(v) for k, v in metadata._fk_memos.items()})
            for metadata in metadatas.values()
        ]
        for table in defined_inside.values():
            if id(table) not in held_outside and table.metadata.tables.get(table.key) is table:
                table.metadata.remove(table)

    @staticmethod
    def _unmap(registry: Any, manager: Any) -> None:
        """The registry forgets the class; the class itself keeps working for whoever still
        holds it (the old code, until the reload commits or rolls back)."""
        cls = manager.class_
        del registry._managers[manager]
        # SQLAlchemy 2.1 lists classes with `__declare_first__`/`__declare_last__` on the
        # registry; 2.0 (the newest on Python 3.10) has no such list.
        for hooked in ("_declare_first_classes", "_declare_last_classes"):
            getattr(registry, hooked, {}).pop(cls, None)
        registry._dispose_cls(cls)  # out of the string lookup `relationship("User")` uses

    def after_execute(self, modules: list[str], succeeded: bool) -> None:
        removed, self._removed = self._removed, []
        metadata_state, self._metadata_state = self._metadata_state, []
        engines, self._engines = self._engines, []
        if succeeded:
            for _, manager in removed:
                if "mapper" in manager.__dict__:
                    # Never configured again, nor counted among the registry's mappers.
                    manager.mapper._set_dispose_flags()
            live = {id(value) for _, value in _module_values()}
            for engine in engines:
                if id(engine) not in live:
                    engine.dispose()  # its pool's connections, now that nothing uses it
            return
        # Rolled back: the old code is back, so are its classes and tables, and whatever the
        # failed attempt defined goes.
        old = {id(manager) for _, manager in removed}
        for registry in _registries():
            for manager in list(registry._managers):
                if manager.class_.__module__ in self._closure and id(manager) not in old:
                    self._unmap(registry, manager)
        from sqlalchemy.orm import clsregistry

        add_class = getattr(clsregistry, "_add_class", None) or clsregistry.add_class  # 2.1 / 2.0
        for registry, manager in removed:
            registry._managers[manager] = True
            cls = manager.class_
            add_class(cls.__name__, cls, registry._class_registry)
        for metadata, tables, fk_memos in metadata_state:
            dict.clear(metadata.tables)
            for key, table in tables.items():
                metadata.tables._insert_item(key, table)
            metadata._fk_memos.clear()
            metadata._fk_memos.update(fk_memos)


def _tied(rerun: Any, stays: Any, how: str) -> tuple[str, str]:
    """(the re-running class's module, "Group re-runs, but GroupExport (app.exports), which has
    a relationship to it, does not")."""
    return (
        rerun.__module__,
        f"{rerun.__name__} re-runs, but {stays.__name__} ({stays.__module__}), which {how}, "
        "does not",
    )


def integration() -> Integration:
    return SQLAlchemyIntegration()
