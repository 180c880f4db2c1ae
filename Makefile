# The two set-up commands of the README: `make demo` and `make test`. Each creates .venv itself.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Extra pip arguments for torch, e.g. a CPU-only wheel index on hosted CI runners.
TORCH_PIP_ARGS ?=
# `make venv GPU=cu130`: the CUDA build of torch (PyPI's own wheel) and its pinned CUDA runtime
# from requirements-cu130.lock, in place of the CPU build; every other pin as for the CPU. Later
# commands keep the build .venv has (`make venv GPU=` goes back to the CPU build).
GPU ?= $(patsubst $(VENV)/.installed-%,%,$(firstword $(wildcard $(VENV)/.installed-*)))
TORCH_CUDA := cu130
# Said before installing: how long `make venv` took, measured on a busy 2-core machine (224 s,
# torch's wheel from local disk, the 128 other pins downloaded).
INSTALL_TIME := about 4 minutes on a busy 2-core machine, more on a slow network
STAMP := $(VENV)/.installed$(if $(GPU),-$(GPU),)
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_NO_ADVISORY_WARNINGS ?= 1

LOCK := requirements.lock
TORCH_VERSION := 2.13.0
UV_VERSION := 0.13.9
ifeq ($(GPU),)
TORCH_LOCK :=
TORCH_REQUIREMENTS := "torch==$(TORCH_VERSION)+cpu" $(TORCH_PIP_ARGS)
else ifeq ($(GPU),$(TORCH_CUDA))
TORCH_LOCK := requirements-$(TORCH_CUDA).lock
TORCH_REQUIREMENTS := -r $(TORCH_LOCK)
else
$(error GPU=$(GPU): the locked CUDA build of torch $(TORCH_VERSION) is $(TORCH_CUDA); use GPU=$(TORCH_CUDA))
endif

.PHONY: venv lock check-lock test-latest demo test test-fast check lint format site clean

# Everything from the lock, nothing resolved: --no-deps installs exactly the pinned set, so no
# resolver can pull a newer release or torch's multi-GB CUDA build. torch first: the CPU build,
# or with GPU=cu130 the CUDA build and its runtime; then the lock's other pins.
$(STAMP): $(LOCK) $(TORCH_LOCK) pyproject.toml
	@echo "make venv: installing the locked environment into $(VENV)/ (about 2.4 GB; $(INSTALL_TIME))"
	$(PYTHON) -m venv $(VENV)
	rm -f $(VENV)/.installed*
	@echo "make venv: 1/3 torch $(TORCH_VERSION)$(if $(GPU), ($(GPU)),) (the largest part)"
	$(BIN)/pip install --quiet --no-deps $(TORCH_REQUIREMENTS)
	grep -v '^torch==' $(LOCK) > $(VENV)/.lock-without-torch.txt
	@echo "make venv: 2/3 the $$(grep -c == $(VENV)/.lock-without-torch.txt) other pins of $(LOCK)"
	$(BIN)/pip install --quiet --no-deps -r $(VENV)/.lock-without-torch.txt
	@echo "make venv: 3/3 medbench itself, then pip check"
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/pip check
	touch $(STAMP)
	@echo "make venv: done"

venv: $(STAMP)

## Regenerate the lock from pyproject.toml's ranges (keeps today's pins; UPGRADE=1 moves all).
lock:
	$(PYTHON) -m venv .lock-tools
	.lock-tools/bin/pip install --quiet "uv==$(UV_VERSION)"
	.lock-tools/bin/python scripts/lock.py --uv .lock-tools/bin/uv --torch $(TORCH_VERSION) \
		--cuda $(TORCH_CUDA) $(if $(UPGRADE),--upgrade,)

## The tests against the newest releases, unlocked (the weekly drift check), in .venv-latest.
test-latest:
	$(PYTHON) -m venv .venv-latest
	.venv-latest/bin/pip install --quiet --upgrade pip
	.venv-latest/bin/pip install --quiet "torch>=$(TORCH_VERSION)" $(TORCH_PIP_ARGS)
	.venv-latest/bin/pip install --quiet --upgrade -e ".[dev,ray]"
	.venv-latest/bin/pip list --format=freeze
	.venv-latest/bin/pytest -q

## Check that .venv holds exactly the lock's pins (with GPU=cu130, the CUDA build's too).
check-lock: $(STAMP)
	$(BIN)/python scripts/check_lock.py

## The main job: run the quickstart suite on the bundled sample, score it, build the site.
## Answers go to the default cache (as for every README command): $MEDBENCH_CACHE, else
## $MEDBENCH_HOME/answers.sqlite, else the user cache folder.
demo: $(STAMP)
	$(BIN)/medbench run specs/ --suite quickstart

## Every test, slow ones included (browser tests run when Chromium is installed).
test: $(STAMP)
	$(BIN)/pytest -q

## The default quick loop: everything but the slow tests.
test-fast: $(STAMP)
	$(BIN)/pytest -q -m "not slow"

## Lint, format, types, and the import layering of the stages (scripts/check_layers.py).
check: $(STAMP)
	$(BIN)/python scripts/check_layers.py
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

site: $(STAMP)
	$(BIN)/medbench site build --out _site

clean:
	rm -rf _site results .cache .pytest_cache .mypy_cache .ruff_cache .lock-tools .venv-latest
