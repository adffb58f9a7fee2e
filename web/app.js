// The demo page: catalog, "For you" ranking, likes and context. All scoring and learning happen in
// a Web Worker (worker.js) on this device; the history lives only in localStorage, the model
// learned from it only in IndexedDB (the worker keeps it).
//
// URL parameters: ?model=URL&catalog=URL (default: the demo model in out/demo/), ?backend=auto|webgpu|cpu,
// ?diversity=S: the strength in [0, 1] of the re-ranking for variety over category and attributes
// (maximal marginal relevance; 0 = by score alone).
// Tests read window.pocketrec: {ready, info, coldStartMs, rankCount, diversity, last: {context, ids, scores, logits, ms},
// learning: {enabled, signals, lastLoss, lastMs, restored}}.

const params = new URLSearchParams(location.search);
const MODEL = params.get("model") || "out/demo/model.safetensors";
const CATALOG = params.get("catalog") || "out/demo/catalog.json";
const BACKEND = params.get("backend") || "auto";
// 0.45: a new user sees 9 to 10 categories with the time of day's one first, and three liked books
// stay the most common category (16 to 18 of 24) without filling the list; 0.4 leaves them 21 to 22 (MMR
// relevance is mostly by rank, see crate/src/diversity.rs).
const DIVERSITY = params.has("diversity") ? Number(params.get("diversity")) : 0.45;
const SHOWN = 24;
const PAGE = 48;
const STORE = "pocketrec.v1";
// The "Learn on this device" switch: a preference, so "Forget me" keeps it.
const LEARN = "pocketrec.learn";

const $ = (id) => document.getElementById(id);
const status = (msg) => { $("status").textContent = msg; };

const api = (window.pocketrec = { ready: false, rankCount: 0, coldStartMs: null, requests: 0, last: null, error: null, diversity: DIVERSITY });
api.learning = { enabled: localStorage.getItem(LEARN) !== "off", signals: 0, lastLoss: null, lastMs: null, restored: false };

let catalog = null;
let byId = new Map();
let worker = null;
let state = loadState();
let sessionLikes = 0;
let rankId = 0;
let rankSentAt = 0;
let announcement = null; // {id, text}: what the live region says when ranking `id` is shown
let catalogFilter = { text: "", category: null, shown: PAGE };
let requestsMain = 0;
let requestsWorker = 0;

function loadState() {
  try {
    const s = JSON.parse(localStorage.getItem(STORE) || "{}");
    return { likes: Array.isArray(s.likes) ? s.likes : [], time: s.time || null, device: s.device || null };
  } catch {
    return { likes: [], time: null, device: null };
  }
}

function saveState() {
  localStorage.setItem(STORE, JSON.stringify(state));
}

const COLORS = {
  red: "#e5484d", blue: "#3e63dd", green: "#30a46c", yellow: "#e2b203",
  black: "#2b2f36", white: "#c9ccd1", purple: "#8e4ec6", orange: "#f76b15",
};

function hue(text) {
  let h = 0;
  for (const c of text) h = (h * 31 + c.charCodeAt(0)) % 360;
  return `hsl(${h} 55% 50%)`;
}

function itemColor(item) {
  const color = item.attributes.find((a) => a.startsWith("color:"));
  return color ? COLORS[color.slice(6)] || hue(color) : hue(item.category);
}

function categoryName(id) {
  const c = catalog.categories.find((c) => c.id === id);
  return c ? c.name : id;
}

function attributeText(item) {
  return item.attributes
    .map((a) => a.split(":"))
    .filter(([kind, value]) => kind !== "color" && value !== item.category)
    .map(([, value]) => value.replace(/_/g, " "))
    .join(" · ");
}

