"""Hot reload of a Wagtail project made by `wagtail start` (from the PyPI package: no network)
with a snippet viewset in a menu group, a ModelViewSet returned by a `register_admin_viewset`
hook and a hooks module: after every edit of the hooks module the admin must be what a fresh
process serves (the oracle: Django's test Client in a new interpreter), with a steady client
beside it that never sees a failed request. Before the Wagtail integration, the first edit failed
with `ImproperlyConfigured: The Flavour model is already registered as a snippet`."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import Background, ServerPool, edit, server_env, write
from fresh import run_fresh

pytest.importorskip(
    "wagtail", reason="wagtail is not installed (pip install -r requirements-dev.txt)"
)

PASSWORD = "s3cret-pass-123"
EMAIL = "admin@example.com"
# Wagtail renders some sets (CSS classes) in hash order: the same in the server and the oracle.
SAME_HASHES = {"PYTHONHASHSEED": "0"}
CSRF_INPUT_RE = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')

MODELS = """

class Flavour(models.Model):
    name = models.CharField(max_length=50)

    def __str__(self):
        return self.name


class Topping(models.Model):
    name = models.CharField(max_length=50)

    def __str__(self):
        return self.name
"""

HOOKS = """
    from django.utils.html import format_html
    from wagtail import hooks
    from wagtail.admin.menu import MenuItem
    from wagtail.admin.viewsets.model import ModelViewSet
    from wagtail.snippets.models import register_snippet
    from wagtail.snippets.views.snippets import SnippetViewSet, SnippetViewSetGroup

    from .models import Flavour, Topping


    class FlavourViewSet(SnippetViewSet):
        model = Flavour
        icon = "tag"
        list_display = ["name"]


    class KitchenGroup(SnippetViewSetGroup):
        menu_label = "Kitchen v1"
        menu_icon = "folder-open-inverse"
        menu_order = 200
        items = (FlavourViewSet,)


    register_snippet(KitchenGroup)


    class ToppingViewSet(ModelViewSet):
        model = Topping
        form_fields = ["name"]
        icon = "pick"
        add_to_admin_menu = True
        menu_label = "Toppings v1"
        menu_order = 300


    @hooks.register("register_admin_viewset")
    def register_topping_viewset():
        return ToppingViewSet("toppings")


    @hooks.register("register_admin_menu_item")
    def docs_menu_item():
        return MenuItem("Docs v1", "/docs/", icon_name="help", order=10000)


    @hooks.register("insert_global_admin_css")
    def global_admin_css():
        return format_html('<style id="hooks-v1"></style>')
