//! Learning on the device: a few optimizer steps on the user's own rows, with the loaded model as
//! an anchor so that a handful of clicks cannot wreck it.
//!
//! A [`Learner`] keeps what must outlive one call: a snapshot of the base weights (the anchor's
//! target and the provenance of a saved model), the optimizer with its state, and the count of
//! updates. Each step is the training step ([`TrainStep::step_with`]) with two changes to the
//! gradients before the update: the parameters outside the [`Scope`] get a zero gradient, and the
//! ones inside get `anchor · (w − w₀)`, the gradient of `anchor/2 · ‖w − w₀‖²`. A zero gradient
//! leaves a parameter bit-identical under every optimizer as long as its state is zero, so the
//! optimizer starts afresh whenever the kind or the scope changes.
//!
//! Input is checked before anything moves; a loss or a weight that stops being finite during the
//! steps puts back the weights and optimizer state of before the call.
//!
//! A call costs the slots of `W` it can change, not all of `W` (a learner's first call compares `W`
//! with the base once): the optimizer already updates only the slots with a gradient, and the
//! learner keeps the ranges of `W` that may differ from the base, so the anchor's pull, the copy
//! kept to undo a failed call and the finiteness check cover those ranges and the rows' blocks
//! only. The weights are bit-identical to the anchor's pass over all of `W` (a slot equal to its
//! base gets no pull either way; `crate/tests/learn.rs` checks it). [`Learner::changed`] gives the
//! same ranges to copies of the weights kept elsewhere, the GPU's.

use crate::Error;
use crate::batch::Batch;
use crate::model::{Dlrm, Linear};
use crate::optim::{Optimizer, OptimizerKind};
use crate::passes::{Gradients, hash_values};
use crate::step::TrainStep;
use std::ops::Range;

/// Which parameters learning moves; the others stay bit-identical.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Scope {
    /// `W` and both MLPs (`W` and the top MLP for a model without dense features, which has no
    /// bottom MLP).
    #[default]
    All,
    /// The shared embedding array `W` only.
    Embeddings,
    /// The top MLP only.
    Top,
}

impl Scope {
    fn embeddings(self) -> bool {
        matches!(self, Scope::All | Scope::Embeddings)
    }
    fn bottom(self) -> bool {
        self == Scope::All
    }
    fn top(self) -> bool {
        matches!(self, Scope::All | Scope::Top)
    }
}

impl std::str::FromStr for Scope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "all" => Ok(Scope::All),
            "embeddings" => Ok(Scope::Embeddings),
            "top" => Ok(Scope::Top),
            _ => Err(format!("unknown scope {s:?}: use all, embeddings or top")),
        }
    }
}

/// Options of one [`Learner::learn`] call.
#[derive(Clone, Debug, PartialEq)]
pub struct LearnOptions {
    /// Learning rate: finite and positive.
    pub lr: f32,
    /// Passes over the given rows, one optimizer step each: at least 1.
    pub steps: u32,
    pub optimizer: OptimizerKind,
    pub scope: Scope,
    /// Strength of the pull toward the base weights: finite and not negative (0 turns it off).
    pub anchor: f32,
}

/// Adagrad at 0.05 (the rate the demo model was trained at), 3 steps, every parameter, anchor
/// 0.01: among the best of the settings tried with `pocketrec bench personalize` (README,
/// "Personalization"), where 0.01 learned less by 20 clicks and 0.3 was no better than no learning.
impl Default for LearnOptions {
    fn default() -> Self {
        LearnOptions { lr: 0.05, steps: 3, optimizer: OptimizerKind::Adagrad, scope: Scope::All, anchor: 0.01 }
    }
}

impl LearnOptions {
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |m: String| Err(Error::Learn(m));
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad(format!("lr is {}: give a finite learning rate above 0", self.lr));
        }
        if self.steps == 0 {
            return bad("steps is 0: give at least 1".into());
        }
        if !(self.anchor.is_finite() && self.anchor >= 0.0) {
            return bad(format!("anchor is {}: give a finite strength of 0 or more", self.anchor));
        }
        Ok(())
    }
}

/// What one [`Learner::learn`] call did.
#[derive(Clone, Debug, PartialEq)]
pub struct LearnReport {
    /// Mean binary cross-entropy of the given rows before the update.
    pub loss: f64,
    /// Optimizer steps taken.
    pub steps: u32,
}

/// What the last [`Learner::learn`] call may have changed (a superset): what a copy of the weights
/// kept elsewhere must take again.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Changed {
    /// Slot ranges of `W`, sorted, disjoint and not adjacent.
    pub embedding: Vec<Range<usize>>,
    /// Every layer of the bottom MLP.
    pub bottom: bool,
    /// Every layer of the top MLP.
    pub top: bool,
}

