//! `pocketrec demo-data`: the demo world of the web page (catalog + schema-TSV training data).

use pocketrec_trainer::demo::{DemoOptions, write_demo};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Output folder for catalog.json, train.tsv and eval.tsv.
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Synthetic catalog size.
    #[arg(long, default_value_t = 10_000)]
    items: usize,
    /// Synthetic users.
    #[arg(long, default_value_t = 2_000)]
    users: usize,
    /// Synthetic positive events per user.
    #[arg(long, default_value_t = 30)]
    events_per_user: usize,
    /// Sampled negatives per positive.
    #[arg(long, default_value_t = 4)]
    negatives: usize,
    /// Use MovieLens (the ml-latest-small folder) instead of the synthetic shop.
    #[arg(long)]
    movielens: Option<PathBuf>,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let opts = DemoOptions {
        seed: a.seed,
        items: a.items,
        users: a.users,
        events_per_user: a.events_per_user,
        negatives: a.negatives,
        ..DemoOptions::default()
    };
    let s = write_demo(&a.out, &opts, a.movielens.as_deref())?;
    println!(
        "demo world in {}: {} items, {} users, {} events -> train.tsv {} rows, eval.tsv {} rows, catalog.json",
        a.out.display(),
        s.items,
        s.users,
        s.events,
        s.train_rows,
        s.eval_rows
    );
    Ok(())
}
