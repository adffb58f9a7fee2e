//! The browser API (wasm-bindgen): load a model from bytes, describe it, score rows, rank candidates,
//! learn from the user's rows on the device and save the result.
//!
//! A thin layer over [`Scorer`]: JS values become [`crate::input`] rows (plain objects through
//! serde-wasm-bindgen, or typed-array columns), results go back as plain objects and typed arrays.
//! Every failure rejects the promise with a JS `Error` whose message names the problem.
//!
//! ```js
//! import init, { Engine } from "./web/pkg/pocketrec.js";
//! await init();
//! const engine = await Engine.load(new Uint8Array(await (await fetch("model.safetensors")).arrayBuffer()), "auto");
//! engine.info().backend;                          // "webgpu" or "cpu", and .backend_reason says why
//! const top = await engine.rank({ hour: 20, device: "mobile", ... }, [{ item: "i00042", ... }], 10);
//! // On-device learning (crate::learn): rows as for score, labels 0/1, options optional.
//! const { loss, steps, ms } = await engine.learn(rows, [1, 0, 0], { lr: 0.05, steps: 3, scope: "top" });
//! const personalized = await engine.save();      // a model file: Engine.load(personalized) takes it back
//! ```

use crate::backend::{BackendChoice, Scorer};
use crate::diversity::{self, Diversity};
use crate::input::{self, Column};
use crate::learn::{LearnOptions, Learner, personalized_provenance};
use crate::passes::sigmoid;
use crate::rank::Context;
use js_sys::{Array, Float32Array, Object, Promise, Reflect, Uint32Array};
use serde::Serialize;
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;

#[wasm_bindgen(typescript_custom_section)]
const TS_TYPES: &str = r#"
/** A sparse value: a string (hashed with FNV-1a 32, like the trainer) or an integer in 0..2^32. */
export type SparseValue = string | number;
/** One row keyed by the model's names: dense features are numbers, categoricals one value, bags a list. */
export type Row = Record<string, number | SparseValue | SparseValue[]>;
/** One field as columns: a Uint32Array with one value per row, or a bag in CSR form. */
export type Column = Uint32Array | { offsets: Uint32Array; values: Uint32Array };
/** Rows as columns: `dense` is row-major rows × n_dense; one column per field. */
export interface Columns { rows: number; dense?: Float32Array; fields: Record<string, Column>; }
export interface Ranked { index: number; logit: number; score: number; }
/** Options of `rank`: `diversity` re-ranks the top by maximal marginal relevance (strength 0 = plain ranking). */
export interface RankOptions { diversity?: { strength: number; features?: string | string[] }; }
/** Options of engine.learn, each optional (defaults: lr 0.05, steps 3, adagrad, scope "all", anchor 0.01). */
export interface LearnOptions {
  lr?: number;
  /** Passes over the given rows, one optimizer step each. */
  steps?: number;
  /** Its state is kept in the engine between calls (reset when the optimizer or scope changes). */
  optimizer?: "sgd" | "adagrad" | "adam";
  /** Which parameters move: all, the embedding array only, or the top MLP only. */
  scope?: "all" | "embeddings" | "top";
  /** Strength of an L2 pull toward the loaded weights; 0 turns it off. */
  anchor?: number;
}
/** `loss`: mean loss of the given rows before the update; `ms`: the call's time. */
export interface LearnReport { loss: number; steps: number; ms: number; }
export interface EngineInfo {
  /** The full model config: dense names, fields (name, kind), dim, bottom/top widths, embedding. */
  config: { dense: string[]; fields: { name: string; kind: "categorical" | "bag-sum" | "bag-mean" }[]; [k: string]: unknown };
  dtype: "f32" | "f16";
  provenance: unknown;
  params: number;
  embedding_len: number;
  mlp_params: number;
  model_bytes: number;
  /** The file's content digest ("xxh3-64:..."), checked on load; null for an older file without one (loaded unchecked). */
  digest: string | null;
  backend: "webgpu" | "cpu";
  backend_reason: string;
  simd128: boolean;
  version: string;
}
"#;

