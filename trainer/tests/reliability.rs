//! Nothing lost, nothing silent (issue 16): stdin is read once and trains the same model as the
//! file; a run that trains nothing fails and writes nothing; `--resume` refuses a changed option or
//! a damaged checkpoint; every output is written atomically through symlinks, never over special
//! files, and leaves no temporaries or checkpoints behind; `kill -9` at any point resumes to the
//! same bytes.

use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_pocketrec"))
}

fn pocketrec(args: &[&str]) -> Output {
    bin().args(args).output().expect("run pocketrec")
}

fn pocketrec_stdin(args: &[&str], input: &[u8]) -> Output {
    let mut child =
        bin().args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    // Written from a thread: pocketrec may fail (and stop reading) before the input ends.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}

fn ok(out: Output) -> Output {
    assert!(out.status.success(), "pocketrec failed: {}", String::from_utf8_lossy(&out.stderr));
    out
}

fn failed(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "pocketrec should have failed; stderr: {stderr}");
    assert!(stderr.contains("pocketrec: error: ") && !stderr.contains("panicked"), "{stderr}");
    stderr
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// An empty folder of its own for each test, so its listing shows every stray file.
fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("pocketrec-reliability-{}", std::process::id())).join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The file names in `d`, sorted (hidden temporaries included).
fn listing(d: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(d).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

/// 3,000 synthetic Criteo rows, written once, outside the tests' own folders.
fn data() -> &'static PathBuf {
    static DATA: OnceLock<PathBuf> = OnceLock::new();
    DATA.get_or_init(|| {
        let path = dir("data").join("train.tsv");
        ok(pocketrec(&["synth", "--rows", "3000", "--seed", "7", "--quiet", "-o", s(&path)]));
        path
    })
}

/// The small setup's options; `extra` overrides any of them.
const SMALL: [(&str, &str); 5] =
    [("--preset", "small"), ("--memory", "200KB"), ("--batch", "256"), ("--threads", "1"), ("--seed", "1")];

fn train_args<'a>(train: &'a str, out: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["train", "--train", train, "--quiet", "-o", s(out)];
    for (flag, value) in SMALL.iter().filter(|(flag, _)| !extra.contains(flag)) {
        args.extend([*flag, *value]);
    }
    args.extend(extra);
    args
}

fn train(train: &Path, out: &Path, extra: &[&str]) -> Output {
    pocketrec(&train_args(s(train), out, extra))
}

/// A safetensors file's header (without the provenance, which names the data) and tensor bytes.
fn model_parts(path: &Path) -> (Value, Vec<u8>) {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut header: Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    header["__metadata__"].as_object_mut().unwrap().remove("provenance");
    (header, bytes[8 + n..].to_vec())
}

// Finding 1: stdin.

#[test]
fn stdin_trains_the_same_model_as_the_file_for_one_and_two_epochs() {
    let d = dir("stdin");
    let rows = std::fs::read(data()).unwrap();
    for epochs in ["1", "2"] {
        let (from_file, from_stdin) = (d.join(format!("file{epochs}.st")), d.join(format!("stdin{epochs}.st")));
        ok(train(data(), &from_file, &["--epochs", epochs]));
        ok(pocketrec_stdin(&train_args("-", &from_stdin, &["--epochs", epochs]), &rows));
        let (file, stdin) = (model_parts(&from_file), model_parts(&from_stdin));
        assert!(file.0 == stdin.0, "{epochs} epochs: the headers differ");
        assert!(file.1 == stdin.1, "{epochs} epochs: stdin trained other parameters than the file");
    }
    // The spooled copy of stdin is gone with the run.
    assert_eq!(listing(&d), ["file1.st", "file2.st", "stdin1.st", "stdin2.st"]);
}

#[test]
fn a_piped_schema_tsv_keeps_its_header_and_rows() {
    let d = dir("stdin-schema");
    let inputs = dir("stdin-schema-inputs");
    let mut tsv = String::from("label\tdense:age\tcat:city\n");
    for i in 0..600 {
        tsv += &format!("{}\t{}\tcity{}\n", (i % 3 == 0) as u8, i % 50, i % 17);
    }
    let file = inputs.join("rows.tsv");
    std::fs::write(&file, &tsv).unwrap();
    let (from_file, from_stdin) = (d.join("file.st"), d.join("stdin.st"));
    ok(train(&file, &from_file, &["--batch", "64"]));
    let out = ok(pocketrec_stdin(&train_args("-", &from_stdin, &["--batch", "64"]), tsv.as_bytes()));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("malformed"), "rows were rejected: {stderr}");
    assert!(model_parts(&from_file) == model_parts(&from_stdin), "stdin trained another model than the file");
    assert_eq!(listing(&d), ["file.st", "stdin.st"]);
}

// Finding 2: runs that train nothing.

