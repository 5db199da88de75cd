"""A small FastAPI app whose routes module is rewritten with a new version number again and
again, for the reliability tests and bench/longrun.py.

`pkg/routes.py` of version N answers `{"version": N}` on `/` and creates, at import, a class
whose shape changes with every version (so it cannot keep its identity), an instance of it, a
lambda and a router; `pkg/main.py` builds a new FastAPI app around the router each time. Each of
those objects is registered by weak reference in `pkg/probe.py` (never edited, so never
re-executed). `GET /debug/alive` runs `gc.collect()` in the server and lists the objects still
alive: everything of an old version should be gone, unless the reload machinery keeps it.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

APP_SPEC = "pkg.main:app"
ROUTES = Path("pkg") / "routes.py"

_STATIC = {
    "pkg/__init__.py": "",
    "pkg/probe.py": '''
        """Weak references to objects of every version, and which of them are still alive."""

        import gc
        import weakref

        _refs = []


        def track(kind, version, obj):
            _refs.append((kind, version, weakref.ref(obj)))


        def alive():
            gc.collect()
            _refs[:] = [entry for entry in _refs if entry[2]() is not None]
            return [[kind, version] for kind, version, _ in _refs]
    ''',
    "pkg/models.py": """
        from pydantic import BaseModel, Field


        class Item(BaseModel):
            name: str = Field(min_length=1)
            price: float = 0.0
    """,
    "pkg/deps.py": """
        from fastapi import Header


        async def client_name(user_agent: str = Header("unknown")) -> str:
            return user_agent.split("/")[0]
    """,
    "pkg/main.py": """
        from fastapi import FastAPI

        from pkg import probe, routes

        app = FastAPI()
        app.include_router(routes.router)
        probe.track("app", routes.VERSION, app)


        @app.get("/debug/alive")
        async def alive() -> list:
            # async: a sync endpoint would run on a worker thread the thread count then shows.
            return probe.alive()
    """,
}

_ROUTES = '''
    """Routes, version {version}."""

    from fastapi import APIRouter, Depends

    from pkg import probe
    from pkg.deps import client_name
    from pkg.models import Item

    VERSION = {version}

    router = APIRouter()


    class Payload:
        # A field named after the version: the shape differs every time, so this is a new class.
        v{version}: int = {version}


    BLOB = Payload()
    DESCRIBE = lambda: f"version {{VERSION}}"  # noqa: E731


    @router.get("/")
    async def index(client: str = Depends(client_name)) -> dict:
        return {{"version": VERSION, "client": client, "describe": DESCRIBE()}}


    @router.post("/items")
    async def create(item: Item) -> dict:
        return {{"version": VERSION, "item": item.model_dump()}}


    for kind, obj in (("class", Payload), ("instance", BLOB), ("lambda", DESCRIBE),
                      ("router", router)):
        probe.track(kind, VERSION, obj)
'''


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))


def create(root: Path) -> None:
    """Writes the app, at version 0, under `root`."""
    for rel, text in _STATIC.items():
        _write(root / rel, text)
    _write(root / ROUTES, _ROUTES.format(version=0))


def set_version(root: Path, version: int) -> None:
    """Saves routes.py at `version` the way many editors do: a temporary file renamed over it,
    so the watcher never sees a half-written file."""
    target = root / ROUTES
    tmp = target.with_name(".routes.py.tmp")
    tmp.write_text(textwrap.dedent(_ROUTES).lstrip("\n").format(version=version))
    os.replace(tmp, target)


# -- the server process, from /proc ---------------------------------------------------------------


def rss_bytes(pid: int) -> int:
    return _status_field(pid, "VmRSS") * 1024


def thread_count(pid: int) -> int:
    return _status_field(pid, "Threads")


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _status_field(pid: int, name: str) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(name + ":"):
                return int(line.split()[1])
    raise LookupError(f"{name} not in /proc/{pid}/status")
