// On-device learning in headless Chromium (issue 10), with WebGPU (SwiftShader) and with the CPU
// fallback: engine.learn lowers the loss of the rows it learns from and changes the scores; the
// WebGPU engine scores the learned weights as a CPU engine that learned the same does; save()
// gives a model file that loads back with the same scores, that the native CLI scores the same
// and whose provenance names the base model; bad input rejects with a named problem and changes
// no score.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { execFileSync } from "node:child_process";
import path from "node:path";
import { serve, browser, missing, nativeScores, demoEvalRows, MODEL, ROOT, OUT, BIN } from "./harness.mjs";

const why = missing();
if (why) console.error(`SKIPPED learn tests: ${why}`);

const ROWS = 40;
let server, header, lines, rows, labels;

before(async () => {
  if (why) return;
  server = await serve();
  ({ header, lines, rows } = demoEvalRows(ROWS));
  labels = lines.map((l) => Number(l.split("\t")[0]));
});

after(async () => { if (server) await server.stop(); });

for (const webgpu of [false, true]) {
  const mode = webgpu ? "webgpu" : "cpu-fallback";
  test(`engine.learn in Chromium (${mode})`, { skip: why || false }, async () => {
    const ctx = await browser({ webgpu });
    try {
      const page = await ctx.newPage();
      await page.goto(`${server.url}tests/browser/engine.html`);
      const r = await page.evaluate(async ({ rows, labels, modelPath }) => {
        const { default: init, Engine } = await import("/web/pkg/pocketrec.js");
        await init();
        const bytes = new Uint8Array(await (await fetch(modelPath)).arrayBuffer());
        const engine = await Engine.load(bytes, "auto");
        const cpu = await Engine.load(bytes, "cpu");
        const out = { info: engine.info() };
        out.before = Array.from(await engine.score(rows));
        const opts = { lr: 0.05, steps: 2, optimizer: "adam", scope: "all", anchor: 0.01 };
        out.reports = [];
        for (let i = 0; i < 4; i++) {
          out.reports.push(await engine.learn(rows, labels, opts));
          await cpu.learn(rows, Float32Array.from(labels), opts);
        }
        out.defaults = await Engine.load(bytes, "cpu").then((e) => e.learn(rows.slice(0, 2), [1, 0]));
        out.after = Array.from(await engine.score(rows));
        out.cpuAfter = Array.from(await cpu.score(rows));

        const reject = async (f) => {
          try { await f(); return { ok: true }; } catch (e) { return { error: e instanceof Error, message: String(e.message) }; }
        };
        const three = rows.slice(0, 3);
        out.bad = {
          label: await reject(() => engine.learn(three, [1, 0.5, 0])),
          labelCount: await reject(() => engine.learn(three, [1, 0])),
          nanDense: await reject(() => engine.learn([{ ...rows[0], hour: NaN }], [1])),
          empty: await reject(() => engine.learn([], [])),
          lr: await reject(() => engine.learn(three, [1, 0, 0], { lr: 0 })),
          lrInf: await reject(() => engine.learn(three, [1, 0, 0], { lr: Infinity })),
          anchor: await reject(() => engine.learn(three, [1, 0, 0], { anchor: -1 })),
          steps: await reject(() => engine.learn(three, [1, 0, 0], { steps: 0 })),
          optimizer: await reject(() => engine.learn(three, [1, 0, 0], { optimizer: "rmsprop" })),
          scope: await reject(() => engine.learn(three, [1, 0, 0], { scope: "bottom" })),
          unknownOption: await reject(() => engine.learn(three, [1, 0, 0], { rate: 0.1 })),
          diverging: await reject(() => engine.learn(three, [1, 0, 0], { lr: 1e30, optimizer: "sgd", steps: 5 })),
        };
        out.afterBad = Array.from(await engine.score(rows));

        const saved = await engine.save();
        const reloaded = await Engine.load(saved, "cpu");
        out.savedInfo = reloaded.info();
        out.reloaded = Array.from(await reloaded.score(rows));
        out.saved = Array.from(saved);
        return out;
      }, { rows, labels, modelPath: "/" + path.relative(ROOT, MODEL) });

      console.log(`[${mode}] backend ${r.info.backend}; learn reports ${JSON.stringify(r.reports)}`);
      if (process.env.POCKETREC_EXPECT_WEBGPU === "1" && webgpu) assert.equal(r.info.backend, "webgpu");
      const maxDiff = (a, b) => Math.max(...a.map((x, i) => Math.abs(x - b[i])));

      for (const rep of r.reports) {
        assert.ok(Number.isFinite(rep.loss) && rep.steps === 2 && rep.ms >= 0, JSON.stringify(rep));
      }
      assert.ok(r.reports[3].loss < r.reports[0].loss, "the loss of the learned rows goes down");
      assert.equal(r.defaults.steps, 3, "default steps");
      assert.ok(maxDiff(r.after, r.before) > 1e-3, "learning changes the scores");
      assert.ok(maxDiff(r.after, r.cpuAfter) < 1e-4, `${mode} scores the learned weights as the CPU: ${maxDiff(r.after, r.cpuAfter)}`);

      for (const [name, res] of Object.entries(r.bad)) {
        assert.ok(res.error === true && res.message.length > 10, `${name}: expected a JS Error, got ${JSON.stringify(res)}`);
        console.log(`[${mode}] ${name}: ${res.message}`);
      }
      assert.match(r.bad.label.message, /label of row 1 is 0.5, not 0 or 1/);
      assert.match(r.bad.labelCount.message, /expected 3 labels/);
      assert.match(r.bad.nanDense.message, /"hour".*finite/);
      assert.match(r.bad.empty.message, /empty/);
      assert.match(r.bad.lr.message, /lr is 0/);
      assert.match(r.bad.lrInf.message, /lr is inf/);
      assert.match(r.bad.anchor.message, /anchor is -1/);
      assert.match(r.bad.steps.message, /steps is 0/);
      assert.match(r.bad.optimizer.message, /unknown optimizer "rmsprop"/);
      assert.match(r.bad.scope.message, /unknown scope "bottom"/);
      assert.match(r.bad.unknownOption.message, /unknown option "rate"/);
      assert.match(r.bad.diverging.message, /the weights are as before the call/);
      assert.deepEqual(r.afterBad, r.after, "rejected calls change no score");

      // The saved model: loads back with the learned scores, names its base, and the native CLI
      // reads it and scores it as the browser does.
      assert.ok(maxDiff(r.reloaded, r.after) < (r.info.backend === "cpu" ? 1e-7 : 1e-4), "reloaded scores");
      assert.equal(r.savedInfo.provenance.on_device.base_digest, r.info.digest);
      assert.equal(r.savedInfo.provenance.on_device.updates, 8);
      const file = path.join(OUT, `learned-${mode}.safetensors`);
      writeFileSync(file, Buffer.from(r.saved));
      const inspect = execFileSync(BIN, ["inspect", file], { encoding: "utf8" });
      assert.match(inspect, /on_device/);
      const native = nativeScores(file, header, lines, `learned-${mode}`);
      assert.ok(maxDiff(r.reloaded, native) < 2e-5, `native scores of the saved model: ${maxDiff(r.reloaded, native)}`);
    } finally {
      await ctx.close();
    }
  });
}