#[test]
fn a_run_that_trains_nothing_fails_and_writes_nothing() {
    let d = dir("nothing");
    let inputs = dir("nothing-inputs");
    let binary = inputs.join("binary.bin");
    // Bytes of a small xorshift stream: no line of them is a row.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let noise: Vec<u8> = (0..50_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    std::fs::write(&binary, noise).unwrap();
    let header_only = inputs.join("header.tsv");
    std::fs::write(&header_only, "label\tdense:x\tcat:y\n").unwrap();
    let model = d.join("m.st");
    for (case, out) in [
        ("a binary file", train(&binary, &model, &[])),
        ("a header-only schema TSV", train(&header_only, &model, &[])),
        ("--epochs 0", train(data(), &model, &["--epochs", "0"])),
    ] {
        let stderr = failed(&out);
        assert!(stderr.contains("training made no step, so no model was written"), "{case}: {stderr}");
        assert_eq!(listing(&d), Vec::<String>::new(), "{case} left files behind");
    }
}

// Finding 3: resume.

/// A checkpoint after 3 steps of the small setup, kept.
fn partial_run(d: &Path) -> (PathBuf, PathBuf) {
    let (model, ckpt) = (d.join("m.st"), d.join("m.ckpt"));
    ok(train(data(), &model, &["--max-steps", "3", "--checkpoint", s(&ckpt), "--keep-checkpoint"]));
    (model, ckpt)
}

#[test]
fn resume_names_every_changed_option_and_refuses() {
    let d = dir("resume-options");
    let (model, ckpt) = partial_run(&d);
    let before = std::fs::read(&model).unwrap();
    let other_data = d.join("other.tsv");
    std::fs::copy(data(), &other_data).unwrap();
    let changed = [
        "--resume",
        "--checkpoint",
        s(&ckpt),
        "--seed",
        "2",
        "--batch",
        "128",
        "--memory",
        "300KB",
        "--optimizer",
        "sgd",
    ];
    let args = train_args(s(&other_data), &model, &changed);
    let stderr = failed(&pocketrec(&args));
    for named in [
        "--seed 1 (now 2)",
        "--batch 256 (now 128)",
        "--memory 200000 (now 300000)",
        "--optimizer adam (now sgd)",
        "--train ",
    ] {
        assert!(stderr.contains(named), "{named:?} is not named: {stderr}");
    }
    assert!(stderr.contains("cannot resume from"), "{stderr}");
    assert_eq!(std::fs::read(&model).unwrap(), before, "a refused resume must not touch the model");
    // Options where continuing is sound may change: more epochs, no step limit.
    ok(train(data(), &model, &["--resume", "--checkpoint", s(&ckpt), "--epochs", "2"]));
    assert_eq!(listing(&d), ["m.st", "other.tsv"]);
}

#[test]
fn resume_refuses_a_checkpoint_with_a_flipped_byte() {
    let d = dir("resume-flip");
    let (model, ckpt) = partial_run(&d);
    let mut bytes = std::fs::read(&ckpt).unwrap();
    // One low mantissa bit in the middle of the tensor data: still a finite, loadable float.
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    std::fs::write(&ckpt, &bytes).unwrap();
    let before = std::fs::read(&model).unwrap();
    let stderr = failed(&train(data(), &model, &["--resume", "--checkpoint", s(&ckpt)]));
    assert!(stderr.contains("is corrupt (digest mismatch)"), "{stderr}");
    assert_eq!(std::fs::read(&model).unwrap(), before);
}

// Finding 4: output files.

#[cfg(unix)]
#[test]
fn a_symlinked_output_keeps_its_link_and_gets_the_content() {
    let d = dir("symlink");
    std::fs::create_dir(d.join("real")).unwrap();
    std::fs::write(d.join("real/model.st"), "old").unwrap();
    std::os::unix::fs::symlink("real/model.st", d.join("link.st")).unwrap();
    ok(train(data(), &d.join("link.st"), &["--checkpoint", s(&d.join("real/ck"))]));
    assert!(std::fs::symlink_metadata(d.join("link.st")).unwrap().file_type().is_symlink(), "the link was replaced");
    let bytes = std::fs::read(d.join("real/model.st")).unwrap();
    assert!(pocketrec::file::from_bytes(&bytes).is_ok(), "the link's target does not hold the model");
    assert_eq!(listing(&d.join("real")), ["model.st"]);
}

#[cfg(unix)]
#[test]
fn a_special_file_as_output_is_refused() {
    let d = dir("special");
    let fifo = d.join("fifo");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let stderr = failed(&train(data(), &fifo, &["--checkpoint", s(&d.join("ck"))]));
    assert!(stderr.contains("is a named pipe, not a regular file: refusing to replace it"), "{stderr}");
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo(), "the pipe was replaced");
    let stderr = failed(&train(data(), &d, &["--checkpoint", s(&d.join("ck"))]));
    assert!(stderr.contains("is a directory, not a regular file"), "{stderr}");
    assert_eq!(listing(&d), ["fifo"]);
}

/// A model for scoring, trained once.
fn scoring_model() -> &'static PathBuf {
    static MODEL: OnceLock<PathBuf> = OnceLock::new();
    MODEL.get_or_init(|| {
        let model = dir("scoring-model").join("m.st");
        ok(train(data(), &model, &["--max-steps", "2"]));
        model
    })
}

