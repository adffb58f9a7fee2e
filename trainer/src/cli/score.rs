//! `pocketrec score`: batch inference, one click probability per input row, in input order. It is
//! also the native reference the browser tests compare the wasm engine against.

use crate::cli::verify::VerifyArgs;
use anyhow::{Context as _, bail};
use pocketrec::backend::{BackendChoice, Scorer};
use pocketrec::passes::sigmoid;
use pocketrec_trainer::data::{Loader, LoaderOptions};
use std::io::Write;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Model file (safetensors) written by `pocketrec train`.
    #[arg(long)]
    model: PathBuf,
    /// Rows to score: Criteo TSV or schema TSV (header line), plain or gzip; "-" reads stdin.
    /// The label column is read but not used.
    #[arg(long)]
    data: String,
    /// cpu, gpu (wgpu: Vulkan, Metal or DX12) or auto (gpu when an adapter exists).
    #[arg(long, default_value = "cpu")]
    backend: String,
    #[arg(long, default_value_t = 4096)]
    batch: usize,
    /// Output: one probability per line.
    #[arg(short = 'o', long)]
    out: PathBuf,
    #[command(flatten)]
    verify: VerifyArgs,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let bytes = std::fs::read(&a.model).with_context(|| format!("reading {}", a.model.display()))?;
    let file = a
        .verify
        .read(&bytes)
        .with_context(|| format!("loading {}", a.model.display()))?;
    let choice: BackendChoice = a.backend.parse().map_err(|e| anyhow::anyhow!("--backend: {e}"))?;
    let opts = LoaderOptions { batch_size: a.batch.max(1), shuffle_buffer: 0, seed: 0, strict: true, skip_rows: 0, max_rows: None };
    let mut loader = Loader::open(&a.data, opts)?;
    let cfg = &file.model.config;
    let schema = loader.schema();
    if schema.dense != cfg.dense || schema.fields != cfg.fields {
        bail!(
            "{} does not match the model's schema: the data has dense {:?} and fields {:?}, the model {:?} and {:?}",
            a.data,
            schema.dense,
            schema.fields.iter().map(|f| &f.name).collect::<Vec<_>>(),
            cfg.dense,
            cfg.fields.iter().map(|f| &f.name).collect::<Vec<_>>()
        );
    }
    let mut scorer = pollster::block_on(Scorer::new(file.model, choice))?;
    eprintln!("scoring on {} ({})", scorer.backend_name(), scorer.backend_reason());
    let out = std::fs::File::create(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let mut w = std::io::BufWriter::new(out);
    let mut rows = 0usize;
    while let Some(mut batch) = loader.next_batch()? {
        batch.labels.clear();
        for z in pollster::block_on(scorer.logits(&batch))? {
            writeln!(w, "{}", sigmoid(z))?;
        }
        rows += batch.rows;
    }
    w.flush().with_context(|| format!("writing {}", a.out.display()))?;
    eprintln!("{rows} rows scored -> {}", a.out.display());
    Ok(())
}
