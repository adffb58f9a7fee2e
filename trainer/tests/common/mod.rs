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

/// A seeded xorshift64, so generated test data is the same on every run.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// Uniform in `0..n` (with the modulo's small bias).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}
