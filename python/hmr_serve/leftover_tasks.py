"""Tasks the app leaves running when the server stops (a scheduler started in lifespan that
shutdown never stopped) are cancelled and awaited as `asyncio.run` does. Their `except
CancelledError` and `finally` blocks then run while the loop still can, instead of Python
destroying them pending at exit ("Task was destroyed but it is pending!"), or `execve`
discarding them unfinished on a restart."""

from __future__ import annotations

import asyncio

from hmr_serve.logs import logger

#: How long cancelled tasks get to finish. `asyncio.run` waits for ever; a restart must not hang
#: on a task that ignores its cancellation (CTRL+C twice still quits at once).
GRACE_SECONDS = 5.0


def cancel_leftover_tasks(loop: asyncio.AbstractEventLoop, grace: float = GRACE_SECONDS) -> None:
    """Cancels every unfinished task of `loop` (which must not be running) and runs the loop
    until they end or `grace` seconds pass."""
    tasks = [task for task in asyncio.all_tasks(loop) if not task.done()]
    if not tasks:
        return
    for task in tasks:
        task.cancel()
    _, pending = loop.run_until_complete(asyncio.wait(tasks, timeout=grace))
    for task in tasks:
        if task.done() and not task.cancelled() and task.exception() is not None:
            loop.call_exception_handler(
                {
                    "message": "unhandled exception during server shutdown",
                    "exception": task.exception(),
                    "task": task,
                }
            )
    if pending:
        logger.warning(
            "%d task(s) still running %g s after being cancelled at shutdown: %s",
            len(pending),
            grace,
            ", ".join(sorted(repr(task.get_coro()) for task in pending)),
        )
