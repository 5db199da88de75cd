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
    log_level_given: bool = False  # by the user: then it also overrides --log-config's levels
    access_log: bool = True
    use_colors: bool | None = None  # None: when stderr is a terminal
    log_config: str | None = None
    root_path: str = ""
    lifespan: str = "auto"
    loop: str = "auto"
    reset_contextvars: bool = False
    server_header: bool = True
    date_header: bool = True
    http: str = "auto"  # "1", "2" or "auto" (both)
    headers: list[tuple[str, str]] = field(default_factory=list)
    statics: list[tuple[str, str]] = field(default_factory=list)  # --static (URL, abs dir)
    proxy_headers: bool = True
    forwarded_allow_ips: str = "127.0.0.1,::1"
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    reload: bool = True
    reload_dirs: list[str] = field(default_factory=list)
    reload_includes: list[str] = field(default_factory=list)
    reload_excludes: list[str] = field(default_factory=list)
    reload_delay: float = 0.0
    reload_drain_timeout: float = 1.0
    reload_timeout: float = 10.0  # seconds a reload's modules may run; 0: no limit
    reload_strategy: str = "hot"  # "restart": every change to a loaded module restarts
    timeout_graceful_shutdown: float | None = 10.0
    wsgi_threads: int = 32
    backlog: int = 2048
    ws: str = "auto"  # "none": upgrade requests reach the app as plain HTTP
    ws_max_size: int = 16 * 1024 * 1024
    ws_max_queue: int = 32
    ws_ping_interval: float | None = 20.0
    ws_ping_timeout: float | None = 20.0
    ws_per_message_deflate: bool = True
    error_page: bool = True  # the overlay instead of a plain 500, and on failed reloads
    show_errors_to_all: bool = False  # tracebacks for non-loopback clients too
    livereload: bool = True
    # HTTP input limits (see docs/ARCHITECTURE.md, "Input limits").
    limit_max_body: int | None = 100 * 1024 * 1024  # bytes; None: unlimited
    limit_concurrency: int | None = None
    timeout_keep_alive: float = 5.0
    timeout_header_read: float = 10.0
    h11_max_incomplete_event_size: int = 64 * 1024  # bytes of request headers

    @property
    def log_level_number(self) -> int:
        return LOG_LEVELS[self.log_level]

    # `_core.Server.start` reads its settings from this object: the fields by name, and the
    # properties below.

    @property
    def ws_enabled(self) -> bool:
        return self.ws != "none"

    @property
    def trusted_proxies(self) -> str | None:
        """The peers whose forwarded headers count; None: `--no-proxy-headers`."""
        return self.forwarded_allow_ips if self.proxy_headers else None

    @property
    def limits(self) -> dict[str, int | float | None]:
        """The HTTP input limits, keyed as the server's `Limits` are."""
        return {
            "max_body": self.limit_max_body,
            "max_head": self.h11_max_incomplete_event_size,
            "concurrency": self.limit_concurrency,
            "keep_alive": self.timeout_keep_alive,
            "header_timeout": self.timeout_header_read,
        }
