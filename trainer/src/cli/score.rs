//! `pocketrec score`: batch inference, one click probability per input row, in input order. It is
//! also the native reference the browser tests compare the wasm engine against.

use crate::cli::common::{model_columns, open_for_model};
use crate::cli::verify::VerifyArgs;
use anyhow::Context as _;
use pocketrec::backend::{BackendChoice, Scorer};
use pocketrec::passes::sigmoid;
use pocketrec_trainer::data::{Labels, LoaderOptions};
use std::io::Write;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Model file (safetensors) written by `pocketrec train`.
    #[arg(long)]
    model: PathBuf,
    /// Rows to score: Criteo TSV or schema TSV (header line), plain or gzip; "-" reads stdin. A
    /// model trained on a mapped CSV/TSV reads data with the same header (the label and ignored
    /// columns may be left out), mapped as in training.
    /// The label column is optional: a row one column short of a labelled row (39 columns for
    /// Criteo, the header's feature columns for a schema TSV) has none, and a schema header may
    /// leave out `label`. Labels are not used. Scoring stops at the first malformed row, since
    /// every row gets its line of output.
    #[arg(long)]
    data: String,
    /// cpu, gpu (wgpu: Vulkan, Metal or DX12) or auto (gpu when an adapter exists).
    #[arg(long, default_value = "cpu")]
    backend: String,
    #[arg(long, default_value_t = 4096)]
    batch: usize,
    /// Output: one probability per line; "-" writes to stdout. A file is written atomically: a
    /// failed run leaves an existing file untouched
    #[arg(short = 'o', long)]
    out: PathBuf,
    #[command(flatten)]
    verify: VerifyArgs,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let bytes = std::fs::read(&a.model).with_context(|| format!("reading {}", a.model.display()))?;
    let file = a.verify.read(&bytes).with_context(|| format!("loading {}", a.model.display()))?;
    let choice: BackendChoice = a.backend.parse().map_err(|e| anyhow::anyhow!("--backend: {e}"))?;
    let opts = LoaderOptions {
        batch_size: a.batch.max(1),
        strict: true,
        labels: Labels::Optional,
        columns: model_columns(&file.provenance)?,
        ..LoaderOptions::default()
    };
    let mut stream = open_for_model(&a.data, opts, &file.model.config)?;
    let mut scorer = pollster::block_on(Scorer::new(file.model, choice))?;
    eprintln!("scoring on {} ({})", scorer.backend_name(), scorer.backend_reason());
    let mut w = pocketrec_trainer::io::Output::create(&a.out)?;
    let mut rows = 0usize;
    while let Some(mut batch) = stream.next_batch()? {
        batch.labels.clear();
        for z in pollster::block_on(scorer.logits(&batch))? {
            writeln!(w, "{}", sigmoid(z))?;
        }
        rows += batch.rows;
    }
    w.finish().with_context(|| format!("writing {}", a.out.display()))?;
    let to = if a.out.as_os_str() == "-" { "standard output".into() } else { a.out.display().to_string() };
    eprintln!("{rows} rows scored -> {to}");
    Ok(())
}
