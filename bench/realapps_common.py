"""What bench/realapps.py needs to know about a real app (RealApp, Edit), and plain HTTP with
headers and bodies against it."""

from __future__ import annotations

import http.client
import json
import shutil
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Edit:
    """One save: `old` replaced by `new` in `path` (`old` None: `new` appended). `shows` tells,
    from the status and JSON body of a GET of `probe`, whether the server serves the edit."""

    name: str
    path: str
    old: str | None
    new: str
    probe: str
    shows: Callable[[int, Any], bool]

    def apply(self, text: str) -> str:
        if self.old is None:
            return text + self.new
        if self.old not in text:
            raise ValueError(f"{self.path} no longer contains {self.old!r}: update the edit")
        return text.replace(self.old, self.new, 1)


@dataclass
class RealApp:
    name: str
    source: Path  # the local checkout
    python: Path  # its venv's interpreter, with hmr-serve and the usual reloader installed
    copy: list[str]  # what of the checkout a server needs (each server gets its own copy)
    make_dirs: list[str]
    env: dict[str, str]
    spec: str
    reloader: str  # the app's usual reloader, as named in the tables
    reloader_args: list[str]  # its command line after the interpreter, less --port
    fresh_args: list[str]  # a server without reload (the oracle), less --port
    background: str  # what the background client GETs throughout
    edits: list[Edit]
    public: list[str]  # compared with a fresh server after each edit
    signed_in: list[str] = field(default_factory=list)  # the same, with the login's token
    login: tuple[str, dict[str, str]] | None = None  # form POST answering {"access_token"}

    def make_copy(self, into: Path) -> Path:
        into.mkdir(parents=True)
        for name in self.copy:
            source = self.source / name
            if source.is_dir():
                shutil.copytree(source, into / name, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(source, into / name)
        for name in self.make_dirs:
            (into / name).mkdir(parents=True, exist_ok=True)
        return into


def request(
    port: int,
    path: str,
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    form: dict[str, str] | None = None,
    timeout: float = 10.0,
) -> tuple[int, Any]:
    """One request on a fresh connection: the status and the JSON body (or its text)."""
    body = urllib.parse.urlencode(form).encode() if form is not None else None
    headers = dict(headers or {})
    if body is not None:
        headers["content-type"] = "application/x-www-form-urlencoded"
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        raw = response.read()
    finally:
        conn.close()
    try:
        return response.status, json.loads(raw)
    except ValueError:
        return response.status, raw.decode(errors="replace")
