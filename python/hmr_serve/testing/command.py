"""`hmr-serve test [options] [pytest args]` (also `python -m hmr_serve.testing`): runs pytest
once in this interpreter, then watches. The import tracker is installed before pytest imports
anything, so every first-party module, test module and conftest is known to the reload engine.

A change the session cannot take in place (a pytest hook edited, a new conftest, a Django
model: what needs a fresh interpreter) ends the session and starts a new process with the same
command line."""

from __future__ import annotations

import argparse
import os
import sys

from hmr_serve import __version__, _core, integrations
from hmr_serve.config import LOG_LEVELS
from hmr_serve.logs import configure
from hmr_serve.reload.data_files import DataFiles
from hmr_serve.reload.tracker import ImportTracker

USAGE = """\
usage: hmr-serve test [options] [pytest arguments]

Runs pytest in this interpreter, then watches: on every save the changed modules are
re-executed in place and only the tests the change affects run again. Session and module
fixtures stay set up between runs. Keys (when stdin is a terminal): a all, f failed,
Enter again, q quit.

options (every other argument goes to pytest; see pytest --help):
  --reload-dir DIR          watch this directory too (repeatable; the current one always is)
  --reload-include GLOB     watch files matching GLOB too, besides *.py (repeatable)
  --reload-exclude GLOB     ignore files matching GLOB (repeatable)
  --reload-timeout SECONDS  roll back a reload whose modules run longer (default 10; 0: never)
  --no-keys                 do not read keys from the terminal
  --hmr-log-level LEVEL     hmr-serve's own log: debug says why each module re-ran (info)
  --version                 print hmr-serve's version
"""

_REPEATED = {"--reload-dir": "reload_dirs", "--reload-include": "reload_includes"}
_REPEATED["--reload-exclude"] = "reload_excludes"


def parse(argv: list[str]) -> tuple[argparse.Namespace, list[str]] | None:
    """hmr-serve's own options (wherever they appear: pytest has none by these names) and the
    arguments for pytest; None after --help or --version."""
    options = argparse.Namespace(
        reload_dirs=[],
        reload_includes=[],
        reload_excludes=[],
        reload_timeout=10.0,
        no_keys=False,
        log_level="info",
    )
    rest: list[str] = []
    args = list(argv)
    while args:
        arg = args.pop(0)
        name, eq, value = arg.partition("=")
        if arg in ("-h", "--help"):
            sys.stdout.write(USAGE)
            return None
        if arg == "--version":
            sys.stdout.write(f"hmr-serve {__version__}\n")
            return None
        if arg == "--":
            rest += args
            break
        if arg == "--no-keys":
            options.no_keys = True
        elif name in _REPEATED or name in ("--reload-timeout", "--hmr-log-level"):
            if not eq:
                if not args:
                    raise SystemExit(f"hmr-serve test: {name} needs a value")
                value = args.pop(0)
            if name == "--hmr-log-level":
                if value not in LOG_LEVELS:
                    choices = ", ".join(LOG_LEVELS)
                    raise SystemExit(f"hmr-serve test: {name}: one of {choices}, not {value!r}")
                options.log_level = value
            elif name == "--reload-timeout":
                try:
                    options.reload_timeout = float(value)
                except ValueError:
                    raise SystemExit(f"hmr-serve test: {name}: not a number: {value!r}") from None
            else:
                getattr(options, _REPEATED[name]).append(value)
        else:
            rest.append(arg)
    return options, rest


def _version(text: str) -> tuple[int, ...]:
    parts = []
    for part in text.split(".")[:2]:
        digits = "".join(c for c in part if c.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def main(argv: list[str]) -> int:
    parsed = parse(argv)
    if parsed is None:
        return 0
    options, pytest_args = parsed
    configure(LOG_LEVELS[options.log_level])
    roots = [os.getcwd()]
    roots += [os.path.abspath(d) for d in options.reload_dirs if os.path.isdir(d)]
    tracker = ImportTracker(_core.ReloadEngine(), roots)
    tracker.on_first_import = integrations.module_executed
    tracker.install()
    data_files = DataFiles(tracker.engine, tracker)
    data_files.install()

    import pytest

    if _version(pytest.__version__) < (9, 1):
        # The session keeps fixtures alive by the collection nodes they belong to, which is
        # how pytest registers them from 9.1 on.
        sys.stderr.write(f"hmr-serve test needs pytest 9.1 or newer (found {pytest.__version__})\n")
        return 4
    from hmr_serve.testing.plugin import TestModePlugin

    plugin = TestModePlugin(tracker, data_files, options)
    with data_files.importing():  # data files that modules read while they import are theirs
        code = pytest.main(pytest_args, plugins=[plugin])
    if plugin.restart_reason is not None:
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(sys.executable, [sys.executable, "-m", "hmr_serve.testing", *argv])
    return int(code)
