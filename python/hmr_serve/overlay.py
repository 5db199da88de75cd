"""The error overlay: an exception as a readable HTML page (or a short JSON body), showing the
user's own frames with their source lines and collapsing library frames.

Only what the traceback says is shown: never local variable values, never the environment.
Everything taken from the exception or the source files is HTML-escaped.
"""

from __future__ import annotations

import html
import ipaddress
import json
import linecache
import os
import sysconfig
from dataclasses import dataclass
from types import TracebackType

from hmr_serve.logs import display_path

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
_CONTEXT_LINES = 2  # source lines shown before and after the failing one

#: The element id of the overlay, in the error page and injected into pages.
OVERLAY_ID = "hmr-serve-overlay"


def _library_prefixes() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    prefixes = {paths.get(key) for key in ("stdlib", "platstdlib", "purelib", "platlib")}
    prefixes.add(os.path.dirname(os.__file__))
    return tuple(sorted(os.path.abspath(p) + os.sep for p in prefixes if p))


_LIBRARY_PREFIXES = _library_prefixes()


def is_library_file(filename: str) -> bool:
    """Frames the user did not write: the standard library, installed packages, hmr-serve."""
    if filename.startswith("<"):  # <frozen importlib._bootstrap>, <string>
        return True
    path = os.path.abspath(filename)
    if path.startswith(_PACKAGE_DIR):
        return True
    parts = path.split(os.sep)
    if "site-packages" in parts or "dist-packages" in parts:
        return True
    return path.startswith(_LIBRARY_PREFIXES)


def may_see_errors(client_host: str | None, show_to_all: bool) -> bool:
    """Whether a client may see tracebacks: loopback (or Unix socket) clients only, unless the
    user chose to show them to everyone."""
    if show_to_all or client_host is None:
        return True
    try:
        address = ipaddress.ip_address(client_host.split("%", 1)[0])
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return bool(address.is_loopback or (mapped is not None and mapped.is_loopback))


def wants_html(accept: str | None) -> bool:
    return accept is not None and "text/html" in accept.lower()


def wants_json(accept: str | None) -> bool:
    accept = (accept or "").lower()
    return "application/json" in accept or "+json" in accept


@dataclass
class Frame:
    filename: str
    lineno: int
    function: str
    lines: list[tuple[int, str]]  # (line number, source text) around `lineno`


@dataclass
class Collapsed:
    count: int  # consecutive library frames shown as one line


def _source_around(filename: str, lineno: int) -> list[tuple[int, str]]:
    linecache.checkcache(filename)  # the file may have changed since it was cached
    first = max(1, lineno - _CONTEXT_LINES)
    lines = []
    for number in range(first, lineno + _CONTEXT_LINES + 1):
        text = linecache.getline(filename, number)
        if not text and number > lineno:
            break
        lines.append((number, text.rstrip("\r\n")))
    return lines


def frames(tb: TracebackType | None) -> list[Frame | Collapsed]:
    result: list[Frame | Collapsed] = []
    while tb is not None:
        code = tb.tb_frame.f_code
        if is_library_file(code.co_filename):
            if result and isinstance(result[-1], Collapsed):
                result[-1].count += 1
            else:
                result.append(Collapsed(1))
        else:
            lineno = tb.tb_lineno or 0
            result.append(
                Frame(
                    code.co_filename, lineno, code.co_name, _source_around(code.co_filename, lineno)
                )
            )
        tb = tb.tb_next
    return result


def _syntax_frame(exc: SyntaxError) -> Frame | None:
    """A syntax error happened in no frame: its location is the file it could not compile."""
    if not exc.filename or not exc.lineno:
        return None
    lines = _source_around(exc.filename, exc.lineno)
    if not any(number == exc.lineno for number, _ in lines) and exc.text:
        lines = [(exc.lineno, exc.text.rstrip("\r\n"))]
    return Frame(exc.filename, exc.lineno, "(compiling)", lines)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SyntaxError):
        return exc.msg or str(exc)
    return str(exc)


