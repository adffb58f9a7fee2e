//! Reading a model file in the subcommands that load one (inspect, eval, score): the content
//! digest is checked unless the user passes `--no-verify`, and a mismatch names that flag.

use anyhow::{Result, anyhow};
use pocketrec::file::{FileError, LoadOptions, ModelFile, from_bytes_with_options};

#[derive(clap::Args, Clone, Copy, Debug)]
pub struct VerifyArgs {
    /// Load the model even when its tensor bytes do not match the file's digest (to salvage a
    /// damaged file: the values may not be the ones that were written)
    #[arg(long)]
    pub no_verify: bool,
}

impl VerifyArgs {
    /// Parses and validates a model file, checking its digest unless `--no-verify` was given.
    pub fn read(&self, bytes: &[u8]) -> Result<ModelFile> {
        from_bytes_with_options(bytes, LoadOptions { verify_digest: !self.no_verify }).map_err(|e| match e {
            FileError::DigestMismatch { .. } => anyhow!("{e} (--no-verify loads it unchecked)"),
            e => e.into(),
        })
    }
}
