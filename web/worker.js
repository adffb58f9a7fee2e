// Scoring worker: owns the wasm engine, so ranking never blocks the page.
// Messages in:  {type: "init", modelUrl, backend}  starts loading the wasm module and the model;
//               {type: "catalog", catalog}         ->  {type: "ready", info, loadMs}
//               {type: "rank", id, context, k, diversity}  ->  {type: "ranked", id, ranked, ms}
//               (diversity: the strength of the re-ranking for variety over category and attributes)
// Errors go back as {type: "error", id, message}. Resource loads after "ready" are counted and
// reported ({type: "requests", count}) so the page can prove nothing leaves the device.
import init, { Engine, tokenValue } from "./pkg/pocketrec.js";

let engine = null;
let columns = null;
let requestsAfterReady = 0;

/** Candidate columns for the whole catalog, hashed once: item, category, attributes (a bag). */
function catalogColumns(items) {
  const n = items.length;
  const item = new Uint32Array(n);
  const category = new Uint32Array(n);
  const offsets = new Uint32Array(n + 1);
  const values = [];
  items.forEach((it, i) => {
    item[i] = tokenValue(it.id);
    category[i] = tokenValue(it.category);
    for (const a of it.attributes) values.push(tokenValue(a));
    offsets[i + 1] = values.length;
  });
  return { rows: n, fields: { item, category, attributes: { offsets, values: Uint32Array.from(values) } } };
}

/** Loads the wasm module and the model; runs while the page is still fetching the catalog. */
async function load({ modelUrl, backend }) {
  const t0 = performance.now();
  await init();
  const response = await fetch(modelUrl);
  if (!response.ok) throw new Error(`cannot fetch the model ${modelUrl}: HTTP ${response.status}; run "make demo-model"`);
  const bytes = new Uint8Array(await response.arrayBuffer());
  engine = await Engine.load(bytes, backend || "auto");
  return performance.now() - t0;
}

let loading = null;

async function start(catalog) {
  const loadMs = await loading;
  columns = catalogColumns(catalog.items);
  new PerformanceObserver((list) => {
    requestsAfterReady += list.getEntries().length;
    postMessage({ type: "requests", count: requestsAfterReady });
  }).observe({ type: "resource" });
  postMessage({ type: "ready", info: engine.info(), loadMs });
}

async function handle(data) {
  try {
    if (data.type === "catalog") {
      await start(data.catalog);
    } else if (data.type === "rank") {
      const t0 = performance.now();
      const options = { diversity: { strength: data.diversity ?? 0, features: ["category", "attributes"] } };
      const ranked = await engine.rank(data.context, columns, data.k, options);
      postMessage({ type: "ranked", id: data.id, ranked, ms: performance.now() - t0 });
    }
  } catch (e) {
    postMessage({ type: "error", id: data.id, message: String(e && e.message ? e.message : e) });
  }
}

// One call at a time: the engine is not re-entrant, and ranks arrive faster than clicks end.
let queue = Promise.resolve();
onmessage = ({ data }) => {
  if (data.type === "init") {
    loading = load(data);
    loading.catch((e) => postMessage({ type: "error", message: String(e && e.message ? e.message : e) }));
  } else {
    queue = queue.then(() => handle(data));
  }
};
