//! The pocketrec trainer: streaming data readers, synthetic data, the training loop, evaluation
//! and benchmarks, over the `pocketrec` model library. The `pocketrec` binary (`main.rs`, `cli/`)
//! is a thin command-line layer over these modules.

pub mod checkpoint;
pub mod data;
pub mod demo;
pub mod io;
pub mod logreg;
pub mod metrics;
pub mod personalize;
pub mod progress;
pub mod serve;
pub mod train;
pub mod vocab;

/// A count with its noun, plural unless the count is 1: `count(1, "step")` is "1 step",
/// `count(3, "batch")` is "3 batches". Every count the CLI prints goes through here.
pub fn count(n: u64, noun: &str) -> String {
    let plural = match n {
        1 => "",
        _ if noun.ends_with(['s', 'x']) || noun.ends_with("ch") || noun.ends_with("sh") => "es",
        _ => "s",
    };
    format!("{n} {noun}{plural}")
}

/// A file of the real test data in `../shared/data` beside the repository (never copied into it), or under
/// `$POCKETREC_SHARED_DATA`; `None` when absent, so tests and benchmarks skip with a message.
/// The checkout is `trainer/..`; a git worktree may sit one level deeper.
pub fn shared_data(rel: &str) -> Option<std::path::PathBuf> {
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let env = std::env::var_os("POCKETREC_SHARED_DATA").map(std::path::PathBuf::from);
    env.into_iter()
        .chain(["../../shared/data", "../../../shared/data"].iter().map(|up| manifest.join(up)))
        .map(|dir| dir.join(rel))
        .find(|p| p.exists())
}

/// [`shared_data`] for a test that needs the file. When it is absent the test fails in CI
/// (`CI=true`), so CI cannot pass by skipping the real-data checks; elsewhere this says loudly
/// that `test` skipped and returns `None` (the test returns).
pub fn shared_data_for_test(rel: &str, test: &str) -> Option<std::path::PathBuf> {
    let found = shared_data(rel);
    if found.is_none() {
        let msg = format!("{test}: ../shared/data/{rel} is absent (or point POCKETREC_SHARED_DATA at the data)");
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{msg}; CI=true needs the real data");
        }
        eprintln!("\n*** SKIPPED {msg}; the real-data checks did not run ***\n");
    }
    found
}

#[cfg(test)]
mod tests {
    #[test]
    fn counts_are_plural_unless_one() {
        assert_eq!(super::count(1, "step"), "1 step");
        assert_eq!(super::count(0, "step"), "0 steps");
        assert_eq!(super::count(2, "bad line"), "2 bad lines");
        assert_eq!(super::count(3, "batch"), "3 batches");
    }
}
