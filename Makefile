# Bugtracker: two commands matter, `make up` and `make test`. See README.md.
SHELL := /bin/bash
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
RUN := $(UV) run --frozen

.PHONY: help bootstrap up down test lint format unit integration e2e

help:
	@echo "make up      run the whole system locally (PostgreSQL, RabbitMQ, 4 services, gateway)"
	@echo "make down    stop what a running 'make up' started"
	@echo "make test    lint, then unit, integration and e2e tests on a throw-away stack"
	@echo "make lint    ruff, ruff format --check, mypy --strict, import-linter"

bootstrap:
	@bash deploy/bootstrap.sh

up: bootstrap
	@$(RUN) python -m bugtracker_devstack up

down:
	@$(RUN) python -m bugtracker_devstack down

lint: bootstrap
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) mypy
	$(RUN) lint-imports

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