/// A JS `Error` with `msg`.
fn js_error(msg: impl std::fmt::Display) -> JsValue {
    JsError::new(&msg.to_string()).into()
}

fn get(obj: &JsValue, key: &str) -> Result<JsValue, JsValue> {
    Reflect::get(obj, &JsValue::from_str(key)).map_err(|_| js_error(format!("cannot read {key:?}")))
}

/// The u32 value the model sees for a string token: FNV-1a 32 of its UTF-8 bytes, 0 for "" (as
/// the trainer reads an empty TSV cell). For typed-array columns.
#[wasm_bindgen(js_name = tokenValue)]
pub fn token_value(s: &str) -> u32 {
    crate::robe::token_value(s.as_bytes())
}

/// Runs `reps` products of an `m×k` by `k×n` matrix on the CPU kernels the engine uses and
/// returns a checksum. `make bench-browser` times it: the wasm GEMM rate beside the native one.
#[wasm_bindgen(js_name = benchMatmul)]
pub fn bench_matmul(m: usize, k: usize, n: usize, reps: u32) -> f32 {
    use ndarray::Array2;
    let a = Array2::from_shape_fn((m, k), |(i, j)| ((i * 7 + j * 3) % 13) as f32 * 0.01);
    let b = Array2::from_shape_fn((k, n), |(i, j)| ((i * 5 + j) % 11) as f32 * 0.01);
    let mut c = Array2::<f32>::zeros((m, n));
    for _ in 0..reps {
        crate::gemm::matmul(a.view(), b.view(), c.view_mut(), false);
    }
    c.sum()
}

/// A loaded model and the backend that scores it.
#[wasm_bindgen]
pub struct Engine {
    /// Taken out for the length of a call.
    scorer: Rc<RefCell<Option<Scorer>>>,
    /// Made at the first `learn`, anchored at the weights as loaded.
    learner: Rc<RefCell<Option<Learner>>>,
    /// The promise of the last call: each call waits for the one before, so calls run one at a
    /// time, in call order, even when a caller does not await them.
    tail: RefCell<Promise>,
    config: crate::config::ModelConfig,
    info: serde_json::Value,
}

#[derive(Serialize)]
struct Info<'a> {
    config: &'a crate::config::ModelConfig,
    dtype: &'static str,
    provenance: &'a serde_json::Value,
    params: usize,
    embedding_len: u64,
    mlp_params: usize,
    model_bytes: usize,
    digest: Option<&'a str>,
    backend: &'static str,
    backend_reason: &'a str,
    simd128: bool,
    version: &'static str,
}

fn parse_backend(backend: Option<String>) -> Result<BackendChoice, JsValue> {
    let name = backend.unwrap_or_else(|| "auto".into());
    name.parse::<BackendChoice>()
        .map_err(|_| js_error(format!("backend {name:?} is not one of \"auto\", \"webgpu\", \"cpu\"")))
}

/// Reads the columns of `fields` (an object of Uint32Array or {offsets, values}).
fn columns(fields: &JsValue, what: &str) -> Result<Vec<(String, Column)>, JsValue> {
    if !fields.is_object() {
        return Err(js_error(format!("{what}.fields must be an object of columns")));
    }
    let mut out = Vec::new();
    for key in Object::keys(fields.unchecked_ref::<Object>()).iter() {
        let name = key.as_string().unwrap_or_default();
        let col = get(fields, &name)?;
        let column = if let Some(a) = col.dyn_ref::<Uint32Array>() {
            Column::Single(a.to_vec())
        } else {
            let (o, v) = (get(&col, "offsets")?, get(&col, "values")?);
            match (o.dyn_ref::<Uint32Array>(), v.dyn_ref::<Uint32Array>()) {
                (Some(o), Some(v)) => Column::Bag { offsets: o.to_vec(), values: v.to_vec() },
                _ => {
                    return Err(js_error(format!(
                        "column {name:?} of {what} must be a Uint32Array or {{offsets: Uint32Array, values: Uint32Array}}"
                    )));
                }
            }
        };
        out.push((name, column));
    }
    Ok(out)
}