"""

# A fresh process: Django's test Client in a new interpreter, for the files as they are now.
ORACLE = textwrap.dedent(
    """
    import json, os, sys
    sys.path.insert(0, ".")
    os.environ["DJANGO_SETTINGS_MODULE"] = "mysite.settings.dev"
    import django
    django.setup()
    from django.contrib.auth import get_user_model
    from django.test import Client
    client = Client(HTTP_HOST=sys.argv[2])
    client.force_login(get_user_model().objects.get(username="admin"))
    out = {}
    for path in json.loads(sys.argv[1]):
        response = client.get(path)
        out[path] = [response.status_code, response.content.decode()]
    print(json.dumps(out))
    """
)

PATHS = [
    "/admin/",
    "/admin/snippets/home/flavour/",
    "/admin/snippets/home/flavour/add/",
    "/admin/toppings/",
]


def mask(body: str) -> str:
    """Per-response randomness (CSRF tokens) removed."""
    body = CSRF_INPUT_RE.sub('name="csrfmiddlewaretoken" value="-"', body)
    return re.sub(r'"CSRF_TOKEN": "\w+"|csrfToken&quot;: &quot;\w+|data-csrf="\w+"', "-", body)


def first_difference(fresh: str, served: str, context: int = 300) -> str:
    at = next(
        (i for i, (a, b) in enumerate(zip(fresh, served, strict=False)) if a != b),
        min(len(fresh), len(served)),
    )
    start = max(0, at - context)
    return (
        f"fresh:  ...{fresh[start : at + context]}...\nserved: ...{served[start : at + context]}..."
    )


def oracle(root: Path, paths: list[str], host: str) -> dict[str, list]:
    answers = run_fresh(root, ORACLE, json.dumps(paths), host, env=SAME_HASHES, timeout=120)
    return {path: [status, mask(body)] for path, (status, body) in answers.items()}


class Site:
    def __init__(self, root: Path, server, background: Background) -> None:
        self.root = root
        self.server = server
        self.background = background
        self.client = server.client()
        self.host = server.url.split("://", 1)[1]
        page = self.client.get("/admin/login/")
        token = CSRF_INPUT_RE.search(page.text).group(1)
        response = self.client.post(
            "/admin/login/",
            data={"username": "admin", "password": PASSWORD, "csrfmiddlewaretoken": token},
        )
        assert response.status_code == 302, response.text[:2000]

    def get(self, paths: list[str]) -> dict[str, list]:
        got = {}
        for path in paths:
            response = self.client.get(path)
            got[path] = [response.status_code, mask(response.text)]
        return got

    def settle(self, paths: list[str] = PATHS, timeout: float = 30.0) -> dict[str, list]:
        """Polls until the server answers what a fresh process answers; returns that answer."""
        expected = oracle(self.root, paths, self.host)
        deadline = time.monotonic() + timeout
        got = None
        while time.monotonic() < deadline:
            got = self.get(paths)
            if got == expected:
                return got
            time.sleep(0.05)
        path = next(p for p in paths if got[p] != expected[p])
        raise AssertionError(
            f"{path}: server {got[path][0]}, fresh process {expected[path][0]}\n"
            f"{first_difference(expected[path][1], got[path][1])}\n{self.server.output}"
        )

    def reloads(self) -> int:
        return self.server.count_lines(r"reloaded \d+ modules?")


def _run(root: Path, *args: str) -> None:
    proc = subprocess.run(
        [sys.executable, *args],
        cwd=root,
        env=server_env({"DJANGO_SUPERUSER_PASSWORD": PASSWORD}),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("wagtail") / "site"
    root.mkdir()
    _run(root, "-c", "from wagtail.bin.wagtail import main; main()", "start", "mysite", ".")
    with (root / "home/models.py").open("a") as models:
        models.write(MODELS)
    write(root, "home/wagtail_hooks.py", HOOKS)
    _run(root, "manage.py", "makemigrations", "home")
    _run(root, "manage.py", "migrate", "--noinput")
    _run(
        root,
        "manage.py",
        "createsuperuser",
        "--noinput",
        "--username",
        "admin",
        "--email",
        "admin@example.com",
    )
    _run(
        root,
        "manage.py",
        "shell",
        "-c",
        "from home.models import Flavour, Topping; Flavour.objects.create(name='vanilla'); "
        "Topping.objects.create(name='sprinkles')",
    )
    pool = ServerPool()
    background = None
    try:
        server = pool(
            "mysite.wsgi:application", "--port", "0", "--no-access-log", cwd=root, env=SAME_HASHES
        )
        background = Background(server.url, "/admin/login/", interval=0.01)
        site = Site(root, server, background)
        yield site
        site.client.close()
    finally:
        if background is not None:
            background.stop()
        pool.close()
    assert background.failures == [], background.failures[:5]


def test_initial_admin_matches_a_fresh_process(site):
    got = site.settle()
    assert "Kitchen v1" in got["/admin/"][1] and "Toppings v1" in got["/admin/"][1]
    assert got["/admin/toppings/"][0] == 200
    assert "sprinkles" in got["/admin/toppings/"][1]


def test_menu_label_of_a_snippet_group(site):
    """bakerydemo's `menu_label` edit in breads/wagtail_hooks.py, which failed with
    `ImproperlyConfigured: ... already registered as a snippet`."""
    before = site.reloads()
    edit(site.root, "home/wagtail_hooks.py", '"Kitchen v1"', '"Kitchen v2"')
    got = site.settle()
    assert "Kitchen v2" in got["/admin/"][1] and "Kitchen v1" not in got["/admin/"][1]
    assert site.reloads() > before
    assert "already registered" not in site.server.output


def test_snippet_listing_columns(site):
    """The listing's views are built from the viewset: the URLconf must hold the new ones."""
    listing = "/admin/snippets/home/flavour/"
    before = site.settle([listing])
    edit(site.root, "home/wagtail_hooks.py", 'list_display = ["name"]', 'list_display = ["id"]')
    got = site.settle([listing, "/admin/"])
    assert got[listing] != before[listing]


def test_viewset_of_a_register_admin_viewset_hook(site):
    edit(site.root, "home/wagtail_hooks.py", '"Toppings v1"', '"Toppings v2"')
    got = site.settle()
    assert "Toppings v2" in got["/admin/"][1]
    # Only the hook's body: Wagtail ran it once and keeps the viewset it returned, so patching
    # it in place would serve the old viewset; the module re-runs instead.
    patched = site.server.count_lines("patched in place")
    edit(site.root, "home/wagtail_hooks.py", '("toppings")', '("extras")')
    got = site.settle([*PATHS, "/admin/extras/"])
    assert got["/admin/toppings/"][0] == 404 and got["/admin/extras/"][0] == 200
    assert site.server.count_lines("patched in place") == patched


def test_hooks_added_removed_and_edited(site):
    edit(site.root, "home/wagtail_hooks.py", "hooks-v1", "hooks-v2")  # a body: patched in place
    got = site.settle(["/admin/"])
    assert 'id="hooks-v2"' in got["/admin/"][1]
    text = (site.root / "home/wagtail_hooks.py").read_text()
    text = text.replace('@hooks.register("register_admin_menu_item")\n', "")
    text += textwrap.dedent(
        """

        @hooks.register("insert_global_admin_css")
        def more_admin_css():
            return format_html('<style id="more-css"></style>')
        """
    )
    (site.root / "home/wagtail_hooks.py").write_text(text)
    got = site.settle()
    assert "Docs v1" not in got["/admin/"][1]
    assert 'id="more-css"' in got["/admin/"][1] and 'id="hooks-v2"' in got["/admin/"][1]


def test_failed_reload_puts_every_registration_back(site):
    served = site.settle()
    failures = site.server.count_lines(r"reload failed")
    edit(site.root, "home/wagtail_hooks.py", "menu_order = 200", "menu_order = 50")
    with (site.root / "home/wagtail_hooks.py").open("a") as hooks_py:
        hooks_py.write('\nraise RuntimeError("broken hooks module")\n')
    site.server.wait_for_count(r"reload failed", failures + 1, timeout=20)
    assert site.get(PATHS) == served  # the previous registrations, neither doubled nor lost
    edit(site.root, "home/wagtail_hooks.py", '\nraise RuntimeError("broken hooks module")\n', "")
    site.settle()
    assert "already registered" not in site.server.output
