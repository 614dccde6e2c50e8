# Two commands on a fresh machine: `make demo` and `make test`. Each creates .venv and installs what it needs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch/torchvision pinned to the releases this project is tested with (they lie on the dev machines' disk)
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1

.PHONY: install demo test test-slow lint clean

$(BIN)/spotart: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet $(TORCH_PINS)
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/spotart

demo: install
	rm -rf demo_run
	$(BIN)/spotart demo --out demo_run

test: install
	$(BIN)/python -m pytest -q

test-slow: install
	$(BIN)/python -m pytest -q -m slow

lint: install
	$(BIN)/ruff check src tests

clean:
	rm -rf demo_run .pytest_cache build *.egg-info src/*.egg-info
