//! Column mapping end to end: a click log that is not Criteo-shaped (an Avazu-style CSV with a
//! header, quoted fields, empty fields, the delimiter inside quotes, a planted signal) trains
//! through the mapping flags alone to an AUC clearly above logistic regression on the same rows;
//! `score` and `eval` read it by the layout the model stores; wrong mappings and mismatched
//! headers are one clear message. MovieLens ratings (../shared/data) train by a threshold label.

use pocketrec_trainer::data::{Columns, Loader, LoaderOptions, Mapping};
use pocketrec_trainer::logreg::LogReg;
use pocketrec_trainer::metrics::auc;
use pocketrec_trainer::train::BatchStream;
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

mod common;
use common::{Rng, ok, pocketrec, s};

fn failed(out: Output) -> String {
    assert!(!out.status.success(), "pocketrec should have failed: {}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pocketrec-mapping-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

const HEADER: &str = "id,click,hour,C1,banner_pos,site_id,site_category,app_id,device_id,device_model";

/// Avazu-style rows. The planted signal is an interaction: each device and each site has a hidden
/// side, and a click is likely (0.8) when they agree, unlikely (0.2) when not, so a model of
/// single columns (logistic regression) sees little, and a model of pairs (the DLRM's dot
/// products) sees it all. `banner_pos` 1 adds a small main effect. Cells exercise the CSV rules:
/// quoted names with the delimiter inside, doubled quotes, empty `app_id`s.
fn avazu_rows(n: usize, seed: u64, with_dense: bool) -> String {
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let side = |x: u64| (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 40) & 1;
    let categories = ["\"news, sports\"", "games", "\"shop; \"\"deals\"\"\"", "\"\""];
    let mut out = String::from(HEADER);
    if !with_dense {
        out = out.replace("hour,", "");
    }
    out.push('\n');
    for i in 0..n {
        let (device, site) = (rng.below(40), rng.below(40));
        let banner = rng.below(3);
        let p = if side(device) == side(site + 1000) { 0.8 } else { 0.2 } + if banner == 1 { 0.1 } else { 0.0 };
        let click = u8::from(rng.unit() < p);
        let hour = 14102100 + rng.below(24);
        let category = categories[rng.below(4) as usize];
        let app = if rng.below(3) == 0 { String::new() } else { format!("a{:x}", rng.below(20)) };
        let model = if i % 7 == 0 { "\"Galaxy \"\"S\"\"\"".to_string() } else { format!("m{}", rng.below(9)) };
        let hour = if with_dense { format!("{hour},") } else { String::new() };
        out.push_str(&format!(
            "{}{i},{click},{hour}1005,{banner},s{site:04},{category},{app},d{device:03x},{model}\n",
            seed * 1_000_000
        ));
    }
    out
}

/// 20,000 training and 5,000 evaluation rows with an `hour` dense column, written once.
fn avazu() -> &'static (PathBuf, PathBuf) {
    static DATA: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    DATA.get_or_init(|| {
        let dir = scratch();
        let (train, eval) = (dir.join("avazu-train.csv"), dir.join("avazu-eval.csv"));
        std::fs::write(&train, avazu_rows(20_000, 1, true)).unwrap();
        std::fs::write(&eval, avazu_rows(5_000, 2, true)).unwrap();
        (train, eval)
    })
}

const AVAZU_FLAGS: [&str; 8] =
    ["--label", "click", "--ignore", "id", "--dense", "hour", "--cat", "C1,banner_pos,site_*,app_id,device_*"];

fn train_mapped(train: &Path, eval: &Path, mapping: &[&str], model: &Path) -> f64 {
    let base = ["train", "--train", s(train), "--eval", s(eval), "--preset", "small", "--memory", "1MB"];
    let opts = ["--batch", "256", "--epochs", "2", "--lr", "0.01", "--seed", "3", "--quiet", "-o", s(model)];
    let out = ok(pocketrec(&[&base[..], mapping, &opts].concat()));
    let last = String::from_utf8_lossy(&out.stdout).lines().last().expect("an eval line").to_string();
    let v: Value = serde_json::from_str(&last).unwrap();
    v["auc"].as_f64().unwrap()
}

/// Logistic regression on the same rows, read through the same mapping: best AUC of 3 epochs.
fn logreg_auc(train: &Path, eval: &Path, mapping: Mapping, n_dense: usize) -> f64 {
    struct Rows(Loader);
    impl BatchStream for Rows {
        fn next_batch(&mut self) -> anyhow::Result<Option<pocketrec::Batch>> {
            self.0.next_batch()
        }
    }
    let rows = |path: &Path, seed: u64| {
        let opts = LoaderOptions {
            batch_size: 512,
            shuffle_buffer: 10_000,
            seed,
            strict: true,
            columns: Columns::Map(mapping.clone()),
            ..LoaderOptions::default()
        };
        Rows(Loader::open(s(path), opts).unwrap())
    };
    let mut lr = LogReg::new(n_dense, 1 << 18, pocketrec::DenseTransform::Log1p, 0.05);
    let mut best = 0.0f64;
    for epoch in 0..3 {
        lr.fit_epoch(&mut rows(train, epoch)).unwrap();
        let (p, y) = lr.predict(&mut rows(eval, 0)).unwrap();
        best = best.max(auc(&p, &y));
    }
    best
}

fn avazu_mapping(dense: bool) -> Mapping {
    Mapping {
        label: Some("click".into()),
        ignore: vec!["id".into()],
        dense: if dense { vec!["hour".into()] } else { vec![] },
        cat: ["C1", "banner_pos", "site_*", "app_id", "device_*"].map(String::from).to_vec(),
        ..Mapping::default()
    }
}

fn eval_auc(model: &Path, data: &Path) -> f64 {
    let out = ok(pocketrec(&["eval", "--model", s(model), "--data", s(data), "--json"]));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["eval"]["auc"].as_f64().unwrap()
}

#[test]
fn an_avazu_style_csv_trains_scores_and_evaluates_by_its_mapping() {
    let (train, eval) = avazu();
    let dir = scratch();
    let model = dir.join("avazu.safetensors");
    let dlrm = train_mapped(train, eval, &AVAZU_FLAGS, &model);
    let lr = logreg_auc(train, eval, avazu_mapping(true), 1);
    eprintln!("Avazu-style CSV, 5,000 held-out rows: DLRM AUC {dlrm:.4}, logistic regression {lr:.4}");
    assert!(dlrm > lr + 0.05, "DLRM {dlrm} vs logistic regression {lr}");
    assert!(dlrm > 0.7, "DLRM {dlrm}");

    // The model stores the layout with exact names; eval needs no mapping flags.
    let file = pocketrec::file::from_bytes(&std::fs::read(&model).unwrap()).unwrap();
    let input = &file.provenance["input"];
    assert_eq!(
        input["cat"],
        serde_json::json!(["C1", "banner_pos", "site_id", "site_category", "app_id", "device_id", "device_model"])
    );
    assert_eq!((input["label"].as_str(), input["delimiter"].as_str()), (Some("click"), Some(",")));
    assert!((eval_auc(&model, eval) - dlrm).abs() < 1e-6);

    // Scoring reads stdin, here without the label and ignored columns: one score per row, in
    // input order, giving the same AUC as eval. Two files concatenated read as one (the second
    // header is skipped).
    let eval_csv = std::fs::read_to_string(eval).unwrap();
    let features = ["hour", "C1", "banner_pos", "site_id", "site_category", "app_id", "device_id", "device_model"];
    let unlabelled = select(&eval_csv, &features);
    let out = score_stdin(&model, &format!("{unlabelled}{unlabelled}"));
    let probs: Vec<f32> = String::from_utf8_lossy(&ok(out).stdout).lines().map(|l| l.parse().unwrap()).collect();
    let labels: Vec<f32> = eval_csv.lines().skip(1).map(|l| cells(l)[1].parse().unwrap()).collect();
    assert_eq!(probs.len(), 10_000);
    assert_eq!(probs[..5000], probs[5000..]);
    assert!((auc(&probs[..5000], &labels) - dlrm).abs() < 1e-6);

    // The model's columns in another order: refused.
    let mut swapped = features;
    swapped.swap(1, 2);
    let err = failed(score_stdin(&model, &select(&eval_csv, &swapped)));
    assert!(err.contains("does not match the model's schema"), "{err}");

    // A header without one of the model's columns: refused by score and eval, naming it.
    let missing = dir.join("missing.csv");
    std::fs::write(&missing, eval_csv.replacen("device_id", "device", 1)).unwrap();
    let err = failed(pocketrec(&["score", "--model", s(&model), "--data", s(&missing), "-o", "-"]));
    assert!(err.contains("missing columns: device_id") && err.contains("does not know: device"), "{err}");
    let err = failed(pocketrec(&["eval", "--model", s(&model), "--data", s(&missing)]));
    assert!(err.contains("missing columns: device_id") && err.contains("does not know: device"), "{err}");
}

fn score_stdin(model: &Path, data: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pocketrec"))
        .args(["score", "--model", s(model), "--data", "-", "-o", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A refused header ends the run before it reads everything: a broken pipe is no failure.
    let _ = child.stdin.take().unwrap().write_all(data.as_bytes());
    child.wait_with_output().unwrap()
}

/// The cells of a CSV line, unquoted (the test's own splitter, independent of the trainer's).
fn cells(line: &str) -> Vec<String> {
    let mut cells = Vec::new();
    let mut cell = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', false) if cell.is_empty() => quoted = true,
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                cell.push('"');
            }
            ('"', true) => quoted = false,
            (',', false) => cells.push(std::mem::take(&mut cell)),
            _ => cell.push(c),
        }
    }
    cells.push(cell);
    cells
}

