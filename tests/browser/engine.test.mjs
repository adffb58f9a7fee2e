// Engine-level browser tests (issue 4): the wasm engine in headless Chromium, once with WebGPU
// (SwiftShader, --enable-unsafe-webgpu) and once without (the CPU fallback), gives the native
// library's scores for the same model and rows, and bad input gives a clear JS Error or a defined
// empty result, never NaN; a model whose tensor bytes changed by one bit fails its digest check.
// A model without dense features (no bottom MLP) scores and ranks as natively too.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { execFileSync } from "node:child_process";
import {
  serve, browser, missing, nativeScores, demoEvalRows, tsvRow, schemaRowObject, MODEL, CATALOG, ROOT, OUT, DEMO, BIN,
} from "./harness.mjs";
import path from "node:path";

const why = missing();
if (why) console.error(`SKIPPED engine tests: ${why}`);

const ROWS = 300;
let server;
let header, lines, rowObjects, native;


before(async () => {
  if (why) return;
  server = await serve();
  ({ header, lines, rows: rowObjects } = demoEvalRows(ROWS));
  native = nativeScores(MODEL, header, lines, "engine-rows");
  assert.equal(native.length, lines.length);
});

after(async () => { if (server) await server.stop(); });

for (const webgpu of [false, true]) {
  const mode = webgpu ? "webgpu" : "cpu-fallback";
  test(`engine in Chromium (${mode}): native parity and bad input`, { skip: why || false }, async () => {
    const ctx = await browser({ webgpu });
    try {
      const page = await ctx.newPage();
      await page.goto(`${server.url}tests/browser/engine.html`);
      const catalog = JSON.parse(readFileSync(CATALOG, "utf8"));
      const items = catalog.items.slice(0, 500);
      const r = await page.evaluate(async ({ rows, items, modelPath }) => {
        const { default: init, Engine, tokenValue } = await import("/web/pkg/pocketrec.js");
        await init();
        const bytes = new Uint8Array(await (await fetch(modelPath)).arrayBuffer());
        const adapter = navigator.gpu ? await navigator.gpu.requestAdapter() : null;
        const engine = await Engine.load(bytes, "auto");
        const info = engine.info();
        const out = { info, adapter: !!adapter };

        // Full rows, as objects and as columns.
        out.objects = Array.from(await engine.score(rows));
        const cfg = info.config;
        const dense = new Float32Array(rows.length * cfg.dense.length);
        rows.forEach((row, r) => cfg.dense.forEach((d, j) => { dense[r * cfg.dense.length + j] = row[d]; }));
        const fields = {};
        for (const f of cfg.fields) {
          if (f.kind === "categorical") {
            fields[f.name] = Uint32Array.from(rows.map((row) => tokenValue(row[f.name])));
          } else {
            const offsets = [0], values = [];
            for (const row of rows) { for (const v of row[f.name]) values.push(tokenValue(v)); offsets.push(values.length); }
            fields[f.name] = { offsets: Uint32Array.from(offsets), values: Uint32Array.from(values) };
          }
        }
        out.columns = Array.from(await engine.score({ rows: rows.length, dense, fields }));

        // Ranking: the context of row 0 against `items`.
        const context = { ...rows[0] };
        delete context.item; delete context.category; delete context.attributes;
        const cands = items.map((it) => ({ item: it.id, category: it.category, attributes: it.attributes }));
        out.context = context;
        out.ranked = await engine.rank(context, cands, cands.length);
        out.top5 = await engine.rank(context, cands, 5);
        // Diversity: strength 0 is the plain ranking; a strength > 0 re-ranks the top.
        const features = ["category", "attributes"];
        out.plain24 = await engine.rank(context, cands, 24);
        out.div0 = await engine.rank(context, cands, 24, { diversity: { strength: 0, features } });
        out.div05 = await engine.rank(context, cands, 24, { diversity: { strength: 0.5, features } });

        // Bad input: each must reject with an Error (message kept) or give a defined empty result.
        const reject = async (f) => {
          try { await f(); return { ok: true }; } catch (e) { return { error: e instanceof Error, message: String(e.message) }; }
        };
        const corrupt = bytes.slice(); for (let i = 8; i < 64; i++) corrupt[i] ^= 0x5a;
        // One low bit flipped in the tensor data (after the 8-byte length and the JSON header): the
        // first byte, one in the embedding, one in a bias, the last byte. Each value stays finite.
        const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
        const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
        const at = (name, k) => 8 + n + header[name].data_offsets[0] + k;
        out.flipped = {};
        for (const [where, i] of [["first", 8 + n], ["embedding", at("robe.weight", 4099)], ["bias", at("bottom.0.bias", 1)], ["last", bytes.length - 1]]) {
          const b = bytes.slice();
          b[i] ^= 0x01;
          out.flipped[where] = await reject(() => Engine.load(b, "auto"));
        }
        out.bad = {
          truncated: await reject(() => Engine.load(bytes.slice(0, bytes.length >> 1), "cpu")),
          corrupt: await reject(() => Engine.load(corrupt, "cpu")),
          empty: await reject(() => Engine.load(new Uint8Array(0), "cpu")),
          garbage: await reject(() => Engine.load(Uint8Array.from({ length: 4096 }, (_, i) => (i * 7919) & 255), "cpu")),
          backend: await reject(() => Engine.load(bytes, "quantum")),
          missingField: await reject(() => engine.score([{ ...rows[0], device: undefined }])),
          missingField2: await reject(() => { const r0 = { ...rows[0] }; delete r0.device; return engine.score([r0]); }),
          wrongType: await reject(() => engine.score([{ ...rows[0], device: { x: 1 } }])),
          wrongDense: await reject(() => engine.score([{ ...rows[0], hour: "late" }])),
          nanDense: await reject(() => engine.score([{ ...rows[0], hour: NaN }])),
          typo: await reject(() => engine.score([{ ...rows[0], devise: "mobile" }])),
          notArray: await reject(() => engine.score(42)),
          badColumns: await reject(() => engine.score({ rows: 2, dense: new Float32Array(3), fields: {} })),
          rankMissing: await reject(() => engine.rank(context, [{ item: "x", category: "y" }], 3)),
          rankBadContext: await reject(() => engine.rank({ hour: 1 }, cands, 3)),
          divNaN: await reject(() => engine.rank(context, cands, 3, { diversity: { strength: NaN, features } })),
          divHigh: await reject(() => engine.rank(context, cands, 3, { diversity: { strength: 2, features } })),
          divUnknown: await reject(() => engine.rank(context, cands, 3, { diversity: { strength: 0.5, features: ["colour"] } })),
          divContextField: await reject(() => engine.rank(context, cands, 3, { diversity: { strength: 0.5, features: ["device"] } })),
          divTypo: await reject(() => engine.rank(context, cands, 3, { diversty: { strength: 0.5, features } })),
        };
        // Calls that overlap run one at a time, in order; a failing one does not block the next.
        const overlapping = await Promise.allSettled([
          engine.rank(context, cands, 5), engine.score([{ hour: 1 }]), engine.score(rows.slice(0, 3)), engine.rank(context, cands, 5),
        ]);
        out.overlap = overlapping.map((p) => p.status);
        out.overlapSame = JSON.stringify(overlapping[0].value) === JSON.stringify(out.top5) &&
          JSON.stringify(overlapping[3].value) === JSON.stringify(out.top5) &&
          JSON.stringify(Array.from(overlapping[2].value)) === JSON.stringify(out.objects.slice(0, 3));
        out.k0 = await engine.rank(context, cands, 0);
        out.noCandidates = await engine.rank(context, [], 10);
        out.emptyScore = Array.from(await engine.score([]));
        return out;
      }, { rows: rowObjects, items, modelPath: "/" + path.relative(ROOT, MODEL) });

      console.log(`[${mode}] backend ${r.info.backend} (${r.info.backend_reason}); adapter ${r.adapter}; simd128 ${r.info.simd128}`);
      if (process.env.POCKETREC_EXPECT_WEBGPU === "1" && webgpu) assert.equal(r.info.backend, "webgpu");
      if (!webgpu) assert.equal(r.info.backend, "cpu", "without --enable-unsafe-webgpu there is no adapter");

      // Parity with the native library on the same rows.
      const maxDiff = (a, b) => Math.max(...a.map((x, i) => Math.abs(x - b[i])));
      assert.equal(r.objects.length, native.length);
      assert.ok(r.objects.every(Number.isFinite));
      assert.ok(maxDiff(r.objects, native) < 2e-5, `objects vs native: max |diff| ${maxDiff(r.objects, native)}`);
      assert.ok(maxDiff(r.columns, r.objects) < 1e-6, "columns and objects give the same scores");

      // Ranking equals full-row native scores of (context, item), sorted.
      const rankLines = items.map((it) => tsvRow(header.split("\t"), r.context, it));
      const rankNative = nativeScores(MODEL, header, rankLines, `engine-rank-${mode}`);
      assert.equal(r.ranked.length, items.length);
      for (const x of r.ranked) {
        assert.ok(Number.isFinite(x.score) && Number.isFinite(x.logit));
        assert.ok(Math.abs(x.score - rankNative[x.index]) < 2e-5, `item ${x.index}: ${x.score} vs ${rankNative[x.index]}`);
      }
      for (let i = 1; i < r.ranked.length; i++) assert.ok(r.ranked[i - 1].logit >= r.ranked[i].logit, "sorted best first");
      const nativeTop = rankNative.map((s, i) => [s, i]).sort((a, b) => b[0] - a[0]).slice(0, 5);
      assert.deepEqual(r.top5.map((x) => x.index), nativeTop.map(([, i]) => i), "top-5 equals native top-5");

      // Bad input.
      for (const [name, res] of Object.entries(r.bad)) {
        assert.ok(res.error === true && res.message.length > 10, `${name}: expected a JS Error, got ${JSON.stringify(res)}`);
        console.log(`[${mode}] ${name}: ${res.message}`);
      }
      assert.match(r.bad.truncated.message, /safetensors|truncated|corrupt/i);
      assert.match(r.info.digest, /^xxh3-64:[0-9a-f]{16}$/);
      for (const [where, res] of Object.entries(r.flipped)) {
        assert.ok(res.error === true, `a flipped byte (${where}) must not load: ${JSON.stringify(res)}`);
        assert.match(res.message, /^model file is corrupt \(digest mismatch\)/, where);
      }
      console.log(`[${mode}] flipped byte: ${r.flipped.bias.message}`);
      assert.match(r.bad.missingField.message, /missing field "device"/);
      assert.match(r.bad.missingField2.message, /missing field "device"/);
      assert.match(r.bad.wrongType.message, /"device".*must be a string or an integer/);
      assert.match(r.bad.nanDense.message, /"hour".*finite number/);
      assert.match(r.bad.rankMissing.message, /missing field "attributes"/);
      assert.deepEqual(r.overlap, ["fulfilled", "rejected", "fulfilled", "fulfilled"]);
      assert.ok(r.overlapSame, "overlapping calls give the same results as awaited ones");
      assert.deepEqual(r.k0, []);

      // Diversity: strength 0 gives exactly the plain ranking; 0.5 gives 24 distinct candidates,
      // each with its own score, and spans more categories than the plain top 24.
      assert.deepEqual(r.div0, r.plain24, "strength 0 is the plain ranking");
      const catOf = (x) => items[x.index].category;
      const spread = (list) => new Set(list.map(catOf)).size;
      assert.equal(new Set(r.div05.map((x) => x.index)).size, 24);
      for (const x of r.div05) assert.ok(Math.abs(x.score - rankNative[x.index]) < 2e-5, `diverse item ${x.index}`);
      assert.deepEqual(r.div05[0], r.plain24[0], "the best candidate stays first");
      console.log(`[${mode}] categories in the top 24: ${spread(r.plain24)} plain, ${spread(r.div05)} at diversity 0.5`);
      assert.ok(spread(r.div05) > spread(r.plain24), "diversity 0.5 spans more categories");
      assert.match(r.bad.divNaN.message, /diversity strength must be a number in \[0, 1\].*NaN/);
      assert.match(r.bad.divHigh.message, /diversity strength.*got 2/);
      assert.match(r.bad.divUnknown.message, /"colour" is not a field of the model/);
      assert.match(r.bad.divContextField.message, /"device" is a context field/);
      assert.match(r.bad.divTypo.message, /unknown key "diversty"/);
      for (const k of ["divNaN", "divHigh", "divUnknown", "divContextField", "divTypo"]) assert.equal(r.bad[k].error, true, k);
      assert.deepEqual(r.noCandidates, []);
      assert.deepEqual(r.emptyScore, []);
    } finally {
      await ctx.close();
    }
  });
}

