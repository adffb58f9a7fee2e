# pocketrec: the two commands of the README are `make demo` and `make test`.
SHELL := /bin/bash
CARGO ?= cargo
BIN := target/release/pocketrec

.PHONY: demo test setup build lint test-rust test-wasm-build test-wasm-kernels criteo-job

setup:
	@scripts/setup.sh

build:
	$(CARGO) build --release -p pocketrec-trainer

# The main job: the wasm package, a 10 MB kaggle-shaped model trained on planted synthetic Criteo
# data (eval AUC printed beside the Bayes-optimal AUC), the demo world and its model, the page.
demo: setup build wasm criteo-job demo-model serve

CRITEO_DIR ?= out/criteo
CRITEO_ROWS ?= 1000000
criteo-job: build
	@mkdir -p $(CRITEO_DIR)
	$(BIN) synth --rows $(CRITEO_ROWS) --seed 1 -o $(CRITEO_DIR)/train.tsv
	$(BIN) synth --rows 100000 --seed 1 --first-row $(CRITEO_ROWS) --with-probability -o $(CRITEO_DIR)/eval.tsv
	$(BIN) train --train $(CRITEO_DIR)/train.tsv --eval $(CRITEO_DIR)/eval.tsv --preset kaggle --memory 10MB \
	  -o $(CRITEO_DIR)/model.safetensors

# Everything: setup, the lint gates, the Rust test suite (CPU and the WGSL kernels on lavapipe), the
# wasm build, its SIMD128 kernels tested under Node, the browser tests in headless Chromium.
test: setup lint test-rust test-wasm-build test-wasm-kernels test-browser

# The gates, first because they are quick: unformatted code and any clippy warning fail the run
# (natively, and for wasm32, whose bindings native clippy does not see).
lint: setup
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets --all-features -- -D warnings
	$(CARGO) clippy -p pocketrec --target wasm32-unknown-unknown --no-default-features --features gpu -- -D warnings

# In CI (CI=true, as .ci/run sets) a GPU test that finds no adapter fails instead of skipping
# (setup installs lavapipe, so there always is one), and so does a test whose ../shared/data is absent.
ifeq ($(CI),true)
export POCKETREC_REQUIRE_GPU ?= 1
endif

test-rust:
	$(CARGO) test --workspace --all-features

test-wasm-build:
	$(CARGO) build -p pocketrec --target wasm32-unknown-unknown --no-default-features

# The SIMD128 kernels the browser runs, property-tested against scalar references under Node; and
# on-device learning (crate/tests/learn.rs) against the same f64 reference as natively.
test-wasm-kernels: setup
	CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner RUSTFLAGS="-C target-feature=+simd128" \
	  $(CARGO) test -p pocketrec --target wasm32-unknown-unknown --no-default-features --test kernels --test learn

# --- web demo (helper "web") ----------------------------------------------------------------------
# DEMO_DIR holds catalog.json, train.tsv, eval.tsv and model.safetensors; the page reads
# out/demo/{catalog.json,model.safetensors} by default (index.html?model=...&catalog=... overrides).
DEMO_DIR ?= out/demo
PORT ?= 8080
# WASM_FLAGS=--gpu builds the WebGPU backend into the wasm package (cargo feature `gpu`); the
# default turns it on whenever the crate has that feature.
WASM_FLAGS ?= $(if $(shell grep -qs '^gpu = ' crate/Cargo.toml && echo y),--gpu)
DEMO_EPOCHS ?= 1

.PHONY: wasm package demo-model serve test-browser bench-browser

wasm:
	scripts/build-wasm.sh $(WASM_FLAGS)

# The npm package of the engine: web/pkg plus the worker helper, README and example page of
# package/, versioned as the crate; `npm pack` writes out/package/pocketrec-VERSION.tgz.
package: wasm
	scripts/build-package.sh

demo-model: build
	$(BIN) demo-data --out $(DEMO_DIR)
	$(BIN) train --train $(DEMO_DIR)/train.tsv --eval $(DEMO_DIR)/eval.tsv --preset small --memory 1MB \
	  --epochs $(DEMO_EPOCHS) --batch 256 --lr 0.05 --optimizer adagrad --seed 7 -o $(DEMO_DIR)/model.safetensors

serve: build
	$(BIN) serve --dir . --port $(PORT)

# Headless Chromium (Debian's, via playwright-core): engine parity and bad input, then the demo page,
# each with WebGPU (SwiftShader) and with the CPU fallback; the npm package installed from its
# tarball into a fresh folder. Screenshots and timings go to tests/out/.
test-browser: setup build wasm package
	@[ -f $(DEMO_DIR)/model.safetensors ] || $(MAKE) demo-model
	cd tests/browser && POCKETREC_BIN=$(CURDIR)/$(BIN) POCKETREC_DEMO=$(CURDIR)/$(DEMO_DIR) \
	  POCKETREC_EXPECT_WEBGPU=$(if $(findstring --gpu,$(WASM_FLAGS)),1,0) npm test --silent

# Browser benchmark (not part of `make test`): kaggle preset at 10 MB in headless Chromium, wasm-CPU
# against WebGPU (SwiftShader): cold start, rank() of 1k/10k/100k candidates, score() of 1k full rows,
# learn() of one like (5 rows, default options); the demo model learning one like and re-ranking its
# 10,000-item catalog. First the native single-thread learning bench (crate/benches/learn.rs, same
# rows), whose times the browser lines divide by; then the native single-thread CPU path on the
# ranking work (crate/benches/rank.rs, 1,000 candidates) and the native GEMM rate, for the
# wasm-vs-native ratios. Output: tests/out/bench-browser.txt, tests/out/bench-native-{learn,rank}.txt.
NATIVE_RANK_FILTER ?= gemm|cpu (context-once|full rows)/1000$$
bench-browser: setup build wasm
	@[ -f $(DEMO_DIR)/model.safetensors ] || $(MAKE) demo-model
	@mkdir -p tests/out
	set -o pipefail; POCKETREC_DEMO=$(CURDIR)/$(DEMO_DIR) RAYON_NUM_THREADS=1 \
	  $(CARGO) bench -p pocketrec --no-default-features --bench learn | tee tests/out/bench-native-learn.txt
	cd tests/browser && POCKETREC_BIN=$(CURDIR)/$(BIN) POCKETREC_DEMO=$(CURDIR)/$(DEMO_DIR) node bench-browser.mjs
	set -o pipefail; RAYON_NUM_THREADS=1 $(CARGO) bench -p pocketrec --no-default-features --bench rank -- '$(NATIVE_RANK_FILTER)' \
	  | tee tests/out/bench-native-rank.txt
