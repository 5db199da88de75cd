"""uvicorn's flags with uvicorn's meanings: headers, proxy headers, TLS, logging, and clear
messages for the flags a development server does not take."""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import pty
import re
import ssl
import subprocess
import textwrap
import time
from pathlib import Path

import httpx
import pytest
from conftest import APPS_DIR, Server, hmr_cmd, run_cli, server_env

# Every uvicorn flag that makes sense for a development server, as `uvicorn --help` spells it.
UVICORN_FLAGS = [
    "--host",
    "--port",
    "--uds",
    "--fd",
    "--app-dir",
    "--factory",
    "--interface",
    "--env-file",
    "--log-level",
    "--access-log",
    "--no-access-log",
    "--log-config",
    "--root-path",
    "--proxy-headers",
    "--no-proxy-headers",
    "--forwarded-allow-ips",
    "--server-header",
    "--no-server-header",
    "--date-header",
    "--no-date-header",
    "--header",
    "--timeout-graceful-shutdown",
    "--ssl-keyfile",
    "--ssl-certfile",
    "--use-colors",
    "--no-use-colors",
    "--backlog",
    "--loop",
    "--http",
    "--lifespan",
    "--reload",
    "--reload-dir",
    "--reload-include",
    "--reload-exclude",
    "--reload-delay",
    "--workers",
    "--limit-max-requests",
    "--reset-contextvars",
]
# Added on other branches (HTTP limits, WebSockets): these pass once those are merged.
FLAGS_FROM_OTHER_BRANCHES = [
    "--limit-concurrency",
    "--limit-max-body",
    "--timeout-keep-alive",
    "--h11-max-incomplete-event-size",
    "--ws-max-size",
]


@pytest.fixture(scope="module")
def help_text() -> str:
    proc = run_cli(["--help"])
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.parametrize("flag", UVICORN_FLAGS + FLAGS_FROM_OTHER_BRANCHES)
def test_help_lists_uvicorn_flag(help_text, flag):
    # A flag in the usage line or option list, not a prefix of a longer one.
    assert re.search(rf"(^|[\s\[,]){re.escape(flag)}([\s=,\]]|$)", help_text, re.M), flag


def test_help_is_grouped(help_text):
    for group in ("network:", "TLS (https):", "HTTP:", "reload:", "logging:", "shutdown:"):
        assert group in help_text, group


# -- flags a development server does not take --------------------------------------


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--workers", "2"], "--workers is not supported"),
        (["--limit-max-requests", "100"], "--limit-max-requests is not supported"),
        (["--interface", "asgi2"], "asgi2 is not supported"),
        (["--ssl-keyfile-password", "x"], "--ssl-keyfile-password is not supported"),
        (["--ssl-cert-reqs", "2"], "--ssl-cert-reqs"),
        (["--http2"], "--http2 is not supported"),
    ],
)
def test_unsupported_flags_say_why(args, needle):
    proc = run_cli(["raw_asgi:app", "--port", "0", *args])
    assert proc.returncode == 2, proc.stderr
    assert needle in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_workers_1_and_uvicorn_no_ops_are_accepted(start_server):
    server = start_server(
        "raw_asgi:app",
        "--port",
        "0",
        "--workers",
        "1",
        "--http",
        "h11",
        "--timeout-worker-healthcheck",
        "5",
        "--ssl-version",
        "17",
        "--loop",
        "asyncio",
        "--interface",
        "asgi3",
        "--reload-delay",
        "0.1",
    )
    with server.client() as c:
        assert c.get("/").text == "hello from raw asgi"


# -- response headers --------------------------------------------------------------


@pytest.mark.parametrize("app", ["raw_asgi:app", "raw_wsgi:app"])
def test_default_headers(start_server, app):
    server = start_server(app, "--port", "0", "--header", "X-Env: dev", "--header", "x-two:2")
    with server.client() as c:
        r = c.get("/")
    assert r.headers["server"] == "hmr-serve"
    assert "date" in r.headers
    assert r.headers["x-env"] == "dev"
    assert r.headers["x-two"] == "2"


def test_no_server_and_no_date_header(start_server):
    server = start_server("raw_asgi:app", "--port", "0", "--no-server-header", "--no-date-header")
    with server.client() as c:
        r = c.get("/")
    assert r.status_code == 200
    assert "server" not in r.headers
    assert "date" not in r.headers


