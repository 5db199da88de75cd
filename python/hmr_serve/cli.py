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

    ws = parser.add_argument_group("websockets")
    ws.add_argument(
        "--ws",
        choices=["auto", "none", "websockets", "websockets-sansio", "wsproto"],
        default="auto",
        help=(
            "WebSocket support for ASGI apps; none serves upgrade requests as plain HTTP. The "
            "uvicorn implementation names select the built-in one (default: %(default)s)"
        ),
    )
    ws.add_argument(
        "--ws-max-size",
        type=int,
        default=16 * 1024 * 1024,
        metavar="BYTES",
        help="largest WebSocket message; bigger ones close with 1009 (default: %(default)s)",
    )
    ws.add_argument(
        "--ws-ping-interval",
        type=float,
        default=20.0,
        metavar="SECONDS",
        help="ping WebSocket clients this often; 0 turns pings off (default: %(default)s)",
    )
    ws.add_argument(
        "--ws-ping-timeout",
        type=float,
        default=20.0,
        metavar="SECONDS",
        help="close with 1011 when a ping is not answered this fast (default: %(default)s)",
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
        "--reload-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help=(
            "abandon (roll back) a reload whose modules run longer than this; 0: never "
            "(default: %(default)s)"
        ),
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

    parser.add_argument("--workers", type=int, help=argparse.SUPPRESS)
    return parser


def parse(argv: list[str] | None = None) -> Config:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.workers not in (None, 1):
        parser.error(
            "--workers is not supported: a development server runs one process so it can "
            "hot-reload it; use a production server (uvicorn, granian, gunicorn) for workers"
        )
    if args.ws_max_size < 1:
        parser.error("--ws-max-size must be at least 1")
    if args.ws_ping_interval < 0 or args.ws_ping_timeout < 0:
        parser.error("--ws-ping-interval and --ws-ping-timeout must not be negative")
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
        reload_timeout=args.reload_timeout,
        reload_strategy=args.reload_strategy,
        log_level=args.log_level,
        access_log=args.access_log,
        timeout_graceful_shutdown=args.timeout_graceful_shutdown,
        ws="none" if args.ws == "none" else "auto",
        ws_max_size=args.ws_max_size,
        ws_ping_interval=args.ws_ping_interval,
        ws_ping_timeout=args.ws_ping_timeout,
    )


def main(argv: list[str] | None = None) -> None:
    from hmr_serve.server import run

    sys.exit(run(parse(argv)))
