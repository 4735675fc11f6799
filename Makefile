# amlpipe developer commands. `make start` runs the app locally; `make test` runs every test.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY_STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed

# Written by tools/install-chromium.sh when no Chromium can be had: the studio's browser tests skip with it.
BROWSER_NOTE := $(VENV)/browser-unavailable

.PHONY: start test lint unit bench install clean browser studio-check

install: $(PY_STAMP) $(NODE_STAMP)

$(PY_STAMP): requirements.txt requirements-dev.txt examples/dp100/requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e . --config-settings editable_mode=compat
	touch $@

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

## browser: Debian's chromium for the studio's browser tests (apt, when the machine lacks it)
browser: $(PY_STAMP)
	tools/install-chromium.sh $(BROWSER_NOTE)

## studio-check: the studio's page logic (studio/js/model.js) under node's test runner
studio-check:
	node --test studio/tests/

## start: Azurite on 127.0.0.1:10000-10002 (reused if already up), the first Owner in .amlpipe/config.json, the host on :7071
start: install
	$(BIN)/amlpipe host --start-azurite --bootstrap

## lint: ruff and mypy
lint: $(PY_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

## test: lint, then every test (the tests start their own Azurite on free ports)
test: install lint studio-check browser
	$(BIN)/python -m pytest

unit: $(PY_STAMP)
	$(BIN)/python -m pytest tests/unit

bench: install
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) node_modules .mypy_cache .ruff_cache .pytest_cache
