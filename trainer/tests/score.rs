//! `pocketrec score` end to end on the web demo's data: demo-data -> train -> score gives, row for
//! row, the library's own forward pass, with or without label columns; a schema mismatch is one
//! line of error, from `eval` as from `score`.

use pocketrec::passes::sigmoid;
use pocketrec_trainer::data::{Loader, LoaderOptions};
use std::path::PathBuf;

mod common;
use common::{ok, pocketrec};

#[test]
fn score_equals_the_library_forward_pass_row_for_row() {
    let dir = std::env::temp_dir().join(format!("pocketrec-score-{}", std::process::id()));
    let p = |name: &str| -> String { dir.join(name).to_str().unwrap().to_string() };
    ok(pocketrec(&["demo-data", "--out", &p(""), "--users", "40", "--events-per-user", "10", "--items", "300"]));
    ok(pocketrec(&[
        "train",
        "--train",
        &p("train.tsv"),
        "--preset",
        "small",
        "--memory",
        "200KB",
        "--epochs",
        "1",
        "--batch",
        "64",
        "--optimizer",
        "adagrad",
        "--lr",
        "0.05",
        "--seed",
        "1",
        "-o",
        &p("model.safetensors"),
    ]));
    ok(pocketrec(&[
        "score",
        "--model",
        &p("model.safetensors"),
        "--data",
        &p("eval.tsv"),
        "--batch",
        "7",
        "-o",
        &p("s.txt"),
    ]));
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

    // The same rows without labels, as a header without `label` or as rows one column short.
    let text = std::fs::read_to_string(p("eval.tsv")).unwrap();
    let drop_label = |line: &str| line.split_once('\t').unwrap().1.to_string();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    let rows: Vec<String> = lines.map(drop_label).collect();
    let no_label_column = format!("{}\n{}\n", drop_label(header), rows.join("\n"));
    let short_rows = format!("{header}\n{}\n", rows.join("\n"));
    for (name, data) in [("no-label-column.tsv", no_label_column), ("short-rows.tsv", short_rows)] {
        std::fs::write(p(name), data).unwrap();
        ok(pocketrec(&[
            "score",
            "--model",
            &p("model.safetensors"),
            "--data",
            &p(name),
            "--batch",
            "7",
            "-o",
            &p("u.txt"),
        ]));
        assert!(std::fs::read(p("u.txt")).unwrap() == std::fs::read(p("s.txt")).unwrap(), "{name}: other scores");
    }

    // Another schema: score and eval say so in the same words, before reading any rows.
    std::fs::write(p("other.tsv"), "label\tdense:x\tcat:y\n1\t2\tz\n").unwrap();
    let score = pocketrec(&["score", "--model", &p("model.safetensors"), "--data", &p("other.tsv"), "-o", &p("t.txt")]);
    let eval = pocketrec(&["eval", "--model", &p("model.safetensors"), "--data", &p("other.tsv")]);
    for out in [score, eval] {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && stderr.starts_with("pocketrec: error: "), "{stderr}");
        assert!(stderr.contains("does not match the model's schema: the data has 1 dense column (x)"), "{stderr}");
    }
    std::fs::remove_dir_all(PathBuf::from(p(""))).unwrap();
}

/// Criteo rows score the same with their label column (40 columns) or without it (39), and a
/// malformed row stops scoring with its line number, in words the user asked for.
#[test]
fn criteo_rows_without_labels_score_like_labelled_ones() {
    let dir = std::env::temp_dir().join(format!("pocketrec-score-criteo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = |name: &str| -> String { dir.join(name).to_str().unwrap().to_string() };
    ok(pocketrec(&["init", "--preset", "small", "--memory", "200KB", "-o", &p("model.safetensors")]));
    ok(pocketrec(&["synth", "--rows", "300", "--seed", "4", "--quiet", "-o", &p("rows.tsv")]));
    let score = |data: &str, out: &str| {
        pocketrec(&["score", "--model", &p("model.safetensors"), "--data", &p(data), "-o", &p(out)])
    };
    ok(score("rows.tsv", "labelled.txt"));

    let text = std::fs::read_to_string(p("rows.tsv")).unwrap();
    // Every other row loses its label: each row is read by its own column count.
    let mixed: Vec<&str> =
        text.lines().enumerate().map(|(i, l)| if i % 2 == 0 { l.split_once('\t').unwrap().1 } else { l }).collect();
    std::fs::write(p("mixed.tsv"), mixed.join("\n") + "\n").unwrap();
    ok(score("mixed.tsv", "mixed.txt"));
    let labelled = std::fs::read_to_string(p("labelled.txt")).unwrap();
    assert_eq!(labelled.lines().count(), 300);
    assert!(std::fs::read_to_string(p("mixed.txt")).unwrap() == labelled, "other scores without labels");

    let mut bad: Vec<&str> = text.lines().collect();
    bad[6] = "1\t2\t3";
    std::fs::write(p("bad.tsv"), bad.join("\n")).unwrap();
    let out = score("bad.tsv", "bad.txt");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("line 7: expected 40 tab-separated columns, got 3"), "{stderr}");
    assert!(!stderr.contains("strict"), "{stderr}");
    std::fs::remove_dir_all(dir).unwrap();
}
