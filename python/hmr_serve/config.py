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
    # HTTP input limits (see docs/ARCHITECTURE.md, "Input limits").
    limit_max_body: int | None = 100 * 1024 * 1024  # bytes; None: unlimited
    limit_concurrency: int | None = None
    timeout_keep_alive: float = 5.0
    timeout_header_read: float = 10.0
    h11_max_incomplete_event_size: int = 64 * 1024  # bytes of request headers

    @property
    def log_level_number(self) -> int:
        return LOG_LEVELS[self.log_level]

    @property
    def limits(self) -> dict[str, int | float | None]:
        """What `_core.Server.start(limits=...)` takes."""
        return {
            "max_body": self.limit_max_body,
            "max_head": self.h11_max_incomplete_event_size,
            "concurrency": self.limit_concurrency,
            "keep_alive": self.timeout_keep_alive,
            "header_timeout": self.timeout_header_read,
        }
