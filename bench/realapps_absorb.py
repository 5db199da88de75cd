"""What replacing a real app's routers in place costs, measured inside one interpreter of the app
(hmr-serve's FastAPI integration, `StarletteIntegration.absorb`), without the reload engine.

The app is imported with the integration recording includes, as under hmr-serve. Then each
first-party module whose module-level router(s) a first-party module includes is re-executed in
place from its own source, as a reload re-runs it, and `absorb` is called for the module that
includes them, as the engine will. Prints JSON: for each, the modules, how many routes, whether
it was absorbed, how long re-running the router module and absorbing took; then the same with
every router module re-run at once (what a shared schema edit does); and the app's route table
and OpenAPI document at the end, to compare with `--fresh` (the app imported by a new process).

    python realapps_absorb.py OUT.json APP_SPEC           (from the app's directory, with
    python realapps_absorb.py OUT.json --fresh APP_SPEC    the app's own Python)

(JSON goes to a file: apps log to stdout.)
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any


def routes_of(app: Any) -> list[Any]:
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # FastAPI that copies included routes into the app
        return list(app.routes)
    return list(iter_route_contexts(app.routes))


def normalised_openapi(openapi: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI document less what differs between any two processes: each operation's tags
    sorted (mealie builds them from a set) and date-time defaults (`datetime.now()` at import)."""
    openapi = json.loads(json.dumps(openapi))

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("format") == "date-time" and "default" in node:
                node["default"] = "(the time of import)"
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(openapi)
    for operations in openapi.get("paths", {}).values():
        for operation in operations.values():
            if isinstance(operation, dict) and "tags" in operation:
                operation["tags"] = sorted(operation["tags"])
    return openapi


def normalised(app: Any) -> dict[str, Any]:
    table = [
        [route.path, sorted(getattr(route, "methods", None) or []), route.name]
        for route in routes_of(app)
    ]
    return {"routes": table, "openapi": normalised_openapi(app.openapi())}


def load(spec: str) -> Any:
    module, _, attr = spec.partition(":")
    return getattr(importlib.import_module(module), attr)


def first_party(module: Any) -> bool:
    file = getattr(module, "__file__", None) or ""
    return file.startswith(os.getcwd() + os.sep) and "site-packages" not in file


def rerun(name: str) -> dict[str, Any]:
    """Re-executes the module in its own module object from its source; its old namespace."""
    module = sys.modules[name]
    old = dict(vars(module))
    kept = {k: v for k, v in old.items() if k.startswith("__") and k.endswith("__")}
    vars(module).clear()
    vars(module).update(kept)
    code = compile(Path(module.__file__).read_bytes(), module.__file__, "exec", dont_inherit=True)
    exec(code, vars(module))
    return old


def router_modules() -> dict[tuple[str, str], list[str]]:
    """(router module, includer) -> the router names of that module the includer included."""
    from hmr_serve.integrations import fastapi_includes

    found: dict[tuple[str, str], list[str]] = {}
    owners = {}
    for name, module in list(sys.modules.items()):
        if module is not None and first_party(module):
            for attr, value in list(vars(module).items()):
                owners.setdefault(id(value), (name, attr))
    for ref in list(fastapi_includes._parents.values()):
        parent = ref()
        for include in fastapi_includes.records(parent) if parent is not None else []:
            owner = owners.get(id(include.child))
            if owner is None or include.module is None or owner[0] == include.module:
                continue
            names = found.setdefault((owner[0], include.module), [])
            if owner[1] not in names:
                names.append(owner[1])
    return found


def measure(plan: list[tuple[str, str, list[str]]], integration: Any) -> list[dict[str, Any]]:
    """Re-runs each router module once, then absorbs each (module, includer, names)."""
    old, rerun_seconds = {}, {}
    for module, _, _ in plan:
        if module not in old:
            started = time.perf_counter()
            old[module] = rerun(module)
            rerun_seconds[module] = time.perf_counter() - started
    results = []
    for module, includer, names in plan:
        changes = {module: {n: (old[module][n], vars(sys.modules[module])[n]) for n in names}}
        started = time.perf_counter()
        undo = integration.absorb(includer, changes)
        seconds = time.perf_counter() - started
        results.append(
            {
                "module": module,
                "includer": includer,
                "names": names,
                "routes": sum(len(vars(sys.modules[module])[n].routes) for n in names),
                "absorbed": undo is not None,
                "absorb_ms": seconds * 1000,
                "rerun_ms": rerun_seconds[module] * 1000,
            }
        )
    return results


def main() -> None:
    sys.path.insert(0, os.getcwd())
    out, *args = sys.argv[1:]
    if args[0] == "--fresh":
        Path(out).write_text(json.dumps(normalised(load(args[1]))))
        return
    import fastapi  # noqa: F401  (the integration activates once the framework is loaded)
    from hmr_serve import integrations
    from hmr_serve.integrations.starlette import StarletteIntegration

    integration = next(i for i in integrations.active() if isinstance(i, StarletteIntegration))
    started = time.perf_counter()
    app = load(args[0])
    import_seconds = time.perf_counter() - started
    candidates = sorted((m, i, n) for (m, i), n in router_modules().items())
    one_by_one = [measure([candidate], integration)[0] for candidate in candidates]
    started = time.perf_counter()
    at_once = measure(candidates, integration)
    at_once_seconds = time.perf_counter() - started
    result = {
        "import_ms": import_seconds * 1000,
        "one_by_one": one_by_one,
        "at_once": at_once,
        "at_once_total_ms": at_once_seconds * 1000,
        "app": normalised(app),
    }
    Path(out).write_text(json.dumps(result))


if __name__ == "__main__":
    main()
