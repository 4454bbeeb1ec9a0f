# The project's one task runner; .ci/run and the README use these targets.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Miniflare (workerd) and wrangler for tests/cloudflare, pinned by its package-lock.json.
NODE_TEST_DEPS := tests/cloudflare/node_modules/.installed

.PHONY: install demo test lint format typecheck check services bench faults clean

install: $(STAMP)

$(STAMP): pyproject.toml
	bash deploy/install-system-deps.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: install
	$(BIN)/videofleet demo

services: install
	bash deploy/install-system-deps.sh --for-tests
	$(MAKE) --no-print-directory $(NODE_TEST_DEPS)
	bash deploy/start-test-services.sh

$(NODE_TEST_DEPS): tests/cloudflare/package-lock.json
	npm ci --prefix tests/cloudflare --no-audit --no-fund
	touch $@

# --cov enforces the coverage floor (fail_under in pyproject.toml) on the whole suite only.
test: services
	$(BIN)/pytest --cov

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: install
	$(BIN)/mypy

check: lint typecheck test

bench: install
	$(BIN)/python -m bench

# Every fault of docs/reliability.md on private Redis/PostgreSQL/S3: 200 videos a fault, ~30 min.
faults: services
	$(BIN)/python -m tests.faults

clean:
	rm -rf $(VENV) tests/cloudflare/node_modules .demo .pytest_cache .mypy_cache .ruff_cache videofleet.db*
