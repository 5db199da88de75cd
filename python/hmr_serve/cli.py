"""`hmr-serve MODULE:ATTR [options]`: uvicorn's flags, same meanings. Defaults can also come
from `HMR_SERVE_*` environment variables and `[tool.hmr-serve]` in pyproject.toml (see
config_sources). `hmr-serve COMMAND ...` runs one of the other front-ends (SUBCOMMANDS)."""

from __future__ import annotations

import argparse
import difflib
import importlib
import os
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from hmr_serve import __version__
from hmr_serve.config import LOG_LEVELS, Config
from hmr_serve.config_sources import (
    UNSET,
    SourceError,
    blank_namespace,
    collect,
    merge,
    parse_bool,
    read_env,
    read_pyproject,
)

# uvicorn flags that make no sense for a one-process development server: accepted so a uvicorn
# command line fails with a reason instead of "unrecognized arguments".
UNSUPPORTED = {
    "limit_max_requests": (
        "--limit-max-requests is not supported: exiting after N requests would end the "
        "hot-reload session; it is meant for production workers"
    ),
    "limit_max_requests_jitter": (
        "--limit-max-requests-jitter is not supported (it only staggers --limit-max-requests)"
    ),
    "http2": "--http2 is not supported: HTTP/2 is served by default (--http auto); "
    "--http 2 serves HTTP/2 only",
    "ssl_keyfile_password": (
        "--ssl-keyfile-password is not supported: decrypt the key once "
        "(openssl pkey -in key.pem -out plain.pem) and pass that file"
    ),
    "ssl_ca_certs": "--ssl-ca-certs (client certificates) is not supported",
    "ssl_ciphers": "--ssl-ciphers is not supported: rustls uses its safe TLS 1.2/1.3 defaults",
}
# Values of uvicorn's numeric ssl options that match what rustls does anyway.
_SSL_VERSIONS_OK = {2, 16, 17}  # PROTOCOL_TLS, PROTOCOL_TLS_CLIENT, PROTOCOL_TLS_SERVER
_WORKERS_MESSAGE = (
    "--workers is not supported: a development server runs one process so it can "
    "hot-reload it; use a production server (uvicorn, granian, gunicorn) for workers"
)


@dataclass(frozen=True)
class Subcommand:
    """`hmr-serve NAME [args]`: `entry` ("module:function") is imported only when the command
    runs, called with the remaining arguments, and returns the exit code."""

    summary: str
    entry: str


# `hmr-serve NAME ...` runs NAME's own parser; `hmr-serve --help` lists them in this order.
SUBCOMMANDS: dict[str, Subcommand] = {
    "run": Subcommand(
        "run a script like python, re-running only what a save affects",
        "hmr_serve.run:main",
    ),
    "graph": Subcommand(
        "print the import map (JSON like `tach map`, or Graphviz)",
        "hmr_serve.graph.command:main",
    ),
    "test": Subcommand(
        "run pytest, then re-run only the tests a save affects",
        "hmr_serve.testing.command:main",
    ),
}


