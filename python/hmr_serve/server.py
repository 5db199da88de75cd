"""Runs the server: load the app, bind, lifespan startup, serve until a signal, shut down."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from typing import Any

from hmr_serve import _core, integrations
from hmr_serve.asgi import Dispatcher, resolve
from hmr_serve.config import Config
from hmr_serve.lifespan import Lifespan
from hmr_serve.loading import AppLoadError, detect_interface, load_app, prepend_app_dir
from hmr_serve.logs import configure, log_exception, logger
from hmr_serve.reload.reloader import AppTarget, Reloader
from hmr_serve.reload.tracker import ImportTracker

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


def watch_roots(config: Config) -> list[str]:
    roots = [os.path.abspath(config.app_dir)]
    roots += [os.path.abspath(d) for d in config.reload_dirs if os.path.abspath(d) not in roots]
    return roots


def run(config: Config) -> int:
    configure(config.log_level_number)
    tracker = None
    if config.reload:
        # Installed before the app is imported, so every first-party import is seen.
        tracker = ImportTracker(_core.ReloadEngine(), watch_roots(config))
        tracker.install()
    try:
        app, interface = load(config)
    except AppLoadError as exc:
        if exc.details:
            sys.stderr.write(exc.details)
        logger.error("Error loading app %r. %s", config.app, exc.message)
        return EXIT_ERROR
    if tracker is not None:
        tracker.sweep()
    loop = _new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(_serve(config, app, interface, loop, tracker))
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


def _start_reloading(
    config: Config,
    server: Any,
    tracker: ImportTracker,
    app: Any,
    loop: asyncio.AbstractEventLoop,
) -> Reloader:
    engine = tracker.engine
    reloader = Reloader(
        server,
        engine,
        tracker,
        AppTarget(config.app, config.factory, app),
        loop,
        config.reload_drain_timeout,
    )
    roots = watch_roots(config)
    extra = [pattern for i in integrations.active() for pattern in i.watch_patterns()]
    includes = ["*.py", *extra, *config.reload_includes]
    try:
        engine.watch(
            roots, includes, config.reload_excludes, loop.call_soon_threadsafe, reloader.on_change
        )
    except OSError as exc:
        logger.error("cannot watch for changes: %s", exc)
        raise
    logger.info("watching for changes in %s", ", ".join(roots))
    return reloader


def _initial_scan(engine: Any) -> None:
    started = time.perf_counter()
    parsed, errors = engine.scan()
    logger.debug(
        "static import pass: %d files in %.1f ms", parsed, (time.perf_counter() - started) * 1000
    )
    for name, error in errors:
        logger.debug("static import pass could not parse %s: %s", name, error)
    for importer, imported in engine.static_only_edges():
        logger.debug("static import pass adds %s -> %s", importer, imported)


async def _serve(
    config: Config,
    app: Any,
    interface: str,
    loop: asyncio.AbstractEventLoop,
    tracker: ImportTracker | None,
) -> int:
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
    if tracker is not None:
        try:
            _start_reloading(config, server, tracker, app, loop)
        except OSError:
            server.shutdown()
            server.close()
            return EXIT_ERROR
        # The static pass runs beside serving, not before it: start-up stays as fast as without.
        loop.run_in_executor(None, _initial_scan, tracker.engine)
    logger.info("serving %s (%s, press CTRL+C to quit)", server.url, interface.upper())

    await stop.wait()
    logger.info("Shutting down")
    if tracker is not None:
        tracker.engine.stop()
    server.shutdown()
    # Waiting happens on a worker thread: in-flight ASGI requests still need this loop.
    await loop.run_in_executor(None, server.wait)
    await dispatcher.cancel_all()
    if lifespan is not None:
        await lifespan.shutdown()
    server.close()
    logger.info("Finished server process [%d]", os.getpid())
    return EXIT_OK
