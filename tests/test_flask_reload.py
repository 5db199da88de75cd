"""Hot reload of a Flask app built by a factory (`--factory shop:create_app`) from blueprints
and Jinja templates: after every edit the server must answer what a fresh process answers (the
oracle: the app's test client in a new interpreter), while a steady client sees no failure."""

from __future__ import annotations

import json
import textwrap
import time
from pathlib import Path

import pytest
from conftest import (
    Server,
    edit,
    poll_until,
    reloads,
    served_tree,
    write,
)
from fresh import run_fresh

FILES = {
    "shop/__init__.py": """
        from flask import Flask

        def create_app():
            app = Flask(__name__)
            from shop import admin_views  # noqa: F401 - puts its routes on admin_bp
            from shop.api import api_bp
            from shop.bp_admin import admin_bp
            from shop.main import bp as main_bp

            app.register_blueprint(main_bp)
            app.register_blueprint(api_bp, url_prefix="/api")
            app.register_blueprint(admin_bp, url_prefix="/admin")
            return app
    """,
    "shop/main.py": """
        from flask import Blueprint, render_template

        bp = Blueprint("main", __name__)

        TITLE = "title-v1"

        @bp.route("/")
        def index():
            return render_template("index.html", title=TITLE)
    """,
    "shop/api.py": """
        from flask import Blueprint

        api_bp = Blueprint("api", __name__)
        items_bp = Blueprint("items", __name__)

        @items_bp.get("/")
        def items():
            return {"items": ["a"]}

        api_bp.register_blueprint(items_bp, url_prefix="/items")

        @api_bp.get("/version")
        def version():
            return {"version": 1}
    """,
    # A blueprint in a module no edit touches, decorated by a module that edits re-run.
    "shop/bp_admin.py": """
        from flask import Blueprint

        admin_bp = Blueprint("admin", __name__)
    """,
    "shop/admin_views.py": """
        from flask import g

        from shop.bp_admin import admin_bp

        @admin_bp.before_request
        def stamp():
            g.stamp = "stamp-v1"

        @admin_bp.get("/")
        def dashboard():
            return {"admin": "v1", "stamp": g.stamp}
    """,
    "shop/templates/index.html": "<h1>{{ title }}</h1><p>template-v1</p>\n",
    "shop/templates/base.html": "<footer>base-v1</footer>\n",
}

ORACLE = textwrap.dedent(
    """
    import json, sys
    sys.path.insert(0, ".")
    from shop import create_app
    client = create_app().test_client()
    out = {}
    for path in json.loads(sys.argv[1]):
        response = client.get(path)
        out[path] = [response.status_code, response.get_data(as_text=True)]
    print(json.dumps(out))
    """
)

PATHS = ["/", "/api/items/", "/api/version", "/admin/", "/admin/new"]


def oracle(root: Path, paths: list[str]) -> dict[str, list]:
    return run_fresh(root, ORACLE, json.dumps(paths))


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    root = tmp_path_factory.mktemp("flask-shop")
    with served_tree(root, FILES, "shop:create_app", "--factory", "--no-access-log") as served:
        yield root, *served


def settle(root: Path, server: Server, paths: list[str] = PATHS, timeout: float = 15.0) -> dict:
    with server.client() as client:

        def fetch() -> dict:
            return {p: [(r := client.get(p)).status_code, r.text] for p in paths}

        return poll_until(fetch, oracle(root, paths), server, timeout, 0.03)


def test_initial_response_matches_a_fresh_process(session):
    root, server, _ = session
    got = settle(root, server)
    assert got["/"] == [200, "<h1>title-v1</h1><p>template-v1</p>"]
    assert got["/admin/new"][0] == 404


def test_blueprint_module_edit(session):
    root, server, _ = session
    edit(root, "shop/api.py", '"version": 1', '"version": 2')
    edit(root, "shop/api.py", '["a"]', '["a", "b"]')
    got = settle(root, server)
    assert json.loads(got["/api/version"][1]) == {"version": 2}


def test_module_decorating_a_blueprint_it_imports(session):
    # admin_bp lives in a module that does not re-run and is already registered: Flask would
    # refuse the new decorators ("setup method") and keep the old view beside the new one.
    root, server, _ = session
    edit(root, "shop/admin_views.py", '"admin": "v1"', '"admin": "v2"')
    edit(root, "shop/admin_views.py", '"stamp-v1"', '"stamp-v2"')
    edit(
        root,
        "shop/admin_views.py",
        '@admin_bp.get("/")',
        '@admin_bp.get("/new")\ndef new():\n    return {"new": g.stamp}\n\n@admin_bp.get("/")',
    )
    got = settle(root, server)
    assert json.loads(got["/admin/"][1]) == {"admin": "v2", "stamp": "stamp-v2"}
    assert json.loads(got["/admin/new"][1]) == {"new": "stamp-v2"}
    # A route removed from the source is gone, as in a fresh process.
    edit(root, "shop/admin_views.py", '@admin_bp.get("/new")', "")
    edit(root, "shop/admin_views.py", "def new():", "def new_gone():")
    got = settle(root, server)
    assert got["/admin/new"][0] == 404


