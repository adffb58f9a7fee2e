// Browser benchmark (issue 4, section 5): the wasm engine in headless Chromium with the kaggle preset
// at 10 MB, wasm-CPU (no --enable-unsafe-webgpu) against WebGPU (SwiftShader). Measures cold start
// (model bytes in memory -> Engine.load -> first rank of 1,000 candidates), the median latency of
// context-once rank() of 1,000 / 10,000 / 100,000 candidates (top 10) and of full-row score() of
// 1,000 rows, and the wasm GEMM rate. Context = I1..I13 and C1..C20, candidates = C21..C26 as
// Uint32Array columns. On-device learning (issue 10, part 5): one like (a positive and four
// negatives, default options) on the kaggle model and on the demo model, each beside the native
// single-thread time of the same call (crate/benches/learn.rs, run first by `make bench-browser`),
// and the demo catalog's re-ranking after learning.
// Not a test (no timed assertions): prints `METRIC ...` lines and writes tests/out/bench-browser.txt.
//   node tests/browser/bench-browser.mjs        (run by `make bench-browser`; BENCH_BACKENDS=cpu for one)
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { serve, browser, BIN, OUT, ROOT, MODEL as DEMO_MODEL, CATALOG } from "./harness.mjs";

const BENCH_DIR = path.join(OUT, "bench");
const MODEL = path.join(BENCH_DIR, "kaggle.safetensors");
const SIZES = [1_000, 10_000, 100_000];
const K = 10;
/** Per measurement: at most this many timed runs, and no new run once this many seconds are spent. */
const MAX_RUNS = 7;
const BUDGET_S = 15;
/** Skip a size whose predicted single call (10x the previous size) is longer than this. */
const MAX_CALL_S = 60;
/** The engine backends to measure: $BENCH_BACKENDS (comma-separated), else both. */
const BACKENDS = (process.env.BENCH_BACKENDS || "cpu,webgpu").split(",");
/** One like: a positive and four negatives. */
const LIKE_LABELS = [1, 0, 0, 0, 0];

function need() {
  if (!existsSync(path.join(ROOT, "web/pkg/pocketrec_bg.wasm"))) return "web/pkg is not built: run make wasm";
  if (!BIN) return "no pocketrec binary: run cargo build --release -p pocketrec-trainer";
  if (!existsSync("/usr/bin/chromium")) return "no /usr/bin/chromium";
  if (!existsSync(DEMO_MODEL) || !existsSync(CATALOG)) return `no demo model at ${DEMO_MODEL}: run make demo-model`;
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

  // One like: five full rows (a positive and four negatives), default options.
  const like = { rows: 5, dense: dense.slice(0, 5 * 13), fields: {} };
  for (let i = 1; i <= 26; i++) like.fields[`C${i}`] = fields[`C${i}`].slice(0, 5);
  const learn = await time(async () => {
    const r = await engine.learn(like, LIKE_LABELS);
    if (!Number.isFinite(r.loss)) throw new Error("bad learning loss");
  });
  engine.free();

  // The wasm GEMM rate on the top MLP's largest layer (compare: `cargo bench --bench rank`, gemm).
  const [gm, gk, gn, reps] = [1000, 512, 256, 20];
  benchMatmul(gm, gk, gn, 2);
  const g0 = performance.now();
  if (!Number.isFinite(benchMatmul(gm, gk, gn, reps))) throw new Error("bad GEMM checksum");
  const gemmGflops = (2 * gm * gk * gn * reps) / ((performance.now() - g0) * 1e6);
  return { gemmGflops, info: { backend: info.backend, reason: info.backend_reason, simd128: info.simd128, bytes: info.model_bytes },
    initMs, loadMs, coldMs, rank, score, learn };
}

/** Runs in the page: the demo model learns one like (the rows crate/benches/learn.rs builds), then
 *  re-ranks the whole catalog (10,000 items, as the page's worker: hashed columns, top 24,
 *  diversity 0.3). Each timed learn call is one more like on the same rows. */
