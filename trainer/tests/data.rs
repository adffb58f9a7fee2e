//! The data loader against each bad input of issue 3, plus format, shuffle, determinism, stdin,
//! the synthetic generator through the binary, and the real Criteo sample when it is present.

use pocketrec_trainer::data::synth::Synth;
use pocketrec_trainer::data::{Loader, LoaderOptions, ReadStats, Schema};
use pocketrec_trainer::metrics::auc;
use std::io::Write;
use std::path::PathBuf;

fn temp_path(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("data-tests");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn write(name: &str, bytes: &[u8]) -> String {
    let path = temp_path(name);
    std::fs::write(&path, bytes).unwrap();
    path.to_str().unwrap().to_string()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// `n` synthetic Criteo lines (seed 9), each ending in a newline.
fn criteo_text(n: usize) -> Vec<u8> {
    Synth::new(9).tsv(0, n).0
}

fn lines(text: &[u8]) -> Vec<Vec<u8>> {
    text.split(|&b| b == b'\n').filter(|l| !l.is_empty()).map(|l| l.to_vec()).collect()
}

fn join(lines: &[Vec<u8>]) -> Vec<u8> {
    lines.iter().flat_map(|l| l.iter().copied().chain([b'\n'])).collect()
}

fn opts(batch_size: usize) -> LoaderOptions {
    LoaderOptions { batch_size, ..LoaderOptions::default() }
}

/// One row flattened for comparison: label, dense bits, then each field's values with a separator.
type FlatRow = Vec<u32>;

fn flat_rows(batch: &pocketrec::Batch) -> Vec<FlatRow> {
    let nd = batch.dense.len() / batch.rows.max(1);
    (0..batch.rows)
        .map(|r| {
            let mut row = vec![batch.labels[r].to_bits()];
            row.extend(batch.dense[r * nd..(r + 1) * nd].iter().map(|x| x.to_bits()));
            for f in &batch.fields {
                row.extend_from_slice(f.row(r));
                row.push(u32::MAX);
            }
            row
        })
        .collect()
}

/// Every batch's rows, the batch sizes, and the final stats.
fn read_all(path: &str, opts: LoaderOptions) -> anyhow::Result<(Vec<FlatRow>, Vec<usize>, ReadStats)> {
    let mut loader = Loader::open(path, opts)?;
    let (mut rows, mut sizes) = (Vec::new(), Vec::new());
    while let Some(batch) = loader.next_batch()? {
        batch.validate(&config_for(loader.schema())).unwrap();
        sizes.push(batch.rows);
        rows.extend(flat_rows(&batch));
    }
    Ok((rows, sizes, loader.stats()))
}

/// A model config with the schema's fields, to check batches with `Batch::validate`.
fn config_for(schema: &Schema) -> pocketrec::ModelConfig {
    pocketrec::ModelConfig {
        dense: schema.dense.clone(),
        dense_transform: pocketrec::DenseTransform::Identity,
        fields: schema.fields.clone(),
        dim: 4,
        bottom: vec![schema.dense.len(), 4],
        top: vec![4, 1],
        embedding: pocketrec::EmbeddingConfig::Robe { m: 64, z: 4, hash: pocketrec::HashVariant::UmaV1 },
        key_mode: pocketrec::KeyMode::Raw,
    }
}

#[test]
fn last_line_without_newline_is_a_row() {
    let text = criteo_text(10);
    let path = write("no-final-newline.tsv", &text[..text.len() - 1]);
    let (rows, _, stats) = read_all(&path, opts(4)).unwrap();
    let (expected, _, _) = read_all(&write("with-final-newline.tsv", &text), opts(4)).unwrap();
    assert_eq!(rows, expected);
    assert_eq!((stats.rows, stats.bad_lines), (10, 0));
}

#[test]
fn last_line_cut_mid_row_is_a_counted_bad_line() {
    let text = criteo_text(10);
    let path = write("cut-last-line.tsv", &text[..text.len() - 60]);
    let (rows, _, stats) = read_all(&path, opts(4)).unwrap();
    assert_eq!((rows.len(), stats.rows, stats.bad_lines), (9, 9, 1));
    assert_eq!(stats.first_bad[0].line_no, 10);
    // Cut inside a hex field, which is then too short (a cut on a tab gives too few columns).
    assert!(stats.first_bad[0].reason.contains("not 8 hex digits"), "{}", stats.first_bad[0].reason);
    let text = criteo_text(3);
    let cut = text[..text.len() - 1].iter().rposition(|&b| b == b'\t').unwrap();
    let (_, _, stats) = read_all(&write("cut-on-tab.tsv", &text[..cut]), opts(4)).unwrap();
    assert_eq!((stats.rows, stats.bad_lines), (2, 1));
    assert!(stats.first_bad[0].reason.contains("got 39"), "{}", stats.first_bad[0].reason);
}

#[test]
fn a_line_of_39_columns_is_skipped_or_fatal_when_strict() {
    let mut ls = lines(&criteo_text(20));
    let cut = ls[2].iter().rposition(|&b| b == b'\t').unwrap();
    ls[2].truncate(cut);
    let path = write("39-columns.tsv", &join(&ls));
    let (rows, _, stats) = read_all(&path, opts(8)).unwrap();
    assert_eq!((rows.len(), stats.bad_lines), (19, 1));
    assert_eq!(stats.first_bad[0].line_no, 3);
    assert!(stats.first_bad[0].reason.contains("expected 40") && stats.first_bad[0].reason.contains("got 39"));

    let err = read_all(&path, LoaderOptions { strict: true, ..opts(8) }).unwrap_err().to_string();
    assert!(err.contains("line 3") && err.contains("got 39") && err.contains(&path), "{err}");
}

#[test]
fn zz_in_a_hex_field_is_skipped_and_reported() {
    let mut ls = lines(&criteo_text(12));
    for i in [4, 7] {
        let text = String::from_utf8(ls[i].clone()).unwrap();
        let mut cells: Vec<&str> = text.split('\t').collect();
        cells[20] = "zz";
        ls[i] = cells.join("\t").into_bytes();
    }
    let path = write("zz.tsv", &join(&ls));
    let (rows, _, stats) = read_all(&path, opts(5)).unwrap();
    assert_eq!((rows.len(), stats.bad_lines), (10, 2));
    let lines: Vec<u64> = stats.first_bad.iter().map(|b| b.line_no).collect();
    assert_eq!(lines, [5, 8]);
    assert!(stats.first_bad[0].reason.contains("column 21") && stats.first_bad[0].reason.contains("\"zz\""));
}

#[test]
fn only_the_first_five_bad_lines_are_kept_but_all_are_counted() {
    let mut ls = lines(&criteo_text(30));
    for l in ls.iter_mut().skip(10).take(8) {
        l[0] = b'x';
    }
    let path = write("many-bad.tsv", &join(&ls));
    let (_, _, stats) = read_all(&path, opts(5)).unwrap();
    assert_eq!((stats.rows, stats.bad_lines, stats.first_bad.len()), (22, 8, 5));
    assert_eq!(stats.first_bad[4].line_no, 15);
}

#[test]
fn an_over_long_line_is_skipped() {
    let mut ls = lines(&criteo_text(5));
    ls[1] = vec![b'7'; 70_000];
    let path = write("long-line.tsv", &join(&ls));
    let (rows, _, stats) = read_all(&path, opts(5)).unwrap();
    assert_eq!((rows.len(), stats.bad_lines), (4, 1));
    assert_eq!(stats.first_bad[0].line_no, 2);
    assert!(stats.first_bad[0].reason.contains("longer than 65536"));
}

#[test]
fn an_empty_file_is_an_error() {
    for (name, bytes) in [("empty.tsv", Vec::new()), ("empty.tsv.gz", gzip(b""))] {
        let path = write(name, &bytes);
        let err = Loader::open(&path, opts(4)).err().expect("an empty file must not open").to_string();
        assert!(err.contains(&path) && err.contains("empty"), "{err}");
    }
}

#[test]
fn a_schema_file_with_only_a_header_gives_zero_rows() {
    let path = write("header-only.tsv", b"label\tdense:x\tcat:c\n");
    let (rows, _, stats) = read_all(&path, opts(4)).unwrap();
    assert!(rows.is_empty());
    assert_eq!(stats.rows, 0);
}

#[test]
fn a_missing_file_is_a_one_line_error_naming_it() {
    let path = temp_path("does-not-exist.tsv");
    let _ = std::fs::remove_file(&path);
    let path = path.to_str().unwrap();
    let err = format!("{:#}", Loader::open(path, opts(4)).err().unwrap());
    assert!(err.contains(path) && !err.contains('\n'), "{err}");
}

#[test]
fn a_gzip_file_cut_in_the_middle_is_an_error_naming_it() {
    let gz = gzip(&criteo_text(3000));
    let path = write("cut.tsv.gz", &gz[..gz.len() / 2]);
    let Err(err) = read_all(&path, opts(64)) else { panic!("a cut gzip file must not read as fewer rows") };
    let err = format!("{err:#}");
    assert!(err.contains(&path) && err.contains("truncated") && !err.contains('\n'), "{err}");
    // Cut inside the 8-byte trailer: all the data is there, but the file is still incomplete.
    let path = write("cut-trailer.tsv.gz", &gz[..gz.len() - 3]);
    assert!(read_all(&path, opts(64)).is_err());
}

#[test]
fn gzip_and_plain_give_the_same_batches() {
    let text = criteo_text(1000);
    let o = LoaderOptions { shuffle_buffer: 100, seed: 3, ..opts(64) };
    let plain = read_all(&write("same.tsv", &text), o.clone()).unwrap();
    let gz = read_all(&write("same.tsv.gz", &gzip(&text)), o.clone()).unwrap();
    // Concatenated gzip members (what `synth -o x.gz` writes) read as one stream.
    let (a, b) = text.split_at(text.len() / 3);
    let multi = [gzip(a), gzip(b)].concat();
    let members = read_all(&write("members.tsv.gz", &multi), o).unwrap();
    assert_eq!(plain.0.len(), 1000);
    assert_eq!(plain, gz);
    assert_eq!(plain, members);
}

#[test]
fn the_same_seed_gives_the_same_batch_sequence() {
    let path = write("seeded.tsv", &criteo_text(2000));
    let o = LoaderOptions { shuffle_buffer: 500, seed: 11, ..opts(100) };
    let first = read_all(&path, o.clone()).unwrap();
    assert_eq!(first, read_all(&path, o.clone()).unwrap());
    let other = read_all(&path, LoaderOptions { seed: 12, ..o }).unwrap();
    assert_ne!(first.0, other.0);
}

#[test]
fn the_shuffle_buffer_keeps_every_row_exactly_once() {
    let path = write("shuffle.tsv", &criteo_text(1000));
    let (ordered, _, _) = read_all(&path, opts(7)).unwrap();
    for buffer in [1, 2, 10, 999, 1000, 5000] {
        let (shuffled, sizes, stats) =
            read_all(&path, LoaderOptions { shuffle_buffer: buffer, seed: 5, ..opts(7) }).unwrap();
        // A buffer of one row can only keep the order.
        assert_eq!(shuffled == ordered, buffer == 1, "buffer {buffer}");
        let (mut a, mut b) = (shuffled.clone(), ordered.clone());
        a.sort();
        b.sort();
        assert_eq!(a, b, "buffer {buffer} lost or duplicated rows");
        assert_eq!(sizes.iter().sum::<usize>(), 1000);
        assert!(sizes[..sizes.len() - 1].iter().all(|&s| s == 7) && *sizes.last().unwrap() == 1000 % 7);
        assert_eq!(stats.rows, 1000);
    }
}

#[test]
fn skip_rows_and_max_rows_count_data_lines() {
    let text = criteo_text(100);
    let path = write("window.tsv", &text);
    let (all, _, _) = read_all(&path, opts(16)).unwrap();
    let (window, _, stats) = read_all(&path, LoaderOptions { skip_rows: 30, max_rows: Some(20), ..opts(16) }).unwrap();
    assert_eq!(window, all[30..50]);
    assert_eq!(stats.rows, 20);
    let (tail, _, _) = read_all(&path, LoaderOptions { skip_rows: 80, max_rows: Some(1000), ..opts(16) }).unwrap();
    assert_eq!(tail, all[80..]);
    // A shuffled window holds the same rows.
    let (mut shuffled, _, _) =
        read_all(&path, LoaderOptions { skip_rows: 30, max_rows: Some(20), shuffle_buffer: 8, ..opts(16) }).unwrap();
    shuffled.sort();
    let mut expected = all[30..50].to_vec();
    expected.sort();
    assert_eq!(shuffled, expected);
    // Bad lines count as data lines; the header of a schema file does not.
    let schema = write("window-schema.tsv", b"label\tdense:x\n1\t1\n0\tbad\n1\t3\n0\t4\n");
    let (rows, _, stats) = read_all(&schema, LoaderOptions { skip_rows: 1, max_rows: Some(2), ..opts(4) }).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0][1], 3.0f32.to_bits());
    assert_eq!(stats.first_bad[0].line_no, 3);
}

