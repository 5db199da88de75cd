"""Identity across hot reloads: a real server on a generated FastAPI app, real edits. Objects
made before a reload (instances, enum members, functions stored by unchanged modules) must run
the new code afterwards, so after every edit the server answers what a fresh process answers.

`pkg/store.py` and `pkg/registry.py` import nothing of the app, so editing the other modules
never re-executes them: what they hold was made by the previous execution, as in a real app's
caches, route tables and plugin registries.
"""

from __future__ import annotations

import json
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import Server, edit, poll_until, served_tree
from fresh import asgi_get

FILES = {
    "pkg/__init__.py": "",
    "pkg/store.py": """
        ITEMS = {}
        ROUTES = {}
    """,
    "pkg/registry.py": """
        REGISTRY = {}

        def register(func):
            # Like Flask's endpoint check: another object under a taken name is a mistake.
            existing = REGISTRY.get(func.__name__)
            if existing is not None and existing is not func:
                raise ValueError(f"plugin {func.__name__} registered twice")
            REGISTRY[func.__name__] = func
            return func
    """,
    "pkg/models.py": """
        import dataclasses
        import enum

        from pydantic import BaseModel

        from pkg import store

        class Greeter:
            def __init__(self, name):
                self.name = name

            def greet(self):
                return f"hello {self.name} v1"

        class Color(enum.Enum):
            RED = "red"
            BLUE = "blue"

            def describe(self):
                return f"{self.value} v1"

        class Item(BaseModel):
            name: str
            price: float

            def label(self):
                return f"{self.name} v1"

        class Cart(BaseModel):
            items: list[Item]

        @dataclasses.dataclass
        class Point:
            x: int
            y: int = 0

        # Made once, by the first execution: later executions find them in the store.
        store.ITEMS.setdefault("greeter", Greeter("ada"))
        store.ITEMS.setdefault("color", Color.RED)
        store.ITEMS.setdefault("item", Item(name="widget", price=2.5))
        store.ITEMS.setdefault("point", Point(1, 2))
    """,
    "pkg/handlers.py": """
        from pkg import store

        def shout():
            return "shout v1"

        store.ROUTES.setdefault("shout", shout)
    """,
    "pkg/plugins.py": """
        from pkg.registry import register

        @register
        def alpha():
            return "alpha v1"

        @register
        def beta():
            return "beta v1"
    """,
    "pkg/main.py": """
        import dataclasses

        from fastapi import FastAPI

        from pkg import handlers, models, plugins, registry, store

        app = FastAPI()

        @app.get("/")
        def summary():
            greeter = store.ITEMS["greeter"]
            color = store.ITEMS["color"]
            return {
                "greet": greeter.greet(),
                "greeter_isinstance": isinstance(greeter, models.Greeter),
                "color_is_red": color is models.Color.RED,
                "color_equals_red": color == models.Color.RED,
                "color_in_enum": color in models.Color,
                "describe": color.describe(),
                "route": store.ROUTES["shout"](),
                "plugins": {name: func() for name, func in registry.REGISTRY.items()},
                "point_fields": [f.name for f in dataclasses.fields(models.Point)],
                "new_point": repr(models.Point(3)),
            }

        @app.get("/item")
        def item() -> models.Item:
            # Response validation: the instance must be an instance of the current class.
            return store.ITEMS["item"]

        @app.get("/kind")
        def kind():
            return {"kind": "sync"}

        @app.get("/cart")
        def cart() -> dict:
            made = models.Cart(items=[store.ITEMS["item"]])
            return {"labels": [i.label() for i in made.items], "total": made.items[0].price}
    """,
}

PATHS = ("/", "/item", "/cart", "/kind")


def oracle(root: Path, path: str) -> dict:
    answer = asgi_get(root, path)
    assert "error" not in answer, answer
    return {"status": answer["status"], "body": json.loads(answer["body"])}


def current(server: Server, path: str) -> dict:
    with server.client() as client:
        response = client.get(path)
        return {"status": response.status_code, "body": response.json()}


def settle(root: Path, server: Server, timeout: float = 20.0) -> dict[str, dict]:
    """Polls until every path answers what a fresh process answers for the files as they are."""
    expected = {path: oracle(root, path) for path in PATHS}

    def answers() -> dict[str, dict]:
        return {path: current(server, path) for path in PATHS}

    return poll_until(answers, expected, server, timeout, 0.05)


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    root = tmp_path_factory.mktemp("identity-app")
    with served_tree(root, FILES, "pkg.main:app", "--no-access-log") as served:
        yield root, *served


