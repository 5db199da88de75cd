"""Logging in uvicorn's format (`INFO:     message`, coloured on a terminal), shared with the
lines Rust writes; `--log-config` as uvicorn reads it."""

from __future__ import annotations

import logging
import os
import sys
from types import TracebackType
from typing import Any

from hmr_serve import _core

logger = logging.getLogger("hmr_serve")
access_logger = logging.getLogger("hmr_serve.access")

TRACE = 5
logging.addLevelName(TRACE, "TRACE")

_COLORS = {
    "TRACE": "34",
    "DEBUG": "36",
    "INFO": "32",
    "WARNING": "33",
    "ERROR": "31",
    "CRITICAL": "91",
}
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


class _Formatter(logging.Formatter):
    def __init__(self, fmt: str, use_colors: bool = False) -> None:
        super().__init__(fmt)
        self.use_colors = use_colors

    def format(self, record: logging.LogRecord) -> str:
        name = record.levelname
        pad = " " * max(1, 9 - len(name))
        if self.use_colors and name in _COLORS:
            name = f"\x1b[{_COLORS[name]}m{name}\x1b[0m"
        return f"{name}:{pad}" + super().format(record)


def should_color(use_colors: bool | None) -> bool:
    if use_colors is not None:
        return use_colors
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def configure(level: int, use_colors: bool | None = None) -> None:
    colors = should_color(use_colors)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter("%(message)s", colors))
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False
    _core.set_log_level(level)
    _core.set_log_colors(colors)


class LogConfigError(Exception):
    pass


def apply_log_config(path: str, level: int | None) -> None:
    """Like uvicorn: .json and .yaml/.yml go to dictConfig, anything else to fileConfig. From
    then on Rust's lines (access lines on `hmr_serve.access`) go through `logging` too. `level`
    (an explicit --log-level) overrides the file's level for hmr-serve's loggers."""
    import logging.config

    if not os.path.isfile(path):
        raise LogConfigError(f'Log config file "{path}" does not exist.')
    try:
        if path.endswith(".json"):
            import json

            with open(path, encoding="utf-8") as file:
                logging.config.dictConfig(json.load(file))
        elif path.endswith((".yaml", ".yml")):
            try:
                import yaml
            except ImportError:
                raise LogConfigError(
                    f"{path}: a YAML log config needs PyYAML (pip install pyyaml)"
                ) from None
            with open(path, encoding="utf-8") as file:
                logging.config.dictConfig(yaml.safe_load(file))
        else:
            logging.config.fileConfig(path, disable_existing_loggers=False)
    except LogConfigError:
        raise
    except Exception as exc:
        raise LogConfigError(
            f"cannot apply log config {path}: {type(exc).__name__}: {exc}"
        ) from None
    if level is not None:
        logger.setLevel(level)
        access_logger.setLevel(level)
    _core.set_log_level(min(logger.getEffectiveLevel(), access_logger.getEffectiveLevel()))
    _core.log_to_python(_emit_from_rust)


def _emit_from_rust(levelno: int, name: str, msg: str, args: tuple[Any, ...]) -> None:
    target = logging.getLogger(name)
    if target.isEnabledFor(levelno):
        target.log(levelno, msg, *args)


def error_location(exc: BaseException) -> str | None:
    """`app/routes.py:12`: where the error is in the user's code (a SyntaxError's own position,
    else the innermost frame outside hmr-serve and importlib)."""
    if isinstance(exc, SyntaxError) and exc.filename and exc.lineno:
        return f"{display_path(exc.filename)}:{exc.lineno}"
    tb: TracebackType | None = exc.__traceback__
    where = None
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if not (filename.startswith("<") or filename.startswith(_PACKAGE_DIR)):
            where = f"{display_path(filename)}:{tb.tb_lineno}"
        tb = tb.tb_next
    return where


def display_path(path: str) -> str:
    """`path` relative to the current directory when it lies below it, else as it is."""
    try:
        relative = os.path.relpath(path)
    except ValueError:
        return path
    return path if relative.startswith("..") else relative


def log_exception(exc: BaseException, message: str = "Exception in application") -> None:
    logger.error(message, exc_info=(type(exc), exc, exc.__traceback__))
