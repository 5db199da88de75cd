"""Factories for --factory tests."""

from __future__ import annotations


def raising_factory():
    raise ValueError("factory failed on purpose")


def wsgi_factory():
    from raw_wsgi import app

    return app