def test_blueprint_module_with_the_template_view(session):
    root, server, _ = session
    edit(root, "shop/main.py", "title-v1", "title-v2")
    got = settle(root, server)
    assert got["/"] == [200, "<h1>title-v2</h1><p>template-v1</p>"]


def test_template_edit_without_module_reload(session):
    root, server, _ = session
    settle(root, server, ["/"])
    before = reloads(server)
    write(root, "shop/templates/index.html", '{% include "base.html" %}<h1>{{ title }}</h1>\n')
    got = settle(root, server, ["/"])
    assert "base-v1" in got["/"][1]
    write(root, "shop/templates/base.html", "<footer>base-v2</footer>\n")
    got = settle(root, server, ["/"])
    assert "base-v2" in got["/"][1]
    assert reloads(server) == before, server.output
    server.wait_for_line("shop/templates/base.html changed: template caches cleared")


def test_factory_edit(session):
    root, server, _ = session
    edit(root, "shop/__init__.py", 'url_prefix="/api"', 'url_prefix="/api/v2"')
    got = settle(root, server, [*PATHS, "/api/v2/version"])
    assert got["/api/v2/version"][0] == 200 and got["/api/version"][0] == 404
    edit(root, "shop/__init__.py", 'url_prefix="/api/v2"', 'url_prefix="/api"')
    settle(root, server)


def test_no_request_failed_and_no_reload_failed(session):
    _, server, background = session
    time.sleep(0.2)
    assert background.sent > 50
    assert background.failures == []
    assert server.count_lines("reload failed") == 0, server.output
    assert "setup method" not in server.output, server.output
    assert "already registered" not in server.output


MEGA_TUTORIAL = {
    "blog/__init__.py": """
        from flask import Flask

        def create_app():
            app = Flask(__name__)
            from blog.main import bp

            app.register_blueprint(bp)
            return app
    """,
    # The package makes the blueprint, then imports the routes module, which imports the
    # blueprint back from the half-initialised package (the Flask Mega-Tutorial's layout).
    "blog/main/__init__.py": """
        from flask import Blueprint

        bp = Blueprint("main", __name__)

        from blog.main import routes  # noqa: E402,F401
    """,
    "blog/main/routes.py": """
        from blog.main import bp

        @bp.route("/")
        def index():
            return "routes-v1"
    """,
}


def test_routes_module_imported_by_its_blueprint_package(tmp_path, start_server):
    for rel, text in MEGA_TUTORIAL.items():
        write(tmp_path, rel, text)
    server = start_server("blog:create_app", "--factory", "--port", "0", cwd=tmp_path)
    with server.client() as client:
        assert client.get("/").text == "routes-v1"
        edit(tmp_path, "blog/main/routes.py", "routes-v1", "routes-v2")
        deadline = time.monotonic() + 10
        while client.get("/").text != "routes-v2":
            assert time.monotonic() < deadline, server.output
            time.sleep(0.03)
    assert server.count_lines("reload failed") == 0, server.output


GLOBAL_APP = {
    "web/__init__.py": "",
    "web/app.py": """
        from flask import Flask

        app = Flask(__name__)

        @app.get("/health")
        def health():
            return "ok"
    """,
    "web/views.py": """
        from web.app import app

        @app.get("/")
        def index():
            return "index-v1"

        @app.get("/old")
        def old():
            return "old"

        @app.errorhandler(404)
        def missing(error):
            return "missing-v1", 404
    """,
    "web/main.py": """
        from web import views  # noqa: F401 - routes onto the app
        from web.app import app
    """,
}


def test_module_decorating_an_app_that_served_already(tmp_path, start_server):
    # The app object outlives the reload (web.app does not re-run), has served requests, and
    # the re-running views module decorates it again.
    for rel, text in GLOBAL_APP.items():
        write(tmp_path, rel, text)
    server = start_server("web.main:app", "--port", "0", cwd=tmp_path)
    paths = ["/", "/old", "/health", "/nothing"]
    oracle_script = ORACLE.replace("from shop import create_app", "from web.main import app")
    oracle_script = oracle_script.replace("create_app().test_client()", "app.test_client()")

    def served() -> dict:
        with server.client() as client:
            return {p: [(r := client.get(p)).status_code, r.text] for p in paths}

    def settled() -> dict:
        want = run_fresh(tmp_path, oracle_script, json.dumps(paths))
        return poll_until(served, want, server, 10, 0.03)

    assert settled()["/old"] == [200, "old"]
    views = (tmp_path / "web" / "views.py").read_text()
    views = views.replace("index-v1", "index-v2").replace("missing-v1", "missing-v2")
    views = views.replace('@app.get("/old")\ndef old():\n    return "old"\n', "")
    (tmp_path / "web" / "views.py").write_text(views)
    got = settled()
    assert got["/"] == [200, "index-v2"]
    assert got["/old"] == [404, "missing-v2"]
    assert got["/health"] == [200, "ok"]
    assert server.count_lines("reload failed") == 0, server.output
