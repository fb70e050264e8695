PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
DATA ?=
OUT ?= out/demo
BENCH_OUT ?= out/bench
STAMP := $(VENV)/.installed

.PHONY: setup demo test test-multinode test-fast lint bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# CPU wheel pinned for dev/CI; GPU clusters install their CUDA build (see README).
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

# The demo profile: every stage, publish and the Serve check, sized for ~5 min on a quiet 2-core machine (README).
demo: setup
	$(BIN)/interestrec run --config configs/demo.yaml $(if $(DATA),--data $(DATA)) --out $(OUT) --serve-check

# The full table (configs/default.yaml: every grid and budget), every stage re-run and timed (~25 min on 2 cores).
bench: setup
	$(BIN)/interestrec bench --config configs/default.yaml $(if $(DATA),--data $(DATA)) --out $(BENCH_OUT)

test: setup
	$(BIN)/python -m pytest -q tests -m "not multinode and not gpu"

test-multinode: setup
	$(BIN)/python -m pytest -q tests -m multinode

test-fast: setup
	$(BIN)/python -m pytest -q tests -m "not slow and not multinode"

lint: setup
	$(BIN)/ruff check library jobs serving tests

clean:
	rm -rf out .pytest_cache