/// A CSV line from cells, quoting those that need it.
fn csv_line(cells: &[String]) -> String {
    let quote = |c: &String| {
        if c.contains([',', '"']) { format!("\"{}\"", c.replace('"', "\"\"")) } else { c.clone() }
    };
    cells.iter().map(quote).collect::<Vec<_>>().join(",")
}

/// The `keep` columns of a CSV, in that order.
fn select(csv: &str, keep: &[&str]) -> String {
    let header = cells(csv.lines().next().unwrap());
    let at: Vec<usize> = keep.iter().map(|k| header.iter().position(|h| h == k).unwrap()).collect();
    let mut out = String::new();
    for line in csv.lines() {
        let c = cells(line);
        out.push_str(&csv_line(&at.iter().map(|&i| c[i].clone()).collect::<Vec<_>>()));
        out.push('\n');
    }
    out
}

#[test]
fn wrong_mappings_are_one_message_naming_the_column() {
    let (train, _) = avazu();
    let dir = scratch();
    let model = dir.join("wrong.safetensors");
    let run = |mapping: &[&str], data: &Path| {
        let base = ["train", "--train", s(data), "--preset", "small", "--memory", "200KB", "--quiet", "-o", s(&model)];
        pocketrec(&[&base[..], mapping].concat())
    };
    let err = failed(run(&["--label", "click", "--cat", "C*,site_*"], train));
    assert!(err.contains("not mapped: id, hour, banner_pos, app_id, device_id, device_model"), "{err}");
    assert!(err.contains("--rest"), "{err}");
    let err = failed(run(&["--label", "clicked", "--rest", "cat"], train));
    assert!(err.contains("the label column \"clicked\"") && err.contains("not in the header"), "{err}");
    let err = failed(run(&["--label", "click", "--cat", "site_*", "--dense", "site_id", "--rest", "ignore"], train));
    assert!(err.contains("\"site_id\" is mapped twice: --dense site_id and --cat site_*"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");

    // A non-numeric dense value: an error naming the column and line under --strict, else skipped.
    let bad = dir.join("bad.csv");
    let mut text: Vec<String> = avazu_rows(300, 3, true).lines().map(String::from).collect();
    text[4] = text[4].replacen(",1410", ",x1410", 1);
    std::fs::write(&bad, text.join("\n")).unwrap();
    let err = failed(run(&[&AVAZU_FLAGS[..], &["--strict"]].concat(), &bad));
    assert!(err.contains("line 5: column 3 (hour): \"x1410"), "{err}");
    let out = ok(run(&AVAZU_FLAGS, &bad));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("1 bad line; line 5: column 3 (hour)"), "{err}");

    // Unbalanced quotes are a bad line too, named by column.
    text[4] = text[4].replacen(",x1410", ",1410", 1);
    text[6] = text[6].replacen(",s0", ",\"s0", 1);
    std::fs::write(&bad, text.join("\n")).unwrap();
    let err = failed(run(&[&AVAZU_FLAGS[..], &["--strict"]].concat(), &bad));
    assert!(err.contains("line 7: column 6: unbalanced quotes"), "{err}");
}

#[test]
fn a_mapping_file_is_the_same_as_the_flags_and_gzip_and_tsv_read_alike() {
    let (train, _) = avazu();
    let dir = scratch();
    // The same rows as TSV, gzip-compressed: the delimiter is detected, the mapping unchanged.
    let csv = std::fs::read_to_string(train).unwrap();
    let tsv: String = csv.lines().take(2001).map(|l| cells(l).join("\t") + "\n").collect();
    let gz = dir.join("avazu.tsv.gz");
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(tsv.as_bytes()).unwrap();
    std::fs::write(&gz, enc.finish().unwrap()).unwrap();
    let map = dir.join("avazu.map");
    std::fs::write(&map, "# Avazu\nlabel click\nignore id\ndense hour\ncat C1, banner_pos, site_*, app_id, device_*\n")
        .unwrap();
    let base = |data: &Path, model: &Path| {
        ["train", "--train", s(data), "--preset", "small", "--memory", "200KB", "--epochs", "1", "--batch", "256"]
            .into_iter()
            .chain(["--shuffle-buffer", "0", "--quiet", "-o", s(model)])
            .map(String::from)
            .collect::<Vec<_>>()
    };
    let first = dir.join("first.safetensors");
    let head = dir.join("avazu-head.csv");
    std::fs::write(&head, csv.lines().take(2001).map(|l| format!("{l}\n")).collect::<String>()).unwrap();
    let args = [base(&head, &first), AVAZU_FLAGS.map(String::from).to_vec()].concat();
    ok(pocketrec(&args.iter().map(String::as_str).collect::<Vec<_>>()));
    let second = dir.join("second.safetensors");
    let args = [base(&gz, &second), vec!["--mapping".into(), s(&map).into()]].concat();
    ok(pocketrec(&args.iter().map(String::as_str).collect::<Vec<_>>()));
    let (a, b) = (std::fs::read(&first).unwrap(), std::fs::read(&second).unwrap());
    let (a, b) = (pocketrec::file::from_bytes(&a).unwrap(), pocketrec::file::from_bytes(&b).unwrap());
    assert_eq!(a.digest, b.digest, "same rows, same mapping: the same parameters");
    assert_eq!(b.provenance["input"]["delimiter"], "\t");
    // The TSV-trained model evaluates the CSV: the stored delimiter is TSV's, so the CSV header is
    // one column that the model does not know.
    let err = failed(pocketrec(&["eval", "--model", s(&second), "--data", s(&head)]));
    assert!(err.contains("does not know"), "{err}");
    // Flags and a file together are refused.
    let args = [base(&gz, &second), vec!["--mapping".into(), s(&map).into(), "--rest".into(), "cat".into()]].concat();
    let err = failed(pocketrec(&args.iter().map(String::as_str).collect::<Vec<_>>()));
    assert!(err.contains("use one or the other"), "{err}");
}

#[test]
fn an_avazu_style_csv_without_dense_columns_trains_scores_and_evaluates() {
    let dir = scratch();
    let (train, eval) = (dir.join("nodense-train.csv"), dir.join("nodense-eval.csv"));
    std::fs::write(&train, avazu_rows(20_000, 1, false)).unwrap();
    std::fs::write(&eval, avazu_rows(5_000, 2, false)).unwrap();
    let model = dir.join("nodense.safetensors");
    let flags = ["--label", "click", "--ignore", "id", "--rest", "cat"];
    let lr = logreg_auc(&train, &eval, avazu_mapping(false), 0);
    let dlrm = train_mapped(&train, &eval, &flags, &model);
    eprintln!("Avazu-style CSV without dense columns: DLRM AUC {dlrm:.4}, logistic regression {lr:.4}");
    assert!(dlrm > lr + 0.05 && dlrm > 0.7, "DLRM {dlrm} vs logistic regression {lr}");
    assert!((eval_auc(&model, &eval) - dlrm).abs() < 1e-6);
    let out = ok(pocketrec(&["score", "--model", s(&model), "--data", s(&eval), "-o", "-"]));
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 5000);
}

