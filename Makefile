# orderguard — the commands a developer and CI use. `make help` lists them.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip install --quiet --disable-pip-version-check
LOCK   := requirements/constraints.txt
# pytest-xdist workers (work-stealing: a worker that runs out takes tests queued on another,
# so the long end-to-end tests do not end the run on one worker); CI=true makes
# PostgreSQL/NATS tests fail instead of skipping. One and a half per core: the suite waits
# more than it computes (the end-to-end tests wait on subprocesses, timers and faulted
# networks); on 2 cores, 3 workers kept the machine 71-72 % busy and took 14 min, 2 took 27.
WORKERS ?= $(shell echo $$(( ($$(nproc) * 3 + 1) / 2 )))

# The shopper's checkout script (@orderguard/checkout), built with npm's tools.
JS := clients/js

# make test-deep: how many fresh random demo seeds to add to the fixed ones.
DEEP_SEEDS ?= 10

.PHONY: help demo shop serve test js-test test-deep mutants check bench chaos lock clean

help:
	@echo "make demo   create .venv, install, run the demo on SQLite + the sandbox provider"
	@echo "make test   install test tools and run the whole suite (js-test first)"
	@echo "make js-test  the checkout script in $(JS): npm ci from its lock file, type check,"
	@echo "            unit tests, build and size budget"
	@echo "make test-deep  the property tests with fresh random examples (2000 each) and the"
	@echo "            demo on $(DEEP_SEEDS) random seeds more (slow; see docs/testing.md)"
	@echo "make mutants  break the code on purpose in a temporary copy, one mistake at a time,"
	@echo "            and check the tests notice; rewrites docs/mutants.md"
	@echo "make check  ruff + mypy (strict) + lint-imports (the import rules, .importlinter)"
	@echo "make shop   the example shop (examples/shop/): orderguard serve, the sandbox and"
	@echo "            a checkout page on 127.0.0.1:8080, with the checkout script built"
	@echo "make serve  run the API on 127.0.0.1:8000 (SQLite in ./orderguard.db)"
	@echo "make bench  run the benchmarks in bench/ and rewrite docs/benchmarks.md"
	@echo "make chaos  the demo's storm across real network faults (root: network namespaces,"
	@echo "            nftables), every scenario at length; rewrites docs/chaos.md"
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

# The example shop: its checkout page needs the built checkout script (dist/: npm ci, build).
shop: $(VENV)/.installed
	cd $(JS) && npm ci --no-audit --no-fund --loglevel=error && npm run build
	$(BIN)/python -m examples.shop

serve: $(VENV)/.installed
	$(BIN)/orderguard serve

test: $(VENV)/.installed-test js-test
	$(BIN)/pytest -n $(WORKERS) --dist worksteal -p no:cacheprovider --durations=30

# The checkout script: its pinned tools from package-lock.json (npm ci), then `npm test`:
# tsc --noEmit (strict), vitest, the build (dist/) and its size budget (scripts/size.mjs).
js-test:
	cd $(JS) && npm ci --no-audit --no-fund --loglevel=error && npm test

# Property tests (every file using hypothesis) on the random "deep" profile, then the demo
# on more seeds; each random seed is in its test id, to rerun it with DEMO_SEEDS=<seed>.
test-deep: $(VENV)/.installed-test
	HYPOTHESIS_PROFILE=deep $(BIN)/pytest -n $(WORKERS) -p no:cacheprovider \
		$$(grep -rlE '@given|RuleBasedStateMachine' tests --include='test_*.py' | sort)
	seeds=$$($(BIN)/python -c 'import random; print(",".join(str(random.randrange(10**6)) for _ in range($(DEEP_SEEDS))))'); \
	echo "demo seeds: $$seeds"; \
	DEMO_SEEDS=$$seeds $(BIN)/pytest -n $(WORKERS) -p no:cacheprovider \
		tests/e2e/test_demo.py -k every_invariant_holds

mutants: $(VENV)/.installed-test
	$(BIN)/python tests/mutants/mutants.py --report docs/mutants.md

check: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check src tests bench examples
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: $(VENV)/.installed-test
	$(BIN)/python bench/run.py

# CHAOS_CHECKOUTS per scenario; CHAOS_SEED replays a run.
CHAOS_CHECKOUTS ?= 400
chaos: $(VENV)/.installed-test
	$(BIN)/python -m tests.e2e.netchaos --checkouts $(CHAOS_CHECKOUTS) --report docs/chaos.md \
		$(if $(CHAOS_SEED),--seed $(CHAOS_SEED))

lock: $(BIN)/python
	$(PIP) uv
	$(BIN)/uv pip compile pyproject.toml --extra test --python-version 3.11 -o $(LOCK)

clean:
	rm -rf $(VENV) $(JS)/node_modules $(JS)/dist .pytest_cache .mypy_cache .ruff_cache .import_linter_cache .grimp_cache test-artifacts
