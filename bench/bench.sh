#!/usr/bin/env bash
# `make bench` (QUICK=1 for the short version): ConvLens side by side with PyTorch, written to
# bench/RESULTS.md. Installs what it needs once: a venv with the pinned PyTorch peer in bench/.venv,
# the seeded VGG16 weights and the benchmark binaries in bench/.cache (both gitignored).
# Knobs (environment): QUICK=1, RUNS=5, FILTERS=, STEPS=, WGPU_FILTERS=1, JOBS=2,
# BROWSER=0 (skips the browser half; its own knobs: bench/browser/bench.mjs).
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=${JOBS:-2}
VENV=bench/.venv
BIN=bench/.cache/bin
TARGET=${CARGO_TARGET_DIR:-target}
mkdir -p "$BIN"

if [ ! -f "$VENV/.installed" ] || [ bench/requirements.txt -nt "$VENV/.installed" ]; then
	echo "bench: creating $VENV from bench/requirements.txt (PyTorch + pytorch-grad-cam, ~6 GB with torch's CUDA wheels; once)"
	python3 -m venv "$VENV"
	"$VENV/bin/pip" install --quiet -r bench/requirements.txt
	touch "$VENV/.installed"
fi

# The release profile, as the README builds the CLI: the dev profile's debug assertions and
# overflow checks (on in every dependency) halve gemm's speed, so a dev build measures them.
echo "bench: building examples/bench.rs (release profile; ~17 min the first time on 2 cores)"
cargo build --quiet -j"$JOBS" --release --example bench
cp "$TARGET/release/examples/bench" "$BIN/bench"

WEIGHTS=bench/.cache/vgg16_seeded.safetensors
if [ ! -f "$WEIGHTS" ]; then
	echo "bench: writing the seeded full-size VGG16 to $WEIGHTS"
	"$BIN/bench" seed-vgg16 "$WEIGHTS"
fi
"$BIN/bench" squash www/samples/cat.jpg bench/.cache/cat_224.png

args=(--runs "${RUNS:-5}")
if [ -n "${QUICK:-}" ] && [ "$QUICK" != 0 ]; then args+=(--quick); fi
if [ -n "${FILTERS:-}" ]; then args+=(--filters "$FILTERS"); fi
if [ -n "${STEPS:-}" ]; then args+=(--steps "$STEPS"); fi
if [ "${WGPU_FILTERS:-0}" = 1 ]; then args+=(--wgpu-filters); fi
echo "bench: measuring (${args[*]}); progress below"
python3 bench/run_bench.py --python "$VENV/bin/python" "${args[@]}"

# The browser half: TF.js 4.22 (webgpu, wasm) against ConvLens's wasm build in pkg/ (webgpu, cpu) in
# headless Chromium (bench/browser/bench.mjs), and the page's first look (bench/browser/first_look.mjs),
# put into bench/RESULTS.md as section 5.
if [ "${BROWSER:-1}" != 0 ]; then
	if [ ! -f bench/browser/node_modules/.package-lock.json ] || [ bench/browser/package-lock.json -nt bench/browser/node_modules/.package-lock.json ]; then
		echo "bench: installing TF.js 4.22 for the browser half in bench/browser/node_modules (once)"
		(cd bench/browser && npm ci --no-audit --no-fund)
	fi
	echo "bench: building ConvLens for the browser (make dist)"
	make --no-print-directory dist JOBS="$JOBS" >/dev/null
	echo "bench: measuring in the browser (bench/browser/bench.mjs); progress below"
	# Cross-origin isolated (WASM_THREADS=1): TF.js takes its threaded binary and ConvLens's threaded
	# build is measured beside its single-threaded one; WASM_THREADS=N asks both for N threads.
	if WASM_THREADS="${WASM_THREADS:-1}" node bench/browser/bench.mjs; then
		# The page itself: page open -> first prediction, photo -> prediction (section 5.5).
		echo "bench: the page's first look (bench/browser/first_look.mjs)"
		node bench/browser/first_look.mjs >>bench/.cache/browser.md || echo "bench: the first-look measurement failed (see above)" >&2
		python3 bench/run_bench.py --append-browser bench/.cache/browser.md
	else
		echo "bench: the browser half failed (see above); bench/RESULTS.md has no section 5" >&2
	fi
fi