impl Changed {
    /// Every parameter of `model`.
    pub fn everything(model: &Dlrm) -> Changed {
        Changed { embedding: std::iter::once(0..model.embedding.len()).collect(), bottom: true, top: true }
    }
}

/// On-device learning state for one model (see the module docs). Between its calls the model must
/// change only through it: it keeps track of which slots of `W` moved.
pub struct Learner {
    base: Dlrm,
    opt: Option<(Optimizer, Scope)>,
    step: TrainStep,
    rows: Batch,
    updates: u64,
    /// The slots of `W` that may differ from the base (sorted, disjoint); found by comparing the
    /// model with the base at the first call, then kept up to date.
    moved: Option<Vec<Range<usize>>>,
    changed: Changed,
}

impl Learner {
    /// A learner anchored at `model`'s current weights.
    pub fn new(model: &Dlrm) -> Self {
        Learner {
            base: model.clone(),
            opt: None,
            step: TrainStep::new(),
            rows: Batch::with_schema(model.config.fields.len()),
            updates: 0,
            moved: None,
            changed: Changed::default(),
        }
    }

    /// What the last successful [`Learner::learn`] call may have changed.
    pub fn changed(&self) -> &Changed {
        &self.changed
    }

    /// The weights learning started from.
    pub fn base(&self) -> &Dlrm {
        &self.base
    }

    /// Optimizer steps taken so far, over every call.
    pub fn updates(&self) -> u64 {
        self.updates
    }

    /// `opts.steps` optimizer steps on `batch` with `labels` (one per row, each 0 or 1). Bad input
    /// is an error and changes nothing; so does a loss or weight that stops being finite.
    pub fn learn(
        &mut self,
        model: &mut Dlrm,
        batch: &Batch,
        labels: &[f32],
        opts: &LearnOptions,
    ) -> Result<LearnReport, Error> {
        opts.validate()?;
        if model.embedding.len() != self.base.embedding.len()
            || model.config.mlp_params() != self.base.config.mlp_params()
        {
            return Err(Error::Learn("the model is not the one this learner was made for".into()));
        }
        if labels.len() != batch.rows {
            return Err(Error::Batch(format!("expected {} labels (one per row), got {}", batch.rows, labels.len())));
        }
        batch.copy_rows_into(0..batch.rows, &mut self.rows);
        self.rows.labels.clear();
        self.rows.labels.extend_from_slice(labels);
        self.rows.validate(&model.config)?;

        // The slots of W this call can change: the rows' blocks and, pulled by the anchor, every
        // slot that moved before.
        let moved = self.moved.get_or_insert_with(|| differing(&model.embedding, &self.base.embedding));
        let (moved, changed) = match opts.scope.embeddings() {
            true => {
                let read = row_blocks(model, &self.rows);
                let moved = union(moved, &read);
                let changed = if opts.anchor > 0.0 { moved.clone() } else { read };
                (moved, changed)
            }
            false => (moved.clone(), Vec::new()),
        };

        // A fresh optimizer replaces the old one, which is put back on failure.
        let fresh = match &self.opt {
            Some((opt, scope)) => opt.kind() != opts.optimizer || *scope != opts.scope,
            None => true,
        };
        let previous = fresh.then(|| self.opt.replace((Optimizer::new(opts.optimizer, opts.lr, model), opts.scope)));
        let (opt, _) = self.opt.as_mut().expect("set above");
        let undo = Undo::take(model, opt, opts.scope, &changed);
        opt.lr = opts.lr;

        let mut first_loss = None;
        for k in 0..opts.steps {
            let base = &self.base;
            let loss = self.step.step_with(model, opt, &self.rows, |model, grads| {
                adjust_gradients(model, base, opts.scope, opts.anchor, &moved, grads)
            });
            first_loss.get_or_insert(loss);
            if !loss.is_finite() || !finite(model, opts.scope, &changed) {
                undo.restore(model, opt);
                if let Some(previous) = previous {
                    self.opt = previous;
                }
                return Err(Error::Learn(format!(
                    "the loss became {loss} at step {} of {}: the weights are as before the call; lower lr",
                    k + 1,
                    opts.steps
                )));
            }
        }
        self.updates += opts.steps as u64;
        self.moved = Some(moved);
        self.changed = Changed { embedding: changed, bottom: opts.scope.bottom(), top: opts.scope.top() };
        Ok(LearnReport { loss: first_loss.expect("steps >= 1"), steps: opts.steps })
    }
}

