"""Hot reload of a Django project (examples/django plus models, admin, signals, middleware and
template tags), under WSGI and ASGI: after every edit the server must answer what a fresh
process answers (the oracle: Django's test Client in a new interpreter), with a steady client
running beside it that never sees a failed request."""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import EXAMPLES_DIR, Background, Server, ServerPool, edit, server_env, write
from fresh import run_fresh

PASSWORD = "s3cret-pass-123"
CSRF_INPUT_RE = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')

FILES = {
    "polls/models.py": """
        from django.db import models

        class Note(models.Model):
            text = models.CharField(max_length=100)

            def __str__(self):
                return self.text

        class Tag(models.Model):
            name = models.CharField(max_length=30)
    """,
    "polls/admin.py": """
        from django.contrib import admin
        from django.contrib.auth.admin import GroupAdmin
        from django.contrib.auth.models import Group

        from .models import Note, Tag

        # Replaces the registration django.contrib.auth made before this module ran.
        admin.site.unregister(Group)

        @admin.register(Group)
        class ProjectGroupAdmin(GroupAdmin):
            list_display = ("name",)

        @admin.register(Note)
        class NoteAdmin(admin.ModelAdmin):
            list_display = ("text",)

        admin.site.register(Tag)
    """,
    "polls/apps.py": """
        from django.apps import AppConfig

        class PollsConfig(AppConfig):
            default_auto_field = "django.db.models.BigAutoField"
            name = "polls"

            def ready(self):
                from . import receivers  # noqa: F401
    """,
    "polls/state.py": """
        # What the request_started receiver saw; a module no edit touches.
        STARTED = []
    """,
    "polls/signals.py": """
        from django.dispatch import Signal

        pinged = Signal()
    """,
    "polls/receivers.py": """
        from django.core.signals import request_started
        from django.dispatch import receiver

        from polls import state
        from polls.signals import pinged

        @receiver(pinged, dispatch_uid="polls-pinged")
        def on_ping(sender, **kwargs):
            return "ping-v1"

        @receiver(request_started)
        def on_started(sender, environ=None, scope=None, **kwargs):
            path = (environ or {}).get("PATH_INFO") or (scope or {}).get("path")
            if path == "/polls/ping/":
                state.STARTED.append("started-v1")
    """,
    "polls/middleware.py": """
        class StampMiddleware:
            def __init__(self, get_response):
                self.get_response = get_response

            def __call__(self, request):
                response = self.get_response(request)
                response["X-Stamp"] = "stamp-v1"
                return response
    """,
    "polls/templatetags/__init__.py": "",
    "polls/templatetags/poll_extras.py": """
        from django import template

        register = template.Library()

        @register.filter
        def shout(value):
            return str(value).upper() + "!"
    """,
    "polls/views.py": """
        from django.http import HttpResponse, JsonResponse
        from django.shortcuts import render
        from django.utils.translation import gettext

        from polls import state
        from polls.signals import pinged

        QUESTION = "Which Python web framework do you use?"
        CHOICES = ["Django", "Flask"]

        def index(request):
            return render(request, "polls/index.html", {"question": QUESTION, "choices": CHOICES})

        def vote(request):
            return HttpResponse("voted")

        def ping(request):
            started = list(state.STARTED)
            state.STARTED.clear()
            replies = [reply for _, reply in pinged.send(sender=None)]
            return JsonResponse(
                {"started": started, "replies": replies, "greeting": gettext("greeting")}
            )
    """,
    "polls/urls.py": """
        from django.urls import path

        from . import views

        app_name = "polls"
        urlpatterns = [
            path("", views.index, name="index"),
            path("vote/", views.vote, name="vote"),
            path("ping/", views.ping, name="ping"),
        ]
    """,
    "polls/templates/polls/index.html": """
        {% load poll_extras %}<html><body>
        <h1>{{ question }}</h1>
        <p id="shout">{{ question|shout }}</p>
        <form action="{% url 'polls:vote' %}" method="post">{% csrf_token %}
        {% for choice in choices %}<label>{{ choice }}</label>{% endfor %}
        </form>{% include "polls/_footer.html" %}</body></html>
    """,
    "polls/templates/polls/_footer.html": """
        <footer>footer-v1</footer>
    """,
}