class _HelpFormatter(argparse.HelpFormatter):
    """Wraps paragraphs as usual, but keeps a paragraph with indented lines (the list of
    commands) as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        return "\n\n".join(
            "\n".join(indent + line for line in block.splitlines())
            if "\n  " in block
            else super(_HelpFormatter, self)._fill_text(block, width, indent)
            for block in text.split("\n\n")
        )


def _commands_help() -> str:
    width = max(len(name) for name in SUBCOMMANDS) + 2
    lines = [f"  {name.ljust(width)}{command.summary}" for name, command in SUBCOMMANDS.items()]
    return "commands (hmr-serve COMMAND --help for each):\n" + "\n".join(lines)


def _header(value: str) -> tuple[str, str]:
    name, sep, content = value.partition(":")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"{value!r} is not NAME:VALUE")
    return name.strip(), content.strip()


def _static_mount(value: str) -> tuple[str, str]:
    """`--static /url=dir`: the URL prefix and the directory's absolute path."""
    url, sep, directory = value.partition("=")
    if not sep or not url.startswith("/") or not url.strip("/") or not directory:
        raise argparse.ArgumentTypeError(f"{value!r} is not /URL=DIR (e.g. /static=./static)")
    if any(part in ("", ".", "..") for part in url[1:].rstrip("/").split("/")):
        raise argparse.ArgumentTypeError(f"{value!r}: the URL must not hold //, . or ..")
    if not os.path.isdir(directory):
        raise argparse.ArgumentTypeError(f"{value!r}: {directory!r} is not a directory")
    return url, os.path.abspath(directory)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hmr-serve",
        usage="hmr-serve MODULE:ATTR [options]\n       hmr-serve COMMAND [args]",
        description=(
            "Serve an ASGI or WSGI app for development. On a save, only the modules the change "
            "can affect are re-executed, while requests wait a few milliseconds.\n\n"
            + _commands_help()
        ),
        formatter_class=_HelpFormatter,
        epilog=(
            "Every option can also be set as HMR_SERVE_<NAME> (e.g. HMR_SERVE_PORT=9000; "
            "repeatable ones comma-separated) or in pyproject.toml under [tool.hmr-serve] "
            '(e.g. port = 9000, reload-dir = ["src"]). The command line wins over the '
            "environment, which wins over pyproject.toml."
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

    tls = parser.add_argument_group("TLS (https)")
    tls.add_argument("--ssl-certfile", metavar="FILE", help="PEM certificate chain; enables TLS")
    tls.add_argument(
        "--ssl-keyfile", metavar="FILE", help="PEM private key (default: inside --ssl-certfile)"
    )
    tls.add_argument(
        "--ssl-version", type=int, metavar="N", help="accepted for uvicorn: TLS 1.2/1.3 only"
    )
    tls.add_argument(
        "--ssl-cert-reqs",
        type=int,
        metavar="N",
        help="accepted for uvicorn: 0 only (no client certificates)",
    )
    tls.add_argument("--ssl-keyfile-password", metavar="TEXT", help="not supported")
    tls.add_argument("--ssl-ca-certs", metavar="FILE", help="not supported")
    tls.add_argument("--ssl-ciphers", metavar="TEXT", help="not supported")

    app = parser.add_argument_group("application")
    app.add_argument(
        "--app-dir", default=".", help="put this directory on sys.path (default: current directory)"
    )
    app.add_argument(
        "--factory", action="store_true", help="ATTR is a callable that returns the app"
    )
    app.add_argument(
        "--interface",
        choices=["auto", "asgi", "asgi3", "asgi2", "wsgi"],
        default="auto",
        help="app interface; asgi3 is asgi, asgi2 is not supported (default: %(default)s)",
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
        "--loop",
        choices=["auto", "asyncio", "uvloop"],
        default="auto",
        help="event loop; auto takes uvloop when installed (default: %(default)s)",
    )
    app.add_argument(
        "--reset-contextvars",
        action="store_true",
        help="run each ASGI request in a fresh contextvars.Context (hides lifespan context)",
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
        "--ws-max-queue",
        type=int,
        default=32,
        metavar="N",
        help=(
            "WebSocket messages read ahead of the app; then reading stops until it receives "
            "(default: %(default)s)"
        ),
    )
    ws.add_argument(
        "--ws-per-message-deflate",
        type=parse_bool,
        nargs="?",
        const=True,
        default=True,
        metavar="BOOL",
        help=(
            "compress WebSocket messages when the client offers permessage-deflate; "
            "false turns it off (default: %(default)s)"
        ),
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

    http = parser.add_argument_group("HTTP")
    http.add_argument(
        "--http",
        choices=["auto", "1", "2", "h11", "httptools"],
        default="auto",
        help="HTTP versions served (by hyper): auto = HTTP/1.1 and HTTP/2 (h2c with prior "
        "knowledge, h2 by ALPN over TLS), 1 = HTTP/1.1 only, 2 = HTTP/2 only; uvicorn's h11 "
        "and httptools mean 1 (default: %(default)s)",
    )
    http.add_argument(
        "--server-header",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="send `server: hmr-serve` (default: on)",
    )
    http.add_argument(
        "--date-header",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="send a Date header (default: on)",
    )
    http.add_argument(
        "--header",
        action="append",
        type=_header,
        default=[],
        metavar="NAME:VALUE",
        help="add this header to every response, unless the app sets it (repeatable)",
    )
    http.add_argument(
        "--proxy-headers",
        action=argparse.BooleanOptionalAction,
        default=True,
        help=(
            "from a trusted proxy, take the client address from X-Forwarded-For and the scheme "
            "from X-Forwarded-Proto (default: on)"
        ),
    )
    http.add_argument(
        "--forwarded-allow-ips",
        metavar="LIST",
        default=None,
        help=(
            "comma-separated IPs, networks (10.0.0.0/8) or literals (unix: for Unix sockets) "
            "to trust with proxy headers; * trusts all (default: $FORWARDED_ALLOW_IPS or "
            "127.0.0.1,::1)"
        ),
    )

    http.add_argument(
        "--static",
        action="append",
        type=_static_mount,
        default=[],
        metavar="/URL=DIR",
        help=(
            "serve the files of DIR under /URL from Rust, without the app and without waiting "
            "for a reload; editing them refreshes open pages (repeatable)"
        ),
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
        "--reload-delay",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="wait this long after a change before reloading (default: %(default)s)",
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

    logs = parser.add_argument_group("logging")
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
        "--use-colors",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="coloured log lines (default: when stderr is a terminal)",
    )
    logs.add_argument(
        "--log-config",
        metavar="FILE",
        help=(
            "logging configuration: .json or .yaml (dictConfig) or .ini (fileConfig), as "
            "uvicorn; loggers are hmr_serve and hmr_serve.access"
        ),
    )

    shutdown = parser.add_argument_group("shutdown")
    shutdown.add_argument(
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

    browser = parser.add_argument_group("browser")
    browser.add_argument(
        "--error-page",
        action=argparse.BooleanOptionalAction,
        default=True,
        help=(
            "show exceptions and failed reloads as an overlay page (default: on); for "
            "loopback clients it replaces the app's own 500 answer (Starlette/FastAPI "
            "exception handlers, Flask's errorhandler(500)), as Flask debug and Django DEBUG "
            "do; --no-error-page turns it off and leaves 500s to the app"
        ),
    )
    browser.add_argument(
        "--show-errors-to-all",
        action="store_true",
        help="show tracebacks and live-reload events to non-loopback clients too",
    )
    browser.add_argument(
        "--livereload",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="refresh open HTML pages after each reload (default: on)",
    )

    prod = parser.add_argument_group(
        "production-only (uvicorn flags a one-process development server rejects or ignores)"
    )
    prod.add_argument("--workers", type=int, metavar="N", help="only 1 (one process)")
    prod.add_argument(
        "--timeout-worker-healthcheck",
        type=float,
        metavar="SECONDS",
        help="accepted and ignored: there are no worker processes",
    )
    prod.add_argument("--limit-max-requests", type=int, metavar="N", help="not supported")
    prod.add_argument("--limit-max-requests-jitter", type=int, metavar="N", help="not supported")
    prod.add_argument("--http2", action="store_true", default=None, help="use --http 2")
    return parser


def _check_supported(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.workers not in (None, 1):
        parser.error(_WORKERS_MESSAGE)
    for dest, message in UNSUPPORTED.items():
        if getattr(args, dest) not in (None, False):
            parser.error(message)
    if args.ssl_version is not None and args.ssl_version not in _SSL_VERSIONS_OK:
        parser.error(
            f"--ssl-version {args.ssl_version} is not supported: rustls negotiates TLS 1.2 or 1.3"
        )
    if args.ssl_cert_reqs not in (None, 0):
        parser.error("--ssl-cert-reqs other than 0 (client certificates) is not supported")
    if args.interface == "asgi2":
        parser.error("--interface asgi2 is not supported: wrap the app as an ASGI 3 callable")
    if args.ssl_keyfile and not args.ssl_certfile:
        parser.error("--ssl-keyfile needs --ssl-certfile")
    if args.ssl_certfile and args.uds:
        parser.error("--ssl-certfile works on TCP only, not with --uds")


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


def _check_app_argument(parser: argparse.ArgumentParser, argv: Sequence[str]) -> None:
    """Clear errors for a first argument that cannot be MODULE:ATTR (which always has a colon)
    but looks like something else: a script path, or a misspelt command."""
    first = argv[0] if argv else ""
    if not first or first.startswith("-") or ":" in first:
        return
    if first.endswith(".py"):
        parser.error(_script_path_message(argv))
    close = difflib.get_close_matches(first.lower(), list(SUBCOMMANDS), n=1, cutoff=0.75)
    if close:
        parser.error(
            f'"{first}" is neither MODULE:ATTR (e.g. pkg.main:app) nor a command; '
            f'did you mean "hmr-serve {close[0]}"?'
        )


def _script_path_message(argv: Sequence[str]) -> str:
    path = argv[0]
    module = os.path.normpath(path)[: -len(".py")].replace(os.sep, ".")
    if not all(part.isidentifier() for part in module.split(".")):
        module = "pkg.main"
    return (
        f'"{path}" is a script: `hmr-serve run {shlex.join(argv)}` runs it and re-runs it on '
        f"saves. Serving takes MODULE:ATTR, the module that holds the app and the app's name in "
        f"it, e.g. hmr-serve {module}:app"
    )


def parse(argv: list[str] | None = None) -> Config:
    parser = build_parser()
    _check_app_argument(parser, sys.argv[1:] if argv is None else argv)
    given = parser.parse_args(argv, namespace=blank_namespace(parser))
    try:
        defaults = collect(parser, read_pyproject(), read_env(os.environ))
    except SourceError as exc:
        parser.error(str(exc))
    args = merge(parser, given, defaults)
    _check_supported(parser, args)
    forwarded = args.forwarded_allow_ips
    if forwarded is None:
        forwarded = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
    prefixes = [url.rstrip("/") for url, _ in args.static]
    if len(set(prefixes)) < len(prefixes):
        parser.error("--static: the same URL is mounted twice")
    if args.ws_max_size < 1:
        parser.error("--ws-max-size must be at least 1")
    if args.ws_max_queue < 1:
        parser.error("--ws-max-queue must be at least 1")
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
        interface="asgi" if args.interface == "asgi3" else args.interface,
        env_file=args.env_file,
        root_path=args.root_path,
        lifespan=args.lifespan,
        loop=args.loop,
        reset_contextvars=args.reset_contextvars,
        wsgi_threads=args.wsgi_threads,
        server_header=args.server_header,
        date_header=args.date_header,
        http="1" if args.http in ("h11", "httptools") else args.http,
        headers=list(args.header),
        statics=list(args.static),
        proxy_headers=args.proxy_headers,
        forwarded_allow_ips=forwarded,
        ssl_certfile=args.ssl_certfile,
        ssl_keyfile=args.ssl_keyfile,
        reload=args.reload,
        reload_dirs=args.reload_dir,
        reload_includes=args.reload_include,
        reload_excludes=args.reload_exclude,
        reload_delay=args.reload_delay,
        reload_drain_timeout=args.reload_drain_timeout,
        reload_timeout=args.reload_timeout,
        reload_strategy=args.reload_strategy,
        log_level=args.log_level,
        log_level_given=given.log_level is not UNSET or "log_level" in defaults,
        access_log=args.access_log,
        use_colors=args.use_colors,
        log_config=args.log_config,
        timeout_graceful_shutdown=args.timeout_graceful_shutdown,
        ws="none" if args.ws == "none" else "auto",
        ws_max_size=args.ws_max_size,
        ws_max_queue=args.ws_max_queue,
        ws_ping_interval=args.ws_ping_interval,
        ws_ping_timeout=args.ws_ping_timeout,
        ws_per_message_deflate=args.ws_per_message_deflate,
        error_page=args.error_page,
        show_errors_to_all=args.show_errors_to_all,
        livereload=args.livereload,
        limit_max_body=args.limit_max_body,
        limit_concurrency=args.limit_concurrency,
        timeout_keep_alive=args.timeout_keep_alive,
        timeout_header_read=args.timeout_header_read,
        h11_max_incomplete_event_size=args.h11_max_incomplete_event_size,
    )


def run_subcommand(name: str, argv: Sequence[str]) -> int:
    module, _, function = SUBCOMMANDS[name].entry.partition(":")
    return getattr(importlib.import_module(module), function)(list(argv))


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] in SUBCOMMANDS:
        sys.exit(run_subcommand(args[0], args[1:]))
    from hmr_serve.server import run

    sys.exit(run(parse(args)))
