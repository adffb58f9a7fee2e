// Scoring worker: owns the wasm engine, so ranking and learning never block the page.
// Messages in:  {type: "init", modelUrl, backend}  starts loading the wasm module and the model (or,
//                                                  in its place, the personal model saved here);
//               {type: "catalog", catalog}         ->  {type: "learning", ...}, {type: "ready", info, loadMs}
//               {type: "rank", id, context, k, diversity}  ->  {type: "ranked", id, ranked, ms}
//               (diversity: the strength of the re-ranking for variety over category and attributes)
//               {type: "learn", context, item, shown, liked}  ->  {type: "learning", ...}
//               (a like of `item` in `context`, the context just before the like; `shown`: the ids
//               in "For you" at that moment; `liked`: the ids liked before)
//               {type: "forget"}                   ->  {type: "learning", ...}: back on the base model
// {type: "learning", signals, restored, loss, ms}: rows learned from so far (0: the base model),
// whether the personal model came from IndexedDB, and the last learn call's loss and time.
// Errors go back as {type: "error", id, message}. Resource loads after "ready" are counted and
// reported ({type: "requests", count}) so the page can prove nothing leaves the device.
import init, { Engine, tokenValue } from "./pkg/pocketrec.js";

/** Negatives per like: items of "For you" the user passed over, drawn uniformly without repeats. */
const NEGATIVES_PER_LIKE = 4;
// The personal model in IndexedDB (localStorage cannot hold megabytes): one record,
// {bytes: engine.save(), baseDigest: the digest of the model it was learned from, signals}.
const DB = "pocketrec";
const STORE = "personal";
const KEY = "model";

let engine = null;
let base = null; // {bytes, digest, backend}: the loaded base model, for "Forget me"
let columns = null;
let indexOf = null; // item id -> catalog index
let config = null;
let learning = { signals: 0, restored: false, loss: null, ms: null };
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

/** Full rows as columns, for engine.learn: the context on every row, beside the candidate
 * columns of catalog items `indices` (taken from the hashed catalog, so rows match ranking). */
function rowColumns(context, indices) {
  const n = indices.length;
  const dense = new Float32Array(n * config.dense.length);
  for (let r = 0; r < n; r++) config.dense.forEach((name, j) => { dense[r * config.dense.length + j] = context[name]; });
  const fields = {};
  for (const { name, kind } of config.fields) {
    const column = columns.fields[name];
    if (column instanceof Uint32Array) {
      fields[name] = Uint32Array.from(indices, (i) => column[i]);
    } else if (column) {
      const offsets = new Uint32Array(n + 1);
      const values = [];
      indices.forEach((i, r) => {
        values.push(...column.values.subarray(column.offsets[i], column.offsets[i + 1]));
        offsets[r + 1] = values.length;
      });
      fields[name] = { offsets, values: Uint32Array.from(values) };
    } else if (kind === "categorical") {
      fields[name] = new Uint32Array(n).fill(tokenValue(context[name]));
    } else {
      const bag = context[name].map((v) => tokenValue(v));
      fields[name] = {
        offsets: Uint32Array.from({ length: n + 1 }, (_, r) => r * bag.length),
        values: Uint32Array.from({ length: n * bag.length }, (_, j) => bag[j % bag.length]),
      };
    }
  }
  return { rows: n, dense, fields };
}

/** Up to `count` distinct elements of `list`, uniformly at random. */
function sample(list, count) {
  const pool = list.slice();
  for (let i = 0; i < Math.min(count, pool.length); i++) {
    const j = i + Math.floor(Math.random() * (pool.length - i));
    [pool[i], pool[j]] = [pool[j], pool[i]];
  }
  return pool.slice(0, count);
}

// IndexedDB, promised.
let db = null;
function open() {
  db ??= new Promise((resolve, reject) => {
    const req = indexedDB.open(DB, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(STORE);
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
  return db;
}
async function personal(mode, act) {
  const tx = (await open()).transaction(STORE, mode);
  const req = act(tx.objectStore(STORE));
  await new Promise((resolve, reject) => {
    tx.oncomplete = resolve;
    tx.onerror = tx.onabort = () => reject(tx.error);
  });
  return req.result;
}
const readPersonal = () => personal("readonly", (s) => s.get(KEY));
const writePersonal = (record) => personal("readwrite", (s) => s.put(record, KEY));
const deletePersonal = () =>
  personal("readwrite", (s) => s.delete(KEY)).catch((e) => console.warn("the personal model could not be deleted", e));

/** The digest a model file records in its header (safetensors: a u64 length, then JSON), or
 * null. It only names the file here; Engine.load checks it against the bytes. */
function recordedDigest(bytes) {
  try {
    const n = Number(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true));
    return JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n))).__metadata__.digest ?? null;
  } catch {
    return null;
  }
}

