//! `pocketrec init`: a freshly initialised model (the authors' initialisation, seeded) on the
//! Criteo schema, sized by a memory budget, written atomically.

use anyhow::{Context, Result};
use clap::Args;
use pocketrec::config::{ModelConfig, Preset, StoredDtype, criteo_schema, parse_bytes};
use pocketrec::{Dlrm, HashVariant};
use std::path::PathBuf;

#[derive(Args)]
pub struct InitArgs {
    /// DLRM shapes (docs/model-file.md): kaggle, terabyte, or small (tests and demos).
    #[arg(long)]
    pub preset: Preset,
    /// Budget for all stored parameters, e.g. 10MB (10^7 bytes) or 10MiB (units in any case); sets M.
    #[arg(long, value_parser = parse_bytes)]
    pub memory: u64,
    /// ROBE-Z block length Z.
    #[arg(long, default_value_t = 4)]
    pub z: u32,
    /// Hash variant: uma-v1 (the papers' code), new-robez, or independent (a per-block multiplier)
    #[arg(long, default_value = "uma-v1")]
    pub hash: HashVariant,
    /// Stored dtype: f32 or f16 (f16 doubles M for the same budget).
    #[arg(long, default_value = "f32")]
    pub dtype: StoredDtype,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output model file (.safetensors).
    #[arg(short, long)]
    pub output: PathBuf,
}

pub fn run(args: InitArgs) -> Result<()> {
    let (dense, fields) = criteo_schema();
    let config = ModelConfig::preset(args.preset, dense, fields, args.memory, args.z, args.hash, args.dtype)
        .with_context(|| format!("--preset {} --memory {}", args.preset.name(), args.memory))?;
    let m = config.embedding_len();
    let model = Dlrm::init(config, args.seed)?;
    let provenance = serde_json::json!({
        "created_by": format!("pocketrec init {}", env!("CARGO_PKG_VERSION")),
        "preset": args.preset.name(),
        "memory": args.memory,
        "seed": args.seed,
        "steps": 0,
    });
    let bytes = pocketrec::file::to_bytes(&model, args.dtype, &provenance)?;
    pocketrec_trainer::io::write_atomic(&args.output, &bytes)?;
    let params = model.param_count() as u64;
    println!(
        "wrote {}: {} preset, M = {m}, Z = {}, {}, {}, {params} parameters ({} bytes) + header {} = {} bytes",
        args.output.display(),
        args.preset.name(),
        args.z,
        args.hash.name(),
        args.dtype.name(),
        params * args.dtype.bytes(),
        bytes.len() as u64 - params * args.dtype.bytes(),
        bytes.len()
    );
    Ok(())
}
