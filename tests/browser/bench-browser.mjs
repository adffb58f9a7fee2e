// Browser benchmark (issue 4, section 5): the wasm engine in headless Chromium with the kaggle preset
// at 10 MB, wasm-CPU (no --enable-unsafe-webgpu) against WebGPU (SwiftShader). Measures cold start
// (model bytes in memory -> Engine.load -> first rank of 1,000 candidates), the median latency of
// context-once rank() of 1,000 / 10,000 / 100,000 candidates (top 10) and of full-row score() of
// 1,000 rows, and the wasm GEMM rate. Context = I1..I13 and C1..C20, candidates = C21..C26 as
// Uint32Array columns.
// Not a test (no timed assertions): prints `METRIC ...` lines and writes tests/out/bench-browser.txt.
//   node tests/browser/bench-browser.mjs        (run by `make bench-browser`)
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { serve, browser, BIN, OUT, ROOT } from "./harness.mjs";

const BENCH_DIR = path.join(OUT, "bench");
const MODEL = path.join(BENCH_DIR, "kaggle.safetensors");
const SIZES = [1_000, 10_000, 100_000];
const K = 10;
/** Per measurement: at most this many timed runs, and no new run once this many seconds are spent. */
const MAX_RUNS = 7;
const BUDGET_S = 15;
/** Skip a size whose predicted single call (10x the previous size) is longer than this. */
const MAX_CALL_S = 60;

function need() {
  if (!existsSync(path.join(ROOT, "web/pkg/pocketrec_bg.wasm"))) return "web/pkg is not built: run make wasm";
  if (!BIN) return "no pocketrec binary: run cargo build --release -p pocketrec-trainer";
  if (!existsSync("/usr/bin/chromium")) return "no /usr/bin/chromium";
  return null;
}

/** Runs in the page: loads the engine, then times cold start, rank() and score(). */
async function pageBench({ backend, modelPath, sizes, k, maxRuns, budgetS, maxCallS }) {
  const t0 = performance.now();
  const { default: init, Engine, benchMatmul } = await import("/web/pkg/pocketrec.js");
  await init();
  const initMs = performance.now() - t0;
  const bytes = new Uint8Array(await (await fetch(modelPath)).arrayBuffer());

  // A deterministic u32 stream (xorshift32) for the random categorical values.
  let seed = 0x9e3779b9;
  const u32 = () => { seed ^= seed << 13; seed >>>= 0; seed ^= seed >>> 17; seed ^= seed << 5; return (seed >>>= 0); };
  const context = {};
  for (let i = 1; i <= 13; i++) context[`I${i}`] = (u32() % 100000) / 100;
  for (let i = 1; i <= 20; i++) context[`C${i}`] = u32();
  const candidates = (n) => {
    const fields = {};
    for (let i = 21; i <= 26; i++) fields[`C${i}`] = Uint32Array.from({ length: n }, u32);
    return { rows: n, fields };
  };

  // Cold start: bytes in memory -> load -> first ranking of 1,000 candidates done.
  const first = candidates(1000);
  const c0 = performance.now();
  const engine = await Engine.load(bytes, backend);
  const loadMs = performance.now() - c0;
  const firstTop = await engine.rank(context, first, k);
  const coldMs = performance.now() - c0;
  const info = engine.info();
  if (firstTop.length !== k || !firstTop.every((r) => Number.isFinite(r.score))) throw new Error("bad first ranking");

  /** Median of timed runs of `f`, after untimed warm-up calls for 1 s at most (V8 first runs wasm
   *  through its baseline compiler and tiers hot functions up later, so early calls are slower). */
  async function time(f) {
    const runs = [];
    const w = performance.now();
    let warm = 0;
    while (performance.now() - w < 1000) {
      const t = performance.now();
      await f();
      warm = performance.now() - t;
      if (warm > 1000) runs.push(warm); // too slow to waste a call on warm-up: count it
    }
    const start = performance.now();
    while (runs.length < maxRuns && (runs.length === 0 || performance.now() - start + runs.at(-1) < budgetS * 1000)) {
      const t = performance.now();
      await f();
      runs.push(performance.now() - t);
    }
    const sorted = [...runs].sort((a, b) => a - b);
    const mid = sorted.length >> 1;
    const median = sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
    return { median, runs };
  }

  const rank = [];
  let previous = null;
  for (const n of sizes) {
    const predictedMs = previous ? (previous.ms * n) / previous.n : 0;
    if (predictedMs > maxCallS * 1000) {
      rank.push({ n, skipped: `predicted ${(predictedMs / 1000).toFixed(0)} s per call from ${previous.n}` });
      continue;
    }
    const cands = candidates(n);
    const r = await time(async () => {
      const top = await engine.rank(context, cands, k);
      if (top.length !== k) throw new Error(`rank ${n}: ${top.length} results`);
    });
    rank.push({ n, ...r });
    previous = { n, ms: r.median };
  }

  // Full rows: 1,000 rows of all 13 dense and 26 categorical fields, as typed-array columns.
  const rows = 1000;
  const dense = Float32Array.from({ length: rows * 13 }, () => (u32() % 100000) / 100);
  const fields = {};
  for (let i = 1; i <= 26; i++) fields[`C${i}`] = Uint32Array.from({ length: rows }, u32);
  const score = await time(async () => {
    const p = await engine.score({ rows, dense, fields });
    if (p.length !== rows || !p.every(Number.isFinite)) throw new Error("bad scores");
  });
  engine.free();

  // The wasm GEMM rate on the top MLP's largest layer (compare: `cargo bench --bench rank`, gemm).
  const [gm, gk, gn, reps] = [1000, 512, 256, 20];
  benchMatmul(gm, gk, gn, 2);
  const g0 = performance.now();
  if (!Number.isFinite(benchMatmul(gm, gk, gn, reps))) throw new Error("bad GEMM checksum");
  const gemmGflops = (2 * gm * gk * gn * reps) / ((performance.now() - g0) * 1e6);
  return { gemmGflops, info: { backend: info.backend, reason: info.backend_reason, simd128: info.simd128, bytes: info.model_bytes },
    initMs, loadMs, coldMs, rank, score };
}

