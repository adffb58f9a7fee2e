// Service worker: network first, cache as fallback, so the demo works offline after one visit and
// a retrained model shows up on the next online load. It lives at the root so its scope covers
// index.html. Every successful same-origin GET refreshes the cache.
const CACHE = "pocketrec-v1";
const CORE = [
  "./",
  "index.html",
  "web/app.js",
  "web/worker.js",
  "web/style.css",
  "web/pkg/pocketrec.js",
  "web/pkg/pocketrec_bg.wasm",
  "out/demo/catalog.json",
  "out/demo/model.safetensors",
];

self.addEventListener("install", (event) => {
  event.waitUntil(
    caches.open(CACHE).then((cache) => Promise.all(CORE.map((url) => cache.add(url).catch(() => null))))
      .then(() => self.skipWaiting()),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches.keys()
      .then((keys) => Promise.all(keys.filter((k) => k !== CACHE).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()),
  );
});

self.addEventListener("fetch", (event) => {
  const req = event.request;
  if (req.method !== "GET" || new URL(req.url).origin !== self.location.origin) return;
  event.respondWith((async () => {
    const cache = await caches.open(CACHE);
    try {
      const res = await fetch(req);
      if (res.ok) await cache.put(req, res.clone());
      return res;
    } catch (offline) {
      const hit = await cache.match(req) ||
        (req.mode === "navigate" ? await cache.match(req, { ignoreSearch: true }) || await cache.match("./") : null);
      return hit || Response.error();
    }
  })());
});