/// Freezes what is outside `scope` and adds the anchor's gradient to what is inside, on `W` over the
/// slots in `moved` (those that may differ from the base). `grads` are the step's shards; the first
/// holds `W`'s gradient.
fn adjust_gradients(
    model: &Dlrm,
    base: &Dlrm,
    scope: Scope,
    anchor: f32,
    moved: &[Range<usize>],
    grads: &mut [&mut Gradients],
) {
    for g in grads.iter_mut() {
        for (moves, layers) in [(scope.bottom(), &mut g.bottom), (scope.top(), &mut g.top)] {
            if !moves {
                layers.iter_mut().for_each(|l| {
                    l.weight.fill(0.0);
                    l.bias.fill(0.0);
                });
            }
        }
    }
    let Some(first) = grads.first_mut() else { return };
    if !scope.embeddings() {
        first.embedding.clear();
    }
    if anchor > 0.0 {
        add_anchor_gradient_over(model, base, scope, anchor, moved, first);
    }
}

/// Adds `anchor · (w − w₀)` to `grads` for every parameter in `scope`: the gradient of
/// `anchor/2 · ‖w − w₀‖²` over those parameters. `W`'s share costs one pass over `W` and records
/// only the blocks that moved.
pub fn add_anchor_gradient(model: &Dlrm, base: &Dlrm, scope: Scope, anchor: f32, grads: &mut Gradients) {
    add_anchor_gradient_over(model, base, scope, anchor, std::slice::from_ref(&(0..model.embedding.len())), grads)
}

/// [`add_anchor_gradient`] with `W`'s share over the slots in `ranges` (sorted, disjoint): the same
/// gradient when every slot outside them equals its base.
fn add_anchor_gradient_over(
    model: &Dlrm,
    base: &Dlrm,
    scope: Scope,
    anchor: f32,
    ranges: &[Range<usize>],
    grads: &mut Gradients,
) {
    let pull = |g: &mut [f32], w: &[f32], w0: &[f32]| {
        for ((g, &w), &w0) in g.iter_mut().zip(w).zip(w0) {
            *g += anchor * (w - w0);
        }
    };
    for (moves, gs, ws, w0s) in [
        (scope.bottom(), &mut grads.bottom, &model.bottom, &base.bottom),
        (scope.top(), &mut grads.top, &model.top, &base.top),
    ] {
        if !moves {
            continue;
        }
        for ((g, l), l0) in gs.iter_mut().zip(ws).zip(w0s) {
            pull(slice_mut(&mut g.weight), slice(&l.weight), slice(&l0.weight));
            pull(g.bias.as_slice_mut().expect("standard layout"), slice1(&l.bias), slice1(&l0.bias));
        }
    }
    if !scope.embeddings() {
        return;
    }
    let (w, w0) = (&model.embedding, &base.embedding);
    let z = grads.embedding.block_len().max(1);
    grads.embedding.add_by_parts(|part| {
        let slots = part.range();
        let mut diff = vec![0.0f32; z];
        for r in ranges {
            let (lo, hi) = (r.start.max(slots.start), r.end.min(slots.end));
            // Blocks of at most `z` slots: the unit in which the gradient records what it holds.
            for start in (lo..hi).step_by(z) {
                let end = (start + z).min(hi);
                if w[start..end] == w0[start..end] {
                    continue;
                }
                let diff = &mut diff[..end - start];
                diff.iter_mut().zip(&w[start..end]).zip(&w0[start..end]).for_each(|((d, &a), &b)| *d = a - b);
                part.add_block(start, anchor, diff);
            }
        }
    });
}

/// The slot ranges of `W` the rows read (every block of every value), sorted and coalesced.
fn row_blocks(model: &Dlrm, rows: &Batch) -> Vec<Range<usize>> {
    let (lookup, len) = (model.lookup(), model.embedding.len());
    let z = lookup.block_len();
    let mut starts = Vec::new();
    let mut ranges = Vec::new();
    for (f, values) in rows.fields.iter().enumerate() {
        hash_values(lookup, f, &values.values, &mut starts);
        ranges.extend(starts.iter().map(|&s| s as usize..(s as usize + z).min(len)));
    }
    coalesce(ranges)
}

/// The ranges of `w` that differ from `w0`, in chunks of 64 slots.
fn differing(w: &[f32], w0: &[f32]) -> Vec<Range<usize>> {
    const CHUNK: usize = 64;
    let ranges = (0..w.len()).step_by(CHUNK).map(|s| s..(s + CHUNK).min(w.len()));
    coalesce(ranges.filter(|r| w[r.clone()] != w0[r.clone()]).collect())
}

/// The union of two sets of sorted, disjoint ranges.
fn union(a: &[Range<usize>], b: &[Range<usize>]) -> Vec<Range<usize>> {
    coalesce(a.iter().chain(b).cloned().collect())
}