async function main() {
  const why = need();
  if (why) { console.error(`bench-browser: ${why}`); process.exit(1); }
  mkdirSync(BENCH_DIR, { recursive: true });
  execFileSync(BIN, ["init", "--preset", "kaggle", "--memory", "10MB", "--seed", "1", "-o", MODEL], { stdio: "inherit" });
  const server = await serve();
  const lines = [];
  const metric = (s) => { const line = `METRIC ${s}`; console.log(line); lines.push(line); };
  const fmt = (ms) => ms.toFixed(ms < 10 ? 2 : 1);
  try {
    for (const backend of ["cpu", "webgpu"]) {
      const ctx = await browser({ webgpu: backend === "webgpu" });
      try {
        const page = await ctx.newPage();
        page.on("console", (m) => { if (m.type() === "error") console.error(`[${backend}] console: ${m.text()}`); });
        await page.goto(`${server.url}tests/browser/engine.html`);
        const r = await page.evaluate(`(${pageBench})(${JSON.stringify({
          backend, modelPath: "/" + path.relative(ROOT, MODEL), sizes: SIZES, k: K, maxRuns: MAX_RUNS, budgetS: BUDGET_S,
          maxCallS: MAX_CALL_S,
        })})`);
        const tag = `[${backend}]`;
        console.log(`${tag} engine backend ${r.info.backend} (${r.info.reason}); simd128 ${r.info.simd128}; model ${r.info.bytes} bytes`);
        if (r.info.backend !== backend) throw new Error(`${tag} asked for ${backend}, got ${r.info.backend}`);
        metric(`${tag} wasm init (fetch + compile + instantiate pocketrec_bg.wasm): ${fmt(r.initMs)} ms`);
        metric(`${tag} cold start (bytes in memory -> Engine.load -> first rank of 1000 candidates): ${fmt(r.coldMs)} ms` +
          ` (Engine.load ${fmt(r.loadMs)} ms)`);
        for (const x of r.rank) {
          if (x.skipped) metric(`${tag} rank ${x.n} candidates: SKIPPED (${x.skipped})`);
          else metric(`${tag} rank ${x.n} candidates (top ${K}, context-once): median ${fmt(x.median)} ms ` +
            `(runs ${x.runs.map(fmt).join(", ")})`);
        }
        metric(`${tag} score 1000 full rows (typed-array columns): median ${fmt(r.score.median)} ms ` +
          `(runs ${r.score.runs.map(fmt).join(", ")})`);
        metric(`${tag} wasm GEMM 1000x512x256 (SIMD128, one thread): ${r.gemmGflops.toFixed(1)} GFLOP/s`);
      } finally {
        await ctx.close();
      }
    }
  } finally {
    await server.stop();
  }
  const out = path.join(OUT, "bench-browser.txt");
  writeFileSync(out, `# ${new Date().toISOString()} node tests/browser/bench-browser.mjs (kaggle preset, 10 MB, seed 1)\n` +
    lines.join("\n") + "\n");
  console.log(`wrote ${path.relative(ROOT, out)}`);
}

main().catch((e) => { console.error(`bench-browser: ${e.stack || e}`); process.exit(1); });