# A fresh process: Django's test Client in a new interpreter, for the files as they are now.
ORACLE = textwrap.dedent(
    """
    import json, os, sys
    sys.path.insert(0, ".")
    os.environ["DJANGO_SETTINGS_MODULE"] = "mysite.settings"
    import django
    django.setup()
    from django.contrib.auth import get_user_model
    from django.test import Client
    client = Client(HTTP_HOST=sys.argv[2])
    client.force_login(get_user_model().objects.get(username="admin"))
    out = {}
    for path in json.loads(sys.argv[1]):
        response = client.get(path)
        out[path] = [response.status_code, response.get("X-Stamp"), response.content.decode()]
    print(json.dumps(out))
    """
)

PATHS = [
    "/polls/",
    "/polls/ping/",
    "/polls/extra/",
    "/admin/polls/note/",
    "/admin/polls/",
    "/admin/auth/group/",
]


def write_mo(path: Path, messages: dict[str, str]) -> None:
    """A GNU gettext catalog (what msgfmt makes), so the test needs no gettext tools."""
    catalog = {"": "Content-Type: text/plain; charset=UTF-8\n", **messages}
    keys = sorted(catalog)
    ids = b"".join(k.encode() + b"\0" for k in keys)
    strs = b"".join(catalog[k].encode() + b"\0" for k in keys)
    header = 7 * 4
    ids_start = header + 16 * len(keys)
    strs_start = ids_start + len(ids)
    table_ids, table_strs, offset_id, offset_str = [], [], 0, 0
    for k in keys:
        table_ids += [len(k.encode()), ids_start + offset_id]
        table_strs += [len(catalog[k].encode()), strs_start + offset_str]
        offset_id += len(k.encode()) + 1
        offset_str += len(catalog[k].encode()) + 1
    out = struct.pack("Iiiiiii", 0x950412DE, 0, len(keys), header, header + 8 * len(keys), 0, 0)
    out += struct.pack(f"{len(table_ids)}i", *table_ids)
    out += struct.pack(f"{len(table_strs)}i", *table_strs)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(out + ids + strs)


def mask(body: str) -> str:
    """Per-response randomness (CSRF tokens) removed."""
    body = CSRF_INPUT_RE.sub('name="csrfmiddlewaretoken" value="-"', body)
    return re.sub(r'csrfToken&quot;: &quot;\w+|data-csrf="\w+"', "-", body)


def oracle(root: Path, paths: list[str], host: str) -> dict[str, list]:
    answers = run_fresh(root, ORACLE, json.dumps(paths), host, timeout=120)
    return {path: [s, stamp, mask(body)] for path, (s, stamp, body) in answers.items()}


class Site:
    def __init__(self, root: Path, server: Server, background: Background) -> None:
        self.root = root
        self.server = server
        self.background = background
        self.client = server.client()
        self.host = server.url.split("://", 1)[1]  # pages show it (debug 404s, absolute URLs)
        self.log_in()

    def log_in(self) -> None:
        page = self.client.get("/admin/login/", params={"next": "/admin/"})
        token = CSRF_INPUT_RE.search(page.text).group(1)
        response = self.client.post(
            "/admin/login/?next=/admin/",
            data={"username": "admin", "password": PASSWORD, "csrfmiddlewaretoken": token},
        )
        assert response.status_code == 302, response.text[:2000]

    def get(self, paths: list[str]) -> dict[str, list]:
        got = {}
        for path in paths:
            response = self.client.get(path)
            got[path] = [response.status_code, response.headers.get("X-Stamp"), mask(response.text)]
        return got

    def settle(self, paths: list[str] = PATHS, timeout: float = 20.0) -> dict[str, list]:
        """Polls until the server answers what a fresh process answers; returns that answer."""
        expected = oracle(self.root, paths, self.host)
        deadline = time.monotonic() + timeout
        got = None
        while time.monotonic() < deadline:
            got = self.get(paths)
            if got == expected:
                return got
            time.sleep(0.05)
        diff = {p: (got[p], expected[p]) for p in paths if got[p] != expected[p]}
        raise AssertionError(f"server vs fresh process: {diff}\n{self.server.output}")

    def reloads(self) -> int:
        return self.server.count_lines(r"reloaded \d+ modules?")


