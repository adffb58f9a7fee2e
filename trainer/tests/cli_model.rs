//! `pocketrec init` and `pocketrec inspect` end to end: the budget holds, inspect reports the split,
//! and broken files give one line of error and a non-zero exit.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Output;

mod common;
use common::pocketrec;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pocketrec-cli-model-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn init(path: &Path, extra: &[&str]) {
    let mut args = vec!["init", "-o", path.to_str().unwrap()];
    args.extend(extra);
    let out = pocketrec(&args);
    assert!(out.status.success(), "init failed: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1, "init prints one summary line");
}

fn inspect_json(path: &Path) -> Value {
    let out = pocketrec(&["inspect", path.to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "inspect failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("inspect --json prints JSON")
}

/// The error contract: non-zero exit, exactly one line on stderr, naming the problem.
fn assert_one_line_error(out: &Output, expect: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "expected failure, stderr: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "stderr must be one line: {stderr:?}");
    assert!(stderr.starts_with("pocketrec: error: ") && stderr.contains(expect), "{stderr:?}");
    assert!(!stderr.contains("panicked"), "{stderr:?}");
}

#[test]
fn kaggle_10mb_fits_the_budget_and_inspect_shows_the_split() {
    let path = scratch("kaggle.safetensors");
    init(&path, &["--preset", "kaggle", "--memory", "10MB", "--seed", "3"]);
    let r = inspect_json(&path);
    let bytes = &r["bytes"];
    let parameters = bytes["parameters"].as_u64().unwrap();
    assert!(parameters <= 10_000_000 && parameters > 10_000_000 - 4 * 4, "{parameters}");
    let parts: u64 = ["embedding", "bottom_mlp", "top_mlp"].iter().map(|k| bytes[k].as_u64().unwrap()).sum();
    assert_eq!(parts, parameters);
    assert_eq!(bytes["file"].as_u64().unwrap(), parameters + bytes["header"].as_u64().unwrap());
    assert_eq!(bytes["file"].as_u64().unwrap(), std::fs::metadata(&path).unwrap().len());
    assert!(bytes["header"].as_u64().unwrap() < 16_384, "the file adds only its header");
    // The kaggle shapes of docs/model-file.md; M is what is left of the budget in f32.
    let m = r["m"].as_u64().unwrap();
    assert_eq!(r["params"]["embedding"].as_u64().unwrap(), m);
    assert_eq!(
        r["params"]["bottom_mlp"].as_u64().unwrap(),
        13 * 512 + 512 + 512 * 256 + 256 + 256 * 64 + 64 + 64 * 16 + 16
    );
    assert_eq!(r["params"]["top_mlp"].as_u64().unwrap(), 367 * 512 + 512 + 512 * 256 + 256 + 256 + 1);
    assert_eq!(m, (10_000_000 - 4 * (155_984 + 320_001)) / 4);
    assert_eq!((r["z"].as_u64(), r["hash"].as_str(), r["dtype"].as_str()), (Some(4), Some("uma-v1"), Some("f32")));
    assert_eq!(r["provenance"]["seed"].as_u64(), Some(3));

    let out = pocketrec(&["inspect", path.to_str().unwrap()]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("M = {m}, Z = 4, hash uma-v1")), "{text}");
    for part in ["embedding", "bottom MLP", "top MLP", "header", "13-512-256-64-16", "367-512-256-1"] {
        assert!(text.contains(part), "{part} missing from:\n{text}");
    }

    // The same seed gives the same bytes.
    let again = scratch("kaggle-again.safetensors");
    init(&again, &["--preset", "kaggle", "--memory", "10MB", "--seed", "3"]);
    assert!(std::fs::read(&path).unwrap() == std::fs::read(&again).unwrap(), "init is not reproducible");
}

#[test]
fn f16_halves_the_bytes_of_the_same_model() {
    let (f32_path, f16_path) = (scratch("small-f32.safetensors"), scratch("small-f16.safetensors"));
    init(&f32_path, &["--preset", "small", "--memory", "400KB", "--z", "2", "--hash", "new-robez"]);
    // Units ignore case: 200kb is 200KB.
    init(&f16_path, &["--preset", "small", "--memory", "200kb", "--z", "2", "--hash", "new-robez", "--dtype", "f16"]);
    let (a, b) = (inspect_json(&f32_path), inspect_json(&f16_path));
    assert_eq!(a["params"], b["params"], "same budget per byte width gives the same parameters");
    assert_eq!(b["dtype"].as_str(), Some("f16"));
    assert_eq!(b["hash"].as_str(), Some("new-robez"));
    for part in ["embedding", "bottom_mlp", "top_mlp", "parameters"] {
        assert_eq!(a["bytes"][part].as_u64().unwrap(), 2 * b["bytes"][part].as_u64().unwrap(), "{part}");
    }
}

#[test]
fn broken_files_give_a_one_line_error() {
    let path = scratch("for-breaking.safetensors");
    init(&path, &["--preset", "small", "--memory", "200KB"]);
    let bytes = std::fs::read(&path).unwrap();

    let truncated = scratch("truncated.safetensors");
    std::fs::write(&truncated, &bytes[..bytes.len() - 100]).unwrap();
    assert_one_line_error(&pocketrec(&["inspect", truncated.to_str().unwrap()]), "truncated or corrupt");

    // Random bytes, from a fixed xorshift so the test is reproducible.
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let random: Vec<u8> = (0..50_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let random_path = scratch("random.safetensors");
    std::fs::write(&random_path, random).unwrap();
    assert_one_line_error(&pocketrec(&["inspect", random_path.to_str().unwrap()]), "truncated or corrupt");

    let missing = scratch("does-not-exist.safetensors");
    assert_one_line_error(&pocketrec(&["inspect", missing.to_str().unwrap()]), "cannot read");

    // Valid safetensors, corrupt content: a weight patched to NaN. The digest catches it first;
    // unchecked, the reader still refuses the value.
    let mut nan = bytes.clone();
    let end = nan.len();
    nan[end - 4..].copy_from_slice(&f32::NAN.to_le_bytes());
    let nan_path = scratch("nan.safetensors");
    std::fs::write(&nan_path, nan).unwrap();
    assert_one_line_error(&pocketrec(&["inspect", nan_path.to_str().unwrap()]), "digest mismatch");
    assert_one_line_error(&pocketrec(&["inspect", nan_path.to_str().unwrap(), "--no-verify"]), "non-finite");

    let too_small = pocketrec(&["init", "--preset", "kaggle", "--memory", "1MB", "-o", path.to_str().unwrap()]);
    // The library says what to do; the CLI names the flags that set it.
    assert_one_line_error(&too_small, "--preset kaggle --memory 1000000: ");
    assert!(String::from_utf8_lossy(&too_small.stderr).contains("raise the memory budget"));
}

/// Where the tensor data starts (after the 8-byte length and the JSON header).
fn data_start(bytes: &[u8]) -> usize {
    8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize
}

#[test]
fn a_flipped_tensor_byte_fails_inspect_eval_and_score() {
    let path = scratch("for-flipping.safetensors");
    init(&path, &["--preset", "small", "--memory", "200KB"]);
    let rows = scratch("flip-rows.tsv");
    let out = pocketrec(&["synth", "--rows", "50", "--seed", "1", "-o", rows.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r = inspect_json(&path);
    assert!(r["digest"].as_str().unwrap().starts_with("xxh3-64:"), "{r}");
    assert_eq!(r["digest_verified"], Value::Bool(true));

    // One low bit of the first bias value of the bottom MLP: still a finite, plausible weight.
    let bytes = std::fs::read(&path).unwrap();
    let header: Value = serde_json::from_slice(&bytes[8..data_start(&bytes)]).unwrap();
    let at = data_start(&bytes) + header["bottom.0.bias"]["data_offsets"][0].as_u64().unwrap() as usize;
    let mut flipped = bytes.clone();
    flipped[at] ^= 1;
    let bad = scratch("flipped.safetensors");
    std::fs::write(&bad, flipped).unwrap();
    let (bad, rows) = (bad.to_str().unwrap(), rows.to_str().unwrap());
    let scores = scratch("flipped-scores.txt");
    let scores = scores.to_str().unwrap();
    for args in [
        vec!["inspect", bad],
        vec!["eval", "--model", bad, "--data", rows],
        vec!["score", "--model", bad, "--data", rows, "-o", scores],
    ] {
        let out = pocketrec(&args);
        assert_one_line_error(&out, "model file is corrupt (digest mismatch)");
        assert!(String::from_utf8_lossy(&out.stderr).contains("--no-verify"), "the CLI names its flag");
    }
    // Only on request does it load, and inspect says the digest was not checked.
    let out = pocketrec(&["inspect", bad, "--no-verify"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("(not checked)"));
    let out = pocketrec(&["score", "--model", bad, "--data", rows, "-o", scores, "--no-verify"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn a_file_without_a_digest_loads_and_inspect_says_none() {
    let path = scratch("for-legacy.safetensors");
    init(&path, &["--preset", "small", "--memory", "200KB"]);
    let bytes = std::fs::read(&path).unwrap();
    let mut header: Value = serde_json::from_slice(&bytes[8..data_start(&bytes)]).unwrap();
    header["__metadata__"].as_object_mut().unwrap().remove("digest").unwrap();
    let mut text = header.to_string().into_bytes();
    text.resize(text.len().next_multiple_of(8), b' ');
    let mut legacy = (text.len() as u64).to_le_bytes().to_vec();
    legacy.extend(text);
    legacy.extend(&bytes[data_start(&bytes)..]);
    let legacy_path = scratch("legacy.safetensors");
    std::fs::write(&legacy_path, legacy).unwrap();

    assert_eq!(inspect_json(&legacy_path)["digest"], Value::Null);
    let out = pocketrec(&["inspect", legacy_path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("digest:     none"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
