# orderguard — the commands a developer and CI use. `make help` lists them.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip install --quiet --disable-pip-version-check
LOCK   := requirements/constraints.txt
# pytest-xdist workers; CI=true makes PostgreSQL/NATS tests fail instead of skipping.
WORKERS ?= auto

.PHONY: help demo serve test check bench lock clean

help:
	@echo "make demo   create .venv, install, run the demo on SQLite + the sandbox provider"
	@echo "make test   install test tools and run the whole suite"
	@echo "make check  ruff + mypy (strict)"
	@echo "make serve  run the API on 127.0.0.1:8000 (SQLite in ./orderguard.db)"
	@echo "make bench  run the benchmarks in bench/ and rewrite docs/benchmarks.md"
	@echo "make lock   re-pin every dependency in $(LOCK)"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/python pyproject.toml $(LOCK)
	$(PIP) --upgrade pip
	$(PIP) -c $(LOCK) -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PIP) -c $(LOCK) -e '.[test]'
	touch $@

demo: $(VENV)/.installed
	$(BIN)/orderguard demo

serve: $(VENV)/.installed
	$(BIN)/orderguard serve

test: $(VENV)/.installed-test
	$(BIN)/pytest -n $(WORKERS) -p no:cacheprovider

check: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

bench: $(VENV)/.installed-test
	$(BIN)/python bench/run.py

lock: $(BIN)/python
	$(PIP) uv
	$(BIN)/uv pip compile pyproject.toml --extra test --python-version 3.11 -o $(LOCK)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache test-artifacts
