//! Optimizers. The shared array `W` is updated sparsely: only the slots with a non-zero gradient
//! this step. For SGD and Adagrad that is exactly the dense update (a slot with gradient 0 does not
//! move); Adam on `W` is the lazy variant (moments of other slots are not decayed), as PyTorch's
//! SparseAdam. The MLPs are updated densely.
//!
//! SGD without momentum at a constant rate is the authors' setting; Adagrad and Adam are offered
//! because they converge in fewer steps on hashed embeddings, and are measured against it.

use crate::passes::Gradients;
use crate::model::Dlrm;
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

/// An optimizer with its state: one buffer per parameter tensor for Adagrad (sum of squares),
/// two for Adam (first and second moments). Tensor order: `W`, then each layer's weight and bias,
/// bottom first.
#[derive(Clone, Debug)]
pub struct Optimizer {
    pub kind: OptimizerKind,
    pub lr: f32,
    /// Steps taken (Adam's bias correction, and the checkpoint position).
    pub step: u64,
    pub state: Vec<Vec<f32>>,
}

impl Optimizer {
    pub fn new(kind: OptimizerKind, lr: f32, model: &Dlrm) -> Self {
        let sizes: Vec<usize> = std::iter::once(model.embedding.len())
            .chain(model.layers().flat_map(|l| [l.weight.len(), l.bias.len()]))
            .collect();
        let copies = match kind {
            OptimizerKind::Sgd => 0,
            OptimizerKind::Adagrad => 1,
            OptimizerKind::Adam => 2,
        };
        let state = (0..copies).flat_map(|_| sizes.iter().map(|&n| vec![0.0; n])).collect();
        Optimizer { kind, lr, step: 0, state }
    }

    /// Names of the state buffers, in order (for checkpoints).
    pub fn state_names(&self, model: &Dlrm) -> Vec<String> {
        let tensors = tensor_names(model);
        let prefixes: &[&str] = match self.kind {
            OptimizerKind::Sgd => &[],
            OptimizerKind::Adagrad => &["sum_sq"],
            OptimizerKind::Adam => &["m", "v"],
        };
        prefixes.iter().flat_map(|p| tensors.iter().map(move |t| format!("{p}.{t}"))).collect()
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
        let kind = self.kind;
        let split = n_tensors.min(self.state.len());
        let (first, second) = self.state.split_at_mut(split);

        // Sparse W update: each slot with a gradient, once, slot ranges in parallel.
        let mut w_state: Vec<&mut [f32]> = std::iter::once(&mut model.embedding[..])
            .chain(first.first_mut().map(|b| &mut b[..]))
            .chain(second.first_mut().map(|b| &mut b[..]))
            .collect();
        grads.embedding.drain_into(&mut w_state, |st, i, g| match st {
            [w] => w[i] -= lr * g,
            [w, acc] => {
                acc[i] += g * g;
                w[i] -= lr * g / (acc[i].sqrt() + ADAGRAD_EPS);
            }
            [w, m, v] => adam_update(&mut w[i], g, &mut m[i], &mut v[i], adam_lr),
            _ => unreachable!("one to three buffers per optimizer"),
        });

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
        let jobs: Vec<_> = params.zip(gs).zip(mlp_states(first)).zip(mlp_states(second)).collect();
        let dense = |(((p, g), mut s1), mut s2): MlpJob| {
            for_each_summed(&g, |at, g| {
                let p = &mut p[at..at + g.len()];
                match (kind, s1.as_deref_mut(), s2.as_deref_mut()) {
                    (OptimizerKind::Sgd, _, _) => p.iter_mut().zip(g).for_each(|(p, g)| *p -= lr * g),
                    (OptimizerKind::Adagrad, Some(acc), _) => {
                        for ((p, g), a) in p.iter_mut().zip(g).zip(&mut acc[at..]) {
                            *a += g * g;
                            *p -= lr * g / (a.sqrt() + ADAGRAD_EPS);
                        }
                    }
                    (OptimizerKind::Adam, Some(m), Some(v)) => {
                        for (((p, &g), m), v) in p.iter_mut().zip(g).zip(&mut m[at..]).zip(&mut v[at..]) {
                            adam_update(p, g, m, v, adam_lr);
                        }
                    }
                    _ => unreachable!("state buffers match the optimizer"),
                }
            });
        };
        #[cfg(feature = "parallel")]
        {
            use rayon::prelude::*;
            jobs.into_par_iter().for_each(dense);
        }
        #[cfg(not(feature = "parallel"))]
        jobs.into_iter().for_each(dense);
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

/// One MLP tensor's update: its parameters, its gradient as a sum of parts, its optimizer state.
type MlpJob<'a> = (((&'a mut [f32], Vec<&'a [f32]>), Option<&'a mut [f32]>), Option<&'a mut [f32]>);

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

/// The MLP tensors' entries of one kind of optimizer state (`None` for each when it has none).
fn mlp_states(buffers: &mut [Vec<f32>]) -> impl Iterator<Item = Option<&mut [f32]>> {
    buffers.iter_mut().skip(1).map(|v| Some(&mut v[..])).chain(std::iter::repeat_with(|| None))
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
    let mut names = vec!["robe.weight".to_string()];
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
