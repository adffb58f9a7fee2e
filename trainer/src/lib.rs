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
