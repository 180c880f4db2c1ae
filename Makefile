# The two set-up commands of the README: `make demo` and `make test`. Each creates .venv itself.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Extra pip arguments for torch, e.g. a CPU-only wheel index on hosted CI runners.
TORCH_PIP_ARGS ?=
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_NO_ADVISORY_WARNINGS ?= 1

.PHONY: venv demo test test-fast check lint format site clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# The CPU build of torch first, pinned, so that no resolver pulls a multi-GB CUDA build.
	$(BIN)/pip install --quiet "torch==2.13.0" $(TORCH_PIP_ARGS)
	$(BIN)/pip install --quiet -e ".[dev,ray]"
	touch $(STAMP)

venv: $(STAMP)

## The main job: run the quickstart suite on the bundled sample, score it, build the site.
demo: $(STAMP)
	MEDBENCH_CACHE=$${MEDBENCH_CACHE:-.cache/answers.sqlite} $(BIN)/medbench run specs/ --suite quickstart

## Every test, slow ones included (browser tests run when Chromium is installed).
test: $(STAMP)
	$(BIN)/pytest -q

## The default quick loop: everything but the slow tests.
test-fast: $(STAMP)
	$(BIN)/pytest -q -m "not slow"

check: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

site: $(STAMP)
	$(BIN)/medbench site build --out _site

clean:
	rm -rf _site results .cache .pytest_cache .mypy_cache .ruff_cache
