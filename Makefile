# Bugtracker: two commands matter, `make up` and `make test`. See README.md.
SHELL := /bin/bash
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
RUN := $(UV) run --frozen

.PHONY: help bootstrap up down seed test lint format unit integration e2e deploy-check container-check

help:
	@echo "make up      run the whole system locally (PostgreSQL, RabbitMQ, 4 services, gateway)"
	@echo "make down    stop what a running 'make up' started"
	@echo "make test    lint, then unit, integration and e2e tests on a throw-away stack"
	@echo "make lint    ruff, ruff format --check, mypy --strict, import-linter, deploy-check"
	@echo "make deploy-check     compose config, kubernetes-validate --strict, workflow schema"
	@echo "make container-check  build the images with podman and run the walk-through on compose"

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

format: bootstrap
	$(RUN) ruff check --fix .
	$(RUN) ruff format .

test: lint
	$(RUN) pytest

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
