# pocketrec: the two commands of the README are `make demo` and `make test`.
SHELL := /bin/bash
CARGO ?= cargo
BIN := target/release/pocketrec

.PHONY: demo test setup build test-rust test-wasm-build

setup:
	@scripts/setup.sh

build:
	$(CARGO) build --release -p pocketrec-trainer

# Everything: setup, the Rust test suite (CPU and the WGSL kernels on lavapipe), the wasm build.
test: setup test-rust test-wasm-build

test-rust:
	$(CARGO) test --workspace --all-features

test-wasm-build:
	$(CARGO) build -p pocketrec --target wasm32-unknown-unknown --no-default-features