def test_initial_answers_match_a_fresh_process(session):
    root, server, _ = session
    got = settle(root, server)
    assert got["/"]["body"]["greet"] == "hello ada v1"
    assert got["/item"] == {"status": 200, "body": {"name": "widget", "price": 2.5}}


def test_instance_made_before_the_reload_runs_the_new_method(session):
    root, server, _ = session
    edit(root, "pkg/models.py", 'f"hello {self.name} v1"', 'f"hello {self.name} v2"')
    body = settle(root, server)["/"]["body"]
    assert body["greet"] == "hello ada v2"
    assert body["greeter_isinstance"] is True


def test_enum_members_stay_identical(session):
    root, server, _ = session
    edit(root, "pkg/models.py", 'f"{self.value} v1"', 'f"{self.value} v2"')
    body = settle(root, server)["/"]["body"]
    assert body["describe"] == "red v2"
    assert body["color_is_red"] is True and body["color_equals_red"] is True
    assert body["color_in_enum"] is True


def test_pydantic_instance_still_validates_after_a_method_edit(session):
    root, server, _ = session
    edit(root, "pkg/models.py", 'f"{self.name} v1"', 'f"{self.name} v2"')
    got = settle(root, server)
    assert got["/item"] == {"status": 200, "body": {"name": "widget", "price": 2.5}}
    assert got["/cart"]["body"] == {"labels": ["widget v2"], "total": 2.5}


def test_function_in_a_route_table_of_an_unchanged_module_runs_the_new_code(session):
    root, server, _ = session
    edit(root, "pkg/handlers.py", '"shout v1"', '"shout v2"')
    assert settle(root, server)["/"]["body"]["route"] == "shout v2"


def test_plugin_registry_has_one_entry_per_name_with_the_new_code(session):
    root, server, _ = session
    failures = server.count_lines("reload failed")
    edit(root, "pkg/plugins.py", '"alpha v1"', '"alpha v2"')
    body = settle(root, server)["/"]["body"]
    assert body["plugins"] == {"alpha": "alpha v2", "beta": "beta v1"}
    assert server.count_lines("reload failed") == failures


def test_dataclass_with_changed_fields_is_a_new_class(session):
    root, server, _ = session
    edit(root, "pkg/models.py", "    y: int = 0\n", "    y: int = 0\n    z: int = 7\n")
    body = settle(root, server)["/"]["body"]
    assert body["point_fields"] == ["x", "y", "z"]
    assert body["new_point"] == "Point(x=3, y=0, z=7)"


def test_sync_route_becoming_async_is_awaited(session):
    # FastAPI caches by function object whether a route is a coroutine function.
    root, server, _ = session
    edit(
        root,
        "pkg/main.py",
        'def kind():\n    return {"kind": "sync"}',
        'async def kind():\n    return {"kind": "async"}',
    )
    assert settle(root, server)["/kind"] == {"status": 200, "body": {"kind": "async"}}


def test_a_later_method_edit_still_reaches_old_instances(session):
    root, server, _ = session
    edit(root, "pkg/models.py", 'f"hello {self.name} v2"', 'f"hello {self.name} v3"')
    assert settle(root, server)["/"]["body"]["greet"] == "hello ada v3"


def test_no_request_failed_during_the_reloads(session):
    _, server, background = session
    time.sleep(0.2)
    assert background.sent > 50
    assert background.failures == []
    assert server.count_lines("reload failed") == 0
    assert server.count_lines(r"reloaded \d+ modules?") >= 8


# -- in process: the executor and identity module directly -----------------------------------


class _Engine:
    """The parts of the Rust reload engine the executor calls."""

    def take_edges(self, name):
        return []

    def set_edges(self, name, edges):
        pass

    def record_source(self, path, source):
        pass

    def remove_module(self, name):
        pass


class _Tracker:
    tracked: set[str] = set()
    before_import = None

    def forget(self, name):
        pass

    def start_position(self, name):
        return 0  # the order the test gives


