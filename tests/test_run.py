"""`hmr-serve run`: script mode, end to end in a real terminal (a pty that is the process's
controlling terminal, so Ctrl-C is a real SIGINT from the tty driver)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from conftest import server_env, spawn_in_pty

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs a pty")


class Terminal:
    """`hmr-serve run ARGS` with a pty as its stdin, stdout, stderr and controlling terminal."""

    def __init__(self, cwd: Path, *args: str) -> None:
        self.proc, self.master = spawn_in_pty(
            [sys.executable, "-m", "hmr_serve", "run", *args], cwd
        )
        self.text = ""
        self._cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.master, 4096)
            except OSError:
                data = b""
            with self._cond:
                if not data:
                    self._cond.notify_all()
                    return
                self.text += data.decode(errors="replace").replace("\r\n", "\n")
                self._cond.notify_all()

    def wait_for(self, pattern: str, count: int = 1, timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(re.findall(pattern, self.text)) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {count}x {pattern!r} in:\n{self.text}")
                self._cond.wait(min(left, 0.2))
            return self.text

    def count(self, pattern: str) -> int:
        with self._cond:
            return len(re.findall(pattern, self.text))

    def press(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        os.close(self.master)


@pytest.fixture
def terminals():
    opened: list[Terminal] = []

    def start(cwd: Path, *args: str) -> Terminal:
        terminal = Terminal(cwd, *args)
        opened.append(terminal)
        return terminal

    yield start
    for terminal in opened:
        terminal.close()


def write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))


@pytest.fixture
def project(tmp_path: Path) -> Path:
    write(tmp_path, "lib/__init__.py", "")
    write(
        tmp_path,
        "lib/model.py",
        """
        import time
        open("loads.log", "a").write("loaded\\n")
        time.sleep(0.3)  # an expensive import
        WEIGHTS = 3
        """,
    )
    write(tmp_path, "lib/deep.py", "DEEP = 1\n")
    write(tmp_path, "lib/middle.py", "from lib.deep import DEEP\nMIDDLE = DEEP * 10\n")
    write(tmp_path, "lib/leaf.py", "LEAF = 1\n")
    write(
        tmp_path,
        "main.py",
        """
        import sys
        from lib import leaf, middle, model
        print("argv", sys.argv, "path0", sys.path[0])
        print("result", leaf.LEAF * model.WEIGHTS, middle.MIDDLE, "tty", sys.stdin.isatty())
        sys.exit(3)
        """,
    )
    return tmp_path


def test_edits_rerun_the_script_with_the_model_kept(project: Path, terminals) -> None:
    term = terminals(project, "main.py", "one", "two")
    term.wait_for(r"result 3 10 tty True")
    assert f"argv ['main.py', 'one', 'two'] path0 {project}" in term.text
    term.wait_for(r"main.py exited with code 3")
    (project / "lib/leaf.py").write_text("LEAF = 2\n")
    term.wait_for(r"result 6 10")
    assert re.search(r"reloaded 1 module in [\d.]+ ms .*after changes to lib/leaf\.py", term.text)
    (project / "lib/deep.py").write_text("DEEP = 2\n")
    term.wait_for(r"result 6 20")
    (project / "main.py").write_text(
        (project / "main.py").read_text().replace("* model", "* 10 * model")
    )
    term.wait_for(r"result 60 20")
    assert (project / "loads.log").read_text() == "loaded\n"  # imported once, never again
    # Ctrl-C once the run is over: pressed while it still runs, it only stops that run.
    term.wait_for(r"main.py exited with code 3", count=4)
    term.press(b"\x03")
    assert term.proc.wait(20) == 3  # the last run's exit code
    term.wait_for(r"quitting \(exit code 3\)")


def test_a_running_loop_is_interrupted_by_a_change(tmp_path: Path, terminals) -> None:
    write(tmp_path, "knob.py", "VALUE = 1\n")
    write(
        tmp_path,
        "bot.py",
        """
        import time
        import hmr_serve
        import knob

        hmr_serve.on_dispose(lambda: print("disposed", flush=True))
        try:
            while True:
                print("tick", knob.VALUE, flush=True)
                time.sleep(0.05)
        finally:
            print("cleanup", knob.VALUE, flush=True)
        """,
    )
    term = terminals(tmp_path, "bot.py")
    term.wait_for(r"tick 1")
    (tmp_path / "knob.py").write_text("VALUE = 2\n")
    text = term.wait_for(r"tick 2")
    assert text.index("cleanup") < text.index("tick 2"), text
    assert "disposed" in text
    term.press(b"\x03")  # stops the loop
    term.wait_for(r"interrupted")
    term.press(b"\x03")  # and quits
    assert term.proc.wait(20) == 130


def test_a_syntax_error_keeps_the_last_good_modules(project: Path, terminals) -> None:
    term = terminals(project, "main.py")
    term.wait_for(r"result 3 10")
    (project / "lib/leaf.py").write_text("LEAF = (\n")
    term.wait_for(r"reload failed in lib\.leaf")
    assert term.count(r"result ") == 1  # not run on broken code
    (project / "lib/leaf.py").write_text("LEAF = 4\n")
    term.wait_for(r"result 12 10")
    (project / "main.py").write_text("import sys\nprint('broken'\n")
    term.wait_for(r"SyntaxError")
    (project / "main.py").write_text("print('fixed')\n")
    term.wait_for(r"fixed")


def test_run_module_and_its_exit_code(project: Path, terminals) -> None:
    write(project, "lib/cli.py", "import sys\nprint('module argv', sys.argv[1:])\nsys.exit(5)\n")
    term = terminals(project, "-m", "lib.cli", "x")
    term.wait_for(r"module argv \['x'\]")
    write(project, "lib/cli.py", "import sys\nprint('edited', sys.argv[1:])\nsys.exit(6)\n")
    term.wait_for(r"edited \['x'\]")
    term.wait_for(r"exited with code 6")
    term.press(b"\x03")
    assert term.proc.wait(20) == 6


def test_bad_target_says_so(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "hmr_serve", "run", "missing.py"],
        cwd=tmp_path,
        env=server_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert "no such script: missing.py" in out.stderr
