"""End-to-end tests: the Django example project (examples/django) under hmr-serve.

The project is copied to a temporary directory (so no db.sqlite3 lands in the
repository) and migrated there; each test runs against both the WSGI and the
ASGI entry point.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest
from conftest import EXAMPLES_DIR, server_env

CSRF_INPUT_RE = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    dest = tmp_path_factory.mktemp("django") / "site"
    shutil.copytree(
        EXAMPLES_DIR / "django",
        dest,
        ignore=shutil.ignore_patterns("__pycache__", "db.sqlite3"),
    )
    env = server_env({"DJANGO_SUPERUSER_PASSWORD": "s3cret-pass-123"})
    for cmd in (
        ["migrate", "--noinput"],
        ["createsuperuser", "--noinput", "--username", "admin", "--email", "a@example.com"],
    ):
        proc = subprocess.run(
            [sys.executable, "manage.py", *cmd],
            cwd=dest,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return dest


@pytest.fixture(scope="module", params=["mysite.wsgi:application", "mysite.asgi:application"])
def server(request, start_module_server, project):
    return start_module_server(request.param, "--port", "0", cwd=project)


def test_interface(server):
    expected = "WSGI" if ".wsgi:" in " ".join(server.cmd) else "ASGI"
    assert server.interface == expected


def test_root_redirects_to_polls(client):
    r = client.get("/")
    assert r.status_code == 302
    assert r.headers["location"] == "/polls/"


def test_polls_page(client):
    r = client.get("/polls/")
    assert r.status_code == 200
    assert "Which Python web framework do you use?" in r.text
    assert 'value="Django"' in r.text
    assert "csrftoken" in r.cookies


def test_post_with_csrf(client):
    page = client.get("/polls/")
    token = CSRF_INPUT_RE.search(page.text).group(1)
    r = client.post("/polls/vote/", data={"choice": "Flask", "csrfmiddlewaretoken": token})
    assert r.status_code == 200, r.text
    assert "You voted for Flask." in r.text


def test_post_without_csrf_is_rejected(server):
    with server.client() as fresh:  # no cookie, no token
        r = fresh.post("/polls/vote/", data={"choice": "Flask"})
    assert r.status_code == 403
    assert "CSRF" in r.text


def test_invalid_choice(client):
    page = client.get("/polls/")
    token = CSRF_INPUT_RE.search(page.text).group(1)
    r = client.post("/polls/vote/", data={"choice": "COBOL", "csrfmiddlewaretoken": token})
    assert r.status_code == 400
    assert "valid choice" in r.text


def test_admin_login_page(client):
    r = client.get("/admin/login/")
    assert r.status_code == 200
    assert "Django" in r.text
    assert 'name="username"' in r.text


def test_admin_redirects_anonymous_to_login(client):
    r = client.get("/admin/")
    assert r.status_code == 302
    assert r.headers["location"].startswith("/admin/login/")


def test_admin_login_with_session(client):
    page = client.get("/admin/login/", params={"next": "/admin/"})
    token = CSRF_INPUT_RE.search(page.text).group(1)
    r = client.post(
        "/admin/login/?next=/admin/",
        data={
            "username": "admin",
            "password": "s3cret-pass-123",
            "csrfmiddlewaretoken": token,
            "next": "/admin/",
        },
    )
    assert r.status_code == 302, r.text[:2000]
    assert r.headers["location"] == "/admin/"
    r = client.get("/admin/")
    assert r.status_code == 200
    assert "Site administration" in r.text


def test_disallowed_host(client):
    r = client.get("/polls/", headers={"Host": "evil.example"})
    assert r.status_code == 400


def test_django_404(client):
    r = client.get("/no-such-page/")
    assert r.status_code == 404


def test_no_panic(server):
    assert "panicked" not in server.output