_STYLE = f"""
#{OVERLAY_ID}{{position:fixed;inset:0;z-index:2147483647;overflow:auto;margin:0;
padding:24px 32px;background:rgba(24,24,28,.96);color:#e8e8e8;text-align:left;
font:14px/1.45 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}}
#{OVERLAY_ID} h1{{font-size:20px;margin:0 0 4px;color:#ff6b6b;font-weight:600}}
#{OVERLAY_ID} .hmr-what{{color:#aaa;margin:0 0 16px}}
#{OVERLAY_ID} .hmr-frame{{margin:0 0 14px;background:#111;border-left:3px solid #ff6b6b;
padding:8px 12px}}
#{OVERLAY_ID} .hmr-where{{color:#8ab4f8;margin-bottom:4px}}
#{OVERLAY_ID} pre{{margin:0;white-space:pre-wrap;font:inherit}}
#{OVERLAY_ID} .hmr-line{{color:#888}}
#{OVERLAY_ID} .hmr-hit{{color:#fff;background:#5a1f1f}}
#{OVERLAY_ID} .hmr-collapsed{{color:#777;margin:0 0 14px;font-style:italic}}
#{OVERLAY_ID} .hmr-note{{color:#aaa;margin-top:18px}}
#{OVERLAY_ID} .hmr-close{{position:absolute;top:12px;right:16px;background:none;border:0;
color:#aaa;font:inherit;font-size:20px;cursor:pointer}}
"""


def _frame_html(frame: Frame | Collapsed) -> str:
    if isinstance(frame, Collapsed):
        noun = "frame" if frame.count == 1 else "frames"
        return f'<div class="hmr-collapsed">… {frame.count} library {noun} hidden</div>'
    width = len(str(frame.lines[-1][0])) if frame.lines else 1
    rows = []
    for number, text in frame.lines:
        css = "hmr-hit" if number == frame.lineno else "hmr-line"
        rows.append(f'<span class="{css}">{number:>{width}} | {html.escape(text)}</span>')
    where = (
        f"{html.escape(display_path(frame.filename))}, line {frame.lineno}, "
        f"in {html.escape(frame.function)}"
    )
    return (
        f'<div class="hmr-frame"><div class="hmr-where">{where}</div>'
        f"<pre>{chr(10).join(rows)}</pre></div>"
    )


def render_fragment(exc: BaseException, title: str, note: str = "") -> str:
    """The overlay as one self-contained element (with its own scoped style), for an error page
    or to inject into a page."""
    shown: list[Frame | Collapsed] = frames(exc.__traceback__)
    if isinstance(exc, SyntaxError):
        location = _syntax_frame(exc)
        if location is not None:
            shown.append(location)
    # The innermost frames matter most; a deep library stack stays one line each run.
    body = "".join(_frame_html(frame) for frame in shown)
    kind = html.escape(type(exc).__name__)
    message = html.escape(_describe(exc))
    note_html = f'<div class="hmr-note">{html.escape(note)}</div>' if note else ""
    return (
        f'<div id="{OVERLAY_ID}" role="alert"><style>{_STYLE}</style>'
        '<button class="hmr-close" title="Hide" onclick="this.parentNode.remove()">×</button>'
        f"<h1>{html.escape(title)}</h1>"
        f'<div class="hmr-what">{kind}: {message}</div>'
        f"{body}{note_html}</div>"
    )


def render_page(exc: BaseException, title: str, note: str = "") -> str:
    fragment = render_fragment(exc, title, note)
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title></head>"
        f'<body style="margin:0;background:#18181c">{fragment}</body></html>'
    )


def error_json(exc: BaseException) -> bytes:
    return json.dumps({"error": _describe(exc), "type": type(exc).__name__}).encode()


PLAIN_500 = b"Internal Server Error"


def request_error(
    exc: BaseException, accept: str | None, client_host: str | None, show_to_all: bool
) -> tuple[list[tuple[str, str]], bytes]:
    """Headers and body of the 500 answering a request whose app call raised `exc`."""
    if not may_see_errors(client_host, show_to_all):
        return [("content-type", "text/plain; charset=utf-8")], PLAIN_500
    if wants_html(accept):
        note = "The server log has the full traceback. Save a fix and this page reloads."
        body = render_page(exc, "Exception while handling the request", note).encode()
        return [("content-type", "text/html; charset=utf-8"), ("cache-control", "no-store")], body
    if wants_json(accept):
        return [("content-type", "application/json")], error_json(exc)
    text = f"{PLAIN_500.decode()}\n{type(exc).__name__}: {_describe(exc)}\n"
    return [("content-type", "text/plain; charset=utf-8")], text.encode()


def reload_failure_fragment(module: str, path: str | None, exc: BaseException) -> str:
    where = f" ({display_path(path)})" if path else ""
    note = "The previous code keeps serving; the next save retries."
    return render_fragment(exc, f"Reload failed in {module}{where}", note)