/// `Some(rows)` when `v` is in column form (`{rows: number, ...}`), `None` for an array.
fn column_rows(v: &JsValue, what: &str) -> Result<Option<usize>, JsValue> {
    if Array::is_array(v) {
        return Ok(None);
    }
    if v.is_object()
        && let Some(n) = get(v, "rows")?.as_f64()
    {
        if n.fract() == 0.0 && (0.0..=u32::MAX as f64).contains(&n) {
            return Ok(Some(n as usize));
        }
        return Err(js_error(format!("{what}.rows must be a whole number, got {n}")));
    }
    Err(js_error(format!("{what} must be an array of objects or columns {{rows, fields}}")))
}

fn objects(v: JsValue, what: &str) -> Result<Vec<serde_json::Value>, JsValue> {
    serde_wasm_bindgen::from_value(v).map_err(|e| js_error(format!("{what} must be an array of objects: {e}")))
}

/// Errors when `obj` has a key outside `known` (usually a typo).
fn known_keys(obj: &JsValue, known: &[&str], what: &str) -> Result<(), JsValue> {
    match Object::keys(obj.unchecked_ref::<Object>())
        .iter()
        .filter_map(|k| k.as_string())
        .find(|k| !known.contains(&k.as_str()))
    {
        Some(k) => Err(js_error(format!("{what} has an unknown key {k:?}: known keys are {known:?}"))),
        None => Ok(()),
    }
}

/// The `diversity` option of `rank` (absent: strength 0, the plain ranking).
fn diversity_option(options: &JsValue) -> Result<Diversity, JsValue> {
    if options.is_undefined() || options.is_null() {
        return Ok(Diversity::default());
    }
    if !options.is_object() {
        return Err(js_error("rank options must be an object like { diversity: { strength, features } }"));
    }
    known_keys(options, &["diversity"], "rank options")?;
    let d = get(options, "diversity")?;
    if d.is_undefined() || d.is_null() {
        return Ok(Diversity::default());
    }
    if !d.is_object() {
        return Err(js_error("options.diversity must be an object { strength, features }"));
    }
    known_keys(&d, &["strength", "features"], "options.diversity")?;
    let strength = get(&d, "strength")?
        .as_f64()
        .ok_or_else(|| js_error("options.diversity.strength must be a number in [0, 1] (0 = plain ranking)"))?;
    let f = get(&d, "features")?;
    let not_names = || js_error("options.diversity.features must be a candidate field name or a list of them");
    let features = if f.is_undefined() {
        Vec::new()
    } else if let Some(name) = f.as_string() {
        vec![name]
    } else if Array::is_array(&f) {
        Array::from(&f).iter().map(|v| v.as_string().ok_or_else(not_names)).collect::<Result<_, _>>()?
    } else {
        return Err(not_names());
    };
    Ok(Diversity { strength: strength as f32, features })
}

fn to_js<T: Serialize>(v: &T) -> Result<JsValue, JsValue> {
    v.serialize(&serde_wasm_bindgen::Serializer::json_compatible()).map_err(js_error)
}

impl Engine {
    /// Runs `call` after every earlier call has settled.
    fn queue(&self, call: impl std::future::Future<Output = Result<JsValue, JsValue>> + 'static) -> Promise {
        let before = self.tail.borrow().clone();
        let promise = wasm_bindgen_futures::future_to_promise(async move {
            let _ = wasm_bindgen_futures::JsFuture::from(before).await; // its outcome is its caller's
            call.await
        });
        *self.tail.borrow_mut() = promise.clone();
        promise
    }
}

