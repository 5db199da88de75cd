"""`hmr-serve test` in a real terminal (a pty that is its controlling terminal): the keys,
colours, Ctrl-C, and the exit code of the last run."""

from __future__ import annotations

import re
import signal
import sys
from pathlib import Path

import pytest
from testmode_support import WAITING, Session, write

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs a pty")

ARGS = ("-v", "-p", "no:cacheprovider", "-p", "no:django", "-p", "no:asyncio")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    write(tmp_path, "calc.py", "def double(x):\n    return 2 * x\n")
    write(
        tmp_path,
        "test_calc.py",
        """
        from calc import double


        def test_double():
            assert double(2) == 4


        def test_broken():
            assert double(1) == 3


        def test_other():
            assert True
        """,
    )
    return tmp_path


def ran(output: str) -> list[str]:
    return re.findall(r"(test_calc\.py::\w+) (?:PASSED|FAILED)", _plain(output))


def test_keys_run_all_failed_or_again_and_q_quits(project: Path) -> None:
    session = Session(project, *ARGS, tty=True)
    try:
        first = session.ready()
        assert len(ran(first)) == 3
        assert "(a: all, f: failed, Enter: again, q: quit)" in first
        assert "\x1b[" in first  # coloured: the terminal is a tty

        output = session.after(lambda: session.press(b"a"))
        assert sorted(ran(output)) == sorted(ran(first))
        assert re.search(r"all tests → 3 of 3 tests selected: 1 failed, 2 passed", _plain(output))

        output = session.after(lambda: session.press(b"f"))
        assert ran(output) == ["test_calc.py::test_broken"]

        session.edit("calc.py", "def double(x):\n    return x + x\n")
        output = session.after(lambda: session.press(b"\n"))
        assert sorted(ran(output)) == ["test_calc.py::test_broken", "test_calc.py::test_double"]

        session.press(b"q")
        assert session.proc.wait(30) == 1  # the last run had a failure
    finally:
        session.close()


def test_ctrl_c_while_waiting_quits(project: Path) -> None:
    write(project, "test_calc.py", "def test_ok():\n    assert True\n")
    session = Session(project, *ARGS, tty=True)
    try:
        session.ready()
        session.proc.send_signal(signal.SIGINT)
        assert session.proc.wait(30) == 0
        assert session.count(WAITING) == 1
    finally:
        session.close()


def _plain(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)
