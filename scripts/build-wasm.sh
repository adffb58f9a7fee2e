#!/usr/bin/env bash
# Builds the browser package into web/pkg: the pocketrec crate for wasm32 with SIMD128, then
# wasm-bindgen --target web (JS glue + TypeScript declarations).
#   scripts/build-wasm.sh          CPU backend only
#   scripts/build-wasm.sh --gpu    with the WebGPU backend (cargo feature `gpu`)
# SIMD128 is set here through RUSTFLAGS, not in a global cargo config, so native builds are untouched.
# Never run Debian's wasm-opt (binaryen 108) on the output: it silently corrupts wasm-bindgen code.
set -euo pipefail
cd "$(dirname "$0")/.."

features=()
if [[ "${1:-}" == "--gpu" ]]; then features=(--features gpu); fi

want="0.2.130"
if ! command -v wasm-bindgen >/dev/null || [[ "$(wasm-bindgen --version)" != "wasm-bindgen $want" ]]; then
  echo "build-wasm: needs wasm-bindgen-cli $want: cargo install wasm-bindgen-cli --version $want" >&2
  exit 1
fi
rustup target list --installed 2>/dev/null | grep -q wasm32-unknown-unknown \
  || { echo "build-wasm: needs the target: rustup target add wasm32-unknown-unknown" >&2; exit 1; }

RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+simd128" \
  cargo build -p pocketrec --release --target wasm32-unknown-unknown --no-default-features "${features[@]}"
wasm-bindgen --target web --out-dir web/pkg target/wasm32-unknown-unknown/release/pocketrec.wasm
ls -l web/pkg/pocketrec_bg.wasm
