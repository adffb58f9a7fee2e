#!/usr/bin/env bash
# Installs what the build and the tests need, skipping what is already there. Idempotent; safe to
# run on every `make`. Needs root for apt (as on the project's machines and CI).
set -euo pipefail
WASM_BINDGEN_VERSION=0.2.130
SAFETENSORS_VERSION=0.8.0

need_apt=()
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need_apt+=(chromium-driver)
dpkg -s mesa-vulkan-drivers >/dev/null 2>&1 || need_apt+=(mesa-vulkan-drivers)
dpkg -s libvulkan1 >/dev/null 2>&1 || need_apt+=(libvulkan1)
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need_apt+=(fonts-dejavu-core)
# The Python example (docs/python.md) runs on Debian's python3 with its numpy.
dpkg -s python3-numpy >/dev/null 2>&1 || need_apt+=(python3-numpy)
dpkg -s python3-pip >/dev/null 2>&1 || need_apt+=(python3-pip)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing ${need_apt[*]} (apt)"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# Debian 12 has no python3-safetensors: pip installs the pinned wheel beside Debian's numpy.
if ! /usr/bin/python3 -c "import safetensors" >/dev/null 2>&1; then
  echo "setup: installing the safetensors Python package $SAFETENSORS_VERSION (pip, for docs/python.md)"
  /usr/bin/python3 -m pip install --quiet --break-system-packages --root-user-action=ignore "safetensors==$SAFETENSORS_VERSION"
fi

for component in rustfmt clippy; do
  if ! rustup component list --installed | grep -q "^$component"; then
    echo "setup: adding the $component component (make lint)"
    rustup component add "$component"
  fi
done

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  echo "setup: adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi

if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$WASM_BINDGEN_VERSION" ]; then
  echo "setup: installing wasm-bindgen-cli $WASM_BINDGEN_VERSION (about 4 minutes, once per machine)"
  cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION"
fi

if [ -f tests/browser/package-lock.json ] && [ ! -d tests/browser/node_modules ]; then
  echo "setup: installing the browser-test packages (npm ci)"
  (cd tests/browser && npm ci --no-audit --no-fund)
fi
