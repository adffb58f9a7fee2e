//! `pocketrec eval`: AUC, logloss, calibration and speed of a model file on labelled data.

use crate::cli::common::{model_columns, open_for_model};
use crate::cli::verify::VerifyArgs;
use anyhow::{Context as _, Result};
use clap::Args as ClapArgs;
use pocketrec_trainer::data::LoaderOptions;
use pocketrec_trainer::train::evaluate;
use std::path::PathBuf;
use std::time::Instant;

#[derive(ClapArgs)]
pub struct Args {
    /// Model file (safetensors)
    #[arg(long)]
    pub model: PathBuf,
    /// Labelled data: Criteo TSV or schema TSV, plain or gzip; "-" reads stdin. A model trained on
    /// a mapped CSV/TSV reads data with the same header, mapped as in training
    #[arg(long)]
    pub data: String,
    #[arg(long, default_value_t = 0)]
    pub skip_rows: usize,
    #[arg(long)]
    pub max_rows: Option<usize>,
    /// Print one JSON object instead of text
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub verify: VerifyArgs,
}

pub fn run(args: Args) -> Result<()> {
    let bytes = std::fs::read(&args.model).with_context(|| format!("reading {}", args.model.display()))?;
    let file = args.verify.read(&bytes).with_context(|| format!("loading {}", args.model.display()))?;
    let opts = LoaderOptions {
        batch_size: 4096,
        skip_rows: args.skip_rows,
        max_rows: args.max_rows,
        columns: model_columns(&file.provenance)?,
        ..LoaderOptions::default()
    };
    let mut stream = open_for_model(&args.data, opts, &file.model.config)?;
    let start = Instant::now();
    let e = evaluate(&file.model, stream.as_mut())?;
    let secs = start.elapsed().as_secs_f64();
    let rows_per_s = e.rows as f64 / secs.max(1e-9);
    if args.json {
        println!("{}", serde_json::json!({ "eval": e, "seconds": secs, "rows_per_s": rows_per_s }));
    } else {
        println!("rows        {}", e.rows);
        println!("AUC         {:.4}", e.auc);
        println!("logloss     {:.4}", e.logloss);
        println!("calibration mean prediction {:.4} vs click rate {:.4}", e.mean_prediction, e.click_rate);
        println!("speed       {rows_per_s:.0} rows/s ({secs:.2} s, parsing included)");
    }
    Ok(())
}
