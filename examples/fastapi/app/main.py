"""Application entry point: ``hmr-serve app.main:app``."""

from fastapi import FastAPI

from .routes import router

app = FastAPI(title="hmr-serve FastAPI example")
app.include_router(router)
