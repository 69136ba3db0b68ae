# regsync — `make` alone lists the targets.
SHELL := /bin/bash
UV ?= $(shell command -v uv 2>/dev/null || echo python3 -m uv)
PY := .venv/bin/python
PYTEST_ARGS ?=

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

.PHONY: install
install: ## Create .venv with the locked dependencies (needs uv: python3 -m pip install uv)
	$(UV) sync --extra dev --frozen

.PHONY: test
test: install ## Run the whole test suite against a real stack it starts itself
	$(PY) -m pytest $(PYTEST_ARGS)

.PHONY: test-unit
test-unit: install ## Only the unit tests (no services)
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

.PHONY: test-fast
test-fast: install ## Everything but the slow fault/lifecycle tests
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

.PHONY: demo
demo: install ## Run the pipeline end to end on the embedded defaults
	$(PY) -m regsync demo

.PHONY: lint
lint: install ## ruff lint and format check
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

.PHONY: fmt
fmt: install ## Apply ruff fixes and formatting
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

.PHONY: stack-up
stack-up: install ## Start Kafka, the schema registry and PostgreSQL locally
	$(PY) -m regsync stack up

.PHONY: stack-status
stack-status: install ## Show the local stack's endpoints and health
	$(PY) -m regsync stack status

.PHONY: stack-down
stack-down: install ## Stop the local stack
	$(PY) -m regsync stack down

SCENARIO ?= all
BENCH_ARGS ?=

.PHONY: bench
bench: install ## Benchmark the pipeline on a real stack it starts itself (SCENARIO=100k|1m|all; all ≈ 18 min)
	$(PY) -m bench.codec
	$(PY) -m bench.run --scenario $(SCENARIO) $(BENCH_ARGS)