def test_app_headers_win_over_header_flag(start_server):
    server = start_server("raw_asgi:app", "--port", "0", "--header", "x-app:from-flag")
    with server.client() as c:
        r = c.get("/multi-header")
    assert r.headers.get_list("x-app") == ["raw"]
    assert r.headers.get_list("set-cookie") == ["a=1", "b=2"]


def test_bad_header_flag_is_a_clear_error():
    proc = run_cli(["raw_asgi:app", "--port", "0", "--header", "no-colon"])
    assert proc.returncode == 2
    assert "NAME:VALUE" in proc.stderr


# -- proxy headers -----------------------------------------------------------------

FORWARDED = {"X-Forwarded-For": "203.0.113.9, 127.0.0.1", "X-Forwarded-Proto": "https"}


def test_proxy_headers_from_trusted_peer_asgi(start_server):
    server = start_server("raw_asgi:app", "--port", "0")  # trusts 127.0.0.1 by default
    with server.client() as c:
        scope = c.get("/scope", headers=FORWARDED).json()
        plain = c.get("/scope").json()
    assert scope["client"] == ["203.0.113.9", 0]
    assert scope["scheme"] == "https"
    assert plain["client"][0] == "127.0.0.1"
    assert plain["scheme"] == "http"
    server.wait_for_line(r'INFO:     203\.0\.113\.9:0 - "GET /scope HTTP/1\.1" 200 OK')


def test_proxy_headers_from_trusted_peer_wsgi(start_server):
    server = start_server("raw_wsgi:app", "--port", "0", "--forwarded-allow-ips", "127.0.0.0/8")
    with server.client() as c:
        environ = c.get("/environ", headers=FORWARDED).json()
    assert environ["REMOTE_ADDR"] == "203.0.113.9"
    assert environ["wsgi.url_scheme"] == "https"


@pytest.mark.parametrize(
    "args", [("--forwarded-allow-ips", "10.9.9.9"), ("--no-proxy-headers",)], ids=str
)
def test_proxy_headers_ignored_when_untrusted_or_off(start_server, args):
    asgi = start_server("raw_asgi:app", "--port", "0", *args)
    wsgi = start_server("raw_wsgi:app", "--port", "0", *args)
    with asgi.client() as c:
        scope = c.get("/scope", headers=FORWARDED).json()
    with wsgi.client() as c:
        environ = c.get("/environ", headers=FORWARDED).json()
    assert scope["client"][0] == "127.0.0.1"
    assert scope["scheme"] == "http"
    assert environ["REMOTE_ADDR"] == "127.0.0.1"
    assert environ["wsgi.url_scheme"] == "http"


def test_forwarded_allow_ips_from_environment(start_server):
    server = start_server("raw_asgi:app", "--port", "0", env={"FORWARDED_ALLOW_IPS": "10.0.0.1"})
    with server.client() as c:
        scope = c.get("/scope", headers=FORWARDED).json()
    assert scope["client"][0] == "127.0.0.1"


# -- TLS ---------------------------------------------------------------------------


