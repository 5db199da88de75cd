"""Hot reload of SQLAlchemy models (declarative classes, Core tables, SQLModel) behind FastAPI
on SQLite: re-running a models module raises no "Table 'x' is already defined" and warns about
no duplicate class, and every answer equals a fresh process's (the oracle: the app's TestClient
in a new interpreter, on its own database file)."""

from __future__ import annotations

import os
import textwrap
import time
from pathlib import Path

import pytest
from conftest import Server, edit, poll_until, served_tree, write
from fresh import run_fresh

pytest.importorskip("sqlalchemy")

FILES = {
    "inv/__init__.py": "",
    "inv/db.py": """
        import os

        from sqlalchemy import create_engine
        from sqlalchemy.orm import DeclarativeBase

        class Base(DeclarativeBase):
            pass

        engine = create_engine("sqlite:///" + os.environ["DB_PATH"])
    """,
    "inv/models.py": """
        from sqlalchemy import ForeignKey, String
        from sqlalchemy.orm import Mapped, mapped_column, relationship

        from inv.db import Base

        class Item(Base):
            __tablename__ = "items"

            id: Mapped[int] = mapped_column(primary_key=True)
            name: Mapped[str] = mapped_column(String(30))
            tags: Mapped[list["Tag"]] = relationship(back_populates="item", order_by="Tag.id")

            def label(self):
                return "item:" + self.name

        class Tag(Base):
            __tablename__ = "tags"

            id: Mapped[int] = mapped_column(primary_key=True)
            text: Mapped[str]
            item_id: Mapped[int] = mapped_column(ForeignKey("items.id"))
            item: Mapped[Item] = relationship(back_populates="tags")
    """,
    "inv/tables.py": """
        from sqlalchemy import Column, Integer, String, Table

        from inv.db import Base

        audit = Table(
            "audit",
            Base.metadata,
            Column("id", Integer, primary_key=True),
            Column("msg", String(50)),
        )
    """,
    "inv/main.py": """
        from fastapi import FastAPI
        from sqlalchemy import insert, select
        from sqlalchemy.orm import Session

        from inv.db import Base, engine
        from inv.models import Item, Tag
        from inv.tables import audit

        # A development database made afresh at import, as a fresh process would.
        Base.metadata.drop_all(engine)
        Base.metadata.create_all(engine)
        with Session(engine) as session:
            session.add_all([Item(name="a", tags=[Tag(text="x"), Tag(text="y")]), Item(name="b")])
            session.execute(insert(audit).values(msg="created"))
            session.commit()

        app = FastAPI()

        def row(obj, table):
            return {column.key: getattr(obj, column.key) for column in table.columns}

        @app.get("/")
        def index():
            with Session(engine) as session:
                items = session.scalars(select(Item).order_by(Item.id)).all()
                return {
                    "items": [
                        {
                            "label": item.label(),
                            "row": row(item, Item.__table__),
                            "tags": [row(tag, Tag.__table__) for tag in item.tags],
                        }
                        for item in items
                    ],
                    "audit": [dict(r._mapping) for r in session.execute(select(audit))],
                    "tables": sorted(Base.metadata.tables),
                    "mappers": sorted(m.class_.__name__ for m in Base.registry.mappers),
                }
    """,
}

ORACLE = textwrap.dedent(
    """
    import json, sys
    sys.path.insert(0, ".")
    from fastapi.testclient import TestClient
    from {module} import app
    response = TestClient(app).get("/")
    print(json.dumps([response.status_code, response.json()]))
    """
)


def oracle(root: Path, module: str = "inv.main") -> list:
    script = ORACLE.format(module=module)
    return run_fresh(root, script, env={"DB_PATH": str(root / "oracle.sqlite3")})


def current(server: Server) -> list:
    with server.client() as client:
        response = client.get("/")
        return [response.status_code, response.json()]


