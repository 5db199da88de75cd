"""`hmr-serve test` on the test suites of two real projects nobody here wrote, rebuilt from their
PyPI sdists (which ship their tests): Flask-Login 0.6.3 (a Flask extension, 114 tests) and
Starlette 0.47.3 (921 tests). A series of real edits of their sources; after each, every test
the session ran ends as in a fresh `pytest` run, and no test a fresh full run would end
differently was left out (testmode_support.Oracle).

The sdists are downloaded once with pip into the temporary directory's `hmr-serve-sdists`
(the suites' own dependencies, semantic_version, trio and sniffio, are in requirements-dev.txt).
Starlette's series takes over a minute on a loaded 2-core machine: it runs with `--long`, and
without it only its first two edits."""

from __future__ import annotations

import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import pytest
from testmode_support import Oracle, Session

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="inotify, fork")

# Plugins installed in this venv that the projects' suites do not use: each would change their
# runs (pytest-asyncio's warnings are errors under Starlette's filterwarnings).
PLUGINS_OFF = ("-p", "no:cacheprovider", "-p", "no:django", "-p", "no:asyncio")
PLUGINS_OFF += ("-p", "no:testmon", "-p", "no:tach")
SDISTS = Path(tempfile.gettempdir()) / "hmr-serve-sdists"


def unpack(name: str, version: str, into: Path) -> Path:
    """The sdist's tree (source and tests) under `into`."""
    prefix = f"{name.lower().replace('_', '-')}-{version}.tar.gz"

    def cached() -> Path | None:
        found = [p for p in SDISTS.glob("*.tar.gz") if p.name.lower().replace("_", "-") == prefix]
        return found[0] if found else None

    archive = cached()
    if archive is None:
        SDISTS.mkdir(exist_ok=True)
        command = [sys.executable, "-m", "pip", "download", "-q", "--no-deps"]
        command += ["--no-binary", ":all:", "-d", str(SDISTS), f"{name}=={version}"]
        done = subprocess.run(command, capture_output=True, text=True, timeout=300)
        archive = cached()
        assert archive is not None, f"pip could not fetch {name}=={version}:\n{done.stderr}"
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    (root,) = into.iterdir()
    return root


def changed(project: Path, rel: str, old: str, new: str) -> str:
    text = (project / rel).read_text()
    assert text.count(old) == 1, f"{old!r} is not once in {rel}"
    return text.replace(old, new)


def failed(ran: dict[str, str]) -> set[str]:
    return {nodeid for nodeid, outcome in ran.items() if outcome == "FAILED"}


def test_flask_login(tmp_path: Path) -> None:
    project = unpack("Flask-Login", "0.6.3", tmp_path)
    args = ("-v", *PLUGINS_OFF, "-o", "pythonpath=src")
    session = Session(project, *args)
    try:
        oracle = Oracle(project, args, session.ready())
        total = len(oracle.known)
        assert total == 114 and set(oracle.known.values()) == {"PASSED"}
        utils = "src/flask_login/utils.py"
        original = (project / utils).read_text()

        # A function body: the tests that call it directly, and those whose requests reach it
        # through the login manager's unauthorized handler (another module).
        body = 'return urlunsplit(("", "", c_url.path, c_url.query, ""))'
        broken = changed(project, utils, body, body.replace("c_url.path", "c_url.path.upper()"))
        ran = oracle.check(session.edit(utils, broken))
        assert failed(ran) and len(ran) < total / 2
        assert any("unauthorized" in nodeid for nodeid in failed(ran))
        # Fixed again: the failures run and pass.
        ran = oracle.check(session.edit(utils, original))
        assert set(ran.values()) == {"PASSED"} and len(ran) < total / 2

        # A constant another module imports (`from .config import EXEMPT_METHODS`) and reads in
        # the views `login_required` wraps.
        config = "src/flask_login/config.py"
        old = 'EXEMPT_METHODS = {"OPTIONS"}'
        ran = oracle.check(
            session.edit(config, changed(project, config, old, "EXEMPT_METHODS = set()"))
        )
        assert failed(ran) and len(ran) < total
        ran = oracle.check(
            session.edit(config, changed(project, config, "EXEMPT_METHODS = set()", old))
        )
        assert set(ran.values()) == {"PASSED"}

        # A method of a mixin every test user inherits.
        mixins = "src/flask_login/mixins.py"
        text = changed(project, mixins, "return str(self.id)", "return str(self.id) + '!'")
        ran = oracle.check(session.edit(mixins, text))
        assert failed(ran) and len(ran) < total

        # A test edited: it alone runs (with the tests that failed last time).
        tests = "tests/test_login.py"
        text = changed(project, tests, 'self.assertEqual(login_url("/foo"), "/foo")', "pass")
        before = failed(ran)
        ran = oracle.check(session.edit(tests, text))
        assert set(ran) - before and len(ran) <= len(before) + 1
    finally:
        session.close()


