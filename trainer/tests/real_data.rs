//! Criteo Kaggle, first 10,000 rows (../shared/data, never copied into the repo): the first 8,000
//! train, the last 2,000 evaluate. The 10 MB ROBE-Z model is at most 0.01 AUC below the `full`
//! baseline and above hashed logistic regression, measured here on the same split.

use pocketrec_trainer::data::{Loader, LoaderOptions};
use pocketrec_trainer::logreg::LogReg;
use pocketrec_trainer::metrics::auc;
use pocketrec_trainer::train::BatchStream;
use std::process::Command;

struct Rows(Loader);
impl BatchStream for Rows {
    fn next_batch(&mut self) -> anyhow::Result<Option<pocketrec::Batch>> {
        self.0.next_batch()
    }
}

fn rows(path: &str, skip: usize, max: Option<usize>, shuffle_seed: u64) -> Rows {
    let opts = LoaderOptions {
        batch_size: 512,
        shuffle_buffer: 10_000,
        seed: shuffle_seed,
        strict: true,
        skip_rows: skip,
        max_rows: max,
        ..LoaderOptions::default()
    };
    Rows(Loader::open(path, opts).unwrap())
}

fn dlrm_auc(path: &str, embedding: &str) -> f64 {
    let out_path = std::env::temp_dir().join(format!("pocketrec-real-{embedding}-{}.safetensors", std::process::id()));
    let args = [
        "train",
        "--train",
        path,
        "--max-rows",
        "8000",
        "--eval",
        path,
        "--eval-skip-rows",
        "8000",
        "--preset",
        "kaggle",
        "--memory",
        "10MB",
        "--batch",
        "256",
        "--epochs",
        "2",
        "--optimizer",
        "adam",
        "--lr",
        "0.001",
        "--embedding",
        embedding,
        "--quiet",
        "-o",
        out_path.to_str().unwrap(),
    ];
    let out = Command::new(env!("CARGO_BIN_EXE_pocketrec")).args(args).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let last = String::from_utf8_lossy(&out.stdout).lines().last().unwrap().to_string();
    let v: serde_json::Value = serde_json::from_str(&last).unwrap();
    assert_eq!(v["rows"], 2000);
    v["auc"].as_f64().unwrap()
}

#[test]
fn robe_10mb_matches_full_tables_and_beats_logistic_regression() {
    let test = "robe_10mb_matches_full_tables_and_beats_logistic_regression";
    let Some(path) = pocketrec_trainer::shared_data_for_test("criteo/kaggle-train-10k.tsv", test) else { return };
    let path = path.to_str().unwrap();
    let mut lr = LogReg::new(13, 1 << 18, pocketrec::DenseTransform::Log1p, 0.05);
    let mut lr_auc = 0.0f64;
    for epoch in 0..3 {
        lr.fit_epoch(&mut rows(path, 0, Some(8000), epoch)).unwrap();
        let (p, y) = lr.predict(&mut rows(path, 8000, None, 0)).unwrap();
        lr_auc = lr_auc.max(auc(&p, &y));
    }
    let robe = dlrm_auc(path, "robe");
    let full = dlrm_auc(path, "full");
    eprintln!(
        "kaggle-train-10k, rows 8000..10000: robe 10MB AUC {robe:.4}, full {full:.4}, logistic regression {lr_auc:.4} (best of 3 epochs)"
    );
    assert!(robe >= full - 0.01, "robe {robe} vs full {full}");
    assert!(robe > lr_auc, "robe {robe} vs logistic regression {lr_auc}");
}