async function pageDemoBench({ backend, modelPath, catalogPath, maxRuns, budgetS }) {
  const { default: init, Engine, tokenValue } = await import("/web/pkg/pocketrec.js");
  await init();
  const bytes = new Uint8Array(await (await fetch(modelPath)).arrayBuffer());
  const catalog = await (await fetch(catalogPath)).json();
  const engine = await Engine.load(bytes, backend);
  const items = catalog.items;
  const recent = items.slice(10, 20);
  const context = { hour: 20, session_length: 1, history_length: 10, time_of_day: "evening", device: "mobile",
    recent_items: recent.map((i) => i.id), recent_categories: recent.map((i) => i.category) };
  const rows = items.slice(0, 5).map((it) => ({ ...context, item: it.id, category: it.category, attributes: it.attributes }));
  const n = items.length;
  const columns = { rows: n, fields: { item: new Uint32Array(n), category: new Uint32Array(n) } };
  const offsets = new Uint32Array(n + 1);
  const values = [];
  items.forEach((it, i) => {
    columns.fields.item[i] = tokenValue(it.id);
    columns.fields.category[i] = tokenValue(it.category);
    for (const a of it.attributes) values.push(tokenValue(a));
    offsets[i + 1] = values.length;
  });
  columns.fields.attributes = { offsets, values: Uint32Array.from(values) };
  const options = { diversity: { strength: 0.3, features: ["category", "attributes"] } };

  async function time(f) {
    const w = performance.now();
    while (performance.now() - w < 1000) await f();
    const runs = [];
    const start = performance.now();
    while (runs.length < maxRuns && performance.now() - start < budgetS * 1000) {
      const t = performance.now();
      await f();
      runs.push(performance.now() - t);
    }
    const sorted = [...runs].sort((a, b) => a - b);
    const mid = sorted.length >> 1;
    return { median: sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2, runs };
  }
  const learn = await time(async () => {
    const r = await engine.learn(rows, LIKE_LABELS);
    if (!Number.isFinite(r.loss)) throw new Error("bad learning loss");
  });
  const rerank = await time(async () => {
    const top = await engine.rank(context, columns, 24, options);
    if (top.length !== 24) throw new Error(`rank: ${top.length} results`);
  });
  const info = engine.info();
  engine.free();
  return { backend: info.backend, items: n, learn, rerank };
}

/** Medians of the native single-thread learning bench (crate/benches/learn.rs) in ms, by case,
 *  from the criterion output `make bench-browser` saves before this script runs. */
function nativeLearnMs() {
  const file = path.join(OUT, "bench-native-learn.txt");
  if (!existsSync(file)) return {};
  const unit = { ns: 1e-6, "µs": 1e-3, us: 1e-3, ms: 1, s: 1000 };
  const out = {};
  const re = /learn one like\/(.+?)\s+time:\s+\[\S+ \S+ (\S+) (\S+)/g;
  for (const m of readFileSync(file, "utf8").matchAll(re)) out[m[1]] = Number(m[2]) * (unit[m[3]] ?? NaN);
  return out;
}

async function main() {
  const why = need();
  if (why) { console.error(`bench-browser: ${why}`); process.exit(1); }
  mkdirSync(BENCH_DIR, { recursive: true });
  execFileSync(BIN, ["init", "--preset", "kaggle", "--memory", "10MB", "--seed", "1", "-o", MODEL], { stdio: "inherit" });
  const server = await serve();
  const native = nativeLearnMs();
  const lines = [];
  const metric = (s) => { const line = `METRIC ${s}`; console.log(line); lines.push(line); };
  const fmt = (ms) => ms.toFixed(ms < 10 ? 2 : 1);
  try {
    for (const backend of BACKENDS) {
      const ctx = await browser({ webgpu: backend === "webgpu" });
      try {
        const page = await ctx.newPage();
        page.on("console", (m) => { if (m.type() === "error") console.error(`[${backend}] console: ${m.text()}`); });
        await page.goto(`${server.url}tests/browser/engine.html`);
        const r = await page.evaluate(`const LIKE_LABELS = ${JSON.stringify(LIKE_LABELS)}; (${pageBench})(${JSON.stringify({
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
        const ratio = (ms, name) => native[name] ? ` = ${(ms / native[name]).toFixed(1)}x native ${fmt(native[name])} ms` : "";
        metric(`${tag} learn one like, kaggle 10 MB (5 rows, default options): median ${fmt(r.learn.median)} ms` +
          `${ratio(r.learn.median, "kaggle 10MB")} (runs ${r.learn.runs.map(fmt).join(", ")})`);
        const d = await page.evaluate(`const LIKE_LABELS = ${JSON.stringify(LIKE_LABELS)}; (${pageDemoBench})(${JSON.stringify({
          backend, modelPath: "/" + path.relative(ROOT, DEMO_MODEL), catalogPath: "/" + path.relative(ROOT, CATALOG),
          maxRuns: 15, budgetS: BUDGET_S,
        })})`);
        metric(`${tag} learn one like, demo 1 MB (5 rows, default options): median ${fmt(d.learn.median)} ms` +
          `${ratio(d.learn.median, "demo 1MB")} (runs ${d.learn.runs.map(fmt).join(", ")})`);
        metric(`${tag} re-rank the demo catalog after learning (${d.items} items, top 24, diversity 0.3): ` +
          `median ${fmt(d.rerank.median)} ms (runs ${d.rerank.runs.map(fmt).join(", ")})`);
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
