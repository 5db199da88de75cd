"""A raw PEP 3333 WSGI application (no framework) used by the end-to-end tests."""

from __future__ import annotations

import hashlib
import json
import os
import random
import sys
import time
from urllib.parse import parse_qs

from _markers import mark


def json_response(start_response, data, status: str = "200 OK"):
    body = json.dumps(data).encode()
    start_response(
        status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    return [body]


def text_response(start_response, text: str, status: str = "200 OK"):
    body = text.encode()
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def describe_environ(environ) -> dict:
    out = {}
    for key, value in environ.items():
        if isinstance(value, str):
            out[key] = value
        elif isinstance(value, (bool, int, float)) or value is None:
            out[key] = value
        elif isinstance(value, tuple):
            out[key] = list(value)
        else:
            out[key] = f"<{type(value).__name__}>"
    wsgi_input = environ["wsgi.input"]
    errors = environ["wsgi.errors"]
    out["_checks"] = {
        "all_keys_str": all(type(k) is str for k in environ),
        "cgi_values_str": all(
            type(v) is str for k, v in environ.items() if k.isupper() and "." not in k
        ),
        "wsgi_version_is_tuple": isinstance(environ.get("wsgi.version"), tuple),
        "input_methods": sorted(
            name
            for name in ("read", "readline", "readlines", "__iter__")
            if hasattr(wsgi_input, name)
        ),
        "errors_methods": sorted(
            name for name in ("write", "writelines", "flush") if hasattr(errors, name)
        ),
    }
    return out


class ClosingIterable:
    """Response iterable that records when the server calls close()."""

    def __init__(self, tag: str, parts: list[bytes], fail_after: int | None = None):
        self.tag = tag
        self.parts = parts
        self.fail_after = fail_after

    def __iter__(self):
        for index, part in enumerate(self.parts):
            if self.fail_after is not None and index == self.fail_after:
                raise RuntimeError("boom in wsgi iterator")
            yield part
            if self.fail_after is not None:
                # Give the server time to put the first part on the wire.
                time.sleep(0.05)

    def close(self):
        mark(f"closed:{self.tag}")


def read_input(environ, mode: str):
    stream = environ["wsgi.input"]
    if mode == "read":
        return stream.read()
    if mode == "read-sized":
        parts = []
        while True:
            part = stream.read(3)
            if not part:
                break
            parts.append(part)
        return parts
    if mode == "readline":
        lines = []
        while True:
            line = stream.readline()
            if not line:
                break
            lines.append(line)
        return lines
    if mode == "readline-sized":
        lines = []
        while True:
            line = stream.readline(4)
            if not line:
                break
            lines.append(line)
        return lines
    if mode == "readlines":
        return stream.readlines()
    if mode == "iter":
        return list(stream)
    raise ValueError(mode)


def app(environ, start_response):
    path = environ.get("PATH_INFO", "")
    query = parse_qs(environ.get("QUERY_STRING", ""))

    def arg(name: str, default: str) -> str:
        return query.get(name, [default])[0]

    if path == "/":
        return text_response(start_response, "hello from raw wsgi")
    if path.startswith("/environ"):
        info = describe_environ(environ)
        info["_body"] = environ["wsgi.input"].read().decode("latin-1")
        return json_response(start_response, info)
    if path == "/read":
        mode = arg("mode", "read")
        result = read_input(environ, mode)
        if isinstance(result, bytes):
            data = {"body": result.decode("latin-1")}
        else:
            data = {"parts": [p.decode("latin-1") for p in result]}
        return json_response(start_response, data)
    if path == "/sha256":
        stream = environ["wsgi.input"]
        digest = hashlib.sha256()
        length = 0
        while True:
            chunk = stream.read(65536)
            if not chunk:
                break
            digest.update(chunk)
            length += len(chunk)
        return json_response(start_response, {"sha256": digest.hexdigest(), "length": length})
    if path == "/download":
        size = int(arg("size", "0"))
        data = random.Random(int(arg("seed", "0"))).randbytes(size)
        start_response(
            "200 OK",
            [("Content-Type", "application/octet-stream"), ("Content-Length", str(size))],
        )
        step = 64 * 1024
        return (data[i : i + step] for i in range(0, size, step))
    if path == "/generator":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return ClosingIterable(arg("tag", "generator"), [b"one ", b"two ", b"three"])
    if path == "/big-generator":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return ClosingIterable(arg("tag", "big-generator"), [b"x" * 65536] * 256)
    if path == "/generator-error":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return ClosingIterable(
            arg("tag", "generator-error"), [b"first part ", b"never sent"], fail_after=1
        )
    if path == "/write":
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"written ")
        return [b"and returned"]
    if path == "/exc-info":
        start_response("200 OK", [("Content-Type", "text/plain")])
        try:
            raise ValueError("handled failure")
        except ValueError:
            start_response(
                "500 Internal Server Error",
                [("Content-Type", "text/plain"), ("X-Exc-Info", "yes")],
                sys.exc_info(),
            )
        return [b"handled error"]
    if path == "/slow":
        mark("wsgi-slow-started")
        time.sleep(float(arg("seconds", "1")))
        mark("wsgi-slow-finished")
        return text_response(start_response, "slow done")
    if path == "/fast":
        return text_response(start_response, "fast")
    if path == "/error":
        raise RuntimeError("wsgi boom before start")
    if path == "/errors-stream":
        environ["wsgi.errors"].write("message to wsgi.errors stream\n")
        environ["wsgi.errors"].flush()
        return text_response(start_response, "logged")
    if path == "/env":
        return json_response(start_response, {"value": os.environ.get(arg("name", ""))})
    return text_response(start_response, "not found", "404 Not Found")


def star_args_app(*args):
    """A WSGI app whose signature hides its interface, for --interface wsgi."""
    return app(*args)