def settle(root: Path, server: Server, module: str = "inv.main", timeout: float = 15.0) -> dict:
    return poll_until(lambda: current(server), oracle(root, module), server, timeout, 0.03)[1]


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    root = tmp_path_factory.mktemp("sqlalchemy-app")
    env = {"DB_PATH": str(root / "server.sqlite3")}
    with served_tree(root, FILES, "inv.main:app", "--no-access-log", env=env) as served:
        yield root, *served


def test_initial_response_matches_a_fresh_process(session):
    root, server, _ = session
    got = settle(root, server)
    assert got["items"][0]["label"] == "item:a"
    assert got["mappers"] == ["Item", "Tag"]


def test_method_edit(session):
    root, server, _ = session
    edit(root, "inv/models.py", '"item:" + self.name', '"ITEM " + self.name.upper()')
    assert settle(root, server)["items"][1]["label"] == "ITEM B"


def test_column_with_a_default_added(session):
    root, server, _ = session
    edit(
        root,
        "inv/models.py",
        "    text: Mapped[str]\n",
        '    text: Mapped[str]\n    color: Mapped[str] = mapped_column(default="red")\n',
    )
    edit(
        root,
        "inv/models.py",
        "name: Mapped[str] = mapped_column(String(30))",
        "name: Mapped[str] = mapped_column(String(30))\n"
        "    stock: Mapped[int] = mapped_column(default=7)",
    )
    got = settle(root, server)
    assert got["items"][0]["row"]["stock"] == 7
    assert got["items"][0]["tags"][0]["color"] == "red"


def test_class_renamed_and_removed(session):
    root, server, _ = session
    # A class gone from the source is gone from the registry and the metadata, as fresh.
    edit(
        root,
        "inv/models.py",
        "class Tag(Base):",
        'class Note(Base):\n    __tablename__ = "notes"\n'
        "    id: Mapped[int] = mapped_column(primary_key=True)\n\n"
        "class Tag(Base):",
    )
    assert settle(root, server)["mappers"] == ["Item", "Note", "Tag"]
    edit(root, "inv/models.py", "class Note(Base):", "class Memo(Base):")
    got = settle(root, server)
    assert got["mappers"] == ["Item", "Memo", "Tag"]
    assert "notes" in got["tables"]


def test_core_table_edit(session):
    root, server, _ = session
    edit(
        root,
        "inv/tables.py",
        'Column("msg", String(50)),',
        'Column("msg", String(50)),\n    Column("level", Integer, default=1),',
    )
    got = settle(root, server)
    assert got["audit"] == [{"id": 1, "msg": "created", "level": 1}]


def test_base_module_edit(session):
    # Everything re-runs with a new Base, registry and metadata.
    root, server, _ = session
    edit(
        root, "inv/db.py", "class Base(DeclarativeBase):", "class Base(DeclarativeBase):  # edited"
    )
    settle(root, server)


def test_failed_edit_rolls_back_then_fix_applies(session):
    root, server, _ = session
    before = current(server)
    failures = server.count_lines("reload failed")
    source = (root / "inv" / "models.py").read_text()
    (root / "inv" / "models.py").write_text(source + "\nraise RuntimeError('broken models')\n")
    deadline = time.monotonic() + 10
    while server.count_lines("reload failed") == failures:
        assert time.monotonic() < deadline, server.output
        time.sleep(0.02)
    assert current(server) == before
    (root / "inv" / "models.py").write_text(source.replace('default="red"', 'default="blue"'))
    assert settle(root, server)["items"][0]["tags"][0]["color"] == "blue"


def test_no_request_failed_and_no_warning(session):
    _, server, background = session
    time.sleep(0.2)
    assert background.sent > 50
    assert background.failures == []
    assert server.count_lines("reload failed") == 1, server.output  # the deliberate one
    assert "already defined" not in server.output
    assert "SAWarning" not in server.output
    assert "restart" not in server.output