/** Loads the wasm module and the model, or in its place the personal model when one was learned
 * from it (one engine built, not two: with WebGPU each costs seconds); runs while the page is
 * still fetching the catalog. */
async function load({ modelUrl, backend }) {
  const t0 = performance.now();
  await init();
  const response = await fetch(modelUrl);
  if (!response.ok) throw new Error(`cannot fetch the model ${modelUrl}: HTTP ${response.status}; run "make demo-model"`);
  const bytes = new Uint8Array(await response.arrayBuffer());
  base = { bytes, digest: recordedDigest(bytes), backend: backend || "auto" };
  engine = (await restore()) || (await Engine.load(bytes, base.backend));
  config = engine.info().config;
  return performance.now() - t0;
}

/** The personal model from IndexedDB when it was learned from the base model, else null; a
 * record of another base model (the model was retrained) is deleted. */
async function restore() {
  let saved = null;
  try {
    saved = await readPersonal();
  } catch (e) {
    console.warn("no personal model: IndexedDB is not available", e);
    return null;
  }
  if (!saved) return null;
  if (!base.digest || saved.baseDigest !== base.digest) {
    console.info(`discarded the personal model: it was learned from the model ${saved.baseDigest}, not from the loaded ${base.digest}`);
    await deletePersonal();
    return null;
  }
  try {
    const mine = await Engine.load(saved.bytes, base.backend);
    learning = { signals: saved.signals, restored: true, loss: null, ms: null };
    return mine;
  } catch (e) {
    console.warn("discarded the personal model: it does not load", e);
    await deletePersonal();
    return null;
  }
}

/** One like: the liked item as a positive, NEGATIVES_PER_LIKE items shown beside it as negatives,
 * one engine.learn call with the engine's default options; the result is saved before the next
 * message (the re-ranking) runs. */
async function learn({ context, item, shown, liked }) {
  if (!indexOf.has(item)) return;
  const skip = new Set([item, ...liked]);
  const negatives = sample(shown.filter((id) => !skip.has(id) && indexOf.has(id)), NEGATIVES_PER_LIKE);
  const ids = [item, ...negatives];
  const labels = ids.map((_, i) => (i === 0 ? 1 : 0));
  const { loss, ms } = await engine.learn(rowColumns(context, ids.map((id) => indexOf.get(id))), labels);
  const signals = learning.signals + ids.length;
  learning = { ...learning, signals, loss, ms };
  const bytes = await engine.save();
  await writePersonal({ bytes, baseDigest: base.digest, signals }).catch((e) => console.warn("the personal model was not saved", e));
}

/** "Forget me": deletes the personal model and loads the base model's bytes again. */
async function forget() {
  await deletePersonal();
  const fresh = await Engine.load(base.bytes, base.backend);
  engine.free();
  engine = fresh;
  learning = { signals: 0, restored: false, loss: null, ms: null };
}

let loading = null;

async function start(catalog) {
  const loadMs = await loading;
  columns = catalogColumns(catalog.items);
  indexOf = new Map(catalog.items.map((it, i) => [it.id, i]));
  new PerformanceObserver((list) => {
    requestsAfterReady += list.getEntries().length;
    postMessage({ type: "requests", count: requestsAfterReady });
  }).observe({ type: "resource" });
  postMessage({ type: "learning", ...learning });
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
    } else if (data.type === "learn" || data.type === "forget") {
      await (data.type === "learn" ? learn(data) : forget());
      postMessage({ type: "learning", ...learning });
    }
  } catch (e) {
    postMessage({ type: "error", id: data.id, message: String(e && e.message ? e.message : e) });
  }
}

// One call at a time: the engine is not re-entrant, ranks arrive faster than clicks end, and a
// like's learning must finish before the ranking that follows it.
let queue = Promise.resolve();
onmessage = ({ data }) => {
  if (data.type === "init") {
    loading = load(data);
    loading.catch((e) => postMessage({ type: "error", message: String(e && e.message ? e.message : e) }));
  } else {
    queue = queue.then(() => handle(data));
  }
};
