"""Runs the FastAPI router replacement (`StarletteIntegration.absorb`) in one interpreter, as a
reload would call it, without the reload engine; or builds the app fresh. Prints a JSON summary
of what the app serves: its route table, its OpenAPI document and its answer to a request for
every route (TestClient, so the endpoints, dependencies and validation really run).

    python router_driver.py fresh               import APP, summarise it
    python router_driver.py absorb PLAN.json    see `absorb`

Run with the project directory as the working directory."""

from __future__ import annotations

import importlib
import json
import re
import shutil
import sys
import time
from pathlib import Path
from typing import Any

TOKEN = {"x-token": "secret"}
BODY = {"name": "thing", "price": 3.0}


def routes_of(app: Any) -> list[Any]:
    """Every route the app serves, through included routers (lazy FastAPI) or not."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # FastAPI that copies included routes into the app
        return list(app.routes)
    return list(iter_route_contexts(app.routes))


def summary(app: Any) -> dict[str, Any]:
    from fastapi.testclient import TestClient

    table = []
    answers = {}
    client = TestClient(app)
    for route in routes_of(app):
        endpoint = route.endpoint
        methods = sorted(getattr(route, "methods", None) or [])
        table.append(
            [
                route.path,
                methods,
                route.name,
                f"{endpoint.__module__}.{endpoint.__qualname__}",
                getattr(route, "operation_id", None),
            ]
        )
        url = re.sub(r"\{item_id[^}]*\}", "7", route.path)
        url = re.sub(r"\{word[^}]*\}", "hey", url)
        if not methods and "{" not in url:  # a websocket
            try:
                with client.websocket_connect(url, headers=TOKEN) as socket:
                    answers[f"WS {route.path}"] = socket.receive_json()
            except Exception as exc:
                answers[f"WS {route.path}"] = repr(exc)
            continue
        for method in methods:
            if method == "HEAD":
                continue
            response = client.request(
                method,
                url,
                headers=TOKEN,
                json=BODY if method in ("POST", "PUT") else None,
                params={"name": "n", "verbose": "true"} if method == "PATCH" else None,
            )
            answers[f"{method} {route.path}"] = [
                response.status_code,
                response.text,
                response.headers.get("x-audited"),
            ]
    unauthorised = client.get("/api/r00/version").status_code
    return {
        "routes": table,
        "openapi": app.openapi(),
        "answers": answers,
        "unauthorised": unauthorised,
    }


def _app(spec: str) -> Any:
    module, _, attr = spec.partition(":")
    return getattr(importlib.import_module(module), attr)


def _rerun(name: str) -> dict[str, Any]:
    """Re-executes the module inside its own module object from its current source, as the
    reload engine does; returns the namespace it had."""
    module = sys.modules[name]
    old = dict(vars(module))
    kept = {k: v for k, v in old.items() if k.startswith("__") and k.endswith("__")}
    vars(module).clear()
    vars(module).update(kept)
    source = Path(module.__file__).read_bytes()
    exec(compile(source, module.__file__, "exec", dont_inherit=True), vars(module))
    return old


def absorb(plan: dict[str, Any]) -> dict[str, Any]:
    """`plan`: {"app": spec, "early": [modules imported before the integration is active],
    "saves": {path: new source file}, "rerun": [modules, in order], "absorb": [[importer,
    {module: [names]}], ...], "undo": bool}. The saves are written, the modules re-run in place,
    then each importer gets absorb() with the changed names' old and new values; with "undo",
    every update is undone and the modules' old namespaces restored (a rolled-back reload)."""
    for name in plan.get("early", []):
        importlib.import_module(name)
    import fastapi  # noqa: F401  (the integration activates once the framework is loaded)
    from hmr_serve import integrations
    from hmr_serve.integrations.starlette import StarletteIntegration

    integration = next(i for i in integrations.active() if isinstance(i, StarletteIntegration))
    app = _app(plan["app"])
    before = summary(app)
    for path, source in plan.get("saves", {}).items():
        shutil.copyfile(source, path)
    old = {name: _rerun(name) for name in plan.get("rerun", [])}
    undos, absorbed, seconds = [], [], []
    for importer, names in plan.get("absorb", []):
        changes = {
            module: {name: (old[module][name], vars(sys.modules[module])[name]) for name in listed}
            for module, listed in names.items()
        }
        started = time.perf_counter()
        undo = integration.absorb(importer, changes)
        seconds.append(time.perf_counter() - started)
        absorbed.append(undo is not None)
        if undo is not None:
            undos.append(undo)
    if plan.get("undo"):
        for undo in reversed(undos):
            undo()
        for name, namespace in old.items():
            vars(sys.modules[name]).clear()
            vars(sys.modules[name]).update(namespace)
    return {
        "absorbed": absorbed,
        "seconds": seconds,
        "before": before,
        "after": summary(_app(plan["app"])),
    }


def main() -> None:
    sys.path.insert(0, ".")
    if sys.argv[1] == "fresh":
        result = summary(_app(sys.argv[2]))
    else:
        result = absorb(json.loads(Path(sys.argv[2]).read_text()))
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