// A model without dense features (issue 14): the demo's rows with their dense columns dropped,
// trained natively (no bottom MLP). The engine scores the rows as the native CLI does and ranks
// each item as the native CLI scores its full row, on the CPU fallback and on WebGPU.
const noDense = { header: null, rows: null, native: null, model: path.join(OUT, "nodense.safetensors") };

/** A schema TSV's text with its `dense:` columns dropped. */
function dropDense(text) {
  const lines = text.split("\n").filter(Boolean);
  const keep = lines[0].split("\t").map((tok) => !tok.startsWith("dense:"));
  return lines.map((l) => l.split("\t").filter((_, i) => keep[i]).join("\t"));
}

before(() => {
  if (why) return;
  const train = path.join(OUT, "nodense-train.tsv");
  writeFileSync(train, dropDense(readFileSync(path.join(DEMO, "train.tsv"), "utf8")).join("\n") + "\n");
  execFileSync(BIN, ["train", "--train", train, "--preset", "small", "--memory", "200KB", "--epochs", "1", "--batch", "256",
    "--lr", "0.05", "--optimizer", "adagrad", "--seed", "7", "--quiet", "-o", noDense.model], { stdio: ["ignore", "ignore", "inherit"] });
  const demo = demoEvalRows(100);
  const [head, ...rows] = dropDense([demo.header, ...demo.lines].join("\n"));
  noDense.header = head;
  noDense.rows = rows.map((l) => schemaRowObject(head.split("\t"), l));
  noDense.native = nativeScores(noDense.model, head, rows, "nodense-rows");
});

