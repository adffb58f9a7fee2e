//! Ranking latency on the kaggle preset at 10 MB (docs/model-file.md): the context is the 13 dense
//! features and the first 20 categorical fields, each candidate the last 6 fields. Ranks 1,000,
//! 10,000 and 100,000 candidates (top 10) on the CPU, context-once and as full rows through
//! `Dlrm::forward`, and with feature `gpu` on the wgpu backend; plus the GEMM rate of this machine
//! measured in the same run, to state the CPU paths as a fraction of it; with `gpu`, the WGSL
//! GEMM's rate on one 100,000-row layer too. With `POCKETREC_GPU_PROFILE=1` the wgpu benches make
//! one call each (after a warm-up call) and print every request's GPU time per kernel.
//!
//! Single thread (what wasm runs): `cargo bench -p pocketrec --no-default-features --bench rank`
//! wgpu too: `cargo bench -p pocketrec --features gpu --bench rank`

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ndarray::Array2;
use pocketrec::config::criteo_schema;
use pocketrec::rank::{self, Candidates, Context};
use pocketrec::{Dlrm, FieldValues, HashVariant, ModelConfig, Preset, StoredDtype, Workspace};
use rand::{Rng, SeedableRng, rngs::StdRng};
use std::time::Duration;

const SIZES: [usize; 3] = [1_000, 10_000, 100_000];
const K: usize = 10;

fn kaggle_model() -> Dlrm {
    let (dense, fields) = criteo_schema();
    let cfg = ModelConfig::preset(Preset::Kaggle, dense, fields, 10_000_000, 4, HashVariant::UmaV1, StoredDtype::F32)
        .expect("kaggle preset fits 10 MB");
    Dlrm::init(cfg, 1).expect("valid config")
}

fn request(rows: usize) -> (Context, Candidates) {
    let mut rng = StdRng::seed_from_u64(rows as u64);
    let ctx = Context {
        dense: (0..13).map(|_| rng.random_range(0.0..1000.0)).collect(),
        fields: (0..26).map(|f| (f < 20).then(|| vec![rng.random()])).collect(),
    };
    let fields = (0..6).map(|_| FieldValues::single((0..rows).map(|_| rng.random()).collect())).collect();
    (ctx, Candidates { rows, fields })
}

/// Multiply-adds per candidate in the MLPs: (context-once, full row).
fn macs(model: &Dlrm, plan_width: usize) -> (u64, u64) {
    let layer = |w: &[usize]| (w[0] * w[1]) as u64;
    let bottom: u64 = model.config.bottom.windows(2).map(layer).sum();
    let top: u64 = model.config.top.windows(2).map(layer).sum();
    let top_rest: u64 = model.config.top[1..].windows(2).map(layer).sum();
    (plan_width as u64 * model.config.top[1] as u64 + top_rest, bottom + top)
}

