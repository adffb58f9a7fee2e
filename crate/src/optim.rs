//! Optimizers. The shared array `W` is updated sparsely: only the slots with a non-zero gradient
//! this step. For SGD and Adagrad that is exactly the dense update (a slot with gradient 0 does not
//! move); Adam on `W` is the lazy variant (moments of other slots are not decayed), as PyTorch's
//! SparseAdam. The MLPs are updated densely.
//!
//! SGD without momentum at a constant rate is the authors' setting; Adagrad and Adam are offered
//! because they converge in fewer steps on hashed embeddings, and are measured against it.

use crate::cpu::Gradients;
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
        let gs = grads.bottom.iter().chain(&grads.top).flat_map(|l| {
            [l.weight.as_slice().expect("standard layout"), l.bias.as_slice().expect("standard layout")]
        });
        let jobs: Vec<_> = params.zip(gs).zip(mlp_states(first)).zip(mlp_states(second)).collect();
        let dense = |(((p, g), s1), s2): (((&mut [f32], &[f32]), Option<&mut [f32]>), Option<&mut [f32]>)| {
            match (kind, s1, s2) {
                (OptimizerKind::Sgd, _, _) => p.iter_mut().zip(g).for_each(|(p, g)| *p -= lr * g),
                (OptimizerKind::Adagrad, Some(acc), _) => {
                    for ((p, g), a) in p.iter_mut().zip(g).zip(acc) {
                        *a += g * g;
                        *p -= lr * g / (a.sqrt() + ADAGRAD_EPS);
                    }
                }
                (OptimizerKind::Adam, Some(m), Some(v)) => {
                    for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m).zip(v) {
                        adam_update(p, g, m, v, adam_lr);
                    }
                }
                _ => unreachable!("state buffers match the optimizer"),
            }
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
