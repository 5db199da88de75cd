"""`hmr-serve MODULE:ATTR [options]`: uvicorn's flags, same meanings."""

from __future__ import annotations

import argparse
import sys

from hmr_serve import __version__
from hmr_serve.config import LOG_LEVELS, Config


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hmr-serve",
        description=(
            "Serve an ASGI or WSGI app for development. On a save, only the modules the change "
            "can affect are re-executed, while requests wait a few milliseconds."
        ),
    )
    parser.add_argument("app", metavar="MODULE:ATTR", help="the app, e.g. pkg.main:app")
    parser.add_argument("--version", action="version", version=f"hmr-serve {__version__}")

    net = parser.add_argument_group("network")
    net.add_argument("--host", default="127.0.0.1", help="bind address (default: %(default)s)")
    net.add_argument(
        "--port", type=int, default=8000, help="port; 0 picks a free one (default: %(default)s)"
    )
    net.add_argument("--uds", metavar="PATH", help="bind a Unix domain socket instead of TCP")
    net.add_argument(
        "--fd",
        type=int,
        metavar="N",
        help="serve on this already open socket file descriptor (TCP or Unix) instead of binding",
    )
    net.add_argument(
        "--backlog", type=int, default=2048, help="listen backlog (default: %(default)s)"
    )

    app = parser.add_argument_group("application")
    app.add_argument(
        "--app-dir", default=".", help="put this directory on sys.path (default: current directory)"
    )
    app.add_argument(
        "--factory", action="store_true", help="ATTR is a callable that returns the app"
    )
    app.add_argument(
        "--interface",
        choices=["auto", "asgi", "wsgi"],
        default="auto",
        help="app interface (default: %(default)s, detected)",
    )
    app.add_argument(
        "--env-file", metavar="FILE", help="load environment variables from this .env file"
    )
    app.add_argument(
        "--root-path",
        default="",
        help="mount path behind a proxy (ASGI root_path, WSGI SCRIPT_NAME)",
    )
    app.add_argument(
        "--lifespan",
        choices=["auto", "on", "off"],
        default="auto",
        help="ASGI lifespan handling (default: %(default)s)",
    )
    app.add_argument(
        "--wsgi-threads",
        type=int,
        default=32,
        help="WSGI requests served at once (default: %(default)s)",
    )

    reload = parser.add_argument_group("reload")
    reload.add_argument(
        "--reload",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="hot-reload changed modules (default: on)",
    )
    reload.add_argument(
        "--reload-dir",
        action="append",
        default=[],
        metavar="DIR",
        help="watch this directory too (repeatable)",
    )
    reload.add_argument(
        "--reload-include",
        action="append",
        default=[],
        metavar="GLOB",
        help="also watch files matching this glob (repeatable)",
    )
    reload.add_argument(
        "--reload-exclude",
        action="append",
        default=[],
        metavar="GLOB",
        help="ignore files matching this glob (repeatable)",
    )
    reload.add_argument(
        "--reload-drain-timeout",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="on reload, wait this long for running requests (default: %(default)s)",
    )
    reload.add_argument(
        "--reload-strategy",
        choices=["hot", "restart"],
        default="hot",
        help=(
            "hot: re-execute the changed modules; restart: restart the process on every change "
            "to a loaded module, keeping the socket (default: %(default)s)"
        ),
    )

    logs = parser.add_argument_group("logging and shutdown")
    logs.add_argument(
        "--log-level", choices=list(LOG_LEVELS), default="info", help="(default: %(default)s)"
    )
    logs.add_argument(
        "--access-log",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="one line per request (default: on)",
    )
    logs.add_argument(
        "--timeout-graceful-shutdown",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="on shutdown, wait this long for open requests (default: %(default)s)",
    )

    # HTTP input limits: one block, kept together.
    limits = parser.add_argument_group("HTTP input limits")
    limits.add_argument(
        "--limit-max-body",
        type=_max_body,
        default=100 * 1024 * 1024,
        metavar="BYTES",
        help="largest request body; bigger ones get 413; 0: unlimited (default: 100 MiB)",
    )
    limits.add_argument(
        "--limit-concurrency",
        type=_positive_int,
        metavar="N",
        help="connections served at once; requests on more get 503 (default: unlimited)",
    )
    limits.add_argument(
        "--timeout-keep-alive",
        type=_positive_float,
        default=5.0,
        metavar="SECONDS",
        help="close idle keep-alive connections after this long (default: %(default)s)",
    )
    limits.add_argument(
        "--timeout-header-read",
        type=_positive_float,
        default=10.0,
        metavar="SECONDS",
        help="close connections that take longer to send a request head (default: %(default)s)",
    )
    limits.add_argument(
        "--h11-max-incomplete-event-size",
        type=_positive_int,
        default=64 * 1024,
        metavar="BYTES",
        help="largest request header section; bigger ones get 431 (default: 64 KiB)",
    )

    parser.add_argument("--workers", type=int, help=argparse.SUPPRESS)
    return parser


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text}")
    return value


def _max_body(text: str) -> int | None:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 (unlimited) or more, got {value}")
    return value or None


def parse(argv: list[str] | None = None) -> Config:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.workers not in (None, 1):
        parser.error(
            "--workers is not supported: a development server runs one process so it can "
            "hot-reload it; use a production server (uvicorn, granian, gunicorn) for workers"
        )
    return Config(
        app=args.app,
        host=args.host,
        port=args.port,
        uds=args.uds,
        fd=args.fd,
        backlog=args.backlog,
        app_dir=args.app_dir,
        factory=args.factory,
        interface=args.interface,
        env_file=args.env_file,
        root_path=args.root_path,
        lifespan=args.lifespan,
        wsgi_threads=args.wsgi_threads,
        reload=args.reload,
        reload_dirs=args.reload_dir,
        reload_includes=args.reload_include,
        reload_excludes=args.reload_exclude,
        reload_drain_timeout=args.reload_drain_timeout,
        reload_strategy=args.reload_strategy,
        log_level=args.log_level,
        access_log=args.access_log,
        timeout_graceful_shutdown=args.timeout_graceful_shutdown,
        limit_max_body=args.limit_max_body,
        limit_concurrency=args.limit_concurrency,
        timeout_keep_alive=args.timeout_keep_alive,
        timeout_header_read=args.timeout_header_read,
        h11_max_incomplete_event_size=args.h11_max_incomplete_event_size,
    )


def main(argv: list[str] | None = None) -> None:
    from hmr_serve.server import run

    sys.exit(run(parse(argv)))
