"""Raw WSGI app for the throughput bench: `/` hello world, `/stream` 1 MB in 64 KB chunks,
`/upload` reads the whole request body and answers its size."""

CHUNK = b"x" * 65536
STREAM_CHUNKS = 16  # 16 × 64 KB = 1 MB
HELLO = b"Hello, world!"


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/stream":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return (CHUNK for _ in range(STREAM_CHUNKS))
    if path == "/upload":
        remaining = int(environ.get("CONTENT_LENGTH") or 0)
        stream, size = environ["wsgi.input"], 0
        while remaining > 0:
            data = stream.read(min(remaining, 65536))
            if not data:
                break
            size += len(data)
            remaining -= len(data)
        body = str(size).encode()
    else:
        body = HELLO
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