def _self_signed(directory: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    certfile, keyfile = directory / "cert.pem", directory / "key.pem"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return certfile, keyfile


def _start_tls(app: str, *args: str) -> Server:
    """conftest's ready line matches http:// only; this one waits for https://."""
    server = Server(app, ("--port", "0", *args), APPS_DIR, None)
    try:
        line = server.wait_for_line(r"serving https://\S+ \((ASGI|WSGI)", timeout=60)
    except AssertionError:
        server.kill()
        raise
    server.url = re.search(r"(https://\S+)", line).group(1)
    return server


@pytest.mark.parametrize("app", ["raw_asgi:app", "raw_wsgi:app"])
def test_tls_with_self_signed_certificate(tmp_path, app):
    certfile, keyfile = _self_signed(tmp_path)
    server = _start_tls(app, "--ssl-certfile", str(certfile), "--ssl-keyfile", str(keyfile))
    try:
        context = ssl.create_default_context(cafile=str(certfile))
        with httpx.Client(verify=context, timeout=30) as c:
            path = "/scope" if "asgi" in app else "/environ"
            info = c.get(server.url + path).json()
            assert c.get(server.url + "/").status_code == 200
        assert info.get("scheme", info.get("wsgi.url_scheme")) == "https"
        # A client that does not trust the certificate fails the handshake; the server lives.
        with pytest.raises(httpx.ConnectError), httpx.Client(timeout=30) as c:
            c.get(server.url + "/")
        with httpx.Client(verify=context, timeout=30) as c:
            assert c.get(server.url + "/").status_code == 200
    finally:
        server.kill()


def test_tls_key_inside_certfile(tmp_path):
    certfile, keyfile = _self_signed(tmp_path)
    combined = tmp_path / "combined.pem"
    combined.write_bytes(certfile.read_bytes() + keyfile.read_bytes())
    server = _start_tls("raw_asgi:app", "--ssl-certfile", str(combined))
    try:
        context = ssl.create_default_context(cafile=str(certfile))
        with httpx.Client(verify=context, timeout=30) as c:
            assert c.get(server.url + "/").text == "hello from raw asgi"
    finally:
        server.kill()


@pytest.mark.parametrize("broken", ["missing", "not-pem", "wrong-key"])
def test_tls_bad_files_are_clear_errors(tmp_path, broken):
    certfile, keyfile = _self_signed(tmp_path)
    if broken == "missing":
        certfile = tmp_path / "nope.pem"
    elif broken == "not-pem":
        keyfile.write_text("hello\n")
    else:  # a valid key, but not the certificate's
        other = tmp_path / "other"
        other.mkdir()
        _, keyfile = _self_signed(other)
    tls_args = ["--ssl-certfile", str(certfile), "--ssl-keyfile", str(keyfile)]
    proc = run_cli(["raw_asgi:app", "--port", "0", *tls_args])
    assert proc.returncode != 0
    assert "ERROR:" in proc.stderr, proc.stderr
    assert "panicked" not in proc.stderr
    needle = {"missing": "nope.pem", "not-pem": "key.pem", "wrong-key": "do not fit"}[broken]
    assert needle in proc.stderr, proc.stderr


# -- logging -----------------------------------------------------------------------

LOG_FILE_FORMAT = "%(name)s|%(levelname)s|%(message)s"


def _log_config(tmp_path: Path, kind: str, logfile: Path) -> Path:
    if kind == "ini":
        path = tmp_path / "logging.ini"
        path.write_text(
            textwrap.dedent(
                f"""\
                [loggers]
                keys=root,hmr_serve,access

                [handlers]
                keys=file

                [formatters]
                keys=plain

                [logger_root]
                level=WARNING
                handlers=

                [logger_hmr_serve]
                level=INFO
                handlers=file
                qualname=hmr_serve
                propagate=0

                [logger_access]
                level=INFO
                handlers=file
                qualname=hmr_serve.access
                propagate=0

                [handler_file]
                class=FileHandler
                formatter=plain
                args=({str(logfile)!r},)

                [formatter_plain]
                format={LOG_FILE_FORMAT}
                """
            )
        )
        return path
    config = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"format": LOG_FILE_FORMAT}},
        "handlers": {
            "file": {"class": "logging.FileHandler", "filename": str(logfile), "formatter": "plain"}
        },
        "loggers": {
            "hmr_serve": {"handlers": ["file"], "level": "INFO", "propagate": False},
            "hmr_serve.access": {"handlers": ["file"], "level": "INFO", "propagate": False},
        },
    }
    if kind == "json":
        path = tmp_path / "logging.json"
        path.write_text(json.dumps(config))
    else:
        import yaml

        path = tmp_path / "logging.yaml"
        path.write_text(yaml.safe_dump(config))
    return path