#[wasm_bindgen]
impl Engine {
    /// Loads a model from safetensors bytes onto `backend` ("auto" | "webgpu" | "cpu"; default
    /// "auto": WebGPU when an adapter exists, else the CPU, recording why). Bad bytes reject with
    /// an `Error` that names the problem; so do tensor bytes that do not match the file's digest
    /// ("model file is corrupt (digest mismatch): ...").
    pub async fn load(bytes: Vec<u8>, backend: Option<String>) -> Result<Engine, JsValue> {
        let choice = parse_backend(backend)?;
        let file = crate::file::from_bytes(&bytes).map_err(js_error)?;
        let scorer = Scorer::new(file.model, choice).await.map_err(js_error)?;
        let model = scorer.model();
        let info = serde_json::to_value(Info {
            config: &model.config,
            dtype: file.dtype.name(),
            provenance: &file.provenance,
            params: model.param_count(),
            embedding_len: model.config.embedding_len(),
            mlp_params: model.config.mlp_params(),
            model_bytes: bytes.len(),
            digest: file.digest.recorded(),
            backend: scorer.backend_name(),
            backend_reason: scorer.backend_reason(),
            simd128: cfg!(target_feature = "simd128"),
            version: env!("CARGO_PKG_VERSION"),
        })
        .map_err(js_error)?;
        let config = scorer.model().config.clone();
        let tail = RefCell::new(Promise::resolve(&JsValue::UNDEFINED));
        Ok(Engine {
            scorer: Rc::new(RefCell::new(Some(scorer))),
            learner: Rc::new(RefCell::new(None)),
            tail,
            config,
            info,
        })
    }

    /// The model's config, dtype, provenance and sizes, and the backend with the reason it was chosen.
    #[wasm_bindgen(unchecked_return_type = "EngineInfo")]
    pub fn info(&self) -> Result<JsValue, JsValue> {
        to_js(&self.info)
    }

    /// Click probabilities of full rows, given as objects or as columns.
    #[wasm_bindgen(unchecked_return_type = "Promise<Float32Array>")]
    pub fn score(&self, #[wasm_bindgen(unchecked_param_type = "Row[] | Columns")] rows: JsValue) -> Promise {
        let scorer = self.scorer.clone();
        let batch = batch_of(&self.config, rows);
        self.queue(async move {
            let batch = batch?;
            if batch.rows == 0 {
                return Ok(Float32Array::new_with_length(0).into());
            }
            let mut s = scorer.borrow_mut().take().ok_or_else(busy)?;
            let logits = s.logits(&batch).await;
            *scorer.borrow_mut() = Some(s);
            let logits = logits.map_err(js_error)?;
            let probs: Vec<f32> = logits.iter().map(|&z| sigmoid(z)).collect();
            Ok(Float32Array::from(probs.as_slice()).into())
        })
    }

