"""`hmr-serve test [pytest args]`: pytest in a warm interpreter that, on every save, reloads the
changed modules in place and runs only the tests the change affects (testing/command.py)."""

from hmr_serve.testing.command import main

__all__ = ["main"]
