# Two commands on a fresh machine: `make demo` and `make test`. Each creates .venv and installs what it needs.
# `make help` lists the targets (the `## ` comment after each target's name is its line).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch/torchvision pinned to the releases this project is tested with (they lie on the dev machines' disk)
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1

.PHONY: help install demo test test-slow lint clean

help: ## list the targets
	@echo "usage: make TARGET (PYTHON=python3.11 VENV=.venv to choose the interpreter and the environment)"
	@awk -F ':.*## ' '/^[a-z][a-z-]*:.*## / { printf "  %-10s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

$(BIN)/spotart: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet $(TORCH_PINS)
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/spotart ## create .venv and install spotart with its test tools (pinned torch)

demo: install ## both stages for a few minutes on bundled photographs, then the HTML report (demo_run/)
	rm -rf demo_run
	$(BIN)/spotart demo --out demo_run

test: install ## the test suite without the slow tests (a few minutes on 2 cores)
	$(BIN)/python -m pytest -q

test-slow: install ## only the slow tests
	$(BIN)/python -m pytest -q -m slow

lint: install ## ruff on src and tests
	$(BIN)/ruff check src tests

clean: ## remove demo_run, caches and build files (not .venv)
	rm -rf demo_run .pytest_cache build *.egg-info src/*.egg-info
