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
    /// Write the web demo's world: catalog.json plus train.tsv / eval.tsv (synthetic or MovieLens).
    DemoData(cli::demo_data::Args),
    /// Serve the web demo on 127.0.0.1 (static files, right MIME types).
    Serve(cli::serve::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result: anyhow::Result<()> = match cli.command {
        Command::Synth(args) => cli::synth::run(args),
        Command::DemoData(a) => cli::demo_data::run(a),
        Command::Serve(a) => cli::serve::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pocketrec: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