def test_starlette(tmp_path: Path, long_run: bool) -> None:
    project = unpack("starlette", "0.47.3", tmp_path)
    # anyio 4.12+ warns about an alias Starlette 0.47 still uses; the suite turns warnings
    # into errors.
    args = ("-v", *PLUGINS_OFF, "-W", "ignore:The anyio.abc.BlockingPortal:DeprecationWarning")
    session = Session(project, *args)
    try:
        oracle = Oracle(project, args, session.ready())
        total = len(oracle.known)
        assert total > 900
        # As root, the two tests of an unreadable directory fail from the start.
        broken = failed(oracle.known)

        # A function body that breaks routing with integer parameters, then fixed. The engine
        # cannot patch it in place (`CONVERTOR_TYPES` builds an IntegerConvertor at import):
        # convertors and what reads CONVERTOR_TYPES re-run, and the tests of every app built
        # at import run again, about half of the suite.
        convertors = "starlette/convertors.py"
        original = (project / convertors).read_text()
        ran = oracle.check(
            session.edit(
                convertors,
                changed(project, convertors, "return int(value)\n", "return int(value) + 1\n"),
            )
        )
        assert failed(ran) - broken and len(ran) < total
        ran = oracle.check(session.edit(convertors, original))
        assert ran and failed(ran) <= broken
        if not long_run:
            return

        # A module constant read at call time by the CORS middleware.
        cors = "starlette/middleware/cors.py"
        old = '"Accept", "Accept-Language"'
        ran = oracle.check(session.edit(cors, changed(project, cors, old, '"Accept"')))
        assert failed(ran) - broken and len(ran) < total / 4
        ran = oracle.check(session.edit(cors, changed(project, cors, '"Accept"', old)))
        assert failed(ran) <= broken

        # The body of a conftest fixture most tests use.
        conftest = "tests/conftest.py"
        old = "backend=anyio_backend_name,"
        new = old + " raise_server_exceptions=False,"
        ran = oracle.check(session.edit(conftest, changed(project, conftest, old, new)))
        assert failed(ran) - broken
        ran = oracle.check(session.edit(conftest, changed(project, conftest, new, old)))
        assert failed(ran) <= broken

        # A helper the tests mostly reach through another module: StreamingResponse (in
        # responses.py) iterates a sync iterator with it. The engine re-runs most of the package
        # here (its in-place patch gives up, and the re-created TypeVar `T` counts as a changed
        # value for every module that reads it), so most of the suite runs again.
        concurrency = "starlette/concurrency.py"
        old = "yield await anyio.to_thread.run_sync(_next, as_iterator)"
        new = "yield (await anyio.to_thread.run_sync(_next, as_iterator)) * 2"
        ran = oracle.check(session.edit(concurrency, changed(project, concurrency, old, new)))
        assert failed(ran) - broken and len(ran) < total
        ran = oracle.check(session.edit(concurrency, changed(project, concurrency, new, old)))
        assert failed(ran) <= broken
    finally:
        session.close()
