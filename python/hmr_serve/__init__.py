"""hmr-serve: a development server for Python web apps that hot-reloads only what changed."""

from hmr_serve._core import __version__

__all__ = ["__version__"]
