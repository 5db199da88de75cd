"""mealie (mealie-recipes/mealie: FastAPI, ~250 routes over ~65 routers, sqlite) for
bench/realapps.py: where its local copy is, how to serve it, which edits to time and which
requests must answer as a freshly started server does.

Set-up, once (nothing of mealie goes into this repository; $REALAPPS_DIR is /work/realapps
unless set):

    git clone https://github.com/mealie-recipes/mealie $REALAPPS_DIR/mealie
    python3.12 -m venv $REALAPPS_DIR/mealie-venv
    # A plain `pip install .` gets a newer openai that fails at import: install with the pins of
    # its poetry.lock as constraints (one `name==version` line per [[package]] entry), plus
    # rich, with PRODUCTION=false. python-ldap needs libldap2-dev and libsasl2-dev.
    cd $REALAPPS_DIR/mealie
    PRODUCTION=false ../mealie-venv/bin/pip install -c ../mealie-constraints.txt . rich
    ../mealie-venv/bin/pip install /path/to/hmr-serve   # the checkout being measured
"""

from __future__ import annotations

from pathlib import Path

from realapps_common import Edit, RealApp

APP_ABOUT = "mealie/routes/app/app_about.py"

# In this order: each edit is compared with a fresh server while it is served, so an edit that
# leaves the server wrong would have its error blamed on the ones after it, until the settings
# edit restarts the process.
EDITS = [
    Edit(
        "route body",
        APP_ABOUT,
        "        is_demo=settings.IS_DEMO,\n",
        "        is_demo=not settings.IS_DEMO,\n",
        probe="/api/app/about/startup-info",
        shows=lambda status, body: status == 200 and body.get("isDemo") is True,
    ),
    Edit(
        "route added to a router",
        APP_ABOUT,
        None,
        '\n\n@router.get("/hmr-probe")\ndef hmr_probe():\n    return {"probe": "added"}\n',
        probe="/api/app/about/hmr-probe",
        shows=lambda status, body: status == 200 and body == {"probe": "added"},
    ),
    Edit(
        "pydantic schema field",
        "mealie/schema/admin/about.py",
        '    dark_error: str = "#EF5350"\n',
        '    dark_error: str = "#EF5350"\n    hmr_probe: str = "added"\n',
        probe="/api/app/about/theme",
        shows=lambda status, body: status == 200 and body.get("hmrProbe") == "added",
    ),
    Edit(
        "shared settings default",
        "mealie/core/settings/settings.py",
        "    ALLOW_SIGNUP: bool = False\n",
        "    ALLOW_SIGNUP: bool = True\n",
        probe="/api/app/about",
        shows=lambda status, body: status == 200 and body.get("allowSignup") is True,
    ),
]

# Compared with a freshly started server after each edit (besides /openapi.json).
PUBLIC = [
    "/api/app/about",
    "/api/app/about/startup-info",
    "/api/app/about/theme",
    "/api/app/about/hmr-probe",
]
SIGNED_IN = [
    "/api/users/self",
    "/api/households/self",
    "/api/groups/self",
    "/api/recipes?page=1&perPage=5",
    "/api/organizers/categories",
    "/api/admin/about",
]
LOGIN = ("/api/auth/token", {"username": "changeme@example.com", "password": "MyPassword"})


def app(realapps: Path) -> RealApp | str:
    """The app, or what is missing."""
    source = realapps / "mealie"
    python = realapps / "mealie-venv" / "bin" / "python"
    if not (source / "mealie" / "app.py").exists():
        return f"no mealie checkout at {source}"
    if not python.exists():
        return f"no venv at {python.parent.parent}"
    return RealApp(
        name="mealie",
        source=source,
        python=python,
        copy=["mealie", "alembic", "alembic.ini"],
        make_dirs=["dev/data"],
        env={"PRODUCTION": "false"},
        spec="mealie.app:app",
        reloader="uvicorn --reload",
        reloader_args=["-m", "uvicorn", "mealie.app:app", "--reload", "--reload-dir", "mealie"],
        fresh_args=["-m", "uvicorn", "mealie.app:app"],
        background="/api/app/about",
        edits=EDITS,
        public=PUBLIC,
        signed_in=SIGNED_IN,
        login=LOGIN,
    )