    /// The top `k` candidates for a context, best first. The context is an object with every dense
    /// feature and the fields shared by all candidates; the candidates (objects or columns) give
    /// the other fields. `k = 0` or no candidates give an empty list. `options.diversity` re-ranks
    /// the top for variety ([`crate::diversity`]).
    #[wasm_bindgen(unchecked_return_type = "Promise<Ranked[]>")]
    pub fn rank(
        &self,
        #[wasm_bindgen(unchecked_param_type = "Row")] context: JsValue,
        #[wasm_bindgen(unchecked_param_type = "Row[] | Columns")] candidates: JsValue,
        k: u32,
        #[wasm_bindgen(unchecked_param_type = "RankOptions | undefined")] options: JsValue,
    ) -> Promise {
        let (scorer, config) = (self.scorer.clone(), &self.config);
        let request = (|| {
            let cfg = &config;
            let ctx_value: serde_json::Value = serde_wasm_bindgen::from_value(context)
                .map_err(|e| js_error(format!("the context must be an object keyed by field name: {e}")))?;
            let ctx: Context = input::context_from_object(cfg, &ctx_value).map_err(js_error)?;
            let cands = match column_rows(&candidates, "candidates")? {
                Some(n) => {
                    input::candidates_from_columns(cfg, &ctx, n, columns(&get(&candidates, "fields")?, "candidates")?)
                }
                None => input::candidates_from_objects(cfg, &ctx, &objects(candidates, "candidates")?),
            }
            .map_err(js_error)?;
            crate::rank::validate(cfg, &ctx, &cands).map_err(js_error)?;
            let diversity = diversity_option(&options)?;
            let fields = diversity.feature_fields(cfg, &ctx).map_err(js_error)?;
            Ok::<_, JsValue>((ctx, cands, diversity, fields))
        })();
        self.queue(async move {
            let (ctx, cands, d, fields) = request?;
            let out = Array::new();
            if k == 0 || cands.rows == 0 {
                return Ok(out.into());
            }
            let mut s = scorer.borrow_mut().take().ok_or_else(busy)?;
            let ranked = s.rank(&ctx, &cands, d.pool(k as usize, cands.rows)).await;
            *scorer.borrow_mut() = Some(s);
            let ranked = ranked.map_err(js_error)?;
            for r in diversity::rerank(&ranked, &cands, &fields, d.strength, k as usize) {
                let o = Object::new();
                Reflect::set(&o, &"index".into(), &(r.index as u32).into())?;
                Reflect::set(&o, &"logit".into(), &r.logit.into())?;
                Reflect::set(&o, &"score".into(), &r.score.into())?;
                out.push(&o);
            }
            Ok(out.into())
        })
    }

    /// Learns from labelled rows (objects or columns, as for `score`; labels 0 or 1, one per
    /// row) on the device: `options.steps` passes, each one optimizer step. Options, each with a
    /// default: `lr`, `steps`, `optimizer` ("sgd" | "adagrad" | "adam"; its state is kept between
    /// calls), `scope` ("all" | "embeddings" | "top": what moves) and `anchor` (the pull toward the
    /// loaded weights). `loss` is the mean loss of the rows before the update. Afterwards every
    /// call scores the learned weights. Bad input rejects and changes nothing.
    #[wasm_bindgen(unchecked_return_type = "Promise<LearnReport>")]
    pub fn learn(
        &self,
        #[wasm_bindgen(unchecked_param_type = "Row[] | Columns")] rows: JsValue,
        #[wasm_bindgen(unchecked_param_type = "Float32Array | number[]")] labels: JsValue,
        #[wasm_bindgen(unchecked_param_type = "LearnOptions")] options: JsValue,
    ) -> Promise {
        let (scorer, learner) = (self.scorer.clone(), self.learner.clone());
        let request =
            (|| Ok::<_, JsValue>((batch_of(&self.config, rows)?, labels_of(labels)?, learn_options(options)?)))();
        self.queue(async move {
            let (batch, labels, opts) = request?;
            let start = js_sys::Date::now();
            let mut s = scorer.borrow_mut().take().ok_or_else(busy)?;
            let mut l = learner.borrow_mut();
            let l = l.get_or_insert_with(|| Learner::new(s.model()));
            let report = s.learn(l, &batch, &labels, &opts);
            *scorer.borrow_mut() = Some(s);
            let report = report.map_err(js_error)?;
            to_js(&LearnResult { loss: report.loss, steps: report.steps, ms: js_sys::Date::now() - start })
        })
    }

