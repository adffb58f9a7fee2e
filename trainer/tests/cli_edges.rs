//! The CLI's edges: options that cannot work are refused before any training (a missing --eval,
//! a budget that cannot hold the preset's MLPs, a demo model whose world is not the one the
//! personalization benchmark regenerates), and counts read as English ("1 step").

use std::path::PathBuf;
use std::process::Output;
use std::sync::OnceLock;

mod common;
use common::{ok, pocketrec, s};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pocketrec-cli-edges-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// 2,000 training and 500 evaluation rows, written once.
fn data() -> &'static (PathBuf, PathBuf) {
    static DATA: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    DATA.get_or_init(|| {
        let (train, eval) = (scratch("train.tsv"), scratch("eval.tsv"));
        ok(pocketrec(&["synth", "--rows", "2000", "--seed", "2", "--quiet", "-o", s(&train)]));
        ok(pocketrec(&["synth", "--rows", "500", "--seed", "2", "--first-row", "2000", "--quiet", "-o", s(&eval)]));
        (train, eval)
    })
}

fn failure(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "expected a failure; stderr: {stderr}");
    assert!(stderr.starts_with("pocketrec: error: "), "{stderr}");
    stderr
}

#[test]
fn tradeoff_refuses_missing_eval_data_and_small_budgets_before_training() {
    let (train, eval) = data();
    let out_dir = scratch("tradeoff-no-eval");
    let out = pocketrec(&["tradeoff", "--train", s(train), "--preset", "small", "--out-dir", s(&out_dir), "--quiet"]);
    assert!(failure(&out).contains("give --eval"));
    assert!(!out_dir.exists(), "tradeoff wrote {} before failing", out_dir.display());

    // 10MB fits the kaggle MLPs (1.9 MB), 1MB does not: nothing trains, not even the 10MB model.
    let out_dir = scratch("tradeoff-small-budget");
    let args = ["tradeoff", "--train", s(train), "--eval", s(eval), "--preset", "kaggle", "--budgets", "10MB,1mb"];
    let out = pocketrec(&[&args[..], &["--baselines", "false", "--out-dir", s(&out_dir), "--quiet"]].concat());
    let stderr = failure(&out);
    assert!(stderr.contains("robe 1MB: --budgets 1000000: ") && stderr.contains("raise the memory budget"), "{stderr}");
    assert!(!out_dir.exists(), "tradeoff trained before failing: {stderr}");
}

#[test]
fn train_refuses_eval_every_without_eval_data_before_training() {
    let (train, _) = data();
    let model = scratch("no-eval.safetensors");
    let args = ["train", "--train", s(train), "--preset", "small", "--memory", "200KB", "--eval-every", "500"];
    let out = pocketrec(&[&args[..], &["--quiet", "-o", s(&model)]].concat());
    assert!(failure(&out).contains("--eval-every needs evaluation data: give --eval"));
    assert!(!model.exists());
}

#[test]
fn one_step_is_one_step() {
    let (train, _) = data();
    let model = scratch("one-step.safetensors");
    let out = ok(pocketrec(&[
        "train",
        "--train",
        s(train),
        "--preset",
        "small",
        "--memory",
        "200KB",
        "--batch",
        "256",
        "--max-steps",
        "1",
        "--quiet",
        "-o",
        s(&model),
    ]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("trained 1 step, 256 samples"), "{stderr}");
}

#[test]
fn bench_personalize_refuses_a_model_of_another_world() {
    let dir = scratch("personalize");
    let args = ["demo-data", "--out", s(&dir), "--items", "300", "--users", "20", "--events-per-user", "5"];
    ok(pocketrec(&args));
    let model = dir.join("model.safetensors");
    let train = dir.join("train.tsv");
    ok(pocketrec(&[
        "train",
        "--train",
        s(&train),
        "--preset",
        "small",
        "--memory",
        "200KB",
        "--quiet",
        "-o",
        s(&model),
    ]));
    // catalog.json beside the model is a 300-item world, not the default 10,000-item one.
    let out = pocketrec(&["bench", "personalize", "--model", s(&model), "--users", "2"]);
    let stderr = failure(&out);
    assert!(stderr.contains("is not the synthetic demo world of seed 7 with 10000 items"), "{stderr}");
    assert!(stderr.contains("make demo-model"), "{stderr}");
    // Given its world, it runs and reports each variant.
    let args = ["bench", "personalize", "--model", s(&model), "--items", "300", "--users", "3", "--at", "1,2"];
    let stdout = String::from_utf8(ok(pocketrec(&args)).stdout).unwrap();
    for variant in ["(a) base model", "(b) learning, scope all", "(c) learning, scope top", "(b) without diversity"] {
        assert!(stdout.contains(variant), "{variant} missing from:\n{stdout}");
    }
}
