# Bugtracker: two commands matter, `make up` and `make test`. See README.md.
SHELL := /bin/bash
# Every recipe and script finds the uv that `make bootstrap` installed into .tools/bin when
# uv was not on the caller's PATH (the git hooks call .venv/bin directly). Nothing here
# depends on anything the README does not install.
export PATH := $(CURDIR)/.tools/bin:$(PATH)
UV := $(or $(shell command -v uv 2>/dev/null),$(CURDIR)/.tools/bin/uv)
RUN := $(UV) run --frozen

.PHONY: help bootstrap up down seed test lint format unit integration e2e deploy-check container-check
.PHONY: hooks hooks-check coverage-report changelog

help:
	@echo "make up      run the whole system locally (PostgreSQL, RabbitMQ, 5 services, gateway)"
	@echo "make down    stop what a running 'make up' started"
	@echo "make test    lint, then unit, integration and e2e tests on a throw-away stack"
	@echo "make lint    ruff, ruff format --check, mypy --strict, import-linter, deploy-check, hooks-check"
	@echo "make hooks   install the git hooks (pre-commit and commit-msg) from .pre-commit-config.yaml"
	@echo "make changelog      regenerate CHANGELOG.md from the conventional commits (git-cliff)"
	@echo "make deploy-check     compose config, kubernetes-validate --strict (operator CRDs too), workflow schema"
	@echo "make container-check  build the images with podman and run the walk-through on compose"
	@echo "make bench   load scenarios through the gateway against a running 'make up' (bench/README.md)"
	@echo "make seed    with 'make up' running: a project SEED with TICKETS tickets (default 1,000,000)"

bootstrap:
	@bash deploy/bootstrap.sh

up: bootstrap
	@$(RUN) python -m bugtracker_devstack up

down:
	@$(RUN) python -m bugtracker_devstack down

# With `make up` running: a project SEED with TICKETS tickets (default 1,000,000).
TICKETS ?= 1000000
seed: bootstrap
	@$(RUN) python -m bugtracker_devstack seed --project SEED --tickets $(TICKETS)

lint: bootstrap
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) mypy
	$(RUN) lint-imports
	@RUN="$(RUN)" bash deploy/check.sh
	@$(MAKE) --no-print-directory hooks-check

format: bootstrap
	$(RUN) ruff check --fix .
	$(RUN) ruff format .

# Branch coverage of every package, across unit, integration and e2e tests and the service
# processes the e2e suite starts ([tool.coverage.*] in pyproject.toml); fails under 85 %.
test: lint
	$(RUN) coverage erase
	$(RUN) coverage run -m pytest
	@RUN="$(RUN)" bash deploy/coverage-report.sh

coverage-report: bootstrap
	@RUN="$(RUN)" bash deploy/coverage-report.sh

unit: bootstrap
	$(RUN) pytest -m "not integration and not e2e"

integration: bootstrap
	$(RUN) pytest -m integration

e2e: bootstrap
	$(RUN) pytest -m e2e

deploy-check: bootstrap
	@RUN="$(RUN)" bash deploy/check.sh

# Not part of `make test`: needs root, podman from apt and a few minutes.
container-check:
	bash deploy/container/check.sh

# The git hooks of .pre-commit-config.yaml: ruff, mypy, import-linter, whitespace and
# end-of-file fixers, private key and .env checks, and the conventional commit message.
hooks: bootstrap
	$(RUN) pre-commit install --hook-type pre-commit --hook-type commit-msg

# The same hooks on every tracked file, as CI runs them (part of `make lint`). The Python
# hooks are skipped here because `make lint` has just run the same tools on the same tree.
hooks-check: bootstrap
	SKIP=ruff-check,ruff-format,mypy,import-linter $(RUN) pre-commit run --all-files --show-diff-on-failure

# CHANGELOG.md from the conventional commits, grouped by type (cliff.toml).
changelog: bootstrap
	$(RUN) git-cliff --config cliff.toml --output CHANGELOG.md

# Dead-lettered and unrouted events (README "Operations"); QUEUE=... to pick one.
.PHONY: dlq dlq-replay asyncapi bench-events
dlq:
	$(RUN) python -m bugtracker_shared.dlq list $(QUEUE)

dlq-replay:
	$(RUN) python -m bugtracker_shared.dlq replay $(QUEUE)

# Regenerate docs/asyncapi.yaml from bugtracker_shared.event_schemas (a test checks it).
asyncapi:
	$(RUN) python -m bugtracker_shared.asyncapi > docs/asyncapi.yaml

bench-events:
	$(RUN) python bench/events_bench.py

# The load suite (bench/README.md), against a `make up` running in another terminal:
# writes bench/results/<date>[-BENCH_LABEL].md. BENCH_SCALE=0 skips the 1M-ticket part;
# BENCH_ARGS passes more options (e.g. --scenarios 'list*' --no-save; see --help).
.PHONY: bench bench-profile
BENCH_SECONDS ?= 8
BENCH_SCALE ?= 1
BENCH_LABEL ?=
BENCH_ARGS ?=
SUDO := $(shell [ "$$(id -u)" -ne 0 ] && echo sudo)
bench: bootstrap
	@command -v wrk >/dev/null || { echo "bench: installing wrk from apt"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	  $(SUDO) apt-get install -y -qq --no-install-recommends wrk >/dev/null; }
	@$(RUN) python bench/run.py --seconds $(BENCH_SECONDS) \
	  $(if $(filter 0 no false,$(BENCH_SCALE)),--no-scale) \
	  $(if $(BENCH_LABEL),--label $(BENCH_LABEL)) $(BENCH_ARGS)

# py-spy on one process (PROFILE=gateway|auth|projects|tickets|notifications or a port)
# while one scenario runs at c=50: bench/results/profiles/*.svg (not committed).
PROFILE ?= gateway
SCENARIO ?= create
bench-profile:
	@$(MAKE) --no-print-directory bench BENCH_ARGS="--scenarios $(SCENARIO) --concurrency 50 \
	  --profile $(PROFILE) --no-save $(BENCH_ARGS)"
