//! Optimizers. The shared array `W` is updated sparsely: only the slots with a non-zero gradient
//! this step. For SGD and Adagrad that is exactly the dense update (a slot with gradient 0 does not
//! move); Adam on `W` is the lazy variant (moments of other slots are not decayed), as PyTorch's
//! SparseAdam. The MLPs are updated densely.
//!
//! SGD without momentum at a constant rate is the authors' setting; Adagrad and Adam are offered
//! because they converge in fewer steps on hashed embeddings, and are measured against it.

use crate::file::EMBEDDING_TENSOR;
use crate::model::Dlrm;
use crate::par;
use crate::passes::Gradients;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OptimizerKind {
    Sgd,
    Adagrad,
    Adam,
}

impl std::str::FromStr for OptimizerKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "sgd" => Ok(OptimizerKind::Sgd),
            "adagrad" => Ok(OptimizerKind::Adagrad),
            "adam" => Ok(OptimizerKind::Adam),
            _ => Err(format!("unknown optimizer {s:?}: use sgd, adagrad or adam")),
        }
    }
}

const ADAGRAD_EPS: f32 = 1e-8;
const ADAM_BETAS: (f32, f32) = (0.9, 0.999);
const ADAM_EPS: f32 = 1e-8;

/// An optimizer's state, per parameter tensor in [`tensor_names`] order (`W`, then each layer's
/// weight and bias, bottom first). The variant is the optimizer, so a state cannot hold the wrong
/// number of buffers.
#[derive(Clone, Debug, PartialEq)]
pub enum OptimizerState {
    Sgd,
    /// The sum of squared gradients of every tensor.
    Adagrad {
        sum_sq: Vec<Vec<f32>>,
    },
    /// The first and second moments of every tensor.
    Adam {
        m: Vec<Vec<f32>>,
        v: Vec<Vec<f32>>,
    },
}

/// One tensor's share of an [`OptimizerState`], as its update needs it.
enum TensorState<'a> {
    Sgd,
    Adagrad(&'a mut [f32]),
    Adam(&'a mut [f32], &'a mut [f32]),
}

impl OptimizerState {
    /// A zero state of `kind` for `model`.
    pub fn zeros(kind: OptimizerKind, model: &Dlrm) -> Self {
        let zeros = || -> Vec<Vec<f32>> {
            std::iter::once(model.embedding.len())
                .chain(model.layers().flat_map(|l| [l.weight.len(), l.bias.len()]))
                .map(|n| vec![0.0; n])
                .collect()
        };
        match kind {
            OptimizerKind::Sgd => OptimizerState::Sgd,
            OptimizerKind::Adagrad => OptimizerState::Adagrad { sum_sq: zeros() },
            OptimizerKind::Adam => OptimizerState::Adam { m: zeros(), v: zeros() },
        }
    }

    pub fn kind(&self) -> OptimizerKind {
        match self {
            OptimizerState::Sgd => OptimizerKind::Sgd,
            OptimizerState::Adagrad { .. } => OptimizerKind::Adagrad,
            OptimizerState::Adam { .. } => OptimizerKind::Adam,
        }
    }

    /// Each kind of buffer with its checkpoint prefix: one buffer per tensor.
    fn buffers(&self) -> Vec<(&'static str, &Vec<Vec<f32>>)> {
        match self {
            OptimizerState::Sgd => vec![],
            OptimizerState::Adagrad { sum_sq } => vec![("sum_sq", sum_sq)],
            OptimizerState::Adam { m, v } => vec![("m", m), ("v", v)],
        }
    }

    fn buffers_mut(&mut self) -> Vec<(&'static str, &mut Vec<Vec<f32>>)> {
        match self {
            OptimizerState::Sgd => vec![],
            OptimizerState::Adagrad { sum_sq } => vec![("sum_sq", sum_sq)],
            OptimizerState::Adam { m, v } => vec![("m", m), ("v", v)],
        }
    }

    /// Every tensor's share, for `n` tensors.
    fn per_tensor(&mut self, n: usize) -> Vec<TensorState<'_>> {
        match self {
            OptimizerState::Sgd => (0..n).map(|_| TensorState::Sgd).collect(),
            OptimizerState::Adagrad { sum_sq } => sum_sq.iter_mut().map(|a| TensorState::Adagrad(a)).collect(),
            OptimizerState::Adam { m, v } => m.iter_mut().zip(v).map(|(m, v)| TensorState::Adam(m, v)).collect(),
        }
    }
}

