# One entry point for set-up, the demo and the tests. Everything lands in .venv; nothing is
# installed into the system Python.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export PYO3_PYTHON := $(abspath $(PY))

.PHONY: demo test test-rust test-python lint install bench

$(VENV)/.deps: requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

install: $(VENV)/.deps
	$(PY) -m pip install -q .

demo: install
	cd examples/fastapi && ../../$(VENV)/bin/hmr-serve app.main:app

test-rust: $(VENV)/.deps
	cargo test --no-default-features

test-python: install
	$(PY) -m pytest -q

test: test-rust test-python

lint: $(VENV)/.deps
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings
	$(VENV)/bin/ruff check python tests bench examples
	$(VENV)/bin/ruff format --check python tests bench examples

bench: install
	$(PY) bench/run.py
