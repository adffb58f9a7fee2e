// Demo page tests (issue 5) in headless Chromium, once with WebGPU (SwiftShader) and once with the
// CPU fallback: the page loads and ranks; liking items of a category moves that category up, as the
// planted tastes say; no request leaves the page after load; the page works with the server
// stopped once visited; the scores shown equal the native library's for the model the page learned
// (saved in IndexedDB); keyboard use (focus after a like, what the live region says); a screenshot.
// Then (issue 10) on-device learning and diversity, with the CPU fallback.
// Prints cold start (reload with a warm cache -> first ranking) and re-rank-after-click times.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { serve, browser, missing, nativeScores, tsvRow, MODEL, CATALOG, OUT } from "./harness.mjs";

const why = missing();
if (why) console.error(`SKIPPED page tests: ${why}`);
const metrics = {};
after(() => {
  if (Object.keys(metrics).length) writeFileSync(path.join(OUT, "page-metrics.json"), JSON.stringify(metrics, null, 2));
});

const median = (xs) => xs.slice().sort((a, b) => a - b)[xs.length >> 1];

/** The page's personal model record in IndexedDB ({bytes, baseDigest, signals}), with its bytes
 * written to tests/out/NAME.safetensors as `file`; null when there is none. */
async function savedModel(page, name) {
  const saved = await page.evaluate(async () => {
    // Opening a database that does not exist would create it without its store: look first.
    if (!(await indexedDB.databases()).some((d) => d.name === "pocketrec")) return null;
    const db = await new Promise((resolve, reject) => {
      const req = indexedDB.open("pocketrec");
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    });
    const record = await new Promise((resolve, reject) => {
      const req = db.transaction("personal").objectStore("personal").get("model");
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    });
    db.close();
    if (!record) return null;
    let binary = "";
    for (const byte of record.bytes) binary += String.fromCharCode(byte);
    return { base64: btoa(binary), baseDigest: record.baseDigest, signals: record.signals };
  });
  if (!saved) return null;
  const file = path.join(OUT, `${name}.safetensors`);
  writeFileSync(file, Buffer.from(saved.base64, "base64"));
  return { file, baseDigest: saved.baseDigest, signals: saved.signals };
}

/** Waits for the next ranking after `action` runs in the page; returns the page's timings. */
async function rankAfter(page, action) {
  const before = await page.evaluate(() => window.pocketrec.rankCount);
  const t0 = await page.evaluate(() => performance.now());
  await action();
  await page.waitForFunction((n) => window.pocketrec.rankCount > n, before);
  return page.evaluate((t0) => ({ ...window.pocketrec.last, sinceAction: performance.now() - t0 }), t0);
}

