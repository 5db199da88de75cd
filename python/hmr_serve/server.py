"""Runs the server: load the app, bind, lifespan startup, serve until a signal, shut down; or,
when a change cannot be hot-reloaded, drain and replace the process keeping the socket."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import signal
import sys
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from hmr_serve import _core, browser, integrations, restart
from hmr_serve.asgi import Dispatcher, resolve
from hmr_serve.config import Config
from hmr_serve.error_pages import ErrorPages
from hmr_serve.leftover_tasks import cancel_leftover_tasks
from hmr_serve.lifespan import Lifespan
from hmr_serve.loading import AppLoadError, detect_interface, load_app, prepend_app_dir
from hmr_serve.logs import LogConfigError, apply_log_config, configure, log_exception, logger
from hmr_serve.reload.data_files import DataFiles
from hmr_serve.reload.reloader import Reloader
from hmr_serve.reload.tracker import ImportTracker
from hmr_serve.server_front import AppTarget, ServerFrontEnd

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_STARTUP_FAILED = 3


def _new_event_loop(kind: str = "auto") -> asyncio.AbstractEventLoop:
    """`--loop`: auto takes uvloop when it is installed, like uvicorn."""
    if kind == "asyncio":
        return asyncio.new_event_loop()
    try:
        import uvloop
    except ImportError:
        if kind == "uvloop":
            raise
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


class _Session:
    """What one process of a dev session knows besides the config: how it was launched, and
    whether the app loaded."""

    def __init__(self, launch: restart.Launch, load_started: float) -> None:
        self.launch = launch
        self.load_started = load_started
        self.data_files: DataFiles | None = None  # with --reload: what modules read importing
        self.failure: str | None = None  # the load error, when serving the 503 fallback
        self.failure_details: str | None = None

    @property
    def restarted(self) -> bool:
        return self.launch.inherited_fd is not None


def run(config: Config) -> int:
    launch = restart.capture()
    configure(config.log_level_number, config.use_colors)
    if config.log_config:
        try:
            level = config.log_level_number if config.log_level_given else None
            apply_log_config(config.log_config, level)
        except LogConfigError as exc:
            logger.error("%s", exc)
            return EXIT_ERROR
    tracker = None
    if config.reload:
        # Installed before the app is imported, so every first-party import is seen.
        tracker = ImportTracker(_core.ReloadEngine(), watch_roots(config))
        tracker.on_first_import = integrations.module_executed
        tracker.install()
    session = _Session(launch, time.time())
    app: Any = None
    interface = "asgi"
    if tracker is not None:
        session.data_files = DataFiles(tracker.engine, tracker)
        session.data_files.install()
    try:
        with session.data_files.importing() if session.data_files else contextlib.nullcontext():
            app, interface = load(config)
    except AppLoadError as exc:
        if exc.details:
            sys.stderr.write(exc.details)
        logger.error("Error loading app %r. %s", config.app, exc.message)
        # A restart must not end the session: the next save gets another try.
        if not (session.restarted and config.reload):
            return EXIT_ERROR
        session.failure, session.failure_details = exc.message, exc.details
    if tracker is not None:
        tracker.sweep()
    try:
        loop = _new_event_loop(config.loop)
    except ImportError:
        logger.error("--loop uvloop: uvloop is not installed (pip install uvloop)")
        return EXIT_ERROR
    asyncio.set_event_loop(loop)
    try:
        outcome = loop.run_until_complete(_serve(config, app, interface, loop, tracker, session))
    finally:
        cancel_leftover_tasks(loop)
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
    if isinstance(outcome, restart.Restart):
        try:
            restart.exec_with_socket(launch, outcome.fd)
        except OSError as exc:
            logger.error("cannot restart the process: %s", exc)
        return EXIT_ERROR
    return outcome


def _watch_includes(config: Config) -> list[str]:
    try:
        extra = [pattern for i in integrations.active() for pattern in i.watch_patterns()]
    except Exception as exc:  # a broken framework import must not stop watching
        logger.debug("integration watch patterns unavailable: %s", exc)
        extra = []
    return ["*.py", *extra, *config.reload_includes]


def _start_reloading(
    config: Config,
    server: Any,
    tracker: ImportTracker,
    app: Any,
    loop: asyncio.AbstractEventLoop,
    request_restart: Callable[[str], None],
    session: _Session,
) -> Reloader:
    engine = tracker.engine
    front = ServerFrontEnd(
        server,
        AppTarget(config.app, config.factory, app),
        loop,
        config.reload_drain_timeout,
        request_restart,
    )
    reloader = Reloader(
        front,
        engine,
        tracker,
        loop,
        timeout=config.reload_timeout,
        data_files=session.data_files,
    )

    def touched_modules(batch: list[tuple[str, str]]) -> list[str]:
        return [
            str(path)
            for path, kind in batch
            if engine.module_at(path) or (kind == "deleted" and engine.modules_under(path))
        ]

    def on_change(batch: list[tuple[str, str]]) -> None:
        if config.reload_delay > 0:
            # --reload-delay: like uvicorn, wait before acting on a change (a generator that
            # writes several files in a row then causes one reload).
            loop.call_later(config.reload_delay, act_on_change, batch)
        else:
            act_on_change(batch)

    def act_on_change(batch: list[tuple[str, str]]) -> None:
        if config.reload_strategy == "restart":
            touched = touched_modules(batch)
            if touched:
                files = ", ".join(sorted(os.path.relpath(p) for p in touched))
                request_restart(f"--reload-strategy restart ({files})")
                return
        reloader.on_change(batch)

    roots = watch_roots(config)
    # Their changes reach the reloader as files that are no module: pages refresh, nothing runs.
    static_dirs = [directory for _, directory in config.statics]
    try:
        engine.watch(
            roots,
            _watch_includes(config),
            config.reload_excludes,
            loop,
            on_change,
            open_roots=static_dirs,
        )
    except OSError as exc:
        logger.error("cannot watch for changes: %s", exc)
        raise
    logger.info("watching for changes in %s", ", ".join(roots + static_dirs))
    if session.restarted:
        # Saves between this process importing a module and its watcher starting produced no
        # event this watcher will see.
        paths = [p for p in map(tracker.source_path, list(tracker.tracked)) if p is not None]
        missed = restart.modified_since(paths, session.load_started)
        if missed:
            loop.call_soon(on_change, [(p, "modified") for p in missed])
    return reloader


def _wait_for_fix(
    config: Config,
    loop: asyncio.AbstractEventLoop,
    request_restart: Callable[[str], None],
    session: _Session,
) -> Any:
    """After a failed load: any change under the watched directories restarts the process."""
    roots = watch_roots(config)

    def on_change(batch: list[tuple[str, str]]) -> None:
        files = ", ".join(sorted(os.path.relpath(str(path)) for path, _ in batch))
        request_restart(f"changes to {files}")

    engine = _core.ReloadEngine()
    engine.watch(roots, _watch_includes(config), config.reload_excludes, loop, on_change)
    logger.warning(
        "the app failed to load; answering 503 until a file changes in %s", ", ".join(roots)
    )
    paths = restart.loaded_paths(roots) + restart.traceback_paths(session.failure_details, roots)
    missed = restart.modified_since(paths, session.load_started)
    if missed:
        loop.call_soon(on_change, [(p, "modified") for p in missed])
    return engine


async def _unless_stopped(awaitable: Any, stop: asyncio.Event) -> Any:
    """`awaitable`'s result, or None (and it is cancelled) if `stop` is set first."""
    task = asyncio.ensure_future(awaitable)
    stopped = asyncio.ensure_future(stop.wait())
    await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        stopped.cancel()
        return task.result()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return None


