# RouteIQ — two commands: `make up` (local stack) and `make test` (every test tier).
# Everything installs from the project's own files: uv.lock, stack/kafka/pom.xml, Debian packages.
SHELL := /bin/bash
.DEFAULT_GOAL := help
UV := uv
RUN := $(UV) run --frozen --python python3.11
export UV_PYTHON_DOWNLOADS := never
export LITELLM_LOCAL_MODEL_COST_MAP := True

.PHONY: help bootstrap up down status clean test test-unit test-integration test-e2e faults lint format bench bench-all bench-gateway bench-labeler bench-trainer bench-rollout bench-control bench-shadow bench-spans docs demo

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

faults: up  ## Fault suite: outages, kills, poison records and fuzzing on the running stack; prints the damage table
	@ROUTEIQ_FAULTS=1 $(RUN) pytest tests/faults -q

lint:  ## ruff (with security rules), ruff format --check, mypy (strict on libs/), import layers
	@$(RUN) ruff check .
	@$(RUN) ruff format --check .
	@$(RUN) mypy libs/routeiq/src cli/src services/*/src
	@$(RUN) lint-imports --no-cache

format:  ## Apply ruff formatting and fixes
	@$(RUN) ruff format .
	@$(RUN) ruff check --fix .

docs:  ## Regenerate docs/contracts.md from schemas/ and the settings tables in docs/deploy.md
	@$(RUN) routeiq schemas docs
	@$(RUN) python tests/unit/deploy/deploy_support.py --write-docs

demo: bootstrap  ## The closed loop over LLMRouter's 9 models (switches the stack to them; ≈6 min)
	@ROUTEIQ_STACK_CANDIDATES=$${ROUTEIQ_STACK_CANDIDATES:-llmrouter} $(RUN) routeiq stack up
	@ROUTEIQ_STACK_CANDIDATES=$${ROUTEIQ_STACK_CANDIDATES:-llmrouter} $(RUN) routeiq demo

bench: up  ## Serde benchmark: our Avro serde vs plain fastavro, encode and encode+produce
	@$(RUN) python bench/serde.py

bench-all: bench bench-gateway bench-labeler bench-trainer bench-rollout bench-control bench-shadow bench-spans  ## Every benchmark

bench-gateway: up  ## Gateway (learned router, telemetry) vs the LiteLLM proxy, same run
	@$(RUN) python bench/gateway.py

bench-labeler: up  ## Faust labeler vs a plain confluent-kafka loop, events/s
	@$(RUN) python bench/labeler.py

bench-trainer: bootstrap  ## Training time per router type at 10k and 100k examples (CPU; CUDA if present)
	@$(RUN) python bench/trainer.py

bench-rollout: up  ## Announcement → all replicas serving; request p99 during swaps vs steady
	@$(RUN) python bench/rollout.py

bench-control: up  ## One routing change → all replicas, the kill switch and a 10% rollout, under load
	@$(RUN) python bench/control.py

bench-shadow: up  ## Client p50/p99 with 10% shadow sampling vs none, same run; the shadow budget under load
	@$(RUN) python bench/shadow.py

bench-spans: bootstrap  ## How long span export pauses the gateway's process: batches of 512 and 64 vs none
	@$(RUN) python bench/spans.py
