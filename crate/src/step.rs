//! One training step, data-parallel over the worker threads.
//!
//! The batch is cut into one shard of rows per thread. Each shard runs its forward pass and its MLP
//! backward pass on its own workspace and gradients, so the threads stay busy for the whole pass
//! instead of meeting at every layer (at small batches those meetings cost more than the work).
//! Then each thread takes one slot range of `W` and scatters every shard's embedding gradient into
//! it, in batch order; the optimizer sums the shards' MLP gradients as it takes its one step. The
//! result is the whole-batch step up to the float summation order of the MLP gradients. With one
//! thread (or without the `parallel` feature) it is the plain forward, backward and update.

use crate::batch::Batch;
use crate::model::Dlrm;
use crate::optim::Optimizer;
use crate::par;
use crate::passes::{Gradients, Workspace, bce_with_logits};

/// Fewest rows worth a shard of their own.
const MIN_SHARD_ROWS: usize = 32;

#[derive(Default)]
struct Shard {
    rows: Batch,
    ws: Workspace,
    /// The shard's MLP gradients; the first shard's also hold the batch's sums, `W`'s included.
    grads: Option<Gradients>,
    d_logits: Vec<f32>,
    /// Sum (not mean) of the shard's losses.
    loss_sum: f64,
}

/// Reusable state of [`TrainStep::step`]: per-shard rows, activations and gradients.
#[derive(Default)]
pub struct TrainStep {
    shards: Vec<Shard>,
}

impl TrainStep {
    pub fn new() -> Self {
        Self::default()
    }

    /// Forward, mean binary cross-entropy, backward and one optimizer step on a validated,
    /// labelled batch. Returns the mean loss. A loss that is not finite leaves the model and the
    /// optimizer untouched (the caller stops).
    pub fn step(&mut self, model: &mut Dlrm, opt: &mut Optimizer, batch: &Batch) -> f64 {
        self.step_with(model, opt, batch, |_, _| {})
    }

    /// [`TrainStep::step`] with a hook between the backward pass and the update: `adjust` gets the
    /// model and every shard's gradients (the first holds `W`'s; the optimizer sums the shards' MLP
    /// gradients) and may change them, e.g. freeze parameters or add a penalty's gradient.
    pub fn step_with(
        &mut self,
        model: &mut Dlrm,
        opt: &mut Optimizer,
        batch: &Batch,
        adjust: impl FnOnce(&Dlrm, &mut [&mut Gradients]),
    ) -> f64 {
        let n = shard_count(batch.rows);
        self.shards.resize_with(n, Shard::default);
        let total = batch.rows;
        let bounds: Vec<usize> = (0..=n).map(|i| i * total / n).collect();
        let model_ref: &Dlrm = model;
        par::for_each_mut(&mut self.shards, |i, shard| {
            batch.copy_rows_into(bounds[i]..bounds[i + 1], &mut shard.rows);
            let grads = shard.grads.get_or_insert_with(|| match i {
                0 => Gradients::zeros(model_ref),
                _ => Gradients::zeros_mlp(model_ref),
            });
            let rows = shard.rows.rows;
            let logits = model_ref.forward(&shard.rows, &mut shard.ws);
            shard.d_logits.resize(rows, 0.0);
            let mean = bce_with_logits(logits, &shard.rows.labels, &mut shard.d_logits);
            // The shard's share of the batch mean: scale its gradient by rows / total.
            let share = rows as f32 / total as f32;
            shard.d_logits.iter_mut().for_each(|g| *g *= share);
            shard.loss_sum = mean * rows as f64;
            model_ref.backward_mlp(&shard.rows, &mut shard.ws, &shard.d_logits, grads);
        });

        let loss = self.shards.iter().map(|s| s.loss_sum).sum::<f64>() / total as f64;
        let (first, rest) = self.shards.split_first_mut().expect("at least one shard");
        let grads = first.grads.as_mut().expect("set by the pass");
        // W's gradient: each thread takes one slot range and scatters every shard's rows into it,
        // in batch order, so no slot is written by two threads and no per-shard copy is summed.
        let (rows, ws) = (&first.rows, &first.ws);
        grads.embedding.add_by_parts(|part| {
            model_ref.scatter_embedding_grad(rows, ws, part);
            for s in rest.iter() {
                model_ref.scatter_embedding_grad(&s.rows, &s.ws, part);
            }
        });
        if loss.is_finite() {
            let mut all: Vec<&mut Gradients> =
                self.shards.iter_mut().map(|s| s.grads.as_mut().expect("set by the pass")).collect();
            adjust(model, &mut all);
            let (grads, rest) = all.split_first_mut().expect("at least one shard");
            let more: Vec<&Gradients> = rest.iter().map(|g| &**g).collect();
            opt.apply_summed(model, grads, &more);
        } else {
            grads.embedding.clear();
        }
        loss
    }
}

fn shard_count(rows: usize) -> usize {
    par::threads().min(rows / MIN_SHARD_ROWS).max(1)
}