SPLIT = {
    "split/__init__.py": "",
    "split/db.py": FILES["inv/db.py"],
    # Two models modules that do not import each other, tied by a relationship by name.
    "split/users.py": """
        from sqlalchemy.orm import Mapped, mapped_column, relationship

        from split.db import Base

        class User(Base):
            __tablename__ = "users"
            id: Mapped[int] = mapped_column(primary_key=True)
            orders: Mapped[list["Order"]] = relationship(back_populates="user")
    """,
    "split/orders.py": """
        from sqlalchemy import ForeignKey
        from sqlalchemy.orm import Mapped, mapped_column, relationship

        from split.db import Base

        class Order(Base):
            __tablename__ = "orders"
            id: Mapped[int] = mapped_column(primary_key=True)
            user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
            user: Mapped["User"] = relationship(back_populates="orders")

            def total(self):
                return 1
    """,
    "split/main.py": """
        from fastapi import FastAPI
        from sqlalchemy import select
        from sqlalchemy.orm import Session

        from split import orders, users
        from split.db import Base, engine

        Base.metadata.drop_all(engine)
        Base.metadata.create_all(engine)
        with Session(engine) as session:
            session.add(users.User(orders=[orders.Order()]))
            session.commit()

        app = FastAPI()

        @app.get("/")
        def index():
            with Session(engine) as session:
                user = session.scalars(select(users.User)).one()
                return {"totals": [order.total() for order in user.orders]}
    """,
}


def test_relationship_across_the_reloaded_modules_takes_the_restart(tmp_path, start_server):
    for rel, text in SPLIT.items():
        write(tmp_path, rel, text)
    server = start_server(
        "split.main:app", "--port", "0", cwd=tmp_path, env={"DB_PATH": str(tmp_path / "s.db")}
    )
    assert settle(tmp_path, server, "split.main") == {"totals": [1]}
    edit(tmp_path, "split/orders.py", "return 1", "return 2")
    line = server.wait_for_line(r"restarting the process|restart unavailable", timeout=15)
    assert (
        "split/orders.py changed: Order re-runs, but User (split.users), which has a "
        "relationship to it, does not; SQLAlchemy mappings cannot be hot-reloaded in part"
    ) in line, line
    if "restarting the process" in line:
        assert settle(tmp_path, server, "split.main", timeout=60) == {"totals": [2]}


# mealie's shape: a settings value reaches one models module through a config module; the
# models module that relates to it imports neither, so it stays.
SETTINGS_CHAIN = {
    "app/__init__.py": "",
    "app/settings.py": """
        DEFAULT_PLAN = "free"
    """,
    "app/config.py": """
        from app import settings

        def get_settings():
            return settings
    """,
    "app/db.py": FILES["inv/db.py"],
    "app/models/__init__.py": "",
    "app/models/groups.py": """
        from sqlalchemy.orm import Mapped, mapped_column

        from app.config import get_settings
        from app.db import Base

        class Group(Base):
            __tablename__ = "groups"
            id: Mapped[int] = mapped_column(primary_key=True)
            plan: Mapped[str] = mapped_column(default=get_settings().DEFAULT_PLAN)
    """,
    "app/models/exports.py": """
        from sqlalchemy import ForeignKey
        from sqlalchemy.orm import Mapped, mapped_column, relationship

        from app.db import Base

        class GroupExport(Base):
            __tablename__ = "group_exports"
            id: Mapped[int] = mapped_column(primary_key=True)
            group_id: Mapped[int] = mapped_column(ForeignKey("groups.id"))
            group: Mapped["Group"] = relationship()
    """,
    "app/main.py": """
        from fastapi import FastAPI
        from sqlalchemy import select
        from sqlalchemy.orm import Session

        from app.db import Base, engine
        from app.models import exports, groups

        Base.metadata.drop_all(engine)
        Base.metadata.create_all(engine)
        with Session(engine) as session:
            session.add(exports.GroupExport(group=groups.Group()))
            session.commit()

        app = FastAPI()

        @app.get("/")
        def index():
            with Session(engine) as session:
                export = session.scalars(select(exports.GroupExport)).one()
                return {"plan": export.group.plan}
    """,
}


