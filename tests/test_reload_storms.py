"""Reload storms and what editors and tools really do to files: hundreds of saves of one file,
a `git checkout` changing fifty at once, deletions, renames, a module turned into a package,
bytes that are not UTF-8. Each ends with the server answering exactly what a fresh process
answers for the final files, and a steady client that saw no failed request."""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest
from conftest import edit, served_tree, server_env, write
from fresh import app_module, fresh, served, settle

COUNT = 50


def leaf(number: int, version: str) -> str:
    return f'VALUE = "m{number:02d}-{version}"\n'


FILES = {
    "pkg/__init__.py": "",
    **{f"pkg/m{n:02d}.py": leaf(n, "v1") for n in range(COUNT)},
    "pkg/feature/__init__.py": "from pkg.feature.x import X\n",
    "pkg/feature/x.py": 'X = "x-v1"\n',
    "pkg/util.py": 'UTIL = "util-module"\n',
    "pkg/main.py": app_module(
        f"""
        import importlib

        from pkg import util
        from pkg.feature import X

        MODULES = [importlib.import_module(f"pkg.m{{n:02d}}") for n in range({COUNT})]

        def body():
            return {{
                "values": [m.VALUE for m in MODULES],
                "feature": X,
                "util": util.UTIL,
                "util_is_package": hasattr(util, "__path__"),
            }}
        """
    ),
}


def git(root, *args: str) -> None:
    env = server_env(
        {
            "GIT_AUTHOR_NAME": "t",
            "GIT_AUTHOR_EMAIL": "t@example.invalid",
            "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@example.invalid",
        }
    )
    subprocess.run(["git", *args], cwd=root, env=env, check=True, capture_output=True)


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    root = tmp_path_factory.mktemp("storms")
    with served_tree(root, FILES, "pkg.main:app", "--no-access-log") as served:
        yield root, *served


def no_failures(server, background) -> None:
    assert background.failures == [], (background.failures, server.output)


def failures_seen(server, before: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while server.count_lines("reload failed") <= before:
        assert time.monotonic() < deadline, server.output
        time.sleep(0.02)


def test_initial_answer(session):
    root, server, background = session
    assert settle(root, server)["values"][0] == "m00-v1"


def test_two_hundred_saves_of_one_file_in_two_seconds(session):
    root, server, background = session
    path = root / "pkg" / "m00.py"
    started = time.monotonic()
    for i in range(200):
        # Sizes vary and repeat: a same-size save in the same second must still count.
        path.write_text(leaf(0, f"s{i % 7}-{i}"))
        time.sleep(max(0.0, started + (i + 1) * 0.01 - time.monotonic()))
    assert settle(root, server)["values"][0] == "m00-s3-199"
    no_failures(server, background)


def test_git_checkout_of_another_branch_and_back(session):
    root, server, background = session
    git(root, "init", "-q", "-b", "main")
    (root / ".gitignore").write_text("__pycache__/\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "one")
    git(root, "checkout", "-q", "-b", "other")
    for n in range(COUNT):
        write(root, f"pkg/m{n:02d}.py", leaf(n, "branch") + f"EXTRA_{n} = {n}\n")
    git(root, "commit", "-q", "-am", "other")
    got = settle(root, server)
    assert got["values"] == [f"m{n:02d}-branch" for n in range(COUNT)]
    git(root, "checkout", "-q", "main")
    got = settle(root, server)
    assert got["values"][1:] == [f"m{n:02d}-v1" for n in range(1, COUNT)]
    git(root, "checkout", "-q", "other")
    assert settle(root, server)["values"][COUNT - 1] == f"m{COUNT - 1:02d}-branch"
    git(root, "checkout", "-q", "main")
    settle(root, server)
    shutil.rmtree(root / ".git")
    no_failures(server, background)


def test_file_deleted_then_recreated(session):
    root, server, background = session
    before = served(server)
    failed = server.count_lines("reload failed")
    (root / "pkg" / "m01.py").unlink()
    assert fresh(root) == {"error": "ModuleNotFoundError"}
    failures_seen(server, failed)
    assert served(server) == before
    write(root, "pkg/m01.py", leaf(1, "recreated"))
    assert settle(root, server)["values"][1] == "m01-recreated"
    # Deleted and written again at once (how some editors save).
    (root / "pkg" / "m01.py").unlink()
    write(root, "pkg/m01.py", leaf(1, "again"))
    assert settle(root, server)["values"][1] == "m01-again"
    no_failures(server, background)


def test_directory_renamed(session):
    root, server, background = session
    before = served(server)
    failed = server.count_lines("reload failed")
    os.rename(root / "pkg" / "feature", root / "pkg" / "feature2")
    failures_seen(server, failed)  # main still imports pkg.feature: as a fresh process fails
    assert served(server) == before
    edit(root, "pkg/main.py", "from pkg.feature import X", "from pkg.feature2 import X")
    edit(root, "pkg/feature2/__init__.py", "pkg.feature.x", "pkg.feature2.x")
    assert settle(root, server)["feature"] == "x-v1"
    write(root, "pkg/feature2/x.py", 'X = "x-v2"\n')
    assert settle(root, server)["feature"] == "x-v2"
    # And back, the imports first this time.
    edit(root, "pkg/feature2/__init__.py", "pkg.feature2.x", "pkg.feature.x")
    edit(root, "pkg/main.py", "from pkg.feature2 import X", "from pkg.feature import X")
    os.rename(root / "pkg" / "feature2", root / "pkg" / "feature")
    assert settle(root, server)["feature"] == "x-v2"
    write(root, "pkg/feature/x.py", 'X = "x-v3"\n')
    assert settle(root, server)["feature"] == "x-v3"
    no_failures(server, background)


def test_module_replaced_by_a_package_and_back(session):
    root, server, background = session
    (root / "pkg" / "util.py").unlink()
    write(
        root, "pkg/util/__init__.py", 'from pkg.util.inner import INNER\n\nUTIL = "util-" + INNER\n'
    )
    write(root, "pkg/util/inner.py", 'INNER = "package"\n')
    got = settle(root, server)
    assert got["util"] == "util-package" and got["util_is_package"] is True
    write(root, "pkg/util/inner.py", 'INNER = "package2"\n')
    assert settle(root, server)["util"] == "util-package2"
    shutil.rmtree(root / "pkg" / "util")
    write(root, "pkg/util.py", 'UTIL = "util-module-again"\n')
    got = settle(root, server)
    assert got["util"] == "util-module-again" and got["util_is_package"] is False
    write(root, "pkg/util.py", 'UTIL = "util-module-3"\n')
    assert settle(root, server)["util"] == "util-module-3"
    no_failures(server, background)


def test_save_with_invalid_utf8(session):
    root, server, background = session
    before = served(server)
    failed = server.count_lines("reload failed")
    (root / "pkg" / "m02.py").write_bytes(b'VALUE = "caf\xe9"\n')
    failures_seen(server, failed)
    line = [x for x in server.lines if "reload failed" in x][-1]
    assert "pkg.m02 with SyntaxError at pkg/m02.py:1" in line and "utf-8" in line, line
    assert served(server) == before
    (root / "pkg" / "m02.py").write_bytes('VALUE = "café"\n'.encode())
    assert settle(root, server)["values"][2] == "café"
    no_failures(server, background)


def test_nothing_failed_and_the_server_runs(session):
    root, server, background = session
    time.sleep(0.2)
    assert background.sent > 100
    no_failures(server, background)
    assert server.proc.poll() is None
    assert served(server) == fresh(root)
