"""Saves a fresh process would hang or exit on, and integration hooks that raise: the reload is
abandoned and rolled back, the previous code keeps serving (held requests released, none failed),
the log says what happened, and the next save applies."""

from __future__ import annotations

import re
import time

from conftest import Background, edit, write
from fresh import app_module, served, settle

FILES = {
    "pkg/__init__.py": "",
    "pkg/work.py": 'WORK = "work-v1"\n',
    "pkg/main.py": app_module(
        """
        from pkg import work

        def body():
            return {"work": work.WORK}
        """
    ),
}


def serve(tmp_path, start_server, *args: str):
    for rel, text in FILES.items():
        write(tmp_path, rel, text)
    server = start_server("pkg.main:app", "--port", "0", "--no-access-log", *args, cwd=tmp_path)
    return server, Background(server.url)


def test_hanging_saves_are_abandoned_after_the_timeout(tmp_path, start_server):
    server, background = serve(tmp_path, start_server, "--reload-timeout", "1.5")
    before = settle(tmp_path, server)
    cases = [
        ("while True:\n    pass\n", r"pkg/work\.py:[23];"),
        ("import time\ntime.sleep(30)\n", r"pkg/work\.py:3;"),
        # `except Exception` does not swallow the timeout.
        (
            "import time\nwhile True:\n    try:\n        time.sleep(30)\n"
            "    except Exception:\n        pass\n",
            r"pkg/work\.py:5;",
        ),
    ]
    for number, (source, where) in enumerate(cases, 1):
        write(tmp_path, "pkg/work.py", 'WORK = "half"\n' + source)
        deadline = time.monotonic() + 20
        while server.count_lines("reload abandoned") < number:
            assert time.monotonic() < deadline, server.output
            time.sleep(0.05)
        line = [x for x in server.lines if "reload abandoned" in x][-1]
        assert "pkg.work (pkg/work.py) was still running after 1.5 s" in line, line
        assert re.search(where, line), line
        assert served(server) == before  # rolled back: not "half"
    write(tmp_path, "pkg/work.py", 'WORK = "work-v2"\n')
    assert settle(tmp_path, server) == {"work": "work-v2"}
    background.stop()
    assert background.failures == [], (background.failures, server.output)
    assert server.proc.poll() is None


def test_hang_in_a_module_the_edited_one_imports_names_that_module(tmp_path, start_server):
    server, background = serve(tmp_path, start_server, "--reload-timeout", "1")
    settle(tmp_path, server)
    write(tmp_path, "pkg/slow.py", "import time\ntime.sleep(60)\n")
    edit(tmp_path, "pkg/work.py", "WORK =", "from pkg import slow  # noqa\nWORK =")
    server.wait_for_line(r"reload abandoned: pkg\.slow \(pkg/slow\.py\)", timeout=20)
    assert served(server) == {"work": "work-v1"}
    write(tmp_path, "pkg/slow.py", "SLOW = 1\n")
    assert settle(tmp_path, server) == {"work": "work-v1"}
    edit(tmp_path, "pkg/work.py", "work-v1", "work-v3")
    assert settle(tmp_path, server) == {"work": "work-v3"}
    background.stop()
    assert background.failures == [], (background.failures, server.output)


def test_sys_exit_at_import_rolls_back_and_the_server_keeps_running(tmp_path, start_server):
    server, background = serve(tmp_path, start_server)
    before = settle(tmp_path, server)
    write(tmp_path, "pkg/work.py", 'import sys\nWORK = "half"\nsys.exit(3)\n')
    server.wait_for_line(r"reload failed in pkg\.work .*called sys\.exit\(3\)")
    assert served(server) == before
    write(tmp_path, "pkg/work.py", "raise SystemExit\n")
    server.wait_for_line(r"reload failed in pkg\.work .*called sys\.exit\(\)")
    assert served(server) == before
    write(tmp_path, "pkg/work.py", 'WORK = "work-v2"\n')
    assert settle(tmp_path, server) == {"work": "work-v2"}
    time.sleep(0.2)
    background.stop()
    assert background.failures == [], (background.failures, server.output)
    assert server.proc.poll() is None


INTEGRATION_FILES = {
    "pkg/__init__.py": "",
    # An integration of the app's own: one hook raises, another records what ran.
    "pkg/hooks.py": """
        from hmr_serve import integrations

        EXECUTED = []

        class Recorder(integrations.Integration):
            def module_executed(self, name, module):
                EXECUTED.append(name)

            def before_execute(self, modules):
                raise RuntimeError("a bug in an integration")

            def after_execute(self, modules, succeeded):
                raise KeyError("another")

        integrations.register(Recorder())
    """,
    "pkg/work.py": 'WORK = "work-v1"\n',
    "pkg/main.py": app_module(
        """
        from pkg import hooks
        from pkg import work

        def body():
            return {"work": work.WORK}

        async def executed(scope, receive, send):
            import json

            data = json.dumps(hooks.EXECUTED).encode()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": data})
        """
    ),
}


def test_integration_hook_that_raises_is_logged_and_skipped(tmp_path, start_server):
    for rel, text in INTEGRATION_FILES.items():
        write(tmp_path, rel, text)
    server = start_server("pkg.main:app", "--port", "0", "--no-access-log", cwd=tmp_path)
    executed_server = start_server(
        "pkg.main:executed", "--port", "0", "--no-access-log", cwd=tmp_path
    )
    background = Background(server.url)
    settle(tmp_path, server)
    first_imports = ["pkg", "pkg.hooks", "pkg.work", "pkg.main"]
    with executed_server.client() as client:
        assert client.get("/").json() == first_imports
    edit(tmp_path, "pkg/work.py", "work-v1", "work-v2")
    assert settle(tmp_path, server) == {"work": "work-v2"}
    # module_executed: first imports (after the registration), then each re-execution (main
    # reads only the submodule `pkg.work` while importing: it does not re-run).
    executed_server.wait_for_line(r"reloaded 1 module ")
    with executed_server.client() as client:
        assert client.get("/").json() == [*first_imports, "pkg.work"]
    server.wait_for_line(r"integration Recorder: before_execute raised; skipped")
    server.wait_for_line(r"integration Recorder: after_execute raised; skipped")
    assert "RuntimeError: a bug in an integration" in server.output  # the traceback
    # A failing edit still rolls back with the raising hooks in the way.
    write(tmp_path, "pkg/work.py", "WORK = 1 / 0\n")
    server.wait_for_line(r"reload failed in pkg\.work .*ZeroDivisionError")
    assert served(server) == {"work": "work-v2"}
    background.stop()
    assert background.failures == [], (background.failures, server.output)
