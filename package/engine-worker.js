// The module worker behind WorkerEngine (worker.js): it owns one Engine and answers the client's
// requests in the order they arrive. Request: {id, op, args}; reply: {id, result} or {id, error}.
// Typed-array results are transferred, not copied.
import init, { Engine } from "./pocketrec.js";

let engine = null;
let ready = null;

async function modelBytes(source) {
  if (typeof source !== "string") return source;
  const response = await fetch(source);
  if (!response.ok) throw new Error(`cannot fetch the model ${source}: HTTP ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

function loaded() {
  if (!engine) throw new Error("no model loaded: call load(source) first");
  return engine;
}

const ops = {
  async load(source, backend) {
    ready ??= init();
    await ready;
    const next = await Engine.load(await modelBytes(source), backend ?? "auto");
    if (engine) engine.free();
    engine = next;
    return engine.info();
  },
  info: () => loaded().info(),
  score: (rows) => loaded().score(rows),
  rank: (context, candidates, k, options) => loaded().rank(context, candidates, k, options),
  learn: (rows, labels, options) => loaded().learn(rows, labels, options),
  save: () => loaded().save(),
};

let queue = Promise.resolve();
self.onmessage = ({ data: { id, op, args } }) => {
  queue = queue.then(async () => {
    try {
      if (!Object.hasOwn(ops, op)) throw new Error(`unknown operation ${JSON.stringify(op)}`);
      let result = await ops[op](...args);
      // A typed array that owns its whole buffer moves to the page; any other is copied first.
      if (ArrayBuffer.isView(result) && result.byteLength !== result.buffer.byteLength) result = result.slice();
      self.postMessage({ id, result }, ArrayBuffer.isView(result) ? [result.buffer] : []);
    } catch (e) {
      self.postMessage({ id, error: String(e && e.message ? e.message : e) });
    }
  });
};
