# One entry point for set-up, the demo and the tests. Everything lands in .venv; nothing is
# installed into the system Python.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export PYO3_PYTHON := $(abspath $(PY))

.PHONY: demo test test-rust test-python test-pythons wheel lint install bench browser

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

# The extension is one abi3 wheel for every Python from 3.10 on. `test-pythons` builds it once and
# runs a broad part of the suite with it on each other pyenv Python (3.11 is .venv's, which
# `test-python` covers in full), each in its own .venv-3.x; a Python that is not installed is
# skipped with a message (so is a free-threaded build: it cannot load an abi3 extension).
PYENV_VERSIONS ?= $(HOME)/.pyenv/versions
OTHER_PYTHONS ?= 3.10 3.12 3.13
WHEEL_DIR := target/abi3-wheel
# What differs between versions: the import system, code objects and class internals (reload,
# cutoff, identity), the server bridges, the frameworks (whose newest release differs by version:
# SQLAlchemy 2.0 on 3.10, Django 6 from 3.12), tomllib, tracebacks and argparse. About
# five minutes per version on a loaded 2-core machine; test-python runs everything on .venv.
VERSION_TESTS ?= $(addprefix tests/test_,$(addsuffix .py,reload reload_hard_cases reload_order \
	reload_storms reload_frameworks identity cutoff asgi_raw wsgi_raw fastapi starlette flask \
	flask_reload django sqlalchemy_reload config_sources overlay cli))

wheel: $(VENV)/.deps
	rm -rf $(WHEEL_DIR)
	$(VENV)/bin/maturin build --release --quiet --out $(WHEEL_DIR)

test-pythons: wheel
	@set -e; wheel=$$(ls $(WHEEL_DIR)/*abi3*.whl); \
	for v in $(OTHER_PYTHONS); do \
	  py=$$(ls -d $(PYENV_VERSIONS)/$$v.*/bin/python3 2>/dev/null | grep -E "/$$v\.[0-9]+/bin/" | sort -V | tail -n 1); \
	  if [ -z "$$py" ]; then echo "Python $$v is not installed under $(PYENV_VERSIONS): skipped"; continue; fi; \
	  venv=.venv-$$v; \
	  if [ ! $$venv/.deps -nt requirements-dev.txt ] || [ ! -x $$venv/bin/python ]; then \
	    rm -rf $$venv; $$py -m venv $$venv; \
	    $$venv/bin/python -m pip install -q --upgrade pip; \
	    $$venv/bin/python -m pip install -q -r requirements-dev.txt; \
	    touch $$venv/.deps; \
	  fi; \
	  $$venv/bin/python -m pip install -q --force-reinstall --no-deps $$wheel; \
	  $$venv/bin/python -m pip install -q $$wheel; \
	  echo "== Python $$($$venv/bin/python -c 'import platform; print(platform.python_version())'), $$wheel"; \
	  $$venv/bin/python -m pytest -q -p no:cacheprovider $(VERSION_TESTS); \
	done

test: test-rust test-python test-pythons

lint: $(VENV)/.deps
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings
	cargo clippy --all-targets --all-features -- -D warnings
	$(VENV)/bin/ruff check python tests bench examples
	$(VENV)/bin/ruff format --check python tests bench examples

bench: install
	$(PY) bench/run.py