def warn_if_exposed(url: str) -> None:
    """A development server runs the code being edited, with debug pages: reachable from other
    machines only when asked for, and then loudly."""
    host = urlsplit(url).hostname if url.startswith(("http://", "https://")) else None
    if host is None:
        return
    try:
        exposed = not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return
    if exposed:
        logger.warning(
            "listening on %s, which other machines can reach: this is a development server "
            "(no hardening, your code and its debug output exposed); use --host 127.0.0.1 to "
            "keep it local",
            host,
        )


def _open_server(config: Config, session: _Session) -> Any:
    """Binds, or adopts the socket of --fd or of the process this one replaced."""
    server = _bind(config, session)
    if config.ssl_certfile:
        try:
            server.use_tls(config.ssl_certfile, config.ssl_keyfile, http=config.http)
        except ValueError as exc:
            server.close()
            raise OSError(0, str(exc)) from None
    return server


def _bind(config: Config, session: _Session) -> Any:
    fd = session.launch.inherited_fd if session.restarted else config.fd
    if fd is None:
        return _core.Server(
            host=config.host, port=config.port, uds=config.uds, backlog=config.backlog
        )
    try:
        restart.prepare_socket(fd, config.backlog)
    except OSError as exc:
        message = f"cannot serve on file descriptor {fd}: {exc.strerror or exc}"
        raise OSError(exc.errno, message) from None
    # A socket this session bound itself (--uds before a restart) is removed at the end.
    owned_uds = config.uds if session.restarted and config.fd is None else None
    return _core.Server(uds=owned_uds, backlog=config.backlog, fd=fd)


