import type { Columns, EngineInfo, LearnOptions, LearnReport, Ranked, RankOptions, Row } from "./pocketrec.js";

/** A model file: its bytes, or its URL (a relative URL is resolved against the page). */
export type ModelSource = Uint8Array | ArrayBuffer | URL | string;

/** The pocketrec engine in a module worker: Engine's methods as promises, off the main thread.
 * Calls run in call order; a failed call rejects with an Error carrying the engine's message. */
export declare class WorkerEngine {
  /** Starts the worker; `workerUrl` overrides where engine-worker.js is served from. */
  constructor(options?: { workerUrl?: string | URL });
  /** Loads a model, replacing the current one once the new one has loaded. Resolves to info(). */
  load(source: ModelSource, backend?: "auto" | "webgpu" | "cpu"): Promise<EngineInfo>;
  info(): Promise<EngineInfo>;
  score(rows: Row[] | Columns): Promise<Float32Array>;
  rank(context: Row, candidates: Row[] | Columns, k: number, options?: RankOptions): Promise<Ranked[]>;
  learn(rows: Row[] | Columns, labels: Float32Array | number[], options?: LearnOptions): Promise<LearnReport>;
  /** The model as it is now, learned weights included, as a model file. */
  save(): Promise<Uint8Array>;
  /** Stops the worker; pending calls reject. */
  terminate(): void;
}