#[test]
fn movielens_ratings_train_through_the_mapping_alone() {
    let test = "movielens_ratings_train_through_the_mapping_alone";
    let Some(ratings) = pocketrec_trainer::shared_data_for_test("movielens-small/ratings.csv", test) else { return };
    // A seeded 80/20 split of the lines, header kept: the file's format is untouched.
    let dir = scratch();
    let text = std::fs::read_to_string(&ratings).unwrap();
    let (header, rows) = text.split_once('\n').unwrap();
    let (mut train, mut eval) = (format!("{header}\n"), format!("{header}\n"));
    let mut rng = Rng(7);
    for line in rows.lines() {
        let to = if rng.below(5) == 0 { &mut eval } else { &mut train };
        to.push_str(line);
        to.push('\n');
    }
    let (train_path, eval_path) = (dir.join("ratings-train.csv"), dir.join("ratings-eval.csv"));
    std::fs::write(&train_path, train).unwrap();
    std::fs::write(&eval_path, eval).unwrap();
    let model = dir.join("movielens.safetensors");
    let flags = ["--label", "rating>=4", "--cat", "userId,movieId", "--ignore", "timestamp"];
    let dlrm = train_mapped(&train_path, &eval_path, &flags, &model);
    eprintln!("MovieLens small, rating>=4, 20% held out: DLRM AUC {dlrm:.4}");
    assert!(dlrm > 0.7, "DLRM {dlrm}");
    assert!((eval_auc(&model, &eval_path) - dlrm).abs() < 1e-6);
}