#[test]
fn a_failed_score_leaves_the_existing_output_untouched() {
    let d = dir("score-fail");
    let mut rows = std::fs::read(data()).unwrap();
    rows.extend_from_slice(b"not a row\n");
    let input = d.join("rows.tsv");
    std::fs::write(&input, rows).unwrap();
    let out = d.join("scores.txt");
    std::fs::write(&out, "precious\n").unwrap();
    let stderr = failed(&pocketrec(&[
        "score",
        "--model",
        s(scoring_model()),
        "--data",
        s(&input),
        "--batch",
        "100",
        "-o",
        s(&out),
    ]));
    assert!(stderr.contains("line 3001"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "precious\n");
    assert_eq!(listing(&d), ["rows.tsv", "scores.txt"]);
}

#[test]
fn score_dash_writes_to_stdout() {
    let d = dir("score-stdout");
    let out = bin()
        .current_dir(&d)
        .args(["score", "--model", s(scoring_model()), "--data", s(data()), "-o", "-"])
        .output()
        .unwrap();
    let out = ok(out);
    let scores: Vec<f32> = String::from_utf8(out.stdout).unwrap().lines().map(|l| l.parse().unwrap()).collect();
    assert_eq!(scores.len(), 3000);
    assert!(scores.iter().all(|p| (0.0..=1.0).contains(p)));
    assert_eq!(listing(&d), Vec::<String>::new(), "no file named -");
}

#[test]
fn a_finished_run_removes_its_checkpoint_and_stale_temporaries() {
    let d = dir("leftovers");
    let model = d.join("m.st");
    // Temporaries of a process that cannot be running (PID u32::MAX), as kill -9 leaves them.
    let dead = u32::MAX;
    for name in [format!(".m.st.tmp{dead}"), format!(".m.st.ckpt.tmp{dead}"), format!(".m.st.stdin.tmp{dead}")] {
        std::fs::write(d.join(name), "stale").unwrap();
    }
    ok(train(data(), &model, &["--checkpoint-every", "2"]));
    assert_eq!(listing(&d), ["m.st"]);
    ok(train(data(), &model, &["--checkpoint-every", "2", "--keep-checkpoint"]));
    assert_eq!(listing(&d), ["m.st", "m.st.ckpt"]);
}

/// The training step of a checkpoint, when it can be read (it may be replaced as we read).
fn checkpoint_step(path: &Path) -> Option<u64> {
    let bytes = std::fs::read(path).ok()?;
    let n = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?) as usize;
    let header: Value = serde_json::from_slice(bytes.get(8..8 + n)?).ok()?;
    let provenance: Value = serde_json::from_str(header["__metadata__"]["provenance"].as_str()?).ok()?;
    provenance["checkpoint"]["position"]["step"].as_u64()
}

/// A small version of `scripts/kill9-loop.sh`: kill -9 three times, then resume to the end: the
/// model is byte-identical and nothing else is left. The kills wait for events, not times: the
/// first and third for a checkpoint temporary to appear (a kill in the middle of its write, when
/// the process is caught there), the second for the checkpoint to move on.
#[test]
fn kill_9_then_resume_gives_the_same_model_and_no_stray_files() {
    let d = dir("kill9");
    let (reference, model, ckpt) = (d.join("ref.st"), d.join("m.st"), d.join("m.st.ckpt"));
    let extra = ["--epochs", "2", "--batch", "32", "--checkpoint-every", "1"];
    ok(train(data(), &reference, &extra));
    let writing = || listing(&d).iter().any(|n| n.starts_with(".m.st.ckpt.tmp"));
    let (mut kills, mut mid_write, mut last_step) = (0, 0, 0);
    while kills < 3 && !model.exists() {
        let mut args = train_args(s(data()), &model, &extra);
        if ckpt.exists() {
            args.push("--resume");
        }
        let mut child = bin().args(&args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        while child.try_wait().unwrap().is_none() {
            let step = checkpoint_step(&ckpt).unwrap_or(last_step);
            let in_write = kills != 1 && writing();
            if in_write || step > last_step + 2 * (kills != 1) as u64 {
                child.kill().unwrap(); // SIGKILL on Unix
                child.wait().unwrap();
                kills += 1;
                mid_write += in_write as u32;
                last_step = checkpoint_step(&ckpt).unwrap_or(last_step);
                break;
            }
            std::thread::yield_now();
        }
    }
    eprintln!("{kills} kills ({mid_write} during a checkpoint write), the last at checkpoint step {last_step}");
    assert!(kills > 0, "the run ended before it could be killed");
    if !model.exists() {
        ok(train(data(), &model, &[&extra[..], &["--resume"]].concat()));
    }
    assert!(
        std::fs::read(&model).unwrap() == std::fs::read(&reference).unwrap(),
        "after {kills} kills the model differs"
    );
    assert_eq!(listing(&d), ["m.st", "ref.st"]);
}