for (const webgpu of [false, true]) {
  const mode = webgpu ? "webgpu" : "cpu-fallback";
  test(`demo page in Chromium (${mode})`, { skip: why || false }, async () => {
    const catalog = JSON.parse(readFileSync(CATALOG, "utf8"));
    const header = catalog.schema.join("\t");
    let server = await serve();
    const ctx = await browser({ webgpu });
    try {
      const page = await ctx.newPage();
      const requests = [];
      const record = (req) => requests.push({ t: Date.now(), url: req.url(), phase: requests.phase });
      ctx.on("request", record);
      page.on("console", (m) => { if (m.type() === "error") console.log(`[${mode}] console: ${m.text()}`); });
      page.on("pageerror", (e) => console.log(`[${mode}] page error: ${e.message}`));

      // First visit: loads, ranks, installs the offline cache.
      requests.phase = "load";
      await page.goto(server.url);
      await page.waitForFunction(() => window.pocketrec.rankCount > 0 || window.pocketrec.error, null, { timeout: 60000 });
      assert.equal(await page.evaluate(() => window.pocketrec.error), null);
      await page.evaluate(() => navigator.serviceWorker.ready);
      await page.waitForFunction(() => !!navigator.serviceWorker.controller);
      const info = await page.evaluate(() => window.pocketrec.info);
      console.log(`[${mode}] backend ${info.backend}: ${info.backend_reason}`);
      if (!webgpu) assert.equal(info.backend, "cpu");
      if (webgpu && process.env.POCKETREC_EXPECT_WEBGPU === "1") assert.equal(info.backend, "webgpu");
      assert.match(await page.textContent("#backend"), webgpu && info.backend === "webgpu" ? /WebGPU/ : /CPU/);
      assert.match(await page.textContent("#model-size"), /MB|kB/);
      assert.equal((await page.$$("#recs .card")).length, 24);

      // From here on nothing may go over the network.
      requests.phase = "after-load";
      const forget = await rankAfter(page, () => page.click("#forget"));
      assert.equal(forget.context.history_length, 0);
      // The live region (#status) says what the user did, not each ranking's timing: the re-rank
      // after "Forget me" leaves its confirmation in place.
      assert.match(await page.textContent("#status"), /^Forgotten/);
      await rankAfter(page, () => page.selectOption("#time", "evening"));
      assert.equal(await page.textContent("#status"), "Recommendations updated.");
      const base = await rankAfter(page, () => page.selectOption("#device", "mobile"));
      assert.equal(base.context.time_of_day, "evening");
      assert.equal(base.context.device, "mobile");

      // Like three items of the category least present in the list; it should take over the list.
      const cats = base.ids.map((id) => catalog.items.find((i) => i.id === id).category);
      const counts = new Map(catalog.categories.map((c) => [c.id, 0]));
      cats.forEach((c) => counts.set(c, counts.get(c) + 1));
      const target = [...counts.entries()].sort((a, b) => a[1] - b[1])[0][0];
      await page.click(`#cats button:text-is("${catalog.categories.find((c) => c.id === target).name}")`);
      const reranks = [];
      let last = base;
      for (let i = 0; i < 3; i++) {
        last = await rankAfter(page, () => page.click(`#catalog .card[data-category="${target}"]:not(:has([aria-pressed="true"])) .like`));
        reranks.push(last.roundTripMs);
      }
      const countOf = (r) => r.ids.filter((id) => catalog.items.find((i) => i.id === id).category === target).length;
      console.log(`[${mode}] "${target}" in the top 24: ${countOf(base)} before three likes, ${countOf(last)} after`);
      assert.ok(countOf(last) >= countOf(base) + 6, `liking ${target} should move ${target} up`);
      assert.deepEqual(last.context.recent_categories, [target, target, target]);

      // The page learned from the three likes (on by default) and saved the model in IndexedDB;
      // the scores shown equal the native library's with that model, same history and context.
      const learning = await page.evaluate(() => window.pocketrec.learning);
      assert.equal(learning.enabled, true);
      assert.equal(learning.signals, 15, "three likes, each one positive and four negatives");
      assert.equal(await page.textContent("#learning"), "Model updated on this device with 15 of your signals.");
      const saved = await savedModel(page, `page-${mode}-personal`);
      assert.equal(saved.signals, 15);
      assert.equal(saved.baseDigest, info.digest);
      const shown = await page.$$eval("#recs .card", (cards) => cards.map((c) => ({ id: c.dataset.id, score: Number(c.querySelector(".score").dataset.score) })));
      assert.deepEqual(shown.map((s) => s.id), last.ids);
      const rows = shown.map((s) => tsvRow(catalog.schema, last.context, catalog.items.find((i) => i.id === s.id)));
      const native = nativeScores(saved.file, header, rows, `page-${mode}`);
      shown.forEach((s, i) => assert.ok(Math.abs(s.score - native[i]) < 2e-5, `${s.id}: page ${s.score}, native ${native[i]}`));
      const shownPct = await page.textContent("#recs .card .pct");
      assert.equal(shownPct, `${(native[0] * 100).toFixed(1)}%`);

      // Keyboard: tab to a like button in the list and press Enter.
      const likesBefore = last.context.history_length;
      await page.focus("#forget");
      let onLike = false;
      for (let i = 0; i < 10 && !onLike; i++) {
        await page.keyboard.press("Tab");
        onLike = await page.evaluate(() => document.activeElement.matches("#recs .like"));
      }
      assert.ok(onLike, "a like button in the list is reachable with Tab");
      // The liked item leaves "For you": focus moves to the item now in its place, not to the body,
      // and the live region says what happened, once.
      const focused = await page.evaluate(() => {
        const li = document.activeElement.closest("li");
        return { id: li.dataset.id, index: [...li.parentElement.children].indexOf(li), name: li.querySelector("h3").textContent };
      });
      const kb = await rankAfter(page, () => page.keyboard.press("Enter"));
      assert.equal(kb.context.history_length, likesBefore + 1);
      const after = await page.evaluate(() => {
        const a = document.activeElement;
        return { like: a.matches("#recs .like"), id: a.closest("li")?.dataset.id, label: a.getAttribute("aria-label") };
      });
      assert.ok(after.like, `focus stays on a like button in the list after a like, not on ${await page.evaluate(() => document.activeElement.tagName)}`);
      assert.notEqual(after.id, focused.id, "the liked item left the list");
      assert.equal(after.id, kb.ids[focused.index], "focus is on the item now in the liked one's place");
      assert.equal(await page.textContent("#status"), `Liked ${focused.name}. Recommendations updated.`);
      // Enter again likes the next item: the keyboard path keeps working without re-tabbing.
      const kb2 = await rankAfter(page, () => page.keyboard.press("Enter"));
      assert.equal(kb2.context.history_length, likesBefore + 2);
      assert.deepEqual(kb2.context.recent_items.slice(0, 2), [after.id, focused.id]);

      // No request after load, and the page's own counter agrees.
      const late = requests.filter((r) => r.phase === "after-load");
      assert.deepEqual(late.map((r) => r.url), [], "no network request after the model loaded");
      assert.equal(await page.textContent("#requests"), "0");

      await page.screenshot({ path: path.join(OUT, `page-${mode}.png`) });
      await page.setViewportSize({ width: 390, height: 844 });
      await page.screenshot({ path: path.join(OUT, `page-${mode}-phone.png`) });
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 0, `no horizontal scrolling on a phone (${overflow}px too wide)`);
      await page.setViewportSize({ width: 1280, height: 900 });

      // Cold start with a warm cache: reload -> first ranking, three times.
      const colds = [];
      for (let i = 0; i < 3; i++) {
        requests.phase = "reload";
        await page.reload();
        await page.waitForFunction(() => window.pocketrec.rankCount > 0);
        colds.push(await page.evaluate(() => window.pocketrec.coldStartMs));
      }
      // The likes survived the reloads (localStorage), and re-rank after a click, once more.
      assert.equal(await page.evaluate(() => window.pocketrec.last.context.history_length), likesBefore + 2);
      requests.phase = "after-reload";
      for (let i = 0; i < 3; i++) {
        const r = await rankAfter(page, () => page.click("#recs .card .like"));
        reranks.push(r.roundTripMs);
      }
      const workerMs = (await page.evaluate(() => window.pocketrec.last.ms));

      // Offline: stop the server, reload, still ranks.
      await server.stop();
      server = null;
      requests.phase = "offline";
      await page.reload();
      await page.waitForFunction(() => window.pocketrec.rankCount > 0 || window.pocketrec.error, null, { timeout: 30000 });
      assert.equal(await page.evaluate(() => window.pocketrec.error), null);
      assert.equal((await page.$$("#recs .card")).length, 24);

      const m = {
        backend: info.backend,
        cold_start_ms: colds,
        cold_start_median_ms: median(colds),
        rerank_after_click_ms: reranks,
        rerank_after_click_median_ms: median(reranks),
        last_rank_in_worker_ms: workerMs,
        items: catalog.items.length,
      };
      metrics[mode] = m;
      console.log(`METRIC [${mode}] cold start (warm cache, load -> first ranking): median ${m.cold_start_median_ms.toFixed(0)} ms of ${colds.map((x) => x.toFixed(0)).join(", ")}`);
      console.log(`METRIC [${mode}] re-rank ${m.items} items after a click (click handler -> new list in the DOM): median ${m.rerank_after_click_median_ms.toFixed(1)} ms of ${reranks.map((x) => x.toFixed(1)).join(", ")}; last rank in the worker ${workerMs.toFixed(1)} ms`);
    } finally {
      await ctx.close();
      if (server) await server.stop();
    }
  });
}

