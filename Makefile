# One entry point for set-up, the demo and the tests. Everything lands in .venv; nothing is
# installed into the system Python.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export PYO3_PYTHON := $(abspath $(PY))

.PHONY: demo test test-rust test-python lint install bench browser

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

# The live-reload test drives a real headless Chromium: installed from Debian's packages when
# missing and this user may (root or sudo); otherwise that one test is skipped, and says why.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	{ command -v apt-get >/dev/null 2>&1 && \
	  { [ "$$(id -u)" -eq 0 ] && S= || S=sudo; \
	    $$S apt-get update -qq && $$S apt-get install -y -qq chromium >/dev/null; }; } || \
	echo "chromium unavailable: the browser test in tests/test_livereload.py will be skipped"

test-python: install browser
	$(PY) -m pytest -q

test: test-rust test-python

lint: $(VENV)/.deps
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings
	cargo clippy --all-targets --all-features -- -D warnings
	$(VENV)/bin/ruff check python tests bench examples
	$(VENV)/bin/ruff format --check python tests bench examples

bench: install
	$(PY) bench/run.py
