// Shared pieces of the browser tests: the static server (`pocketrec serve`), headless Chromium
// (Debian's, through playwright-core), native reference scores (`pocketrec score`), and paths.
import { chromium } from "playwright-core";
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, mkdirSync, existsSync, writeFileSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const OUT = path.join(ROOT, "tests/out");
mkdirSync(OUT, { recursive: true });

/** The pocketrec binary: $POCKETREC_BIN, else the release build, else the debug build. */
export const BIN = process.env.POCKETREC_BIN ||
  [path.join(ROOT, "target/release/pocketrec"), path.join(ROOT, "target/debug/pocketrec")].find(existsSync);
/** The demo world (catalog.json, model.safetensors): $POCKETREC_DEMO, else out/demo. */
export const DEMO = process.env.POCKETREC_DEMO || path.join(ROOT, "out/demo");
export const MODEL = path.join(DEMO, "model.safetensors");
export const CATALOG = path.join(DEMO, "catalog.json");

/** What is missing to run the browser tests, or null; in CI (CI=true) a missing piece is an error,
 * so CI cannot pass by skipping the browser tests. */
export function missing() {
  const why = whatIsMissing();
  if (why && process.env.CI === "true") throw new Error(`the browser tests cannot run in CI: ${why}`);
  return why;
}

function whatIsMissing() {
  if (!existsSync(path.join(ROOT, "web/pkg/pocketrec_bg.wasm"))) return "web/pkg is not built: run make wasm";
  if (!BIN) return "no pocketrec binary: run cargo build --release -p pocketrec-trainer";
  if (!existsSync(MODEL) || !existsSync(CATALOG)) return `no demo model in ${DEMO}: run make demo-model`;
  if (!existsSync("/usr/bin/chromium")) return "no /usr/bin/chromium";
  return null;
}

/** Starts `pocketrec serve --dir DIR --port 0` on 127.0.0.1 (DIR: the repository unless given);
 * resolves to {url, stop}. */
export function serve(port = 0, dir = ROOT) {
  return new Promise((resolve, reject) => {
    const child = spawn(BIN, ["serve", "--dir", dir, "--port", String(port)], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout.on("data", (d) => {
      out += d;
      const m = out.match(/http:\/\/127\.0\.0\.1:(\d+)\//);
      if (m) resolve({ url: m[0], port: Number(m[1]), stop: () => new Promise((r) => { child.once("exit", r); child.kill(); }) });
    });
    child.on("exit", (code) => reject(new Error(`pocketrec serve exited (${code}): ${out}`)));
  });
}

export const CHROMIUM_ARGS = [
  "--headless", "--no-sandbox", "--disable-quic", "--no-first-run", "--disable-background-networking",
  "--disable-component-update", "--disable-sync",
];

/** A fresh Chromium profile; `webgpu` adds --enable-unsafe-webgpu (SwiftShader's WebGPU adapter). */
export async function browser({ webgpu }) {
  const userDataDir = mkdtempSync(path.join(tmpdir(), "pocketrec-chromium-"));
  const args = [...CHROMIUM_ARGS, ...(webgpu ? ["--enable-unsafe-webgpu"] : [])];
  return chromium.launchPersistentContext(userDataDir, {
    executablePath: "/usr/bin/chromium", headless: true, args,
    viewport: { width: 1280, height: 900 },
  });
}

/** The demo's schema-TSV header (from the catalog) and a row for a context and a catalog item. */
export function tsvRow(schema, context, item) {
  const values = { ...context, item: item.id, category: item.category, attributes: item.attributes };
  return ["0", ...schema.slice(1).map((col) => {
    const v = values[col.slice(col.indexOf(":") + 1)];
    return Array.isArray(v) ? v.join(",") : String(v);
  })].join("\t");
}

/** Native probabilities of schema-TSV rows: `pocketrec score --model M --data F -o OUT`. */
export function nativeScores(model, header, rows, name) {
  const data = path.join(OUT, `${name}.tsv`);
  const out = path.join(OUT, `${name}.scores.tsv`);
  writeFileSync(data, [header, ...rows].join("\n") + "\n");
  execFileSync(BIN, ["score", "--model", model, "--data", data, "--backend", "cpu", "-o", out], { stdio: ["ignore", "inherit", "inherit"] });
  return readFileSync(out, "utf8").trim().split("\n").filter((l) => l && !/^[a-z]/i.test(l)).map((l) => Number(l.split("\t").pop()));
}

/** A schema-TSV line (header split into tokens) as the named row object the JS API takes. */
export function schemaRowObject(headerTokens, line) {
  const cells = line.split("\t");
  const row = {};
  headerTokens.forEach((tok, i) => {
    if (i === 0) return;
    const [kind, name] = tok.split(":");
    const v = cells[i] ?? "";
    row[name] = kind === "dense" ? Number(v || 0) : kind === "cat" ? v : v.split(",").filter(Boolean);
  });
  return row;
}

/** The first `n` rows of the demo's eval.tsv: its header line, the raw lines and the row objects. */
export function demoEvalRows(n) {
  const text = readFileSync(path.join(DEMO, "eval.tsv"), "utf8").split("\n");
  const header = text[0];
  const lines = text.slice(1, 1 + n).filter(Boolean);
  return { header, lines, rows: lines.map((l) => schemaRowObject(header.split("\t"), l)) };
}
