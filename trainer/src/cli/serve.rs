//! `pocketrec serve`: the demo page over HTTP on 127.0.0.1.

use anyhow::Context as _;
use clap::builder::RangedU64ValueParser;
use pocketrec_trainer::serve::{ServeOptions, Server};
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

#[derive(clap::Args)]
pub struct Args {
    /// Folder to serve (the repository root holds index.html).
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// Port on 127.0.0.1; 0 picks a free one.
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Worker threads: requests handled at once (more connections wait their turn).
    #[arg(long, default_value_t = ServeOptions::default().threads, value_parser = RangedU64ValueParser::<usize>::new().range(1..))]
    threads: usize,
    /// Seconds a client has from connecting to the end of its request headers.
    #[arg(long, default_value = "10", value_parser = parse_seconds)]
    header_timeout: Duration,
    /// Seconds a connection may send or take nothing before it is closed.
    #[arg(long, default_value = "10", value_parser = parse_seconds)]
    idle_timeout: Duration,
}

/// A positive number of seconds, such as 10 or 0.5.
fn parse_seconds(s: &str) -> Result<Duration, String> {
    let secs: f64 = s.trim().parse().map_err(|_| format!("{s:?} is not a number of seconds"))?;
    Duration::try_from_secs_f64(secs)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("{s:?}: give a positive number of seconds"))
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let opts = ServeOptions { threads: a.threads, header_timeout: a.header_timeout, idle_timeout: a.idle_timeout };
    let server = Server::new(&a.dir, opts).with_context(|| format!("--dir {}", a.dir.display()))?;
    let listener = std::net::TcpListener::bind(("127.0.0.1", a.port))
        .with_context(|| format!("port {} is taken; pick another with --port", a.port))?;
    let port = listener.local_addr()?.port();
    println!("serving {} at http://127.0.0.1:{port}/ (Ctrl-C stops)", server.root().display());
    std::io::stdout().flush()?;
    server.run(listener)?;
    Ok(())
}
