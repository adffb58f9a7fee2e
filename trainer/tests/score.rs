//! `pocketrec score` end to end on the web demo's data: demo-data -> train -> score gives, row for
//! row, the library's own forward pass; a schema mismatch is one line of error.

use pocketrec::passes::sigmoid;
use pocketrec_trainer::data::{Loader, LoaderOptions};
use std::path::PathBuf;
use std::process::{Command, Output};

fn pocketrec(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pocketrec")).args(args).output().expect("run pocketrec")
}

fn ok(out: Output) -> Output {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    out
}

#[test]
fn score_equals_the_library_forward_pass_row_for_row() {
    let dir = std::env::temp_dir().join(format!("pocketrec-score-{}", std::process::id()));
    let p = |name: &str| -> String { dir.join(name).to_str().unwrap().to_string() };
    ok(pocketrec(&["demo-data", "--out", &p(""), "--users", "40", "--events-per-user", "10", "--items", "300"]));
    ok(pocketrec(&[
        "train", "--train", &p("train.tsv"), "--preset", "small", "--memory", "200KB", "--epochs", "1", "--batch", "64",
        "--optimizer", "adagrad", "--lr", "0.05", "--seed", "1", "-o", &p("model.safetensors"),
    ]));
    ok(pocketrec(&["score", "--model", &p("model.safetensors"), "--data", &p("eval.tsv"), "--batch", "7", "-o", &p("s.txt")]));
    let scores: Vec<f32> = std::fs::read_to_string(p("s.txt")).unwrap().lines().map(|l| l.parse().unwrap()).collect();

    let model = pocketrec::file::from_bytes(&std::fs::read(p("model.safetensors")).unwrap()).unwrap().model;
    let opts = LoaderOptions { batch_size: 1 << 20, strict: true, ..LoaderOptions::default() };
    let batch = Loader::open(&p("eval.tsv"), opts).unwrap().next_batch().unwrap().unwrap();
    let mut ws = pocketrec::Workspace::default();
    let expected: Vec<f32> = model.forward(&batch, &mut ws).iter().map(|&z| sigmoid(z)).collect();
    assert_eq!(scores.len(), batch.rows);
    for (r, (a, b)) in scores.iter().zip(&expected).enumerate() {
        assert!((a - b).abs() <= 1e-6, "row {r}: score {a}, forward {b}");
    }

    std::fs::write(p("other.tsv"), "label\tdense:x\tcat:y\n1\t2\tz\n").unwrap();
    let out = pocketrec(&["score", "--model", &p("model.safetensors"), "--data", &p("other.tsv"), "-o", &p("t.txt")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.starts_with("pocketrec: error: "), "{stderr}");
    assert!(stderr.contains("does not match the model's schema"), "{stderr}");
    std::fs::remove_dir_all(PathBuf::from(p(""))).unwrap();
}
