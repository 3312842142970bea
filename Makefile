# ConvLens: `make serve` builds the page and serves it on http://127.0.0.1:8080,
# `make test` runs every test suite. Both install what they need on a fresh Debian machine.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.PHONY: serve test dist setup setup-web wasm wasm-threads native-test e2e deploy-check bench fuzz clean

PORT ?= 8080
JOBS ?= 2
WASM_BINDGEN_VERSION = $(shell awk '/^name = "wasm-bindgen"$$/{getline; gsub(/"/, "", $$3); print $$3}' Cargo.lock)
WASM_BINDGEN = $(HOME)/.cargo/bin/wasm-bindgen
WASM = $(or $(CARGO_TARGET_DIR),target)/wasm32-unknown-unknown/wasm/convlens.wasm
# The threaded build's toolchain: `-Z build-std` (a std compiled with atomics) is nightly-only;
# pinned, so a new nightly cannot break the build.
NIGHTLY ?= nightly-2026-05-20
WASM_THREADS = $(or $(CARGO_TARGET_DIR),target)/wasm32-unknown-unknown/wasm-threads/convlens.wasm
# Atomics, and the module's memory imported and shared between the threads, exporting what
# wasm-bindgen needs to give each thread its own TLS; it may grow to 4 GiB (VGG16 needs more than 1).
THREADS_RUSTFLAGS = -C target-feature=+simd128,+atomics,+bulk-memory,+mutable-globals \
	-C link-arg=--shared-memory -C link-arg=--import-memory -C link-arg=--max-memory=4294967296 \
	-C link-arg=--export=__wasm_init_tls -C link-arg=--export=__tls_size \
	-C link-arg=--export=__tls_align -C link-arg=--export=__tls_base

# Served cross-origin isolated (COOP/COEP), so the CPU path runs the threaded build.
serve: dist
	node tools/serve.mjs dist $(PORT)

test: setup native-test dist e2e

# The Rust wasm target, the pinned nightly with its std's source (the threaded build),
# wasm-bindgen-cli pinned to the crate's wasm-bindgen, npm packages.
setup:
	@command -v cargo >/dev/null || { echo "Rust is required: https://rustup.rs"; exit 1; }
	rustup target add wasm32-unknown-unknown
	rustup toolchain install $(NIGHTLY) --profile minimal --component rust-src
	@if [ "$$($(WASM_BINDGEN) --version 2>/dev/null | awk '{print $$2}')" != "$(WASM_BINDGEN_VERSION)" ]; then \
		echo "installing wasm-bindgen-cli $(WASM_BINDGEN_VERSION)"; \
		cargo install -j$(JOBS) wasm-bindgen-cli --version $(WASM_BINDGEN_VERSION); fi
	@command -v node >/dev/null || { echo "Node.js is required (apt-get install -y nodejs npm)"; exit 1; }
	npm ci --no-audit --no-fund

native-test:
	cargo test -j$(JOBS)

# The core compiled for the browser, then its JS bindings in pkg/.
wasm:
	cargo build -j$(JOBS) --lib --target wasm32-unknown-unknown --profile wasm
	$(WASM_BINDGEN) --target web --out-dir pkg --out-name convlens $(WASM)

# The CPU path on every core, for cross-origin-isolated pages: flex on rayon, rayon's threads
# (but the caller's) as Web Workers on shared memory (src/thread_pool.rs). No WebGPU: wgpu's
# objects cannot be shared between threads in the browser, and the page uses the build above
# for the GPU.
wasm-threads:
	RUSTFLAGS='$(THREADS_RUSTFLAGS)' cargo +$(NIGHTLY) build -j$(JOBS) --lib --target wasm32-unknown-unknown \
		--profile wasm-threads --no-default-features --features threads -Z build-std=panic_abort,std
	$(WASM_BINDGEN) --target web --out-dir pkg/threads --out-name convlens $(WASM_THREADS)

# A static bundle that works from any static host under any sub-path.
dist: setup wasm wasm-threads
	rm -rf dist && mkdir -p dist/pkg/threads dist/js dist/weights dist/samples
	cp www/index.html www/app.js www/worker.js www/sw.js www/style.css dist/
	cp www/js/*.js dist/js/
	cp pkg/convlens.js pkg/convlens_bg.wasm dist/pkg/
	cp -r pkg/threads/convlens.js pkg/threads/convlens_bg.wasm pkg/threads/snippets dist/pkg/threads/
	cp weights/manifest.json weights/efficientnet-lite0.safetensors dist/weights/
	cp www/samples/*.jpg www/samples/CREDITS.md dist/samples/
	@for w in dist/pkg/convlens_bg.wasm dist/pkg/threads/convlens_bg.wasm; do \
		echo "$$w: $$(stat -c%s $$w) bytes, $$(gzip -9c $$w | wc -c) gzipped"; done
	@echo "dist/ is ready: $$(du -sh dist | cut -f1)"

# The browser tests serve dist/ under a sub-path, as GitHub Pages does (/<repo>/): a page that
# assumed it lives at the root would fail here, not after a deploy.
BASE_PATH ?= /convlens/
e2e:
	@command -v $${CHROMIUM:-chromium} >/dev/null || { echo "Chromium is required: apt-get install -y chromium"; exit 1; }
	BASE_PATH=$(BASE_PATH) npx playwright test

# What .github/workflows/pages.yml runs before it publishes dist/.
deploy-check: dist e2e

clean:
	rm -rf dist pkg target

# ConvLens side by side with PyTorch (not part of `make test`): writes bench/RESULTS.md.
# `make bench QUICK=1` takes under 10 minutes once built; the full sizes take hours on 2 cores.
# Knobs: RUNS, FILTERS, STEPS, WGPU_FILTERS=1 (see bench/bench.sh).
QUICK ?=
bench:
	QUICK=$(QUICK) JOBS=$(JOBS) bash bench/bench.sh

# Each file reader under cargo fuzz (not part of `make test`): FUZZ_SECONDS each (default 10 min).
# New inputs go to fuzz/work/ (ignored); fuzz/corpus/ holds the committed seeds.
FUZZ_SECONDS ?= 600
FUZZ_TARGETS ?= safetensors keras_h5 keras_zip torch onnx
fuzz:
	rustup toolchain install nightly --profile minimal
	@command -v cargo-fuzz >/dev/null || cargo install -j$(JOBS) cargo-fuzz
	cd fuzz && for t in $(FUZZ_TARGETS); do mkdir -p work/$$t && \
		cargo +nightly fuzz run $$t work/$$t corpus/$$t -- -max_total_time=$(FUZZ_SECONDS) -max_len=1048576 -rss_limit_mb=4096 || exit 1; done
