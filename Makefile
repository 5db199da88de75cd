# One entry point for set-up, the demo and the tests. Everything lands in .venv; nothing is
# installed into the system Python.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export PYO3_PYTHON := $(abspath $(PY))

.PHONY: demo test test-rust test-python test-pythons test-portable wheel lint lint-macos install \
  bench bench-hmr-venv browser

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

# The live-reload tests drive a real headless Chromium: installed from Debian's packages when
# missing and this user may (root or sudo); otherwise those tests are skipped, and say why.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	{ command -v apt-get >/dev/null 2>&1 && \
	  { [ "$$(id -u)" -eq 0 ] && S= || S=sudo; \
	    $$S apt-get update -qq && $$S apt-get install -y -qq chromium >/dev/null; }; } || \
	echo "chromium unavailable: the browser tests in tests/test_livereload.py will be skipped"

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

# The code paths of platforms without eventfd and inotify close-after-write (macOS), tested on
# Linux: an unoptimised build with the `portable` feature goes into target/portable-site, which
# PYTHONPATH puts in front of .venv's own build, and the reload, ASGI, live-reload and restart
# tests run against it (under two minutes here, plus the incremental build).
PORTABLE_SITE := target/portable-site
PORTABLE_TESTS ?= $(addprefix tests/test_,$(addsuffix .py,reload reload_hard_cases reload_order \
	reload_storms reload_frameworks asgi_raw livereload restart))

test-portable: $(VENV)/.deps browser
	rm -rf $(PORTABLE_SITE) target/portable-wheel
	$(VENV)/bin/maturin build --quiet --features portable --out target/portable-wheel
	$(PY) -m pip install -q --no-deps --target $(PORTABLE_SITE) target/portable-wheel/*.whl
	PYTHONPATH=$(abspath $(PORTABLE_SITE)) $(PY) -c 'import sys, hmr_serve._core as core; \
	  sys.exit(0 if core.PORTABLE_PATHS else "not the portable build: " + core.__file__)'
	PYTHONPATH=$(abspath $(PORTABLE_SITE)) $(PY) -m pytest -q -p no:cacheprovider $(PORTABLE_TESTS)

test: test-rust test-python test-portable test-pythons

# macOS is type-checked, not built: Debian has no macOS SDK, without which the C parts of ring and
# mimalloc cannot be compiled for it. Their build scripts only compile and link that C, which a
# check never links, so they are overridden (Cargo's `links` override, named after ring's
# version); psm's assembly builds with Debian's clang. The target and clang are added when
# missing and this user may; otherwise the check is skipped, and says why.
APPLE_TARGET := aarch64-apple-darwin
RING_LINKS := ring_core_$(subst .,_,$(shell sed -n '/^name = "ring"$$/{n;s/^version = "\(.*\)"/\1/p;}' Cargo.lock))_

lint-macos:
	@rustup target list --installed 2>/dev/null | grep -qx $(APPLE_TARGET) || \
	rustup target add $(APPLE_TARGET) >/dev/null 2>&1 || true
	@command -v clang >/dev/null 2>&1 || { command -v apt-get >/dev/null 2>&1 && \
	  { [ "$$(id -u)" -eq 0 ] && S= || S=sudo; \
	    $$S apt-get update -qq && $$S apt-get install -y -qq clang >/dev/null; }; } || true
	@if rustup target list --installed 2>/dev/null | grep -qx $(APPLE_TARGET) && \
	    command -v clang >/dev/null 2>&1; then \
	  echo "cargo clippy --target $(APPLE_TARGET)"; \
	  CC_aarch64_apple_darwin=clang cargo clippy --target $(APPLE_TARGET) --all-targets \
	    --config 'target.$(APPLE_TARGET).$(RING_LINKS).rustc-link-lib=[]' \
	    --config 'target.$(APPLE_TARGET).mimalloc.rustc-link-lib=[]' -- -D warnings; \
	else echo "the $(APPLE_TARGET) target or clang is unavailable: the macOS check is skipped"; fi

lint: $(VENV)/.deps lint-macos
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings
	cargo clippy --all-targets --all-features -- -D warnings
	$(VENV)/bin/ruff check python tests bench examples
	$(VENV)/bin/ruff format --check python tests bench examples

# hmr, which bench/propagation.py compares with, needs Python 3.12+: its own venv, from pyenv's
# newest 3.12 (else 3.13, else python3.12/3.13 on PATH). Without one the benchmark skips hmr
# and says so.
HMR_VENV := bench/.work/venv-hmr
bench-hmr-venv: $(HMR_VENV)/.deps

$(HMR_VENV)/.deps: bench/requirements-hmr.txt
	@set -e; py=; \
	for v in 3.12 3.13; do \
	  [ -n "$$py" ] || py=$$(ls -d $(PYENV_VERSIONS)/$$v.*/bin/python3 2>/dev/null | grep -E "/$$v\.[0-9]+/bin/" | sort -V | tail -n 1); \
	  [ -n "$$py" ] || py=$$(command -v python$$v || true); \
	done; \
	if [ -z "$$py" ]; then echo "no Python 3.12+: bench/propagation.py will skip hmr"; exit 0; fi; \
	rm -rf $(HMR_VENV); $$py -m venv $(HMR_VENV); \
	$(HMR_VENV)/bin/python -m pip install -q --upgrade pip; \
	$(HMR_VENV)/bin/python -m pip install -q -r bench/requirements-hmr.txt; \
	touch $@

bench: install $(HMR_VENV)/.deps
	$(PY) bench/run.py
