# regsync — `make` alone lists the targets.
SHELL := /bin/bash
PY := .venv/bin/python
# scripts/bootstrap.sh installs what a target needs (uv and .venv; as root also the Debian packages)
# and returns in about a second when all is there. UV=/path/to/uv picks the uv it uses.
BOOTSTRAP := bash scripts/bootstrap.sh
export UV
PYTEST_ARGS ?=

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-15s\033[0m %s\n", $$1, $$2}'

.PHONY: install
install: ## uv (installed into .tools/uv when missing) and .venv with the locked dependencies
	@$(BOOTSTRAP) python

.PHONY: bootstrap-demo
bootstrap-demo: ## install + JDK 17, Maven, PostgreSQL server (apt-get as root)
	@$(BOOTSTRAP) demo

.PHONY: bootstrap
bootstrap: ## bootstrap-demo + Chromium, CJK fonts, LibreOffice Calc for the tests (apt-get as root)
	@$(BOOTSTRAP) test

.PHONY: test
test: bootstrap ## Run the whole test suite against a real stack it starts itself
	$(PY) -m pytest $(PYTEST_ARGS)

.PHONY: test-unit
test-unit: install ## Only the unit tests (no services)
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

.PHONY: test-secure
# The integration and DAG tests on a --secure stack (SASL_SSL, ACLs, one login per component): every
# file runs; the demo and chaos tests skip themselves there (their own stacks are plain by design,
# see docs/operations.md, "The secure suite"). Not part of `make test`: CI runs that one only.
test-secure: bootstrap ## The integration suite again, on a --secure stack (≈ the integration tests' time)
	REGSYNC_TEST_SECURE=1 $(PY) -m pytest -m integration tests/integration tests/dags $(PYTEST_ARGS)

.PHONY: test-fast
test-fast: bootstrap ## Everything but the slow fault/lifecycle tests
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

.PHONY: demo
demo: bootstrap-demo ## Run the pipeline end to end on the embedded defaults
	$(PY) -m regsync demo

.PHONY: lint
lint: install ## ruff lint and format check, import-linter layer contracts, mypy
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	.venv/bin/lint-imports
	$(PY) -m mypy

.PHONY: fmt
fmt: install ## Apply ruff fixes and formatting
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

.PHONY: stack-up
stack-up: bootstrap-demo ## Start Kafka, the schema registry and PostgreSQL locally
	$(PY) -m regsync stack up

.PHONY: stack-status
stack-status: bootstrap-demo ## Show the local stack's endpoints and health
	$(PY) -m regsync stack status

.PHONY: stack-down
stack-down: bootstrap-demo ## Stop the local stack
	$(PY) -m regsync stack down

SCENARIO ?= all
BENCH_ARGS ?=

.PHONY: bench
bench: bootstrap-demo ## Benchmark the pipeline on a real stack it starts itself (SCENARIO=100k|1m|all; all ≈ 35 min)
	$(PY) -m bench.codec
	$(PY) -m bench.run --scenario $(SCENARIO) $(BENCH_ARGS)
	$(PY) -m bench.gate_scaling

.PHONY: profile
profile: bootstrap-demo ## py-spy flame graphs of extract, gate and load at 100k → bench/profiles/*.svg
	$(PY) -m bench.run --scenario 100k --flame --no-peer --pipelined none --no-save $(BENCH_ARGS)

CHAOS_ARGS ?=

.PHONY: chaos
chaos: bootstrap-demo ## Chaos run: ≥50 random SIGKILLs (+ broker/PostgreSQL kills), reconciled → bench/results/chaos.json
	$(PY) -m bench.chaos --kills 50 --out bench/results/chaos.json $(CHAOS_ARGS)
