// The npm package (make package) as a user meets it: the tarball installed offline into a fresh
// folder, its example page served from there as index.html with the demo model, importing the
// package by name through an import map. Its worker helper ranks, scores, learns and saves exactly
// as an Engine on the main thread does, which ranks as native `pocketrec score` does.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { serve, browser, missing, nativeScores, demoEvalRows, MODEL, CATALOG, ROOT } from "./harness.mjs";

const PACKAGES = path.join(ROOT, "out/package");
const TARBALL = existsSync(PACKAGES) && readdirSync(PACKAGES).find((f) => /^pocketrec-.*\.tgz$/.test(f));

let why = missing();
if (!why && !TARBALL) {
  why = "no out/package/pocketrec-*.tgz: run make package";
  if (process.env.CI === "true") throw new Error(`the package test cannot run in CI: ${why}`);
}
if (why) console.error(`SKIPPED package tests: ${why}`);

let app, installed, server, header, lines, rows, native;

before(async () => {
  if (why) return;
  // As the README's "Use the engine in your app" says: install the tarball, take the example page.
  app = mkdtempSync(path.join(tmpdir(), "pocketrec-app-"));
  execFileSync("npm", ["install", "--offline", "--no-audit", "--no-fund", path.join(PACKAGES, TARBALL)],
    { cwd: app, stdio: ["ignore", "ignore", "inherit"] });
  installed = path.join(app, "node_modules/pocketrec");
  copyFileSync(path.join(installed, "example.html"), path.join(app, "index.html"));
  copyFileSync(MODEL, path.join(app, "model.safetensors"));
  server = await serve(0, app);
  ({ header, lines, rows } = demoEvalRows(40));
  native = nativeScores(MODEL, header, lines, "package-rows");
});

after(async () => { if (server) await server.stop(); });

test("the tarball is an npm package of the crate's version, importable by name", { skip: why || false }, () => {
  const pkg = JSON.parse(readFileSync(path.join(installed, "package.json"), "utf8"));
  const meta = JSON.parse(execFileSync("cargo", ["metadata", "--no-deps", "--format-version", "1",
    "--manifest-path", path.join(ROOT, "crate/Cargo.toml")], { encoding: "utf8" }));
  const crate = meta.packages.find((p) => p.name === "pocketrec");
  assert.equal(pkg.name, "pocketrec");
  assert.equal(pkg.version, crate.version, "the package's version is the crate's");
  assert.equal(TARBALL, `pocketrec-${crate.version}.tgz`);
  assert.equal(pkg.type, "module");
  assert.equal(pkg.types, "./pocketrec.d.ts");
  for (const f of pkg.files) assert.ok(existsSync(path.join(installed, f)), `${f} listed and installed`);
  assert.deepEqual(readdirSync(installed).sort(), [...pkg.files, "package.json"].sort(), "nothing else ships");
  for (const [subpath, target] of Object.entries(pkg.exports)) {
    for (const file of typeof target === "string" ? [target] : Object.values(target)) {
      assert.ok(existsSync(path.join(installed, file)), `export ${subpath}: ${file}`);
    }
  }
  assert.match(readFileSync(path.join(installed, "worker.d.ts"), "utf8"), /export declare class WorkerEngine/);
  // The README shows the example page exactly as shipped, so it runs as written.
  const readme = readFileSync(path.join(installed, "README.md"), "utf8");
  const block = readme.match(/```html\n([\s\S]*?)```/);
  assert.ok(block, "README.md has the example page");
  assert.equal(block[1], readFileSync(path.join(installed, "example.html"), "utf8"));
  // Node resolves both entry points through `exports`, as a bundler would.
  const kinds = execFileSync(process.execPath, ["--input-type=module", "-e",
    `const e = await import("pocketrec"); const w = await import("pocketrec/worker");
     console.log([typeof e.default, typeof e.Engine, typeof e.tokenValue, typeof w.WorkerEngine].join(" "));`],
  { cwd: app, encoding: "utf8" });
  assert.equal(kinds.trim(), "function function function function");
});

