//! pocketrec: a DLRM whose embedding tables are compressed by ROBE-Z parameter sharing into one
//! small array, so a ~10 MB model can be trained natively and scored in the browser.
//!
//! The core here has no I/O and no UI: the hash ([`robe`]), the configuration ([`config`]), the
//! parameters ([`model`]), batches ([`batch`]), the training forward and backward passes
//! ([`passes`]) and the scoring backends ([`backend`]).
//! The trainer and the browser bindings are thin layers over this API.

pub mod backend;
pub mod batch;
pub mod config;
pub mod diversity;
pub mod embedding;
pub mod file;
pub mod gemm;
pub mod input;
pub mod learn;
pub mod model;
pub mod optim;
mod par;
pub mod passes;
pub mod rank;
pub mod robe;
pub mod step;
#[cfg(target_arch = "wasm32")]
pub mod wasm;

pub use backend::{BackendChoice, Scorer};
pub use batch::{Batch, FieldValues};
pub use config::{DenseTransform, EmbeddingConfig, Field, FieldKind, ModelConfig, Preset, StoredDtype};
pub use diversity::Diversity;
pub use file::{DigestCheck, FileError, LoadOptions, ModelFile};
pub use learn::{LearnOptions, LearnReport, Learner, Scope};
pub use model::{Dlrm, Linear};
pub use optim::{Optimizer, OptimizerKind, OptimizerState};
pub use passes::{Gradients, Workspace};
pub use rank::{Candidates, Context, Ranked};
pub use robe::{HashVariant, KeyMode, RobeHash};
pub use step::TrainStep;

/// Everything that can go wrong in the library. Each message says what to change.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid model config: {0}")]
    Config(String),
    #[error("invalid batch: {0}")]
    Batch(String),
    #[error("invalid learning request: {0}")]
    Learn(String),
    #[error("invalid ranking request: {0}")]
    Request(String),
    /// No GPU adapter could be found (the only reason GPU tests skip).
    #[error("no WebGPU adapter: {0}")]
    NoAdapter(String),
    /// The GPU backend failed (device request, a shader, a submission or the read-back).
    #[error("GPU backend: {0}")]
    Backend(String),
    #[error("unsupported: {0}")]
    Unsupported(String),
}
