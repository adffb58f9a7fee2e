//! The `pocketrec` command line. Each subcommand lives in `cli/`; errors end as one line on
//! stderr and a non-zero exit status, never a panic.

mod cli;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "pocketrec", version, about = "Train and run ROBE-Z compressed DLRM recommenders")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write synthetic Criteo-format data with a planted ground truth.
    Synth(cli::synth::SynthArgs),
    /// Write a freshly initialised model sized by a memory budget.
    Init(cli::init::InitArgs),
    /// Describe a model file: config, M, Z, dtype, parameters and bytes per part.
    Inspect(cli::inspect::InspectArgs),
    /// Train a model on streamed data, evaluate it and write the model file
    Train(cli::train::Args),
    /// Eval AUC against model size: ROBE-Z at several budgets, hashed and full, as a table and a plot
    Tradeoff(cli::tradeoff::Args),
    /// AUC, logloss, calibration and speed of a model on labelled data
    Eval(cli::eval::Args),
    /// Benchmarks
    #[command(subcommand)]
    Bench(cli::bench::Bench),
    /// Write the web demo's world: catalog.json plus train.tsv / eval.tsv (synthetic or MovieLens).
    DemoData(cli::demo_data::Args),
    /// Serve the web demo on 127.0.0.1 (static files, right MIME types).
    Serve(cli::serve::Args),
    /// Score rows with a model: one click probability per input row.
    Score(cli::score::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result: anyhow::Result<()> = match cli.command {
        Command::Synth(args) => cli::synth::run(args),
        Command::Init(args) => cli::init::run(args),
        Command::Inspect(args) => cli::inspect::run(args),
        Command::Train(args) => cli::train::run(args),
        Command::Eval(args) => cli::eval::run(args),
        Command::Tradeoff(args) => cli::tradeoff::run(args),
        Command::Bench(bench) => cli::bench::run(bench),
        Command::DemoData(a) => cli::demo_data::run(a),
        Command::Serve(a) => cli::serve::run(a),
        Command::Score(a) => cli::score::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pocketrec: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
