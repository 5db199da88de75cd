"""`hmr-serve test` on a generated project full of the traps of test selection: after every
edit, each test it ran ends as in a fresh `pytest` run, and no test a fresh full run would end
differently is left out (testmode_support.Oracle). The session fixture counts its setups in a
file: it is set up once, and again only when its own code changes."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from testmode_support import Oracle, Session, outcomes, write

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="inotify, fork")

ARGS = ("-v", "-p", "no:cacheprovider", "-p", "no:django", "-p", "no:asyncio")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    write(tmp_path, "app/__init__.py", "")
    write(tmp_path, "app/config.py", "LIMIT = 5\nNAMES = ['a', 'b']\n")
    write(tmp_path, "app/helpers.py", "def fmt(x):\n    return f'<{x}>'\n")
    write(
        tmp_path,
        "app/services.py",
        """
        from app import config
        from app.helpers import fmt


        def total(xs):
            return fmt(sum(xs))


        def limited(n):
            return n <= config.LIMIT
        """,
    )
    write(
        tmp_path,
        "app/registry.py",
        """
        REGISTRY = {}


        def register(name):
            def deco(function):
                REGISTRY[name] = function
                return function

            return deco
        """,
    )
    write(
        tmp_path,
        "app/plugins.py",
        """
        from app.registry import register


        @register("a")
        def a():
            return 1
        """,
    )
    write(tmp_path, "app/rates.json", '{"eur": 2}\n')
    write(
        tmp_path,
        "app/rates.py",
        """
        import json
        import pathlib

        RATES = json.loads((pathlib.Path(__file__).parent / "rates.json").read_text())
        """,
    )
    write(
        tmp_path,
        "tests/conftest.py",
        """
        import os
        import pathlib

        import pytest


        @pytest.fixture(scope="session")
        def db():
            with open(pathlib.Path(__file__).parent.parent / "setups.log", "a") as log:
                log.write(f"{os.getpid()}\\n")
            return {"users": 3}


        @pytest.fixture
        def user():
            return "ann"
        """,
    )
    write(tmp_path, "tests/data/prices.json", '{"apple": 3}\n')
    write(
        tmp_path,
        "tests/test_services.py",
        """
        from app import services


        def test_total():
            assert services.total([1, 2]) == "<3>"


        def test_limited():
            assert services.limited(4)


        def test_plain():
            assert [1, 2] == [1, 2]
        """,
    )
    write(
        tmp_path,
        "tests/test_registry.py",
        """
        import app.plugins
        from app.registry import REGISTRY


        def test_registered():
            assert sorted(REGISTRY) == ["a"]
        """,
    )
    write(
        tmp_path,
        "tests/test_data.py",
        """
        import json
        import pathlib

        from app.rates import RATES


        def test_price():
            path = pathlib.Path(__file__).parent / "data" / "prices.json"
            assert json.loads(path.read_text())["apple"] == 3


        def test_rate():
            assert RATES["eur"] == 2
        """,
    )
    write(
        tmp_path,
        "tests/test_db.py",
        """
        import pytest

        from app import config


        def test_users(db):
            assert db["users"] == 3


        def test_user(db, user):
            assert user == "ann"


        @pytest.mark.parametrize("name", config.NAMES)
        def test_names(name):
            assert name in "abc"
        """,
    )
    return tmp_path


def setups(project: Path, session: Session) -> int:
    """How many times the session set its session fixture up."""
    return (project / "setups.log").read_text().split().count(str(session.proc.pid))


def test_edits_select_exactly_what_a_fresh_run_would_change(project: Path) -> None:
    session = Session(project, *ARGS)
    try:
        oracle = Oracle(project, ARGS, session.ready())
        assert setups(project, session) == 1

        # A function called only through another module.
        ran = oracle.check(session.edit("app/helpers.py", "def fmt(x):\n    return f'[{x}]'\n"))
        assert ran == {"tests/test_services.py::test_total": "FAILED"}
        ran = oracle.check(session.edit("app/helpers.py", "def fmt(x):\n    return f'<{x}>'\n"))
        assert ran == {"tests/test_services.py::test_total": "PASSED"}

        # A value read at run time through a module attribute, and a parametrization read
        # at import: the new parameter is a new test.
        ran = oracle.check(session.edit("app/config.py", "LIMIT = 3\nNAMES = ['a', 'b', 'c']\n"))
        assert ran["tests/test_services.py::test_limited"] == "FAILED"
        assert ran["tests/test_db.py::test_names[c]"] == "PASSED"
        assert "tests/test_services.py::test_plain" not in ran

        # A module-level registry filled by another module's import.
        ran = oracle.check(
            session.edit(
                "app/plugins.py",
                """
                from app.registry import register


                @register("a")
                def a():
                    return 1


                @register("b")
                def b():
                    return 2
                """,
            )
        )
        assert ran["tests/test_registry.py::test_registered"] == "FAILED"

        # A data file a test reads, and one a module reads while it imports.
        ran = oracle.check(session.edit("tests/data/prices.json", '{"apple": 4}\n'))
        assert ran["tests/test_data.py::test_price"] == "FAILED"
        assert "tests/test_data.py::test_rate" not in ran
        ran = oracle.check(session.edit("app/rates.json", '{"eur": 3}\n'))
        assert ran["tests/test_data.py::test_rate"] == "FAILED"

        assert setups(project, session) == 1

        # The session fixture's body changes: it is rebuilt once, its users run again.
        conftest = (project / "tests/conftest.py").read_text()
        ran = oracle.check(
            session.edit("tests/conftest.py", conftest.replace('"users": 3', '"users": 4'))
        )
        assert ran["tests/test_db.py::test_users"] == "FAILED"
        assert ran["tests/test_db.py::test_user"] == "PASSED"
        assert "tests/test_services.py::test_plain" not in ran
        assert setups(project, session) == 2

        # A new test in a module: only it (and what failed last time) runs.
        db_tests = (project / "tests/test_db.py").read_text()
        ran = oracle.check(
            session.edit(
                "tests/test_db.py", db_tests + "\n\ndef test_new(db):\n    assert db['users']\n"
            )
        )
        assert ran["tests/test_db.py::test_new"] == "PASSED"
        assert "tests/test_db.py::test_user" not in ran
        assert setups(project, session) == 2
    finally:
        session.close()


def test_a_broken_module_is_reported_and_the_session_recovers(project: Path) -> None:
    session = Session(project, *ARGS)
    try:
        oracle = Oracle(project, ARGS, session.ready())
        output = session.edit("app/helpers.py", "def fmt(x:\n    return x\n")
        assert "reload failed in app.helpers" in output
        assert "SyntaxError" in output
        assert not re.search(r"::\S+ (PASSED|FAILED)", output)
        ran = oracle.check(session.edit("app/helpers.py", "def fmt(x):\n    return f'({x})'\n"))
        assert ran["tests/test_services.py::test_total"] == "FAILED"

        # A test file that fails to import is shown as pytest shows it, then collected again
        # once fixed.
        output = session.edit(
            "tests/test_new.py", "import app.missing\n\ndef test_x():\n    pass\n"
        )
        assert "ERROR collecting tests/test_new.py" in output or "ModuleNotFoundError" in output
        ran = oracle.check(session.edit("tests/test_new.py", "def test_x():\n    assert True\n"))
        assert ran["tests/test_new.py::test_x"] == "PASSED"

        # A deleted test file leaves the session.
        output = session.edit("tests/test_new.py", None)
        assert "test_new.py::test_x" not in output
        oracle.check(output)
    finally:
        session.close()


def test_the_summary_line_says_what_changed_and_what_ran(project: Path) -> None:
    session = Session(project, *ARGS)
    try:
        first = session.ready()
        assert re.search(r"^10 tests: 10 passed in \S+ m?s$", first, re.MULTILINE), first
        output = session.edit("app/helpers.py", "def fmt(x):\n    return f'[{x}]'\n")
        assert re.search(
            r"^app/helpers\.py changed → 1 of 10 tests affected: 1 failed in \S+ m?s "
            r"\(reload \S+ m?s\)$",
            output,
            re.MULTILINE,
        ), output
        # pytest's own failure report, with the rewritten assert's detail.
        assert "AssertionError: assert '[3]' == '<3>'" in output
    finally:
        session.close()


def test_a_hook_edited_in_a_conftest_restarts_the_session(project: Path) -> None:
    session = Session(project, *ARGS)
    try:
        oracle = Oracle(project, ARGS, session.ready())
        conftest = (project / "tests/conftest.py").read_text()
        hook = (
            "\n\ndef pytest_collection_modifyitems(items):\n"
            "    items[:] = [i for i in items if 'plain' not in i.name]\n"
        )
        # The output up to the new session's first run (the process re-executes itself, so its
        # id stays): every test runs under the new hook.
        output = session.edit("tests/conftest.py", conftest + hook)
        assert "a pytest hook in tests/conftest.py changed: restarting the test session" in output
        rerun = outcomes(output)
        assert len(rerun) == 9 and "tests/test_services.py::test_plain" not in rerun
        assert setups(project, session) == 2
        oracle.known = {k: v for k, v in oracle.known.items() if "test_plain" not in k}
        ran = oracle.check(session.edit("app/helpers.py", "def fmt(x):\n    return f'[{x}]'\n"))
        assert ran == {"tests/test_services.py::test_total": "FAILED"}
    finally:
        session.close()


def test_a_submodule_needed_first_runs_after_its_package(tmp_path: Path) -> None:
    # Flask-Login's shape: the test module calls a function of pkg.utils at import, so pkg.utils
    # must re-run before it; pkg.utils' own `from .config import` reaches the package, whose
    # __init__ imports pkg.manager, which imports pkg.utils. The package has to run first, as in
    # a fresh process, or pkg.manager sees pkg.utils half run (the engine's executor).
    write(
        tmp_path,
        "pkg/__init__.py",
        "from .config import NAME\nfrom .manager import Manager\nfrom .utils import exempt\n",
    )
    write(tmp_path, "pkg/config.py", "NAME = 'a'\nEXEMPT = {'OPTIONS'}\n")
    write(
        tmp_path,
        "pkg/utils.py",
        "from .config import EXEMPT\n\n\ndef exempt():\n    return sorted(EXEMPT)\n",
    )
    write(
        tmp_path,
        "pkg/manager.py",
        "from .config import NAME\nfrom .utils import exempt\n\n\n"
        "class Manager:\n    name = NAME\n    check = staticmethod(exempt)\n",
    )
    write(
        tmp_path,
        "test_pkg.py",
        "import pkg\nfrom pkg.utils import exempt\n\nAT_IMPORT = exempt()\n\n\ndef test_exempt():\n"
        "    assert AT_IMPORT == ['OPTIONS']\n\n\n"
        "def test_name():\n    assert pkg.Manager.name == 'a'\n",
    )
    session = Session(tmp_path, *ARGS)
    try:
        oracle = Oracle(tmp_path, ARGS, session.ready())
        output = session.edit("pkg/config.py", "NAME = 'b'\nEXEMPT = set()\n")
        assert "reload failed" not in output
        ran = oracle.check(output)
        assert ran == {"test_pkg.py::test_exempt": "FAILED", "test_pkg.py::test_name": "FAILED"}
    finally:
        session.close()
