PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test soak lint dev clean images

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/noetl demo

dev: $(STAMP)
	$(BIN)/noetl dev

lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy

test: lint
	$(BIN)/pytest -q

# The load test at full size: 500 registrations submitted at once.
soak: $(STAMP)
	NOETL_SOAK_REGISTRATIONS=500 $(BIN)/pytest -q tests/delivery/test_load.py

clean:
	rm -rf $(VENV) .noetl .pytest_cache .mypy_cache .ruff_cache

# One image per target of the Dockerfile, named as knative/kustomization.yaml
# names them: `make images REGISTRY=ghcr.io/me/noetl TAG=0.1.0 PUSH=1`.
# ENGINE may name docker or podman; by default the first whose daemon answers.
REGISTRY ?= registry.example.com/noetl
TAG ?= $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
IMAGES := api dispatcher catalog notifier jetstream-source

images:
	@engine="$(ENGINE)"; \
	if [ -z "$$engine" ]; then \
		for candidate in docker podman; do \
			if $$candidate info >/dev/null 2>&1; then engine=$$candidate; break; fi; \
		done; \
	fi; \
	if [ -z "$$engine" ]; then \
		echo "make images: no container engine is running (neither 'docker info' nor" >&2; \
		echo "'podman info' answered); start one, or name it with ENGINE=..." >&2; \
		exit 1; \
	fi; \
	set -e; for target in $(IMAGES); do \
		image=$(REGISTRY)/$$target:$(TAG); \
		echo "$$engine build --target $$target --tag $$image ."; \
		$$engine build --target $$target --tag $$image .; \
		if [ -n "$(PUSH)" ]; then $$engine push $$image; fi; \
	done

# Benchmarks, not part of `make test`: `make bench` (about 8 minutes) or
# `make bench BENCH_ARGS=--quick` (about 2); results go to bench/results.*.
BENCH_STAMP := $(VENV)/.installed-bench
BENCH_ARGS ?=

.PHONY: bench

$(BENCH_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)
