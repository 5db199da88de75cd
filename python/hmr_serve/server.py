"""Runs the server: load the app, bind, lifespan startup, serve until a signal, shut down."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from typing import Any

from hmr_serve import _core
from hmr_serve.asgi import Dispatcher, resolve
from hmr_serve.config import Config
from hmr_serve.lifespan import Lifespan
from hmr_serve.loading import AppLoadError, detect_interface, load_app, prepend_app_dir
from hmr_serve.logs import configure, log_exception, logger

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_STARTUP_FAILED = 3


def _new_event_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def _load_env_file(path: str) -> None:
    from dotenv import load_dotenv

    if not os.path.isfile(path):
        raise AppLoadError(f'Environment file "{path}" does not exist.')
    load_dotenv(path, override=True)


def load(config: Config) -> tuple[Any, str]:
    """The app object and its interface ("asgi" or "wsgi")."""
    if config.env_file:
        _load_env_file(config.env_file)
    prepend_app_dir(config.app_dir)
    app = load_app(config.app, config.factory)
    if config.interface != "auto":
        return app, config.interface
    interface = detect_interface(app)
    if interface is None:
        raise AppLoadError(
            f'Cannot tell whether "{config.app}" is an ASGI or a WSGI app; '
            "pass --interface asgi or --interface wsgi."
        )
    return app, interface


def run(config: Config) -> int:
    configure(config.log_level_number)
    try:
        app, interface = load(config)
    except AppLoadError as exc:
        if exc.details:
            sys.stderr.write(exc.details)
        logger.error("Error loading app %r. %s", config.app, exc.message)
        return EXIT_ERROR
    loop = _new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(_serve(config, app, interface, loop))
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


async def _serve(config: Config, app: Any, interface: str, loop: asyncio.AbstractEventLoop) -> int:
    try:
        server = _core.Server(
            host=config.host, port=config.port, uds=config.uds, backlog=config.backlog
        )
    except OSError as exc:
        logger.error("%s", exc.strerror or exc)
        return EXIT_ERROR

    lifespan = None
    if interface == "asgi" and config.lifespan != "off":
        lifespan = Lifespan(app, config.lifespan)
        if not await lifespan.startup():
            server.close()
            return EXIT_STARTUP_FAILED

    dispatcher = Dispatcher(loop)
    server.start(
        app,
        interface,
        log_exception=log_exception,
        event_loop=loop,
        dispatch=dispatcher.dispatch,
        resolve=resolve,
        state=lifespan.state if lifespan else None,
        root_path=config.root_path,
        access_log=config.access_log,
        wsgi_threads=config.wsgi_threads,
        graceful_timeout=config.timeout_graceful_shutdown,
    )
    logger.info("serving %s (%s, press CTRL+C to quit)", server.url, interface.upper())

    stop = asyncio.Event()
    signals_seen = 0

    def on_signal() -> None:
        nonlocal signals_seen
        signals_seen += 1
        if signals_seen > 1:
            logger.warning("Forced exit.")
            os._exit(EXIT_ERROR)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)

    await stop.wait()
    logger.info("Shutting down")
    server.shutdown()
    # Waiting happens on a worker thread: in-flight ASGI requests still need this loop.
    await loop.run_in_executor(None, server.wait)
    await dispatcher.cancel_all()
    if lifespan is not None:
        await lifespan.shutdown()
    server.close()
    logger.info("Finished server process [%d]", os.getpid())
    return EXIT_OK