/** One item card; `score` is shown when given. */
function card(item, score) {
  const li = document.createElement("li");
  li.className = "card";
  li.dataset.id = item.id;
  li.dataset.category = item.category;
  const tile = document.createElement("div");
  tile.className = "tile";
  tile.style.setProperty("--c", itemColor(item));
  tile.textContent = categoryName(item.category).slice(0, 1);
  tile.setAttribute("aria-hidden", "true");
  const body = document.createElement("div");
  body.className = "body";
  const h = document.createElement("h3");
  h.textContent = item.name;
  h.title = item.name;
  const meta = document.createElement("p");
  meta.className = "meta";
  meta.textContent = `${categoryName(item.category)} · ${attributeText(item)}`;
  body.append(h, meta);
  li.append(tile, body);
  if (score) {
    const s = document.createElement("div");
    s.className = "score";
    s.dataset.score = String(score.score);
    s.dataset.logit = String(score.logit);
    s.title = `click probability ${score.score.toFixed(6)} (logit ${score.logit.toFixed(4)})`;
    s.innerHTML = `<span class="pct">${(score.score * 100).toFixed(1)}%</span><span class="bar"><i style="width:${(score.score * 100).toFixed(1)}%"></i></span>`;
    li.append(s);
  }
  const liked = state.likes.includes(item.id);
  const b = document.createElement("button");
  b.type = "button";
  b.className = "like";
  b.setAttribute("aria-pressed", String(liked));
  b.setAttribute("aria-label", `${liked ? "Unlike" : "Like"} ${item.name}`);
  b.textContent = liked ? "♥" : "♡";
  b.addEventListener("click", () => toggleLike(item.id));
  li.append(b);
  return li;
}

function context() {
  const time = catalog.times.find((t) => t.id === state.time) || catalog.times[0];
  const recent = state.likes.slice(-catalog.history).reverse().map((id) => byId.get(id)).filter(Boolean);
  return {
    hour: time.hour,
    session_length: sessionLikes,
    history_length: state.likes.length,
    recent_items: recent.map((i) => i.id),
    recent_categories: recent.map((i) => i.category),
    time_of_day: time.id,
    device: state.device,
  };
}

/** Asks the worker for a new ranking; `announce` is what the live region says once it is shown
 * (null: nothing, so background re-ranks stay quiet for screen-reader users). */
function rerank(startedAt = performance.now(), announce = null) {
  if (!api.ready) return;
  rankId += 1;
  rankSentAt = startedAt;
  announcement = announce && { id: rankId, text: announce };
  worker.postMessage({ type: "rank", id: rankId, context: context(), k: SHOWN + state.likes.length, diversity: DIVERSITY });
}

/**
 * Replaces the items of `list`. When keyboard focus was in it, focus stays in the list: on the
 * same item's button if it is still listed, else on the item now at its place (a liked item
 * leaves "For you"), else on `fallback`; otherwise it would drop to the page's body.
 */
function replaceKeepingFocus(list, items, fallback) {
  const old = list.contains(document.activeElement) ? document.activeElement.closest("li") : null;
  const index = old ? [...list.children].indexOf(old) : -1;
  list.replaceChildren(...items);
  if (!old) return;
  const same = old.dataset.id && [...list.children].find((li) => li.dataset.id === old.dataset.id);
  const target = same || list.children[Math.min(index, list.children.length - 1)];
  (target?.querySelector("button") || fallback).focus();
}

function showRanking({ id, ranked, ms }) {
  if (id !== rankId) return; // a newer request is on its way
  const liked = new Set(state.likes);
  const top = ranked.map((r) => ({ ...r, item: catalog.items[r.index] })).filter((r) => !liked.has(r.item.id)).slice(0, SHOWN);
  replaceKeepingFocus($("recs"), top.map((r) => card(r.item, r)), $("foryou"));
  const roundTrip = performance.now() - rankSentAt; // input event (or request) -> new list in the DOM
  $("latency").textContent = `${ms.toFixed(1)} ms · ${catalog.items.length.toLocaleString("en")} items`;
  $("latency").title = `ranking in the worker ${ms.toFixed(2)} ms; from the click to the new list ${roundTrip.toFixed(2)} ms`;
  api.rankCount += 1;
  api.last = {
    context: context(),
    ids: top.map((r) => r.item.id),
    scores: top.map((r) => r.score),
    logits: top.map((r) => r.logit),
    ms,
    roundTripMs: roundTrip,
  };
  if (api.coldStartMs === null) {
    api.coldStartMs = performance.now();
    status(`Ready: ${top.length} recommendations from ${catalog.items.length.toLocaleString("en")} items.`);
  } else if (announcement && announcement.id === id) {
    status(announcement.text);
  }
  announcement = null;
  document.dispatchEvent(new CustomEvent("pocketrec:ranked"));
}

