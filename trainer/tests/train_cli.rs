//! `pocketrec synth -> train -> eval` end to end on planted synthetic data: the model learns (AUC
//! above a floor, below the Bayes-optimal AUC), resume is bit-identical, divergence stops cleanly
//! and keeps the last good checkpoint, and the baselines run through the same code.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;

mod common;
use common::{ok, pocketrec, s};

fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pocketrec-train-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// 60k training rows and 20k held-out rows of the same synthetic world, written once.
fn data() -> &'static (PathBuf, PathBuf) {
    static DATA: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    DATA.get_or_init(|| {
        let dir = scratch();
        let (train, eval) = (dir.join("train.tsv"), dir.join("eval.tsv"));
        ok(pocketrec(&["synth", "--rows", "60000", "--seed", "5", "--quiet", "-o", s(&train)]));
        let eval_args = ["synth", "--rows", "20000", "--seed", "5", "--first-row", "60000", "--with-probability"];
        ok(pocketrec(&[&eval_args[..], &["--quiet", "-o", s(&eval)]].concat()));
        (train, eval)
    })
}

fn eval_lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("JSON line")).collect()
}

fn train(extra: &[&str], out: &Path) -> Output {
    let (train, eval) = data();
    let base =
        ["train", "--train", s(train), "--eval", s(eval), "--preset", "small", "--memory", "1MB", "--batch", "256"];
    pocketrec(&[&base[..], extra, &["--quiet", "-o", s(out)]].concat())
}

fn bayes_auc(eval: &Path) -> f64 {
    let probs: Vec<f32> =
        std::fs::read_to_string(format!("{}.prob", s(eval))).unwrap().lines().map(|l| l.parse().unwrap()).collect();
    let labels: Vec<f32> = std::fs::read_to_string(eval).unwrap().lines().map(|l| l[..1].parse().unwrap()).collect();
    pocketrec_trainer::metrics::auc(&probs, &labels)
}

#[test]
fn robe_model_learns_the_planted_truth() {
    let out_path = scratch().join("learn.safetensors");
    let out = ok(train(&["--eval-every", "20000"], &out_path));
    let evals = eval_lines(&out);
    assert!(evals.len() == 3, "an eval line every 20k samples and at the end: {evals:?}");
    let last = evals.last().unwrap();
    let auc = last["auc"].as_f64().unwrap();
    let bayes = bayes_auc(&data().1);
    eprintln!("small preset, 1 MB, 60k rows, 1 epoch: eval AUC {auc:.4}, Bayes-optimal {bayes:.4}");
    assert!(auc > 0.72 && auc < bayes, "AUC {auc} (Bayes {bayes})");
    assert!(evals[0]["auc"].as_f64().unwrap() < auc, "AUC rises with training: {evals:?}");
    // The written model scores the same data the same way.
    let ev = ok(pocketrec(&["eval", "--model", s(&out_path), "--data", s(&data().1), "--json"]));
    let ev: Value = serde_json::from_slice(&ev.stdout).unwrap();
    assert!((ev["eval"]["auc"].as_f64().unwrap() - auc).abs() < 1e-9);
}

/// The training step recorded in a checkpoint's safetensors metadata.
/// The `checkpoint` entry of a checkpoint file's provenance.
fn checkpoint_info(path: &Path) -> Value {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let provenance: Value = serde_json::from_str(header["__metadata__"]["provenance"].as_str().unwrap()).unwrap();
    provenance["checkpoint"].clone()
}

fn checkpoint_step(path: &Path) -> u64 {
    checkpoint_info(path)["position"]["step"].as_u64().unwrap()
}

#[test]
fn resume_continues_bit_identically_across_a_learning_rate_decay() {
    let dir = scratch();
    let (whole, part, ckpt) = (dir.join("whole.safetensors"), dir.join("part.safetensors"), dir.join("part.ckpt"));
    // The resumed part crosses into epoch 2, where --lr-decay has halved the rate.
    let common =
        ["--epochs", "2", "--optimizer", "adam", "--lr", "0.004", "--lr-decay", "0.5", "--checkpoint-every", "50"];
    ok(train(&[&common[..], &["--keep-checkpoint"]].concat(), &whole));
    let lr = checkpoint_info(&dir.join("whole.safetensors.ckpt"))["lr"].as_f64().unwrap();
    assert!((lr - 0.002).abs() < 1e-9, "epoch 2 runs at lr · lr_decay, got {lr}");
    // Stop inside the first epoch, then resume from the checkpoint.
    ok(train(&[&common[..], &["--max-steps", "170", "--checkpoint", s(&ckpt), "--keep-checkpoint"]].concat(), &part));
    assert_eq!(checkpoint_step(&ckpt), 170, "the partial run stops at --max-steps");
    assert!(std::fs::read(&whole).unwrap() != std::fs::read(&part).unwrap());
    ok(train(&[&common[..], &["--resume", "--checkpoint", s(&ckpt)]].concat(), &part));
    let same = std::fs::read(&whole).unwrap() == std::fs::read(&part).unwrap();
    assert!(same, "resumed model differs from the uninterrupted one");
}

#[test]
fn divergence_stops_with_a_clear_error_and_keeps_the_last_good_checkpoint() {
    let dir = scratch();
    let (out, ckpt) = (dir.join("nan.safetensors"), dir.join("nan.ckpt"));
    let bad = train(&["--optimizer", "sgd", "--lr", "1e30", "--checkpoint-every", "1", "--checkpoint", s(&ckpt)], &out);
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success());
    assert!(stderr.contains("the last checkpoint is kept") && !stderr.contains("panicked"), "{stderr}");
    let failed_at: u64 = stderr
        .split("at step ")
        .nth(1)
        .and_then(|t| t.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no step in {stderr}"));
    assert!(!out.exists(), "a diverged model must not be written");
    // Whatever checkpoint exists is finite (the reader refuses non-finite values) and from before.
    if ckpt.exists() {
        let step = checkpoint_step(&ckpt);
        assert!(step < failed_at, "checkpoint at step {step}, failure at {failed_at}");
    }
}

#[test]
fn baselines_train_through_the_same_code() {
    for kind in ["hashed", "full"] {
        let out_path = scratch().join(format!("{kind}.safetensors"));
        let out = ok(train(&["--embedding", kind], &out_path));
        let auc = eval_lines(&out).last().unwrap()["auc"].as_f64().unwrap();
        eprintln!("{kind}: eval AUC {auc:.4}");
        assert!(auc > 0.65, "{kind}: AUC {auc}");
    }
}

#[test]
fn missing_training_file_is_a_one_line_error() {
    let out = pocketrec(&["train", "--train", "/nonexistent/x.tsv", "-o", "/tmp/never.safetensors", "--quiet"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("/nonexistent/x.tsv"), "{stderr}");
}