/// An optimizer with its state.
#[derive(Clone, Debug)]
pub struct Optimizer {
    pub lr: f32,
    /// Steps taken (Adam's bias correction, and the checkpoint position).
    pub step: u64,
    pub state: OptimizerState,
}

impl Optimizer {
    pub fn new(kind: OptimizerKind, lr: f32, model: &Dlrm) -> Self {
        Optimizer { lr, step: 0, state: OptimizerState::zeros(kind, model) }
    }

    pub fn kind(&self) -> OptimizerKind {
        self.state.kind()
    }

    /// Each kind of state buffer (none for SGD, the sums of squares for Adagrad, both moments for
    /// Adam), each one buffer per tensor in [`tensor_names`] order.
    pub fn state_buffers(&self) -> Vec<&Vec<Vec<f32>>> {
        self.state.buffers().into_iter().map(|(_, b)| b).collect()
    }

    /// [`Optimizer::state_buffers`], writable.
    pub fn state_buffers_mut(&mut self) -> Vec<&mut Vec<Vec<f32>>> {
        self.state.buffers_mut().into_iter().map(|(_, b)| b).collect()
    }

    /// The state buffers with their checkpoint names (`sum_sq.robe.weight`, `m.top.0.bias`...),
    /// in a fixed order.
    pub fn named_state(&self, model: &Dlrm) -> Vec<(String, &[f32])> {
        let tensors = tensor_names(model);
        let buffers = self.state.buffers();
        let named = buffers
            .into_iter()
            .flat_map(|(p, bufs)| tensors.iter().zip(bufs).map(move |(t, b)| (format!("{p}.{t}"), &b[..])));
        named.collect()
    }

    /// [`Optimizer::named_state`], writable (to restore a checkpoint).
    pub fn named_state_mut(&mut self, model: &Dlrm) -> Vec<(String, &mut Vec<f32>)> {
        let tensors = tensor_names(model);
        let buffers = self.state.buffers_mut();
        let named = buffers
            .into_iter()
            .flat_map(|(p, bufs)| tensors.iter().zip(bufs).map(move |(t, b)| (format!("{p}.{t}"), b)));
        named.collect()
    }

    /// Applies one step of `grads` to `model`; leaves the embedding gradient cleared.
    pub fn apply(&mut self, model: &mut Dlrm, grads: &mut Gradients) {
        self.apply_summed(model, grads, &[]);
    }

    /// [`Optimizer::apply`] with the MLP gradients of `more` added to `grads`' on the fly (the
    /// shards of a data-parallel step; their `W` gradients are not read), which saves a pass over
    /// every MLP gradient per shard.
    pub fn apply_summed(&mut self, model: &mut Dlrm, grads: &mut Gradients, more: &[&Gradients]) {
        self.step += 1;
        let n_tensors = 1 + 2 * (model.bottom.len() + model.top.len());
        let (b1, b2) = ADAM_BETAS;
        let t = self.step as i32;
        let lr = self.lr;
        let adam_lr = lr * (1.0 - b2.powi(t)).sqrt() / (1.0 - b1.powi(t));
        let mut states = self.state.per_tensor(n_tensors).into_iter();

        // Sparse W update: each slot with a gradient, once, slot ranges in parallel.
        let w = &mut model.embedding[..];
        match states.next().expect("W's state comes first") {
            TensorState::Sgd => grads.embedding.drain_into([w], |[w], i, g| w[i] -= lr * g),
            TensorState::Adagrad(acc) => {
                grads.embedding.drain_into([w, acc], |[w, acc], i, g| adagrad_update(&mut w[i], g, &mut acc[i], lr))
            }
            TensorState::Adam(m, v) => grads
                .embedding
                .drain_into([w, m, v], |[w, m, v], i, g| adam_update(&mut w[i], g, &mut m[i], &mut v[i], adam_lr)),
        }

        // Dense MLP updates, one tensor per task.
        let params = model.bottom.iter_mut().chain(model.top.iter_mut()).flat_map(|l| {
            [l.weight.as_slice_mut().expect("standard layout"), l.bias.as_slice_mut().expect("standard layout")]
        });
        let mut gs: Vec<Vec<&[f32]>> = mlp_grads(grads).into_iter().map(|g| vec![g]).collect();
        for other in more {
            for (sum, g) in gs.iter_mut().zip(mlp_grads(other)) {
                sum.push(g);
            }
        }
        let jobs: Vec<_> = params.zip(gs).zip(states).collect();
        par::for_each(jobs, |((p, g), mut state)| {
            for_each_summed(&g, |at, g| {
                let p = &mut p[at..at + g.len()];
                match &mut state {
                    TensorState::Sgd => p.iter_mut().zip(g).for_each(|(p, g)| *p -= lr * g),
                    TensorState::Adagrad(acc) => {
                        for ((p, &g), a) in p.iter_mut().zip(g).zip(&mut acc[at..]) {
                            adagrad_update(p, g, a, lr);
                        }
                    }
                    TensorState::Adam(m, v) => {
                        for (((p, &g), m), v) in p.iter_mut().zip(g).zip(&mut m[at..]).zip(&mut v[at..]) {
                            adam_update(p, g, m, v, adam_lr);
                        }
                    }
                }
            })
        });
    }
}