fn bench(c: &mut Criterion) {
    let model = kaggle_model();
    let plan_width = rank::ContextPlan::new(&model, &request(1).0).input_width();
    let (once_macs, full_macs) = macs(&model, plan_width);
    eprintln!(
        "kaggle @ 10 MB: M = {}, MLP multiply-adds per candidate: context-once {once_macs}, full row {full_macs}",
        model.embedding.len()
    );

    // The GEMM rate: the top MLP's 512 -> 256 layer on 4096 rows, the bulk of the per-row work, on
    // the kernels the model runs (pocketrec::gemm).
    let mut g = c.benchmark_group("gemm");
    g.sample_size(20).measurement_time(Duration::from_secs(3));
    let (m, k, n) = (4096, 512, 256);
    let a = Array2::<f32>::from_shape_fn((m, k), |(i, j)| ((i * 7 + j * 3) % 13) as f32 * 0.01);
    let w = Array2::<f32>::from_shape_fn((n, k), |(i, j)| ((i * 5 + j) % 11) as f32 * 0.01);
    let mut out = Array2::<f32>::zeros((m, n));
    g.throughput(Throughput::Elements((m * k * n) as u64));
    g.bench_function("4096x512x256 multiply-adds", |b| {
        b.iter(|| pocketrec::gemm::matmul(a.view(), w.t(), out.view_mut(), false))
    });
    g.finish();

    let mut g = c.benchmark_group("rank kaggle 10MB top10");
    g.sample_size(10).measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_millis(500));
    #[cfg(feature = "gpu")]
    let mut gpu = match pollster::block_on(pocketrec::Scorer::new(model.clone(), pocketrec::BackendChoice::WebGpu)) {
        Ok(s) => {
            eprintln!("wgpu backend: {}", s.backend_reason());
            Some(s)
        }
        Err(e) => {
            eprintln!("SKIPPED wgpu benches: {e}");
            None
        }
    };
    #[cfg(feature = "gpu")]
    let software = gpu.as_mut().and_then(|s| s.gpu_backend()).is_some_and(|g| g.is_software());
    // Profiled (each request prints its kernels' GPU times), the wgpu benches make a warm-up call
    // and one timed call each instead of criterion's many.
    #[cfg(feature = "gpu")]
    let profiling = std::env::var_os("POCKETREC_GPU_PROFILE").is_some_and(|v| v == "1");
    #[cfg(feature = "gpu")]
    let one_call = |name: &str, f: &mut dyn FnMut()| {
        if profiling {
            eprintln!("{name}: warm-up call");
            f();
        }
        let t = std::time::Instant::now();
        f();
        let ms = t.elapsed().as_secs_f64() * 1e3;
        eprintln!("{name}: one call {ms:.2} ms{}", if software { " (software adapter)" } else { "" });
        ms
    };
    for rows in SIZES {
        let (ctx, cands) = request(rows);
        g.throughput(Throughput::Elements(rows as u64));
        g.bench_with_input(BenchmarkId::new("cpu context-once", rows), &rows, |b, _| {
            b.iter(|| rank::rank(&model, &ctx, &cands, K).unwrap())
        });
        let batch = rank::full_rows(&model.config, &ctx, &cands);
        let mut ws = Workspace::default();
        g.bench_with_input(BenchmarkId::new("cpu full rows", rows), &rows, |b, _| {
            b.iter(|| rank::top_k(model.forward(&batch, &mut ws), K))
        });
        #[cfg(feature = "gpu")]
        if let Some(s) = gpu.as_mut().filter(|_| (rows >= 100_000 && software) || profiling) {
            // A software adapter takes seconds per call here: one timed call each.
            one_call(&format!("wgpu context-once/{rows}"), &mut || {
                pollster::block_on(s.rank(&ctx, &cands, K)).unwrap();
            });
            one_call(&format!("wgpu full rows/{rows}"), &mut || {
                rank::top_k(&pollster::block_on(s.logits(&batch)).unwrap(), K);
            });
        } else if let Some(s) = gpu.as_mut() {
            g.bench_with_input(BenchmarkId::new("wgpu context-once", rows), &rows, |b, _| {
                b.iter(|| pollster::block_on(s.rank(&ctx, &cands, K)).unwrap())
            });
            g.bench_with_input(BenchmarkId::new("wgpu full rows", rows), &rows, |b, _| {
                b.iter(|| rank::top_k(&pollster::block_on(s.logits(&batch)).unwrap(), K))
            });
        }
    }
    g.finish();

    // The WGSL GEMM alone through the backend: the top MLP's 512 -> 256 layer on 100,000 rows (in
    // row chunks, one submission and a 4-byte read-back per call), as GFLOP/s (criterion's
    // elements are flops here), to set the kernel's rate beside the whole path's.
    #[cfg(feature = "gpu")]
    if let Some(s) = gpu.as_mut().and_then(|s| s.gpu_backend()) {
        let rows = 100_000;
        let (k, n) = (model.config.top[1], model.config.top[2]);
        let flop = 2 * (rows * k * n) as u64;
        if software || profiling {
            let ms = one_call(&format!("wgpu gemm {rows}x{k}x{n}"), &mut || {
                pollster::block_on(s.top_layer_only(rows)).unwrap();
            });
            let rate = flop as f64 / ms * 1e-6;
            eprintln!("wgpu gemm {rows}x{k}x{n}: {rate:.1} GFLOP/s with the submission and read-back");
        } else {
            let mut g = c.benchmark_group("wgpu gemm");
            g.sample_size(20).measurement_time(Duration::from_secs(3));
            g.throughput(Throughput::Elements(flop));
            g.bench_function(format!("{rows}x{k}x{n} flop"), |b| {
                b.iter(|| pollster::block_on(s.top_layer_only(rows)).unwrap())
            });
            g.finish();
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
