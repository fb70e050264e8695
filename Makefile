PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
DATA ?=
OUT ?= out/demo
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

demo: setup
	$(BIN)/python jobs/pipeline.py $(if $(DATA),--data $(DATA)) --out $(OUT) --serve-check

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
