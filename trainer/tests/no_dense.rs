//! A click log with no numeric column (as Avazu, Frappe or MovieLens ratings): a schema TSV of
//! `cat:` and `bag:` columns only trains a model without a bottom MLP, which learns a planted
//! user × item affinity (a signal only the embeddings' dots can carry: every field alone is
//! uninformative), and `score`, `eval` and `inspect` work on it.

use pocketrec::passes::sigmoid;
use pocketrec_trainer::data::{Loader, LoaderOptions};
use serde_json::Value;
use std::fmt::Write;
use std::path::PathBuf;

mod common;
use common::{Rng, ok, pocketrec, s};

/// `rows` rows of `label, cat:user, cat:item, cat:site, bag:tags`, from a seeded generator. Users
/// and items fall into 4 groups; a click is likely (0.8) when the groups match, else unlikely
/// (0.1). Site and tags are noise. Each user, item and group is equally often clicked, so no
/// single field predicts the label.
fn click_log(rows: usize, seed: u64) -> String {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut next = move |n: u64| rng.below(n);
    let mut out = String::from("label\tcat:user\tcat:item\tcat:site\tbag:tags\n");
    for _ in 0..rows {
        let (user, item, site) = (next(200), next(300), next(20));
        let tags: Vec<String> = (0..next(3)).map(|_| format!("t{}", next(10))).collect();
        let p = if user % 4 == item % 4 { 800 } else { 100 };
        let label = u64::from(next(1000) < p);
        writeln!(out, "{label}\tu{user}\ti{item}\ts{site}\t{}", tags.join(",")).unwrap();
    }
    out
}

#[test]
fn schema_without_dense_columns_trains_scores_and_evaluates() {
    let dir = std::env::temp_dir().join(format!("pocketrec-no-dense-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = |name: &str| -> PathBuf { dir.join(name) };
    std::fs::write(p("train.tsv"), click_log(40_000, 1)).unwrap();
    std::fs::write(p("eval.tsv"), click_log(5_000, 2)).unwrap();
    let model = p("model.safetensors");
    let out = ok(pocketrec(&[
        "train",
        "--train",
        s(&p("train.tsv")),
        "--eval",
        s(&p("eval.tsv")),
        "--preset",
        "small",
        "--memory",
        "200KB",
        "--epochs",
        "2",
        "--batch",
        "256",
        "--quiet",
        "-o",
        s(&model),
    ]));
    let last: Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().last().expect("an eval line")).unwrap();
    let auc = last["auc"].as_f64().unwrap();
    // Bayes-optimal AUC on this log is about 0.83; a model of single fields would get 0.5.
    eprintln!("no dense features, small preset, 200 KB, 40k rows, 2 epochs: eval AUC {auc:.4}");
    assert!(auc > 0.8, "eval AUC {auc}");

    // The file has no bottom MLP, and inspect says so.
    let file = pocketrec::file::from_bytes(&std::fs::read(&model).unwrap()).unwrap();
    assert!(file.model.bottom.is_empty() && file.model.config.dense.is_empty());
    assert_eq!(file.model.config.top[0], 4 * 3 / 2, "the top MLP sees the 6 dots of 4 fields");
    let inspect = String::from_utf8(ok(pocketrec(&["inspect", s(&model)])).stdout).unwrap();
    assert!(inspect.contains("0 dense") && inspect.contains("bottom MLP: none"), "{inspect}");

    // eval agrees with training's last evaluation; score gives the library's forward pass.
    let ev = ok(pocketrec(&["eval", "--model", s(&model), "--data", s(&p("eval.tsv")), "--json"]));
    let ev: Value = serde_json::from_slice(&ev.stdout).unwrap();
    assert!((ev["eval"]["auc"].as_f64().unwrap() - auc).abs() < 1e-9, "{ev}");
    ok(pocketrec(&["score", "--model", s(&model), "--data", s(&p("eval.tsv")), "-o", s(&p("scores.txt"))]));
    let scores: Vec<f32> =
        std::fs::read_to_string(p("scores.txt")).unwrap().lines().map(|l| l.parse().unwrap()).collect();
    let opts = LoaderOptions { batch_size: 1 << 20, strict: true, ..LoaderOptions::default() };
    let batch = Loader::open(s(&p("eval.tsv")), opts).unwrap().next_batch().unwrap().unwrap();
    assert!(batch.dense.is_empty());
    let want: Vec<f32> =
        file.model.forward(&batch, &mut pocketrec::Workspace::default()).iter().map(|&z| sigmoid(z)).collect();
    assert_eq!(scores.len(), 5_000);
    for (r, (a, b)) in scores.iter().zip(&want).enumerate() {
        assert!((a - b).abs() <= 1e-6, "row {r}: score {a}, forward {b}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