/// Every MLP tensor's gradient, in optimizer order.
fn mlp_grads(g: &Gradients) -> Vec<&[f32]> {
    g.bottom
        .iter()
        .chain(&g.top)
        .flat_map(|l| [l.weight.as_slice().expect("standard layout"), l.bias.as_slice().expect("standard layout")])
        .collect()
}

/// Calls `f(at, g)` over consecutive chunks of the sum of `parts` (equal lengths), `at` being the
/// chunk's offset; with one part, its own chunks, with no copy.
fn for_each_summed(parts: &[&[f32]], mut f: impl FnMut(usize, &[f32])) {
    const CHUNK: usize = 1024;
    let [first, rest @ ..] = parts else { return };
    if rest.is_empty() {
        return f(0, first);
    }
    let mut sum = [0.0f32; CHUNK];
    for at in (0..first.len()).step_by(CHUNK) {
        let n = CHUNK.min(first.len() - at);
        let sum = &mut sum[..n];
        sum.copy_from_slice(&first[at..at + n]);
        for part in rest {
            sum.iter_mut().zip(&part[at..at + n]).for_each(|(s, g)| *s += g);
        }
        f(at, sum);
    }
}

#[inline]
fn adagrad_update(p: &mut f32, g: f32, acc: &mut f32, lr: f32) {
    *acc += g * g;
    *p -= lr * g / (acc.sqrt() + ADAGRAD_EPS);
}

#[inline]
fn adam_update(p: &mut f32, g: f32, m: &mut f32, v: &mut f32, lr_t: f32) {
    let (b1, b2) = ADAM_BETAS;
    *m = b1 * *m + (1.0 - b1) * g;
    *v = b2 * *v + (1.0 - b2) * g * g;
    *p -= lr_t * *m / (v.sqrt() + ADAM_EPS);
}

/// Names of the model's tensors in the model file, in optimizer order.
pub fn tensor_names(model: &Dlrm) -> Vec<String> {
    let mut names = vec![EMBEDDING_TENSOR.to_string()];
    for (part, n) in [("bottom", model.bottom.len()), ("top", model.top.len())] {
        for k in 0..n {
            names.push(format!("{part}.{k}.weight"));
            names.push(format!("{part}.{k}.bias"));
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::for_each_summed;

    #[test]
    fn summed_chunks_cover_every_entry_once() {
        let parts: Vec<Vec<f32>> = (0..3).map(|p| (0..2500).map(|i| (i * (p + 1)) as f32).collect()).collect();
        let refs: Vec<&[f32]> = parts.iter().map(|p| &p[..]).collect();
        for n in 1..=3 {
            let mut seen = vec![f32::NAN; 2500];
            for_each_summed(&refs[..n], |at, g| seen[at..at + g.len()].copy_from_slice(g));
            let want: Vec<f32> = (0..2500).map(|i| (1..=n).map(|p| (i * p) as f32).sum()).collect();
            assert_eq!(seen, want, "{n} parts");
        }
    }
}
