//! Parser throughput in bytes/s on one thread (issue 3 asks >= 150 MB/s per core on Criteo rows),
//! the same rows as a mapped CSV (the `--label/--dense/--cat` path), plus the whole loader (reader
//! thread, batching) over a plain file for reference.
//!
//! `cargo bench -p pocketrec-trainer --bench parse`

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pocketrec_trainer::data::synth::Synth;
use pocketrec_trainer::data::{Labels, Loader, LoaderOptions, Mapping, Row, RowParser};
use std::hint::black_box;

/// Parses every line of `text` as the loader does; returns a checksum so nothing is optimised out.
fn parse_all(parser: &RowParser, text: &[u8], row: &mut Row) -> u64 {
    let mut sum = 0u64;
    let mut rest = text;
    while !rest.is_empty() {
        let end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
        if parser.parse(&rest[..end], row).is_ok() {
            sum = sum.wrapping_add(row.values[0] as u64);
        }
        rest = &rest[(end + 1).min(rest.len())..];
    }
    sum
}

fn bench_parse(c: &mut Criterion) {
    let (synthetic, _) = Synth::new(1).tsv(0, 50_000);
    let kaggle = pocketrec_trainer::shared_data("criteo/kaggle-train-10k.tsv").and_then(|p| std::fs::read(p).ok());
    let parser = RowParser::criteo();
    let mut group = c.benchmark_group("parse");
    let mut inputs = vec![("synthetic_criteo", synthetic.clone())];
    match kaggle {
        Some(k) => inputs.push(("kaggle_10k", k)),
        None => eprintln!("kaggle_10k: SKIPPED, ../shared/data/criteo/kaggle-train-10k.tsv is absent"),
    }
    for (name, text) in &inputs {
        group.throughput(Throughput::Bytes(text.len() as u64));
        let mut row = Row::default();
        group.bench_function(*name, |b| b.iter(|| parse_all(&parser, black_box(text), &mut row)));
    }

    // The synthetic rows as CSV under a header, read by a column mapping.
    let names: Vec<String> = std::iter::once("label".to_string())
        .chain((1..=13).map(|i| format!("I{i}")))
        .chain((1..=26).map(|i| format!("C{i}")))
        .collect();
    let header = names.join(",");
    let mapping =
        Mapping { label: Some("label".into()), dense: vec!["I*".into()], cat: vec!["C*".into()], ..Mapping::default() };
    let (_, mapped, _) = mapping.resolve(header.as_bytes(), Labels::Required, false).unwrap();
    let csv: Vec<u8> = synthetic.iter().map(|&b| if b == b'\t' { b',' } else { b }).collect();
    group.throughput(Throughput::Bytes(csv.len() as u64));
    let mut row = Row::default();
    group
        .bench_function("synthetic_criteo_as_mapped_csv", |b| b.iter(|| parse_all(&mapped, black_box(&csv), &mut row)));
    group.finish();

    let path = std::env::temp_dir().join(format!("pocketrec-parse-bench-{}.tsv", std::process::id()));
    std::fs::write(&path, &synthetic).unwrap();
    let mut group = c.benchmark_group("loader");
    group.throughput(Throughput::Bytes(synthetic.len() as u64));
    group.sample_size(20);
    group.bench_function("plain_file_batch_2048", |b| {
        b.iter(|| {
            let opts = LoaderOptions { batch_size: 2048, ..LoaderOptions::default() };
            let mut loader = Loader::open(path.to_str().unwrap(), opts).unwrap();
            let mut rows = 0;
            while let Some(batch) = loader.next_batch().unwrap() {
                rows += batch.rows;
            }
            rows
        })
    });
    group.finish();
    let _ = std::fs::remove_file(&path);
}

criterion_group!(benches, bench_parse);
criterion_main!(benches);
