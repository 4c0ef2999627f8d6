# Servicekonto: "make run" and "make test" set everything up from a fresh clone.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CONFIG ?= config/development.toml
PG_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test
PYTEST_ARGS ?=

.PHONY: setup run test test-sqlite test-postgres lint translations clean soak bench screenshots browser-deps

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

translations: $(STAMP)
	$(BIN)/python -m servicekonto.translations_build

# axe-core for tests/browser (pinned by its package-lock.json): "npm ci" only when missing or the
# lockfile changed. Without npm the browser tests skip with a reason (CI=true: set-up fails).
BROWSER_DIR   := tests/browser
BROWSER_STAMP := $(BROWSER_DIR)/node_modules/.installed

$(BROWSER_STAMP): $(BROWSER_DIR)/package.json $(BROWSER_DIR)/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
	  cd $(BROWSER_DIR) && npm ci --no-audit --no-fund --loglevel=error && touch node_modules/.installed; \
	elif [ "$$CI" = "true" ]; then \
	  echo "npm is missing: tests/browser needs axe-core (CI requires it)." >&2; exit 1; \
	else \
	  echo "npm not found: skipping axe-core, the browser tests will be skipped."; \
	fi

browser-deps: $(BROWSER_STAMP)

setup: $(STAMP) translations browser-deps

run: setup
	SERVICEKONTO_CONFIG=$(CONFIG) $(BIN)/servicekonto db upgrade
	SERVICEKONTO_CONFIG=$(CONFIG) $(BIN)/servicekonto seed
	SERVICEKONTO_CONFIG=$(CONFIG) $(BIN)/servicekonto seed-demo-portals
	@# the demo portals (5001, 5002) in the background, the provider in the foreground
	SERVICEKONTO_CONFIG=$(CONFIG) $(BIN)/python -m demo.run_all

# The whole suite on SQLite, then again on PostgreSQL (skipped with a note when no server is
# reachable, except under CI=true where that is an error).
test: test-sqlite test-postgres

test-sqlite: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-postgres: setup
	@if $(BIN)/python -m tests.support.pg_available "$(PG_URL)"; then \
	  echo "== PostgreSQL pass ($(PG_URL))"; \
	  DATABASE_URL="$(PG_URL)" $(BIN)/python -m pytest $(PYTEST_ARGS); \
	elif [ "$$CI" = "true" ]; then \
	  echo "PostgreSQL is not reachable at $(PG_URL); CI requires it." >&2; exit 1; \
	else \
	  echo "SKIPPED the PostgreSQL pass: no server reachable at $(PG_URL)."; \
	fi

# Bounded soak (not CI): two instances behind nginx on PostgreSQL and Redis; see bench/soak.py.
SOAK_MINUTES ?= 3
SOAK_RATE ?= 20
soak: setup
	$(BIN)/python -m bench.soak --minutes $(SOAK_MINUTES) --rate $(SOAK_RATE) --postgres "$(PG_URL)" \
	  --out bench/results/soak-$$(date -u +%F).md

# Re-take the screenshots in docs/screenshots/ (the browser tests marked "screenshots").
screenshots: setup
	SCREENSHOTS_DIR=docs/screenshots $(BIN)/python -m pytest tests/browser -m screenshots -q $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

# Benchmarks of every hot path (not part of "make test"): bench/README.md; results in bench/results/.
bench: setup
	sh bench/setup.sh
	$(BIN)/python -m pip install --quiet -e ".[bench]"
	$(BIN)/python bench/run.py --granian-all
