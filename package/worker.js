// WorkerEngine: the pocketrec engine in a module worker, so scoring, ranking and learning never block
// the page. Each method posts one request to the worker (engine-worker.js, which owns an Engine)
// and returns a promise; requests run in call order, and a failed one rejects with an Error
// carrying the engine's message without blocking the next. Arguments are copied (the caller's
// arrays stay usable); typed-array results (score, save) are transferred back without a copy.

export class WorkerEngine {
  #worker;
  #pending = new Map();
  #nextId = 0;
  #broken = null;

  /** Starts the worker. `options.workerUrl` overrides where engine-worker.js is served from. */
  constructor(options = {}) {
    const url = options.workerUrl ?? new URL("./engine-worker.js", import.meta.url);
    this.#worker = new Worker(url, { type: "module" });
    this.#worker.onmessage = ({ data: { id, result, error } }) => {
      const call = this.#pending.get(id);
      if (!call) return;
      this.#pending.delete(id);
      if (error === undefined) call.resolve(result);
      else call.reject(new Error(error));
    };
    // A worker script that fails to load or throws at top level: every call fails from then on.
    this.#worker.onerror = (event) => {
      event.preventDefault?.();
      this.#fail(`the pocketrec worker failed: ${event.message || "its script did not load"}`);
    };
  }

  #fail(message) {
    this.#broken = message;
    for (const call of this.#pending.values()) call.reject(new Error(message));
    this.#pending.clear();
  }

  #call(op, args, transfer = []) {
    if (this.#broken) return Promise.reject(new Error(this.#broken));
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#worker.postMessage({ id, op, args }, transfer);
    });
  }

  /** Loads a model (replacing the current one only once the new one has loaded): `source` is the
   * model file's bytes (Uint8Array or ArrayBuffer) or its URL (resolved against the page).
   * `backend` is "auto" (default), "webgpu" or "cpu". Resolves to `info()`. */
  load(source, backend = "auto") {
    if (source instanceof ArrayBuffer) source = new Uint8Array(source);
    else if (typeof source === "string" || source instanceof URL) source = new URL(source, globalThis.location?.href).href;
    else if (!(source instanceof Uint8Array)) return Promise.reject(new Error("load(source): source must be a Uint8Array, an ArrayBuffer, a URL or a string"));
    return this.#call("load", [source, backend]);
  }

  /** The loaded model's config, sizes, digest and backend (Engine.info()). */
  info() { return this.#call("info", []); }

  /** Click probabilities of full rows (objects or columns): a Float32Array. */
  score(rows) { return this.#call("score", [rows]); }

  /** The k best candidates for one context, best first: [{ index, logit, score }]. `options` as
   * Engine.rank's, e.g. { diversity: { strength: 0.3, features: ["category"] } }. */
  rank(context, candidates, k, options) { return this.#call("rank", [context, candidates, k, options]); }

  /** A few optimizer steps on the user's own rows and 0/1 labels (Engine.learn's options). */
  learn(rows, labels, options) { return this.#call("learn", [rows, labels, options]); }

  /** The model as it is now, learned weights included: a model file as a Uint8Array. */
  save() { return this.#call("save", []); }

  /** Stops the worker; calls still pending reject. */
  terminate() {
    this.#worker.terminate();
    this.#fail("the pocketrec worker was terminated");
  }
}
