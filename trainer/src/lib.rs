//! The pocketrec trainer: streaming data readers, synthetic data, the training loop, evaluation
//! and benchmarks, over the `pocketrec` model library. The `pocketrec` binary (`main.rs`, `cli/`)
//! is a thin command-line layer over these modules.

pub mod data;
pub mod metrics;
pub mod io;
pub mod logreg;
pub mod checkpoint;
pub mod progress;
pub mod train;
pub mod vocab;
pub mod demo;
pub mod serve;

/// A file of the real test data in `../shared/data` beside the repository (never copied into it), or under
/// `$POCKETREC_SHARED_DATA`; `None` when absent, so tests and benchmarks skip with a message.
/// The checkout is `trainer/..`; a git worktree may sit one level deeper.
pub fn shared_data(rel: &str) -> Option<std::path::PathBuf> {
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let env = std::env::var_os("POCKETREC_SHARED_DATA").map(std::path::PathBuf::from);
    env.into_iter()
        .chain(["../../shared/data", "../../../shared/data"].iter().map(|up| manifest.join(up)))
        .map(|dir| dir.join(rel))
        .find(|p| p.exists())
}
