"""`hmr-serve test` with the plugins people use: pytest-asyncio (async tests and fixtures) and
pytest-django (its test database is created once per session). Each edit is checked against
fresh pytest runs (testmode_support.Oracle)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from testmode_support import Oracle, Session, write

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="inotify, fork")


def test_pytest_asyncio(tmp_path: Path) -> None:
    pytest.importorskip("pytest_asyncio")
    write(tmp_path, "pytest.ini", "[pytest]\nasyncio_mode = auto\n")
    write(
        tmp_path,
        "service.py",
        """
        import asyncio


        async def fetch(x):
            await asyncio.sleep(0)
            return x * 2


        async def other():
            return "other"
        """,
    )
    write(
        tmp_path,
        "conftest.py",
        """
        import pytest


        @pytest.fixture
        async def base():
            return 10
        """,
    )
    write(
        tmp_path,
        "test_service.py",
        """
        import service


        async def test_fetch(base):
            assert await service.fetch(base) == 20


        async def test_other():
            assert await service.other() == "other"
        """,
    )
    args = ("-v", "-p", "no:cacheprovider", "-p", "no:django")
    session = Session(tmp_path, *args)
    try:
        oracle = Oracle(tmp_path, args, session.ready())
        service = (tmp_path / "service.py").read_text()
        ran = oracle.check(
            session.edit("service.py", service.replace("return x * 2", "return x * 3"))
        )
        assert ran == {"test_service.py::test_fetch": "FAILED"}
        ran = oracle.check(session.edit("service.py", service))
        assert ran == {"test_service.py::test_fetch": "PASSED"}
        conftest = (tmp_path / "conftest.py").read_text()
        ran = oracle.check(session.edit("conftest.py", conftest.replace("10", "20")))
        assert ran == {"test_service.py::test_fetch": "FAILED"}
        assert "Traceback" not in session.text
    finally:
        session.close()


DJANGO_FILES = {
    "pytest.ini": "[pytest]\nDJANGO_SETTINGS_MODULE = proj.settings\npythonpath = .\n",
    "proj/__init__.py": "",
    "proj/settings.py": """
        SECRET_KEY = "test"
        INSTALLED_APPS = ["django.contrib.contenttypes", "shop"]
        DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": "db.sqlite3"}}
        USE_TZ = True
        DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
        """,
    "shop/__init__.py": "",
    "shop/models.py": """
        from django.db import models


        class Item(models.Model):
            name = models.CharField(max_length=50)
            price = models.IntegerField(default=0)
        """,
    "shop/pricing.py": """
        from shop.models import Item


        def total():
            return sum(item.price for item in Item.objects.all())


        def label(item):
            return f"{item.name}: {item.price}"
        """,
    "conftest.py": """
        import os

        import pytest


        @pytest.fixture(scope="session")
        def django_db_setup(django_db_setup):
            # Counts how often this process created the test database.
            with open("dbsetup.log", "a") as log:
                log.write(f"{os.getpid()}\\n")
        """,
    "shop/test_pricing.py": """
        import pytest

        from shop.models import Item
        from shop.pricing import label, total


        @pytest.mark.django_db
        def test_total():
            Item.objects.create(name="a", price=2)
            Item.objects.create(name="b", price=3)
            assert total() == 5


        @pytest.mark.django_db
        def test_label():
            assert label(Item.objects.create(name="a", price=2)) == "a: 2"


        def test_plain():
            assert 1 + 1 == 2
        """,
}


def test_pytest_django_creates_the_test_database_once(tmp_path: Path) -> None:
    pytest.importorskip("pytest_django")
    for rel, text in DJANGO_FILES.items():
        write(tmp_path, rel, text)
    args = ("-v", "-p", "no:cacheprovider", "-p", "no:asyncio")
    session = Session(tmp_path, *args)
    try:
        oracle = Oracle(tmp_path, args, session.ready())
        pricing = (tmp_path / "shop/pricing.py").read_text()
        ran = oracle.check(session.edit("shop/pricing.py", pricing.replace("sum(", "2 * sum(")))
        assert ran == {"shop/test_pricing.py::test_total": "FAILED"}
        ran = oracle.check(session.edit("shop/pricing.py", pricing.replace(": ", " = ")))
        assert set(ran) == {"shop/test_pricing.py::test_total", "shop/test_pricing.py::test_label"}
        tests = (tmp_path / "shop/test_pricing.py").read_text()
        ran = oracle.check(
            session.edit(
                "shop/test_pricing.py",
                tests + "\n\n@pytest.mark.django_db\ndef test_empty():\n    assert total() == 0\n",
            )
        )
        assert ran["shop/test_pricing.py::test_empty"] == "PASSED"
        created = (tmp_path / "dbsetup.log").read_text().split()
        assert created.count(str(session.proc.pid)) == 1
    finally:
        session.close()
