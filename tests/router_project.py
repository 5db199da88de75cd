"""A FastAPI project of 20 router modules and 201 routes, the shape of a large app (mealie):
router modules included by package modules with prefixes, tags, dependencies and responses, some
through intermediate routers three levels deep, a shared schema module, and an app module that
post-processes its routes. Written into a directory as the tests and benchmarks need it, with
edits as keyword arguments.

    shop/main.py        app: includes api.router and r19 (prefix /public), then sets operation
                        ids in a route loop (FastAPI's documented recipe)
    shop/api.py         router (prefix /api, a token dependency): r00..r14, nested.router
    shop/nested.py      router (prefix /nested, tags): r15, r16, deep.router (prefix /deep)
    shop/deep.py        router (tags): r17, r18
    shop/routers/rNN.py 10 routes each (r03 also a websocket); even NN carry their own prefix
                        and tags, odd ones get them from the include (shop/routers/__init__.py
                        is empty: no module including routers is part of an import cycle)
    shop/schemas.py, deps.py     a pydantic model and dependencies every router uses
    shop/_markers.py             each module notes every run of its code in $SHOP_MARKERS
"""

from __future__ import annotations

import textwrap
from pathlib import Path

ROUTERS = 20
APP_SPEC = "shop.main:app"
TOKEN = {"x-token": "secret"}

# Who includes each router: the importer whose re-run an edit of that router would cause.
INCLUDER = {
    **{n: "shop.api" for n in range(15)},
    15: "shop.nested",
    16: "shop.nested",
    17: "shop.deep",
    18: "shop.deep",
    19: "shop.main",
}


def module_of(n: int) -> str:
    return f"shop.routers.r{n:02d}"


def path_of(n: int) -> str:
    return f"shop/routers/r{n:02d}.py"


def _include_args(n: int) -> str:
    """The include_router arguments the includer passes for router n (odd: prefix and tags)."""
    if n % 2 == 0:
        return ""
    args = f', prefix="/r{n:02d}", tags=["r{n:02d}"]'
    if n % 3 == 0:
        args += ', responses={418: {"description": "teapot"}}'
    if n % 5 == 0:
        args += ", dependencies=[Depends(deps.verbose)]"
    if n == 9:
        args += ", deprecated=True"
    return args


def router_source(
    n: int, version: str = "v1", added_route: bool = False, startup: bool = False
) -> str:
    nn = f"{n:02d}"
    own = f'prefix="/r{nn}", tags=["r{nn}"]' if n % 2 == 0 else ""
    if n % 4 == 0:
        own += (", " if own else "") + "dependencies=[Depends(deps.verbose)]"
    source = f'''
        from fastapi import APIRouter, Depends, WebSocket

        from shop import _markers, deps
        from shop.schemas import Item

        _markers.mark(__name__)
        VERSION = "{version}"
        router = APIRouter({own})


        @router.get("/items", response_model=list[Item])
        def list_items_{nn}():
            return [Item(name="r{nn}-a"), Item(name="r{nn}-b", price=2.5)]


        @router.get("/items/{{item_id}}")
        def get_item_{nn}(item_id: int):
            return {{"router": "{nn}", "item": item_id, "v": VERSION}}


        @router.post("/items", status_code=201, response_model=Item)
        def create_item_{nn}(item: Item):
            return item


        @router.put("/items/{{item_id}}")
        def replace_item_{nn}(item_id: int, item: Item):
            return {{"replaced": item_id, "name": item.name, "v": VERSION}}


        @router.delete("/items/{{item_id}}", status_code=204)
        def delete_item_{nn}(item_id: int):
            return None


        @router.patch("/items/{{item_id}}", tags=["patching"])
        def patch_item_{nn}(item_id: int, name: str):
            return {{"patched": item_id, "name": name}}


        @router.get("/search")
        def search_{nn}(q: str = "", limit: int = 10):
            return {{"q": q, "limit": limit, "router": "{nn}"}}


        @router.get("/info", responses={{404: {{"description": "missing"}}}}, summary="About r{nn}")
        def info_{nn}(detail: bool = Depends(deps.verbose)):
            return {{"router": "{nn}", "detail": detail}}


        @router.get("/version")
        def version_{nn}():
            return {{"router": "{nn}", "v": VERSION}}


        @router.get("/hidden", include_in_schema=False)
        def hidden_{nn}():
            return {{"hidden": "{nn}"}}
        '''
    if n == 3:
        source += f'''

        @router.websocket("/ws")
        async def socket_{nn}(websocket: WebSocket):
            await websocket.accept()
            await websocket.send_json({{"router": "{nn}", "v": VERSION}})
            await websocket.close()
        '''
    if startup:
        source += """

        def _warm_up():
            pass


        router.on_startup.append(_warm_up)
        """
    if added_route:
        source += f"""

        @router.get("/added/{{word}}", tags=["added"])
        def added_{nn}(word: str):
            return {{"added": word, "v": VERSION}}
        """
    return source


