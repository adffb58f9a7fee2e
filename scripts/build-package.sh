#!/usr/bin/env bash
# Builds the npm package of the wasm engine into out/package: the wasm-bindgen output in web/pkg
# (make wasm), the worker helper, README and example page from package/, and package.json from
# package/package.json with the crate's version and license filled in from cargo (never copied by
# hand). `npm pack` then writes out/package/pocketrec-VERSION.tgz.
set -euo pipefail
cd "$(dirname "$0")/.."

[ -f web/pkg/pocketrec_bg.wasm ] || { echo "build-package: web/pkg is not built: run make wasm" >&2; exit 1; }

stage=out/package/pocketrec
rm -rf "$stage" out/package/pocketrec-*.tgz
mkdir -p "$stage"
cp web/pkg/pocketrec.js web/pkg/pocketrec.d.ts web/pkg/pocketrec_bg.wasm web/pkg/pocketrec_bg.wasm.d.ts "$stage/"
cp package/README.md package/worker.js package/worker.d.ts package/engine-worker.js package/example.html "$stage/"

cargo metadata --no-deps --format-version 1 --manifest-path crate/Cargo.toml | node -e '
  const fs = require("node:fs");
  const meta = JSON.parse(fs.readFileSync(0, "utf8"));
  const crate = meta.packages.find((p) => p.name === "pocketrec");
  const template = JSON.parse(fs.readFileSync("package/package.json", "utf8"));
  const pkg = { name: template.name, version: crate.version, license: crate.license, ...template };
  fs.writeFileSync(process.argv[1], JSON.stringify(pkg, null, 2) + "\n");
' "$stage/package.json"

# Every file package.json lists must be there, and nothing else ships.
node -e '
  const fs = require("node:fs");
  const pkg = JSON.parse(fs.readFileSync(process.argv[1] + "/package.json", "utf8"));
  const absent = pkg.files.filter((f) => !fs.existsSync(process.argv[1] + "/" + f));
  if (absent.length) { console.error("build-package: missing " + absent.join(", ")); process.exit(1); }
' "$stage"

(cd "$stage" && npm pack --silent --pack-destination .. >/dev/null)
ls -l out/package/pocketrec-*.tgz