// Diversity (issue 10): a new user's top 24 at the default strength spans several categories, at
// every time of day; `?diversity=0` shows exactly the plain ranking (the native top 24 by score).
test("demo page: diversity re-ranking (cpu-fallback)", { skip: why || false }, async () => {
  const catalog = JSON.parse(readFileSync(CATALOG, "utf8"));
  const categoryOf = new Map(catalog.items.map((i) => [i.id, i.category]));
  const server = await serve();
  const ctx = await browser({ webgpu: false });
  try {
    const open = async (query) => {
      const page = await ctx.newPage();
      await page.goto(server.url + query);
      await page.waitForFunction(() => window.pocketrec.rankCount > 0 || window.pocketrec.error, null, { timeout: 60000 });
      assert.equal(await page.evaluate(() => window.pocketrec.error), null);
      return page;
    };
    const page = await open("");
    assert.equal(await page.evaluate(() => window.pocketrec.diversity), 0.45, "the default strength");
    assert.equal(await page.evaluate(() => window.pocketrec.last.context.history_length), 0, "a new user");
    for (const time of catalog.times.map((t) => t.id)) {
      const r = await rankAfter(page, () => page.selectOption("#time", time));
      const cats = new Set(r.ids.map((id) => categoryOf.get(id)));
      console.log(`[diversity 0.45] new user, ${time}: ${cats.size} categories in the top 24`);
      assert.equal(r.ids.length, 24);
      assert.ok(cats.size >= 3, `a new user's top 24 at ${time} spans several categories: ${[...cats]}`);
    }
    // The time select is saved in localStorage, so the plain page opens at night too.
    const plain = await open("?diversity=0");
    const last = await plain.evaluate(() => window.pocketrec.last);
    assert.equal(last.context.time_of_day, "night");
    const header = catalog.schema.join("\t");
    const native = nativeScores(MODEL, header, catalog.items.map((i) => tsvRow(catalog.schema, last.context, i)), "page-diversity0");
    const top = native.map((s, i) => [s, i]).sort((a, b) => b[0] - a[0] || a[1] - b[1]).slice(0, 24);
    assert.deepEqual(last.ids, top.map(([, i]) => catalog.items[i].id), "strength 0 shows the plain top 24 by score");
    console.log(`[diversity 0] new user, night: ${new Set(last.ids.map((id) => categoryOf.get(id))).size} categories in the top 24`);
  } finally {
    await ctx.close();
    await server.stop();
  }
});

