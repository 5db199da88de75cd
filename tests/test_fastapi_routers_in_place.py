"""FastAPI routers replaced in place of re-running the modules that include them
(`StarletteIntegration.absorb`, python/hmr_serve/integrations/fastapi_routers.py).

A project of 20 router modules and 201 routes (tests/router_project.py) is built in one
interpreter with the integration active; an edit is simulated as a reload makes it (the file is
saved, its module and the modules reading it re-run inside their module objects), `absorb` is
called for each module that includes a changed router (tests/router_driver.py), and what the app
serves then (route table, /openapi.json, and an answer from every route through TestClient) must
equal what a fresh interpreter importing the edited files serves. What `absorb` cannot reproduce
it must refuse, leaving the app untouched (the importer then re-runs, as without it).

The last test drives the real server once the reload engine calls the hook (it is skipped until
`Integration.absorb` exists): edits over HTTP, compared with a fresh process, with the including
modules left un-run."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import router_project as rp
from conftest import Background, StartServer, poll_until, server_env
from hmr_serve import integrations

DRIVER = Path(__file__).with_name("router_driver.py")


def run_driver(cwd: Path, *args: str) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, str(DRIVER), *args],
        cwd=cwd,
        env=server_env({"PYTHONDONTWRITEBYTECODE": "1"}),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def fresh(app_dir: Path) -> dict[str, Any]:
    return run_driver(app_dir, "fresh", rp.APP_SPEC)


def simulate(
    tmp_path: Path,
    saves: dict[str, str],
    rerun: list[str],
    absorb: list[tuple[str, dict[str, list[str]]]],
    *,
    files: dict[str, str] | None = None,
    early: list[str] | None = None,
    undo: bool = False,
) -> dict[str, Any]:
    """Builds the project (`files` overriding some), saves the edits, re-runs `rerun` and calls
    absorb for each (importer, {module: [names]}); see router_driver.absorb."""
    app_dir, next_dir = tmp_path / "app", tmp_path / "next"
    rp.write(app_dir, {**rp.project(), **(files or {})})
    rp.write(next_dir, saves)
    plan = {
        "app": rp.APP_SPEC,
        "early": early or [],
        "saves": {rel: str(next_dir / rel) for rel in saves},
        "rerun": rerun,
        "absorb": absorb,
        "undo": undo,
    }
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    return run_driver(app_dir, "absorb", str(tmp_path / "plan.json"))


def assert_same(served: dict[str, Any], expected: dict[str, Any]) -> None:
    """Equal, part by part, so that a failure names the part and the first difference."""
    for part in ("routes", "answers", "openapi", "unauthorised"):
        if served[part] != expected[part]:
            a, b = served[part], expected[part]
            if isinstance(a, dict):
                keys = sorted(set(a) | set(b))
                diff = [k for k in keys if a.get(k) != b.get(k)][:3]
                detail = {k: (a.get(k), b.get(k)) for k in diff}
            elif isinstance(a, list):
                detail = {"missing": [r for r in b if r not in a][:3]}
                detail["extra"] = [r for r in a if r not in b][:3]
            else:
                detail = (a, b)
            raise AssertionError(f"{part} differs from a fresh process: {detail}")


# -- replaced in place: equal to a fresh process -------------------------------------------------


def test_route_body_edit_and_added_route(tmp_path: Path):
    result = simulate(
        tmp_path,
        {rp.path_of(7): rp.router_source(7, version="v2", added_route=True)},
        rerun=[rp.module_of(7)],
        absorb=[(rp.INCLUDER[7], {rp.module_of(7): ["router"]})],
    )
    assert result["absorbed"] == [True]
    expected = fresh(tmp_path / "app")
    assert expected != result["before"]  # the edit shows
    assert expected["answers"]["GET /api/r07/added/{word}"][1] == '{"added":"hey","v":"v2"}'
    assert_same(result["after"], expected)


def test_router_three_includes_deep(tmp_path: Path):
    # r17 <- deep router (prefix, tags) <- nested router (prefix, tags) <- api (prefix,
    # dependencies) <- app: every level's arguments apply to the new routes.
    result = simulate(
        tmp_path,
        {rp.path_of(17): rp.router_source(17, version="v2", added_route=True)},
        rerun=[rp.module_of(17)],
        absorb=[(rp.INCLUDER[17], {rp.module_of(17): ["router"]})],
    )
    assert result["absorbed"] == [True]
    expected = fresh(tmp_path / "app")
    answer = expected["answers"]["GET /api/nested/deep/r17/added/{word}"]
    assert answer == [200, '{"added":"hey","v":"v2"}', "yes"]
    assert_same(result["after"], expected)


def test_schema_field_edit_reruns_every_router(tmp_path: Path):
    # The shared model changes: every router module re-runs, and each module including routers
    # gets them all back at once (four includers, one of them the app module with its loop).
    by_includer: dict[str, dict[str, list[str]]] = {}
    for n in range(rp.ROUTERS):
        by_includer.setdefault(rp.INCLUDER[n], {})[rp.module_of(n)] = ["router"]
    result = simulate(
        tmp_path,
        {"shop/schemas.py": rp.schemas_source(extra_field=True)},
        rerun=["shop.schemas", *(rp.module_of(n) for n in range(rp.ROUTERS))],
        absorb=list(by_includer.items()),
    )
    assert result["absorbed"] == [True] * len(by_includer)
    expected = fresh(tmp_path / "app")
    assert "colour" in json.dumps(expected["openapi"]["components"]["schemas"]["Item"])
    assert_same(result["after"], expected)


def test_undo_puts_back_exactly_what_was_served(tmp_path: Path):
    rp.write(tmp_path / "original", rp.project())
    result = simulate(
        tmp_path,
        {
            rp.path_of(3): rp.router_source(3, version="v2", added_route=True),
            rp.path_of(16): rp.router_source(16, version="v2"),
        },
        rerun=[rp.module_of(3), rp.module_of(16)],
        absorb=[
            (rp.INCLUDER[3], {rp.module_of(3): ["router"]}),
            (rp.INCLUDER[16], {rp.module_of(16): ["router"]}),
        ],
        undo=True,
    )
    assert result["absorbed"] == [True, True]
    expected = fresh(tmp_path / "original")
    assert_same(result["before"], expected)
    assert_same(result["after"], expected)


# -- refused: the app is left as it was ----------------------------------------------------------

REFUSALS = {
    "a changed name that is no router": dict(
        saves={rp.path_of(7): rp.router_source(7, added_route=True)},
        rerun=[rp.module_of(7)],
        absorb=[(rp.INCLUDER[7], {rp.module_of(7): ["router", "list_items_07"]})],
    ),
    "the importer keeps a changed router in a list": dict(
        files={"shop/api.py": rp.api_source(also="ALL = [r03.router]")},
        saves={rp.path_of(3): rp.router_source(3, added_route=True)},
        rerun=[rp.module_of(3)],
        absorb=[(rp.INCLUDER[3], {rp.module_of(3): ["router"]})],
    ),
    "the importer binds a changed router to its own name": dict(
        files={"shop/main.py": rp.main_source(header="from shop.routers.r19 import router")},
        saves={rp.path_of(19): rp.router_source(19, added_route=True)},
        rerun=[rp.module_of(19)],
        absorb=[(rp.INCLUDER[19], {rp.module_of(19): ["router"]})],
    ),
    "an including module reads the route table while it imports": dict(
        files={"shop/main.py": rp.main_source(footer="ROUTES = len(app.routes)")},
        saves={rp.path_of(7): rp.router_source(7, added_route=True)},
        rerun=[rp.module_of(7)],
        absorb=[(rp.INCLUDER[7], {rp.module_of(7): ["router"]})],
    ),
    "included routes changed after the include other than by a route loop": dict(
        files={
            "shop/main.py": rp.main_source(
                footer="deps.label_routes(app)", header=("from shop import deps")
            )
        },
        saves={rp.path_of(19): rp.router_source(19, added_route=True)},
        rerun=[rp.module_of(19)],
        absorb=[(rp.INCLUDER[19], {rp.module_of(19): ["router"]})],
    ),
    "the new router has a startup handler": dict(
        saves={rp.path_of(5): rp.router_source(5, added_route=True, startup=True)},
        rerun=[rp.module_of(5)],
        absorb=[(rp.INCLUDER[5], {rp.module_of(5): ["router"]})],
    ),
    "a changed router is also included by another module": dict(
        files={
            "shop/main.py": rp.main_source(
                header="from shop.routers import r02",
                footer='app.include_router(r02.router, prefix="/again")',
            )
        },
        saves={rp.path_of(2): rp.router_source(2, added_route=True)},
        rerun=[rp.module_of(2)],
        absorb=[(rp.INCLUDER[2], {rp.module_of(2): ["router"]})],
    ),
    "the router was included before the integration recorded includes": dict(
        early=["shop.api"],
        saves={rp.path_of(7): rp.router_source(7, added_route=True)},
        rerun=[rp.module_of(7)],
        absorb=[(rp.INCLUDER[7], {rp.module_of(7): ["router"]})],
    ),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_refuses_what_it_cannot_reproduce(tmp_path: Path, case: str):
    result = simulate(tmp_path, **REFUSALS[case])
    assert result["absorbed"] == [False]
    # Untouched: the edits add a route, which the app does not serve (the importer's re-run
    # brings it, as without absorb).
    assert_same(result["after"], result["before"])


# -- end to end, through the reload engine --------------------------------------------------------

needs_engine_hook = pytest.mark.skipif(
    not hasattr(integrations.Integration, "absorb"),
    reason="needs the reload engine's absorb hook (Integration.absorb), not merged yet",
)


def served(server: Any, expected: dict[str, Any]) -> dict[str, Any]:
    """What the server answers over HTTP for every route a fresh process has (as the driver's
    summary: the route table is the fresh one, answers and /openapi.json are the server's)."""
    answers = {}
    with server.client() as client:
        for key in expected["answers"]:
            method, path = key.split(" ", 1)
            if method == "WS":
                answers[key] = expected["answers"][key]  # covered in process above
                continue
            url = re.sub(r"\{item_id[^}]*\}", "7", path)
            url = re.sub(r"\{word[^}]*\}", "hey", url)
            response = client.request(
                method,
                url,
                headers=rp.TOKEN,
                json={"name": "thing", "price": 3.0} if method in ("POST", "PUT") else None,
                params={"name": "n", "verbose": "true"} if method == "PATCH" else None,
            )
            answers[key] = [response.status_code, response.text, response.headers.get("x-audited")]
        openapi = client.get("/openapi.json").json()
        unauthorised = client.get("/api/r00/version").status_code
    return {"routes": expected["routes"], "answers": answers, "openapi": openapi,
            "unauthorised": unauthorised}  # fmt: skip


def runs(markers: Path, module: str) -> int:
    return markers.read_text().splitlines().count(module)


@needs_engine_hook
def test_real_server_replaces_routers_without_rerunning_their_includers(
    tmp_path: Path, start_server: StartServer
):
    rp.write(tmp_path, rp.project())
    markers = tmp_path / "markers.txt"
    server = start_server(rp.APP_SPEC, "--port", "0", cwd=tmp_path, env={
        "SHOP_MARKERS": str(markers)})  # fmt: skip
    background = Background(server.url, "/public/version")

    def added(path: str) -> Any:
        with server.client() as client:
            return client.get(path, headers=rp.TOKEN).json()

    def check(expected_runs: dict[str, int]) -> None:
        expected = fresh(tmp_path)
        poll_until(lambda: served(server, expected)["openapi"], expected["openapi"], server)
        assert_same(served(server, expected), expected)
        found = {name: runs(markers, name) for name in expected_runs}
        assert found == expected_runs, markers.read_text()

    # A route added to a router three includes deep (app <- api <- nested <- deep <- r17): only
    # r17 re-runs; its new router takes the old one's place, through every include.
    rp.write(tmp_path, {rp.path_of(17): rp.router_source(17, added_route=True)})
    poll_until(lambda: added("/api/nested/deep/r17/added/x"), {"added": "x", "v": "v1"}, server)
    check({rp.module_of(17): 2, "shop.deep": 1, "shop.nested": 1, "shop.api": 1, "shop.main": 1})

    # A value its endpoints read changes too: whether shop.deep may keep its router is the
    # engine's call (an endpoint could run while it imports); the new deep router it would then
    # build takes the old one's place in the routers above.
    rp.write(tmp_path, {rp.path_of(17): rp.router_source(17, "v2", added_route=True)})
    poll_until(lambda: added("/api/nested/deep/r17/version")["v"], "v2", server)
    check({rp.module_of(17): 3, "shop.nested": 1, "shop.api": 1, "shop.main": 1})

    # The shared schema (every router re-runs) and the dependencies module (which the includers
    # read themselves): whatever re-runs, the result is a fresh process's.
    rp.write(tmp_path, {"shop/schemas.py": rp.schemas_source(extra_field=True)})
    check({})
    deps = tmp_path / "shop/deps.py"
    deps.write_text(deps.read_text().replace("verbose: bool = False", "verbose: bool = True"))
    check({})
    background.stop()
    assert background.failures == []