def _initial_scan(engine: Any, reloader: Reloader) -> None:
    started = time.perf_counter()
    parsed, errors = engine.scan()
    # Converted now, off the loop, rather than on the first save that reaches them.
    reloader.reads.warm()
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
    session: _Session,
) -> int | restart.Restart:
    stop = asyncio.Event()
    signals_seen = 0
    restart_reason: str | None = None

    def request_restart(reason: str) -> None:
        nonlocal restart_reason
        if restart_reason is not None or stop.is_set():
            return
        restart_reason = reason
        logger.warning("restarting the process: %s", reason)
        stop.set()

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
        server = _open_server(config, session)
    except OSError as exc:
        logger.error("%s", exc.strerror or exc)
        return EXIT_ERROR
    if not session.restarted:
        warn_if_exposed(server.url)

    lifespan = None
    if session.failure is None and interface == "asgi" and config.lifespan != "off":
        lifespan = Lifespan(app, config.lifespan)
        with session.data_files.starting() if session.data_files else contextlib.nullcontext():
            started = await _unless_stopped(lifespan.startup(), stop)
        if started is None:  # CTRL+C while the app was starting up
            await lifespan.cancel()
            server.close()
            logger.info("Finished server process [%d]", os.getpid())
            return EXIT_OK
        if not started:
            if not (session.restarted and config.reload):
                server.close()
                return EXIT_STARTUP_FAILED
            lifespan = None
            session.failure = "application startup failed"
    if session.failure is not None:
        app, interface = restart.fallback_app(session.failure), "asgi"

    pages = ErrorPages(config.show_errors_to_all) if config.error_page else None
    if pages is not None and interface == "wsgi":
        pages.install_framework_hooks()
    dispatcher = Dispatcher(loop, config.reset_contextvars, pages)
    server.start(
        app,
        interface,
        config,
        log_exception=log_exception,
        event_loop=loop,
        dispatch=dispatcher.dispatch,
        resolve=resolve,
        state=lifespan.state if lifespan else None,
        error_page=pages.wsgi_page if pages is not None else None,
    )
    browser.attach(server, config.error_page)
    fix_watcher = None
    if session.failure is not None:
        try:
            fix_watcher = _wait_for_fix(config, loop, request_restart, session)
        except OSError as exc:
            logger.error("cannot watch for changes: %s", exc)
            server.shutdown()
            server.close()
            return EXIT_ERROR
        logger.info("serving %s (app failed to load, press CTRL+C to quit)", server.url)
    else:
        if tracker is not None:
            try:
                reloader = _start_reloading(
                    config, server, tracker, app, loop, request_restart, session
                )
            except OSError:
                server.shutdown()
                server.close()
                return EXIT_ERROR
            # The static pass runs beside serving, not before it: start-up stays as fast as
            # without.
            reloader.initial_scan = loop.run_in_executor(
                None, _initial_scan, tracker.engine, reloader
            )
        logger.info("serving %s (%s, press CTRL+C to quit)", server.url, interface.upper())

    await stop.wait()
    if tracker is not None:
        tracker.engine.stop()
    if fix_watcher is not None:
        fix_watcher.stop()
    if restart_reason is not None and signals_seen == 0:
        return await _hand_over(server, dispatcher, lifespan, loop, lambda: signals_seen > 0)
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


async def _hand_over(
    server: Any,
    dispatcher: Dispatcher,
    lifespan: Lifespan | None,
    loop: asyncio.AbstractEventLoop,
    interrupted: Callable[[], bool],
) -> int | restart.Restart:
    """Stops accepting (the socket stays open, new connections queue), lets the requests in
    flight finish, runs the lifespan shutdown and gives up the socket for the next process."""
    server.stop_accepting()
    await loop.run_in_executor(None, server.wait)
    await dispatcher.cancel_all()
    if lifespan is not None:
        await lifespan.shutdown()
    if interrupted():  # CTRL+C while draining: quit instead
        server.close()
        logger.info("Finished server process [%d]", os.getpid())
        return EXIT_OK
    fd = server.release_listener()
    server.close()
    return restart.Restart(fd)