/** A like teaches the model (in the worker, before the re-ranking that follows); an unlike does not. */
function toggleLike(id) {
  const clickedAt = performance.now();
  const i = state.likes.indexOf(id);
  if (i >= 0) {
    state.likes.splice(i, 1);
  } else {
    if (api.learning.enabled && api.ready) {
      worker.postMessage({ type: "learn", context: context(), item: id, shown: api.last ? api.last.ids : [], liked: state.likes.slice() });
    }
    state.likes.push(id);
    sessionLikes += 1;
  }
  saveState();
  const liked = state.likes.includes(id);
  const name = byId.get(id).name;
  // First, so the worker ranks while this thread updates the page.
  rerank(clickedAt, `${liked ? "Liked" : "Removed"} ${name}. Recommendations updated.`);
  renderLikes();
  for (const b of document.querySelectorAll(`.card[data-id="${CSS.escape(id)}"] .like`)) {
    b.setAttribute("aria-pressed", String(liked));
    b.setAttribute("aria-label", `${liked ? "Unlike" : "Like"} ${name}`);
    b.textContent = liked ? "♥" : "♡";
  }
}

function renderLikes() {
  const items = state.likes.slice().reverse().map((id) => byId.get(id)).filter(Boolean);
  const ul = $("liked");
  if (!items.length) {
    const li = document.createElement("li");
    li.className = "muted";
    li.textContent = "Nothing yet: like a few items and watch the list above change.";
    replaceKeepingFocus(ul, [li], $("likes"));
  } else {
    replaceKeepingFocus(ul, items.map((it) => {
      const li = document.createElement("li");
      li.dataset.id = it.id;
      const b = document.createElement("button");
      b.type = "button";
      b.className = "chip";
      b.textContent = `${it.name} ✕`;
      b.setAttribute("aria-label", `Remove ${it.name} from your likes`);
      b.addEventListener("click", () => toggleLike(it.id));
      li.append(b);
      return li;
    }), $("likes"));
  }
  $("history-summary").textContent = state.likes.length
    ? `${state.likes.length} like${state.likes.length > 1 ? "s" : ""} stored only in this browser.`
    : "No history stored.";
}

function showLearning() {
  const { enabled, signals } = api.learning;
  $("learn").checked = enabled;
  $("learning").textContent = (signals ? `Model updated on this device with ${signals.toLocaleString("en")} of your signals` : "Using the base model") +
    (enabled ? "." : ". Learning is off.");
}

function renderCatalog() {
  const text = catalogFilter.text.toLowerCase();
  const matches = catalog.items.filter((it) =>
    (!catalogFilter.category || it.category === catalogFilter.category) && (!text || it.name.toLowerCase().includes(text)));
  $("catalog").replaceChildren(...matches.slice(0, catalogFilter.shown).map((it) => card(it)));
  $("catalog-count").textContent = `${matches.length.toLocaleString("en")} of ${catalog.items.length.toLocaleString("en")}`;
  $("more").hidden = matches.length <= catalogFilter.shown;
}

function renderCategoryChips() {
  const make = (id, label) => {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "chip";
    b.textContent = label;
    b.setAttribute("aria-pressed", String(catalogFilter.category === id));
    b.addEventListener("click", () => {
      catalogFilter.category = id;
      catalogFilter.shown = PAGE;
      renderCategoryChips();
      renderCatalog();
    });
    return b;
  };
  $("cats").replaceChildren(make(null, "All"), ...catalog.categories.map((c) => make(c.id, c.name)));
}

function setupControls() {
  const fill = (select, options, value) => {
    select.replaceChildren(...options.map(([v, label]) => new Option(label, v, false, v === value)));
  };
  if (!catalog.times.some((t) => t.id === state.time)) {
    const h = new Date().getHours();
    state.time = h >= 6 && h < 12 ? "morning" : h >= 12 && h < 18 ? "afternoon" : h >= 18 && h < 23 ? "evening" : "night";
    if (!catalog.times.some((t) => t.id === state.time)) state.time = catalog.times[0].id;
  }
  if (!catalog.devices.includes(state.device)) {
    const guess = matchMedia("(pointer: coarse)").matches ? "mobile" : "desktop";
    state.device = catalog.devices.includes(guess) ? guess : catalog.devices[0];
  }
  const cap = (s) => s.charAt(0).toUpperCase() + s.slice(1);
  fill($("time"), catalog.times.map((t) => [t.id, cap(t.id)]), state.time);
  fill($("device"), catalog.devices.map((d) => [d, cap(d)]), state.device);
  $("engine").value = ["auto", "webgpu", "cpu"].includes(BACKEND) ? BACKEND : "auto";
  $("engine").addEventListener("change", (e) => {
    const url = new URL(location.href);
    url.searchParams.set("backend", e.target.value);
    location.assign(url); // the engine is chosen at load; the page reloads from the offline cache if needed
  });
  const updated = "Recommendations updated.";
  $("time").addEventListener("change", (e) => { state.time = e.target.value; saveState(); rerank(undefined, updated); });
  $("device").addEventListener("change", (e) => { state.device = e.target.value; saveState(); rerank(undefined, updated); });
  $("learn").addEventListener("change", (e) => {
    api.learning.enabled = e.target.checked;
    localStorage.setItem(LEARN, e.target.checked ? "on" : "off");
    showLearning();
  });
  $("forget").addEventListener("click", () => {
    localStorage.removeItem(STORE);
    state = { likes: [], time: state.time, device: state.device };
    sessionLikes = 0;
    // The worker deletes the learned model and loads the base model again before it re-ranks.
    worker.postMessage({ type: "forget" });
    renderLikes();
    renderCatalog();
    rerank();
    status("Forgotten: your likes and the model learned from them were erased from this browser.");
  });
  let searchTimer = 0;
  $("search").addEventListener("input", (e) => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => {
      catalogFilter.text = e.target.value.trim();
      catalogFilter.shown = PAGE;
      renderCatalog();
    }, 120);
  });
  $("more").addEventListener("click", () => { catalogFilter.shown += PAGE; renderCatalog(); });
}