def schemas_source(extra_field: bool = False) -> str:
    field = '    colour: str = "plain"\n' if extra_field else ""
    return f"""
        from pydantic import BaseModel

        from shop import _markers

        _markers.mark(__name__)


        class Item(BaseModel):
            name: str
            price: float = 1.0
        {field}"""


def api_source(also: str = "") -> str:
    imports = ", ".join(f"r{n:02d}" for n in range(15))
    includes = "\n".join(
        f"router.include_router(r{n:02d}.router{_include_args(n)})" for n in range(15)
    )
    return f"""
        from fastapi import APIRouter, Depends

        from shop import _markers, deps, nested
        from shop.routers import {imports}

        _markers.mark(__name__)
        router = APIRouter(prefix="/api", dependencies=[Depends(deps.require_token)])
        {textwrap.indent(includes, " " * 8).lstrip()}
        router.include_router(nested.router, responses={{400: {{"description": "bad"}}}})
        {also}
        """


def nested_source() -> str:
    return f"""
        from fastapi import APIRouter, Depends

        from shop import _markers, deep, deps
        from shop.routers import r15, r16

        _markers.mark(__name__)
        router = APIRouter(prefix="/nested", tags=["nested"])
        router.include_router(r15.router{_include_args(15)})
        router.include_router(r16.router{_include_args(16)})
        router.include_router(deep.router, prefix="/deep", dependencies=[Depends(deps.audited)])
        """


def deep_source() -> str:
    return f"""
        from fastapi import APIRouter

        from shop import _markers
        from shop.routers import r17, r18

        _markers.mark(__name__)
        router = APIRouter(tags=["deep"])
        router.include_router(r17.router{_include_args(17)})
        router.include_router(r18.router{_include_args(18)})
        """


def main_source(header: str = "", footer: str = "") -> str:
    return f"""
        from fastapi import FastAPI
        from fastapi.routing import APIRoute

        from shop import _markers, api
        from shop.routers import r19
        {header}
        _markers.mark(__name__)
        app = FastAPI(title="shop", version="1.0")
        app.include_router(api.router)
        app.include_router(r19.router, prefix="/public", tags=["public"])

        for route in app.routes:
            if isinstance(route, APIRoute):
                route.operation_id = route.name
        {footer}
        """


DEPS = """
    from fastapi import Header, HTTPException, Response


    def require_token(x_token: str = Header(default="")):
        if x_token != "secret":
            raise HTTPException(status_code=401, detail="token")


    def verbose(verbose: bool = False):
        return verbose


    def audited(response: Response):
        response.headers["x-audited"] = "yes"


    def label_routes(app):
        # Post-processing done elsewhere than in a loop of the module including the routers.
        for route in app.routes:
            route.label = "seen"
    """

MARKERS = """
    import os


    def mark(name):
        path = os.environ.get("SHOP_MARKERS")
        if path:
            with open(path, "a") as file:
                file.write(name + "\\n")
    """


def write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))


def project() -> dict[str, str]:
    """Every file of the project as first written."""
    files = {
        "shop/__init__.py": "",
        "shop/_markers.py": MARKERS,
        "shop/deps.py": DEPS,
        "shop/schemas.py": schemas_source(),
        "shop/main.py": main_source(),
        "shop/routers/__init__.py": "",
        "shop/api.py": api_source(),
        "shop/nested.py": nested_source(),
        "shop/deep.py": deep_source(),
    }
    files.update({path_of(n): router_source(n) for n in range(ROUTERS)})
    return files
