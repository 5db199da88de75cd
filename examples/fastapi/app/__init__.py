"""Example FastAPI service served by hmr-serve."""