def test_restart_reason_names_the_changed_file_then_its_importers(tmp_path, start_server):
    for rel, text in SETTINGS_CHAIN.items():
        write(tmp_path, rel, text)
    server = start_server(
        "app.main:app", "--port", "0", cwd=tmp_path, env={"DB_PATH": str(tmp_path / "s.db")}
    )
    assert settle(tmp_path, server, "app.main") == {"plan": "free"}
    edit(tmp_path, "app/settings.py", '"free"', '"team"')
    line = server.wait_for_line(r"restarting the process|restart unavailable", timeout=15)
    assert (
        "app/settings.py changed → app.config → app.models.groups: Group re-runs, but "
        "GroupExport (app.models.exports), which has a relationship to it, does not"
    ) in line, line
    if "restarting the process" in line:
        assert settle(tmp_path, server, "app.main", timeout=60) == {"plan": "team"}


SQLMODEL = {
    "heroes/__init__.py": "",
    "heroes/models.py": """
        from sqlmodel import Field, SQLModel

        class Hero(SQLModel, table=True):
            id: int | None = Field(default=None, primary_key=True)
            name: str

            def title(self):
                return "hero " + self.name
    """,
    "heroes/main.py": """
        import os

        from fastapi import FastAPI
        from sqlmodel import Session, SQLModel, create_engine, select

        from heroes.models import Hero

        engine = create_engine("sqlite:///" + os.environ["DB_PATH"])
        SQLModel.metadata.drop_all(engine)
        SQLModel.metadata.create_all(engine)
        with Session(engine) as session:
            session.add(Hero(name="ada"))
            session.commit()

        app = FastAPI()

        @app.get("/")
        def index():
            with Session(engine) as session:
                return [
                    {"title": hero.title(), **hero.model_dump()}
                    for hero in session.exec(select(Hero))
                ]
    """,
}


def test_sqlmodel_table_edit(tmp_path, start_server):
    pytest.importorskip("sqlmodel")
    for rel, text in SQLMODEL.items():
        write(tmp_path, rel, text)
    server = start_server(
        "heroes.main:app", "--port", "0", cwd=tmp_path, env={"DB_PATH": str(tmp_path / "h.db")}
    )
    settle(tmp_path, server, "heroes.main")
    edit(tmp_path, "heroes/models.py", "    name: str\n", "    name: str\n    power: int = 9\n")
    edit(tmp_path, "heroes/models.py", '"hero "', '"HERO "')
    got = settle(tmp_path, server, "heroes.main")
    assert got == [{"title": "HERO ada", "id": 1, "name": "ada", "power": 9}]
    assert "already defined" not in server.output
    assert "Warning" not in server.output, server.output
    assert server.count_lines("reload failed") == 0, server.output


def test_engine_replaced_by_a_reload_is_disposed(tmp_path, start_server):
    write(
        tmp_path,
        "eng/__init__.py",
        "",
    )
    write(
        tmp_path,
        "eng/main.py",
        """
        import os

        from fastapi import FastAPI
        from sqlalchemy import create_engine, text

        engine = create_engine("sqlite:///" + os.environ["DB_PATH"])
        VERSION = 1

        app = FastAPI()

        @app.get("/")
        def index():
            with engine.connect() as connection:
                return {"version": VERSION, "one": connection.execute(text("select 1")).scalar()}
        """,
    )
    db = tmp_path / "e.db"
    server = start_server("eng.main:app", "--port", "0", cwd=tmp_path, env={"DB_PATH": str(db)})
    assert current(server) == [200, {"version": 1, "one": 1}]
    pid = server.proc.pid

    def open_handles() -> int:
        fd_dir = Path(f"/proc/{pid}/fd")
        count = 0
        for fd in fd_dir.iterdir():
            try:
                count += os.readlink(fd) == str(db)
            except OSError:
                continue
        return count

    assert open_handles() == 1  # the pooled connection
    edit(tmp_path, "eng/main.py", "VERSION = 1", "VERSION = 2")
    deadline = time.monotonic() + 10
    while current(server) != [200, {"version": 2, "one": 1}]:
        assert time.monotonic() < deadline, server.output
        time.sleep(0.03)
    assert open_handles() == 1  # the new engine's; the old pool was closed
