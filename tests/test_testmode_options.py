"""pytest's options in the watch session: `-k`, `-x`, `--lf` and marks apply to every run; a
collection error at start is shown and the session recovers once it is fixed."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import server_env
from testmode_support import Oracle, Session, fresh_run, outcomes, write

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="inotify, fork")

PLUGINS = ("-p", "no:django", "-p", "no:asyncio")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    write(
        tmp_path,
        "shapes.py",
        "def area(w, h):\n    return w * h\n\n\ndef name():\n    return 'box'\n",
    )
    write(
        tmp_path,
        "conftest.py",
        """
        import os

        import pytest


        @pytest.fixture(scope="session")
        def unit():
            with open("setups.log", "a") as log:
                log.write(f"{os.getpid()}\\n")
            return 1
        """,
    )
    write(
        tmp_path,
        "test_shapes.py",
        """
        import pytest

        from shapes import area, name


        def test_area(unit):
            assert area(2, 3) == 6 * unit


        def test_area_square():
            assert area(2, 2) == 4


        def test_name():
            assert name() == "box"


        @pytest.mark.parametrize("w", [1, 2])
        def test_area_one(w):
            assert area(w, 1) == w
        """,
    )
    return tmp_path


def test_k_selects_within_the_matching_tests(project: Path) -> None:
    args = ("-v", "-p", "no:cacheprovider", *PLUGINS, "-k", "area and not square")
    session = Session(project, *args)
    try:
        oracle = Oracle(project, args, session.ready())
        assert set(oracle.known) == {
            "test_shapes.py::test_area",
            "test_shapes.py::test_area_one[1]",
            "test_shapes.py::test_area_one[2]",
        }
        tests = (project / "test_shapes.py").read_text()
        output = session.edit(
            "test_shapes.py",
            tests + "\n\ndef test_area_new():\n    assert area(1, 1) == 1\n\n\n"
            "def test_unrelated():\n    assert False\n",
        )
        ran = oracle.check(output)
        assert ran == {"test_shapes.py::test_area_new": "PASSED"}
        assert "→ 1 of 4 tests affected" in output
        shapes = (project / "shapes.py").read_text()
        ran = oracle.check(session.edit("shapes.py", shapes.replace("w * h", "w + h")))
        assert ran["test_shapes.py::test_area"] == "FAILED"
    finally:
        session.close()


def test_x_stops_each_run_at_its_first_failure_and_keeps_the_session_fixture(
    project: Path,
) -> None:
    args = ("-v", "-p", "no:cacheprovider", *PLUGINS)
    session = Session(project, "-x", *args)
    try:
        first = outcomes(session.ready())
        assert all(outcome == "PASSED" for outcome in first.values())
        shapes = (project / "shapes.py").read_text()
        output = session.edit("shapes.py", shapes.replace("w * h", "w * h + 1"))
        ran = outcomes(output)
        assert list(ran.values()) == ["FAILED"]  # stopped after the first failure
        assert "stopping after 1 failure" in output
        # What it did run ended as in a fresh run.
        reference = fresh_run(project, *args)
        for nodeid, outcome in ran.items():
            assert reference[nodeid] == outcome
        output = session.edit("shapes.py", shapes)
        ran = outcomes(output)
        assert set(ran.values()) == {"PASSED"}
        # The failed test and those the stop left out ran again.
        assert set(ran) >= {
            "test_shapes.py::test_area",
            "test_shapes.py::test_area_square",
            "test_shapes.py::test_area_one[1]",
        }
        setups = (project / "setups.log").read_text().split()
        assert setups.count(str(session.proc.pid)) == 1
    finally:
        session.close()


def test_lf_runs_the_last_failed_first(project: Path) -> None:
    write(
        project,
        "shapes.py",
        "def area(w, h):\n    return w * h\n\n\ndef name():\n    return 'bag'\n",
    )
    subprocess.run(  # leaves test_name in the cache's last failures
        [sys.executable, "-m", "pytest", "-q", *PLUGINS],
        cwd=project,
        env=server_env(),
        capture_output=True,
        timeout=120,
    )
    session = Session(project, "-v", "--lf", *PLUGINS)
    try:
        first = outcomes(session.ready())
        assert first == {"test_shapes.py::test_name": "FAILED"}
        output = session.edit(
            "shapes.py", "def area(w, h):\n    return w * h\n\n\ndef name():\n    return 'box'\n"
        )
        assert outcomes(output) == {"test_shapes.py::test_name": "PASSED"}
    finally:
        session.close()


def test_a_mark_added_makes_the_test_edited(project: Path) -> None:
    args = ("-v", "-p", "no:cacheprovider", *PLUGINS)
    session = Session(project, *args)
    try:
        oracle = Oracle(project, args, session.ready())
        tests = (project / "test_shapes.py").read_text()
        marked = tests.replace(
            "def test_name():", '@pytest.mark.skip(reason="later")\ndef test_name():'
        )
        ran = oracle.check(session.edit("test_shapes.py", marked))
        assert ran == {"test_shapes.py::test_name": "SKIPPED"}
        ran = oracle.check(session.edit("test_shapes.py", marked.replace("[1, 2]", "[1, 2, 3]")))
        assert ran == {"test_shapes.py::test_area_one[3]": "PASSED"}
    finally:
        session.close()


def test_a_collection_error_at_start_is_shown_and_the_session_recovers(project: Path) -> None:
    write(project, "test_broken.py", "def test_x(:\n    pass\n")
    args = ("-v", "-p", "no:cacheprovider", *PLUGINS)
    session = Session(project, *args)
    try:
        first = session.ready()
        assert "ERROR collecting test_broken.py" in first
        assert "1 error during collection: no tests run" in first
        assert not outcomes(first)
        output = session.edit("test_broken.py", "def test_x():\n    assert True\n")
        ran = outcomes(output)
        assert ran == fresh_run(project, *args)  # nothing had run: everything runs
        assert re.search(r"→ 6 of 6 tests affected: 6 passed", output)
    finally:
        session.close()