function formatBytes(n) {
  return n >= 1e6 ? `${(n / 1e6).toFixed(2)} MB` : `${(n / 1e3).toFixed(0)} kB`;
}

function showRequests() {
  api.requests = requestsMain + requestsWorker;
  $("requests").textContent = String(api.requests);
  $("requests").classList.toggle("bad", api.requests > 0);
}

function onReady(info, loadMs) {
  api.ready = true;
  api.info = info;
  const backend = info.backend === "webgpu" ? "WebGPU" : "CPU (wasm" + (info.simd128 ? " SIMD" : "") + ")";
  $("backend").textContent = backend;
  $("backend").title = info.backend_reason;
  $("backend").insertAdjacentHTML("beforeend", `<small>${escapeHtml(info.backend_reason)}</small>`);
  $("model-size").textContent = formatBytes(info.model_bytes);
  $("model-size").title = `${info.params.toLocaleString("en")} parameters, ${info.dtype}, loaded in ${loadMs.toFixed(0)} ms`;
  $("model-size").insertAdjacentHTML("beforeend", `<small>${info.params.toLocaleString("en")} params</small>`);
  new PerformanceObserver((list) => { requestsMain += list.getEntries().length; showRequests(); }).observe({ type: "resource" });
  showRequests();
  rerank();
}

function escapeHtml(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

function fail(message) {
  api.error = message;
  status(message);
  $("status").classList.add("error");
  $("backend").textContent = "not loaded";
}

async function main() {
  if ("serviceWorker" in navigator) {
    navigator.serviceWorker.register("sw.js").catch((e) => console.warn("no offline cache:", e));
  }
  // The worker loads the wasm module and the model while this thread fetches the catalog.
  worker = new Worker(new URL("./worker.js", import.meta.url), { type: "module" });
  worker.onmessage = ({ data }) => {
    if (data.type === "ready") onReady(data.info, data.loadMs);
    else if (data.type === "ranked") showRanking(data);
    else if (data.type === "requests") { requestsWorker = data.count; showRequests(); }
    else if (data.type === "learning") {
      Object.assign(api.learning, { signals: data.signals, restored: data.restored, lastLoss: data.loss, lastMs: data.ms });
      showLearning();
    }
    else if (data.type === "error") fail(`Scoring failed: ${data.message}`);
  };
  worker.onerror = (e) => fail(`The scoring worker failed: ${e.message || "see the console"}`);
  worker.postMessage({ type: "init", modelUrl: new URL(MODEL, location.href).href, backend: BACKEND });
  try {
    const res = await fetch(CATALOG);
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    catalog = await res.json();
  } catch (e) {
    fail(`Cannot load the catalog ${CATALOG} (${e.message}). Run "make demo-model", then reload.`);
    return;
  }
  worker.postMessage({ type: "catalog", catalog });
  byId = new Map(catalog.items.map((it) => [it.id, it]));
  $("source").textContent = catalog.source === "synthetic"
    ? "The catalog and its shoppers are synthetic."
    : `Catalog: ${catalog.source} (GroupLens, non-commercial use).`;
  setupControls();
  showLearning();
  saveState();
  renderLikes();
  renderCategoryChips();
  renderCatalog();
}

main();
