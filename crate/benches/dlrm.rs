//! The kaggle preset at 10 MB: forward pass at batch 2048, and a training step ([`TrainStep`]:
//! data-parallel forward, backward, sparse SGD) at batch 2048 and 128, beside a GEMM of 2048x512x256 (the same `gemm` kernels the
//! model uses) measured in the same run. All report throughput in FLOPs ("elem/s" = FLOP/s); rows/s = FLOP/s / FLOP per row
//! (printed at start).
//!
//! `cargo bench -p pocketrec --bench dlrm` (RAYON_NUM_THREADS sets the threads).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ndarray::Array2;
use pocketrec::config::criteo_schema;
use pocketrec::passes::Workspace;
use pocketrec::{Batch, Dlrm, HashVariant, ModelConfig, Optimizer, OptimizerKind, Preset, StoredDtype, TrainStep};
use rand::{Rng, SeedableRng, rngs::StdRng};

fn criteo_like_batch(rows: usize, seed: u64) -> Batch {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut batch = Batch::with_schema(26);
    for _ in 0..rows {
        let dense: Vec<f32> = (0..13).map(|_| rng.random_range(0.0..1000.0f32).floor()).collect();
        let keys: Vec<[u32; 1]> = (0..26).map(|_| [rng.random()]).collect();
        batch.push_row(&dense, keys.iter().map(|k| k.as_slice()), Some(rng.random_range(0..2) as f32));
    }
    batch
}

fn bench(c: &mut Criterion) {
    let (m, k, n) = (2048, 512, 256);
    let a = Array2::from_shape_fn((m, k), |(i, j)| ((i * 7 + j * 3) % 13) as f32 * 0.1);
    let b = Array2::from_shape_fn((k, n), |(i, j)| ((i * 5 + j) % 11) as f32 * 0.1);
    let mut out = Array2::<f32>::zeros((m, n));
    let mut g = c.benchmark_group("gemm");
    g.throughput(Throughput::Elements(2 * (m * k * n) as u64));
    g.bench_function("2048x512x256", |bch| {
        bch.iter(|| pocketrec::gemm::matmul(a.view(), b.view(), out.view_mut(), false))
    });
    g.finish();

    let (dense, fields) = criteo_schema();
    let cfg = ModelConfig::preset(Preset::Kaggle, dense, fields, 10_000_000, 4, HashVariant::UmaV1, StoredDtype::F32)
        .unwrap();
    let flops = cfg.forward_flops_per_row();
    eprintln!("kaggle forward: {flops} FLOP per row");
    let train_flops = cfg.train_flops_per_row();
    eprintln!("kaggle training step: {train_flops} FLOP per row");
    let mut model = Dlrm::init(cfg, 1).unwrap();
    let rows = 2048;
    let batch = criteo_like_batch(rows, 2);
    let mut ws = Workspace::default();
    let mut g = c.benchmark_group("forward");
    g.throughput(Throughput::Elements(flops * rows as u64));
    g.bench_function("kaggle_10MB_b2048", |bch| bch.iter(|| model.forward(&batch, &mut ws)[0]));
    g.finish();

    let mut g = c.benchmark_group("train_step");
    let mut opt = Optimizer::new(OptimizerKind::Sgd, 0.01, &model);
    let mut step = TrainStep::new();
    for rows in [2048, 128] {
        let batch = criteo_like_batch(rows, 3);
        g.throughput(Throughput::Elements(train_flops * rows as u64));
        g.bench_function(format!("kaggle_10MB_b{rows}"), |bch| bch.iter(|| step.step(&mut model, &mut opt, &batch)));
    }
    g.finish();
}

criterion_group! { name = benches; config = Criterion::default().sample_size(20); targets = bench }
criterion_main!(benches);
