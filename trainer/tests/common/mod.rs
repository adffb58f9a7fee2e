//! Running the `pocketrec` binary from the CLI tests.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

/// `pocketrec ARGS`, its output captured.
pub fn pocketrec(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pocketrec")).args(args).output().expect("run pocketrec")
}

/// `out`, after asserting that the run succeeded (its stderr otherwise).
pub fn ok(out: Output) -> Output {
    assert!(out.status.success(), "pocketrec failed: {}", String::from_utf8_lossy(&out.stderr));
    out
}

/// A path as the `&str` an argument list takes.
pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}
