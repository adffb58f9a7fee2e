//! docs/python.md's script, run as written there, scores the same probabilities as `pocketrec
//! score`: the model file can be read and checked with the `safetensors` package and numpy alone.
//! It needs `python3` with numpy and safetensors (scripts/setup.sh installs them into Debian's
//! /usr/bin/python3); without them it prints SKIPPED, and fails under CI=true.

use std::io::Write;
use std::path::Path;
use std::process::Command;

mod common;
use common::{Rng, ok, pocketrec};

/// numpy sums in f64, pocketrec in f32: the probabilities agree to this much.
const TOLERANCE: f64 = 1e-5;

/// The first interpreter on PATH or Debian's that imports numpy and safetensors.
fn python() -> Option<&'static str> {
    ["python3", "/usr/bin/python3"]
        .into_iter()
        .find(|p| Command::new(p).args(["-c", "import numpy, safetensors"]).output().is_ok_and(|o| o.status.success()))
}

/// The ```python block of docs/python.md.
fn script_from_docs() -> String {
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/python.md")).unwrap();
    let start = doc.find("```python\n").expect("docs/python.md has a ```python block") + "```python\n".len();
    let len = doc[start..].find("\n```").expect("the block ends");
    doc[start..start + len + 1].to_string()
}

/// Schema-TSV rows with every kind of column: dense counts (negative ones too, which log1p clamps),
/// categoricals (some empty, some not ASCII), a mean bag and a sum bag (empty cells, empty tokens).
fn write_rows(path: &Path, n: usize, seed: u64) {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d_u64 ^ seed);
    let mut next = |k: u64| rng.below(k);
    let mut text = String::from("label\tdense:visits\tdense:delta\tcat:user\tcat:item\tbag:tags\tbagsum:words\n");
    for _ in 0..n {
        let user = format!("u{}", next(50));
        let item = match next(10) {
            0 => String::new(),
            1 => format!("café-{}", next(5)),
            _ => format!("i{}", next(200)),
        };
        let tags: Vec<String> = (0..next(4)).map(|_| format!("t{}", next(12))).collect();
        let words = match next(5) {
            0 => ",w1,,w2".to_string(),
            _ => (0..next(3)).map(|_| format!("w{}", next(30))).collect::<Vec<_>>().join(","),
        };
        let delta = next(21) as i64 - 10;
        text += &format!("{}\t{}\t{delta}\t{user}\t{item}\t{}\t{words}\n", next(2), next(100), tags.join(","));
    }
    std::fs::write(path, text).unwrap();
}

#[test]
fn the_python_example_scores_as_pocketrec_does() {
    let Some(python) = python() else {
        let why = "no python3 with numpy and safetensors: run scripts/setup.sh";
        assert!(std::env::var("CI").as_deref() != Ok("true"), "the Python example cannot run in CI: {why}");
        // Written to stderr itself, not through eprintln!, which the test harness captures.
        let _ = writeln!(std::io::stderr(), "\n*** SKIPPED the Python example (docs/python.md): {why} ***\n");
        return;
    };
    let dir = std::env::temp_dir().join(format!("pocketrec-python-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = |name: &str| dir.join(name).to_str().unwrap().to_string();
    write_rows(&dir.join("train.tsv"), 2000, 1);
    write_rows(&dir.join("rows.tsv"), 60, 2);
    std::fs::write(dir.join("score.py"), script_from_docs()).unwrap();

    // Each hash variant; Z = 3 does not divide d = 8 (a short last block), Z = 16 is longer than d.
    for (hash, z, dtype) in [("uma-v1", "4", "f32"), ("new-robez", "3", "f16"), ("independent", "16", "f32")] {
        let model = p(&format!("{hash}.safetensors"));
        ok(pocketrec(&[
            "train",
            "--train",
            &p("train.tsv"),
            "--preset",
            "small",
            "--memory",
            "100KB",
            "--hash",
            hash,
            "--z",
            z,
            "--dtype",
            dtype,
            "--batch",
            "64",
            "--optimizer",
            "adagrad",
            "--lr",
            "0.05",
            "--seed",
            "3",
            "--quiet",
            "-o",
            &model,
        ]));
        let native = ok(pocketrec(&["score", "--model", &model, "--data", &p("rows.tsv"), "-o", "-"]));
        let out = Command::new(python).arg(p("score.py")).args([&model, &p("rows.tsv")]).output().unwrap();
        assert!(out.status.success(), "{python} score.py failed: {}", String::from_utf8_lossy(&out.stderr));
        let parse =
            |o: &[u8]| -> Vec<f64> { String::from_utf8_lossy(o).lines().map(|l| l.trim().parse().unwrap()).collect() };
        let (native, ours) = (parse(&native.stdout), parse(&out.stdout));
        assert_eq!(ours.len(), 60, "one probability per row");
        assert_eq!(native.len(), ours.len());
        let worst = native.iter().zip(&ours).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        let spread = native.iter().cloned().fold(f64::NAN, f64::max) - native.iter().cloned().fold(f64::NAN, f64::min);
        eprintln!("python vs pocketrec score ({hash}, z {z}, {dtype}): max |diff| {worst:.2e} over 60 rows");
        assert!(worst < TOLERANCE, "{hash}, z {z}, {dtype}: max |diff| {worst} >= {TOLERANCE}");
        assert!(spread > 1e-3, "the rows must score differently for the comparison to mean something");
    }
}