// On-device learning (issue 10): the same three likes of books raise the books' share of the top
// 24 more with learning on than off; at the default diversity they leave books the most common
// category but not the whole list; the learned model survives a reload (the saved model scores
// as the page did) and works offline; a model learned from another base model is discarded;
// "Forget me" gives exactly the scores of a page that never learned; no request after load.
test("demo page: learning on the device (cpu-fallback)", { skip: why || false }, async (t) => {
  const catalog = JSON.parse(readFileSync(CATALOG, "utf8"));
  const header = catalog.schema.join("\t");
  const categoryOf = new Map(catalog.items.map((i) => [i.id, i.category]));
  const books = catalog.items.filter((i) => i.category === "books").slice(0, 3);
  const server = await serve();
  const ctx = await browser({ webgpu: false });
  const fresh = await browser({ webgpu: false });
  const requests = [];
  ctx.on("request", (req) => requests.push({ url: req.url(), phase: requests.phase }));
  const ready = (page) => page.waitForFunction(() => window.pocketrec.rankCount > 0 || window.pocketrec.error, null, { timeout: 60000 });
  const learning = (page) => page.evaluate(() => window.pocketrec.learning);
  // The time select starts at the clock's time of day; a select to the same value changes nothing.
  const atNight = async (page) => (await page.inputValue("#time")) === "night"
    ? page.evaluate(() => window.pocketrec.last)
    : rankAfter(page, () => page.selectOption("#time", "night"));
  const count = (r) => {
    const n = new Map();
    for (const id of r.ids) n.set(categoryOf.get(id), (n.get(categoryOf.get(id)) || 0) + 1);
    return n;
  };
  try {
    const page = await ctx.newPage();
    page.on("pageerror", (e) => console.log(`[learning] page error: ${e.message}`));
    requests.phase = "load";
    await page.goto(server.url);
    await ready(page);
    assert.equal(await page.evaluate(() => window.pocketrec.error), null);
    await page.evaluate(() => navigator.serviceWorker.ready);
    await page.waitForFunction(() => !!navigator.serviceWorker.controller);
    requests.phase = "after-load";
    await atNight(page);
    await page.click('#cats button:text-is("Books")');
    const likeBooks = async () => {
      const after = [];
      for (const b of books) after.push(await rankAfter(page, () => page.click(`#catalog .card[data-id="${b.id}"] .like`)));
      console.log(`[learning] books in the top 24 after each like: ${after.map((r) => count(r).get("books")).join(", ")}`);
      return after.at(-1);
    };

    // Learning off: the base model, the context bags only.
    assert.equal((await learning(page)).enabled, true, "on by default");
    await page.click("#learn");
    assert.equal(await page.isChecked("#learn"), false);
    const off = await likeBooks();
    assert.equal((await learning(page)).signals, 0);
    assert.equal(await page.textContent("#learning"), "Using the base model. Learning is off.");
    const offCount = count(off);
    console.log(`[learning] three liked books, learning off: ${JSON.stringify(Object.fromEntries(offCount))}`);
    const [top] = [...offCount.entries()].sort((a, b) => b[1] - a[1]);
    assert.equal(top[0], "books", "books are the most common category");
    assert.ok(offCount.get("books") < 24 && offCount.size >= 4, "at the default diversity books are not the whole list: 3 other categories at least");

    // Learning on, the same likes from a clean slate.
    await rankAfter(page, () => page.click("#forget"));
    await page.click("#learn");
    assert.equal(await page.evaluate(() => localStorage.getItem("pocketrec.learn")), "on");
    const on = await likeBooks();
    const l = await learning(page);
    assert.equal(l.signals, 15, "three likes, each one positive and four negatives");
    assert.ok(Number.isFinite(l.lastLoss) && l.lastMs >= 0, JSON.stringify(l));
    assert.equal(await page.textContent("#learning"), "Model updated on this device with 15 of your signals.");
    const onCount = count(on);
    console.log(`[learning] three liked books, learning on: ${JSON.stringify(Object.fromEntries(onCount))}; last learn ${l.lastMs.toFixed(1)} ms, loss ${l.lastLoss.toFixed(4)}`);
    // Not true yet (issue 10 stays open on it): once a book is liked "For you" is mostly books, so
    // most of the uniformly drawn negatives are books and learning lowers their share (16 -> 14
    // in the runs of 2026-12-02). Negatives from other categories raised it in one run
    // (16 -> 19) but cost hit rate in `pocketrec bench personalize --negatives-from` and move with
    // the random draws; see the README, Personalization.
    await t.test("learning raises the books' share more than the same likes without it", { todo: "negatives that raise the liked category without costing hit rate" }, () => {
      assert.ok(onCount.get("books") > offCount.get("books"), `books: ${onCount.get("books")} learning on, ${offCount.get("books")} off`);
    });

    // The saved model scores as the page did before the reload, and after it (the session
    // length starts again at 0, so the context differs) the page scores with the same model.
    const info = await page.evaluate(() => window.pocketrec.info);
    const saved = await savedModel(page, "page-learning-personal");
    assert.deepEqual([saved.signals, saved.baseDigest], [15, info.digest]);
    const native = (r, name) => nativeScores(saved.file, header, r.ids.map((id) => tsvRow(catalog.schema, r.context, catalog.items.find((i) => i.id === id))), name);
    const close = (r, name) => native(r, name).forEach((s, i) => assert.ok(Math.abs(r.scores[i] - s) < 2e-5, `${r.ids[i]}: page ${r.scores[i]}, native ${s}`));
    close(on, "page-learning-before");
    requests.phase = "reload";
    await page.reload();
    await ready(page);
    assert.deepEqual(await learning(page), { enabled: true, signals: 15, lastLoss: null, lastMs: null, restored: true });
    const reloaded = await page.evaluate(() => window.pocketrec.last);
    close(reloaded, "page-learning-after");
    // Offline: the page from the service worker's cache, the model from IndexedDB, the same scores.
    await ctx.setOffline(true);
    await page.reload();
    await ready(page);
    assert.equal(await page.evaluate(() => window.pocketrec.error), null);
    assert.equal((await learning(page)).restored, true);
    const offline = await page.evaluate(() => window.pocketrec.last);
    assert.deepEqual([offline.ids, offline.logits], [reloaded.ids, reloaded.logits], "offline, the same learned scores");
    await ctx.setOffline(false);

    // "Forget me": the base model's scores exactly, those of a page that never learned.
    requests.phase = "after-load";
    const forgot = await rankAfter(page, () => page.click("#forget"));
    assert.deepEqual(await learning(page), { enabled: true, signals: 0, lastLoss: null, lastMs: null, restored: false });
    assert.equal(await page.textContent("#learning"), "Using the base model.");
    assert.equal(await savedModel(page, "page-learning-forgotten"), null, "the personal model is deleted");
    const other = await fresh.newPage();
    await other.goto(server.url);
    await ready(other);
    const base = await atNight(other);
    assert.deepEqual(base.context, forgot.context);
    assert.deepEqual([forgot.ids, forgot.logits], [base.ids, base.logits], "after Forget me, the base model's scores exactly");

    // A model learned from another base model (the demo was retrained) is discarded on load.
    await rankAfter(page, () => page.click(`#recs .card .like`));
    await page.evaluate(async () => {
      const db = await new Promise((resolve) => { const r = indexedDB.open("pocketrec"); r.onsuccess = () => resolve(r.result); });
      const store = db.transaction("personal", "readwrite").objectStore("personal");
      const record = await new Promise((resolve) => { const r = store.get("model"); r.onsuccess = () => resolve(r.result); });
      store.put({ ...record, baseDigest: "xxh3-64:0000000000000000" }, "model");
      await new Promise((resolve) => { store.transaction.oncomplete = resolve; });
      db.close();
    });
    requests.phase = "reload";
    await page.reload();
    await ready(page);
    assert.deepEqual(await learning(page), { enabled: true, signals: 0, lastLoss: null, lastMs: null, restored: false });
    assert.equal(await savedModel(page, "page-learning-stale"), null, "the stale model is deleted");

    const late = requests.filter((r) => r.phase === "after-load");
    assert.deepEqual(late.map((r) => r.url), [], "no network request after load");
  } finally {
    await ctx.close();
    await fresh.close();
    await server.stop();
  }
});