/// `ranges` sorted, with overlapping and adjacent ones merged.
pub(crate) fn coalesce(mut ranges: Vec<Range<usize>>) -> Vec<Range<usize>> {
    ranges.sort_unstable_by_key(|r| r.start);
    let mut out: Vec<Range<usize>> = Vec::with_capacity(ranges.len());
    for r in ranges.into_iter().filter(|r| !r.is_empty()) {
        match out.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => out.push(r),
        }
    }
    out
}

/// Whether every parameter a call in `scope` can change is finite: `W` in `ranges` and the MLPs
/// the scope moves.
fn finite(model: &Dlrm, scope: Scope, ranges: &[Range<usize>]) -> bool {
    let layers_finite = |ls: &[Linear]| ls.iter().all(|l| l.weight.iter().chain(&l.bias).all(|x| x.is_finite()));
    ranges.iter().all(|r| model.embedding[r.clone()].iter().all(|x| x.is_finite()))
        && (!scope.bottom() || layers_finite(&model.bottom))
        && (!scope.top() || layers_finite(&model.top))
}

fn slice(a: &ndarray::Array2<f32>) -> &[f32] {
    a.as_slice().expect("standard layout")
}
fn slice_mut(a: &mut ndarray::Array2<f32>) -> &mut [f32] {
    a.as_slice_mut().expect("standard layout")
}
fn slice1(a: &ndarray::Array1<f32>) -> &[f32] {
    a.as_slice().expect("standard layout")
}

/// What a call may change, as it was before the call: `W` and its optimizer state in the call's
/// ranges, the MLPs in scope, the optimizer's MLP state, step count and rate.
struct Undo {
    ranges: Vec<Range<usize>>,
    /// Range after range: `W`'s values, then each optimizer buffer's of `W`.
    embedding: Vec<f32>,
    bottom: Option<Vec<Linear>>,
    top: Option<Vec<Linear>>,
    /// Each optimizer buffer of the MLP tensors (`W`'s is in `embedding`).
    mlp_state: Vec<Vec<Vec<f32>>>,
    step: u64,
    lr: f32,
}

impl Undo {
    fn take(model: &Dlrm, opt: &Optimizer, scope: Scope, ranges: &[Range<usize>]) -> Self {
        let buffers = opt.state_buffers();
        let mut embedding = Vec::with_capacity(ranges.iter().map(|r| r.len()).sum::<usize>() * (1 + buffers.len()));
        for r in ranges {
            embedding.extend_from_slice(&model.embedding[r.clone()]);
            for b in &buffers {
                embedding.extend_from_slice(&b[0][r.clone()]);
            }
        }
        Undo {
            ranges: ranges.to_vec(),
            embedding,
            bottom: scope.bottom().then(|| model.bottom.clone()),
            top: scope.top().then(|| model.top.clone()),
            mlp_state: buffers.iter().map(|b| b[1..].to_vec()).collect(),
            step: opt.step,
            lr: opt.lr,
        }
    }

    fn restore(self, model: &mut Dlrm, opt: &mut Optimizer) {
        let mut buffers = opt.state_buffers_mut();
        let mut at = 0;
        let mut take = |n: usize| {
            at += n;
            &self.embedding[at - n..at]
        };
        for r in &self.ranges {
            model.embedding[r.clone()].copy_from_slice(take(r.len()));
            for b in buffers.iter_mut() {
                b[0][r.clone()].copy_from_slice(take(r.len()));
            }
        }
        for (b, mlp) in buffers.iter_mut().zip(self.mlp_state) {
            b.truncate(1);
            b.extend(mlp);
        }
        if let Some(b) = self.bottom {
            model.bottom = b;
        }
        if let Some(t) = self.top {
            model.top = t;
        }
        opt.step = self.step;
        opt.lr = self.lr;
    }
}

/// The provenance of a model personalized on the device: the base file's provenance with
/// `on_device: { base_digest, updates }`. A base that was itself personalized keeps its original
/// base digest, and its updates are added, so a saved, reloaded and further trained model still
/// names the model it started from.
pub fn personalized_provenance(base: &serde_json::Value, base_digest: Option<&str>, updates: u64) -> serde_json::Value {
    use serde_json::{Value, json};
    let mut prov = match base {
        Value::Object(_) => base.clone(),
        Value::Null => json!({}),
        other => json!({ "base": other }),
    };
    let earlier = prov.get("on_device");
    let digest = earlier.and_then(|e| e.get("base_digest")).cloned().unwrap_or_else(|| json!(base_digest));
    let before = earlier.and_then(|e| e.get("updates")).and_then(Value::as_u64).unwrap_or(0);
    prov["on_device"] = json!({ "base_digest": digest, "updates": before + updates });
    prov
}
