//! The CPU backend: [`Dlrm::forward`] for full rows and [`crate::rank`] for context-once ranking.
//! Without the `parallel` feature (wasm) it runs on one thread.

use crate::Error;
use crate::batch::Batch;
use crate::model::Dlrm;
use crate::passes::Workspace;
use crate::rank::{self, Candidates, Context, Ranked};

#[derive(Debug, Default)]
pub struct CpuBackend {
    workspace: Workspace,
}

impl CpuBackend {
    /// Logits of a validated, non-empty batch.
    pub fn logits(&mut self, model: &Dlrm, batch: &Batch) -> Vec<f32> {
        model.forward(batch, &mut self.workspace).to_vec()
    }

    /// The `k` best candidates of a request, best first.
    pub fn rank(
        &mut self,
        model: &Dlrm,
        context: &Context,
        candidates: &Candidates,
        k: usize,
    ) -> Result<Vec<Ranked>, Error> {
        rank::rank(model, context, candidates, k)
    }
}
