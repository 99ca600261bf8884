# Two commands a newcomer needs; each installs what it needs into .venv first.
#   make demo   - install, then the main job: complete masked videos with mae_hvm1_none (fetches its 2.6 GB of weights once)
#                 VIDEOS="a.mp4 dir/" picks the videos (default: a synthetic sample clip), OUT=DIR the output
#   make test   - install and run the test suite (all of it; `make test-fast` leaves out the slow end-to-end runs)
#   make check  - ruff (lint and format) and mypy as pyproject.toml configures them (CI runs it before `make test`)
#   make quickstart - install and run the offline first example (small random-weight models)
#   make docs   - install the docs extra and build the documentation site into site/ (mkdocs build --strict)
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
TORCH  ?= torch==2.13.0

.PHONY: install test test-fast check demo quickstart docs

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[test]"
	touch $@

install: $(VENV)/.installed

$(VENV)/.checkers: $(VENV)/.installed
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

test: install
	$(PY) -m pytest -q $(PYTEST_ARGS)

test-fast: install
	$(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

$(VENV)/.docs: $(VENV)/.installed
	$(PY) -m pip install -q -e ".[docs]"
	touch $@

docs: $(VENV)/.docs
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

check: $(VENV)/.checkers
	$(VENV)/bin/ruff check src tests benchmarks examples hubconf.py docs
	$(VENV)/bin/ruff format --check src tests benchmarks examples hubconf.py docs
	$(VENV)/bin/mypy

demo: install
	$(VENV)/bin/hvm1 complete $(VIDEOS) --model mae_hvm1_none --mask-type center $(if $(OUT),--out-dir $(OUT))

quickstart: install
	$(PY) examples/quickstart.py