def _manage(root: Path, *args: str) -> None:
    proc = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=root,
        env=server_env({"DJANGO_SUPERUSER_PASSWORD": PASSWORD}),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.fixture(scope="module", params=["wsgi", "asgi"])
def site(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(f"django-{request.param}") / "site"
    shutil.copytree(
        EXAMPLES_DIR / "django",
        root,
        ignore=shutil.ignore_patterns("__pycache__", "db.sqlite3"),
    )
    for rel, text in FILES.items():
        write(root, rel, text)
    edit(
        root,
        "mysite/settings.py",
        '"django.middleware.clickjacking.XFrameOptionsMiddleware",',
        '"django.middleware.clickjacking.XFrameOptionsMiddleware",\n'
        '    "polls.middleware.StampMiddleware",',
    )
    edit(
        root,
        "mysite/settings.py",
        "USE_I18N = True",
        'USE_I18N = True\nLOCALE_PATHS = [BASE_DIR / "locale"]',
    )
    write_mo(root / "locale/en/LC_MESSAGES/django.mo", {"greeting": "hello-v1"})
    _manage(root, "makemigrations", "polls")
    _manage(root, "migrate", "--noinput")
    _manage(root, "shell", "-c", "from polls.models import Note; Note.objects.create(text='first')")
    _manage(root, "createsuperuser", "--noinput", "--username", "admin", "--email", "a@b.example")
    pool = ServerPool()
    background = None
    try:  # a failing log-in must not leave the server running
        server = pool(
            f"mysite.{request.param}:application", "--port", "0", "--no-access-log", cwd=root
        )
        background = Background(server.url, "/polls/", interval=0.01)
        site = Site(root, server, background)
        yield site
        site.client.close()
    finally:
        if background is not None:
            background.stop()
        pool.close()


def test_initial_response_matches_a_fresh_process(site):
    got = site.settle()
    assert got["/polls/"][1] == "stamp-v1"
    assert got["/polls/extra/"][0] == 404
    assert json.loads(got["/polls/ping/"][2]) == {
        "started": ["started-v1"],
        "replies": ["ping-v1"],
        "greeting": "hello-v1",
    }


def test_view_edit(site):
    edit(site.root, "polls/views.py", '"Flask"]', '"Flask", "FastAPI"]')
    edit(site.root, "polls/views.py", "Which Python", "Which Python (edited)")
    got = site.settle(["/polls/"])
    assert "Which Python (edited)" in got["/polls/"][2] and "FastAPI" in got["/polls/"][2]


def test_urlconf_edit_adds_a_route(site):
    edit(
        site.root,
        "polls/urls.py",
        'path("ping/", views.ping, name="ping"),',
        'path("ping/", views.ping, name="ping"),\n    path("extra/", views.vote, name="extra"),',
    )
    got = site.settle(["/polls/extra/", "/polls/"])
    assert got["/polls/extra/"][:2] == [200, "stamp-v1"]
    assert got["/polls/extra/"][2] == "voted"


def test_root_urlconf_edit(site):
    edit(site.root, "mysite/urls.py", 'path("", RedirectView', 'path("home/", RedirectView')
    expected = oracle(site.root, ["/home/"], site.host)
    assert expected["/home/"][0] == 302
    site.settle(["/home/", "/polls/extra/"])


def test_template_edit_without_module_reload(site):
    site.settle(["/polls/"])
    before = site.reloads()
    edit(site.root, "polls/templates/polls/index.html", "<h1>", '<h1 class="edited">')
    got = site.settle(["/polls/"])
    assert '<h1 class="edited">' in got["/polls/"][2]
    # Only the changed template is compiled again: the page that includes it must show it.
    edit(site.root, "polls/templates/polls/_footer.html", "footer-v1", "footer-v2")
    got = site.settle(["/polls/"])
    assert "footer-v2" in got["/polls/"][2] and '<h1 class="edited">' in got["/polls/"][2]
    assert site.reloads() == before, site.server.output
    site.server.wait_for_line(
        "polls/templates/polls/_footer.html changed: template caches cleared, 0 pages refreshed"
    )


def test_template_tag_edit(site):
    edit(site.root, "polls/templatetags/poll_extras.py", '+ "!"', '+ "?!"')
    got = site.settle(["/polls/"])
    assert "?!</p>" in got["/polls/"][2]


def test_middleware_edit(site):
    edit(site.root, "polls/middleware.py", "stamp-v1", "stamp-v2")
    got = site.settle(["/polls/", "/admin/polls/"])
    assert got["/polls/"][1] == "stamp-v2"


def test_admin_edit_reregisters_without_already_registered(site):
    edit(site.root, "polls/admin.py", 'list_display = ("text",)', 'list_display = ("id", "text")')
    got = site.settle(["/admin/polls/note/", "/admin/polls/", "/admin/auth/group/"])
    assert got["/admin/polls/note/"][0] == 200 and got["/admin/auth/group/"][0] == 200
    assert "column-id" in got["/admin/polls/note/"][2]
    # Tag was registered with the default ModelAdmin: dropping that line drops it, as fresh.
    edit(site.root, "polls/admin.py", "admin.site.register(Tag)", "")
    got = site.settle(["/admin/polls/", "/admin/polls/tag/", "/admin/polls/note/"])
    assert got["/admin/polls/tag/"][0] == 404
    with (site.root / "polls/admin.py").open("a") as admin_py:
        admin_py.write("\nadmin.site.register(Tag)\n")
    got = site.settle(["/admin/polls/", "/admin/polls/tag/"])
    assert got["/admin/polls/tag/"][0] == 200
    with site.server.client() as anonymous:
        assert anonymous.get("/admin/login/").status_code == 200
    assert "AlreadyRegistered" not in site.server.output
    assert "already registered" not in site.server.output


def test_signal_receiver_edit_fires_once_with_new_code(site):
    edit(site.root, "polls/receivers.py", "ping-v1", "ping-v2")
    edit(site.root, "polls/receivers.py", "started-v1", "started-v2")
    got = site.settle(["/polls/ping/"])
    reply = json.loads(got["/polls/ping/"][2])
    assert reply["started"] == ["started-v2"] and reply["replies"] == ["ping-v2"]


def test_translation_catalog_edit_without_module_reload(site):
    before = site.reloads()
    write_mo(site.root / "locale/en/LC_MESSAGES/django.mo", {"greeting": "hello-v2"})
    got = site.settle(["/polls/ping/"])
    assert json.loads(got["/polls/ping/"][2])["greeting"] == "hello-v2"
    assert site.reloads() == before


def test_signal_module_edit(site):
    # A new Signal object: its receivers module re-runs and connects to the new one.
    edit(site.root, "polls/signals.py", "pinged = Signal()", "pinged = Signal()  # edited")
    got = site.settle(["/polls/ping/"])
    assert json.loads(got["/polls/ping/"][2])["replies"] == ["ping-v2"]


def test_no_request_failed_and_no_reload_failed(site):
    time.sleep(0.2)
    assert site.background.sent > 50
    assert site.background.failures == []
    assert site.server.count_lines("reload failed") == 0, site.server.output
    assert site.server.count_lines("restart") == 0, site.server.output
    assert "Traceback" not in site.server.output


def test_models_edit_takes_the_restart(site):
    site.background.stop()
    edit(site.root, "polls/models.py", "return self.text", "return self.text.upper()")
    line = site.server.wait_for_line(r"restarting the process|restart unavailable", timeout=15)
    assert "polls/models.py changed: Django models cannot be hot-reloaded" in line, line
    if "restarting the process" in line:
        site.settle(["/polls/", "/admin/polls/note/"], timeout=60)
