"""Flask test application."""

from __future__ import annotations

import hashlib

from flask import Flask, Response, jsonify, render_template_string, request, url_for

app = Flask(__name__)


@app.get("/")
def index():
    return "hello from flask"


@app.get("/hello/<name>")
def hello(name: str):
    return jsonify(greeting=f"hello {name}", args=request.args.to_dict())


@app.post("/form")
def form():
    return jsonify(form=request.form.to_dict())


@app.post("/json")
def json_body():
    return jsonify(received=request.get_json())


@app.post("/upload")
def upload():
    f = request.files["file"]
    data = f.read()
    return jsonify(filename=f.filename, size=len(data), sha256=hashlib.sha256(data).hexdigest())


@app.get("/template")
def template():
    return render_template_string(
        "<h1>{{ title }}</h1><ul>{% for i in items %}<li>{{ i }}</li>{% endfor %}</ul>",
        title=request.args.get("title", "untitled"),
        items=["a", "b", "c"],
    )


@app.get("/stream")
def stream():
    def gen():
        for i in range(3):
            yield f"line-{i}\n"

    return Response(gen(), mimetype="text/plain")


@app.get("/url")
def url():
    return jsonify(url=url_for("hello", name="x", _external=True), script_root=request.script_root)


@app.get("/boom")
def boom():
    raise RuntimeError("flask boom")