for (const webgpu of [false, true]) {
  const mode = webgpu ? "webgpu" : "cpu-fallback";
  test(`engine in Chromium (${mode}): a model without dense features`, { skip: why || false }, async () => {
    const ctx = await browser({ webgpu });
    try {
      const page = await ctx.newPage();
      await page.goto(`${server.url}tests/browser/engine.html`);
      const items = JSON.parse(readFileSync(CATALOG, "utf8")).items.slice(0, 300);
      const r = await page.evaluate(async ({ rows, items, modelPath }) => {
        const { default: init, Engine } = await import("/web/pkg/pocketrec.js");
        await init();
        const bytes = new Uint8Array(await (await fetch(modelPath)).arrayBuffer());
        const engine = await Engine.load(bytes, "auto");
        const info = engine.info();
        const context = { ...rows[0] };
        delete context.item; delete context.category; delete context.attributes;
        const cands = items.map((it) => ({ item: it.id, category: it.category, attributes: it.attributes }));
        return { info, context, scores: Array.from(await engine.score(rows)), ranked: await engine.rank(context, cands, cands.length) };
      }, { rows: noDense.rows, items, modelPath: "/" + path.relative(ROOT, noDense.model) });

      console.log(`[${mode}, no dense] backend ${r.info.backend} (${r.info.backend_reason})`);
      if (!webgpu) assert.equal(r.info.backend, "cpu");
      assert.deepEqual([r.info.config.dense, r.info.config.bottom], [[], []]);
      const maxDiff = (a, b) => Math.max(...a.map((x, i) => Math.abs(x - b[i])));
      assert.equal(r.scores.length, noDense.native.length);
      assert.ok(maxDiff(r.scores, noDense.native) < 2e-5, `scores vs native: max |diff| ${maxDiff(r.scores, noDense.native)}`);
      const rankLines = items.map((it) => tsvRow(noDense.header.split("\t"), r.context, it));
      const rankNative = nativeScores(noDense.model, noDense.header, rankLines, `nodense-rank-${mode}`);
      assert.equal(r.ranked.length, items.length);
      for (const x of r.ranked) {
        assert.ok(Math.abs(x.score - rankNative[x.index]) < 2e-5, `item ${x.index}: ${x.score} vs ${rankNative[x.index]}`);
      }
      for (let i = 1; i < r.ranked.length; i++) assert.ok(r.ranked[i - 1].logit >= r.ranked[i].logit, "sorted best first");
    } finally {
      await ctx.close();
    }
  });
}
