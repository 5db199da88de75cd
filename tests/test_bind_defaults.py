"""Security defaults: the server is local unless told otherwise, and says so loudly when not."""

from __future__ import annotations

EXPOSED = "which other machines can reach"


def test_binds_loopback_by_default_without_a_warning(start_server):
    server = start_server("raw_asgi:app", "--port", "0", "--no-reload")
    assert server.url.startswith("http://127.0.0.1:"), server.url
    assert server.count_lines(EXPOSED) == 0, server.output


def test_binding_all_interfaces_warns(start_server):
    server = start_server("raw_asgi:app", "--host", "0.0.0.0", "--port", "0", "--no-reload")
    line = server.wait_for_line(EXPOSED)
    assert line.startswith("WARNING:"), line
    assert "0.0.0.0" in line
    with server.client() as c:
        assert c.get("/").status_code == 200


def test_other_loopback_addresses_do_not_warn(start_server):
    server = start_server("raw_asgi:app", "--host", "127.0.0.2", "--port", "0", "--no-reload")
    assert server.url.startswith("http://127.0.0.2:"), server.url
    assert server.count_lines(EXPOSED) == 0, server.output
