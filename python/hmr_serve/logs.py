"""Logging in uvicorn's format (`INFO:     message`), shared with the lines Rust writes."""

from __future__ import annotations

import logging
import sys

from hmr_serve import _core

logger = logging.getLogger("hmr_serve")

TRACE = 5
logging.addLevelName(TRACE, "TRACE")


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        prefix = f"{record.levelname}:".ljust(10)
        return prefix + super().format(record)


def configure(level: int) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter("%(message)s"))
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False
    _core.set_log_level(level)


def log_exception(exc: BaseException, message: str = "Exception in application") -> None:
    logger.error(message, exc_info=(type(exc), exc, exc.__traceback__))