#[test]
fn schema_tsv_with_bag_fields() {
    let text = "label\tdense:age\tcat:user\tbag:genres\tbagsum:tags\n\
                1\t31\talice\tdrama,comedy\tx\n\
                0\t\tbob\t\tx,y,z\n\
                1\t2.5\t\thorror\t\n";
    let path = write("schema.tsv", text.as_bytes());
    let mut loader = Loader::open(&path, opts(10)).unwrap();
    let schema = loader.schema().clone();
    assert_eq!(schema.dense, ["age"]);
    let kinds: Vec<_> = schema.fields.iter().map(|f| (f.name.as_str(), f.kind)).collect();
    use pocketrec::FieldKind::*;
    assert_eq!(kinds, [("user", Categorical), ("genres", BagMean), ("tags", BagSum)]);
    let batch = loader.next_batch().unwrap().unwrap();
    assert!(loader.next_batch().unwrap().is_none());
    let h = |s: &str| pocketrec::robe::fnv1a32(s.as_bytes());
    assert_eq!(batch.rows, 3);
    assert_eq!(batch.labels, [1.0, 0.0, 1.0]);
    assert_eq!(batch.dense, [31.0, 0.0, 2.5]);
    assert_eq!(batch.fields[0].values, [h("alice"), h("bob"), 0]);
    assert_eq!(batch.fields[1].row(0), [h("drama"), h("comedy")]);
    assert!(batch.fields[1].row(1).is_empty());
    assert_eq!(batch.fields[1].row(2), [h("horror")]);
    assert_eq!(batch.fields[2].row(1), [h("x"), h("y"), h("z")]);
    assert!(batch.fields[2].row(2).is_empty());
    batch.validate(&config_for(&schema)).unwrap();
    assert_eq!(loader.stats().bad_lines, 0);
}