def _wait_for_file_line(path: Path, pattern: str, timeout: float = 20.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        lines = path.read_text().splitlines() if path.exists() else []
        if any(re.search(pattern, line) for line in lines):
            return lines
        if time.monotonic() > deadline:
            raise AssertionError(f"{pattern!r} not in {path}: {lines}")
        time.sleep(0.05)


@pytest.mark.parametrize("kind", ["json", "yaml", "ini"])
def test_log_config_is_applied(tmp_path, kind):
    logfile = tmp_path / "server.log"
    config = _log_config(tmp_path, kind, logfile)
    server = Server("raw_asgi:app", ("--port", "0", "--log-config", str(config)), APPS_DIR, None)
    try:
        # The "serving" line goes to the file, in the file's format, not to stderr.
        lines = _wait_for_file_line(logfile, r"^hmr_serve\|INFO\|serving http://")
        url = re.search(r"serving (http://\S+)", "\n".join(lines)).group(1)
        with httpx.Client(timeout=30) as c:
            assert c.get(url + "/").status_code == 200
        access = r'^hmr_serve\.access\|INFO\|127\.0\.0\.1:\d+ - "GET / HTTP/1\.1" 200'
        _wait_for_file_line(logfile, access)
        assert server.count_lines(r"serving|GET /") == 0, server.output
        assert server.stop() == 0, server.output
        _wait_for_file_line(logfile, r"^hmr_serve\|INFO\|Finished server process")
    finally:
        server.kill()


def test_log_config_missing_file_is_a_clear_error(tmp_path):
    proc = run_cli(["raw_asgi:app", "--port", "0", "--log-config", str(tmp_path / "nope.json")])
    assert proc.returncode != 0
    assert "nope.json" in proc.stderr and "ERROR:" in proc.stderr, proc.stderr


ANSI = "\x1b["


def test_no_colours_when_stderr_is_not_a_terminal(start_server):
    server = start_server("raw_asgi:app", "--port", "0")
    with server.client() as c:
        c.get("/")
    server.wait_for_line(r'"GET / HTTP/1\.1" 200 OK$')
    assert ANSI not in server.output


def test_use_colors_forces_colours(start_server):
    server = start_server("raw_asgi:app", "--port", "0", "--use-colors")
    with server.client() as c:
        c.get("/")
    server.wait_for_line(re.escape(f'"{ANSI}1mGET / HTTP/1.1{ANSI}0m" {ANSI}32m200 OK'))
    assert any(line.startswith(f"{ANSI}32mINFO{ANSI}0m:     ") for line in server.lines)


def test_colours_on_a_terminal_and_off_with_no_use_colors(tmp_path):
    def first_lines(*extra: str) -> str:
        leader, follower = pty.openpty()
        proc = subprocess.Popen(
            hmr_cmd("raw_asgi:app", "--port", "0", "--no-reload", *extra),
            cwd=APPS_DIR,
            env=server_env(),
            stdin=subprocess.DEVNULL,
            stdout=follower,
            stderr=follower,
            start_new_session=True,
        )
        os.close(follower)
        output = b""
        deadline = time.monotonic() + 60
        try:
            while b"serving" not in output and time.monotonic() < deadline:
                try:
                    output += os.read(leader, 4096)
                except OSError:
                    break
        finally:
            proc.kill()
            proc.wait()
            os.close(leader)
        text = output.decode(errors="replace")
        assert "serving" in text, text
        return text

    assert ANSI in first_lines()
    assert ANSI not in first_lines("--no-use-colors")


def test_failed_reload_names_file_and_line(start_server, tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    routes = tmp_path / "pkg" / "routes.py"
    routes.write_text("MESSAGE = b'one'\n")
    (tmp_path / "main.py").write_text(
        textwrap.dedent(
            """\
            from pkg import routes

            async def app(scope, receive, send):
                if scope["type"] != "http":
                    return
                await send({"type": "http.response.start", "status": 200, "headers": []})
                await send({"type": "http.response.body", "body": routes.MESSAGE})
            """
        )
    )
    server = start_server("main:app", "--port", "0", "--lifespan", "off", cwd=tmp_path)
    routes.write_text("MESSAGE = b'two'\n\n\ndef broken(:\n    pass\n")
    line = server.wait_for_line(r"reload failed in pkg\.routes", timeout=30)
    assert re.search(r"SyntaxError at pkg/routes\.py:4\b", line), line
    assert line.startswith("ERROR:"), line
    routes.write_text("MESSAGE = b'three'\n\nVALUE = 1 / 0\n")
    line = server.wait_for_line(r"reload failed in pkg\.routes with ZeroDivisionError", timeout=30)
    assert "at pkg/routes.py:3" in line, line
    with server.client() as c:
        assert c.get("/").content == b"one"


CONTEXT_APP = """\
import contextvars

var = contextvars.ContextVar("v", default="unset")
var.set("import")


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    seen = var.get()
    var.set("request")
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": seen.encode()})
"""


@pytest.mark.parametrize(
    ("flag", "expected"), [((), b"import"), (("--reset-contextvars",), b"unset")]
)
def test_reset_contextvars(start_server, tmp_path, flag, expected):
    (tmp_path / "ctxapp.py").write_text(CONTEXT_APP)
    server = start_server("ctxapp:app", "--port", "0", "--lifespan", "off", *flag, cwd=tmp_path)
    with server.client() as c:
        # The second request must not see what the first one set either way.
        assert [c.get("/").content for _ in range(2)] == [expected, expected]