@pytest.fixture
def live(tmp_path, monkeypatch):
    """Writes modules of a uniquely named package, imports them, re-executes them in place."""
    package = f"idpkg_{tmp_path.name.replace('-', '_')}"
    (tmp_path / package).mkdir()
    (tmp_path / package / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))

    class Live:
        name = package

        def write(self, module, text):
            (tmp_path / package / f"{module}.py").write_text(textwrap.dedent(text).lstrip("\n"))

        def load(self, module):
            import importlib

            return importlib.import_module(f"{package}.{module}")

        def reload(self, *modules, finish=lambda: None):
            from hmr_serve.reload import executor

            names = [f"{package}.{m}" for m in modules]
            return executor.run(_Engine(), _Tracker(), [], names, finish)

    yield Live()
    for name in [n for n in sys.modules if n == package or n.startswith(package + ".")]:
        del sys.modules[name]


CLASSY = """
    import functools

    class Base:
        def hello(self):
            return "base 1"

    class User(Base):
        kind = "kind 1"

        def greet(self):
            return "user 1 " + super().hello()

        @classmethod
        def make(cls):
            return cls()

        @property
        def prop(self):
            return "prop 1"

    def wrap(func):
        @functools.wraps(func)
        def wrapper(*args):
            return ("wrapped", func(*args))

        return wrapper

    @wrap
    def decorated():
        return "decorated 1"

    def plain():
        return "plain 1"

    TABLE = {"plain": plain, "method": User.greet}
"""


def test_methods_functions_and_wrapped_functions_keep_their_identity(live):
    live.write("m", CLASSY)
    m = live.load("m")
    user, user_cls, plain, wrapper, table = m.User(), m.User, m.plain, m.decorated, dict(m.TABLE)
    live.write("m", CLASSY.replace(" 1", " 2").replace('kind = "kind 2"', ""))
    assert live.reload("m").count == 1
    assert m.User is user_cls and isinstance(user, m.User)
    assert user.greet() == "user 2 base 2"  # super() still finds the (kept) class
    assert user.prop == "prop 2" and not hasattr(m.User, "kind")  # removed attribute is gone
    assert isinstance(m.User.make(), m.User)
    assert m.plain is plain and table["plain"]() == "plain 2"
    assert table["method"] is m.User.greet and table["method"](user) == "user 2 base 2"
    assert wrapper() == ("wrapped", "decorated 2")  # the old wrapper calls the kept function
    assert m.decorated.__wrapped__ is wrapper.__wrapped__


def test_function_held_by_another_descriptor_finds_the_kept_class(live):
    """Django's `classproperty` (bakerydemo's breads/wagtail_hooks.py): `super()` in its function
    reads the class body's `__class__` cell, which must point at the class that was kept."""
    live.write(
        "descriptors",
        """
        class classproperty:
            def __init__(self, method):
                self.fget = method

            def __get__(self, instance, cls=None):
                return self.fget(cls)
        """,
    )
    source = """
        from .descriptors import classproperty

        class Base:
            columns = ["base"]

        class Listing(Base):
            @classproperty
            def columns(cls):
                return [*super().columns, "listing 1"]
    """
    live.write("m", source)
    m = live.load("m")
    listing = m.Listing
    live.write("m", source.replace("listing 1", "listing 2"))
    live.reload("m")
    assert m.Listing is listing
    assert listing.columns == ["base", "listing 2"]


def test_failed_reload_puts_every_old_object_back(live):
    from hmr_serve.reload import executor

    live.write("m", CLASSY)
    m = live.load("m")
    user, plain = m.User(), m.plain
    live.write("m", CLASSY.replace(" 1", " 2"))
    with pytest.raises(executor.ReloadFailed):
        live.reload("m", finish=lambda: 1 / 0)
    assert m.plain is plain and plain() == "plain 1"
    assert user.greet() == "user 1 base 1" and user.prop == "prop 1" and m.User.kind == "kind 1"
    live.reload("m")
    assert plain() == "plain 2" and user.greet() == "user 2 base 2"


def test_incompatible_shapes_get_the_new_class(live):
    source = """
        import enum

        class Slotted:
            __slots__ = ("a",)

        class Color(enum.Enum):
            RED = 1

        class Annotated:
            x: int
    """
    live.write("m", source)
    m = live.load("m")
    old = m.Slotted, m.Color, m.Annotated
    live.write(
        "m",
        source.replace('("a",)', '("a", "b")').replace("RED = 1", "RED = 2").replace("int", "str"),
    )
    live.reload("m")
    assert m.Slotted is not old[0] and m.Color is not old[1] and m.Annotated is not old[2]