#[test]
fn a_bad_schema_header_is_an_error() {
    let path = write("bad-header.tsv", b"label\tdense:x\tweird:y\n1\t2\t3\n");
    let err = Loader::open(&path, opts(4)).err().unwrap().to_string();
    assert!(err.contains("line 1") && err.contains("weird"), "{err}");
}

/// Run as a child process by `stdin_works`: reads stdin through the loader and prints a summary.
#[test]
fn stdin_child() {
    if std::env::var_os("POCKETREC_STDIN_CHILD").is_none() {
        return;
    }
    let (rows, _, stats) = read_all("-", LoaderOptions { shuffle_buffer: 50, seed: 1, ..opts(32) }).unwrap();
    let sum: u64 = rows.iter().flatten().map(|&x| x as u64).sum();
    println!("STDIN rows={} bad={} sum={sum}", stats.rows, stats.bad_lines);
}

#[test]
fn stdin_works_plain_and_gzip() {
    let text = criteo_text(500);
    let (rows, _, _) =
        read_all(&write("stdin.tsv", &text), LoaderOptions { shuffle_buffer: 50, seed: 1, ..opts(32) }).unwrap();
    let sum: u64 = rows.iter().flatten().map(|&x| x as u64).sum();
    let expected = format!("STDIN rows=500 bad=0 sum={sum}");
    for input in [text.clone(), gzip(&text)] {
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["stdin_child", "--exact", "--nocapture", "--test-threads=1"])
            .env("POCKETREC_STDIN_CHILD", "1")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let writer = std::thread::spawn(move || stdin.write_all(&input).unwrap());
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains(&expected), "child printed: {stdout}");
    }
}

