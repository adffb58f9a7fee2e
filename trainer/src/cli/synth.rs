//! `pocketrec synth`: writes synthetic Criteo-format data with a planted ground truth.

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use pocketrec_trainer::data::synth;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Args)]
pub struct SynthArgs {
    /// Number of rows to write.
    #[arg(long)]
    rows: u64,
    /// Seed of the synthetic world (its planted effects) and of its rows.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Index of the first row: rows depend only on (seed, index), so a held-out set of the same
    /// world is `--first-row` past the training rows.
    #[arg(long, default_value_t = 0)]
    first_row: u64,
    /// Also write each row's true click probability to `<out>.prob`, one per line.
    #[arg(long)]
    with_probability: bool,
    /// Output file; gzip when it ends in `.gz`.
    #[arg(short, long)]
    out: PathBuf,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

pub fn run(args: SynthArgs) -> anyhow::Result<()> {
    let start = Instant::now();
    let bar = if args.quiet { ProgressBar::hidden() } else { ProgressBar::new(args.rows) };
    bar.set_style(
        ProgressStyle::with_template("{spinner} synth [{bar:30}] {human_pos}/{human_len} rows, {per_sec}, eta {eta}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let summary = synth::write_files(&args.out, args.first_row, args.rows, args.seed, args.with_probability, |n| {
        bar.set_position(n)
    })?;
    bar.finish_and_clear();
    if !args.quiet {
        let prob = if args.with_probability { format!(" (+ {}.prob)", args.out.display()) } else { String::new() };
        eprintln!(
            "wrote {} to {}{prob} in {:.1}s",
            pocketrec_trainer::count(args.rows, "row"),
            args.out.display(),
            start.elapsed().as_secs_f64()
        );
        let ctr = summary.clicks as f64 / summary.rows.max(1) as f64;
        match summary.bayes_auc {
            Some(auc) => eprintln!("click rate {:.2}%, Bayes-optimal AUC {auc:.4}", 100.0 * ctr),
            None => eprintln!("click rate {:.2}%", 100.0 * ctr),
        }
    }
    Ok(())
}
