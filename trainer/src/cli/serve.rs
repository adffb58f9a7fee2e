//! `pocketrec serve`: the demo page over HTTP on 127.0.0.1.

use anyhow::Context as _;
use std::io::Write;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Folder to serve (the repository root holds index.html).
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// Port on 127.0.0.1; 0 picks a free one.
    #[arg(long, default_value_t = 8080)]
    port: u16,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let root = a.dir.canonicalize().with_context(|| format!("cannot serve {}", a.dir.display()))?;
    let listener = std::net::TcpListener::bind(("127.0.0.1", a.port))
        .with_context(|| format!("port {} is taken; pick another with --port", a.port))?;
    let port = listener.local_addr()?.port();
    println!("serving {} at http://127.0.0.1:{port}/ (Ctrl-C stops)", root.display());
    std::io::stdout().flush()?;
    pocketrec_trainer::serve::serve(listener, root)?;
    Ok(())
}