#[test]
fn a_zero_batch_size_is_an_error() {
    let path = write("batch0.tsv", &criteo_text(3));
    assert!(Loader::open(&path, opts(0)).is_err());
}

#[test]
fn dropping_the_loader_early_stops_its_thread() {
    let path = write("drop.tsv", &criteo_text(5000));
    let mut loader = Loader::open(&path, opts(10)).unwrap();
    assert_eq!(loader.next_batch().unwrap().unwrap().rows, 10);
    drop(loader); // the reader thread sees the hung-up channel and returns; nothing blocks
}

fn run_synth(args: &[&str], threads: &str) {
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_pocketrec"))
        .env("RAYON_NUM_THREADS", threads)
        .arg("synth")
        .args(args)
        .arg("--quiet")
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn synth_binary_is_deterministic_and_has_the_planted_truth() {
    let out = temp_path("synth-100k.tsv.gz");
    let out_str = out.to_str().unwrap();
    run_synth(&["--rows", "100000", "--seed", "1", "--with-probability", "-o", out_str], "2");
    let probs: Vec<f32> =
        std::fs::read_to_string(format!("{out_str}.prob")).unwrap().lines().map(|l| l.parse().unwrap()).collect();
    let mut loader = Loader::open(out_str, opts(4096)).unwrap();
    let mut labels = Vec::new();
    while let Some(b) = loader.next_batch().unwrap() {
        labels.extend(b.labels);
    }
    assert_eq!(loader.stats().bad_lines, 0);
    assert_eq!((labels.len(), probs.len()), (100_000, 100_000));
    let ctr = labels.iter().sum::<f32>() / labels.len() as f32;
    let bayes = auc(&probs, &labels);
    eprintln!("synth --rows 100000 --seed 1: click rate {ctr:.4}, Bayes AUC {bayes:.4}");
    assert!((0.235..0.265).contains(&ctr), "click rate {ctr}");
    assert!((0.78..0.85).contains(&bayes), "Bayes AUC {bayes}");
    // The library gives the same rows in memory.
    let (text, mem_probs) = Synth::new(1).tsv(0, 100);
    assert_eq!(mem_probs, probs[..100]);
    let plain = temp_path("synth-40k.tsv");
    run_synth(&["--rows", "40000", "--seed", "1", "-o", plain.to_str().unwrap()], "2");
    let first = std::fs::read(&plain).unwrap();
    assert!(first.starts_with(&text));
    // The same bytes whatever the thread count.
    run_synth(&["--rows", "40000", "--seed", "1", "-o", plain.to_str().unwrap()], "1");
    assert_eq!(first, std::fs::read(&plain).unwrap());
}

use pocketrec_trainer::shared_data_for_test;

#[test]
fn the_criteo_kaggle_sample_parses_cleanly() {
    let Some(path) = shared_data_for_test("criteo/kaggle-train-10k.tsv", "the_criteo_kaggle_sample_parses_cleanly")
    else {
        return;
    };
    let (rows, _, stats) =
        read_all(path.to_str().unwrap(), LoaderOptions { shuffle_buffer: 1000, ..opts(512) }).unwrap();
    assert_eq!((rows.len(), stats.rows, stats.bad_lines), (10_000, 10_000, 0), "{stats}");
    let clicks = rows.iter().filter(|r| r[0] == 1.0f32.to_bits()).count();
    assert_eq!(clicks, 2182, "click rate {}", clicks as f64 / 1e4); // 21.8%
    // The train/eval split of issue 3.
    let (eval, _, _) = read_all(path.to_str().unwrap(), LoaderOptions { skip_rows: 8000, ..opts(512) }).unwrap();
    assert_eq!(eval.len(), 2000);
}
