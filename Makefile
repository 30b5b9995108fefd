# ModelGate. `make run` starts the gateway with a real local model;
# `make test` runs everything CI runs.

CACHE_DIR ?= $(HOME)/.cache/modelgate
export MG_CACHE_DIR := $(CACHE_DIR)
export CARGO_TARGET_DIR ?= $(CURDIR)/target
CARGO := cargo
VENV = $(shell scripts/bootstrap.sh)

.PHONY: run test lint wasm unit e2e build

run:
	scripts/run.sh

test: lint wasm unit e2e

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

# The core must stay free of IO and build for the Worker's target.
wasm:
	$(CARGO) build -p modelgate-core --target wasm32-unknown-unknown --locked

unit:
	$(CARGO) test --workspace --locked

build:
	$(CARGO) build --workspace --bins --locked

# The OpenAI-SDK suite against the native server, the Rust mock upstream and
# the real llama.cpp model (set MG_BASE_URL etc. to run it against another
# runtime: see tests/e2e/conftest.py).
e2e: build
	MG_BIN_DIR=$(CARGO_TARGET_DIR)/debug $(VENV)/bin/python -m pytest tests/e2e -q