def test_init_subclass_registry_gets_the_new_class_consistently(live):
    source = """
        class Plugin:
            registry = {}

            def __init_subclass__(cls):
                Plugin.registry[cls.__name__] = cls

        class Alpha(Plugin):
            def run(self):
                return "alpha 1"
    """
    live.write("m", source)
    m = live.load("m")
    old_alpha = m.Alpha
    live.write("m", source.replace("alpha 1", "alpha 2"))
    live.reload("m")
    # The class registered itself while being made: the name must be bound to that one.
    assert m.Alpha is not old_alpha
    assert m.Plugin.registry == {"Alpha": m.Alpha}
    assert m.Alpha().run() == "alpha 2"


def test_instrumentation_keeps_line_numbers(live):
    import traceback

    source = """
        import functools

        @functools.lru_cache
        def cached(x):
            return x

        def boom():
            raise ValueError("on line 8")

        class K:
            def method(self):
                raise ValueError("on line 12")
    """
    live.write("m", source)
    m = live.load("m")
    live.write("m", source.replace("return x", "return x + 1"))
    live.reload("m")
    assert m.cached(1) == 2
    assert m.cached.__wrapped__.__code__.co_firstlineno == 3
    for call, line in ((m.boom, 8), (m.K().method, 12)):
        with pytest.raises(ValueError) as info:
            call()
        assert traceback.extract_tb(info.tb)[-1].lineno == line


def test_overloads_and_loop_definitions_are_left_alone():
    import ast

    from hmr_serve.reload import identity

    tree = ast.parse(
        textwrap.dedent(
            """
            from typing import overload
            @overload
            def f(x: int) -> int: ...
            @overload
            def f(x: str) -> str: ...
            def f(x): return x
            for i in range(3):
                def g(): pass
            if True:
                def h(): pass
            else:
                class C: pass
            """
        )
    )
    assert identity.instrument(tree) == 2  # h and C


CONTROLLER = """
    ROUTES = []

    def route(path):
        # Like FastAPI's `router.get`: the function object this decorator sees is registered.
        def register(func):
            ROUTES.append((path, func))
            return func

        return register

    def controller(cls):
        # Like mealie's `@controller` (fastapi-utils' class-based views): the registered
        # endpoints are found among the class's members by identity.
        members = set(vars(cls).values())
        cls.bound = [path for path, func in ROUTES if func in members]
        return cls

    class Base:
        def name(self):
            return "base"

    @controller
    class Items(Base):
        @route("/items")
        def get(self):
            return "get 1"

        @route("/items/super")
        def get_super(self):
            return "super 1 " + super().name()

        @staticmethod
        @route("/static")
        def helper():
            return "helper 1"
"""


def test_decorators_in_a_class_body_see_the_object_the_class_keeps(live):
    """In a fresh process the function a method decorator registered is the class's attribute;
    after an edit it still must be, whether the old function is kept or, for a method whose
    `super()` needs the new class cell, the class takes the new one."""
    live.write("m", CONTROLLER)
    m = live.load("m")
    items, old_get, instance = m.Items, m.Items.get, m.Items()
    assert m.Items.bound == ["/items", "/items/super"]
    live.write("m", CONTROLLER.replace(" 1", " 2"))
    live.reload("m")
    assert m.Items is items and m.Items.bound == ["/items", "/items/super"]
    registered = dict(m.ROUTES)
    assert registered["/items"] is m.Items.get is old_get
    assert registered["/items/super"] is m.Items.__dict__["get_super"]
    assert registered["/static"] is m.Items.__dict__["helper"].__func__
    assert instance.get() == "get 2" and registered["/items"](instance) == "get 2"
    assert instance.get_super() == "super 2 base" == registered["/items/super"](instance)
    assert m.Items.helper() == "helper 2"
    # A second edit reaches the same objects again.
    live.write("m", CONTROLLER.replace(" 1", " 3"))
    live.reload("m")
    assert m.Items.bound == ["/items", "/items/super"] and old_get(instance) == "get 3"
    assert instance.get_super() == "super 3 base"
