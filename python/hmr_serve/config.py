"""Everything the user chose, in one object the rest of the package reads."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

LOG_LEVELS = {
    "critical": logging.CRITICAL,
    "error": logging.ERROR,
    "warning": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
    "trace": 5,
}


@dataclass
class Config:
    app: str
    host: str = "127.0.0.1"
    port: int = 8000
    uds: str | None = None
    fd: int | None = None
    app_dir: str = "."
    factory: bool = False
    interface: str = "auto"
    env_file: str | None = None
    log_level: str = "info"
    access_log: bool = True
    root_path: str = ""
    lifespan: str = "auto"
    reload: bool = True
    reload_dirs: list[str] = field(default_factory=list)
    reload_includes: list[str] = field(default_factory=list)
    reload_excludes: list[str] = field(default_factory=list)
    reload_drain_timeout: float = 1.0
    reload_strategy: str = "hot"  # "restart": every change to a loaded module restarts
    timeout_graceful_shutdown: float | None = 10.0
    wsgi_threads: int = 32
    backlog: int = 2048
    error_page: bool = True  # the overlay instead of a plain 500, and on failed reloads
    show_errors_to_all: bool = False  # tracebacks for non-loopback clients too
    livereload: bool = True

    @property
    def log_level_number(self) -> int:
        return LOG_LEVELS[self.log_level]
