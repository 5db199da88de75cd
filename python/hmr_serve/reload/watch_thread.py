"""The event loop the engine's watcher delivers batches on, on a thread of its own: for the
front-ends that run user code on the main thread (script and test modes). The server delivers
on its own event loop instead."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterable
from typing import Any


class WatchThread:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, name="hmr-serve-watch", daemon=True).start()

    def watch(
        self,
        engine: Any,
        roots: Iterable[str],
        includes: Iterable[str],
        excludes: Iterable[str],
        deliver: Callable[..., Any],
    ) -> None:
        """Starts the engine's watcher; raises OSError when the roots cannot be watched."""
        roots, includes, excludes = list(roots), list(includes), list(excludes)
        self.call(lambda: engine.watch(roots, includes, excludes, self.loop, deliver))

    def stop(self, engine: Any) -> None:
        self.call(engine.stop)
        self.loop.call_soon_threadsafe(self.loop.stop)

    def call(self, call: Callable[[], Any]) -> Any:
        """Runs `call` on the loop's thread and returns its result (add_reader must run there)."""
        done = threading.Event()
        box: dict[str, Any] = {}

        def run() -> None:
            try:
                box["result"] = call()
            except BaseException as exc:
                box["error"] = exc
            finally:
                done.set()

        self.loop.call_soon_threadsafe(run)
        done.wait()
        if "error" in box:
            raise box["error"]
        return box.get("result")
