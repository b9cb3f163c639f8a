# RouteIQ — two commands: `make up` (local stack) and `make test` (every test tier).
# Everything installs from the project's own files: uv.lock, stack/kafka/pom.xml, Debian packages.
SHELL := /bin/bash
.DEFAULT_GOAL := help
UV := uv
RUN := $(UV) run --frozen --python python3.11
export UV_PYTHON_DOWNLOADS := never
export LITELLM_LOCAL_MODEL_COST_MAP := True

.PHONY: help bootstrap up down status clean test test-unit test-integration test-e2e lint format bench bench-all docs demo

help:  ## List targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

bootstrap:  ## Install uv, Debian packages (Redis, Java, Maven) and the locked Python env
	@bash stack/bootstrap.sh

up: bootstrap  ## Start the whole local stack (idempotent; a second run is a fast no-op)
	@$(RUN) routeiq stack up

down:  ## Stop everything, keep all data
	@$(RUN) routeiq stack down

status:  ## Show each component's state and health
	@$(RUN) routeiq stack status

clean:  ## Stop everything and wipe all state
	@$(RUN) routeiq stack clean

test: bootstrap  ## Lint, then unit, integration and end-to-end tests (starts the stack if needed)
	@$(MAKE) --no-print-directory lint
	@$(RUN) pytest tests/unit -q
	@$(RUN) pytest tests/integration -q
	@$(RUN) pytest tests/e2e -q

test-unit: bootstrap  ## Unit tests only (no network)
	@$(RUN) pytest tests/unit -q

test-integration: bootstrap  ## Integration tests against the real local stack
	@$(RUN) pytest tests/integration -q

test-e2e: bootstrap  ## End-to-end tests (a private stack's whole lifecycle)
	@$(RUN) pytest tests/e2e -q

lint:  ## ruff (with security rules), ruff format --check, mypy (strict on libs/)
	@$(RUN) ruff check .
	@$(RUN) ruff format --check .
	@$(RUN) mypy libs/routeiq/src cli/src services/*/src

format:  ## Apply ruff formatting and fixes
	@$(RUN) ruff format .
	@$(RUN) ruff check --fix .

docs:  ## Regenerate docs/contracts.md from schemas/ and the settings tables in docs/deploy.md
	@$(RUN) routeiq schemas docs
	@$(RUN) python tests/unit/deploy/deploy_support.py --write-docs

demo: up  ## The closed loop on the running stack, with a before/after table (≈5 min)
	@$(RUN) routeiq demo

bench: up  ## Serde benchmark: our Avro serde vs plain fastavro, encode and encode+produce
	@$(RUN) python bench/serde.py

bench-all: up  ## Every benchmark: serde, gateway vs LiteLLM proxy, labeler, trainer, rollout
	@$(RUN) python bench/serde.py
	@$(RUN) python bench/gateway.py
	@$(RUN) python bench/labeler.py
	@$(RUN) python bench/trainer.py
	@$(RUN) python bench/rollout.py