test("the example page and WorkerEngine rank as the Engine and native scoring do", { skip: why || false }, async () => {
  const ctx = await browser({ webgpu: false });
  try {
    const page = await ctx.newPage();
    const errors = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    await page.goto(`${server.url}index.html`);
    await page.waitForFunction(() => document.getElementById("out").textContent.startsWith("{"), null, { timeout: 60_000 });
    const example = JSON.parse(await page.textContent("#out"));
    assert.deepEqual(errors, []);
    const items = JSON.parse(readFileSync(CATALOG, "utf8")).items.slice(0, 500);

    const r = await page.evaluate(async ({ rows, items }) => {
      const { default: init, Engine, tokenValue } = await import("pocketrec");
      const { WorkerEngine } = await import("pocketrec/worker");
      await init();
      const bytes = new Uint8Array(await (await fetch("model.safetensors")).arrayBuffer());
      const direct = await Engine.load(bytes, "auto");
      const worker = new WorkerEngine();
      const out = { info: await worker.load("model.safetensors"), directInfo: direct.info() };

      // example.html's context and candidates.
      const exContext = { hour: 20, session_length: 1, history_length: 0, recent_items: [], recent_categories: [],
                          time_of_day: "evening", device: "mobile" };
      const exCandidates = ["books", "games", "kitchen", "music"].map((category, i) =>
        ({ item: `i0000${i}`, category, attributes: ["color:red", "style:vintage", "price:mid"] }));
      out.exampleDirect = await direct.rank(exContext, exCandidates, 3, { diversity: { strength: 0.3, features: ["category"] } });

      // The context of the first eval row against 500 catalog items, as objects and as columns.
      const context = { ...rows[0] };
      delete context.item; delete context.category; delete context.attributes;
      const cands = items.map((it) => ({ item: it.id, category: it.category, attributes: it.attributes }));
      const values = cands.flatMap((c) => c.attributes.map(tokenValue));
      const offsets = [0];
      for (const c of cands) offsets.push(offsets[offsets.length - 1] + c.attributes.length);
      const columns = { rows: cands.length, fields: {
        item: Uint32Array.from(cands.map((c) => tokenValue(c.item))),
        category: Uint32Array.from(cands.map((c) => tokenValue(c.category))),
        attributes: { offsets: Uint32Array.from(offsets), values: Uint32Array.from(values) } } };
      const diverse = { diversity: { strength: 0.3, features: ["category", "attributes"] } };
      const ranks = async (e) => ({
        plain: await e.rank(context, cands, 50),
        diverse: await e.rank(context, cands, 24, diverse),
        columns: await e.rank(context, columns, 50),
      });
      out.workerRanks = await ranks(worker);
      out.directRanks = await ranks(direct);
      const scores = await worker.score(rows);
      out.scoresType = scores.constructor.name;
      out.workerScores = Array.from(scores);
      out.directScores = Array.from(await direct.score(rows));

      // Learning on the same rows moves both the same way; the saved file ranks the same anywhere.
      const labels = rows.slice(0, 20).map((_, i) => i % 2);
      const opts = { lr: 0.05, steps: 3, optimizer: "adagrad" };
      out.workerLearn = await worker.learn(rows.slice(0, 20), labels, opts);
      out.directLearn = await direct.learn(rows.slice(0, 20), labels, opts);
      out.workerLearned = await worker.rank(context, cands, 50);
      out.directLearned = await direct.rank(context, cands, 50);
      const saved = await worker.save();
      out.savedType = saved.constructor.name;
      out.reloadedDirect = await (await Engine.load(saved, "cpu")).rank(context, cands, 50);
      await worker.load(saved);
      out.savedStillUsable = saved.length > 0;
      out.reloadedWorker = await worker.rank(context, cands, 50);
      await worker.load(saved.buffer);
      out.reloadedFromBuffer = await worker.rank(context, cands, 50);

      // Failures reject with an Error carrying the engine's message; the worker goes on.
      const reject = async (f) => {
        try { await f(); return { ok: true }; } catch (e) { return { error: e instanceof Error, message: String(e.message) }; }
      };
      out.bad = {
        missingField: await reject(() => worker.rank(context, [{ item: "x", category: "y" }], 3)),
        notFound: await reject(() => worker.load("no-such-model.safetensors")),
        notAModel: await reject(() => worker.load(new Uint8Array(64))),
        badSource: await reject(() => worker.load(42)),
      };
      out.afterErrors = await worker.rank(context, cands, 50);
      const fresh = new WorkerEngine();
      out.bad.notLoaded = await reject(() => fresh.info());
      fresh.terminate();
      out.bad.terminated = await reject(() => fresh.info());
      worker.terminate();
      return out;
    }, { rows, items });

    assert.equal(r.info.backend, "cpu");
    assert.deepEqual(r.info, r.directInfo, "the worker's engine is the same model on the same backend");
    assert.equal(example.backend, "cpu");
    assert.equal(example.top.length, 3);
    assert.deepEqual(example.top, r.exampleDirect, "the example page ranks as the Engine does");

    for (const kind of ["plain", "diverse", "columns"]) {
      assert.deepEqual(r.workerRanks[kind], r.directRanks[kind], `worker rank (${kind}) equals Engine.rank`);
    }
    assert.deepEqual(r.directRanks.columns, r.directRanks.plain, "columns rank as objects");
    assert.notDeepEqual(r.directRanks.diverse, r.directRanks.plain.slice(0, 24), "diversity re-ranks");
    assert.equal(r.scoresType, "Float32Array");
    assert.deepEqual(r.workerScores, r.directScores);
    const worst = Math.max(...r.workerScores.map((s, i) => Math.abs(s - native[i])));
    console.log(`package: worker scores vs native pocketrec score, 40 rows: max |diff| ${worst.toExponential(2)}`);
    assert.ok(worst < 2e-5, `worker scores vs native: ${worst}`);

    assert.deepEqual(r.workerLearn.loss, r.directLearn.loss);
    assert.equal(r.workerLearn.steps, 3);
    assert.deepEqual(r.workerLearned, r.directLearned, "learned the same");
    assert.notDeepEqual(r.workerLearned, r.directRanks.plain, "learning changed the scores");
    assert.equal(r.savedType, "Uint8Array");
    assert.deepEqual(r.reloadedDirect, r.workerLearned, "the saved model ranks as the learned one");
    assert.ok(r.savedStillUsable, "load() copies its argument");
    assert.deepEqual(r.reloadedWorker, r.workerLearned);
    assert.deepEqual(r.reloadedFromBuffer, r.workerLearned);

    for (const [name, res] of Object.entries(r.bad)) {
      assert.equal(res.error, true, `${name}: expected an Error, got ${JSON.stringify(res)}`);
      console.log(`package: ${name}: ${res.message}`);
    }
    assert.match(r.bad.missingField.message, /missing field "attributes"/);
    assert.match(r.bad.notFound.message, /no-such-model\.safetensors: HTTP 404/);
    assert.match(r.bad.notAModel.message, /safetensors|truncated|corrupt/i);
    assert.match(r.bad.badSource.message, /source must be/);
    assert.match(r.bad.notLoaded.message, /no model loaded/);
    assert.match(r.bad.terminated.message, /terminated/);
    assert.deepEqual(r.afterErrors, r.workerLearned, "a failed load keeps the loaded model");
  } finally {
    await ctx.close();
  }
});
