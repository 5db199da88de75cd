"""Imports a module that does not exist (an ImportError inside user code)."""

import definitely_missing_dependency_xyz  # noqa: F401

app = None
