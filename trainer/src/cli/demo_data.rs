//! `pocketrec demo-data`: the demo world of the web page (catalog + schema-TSV training data).

use clap::builder::RangedU64ValueParser;
use pocketrec_trainer::count;
use pocketrec_trainer::demo::{DemoOptions, MAX_ITEMS, write_demo};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Output folder for catalog.json, train.tsv and eval.tsv.
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Synthetic catalog size.
    #[arg(long, default_value_t = 10_000, value_parser = RangedU64ValueParser::<usize>::new().range(1..=MAX_ITEMS as u64))]
    items: usize,
    /// Synthetic users.
    #[arg(long, default_value_t = 2_000, value_parser = RangedU64ValueParser::<usize>::new().range(1..))]
    users: usize,
    /// Synthetic positive events per user.
    #[arg(long, default_value_t = 30, value_parser = RangedU64ValueParser::<usize>::new().range(1..))]
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
    let n = |k: usize, noun: &str| count(k as u64, noun);
    println!(
        "demo world in {}: {}, {}, {} -> train.tsv {}, eval.tsv {}, catalog.json",
        a.out.display(),
        n(s.items, "item"),
        n(s.users, "user"),
        n(s.events, "event"),
        n(s.train_rows, "row"),
        n(s.eval_rows, "row")
    );
    Ok(())
}
