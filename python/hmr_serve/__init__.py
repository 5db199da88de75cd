"""hmr-serve: a development server for Python web apps that hot-reloads only what changed."""

from hmr_serve._core import __version__
from hmr_serve.state import keep, on_dispose

__all__ = ["__version__", "keep", "on_dispose"]