    /// The model as it is now, learned weights included, as a model file (f32, so a reload scores
    /// exactly as now); its provenance is the loaded file's with `on_device: { base_digest,
    /// updates }`. `Engine.load` takes it back.
    #[wasm_bindgen(unchecked_return_type = "Promise<Uint8Array>")]
    pub fn save(&self) -> Promise {
        let (scorer, learner) = (self.scorer.clone(), self.learner.clone());
        let (prov, digest) = (self.info["provenance"].clone(), self.info["digest"].as_str().map(str::to_string));
        self.queue(async move {
            let updates = learner.borrow().as_ref().map_or(0, |l| l.updates());
            let prov = personalized_provenance(&prov, digest.as_deref(), updates);
            let s = scorer.borrow_mut().take().ok_or_else(busy)?;
            let bytes = crate::file::to_bytes(s.model(), crate::config::StoredDtype::F32, &prov);
            *scorer.borrow_mut() = Some(s);
            Ok(js_sys::Uint8Array::from(bytes.map_err(js_error)?.as_slice()).into())
        })
    }
}

/// Full rows given as objects or as columns.
fn batch_of(cfg: &crate::config::ModelConfig, rows: JsValue) -> Result<crate::batch::Batch, JsValue> {
    match column_rows(&rows, "rows")? {
        Some(n) => {
            let dense = get(&rows, "dense")?;
            let dense = match dense.dyn_ref::<Float32Array>() {
                Some(d) => d.to_vec(),
                None if dense.is_undefined() && cfg.dense.is_empty() => Vec::new(),
                None => return Err(js_error("rows.dense must be a Float32Array of rows × n_dense values")),
            };
            input::batch_from_columns(cfg, n, dense, columns(&get(&rows, "fields")?, "rows")?)
        }
        None => input::batch_from_objects(cfg, &objects(rows, "rows")?),
    }
    .map_err(js_error)
}

/// `engine.learn`'s options as JS gives them: each one optional.
#[derive(serde::Deserialize, Default)]
struct JsLearnOptions {
    lr: Option<f64>,
    steps: Option<u32>,
    optimizer: Option<String>,
    scope: Option<String>,
    anchor: Option<f64>,
}

fn learn_options(v: JsValue) -> Result<LearnOptions, JsValue> {
    if v.is_undefined() || v.is_null() {
        return Ok(LearnOptions::default());
    }
    // serde-wasm-bindgen reads only the names it knows, so a misspelt option is caught here.
    if v.is_object() {
        const KNOWN: [&str; 5] = ["lr", "steps", "optimizer", "scope", "anchor"];
        for key in Object::keys(v.unchecked_ref::<Object>()).iter() {
            let key = key.as_string().unwrap_or_default();
            if !KNOWN.contains(&key.as_str()) {
                return Err(js_error(format!("unknown option {key:?}: use lr, steps, optimizer, scope or anchor")));
            }
        }
    }
    let o: JsLearnOptions = serde_wasm_bindgen::from_value(v)
        .map_err(|e| js_error(format!("options must be an object with lr, steps, optimizer, scope or anchor: {e}")))?;
    let mut opts = LearnOptions::default();
    opts.lr = o.lr.map_or(opts.lr, |x| x as f32);
    opts.steps = o.steps.unwrap_or(opts.steps);
    opts.anchor = o.anchor.map_or(opts.anchor, |x| x as f32);
    if let Some(k) = o.optimizer {
        opts.optimizer = k.parse().map_err(js_error)?;
    }
    if let Some(s) = o.scope {
        opts.scope = s.parse().map_err(js_error)?;
    }
    Ok(opts)
}

/// Labels as a Float32Array or an array of numbers.
fn labels_of(v: JsValue) -> Result<Vec<f32>, JsValue> {
    if let Some(a) = v.dyn_ref::<Float32Array>() {
        return Ok(a.to_vec());
    }
    serde_wasm_bindgen::from_value(v)
        .map_err(|e| js_error(format!("labels must be a Float32Array or an array of 0 and 1: {e}")))
}

#[derive(Serialize)]
struct LearnResult {
    loss: f64,
    steps: u32,
    ms: f64,
}

fn busy() -> JsValue {
    js_error("the engine is busy with another call (a call was dropped before it finished)")
}
