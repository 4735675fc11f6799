# amlpipe developer commands. `make start` runs the app locally; `make test` runs every test.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY_STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
# checkov has pins of its own that clash with ours: it gets a venv of its own. Its pins were frozen on
# one Python (infra/requirements-checks.txt), so the stamp names the interpreter's version: another
# $(PYTHON) builds the venv anew.
CHECKOV_VENV := .venv-checkov
CHECKOV_PYTHON_VERSION := $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])')
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed-$(CHECKOV_PYTHON_VERSION)

# Written by tools/install-chromium.sh when no Chromium can be had: the studio's browser tests skip with it.
BROWSER_NOTE := $(VENV)/browser-unavailable

.PHONY: start test lint unit bench install clean infra-check browser studio-check

install: $(PY_STAMP) $(NODE_STAMP)

$(PY_STAMP): requirements.txt requirements-dev.txt examples/dp100/requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e . --config-settings editable_mode=compat
	touch $@

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(CHECKOV_STAMP): infra/requirements-checks.txt
	$(PYTHON) -m venv --clear $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r infra/requirements-checks.txt
	touch $@

## browser: Debian's chromium for the studio's browser tests (apt, when the machine lacks it)
browser: $(PY_STAMP)
	tools/install-chromium.sh $(BROWSER_NOTE)

## studio-check: the studio's page logic (studio/js/model.js) under node's test runner
studio-check:
	node --test studio/tests/*.test.mjs

## start: Azurite on 127.0.0.1:10000-10002 (reused if already up), the first Owner in .amlpipe/config.json, the host on :7071
start: install
	$(BIN)/amlpipe host --start-azurite --bootstrap

## lint: ruff and mypy
lint: $(PY_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

## infra-check: infra/main.bicep parses (pycep) and checkov finds no unexplained failed check in infra/
infra-check: $(PY_STAMP) $(CHECKOV_STAMP)
	AMLPIPE_REQUIRE_CHECKOV=1 $(BIN)/python -m pytest -q tests/unit/test_infra.py tests/unit/test_infra_checkov.py

## test: lint and the studio's page logic, then every test, the infra checks among them (the tests start
## their own Azurite on free ports; checkov must be there, not skipped)
test: install lint $(CHECKOV_STAMP) studio-check browser
	AMLPIPE_REQUIRE_CHECKOV=1 $(BIN)/python -m pytest

unit: $(PY_STAMP)
	$(BIN)/python -m pytest tests/unit

bench: install
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) node_modules .mypy_cache .ruff_cache .pytest_cache
