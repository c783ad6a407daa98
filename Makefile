# Every target creates .venv and installs rnnlab (editable, with dev tools) when missing.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PYTHON ?= python3
ARGS ?=

.PHONY: install train test test-slow test-all bench bench-infer lint clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

## Train the default model (LSTM on the noisy sine task); pass overrides with ARGS="arch=gru ..."
train: $(STAMP)
	$(VENV)/bin/rnnlab train $(ARGS)

## Fast test suite (slow tests excluded), on two worker processes; the 15 slowest tests are listed so drift shows
# Bytecode (and pytest's rewritten test modules) is cached even where the environment turns it off:
# without the cache every worker compiles the sources again (5 s of each run here).
test: $(STAMP)
	PYTHONDONTWRITEBYTECODE= $(PY) -m pytest -n 2 --durations=15

## Slow tests only (real data, long trainings, parallel launchers, signals, timings)
test-slow: $(STAMP)
	PYTHONDONTWRITEBYTECODE= $(PY) -m pytest -m slow --durations=15

test-all: $(STAMP)
	$(PY) -m pytest -m "slow or not slow"

## Engine vs PyTorch CPU speed (installs torch into the venv on first use)
bench: $(STAMP)
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install --quiet -e ".[bench]"
	$(PY) benchmarks/engine_vs_torch.py $(ARGS)
	$(PY) benchmarks/engine_vs_torch.py --workers 2 $(ARGS)

## Evaluation speed: the engine's cached forward, its inference path and PyTorch on the IMDB test set
bench-infer: $(STAMP)
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install --quiet -e ".[bench]"
	$(PY) benchmarks/inference_speed.py $(ARGS)

## Style (ruff) and the package layers (import-linter, contracts in pyproject.toml)
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
