"""A reload re-runs modules in a fresh process's order: in the order they started importing,
each import statement running what it reaches that is due to re-run right there. Each case below
is one a finished-import order gets wrong; after every edit the server must answer what a fresh
process answers, with no failed request."""

from __future__ import annotations

from conftest import Background, edit, write
from fresh import app_module, fresh, served, settle


def serve(tmp_path, start_server, files: dict[str, str]):
    for rel, text in files.items():
        write(tmp_path, rel, text)
    server = start_server("pkg.main:app", "--port", "0", "--no-access-log", cwd=tmp_path)
    return server, Background(server.url)


def finish(server, background) -> None:
    background.stop()
    assert background.failures == [], background.failures
    assert server.count_lines("reload failed") == 0, server.output


CYCLE = {
    "pkg/__init__.py": "",
    # a starts first; b, imported half-way through a, sees only what a defined until then.
    "pkg/a.py": """
        A_BEFORE = "a-v1"

        from pkg import b  # noqa: E402

        A_AFTER = "after"
        SEEN_BY_B = b.SEEN
    """,
    "pkg/b.py": """
        import pkg.a as a

        SEEN = sorted(k for k in vars(a) if k.startswith("A_"))
        B = "b-v1"
    """,
    "pkg/main.py": app_module(
        """
        from pkg import a, b

        def body():
            return {"seen": a.SEEN_BY_B, "a": a.A_BEFORE, "b": b.B}
    """
    ),
}


def test_import_cycle_re_runs_in_start_order(tmp_path, start_server):
    server, background = serve(tmp_path, start_server, CYCLE)
    assert settle(tmp_path, server)["seen"] == ["A_BEFORE"]
    edit(tmp_path, "pkg/b.py", "b-v1", "b-v2")
    assert settle(tmp_path, server) == {"seen": ["A_BEFORE"], "a": "a-v1", "b": "b-v2"}
    edit(tmp_path, "pkg/a.py", "a-v1", "a-v2")
    assert settle(tmp_path, server)["a"] == "a-v2"
    finish(server, background)


BLUEPRINT_PACKAGE = {
    "pkg/__init__.py": "",
    # The package makes a registry, then imports the module that fills it, which imports the
    # registry back from the half-initialised package (Flask's blueprint-package layout).
    "pkg/api/__init__.py": """
        ROUTES = {}

        def route(path):
            def register(function):
                ROUTES[path] = function
                return function
            return register

        from pkg.api import handlers  # noqa: E402,F401
    """,
    "pkg/api/handlers.py": """
        from pkg.api import route

        @route("/x")
        def x():
            return "x-v1"
    """,
    "pkg/main.py": app_module(
        """
        from pkg import api

        def body():
            return {path: view() for path, view in sorted(api.ROUTES.items())}
    """
    ),
}


def test_module_imported_by_its_package_fills_the_new_registry(tmp_path, start_server):
    server, background = serve(tmp_path, start_server, BLUEPRINT_PACKAGE)
    assert settle(tmp_path, server) == {"/x": "x-v1"}
    edit(tmp_path, "pkg/api/handlers.py", "x-v1", "x-v2")
    assert settle(tmp_path, server) == {"/x": "x-v2"}
    edit(
        tmp_path,
        "pkg/api/handlers.py",
        '@route("/x")',
        '@route("/y")\ndef y():\n    return "y"\n\n@route("/x")',
    )
    assert settle(tmp_path, server) == {"/x": "x-v2", "/y": "y"}
    finish(server, background)


REEXPORTS = {
    "pkg/__init__.py": """
        from pkg.helpers import HELPER
        from pkg.models import DERIVED, Model

        __all__ = ["DERIVED", "HELPER", "Model"]
    """,
    "pkg/helpers.py": 'HELPER = "h-v1"\n',
    # Imports a name its package re-exports, while the package is half-way through running.
    "pkg/models.py": """
        from pkg import HELPER

        DERIVED = HELPER + "-derived"

        class Model:
            kind = "model-v1"
    """,
    "pkg/main.py": app_module(
        """
        from pkg import DERIVED, HELPER, Model

        def body():
            return {"helper": HELPER, "derived": DERIVED, "kind": Model.kind}
    """
    ),
}


def test_package_re_exports(tmp_path, start_server):
    server, background = serve(tmp_path, start_server, REEXPORTS)
    assert settle(tmp_path, server)["derived"] == "h-v1-derived"
    write(tmp_path, "pkg/helpers.py", 'HELPER = "h-v2"\n')
    assert settle(tmp_path, server) == {
        "helper": "h-v2",
        "derived": "h-v2-derived",
        "kind": "model-v1",
    }
    edit(tmp_path, "pkg/models.py", "model-v1", "model-v2")
    assert settle(tmp_path, server)["kind"] == "model-v2"
    finish(server, background)


ADDED_DEPENDENCY = {
    "pkg/__init__.py": "",
    "pkg/service.py": """
        NAME = "service"
    """,
    # First imported after service, by main.
    "pkg/late.py": 'LATE = "late-v1"\n',
    "pkg/main.py": app_module(
        """
        from pkg import service
        from pkg import late

        def body():
            return {"service": service.NAME, "late": late.LATE}
    """
    ),
}


def test_dependency_added_by_an_edit_runs_before_its_importer(tmp_path, start_server):
    server, background = serve(tmp_path, start_server, ADDED_DEPENDENCY)
    settle(tmp_path, server)
    # One save changes both: service now imports late (first imported after it) at top level.
    write(tmp_path, "pkg/late.py", 'LATE = "late-v2"\n')
    write(tmp_path, "pkg/service.py", 'from pkg.late import LATE\n\nNAME = "service+" + LATE\n')
    assert settle(tmp_path, server) == {"service": "service+late-v2", "late": "late-v2"}
    write(tmp_path, "pkg/late.py", 'LATE = "late-v3"\n')
    assert settle(tmp_path, server) == {"service": "service+late-v3", "late": "late-v3"}
    # A dependency that never existed before the edit.
    write(tmp_path, "pkg/brand_new.py", 'NEW = "new"\n')
    write(tmp_path, "pkg/service.py", 'from pkg.brand_new import NEW\n\nNAME = "service+" + NEW\n')
    assert settle(tmp_path, server)["service"] == "service+new"
    finish(server, background)


SUBMODULE_ATTRIBUTES = {
    "pkg/__init__.py": "",
    "pkg/sub/__init__.py": """
        import pkg.sub.deep

        # The import system set `deep` on this half-initialised package: a global here.
        DEEP = deep.VALUE  # noqa: F821
    """,
    "pkg/sub/deep.py": 'VALUE = "deep-v1"\n',
    "pkg/main.py": app_module(
        """
        import pkg.sub

        def body():
            return {"deep": pkg.sub.DEEP}
    """
    ),
}


def test_package_reading_its_submodule_attribute(tmp_path, start_server):
    server, background = serve(tmp_path, start_server, SUBMODULE_ATTRIBUTES)
    settle(tmp_path, server)
    write(tmp_path, "pkg/sub/deep.py", 'VALUE = "deep-v2"\n')
    assert settle(tmp_path, server) == {"deep": "deep-v2"}
    # The package alone re-runs: `pkg.sub.deep` must be there although deep does not re-run.
    edit(tmp_path, "pkg/sub/__init__.py", "DEEP = ", "DEEP = 'x' + ")
    assert settle(tmp_path, server) == {"deep": "xdeep-v2"}
    assert served(server) == fresh(tmp_path)
    finish(server, background)
