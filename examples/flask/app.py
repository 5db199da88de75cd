"""Minimal Flask example: ``hmr-serve app:app`` (run from examples/flask)."""

from __future__ import annotations

from flask import Flask, jsonify, render_template, request

app = Flask(__name__)

GUESTBOOK: list[str] = []


@app.get("/")
def index():
    name = request.args.get("name", "world")
    return render_template("index.html", name=name, entries=GUESTBOOK)


@app.post("/sign")
def sign():
    entry = request.form.get("entry", "").strip()
    if entry:
        GUESTBOOK.append(entry)
    return render_template("index.html", name="guest", entries=GUESTBOOK), 201


@app.get("/api/health")
def health():
    return jsonify(status="ok", entries=len(GUESTBOOK))
